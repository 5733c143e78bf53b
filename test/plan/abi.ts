/**
 * Kernel and native/plan.h values written out, for the plan tests: not
 * imported from src/plan/linux.ts or plan.ts, so that a wrong constant there
 * fails a test as well as a wrong op sequence.
 */
// mount(2)
export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_NOEXEC = 8;
export const MS_REMOUNT = 32;
export const MS_BIND = 4096;
export const MS_REC = 16384;
export const MS_PRIVATE = 1 << 18;
export const MS_SLAVE = 1 << 19;
export const MS_SHARED = 1 << 20;
export const MS_RELATIME = 1 << 21;
export const MS_STRICTATIME = 1 << 24;
// clone(2)
export const CLONE_NEWTIME = 0x80;
export const CLONE_NEWNS = 0x20000;
export const CLONE_NEWCGROUP = 0x02000000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;
// open(2), x86_64 / asm-generic values
export const O_DIRECTORY = 0o200000;
export const O_PATH = 0o10000000;
// prctl(2)
export const PR_SET_PDEATHSIG = 1;
export const PR_SET_DUMPABLE = 4;
export const PR_SET_NO_NEW_PRIVS = 38;
// plan.h
export const SLOT_CONSOLE_SOCKET = 1;
export const SLOT_EXEC_FIFO = 2;
export const SLOT_ROOT = 3;
export const SLOT_CGROUP_NS = 6;
export const SETNS_FROM_SLOT = 1;
export const MNT_CREATE_DIR = 1;
export const MNT_CREATE_FILE = 2;
export const MNT_BIND = 4;
export const SYNC_CLONED = 1;
export const CHDIR_AS_ROOT = 1;
export const SYNC_PRE_PIVOT = 2;
export const SYNC_START = 3;
export const PIVOT_NO_PIVOT = 1;
export const S_IFCHR = 0o020000;
