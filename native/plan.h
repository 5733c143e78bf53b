// The plan: a flat, serializable description of what a container's init must
// do, in order. TypeScript (src/plan/encode.ts) writes it; the executor runs
// it. The byte layout is little-endian and fixed so the same bytes can be
// handed to a standalone launcher later (no pointers, only offsets).
//
//   header (PlanHeader)
//   ops    (PlanOp[op_count])
//   pool   (bytes: NUL-terminated strings and raw blobs, addressed by offset)
//   lists  (string lists: u32 count, then count u32 pool offsets)
//
// Policy lives in TypeScript: the executor never decides *what* to do, only
// performs each op and reports (op index, errno) when one fails.
#pragma once
#include <stdint.h>
#include <stddef.h>

#define TSRUN_PLAN_MAGIC 0x4c505354u  // "TSPL"
#define TSRUN_PLAN_VERSION 2u
#define TSRUN_NONE 0xffffffffu

struct PlanHeader {
  uint32_t magic;
  uint32_t version;
  uint32_t op_count;
  uint32_t ops_offset;
  uint32_t pool_offset;
  uint32_t pool_length;
  uint32_t lists_offset;
  uint32_t lists_length;
  uint64_t clone_flags;      // namespaces the init is cloned into
  uint32_t intermediate_ops; // ops [0, n) run in an intermediate process that
                             // then clones the init (used to setns() into
                             // existing user/pid namespaces); 0 = clone directly
  uint32_t reserved;
};

struct PlanOp {
  uint32_t code;
  uint32_t flags;
  int64_t a, b, c;
  uint32_t s[4];  // pool offsets of strings/blobs, TSRUN_NONE when absent
  uint32_t l[2];  // lists offsets, TSRUN_NONE when absent
};

static_assert(sizeof(PlanHeader) == 48, "header layout is part of the ABI");
static_assert(sizeof(PlanOp) == 56, "op layout is part of the ABI");

// File descriptor slots: fds the executor keeps across ops. The parent fills
// SLOT_SYNC and SLOT_CONSOLE_SOCKET; ops open the others.
enum PlanSlot : uint32_t {
  SLOT_SYNC = 0,            // socket to the runtime process
  SLOT_CONSOLE_SOCKET = 1,  // --console-socket connection, -1 if none
  SLOT_EXEC_FIFO = 2,       // O_PATH of the exec fifo itself: unlike its directory, a
                            // fd that cannot be walked to the host (../..)
  SLOT_ROOT = 3,            // the rootfs directory
  SLOT_PTY = 4,             // the pty slave once a console exists
  SLOT_CGROUP = 5,          // the cgroup v2 directory the spawner clones the init into:
                            // kept by OP_CLOSE_FDS in the spawner, closed by the init
  SLOT_CGROUP_NS = 6,       // a cgroup namespace the init joins after its clone (SETNS_FROM_SLOT)
  SLOT_COUNT = 8,
};

enum PlanOpCode : uint32_t {
  OP_PRCTL = 1,           // prctl(a, b)
  OP_CLOSE_FDS = 2,       // close every fd >= a except slots; clear CLOEXEC on [3, a)
  OP_SYNC = 3,            // tell the parent "sync a" and wait for its ack
  OP_SETNS = 4,           // setns(open(s0), a); flags & SETNS_FROM_SLOT: setns(slot b, a), then close it
  OP_UNSHARE = 5,         // unshare(a)
  OP_SETRESID = 6,        // setresgid(b,b,b); setresuid(a,a,a)
  OP_WRITE_FILE = 7,      // write s0 <- s1 (absolute path in the runtime's view)
  OP_SETHOSTNAME = 8,     // s0
  OP_SETDOMAINNAME = 9,   // s0
  OP_MOUNT = 10,          // mount(s0, s1, s2, a, s3) with absolute paths
  OP_OPEN_SLOT = 11,      // slot a = open(s0, b)
  OP_MOUNT_IN_ROOT = 12,  // mount at s1 resolved inside SLOT_ROOT; see MountFlags
  OP_MKNOD_IN_ROOT = 13,  // mknod s1 mode a dev b, chown to c (uid<<32|gid), -1 keeps
  OP_SYMLINK_IN_ROOT = 14,// symlink s0 -> at s1 inside root
  OP_MASK_IN_ROOT = 15,   // hide s1: /dev/null over files, read-only tmpfs over dirs
  OP_READONLY_IN_ROOT = 16,// bind s1 onto itself read-only
  OP_CONSOLE = 17,        // pty from root dev/pts/ptmx; slave to SLOT_PTY and
                          // bound on dev/console; master sent on slot a; size b x c
  OP_PIVOT_ROOT = 18,     // make SLOT_ROOT the root (flags & PIVOT_NO_PIVOT: MS_MOVE+chroot)
  OP_SETRLIMIT = 19,      // prlimit(0, a, {b, c})
  OP_SETSID = 20,         // setsid(); with a console, make it the controlling tty and stdio
  OP_CAP_BOUNDING = 21,   // drop every capability not in mask a (caps 0..63)
  OP_SETGROUPS = 22,      // setgroups(list l0 of decimal gids)
  OP_SETUSER = 23,        // keepcaps; setresgid(b); setresuid(a)
  OP_CAPSET = 24,         // effective a, permitted b, inheritable c
  OP_CAP_AMBIENT = 25,    // raise each ambient capability in mask a
  OP_UMASK = 26,          // umask(a)
  OP_CHDIR = 27,          // chdir(s0); refuse a cwd outside the root
  OP_SECCOMP = 28,        // load BPF blob s0 (a bytes), flags b; with SECCOMP_FLAG_NEW_LISTENER
                          // the listener fd goes to the runtime (MSG_SECCOMP_FD) and waits for an ack
  OP_RESOLVE_EXEC = 29,   // find s0 in PATH s1 (inside the container) now, so
                          // a missing binary fails create, not start
  OP_WAIT_START = 30,     // report ready, then block reopening SLOT_EXEC_FIFO for writing
  OP_EXEC = 31,           // execve(resolved, l0, l1)
  OP_REPORT_READY = 32,   // report ready without waiting (run, exec)
  OP_DUP2 = 40,           // dup2(a, b): a hook's stdin and output
  OP_LOOPBACK_UP = 41,    // set IFF_UP on lo in our (new) network namespace
  OP_MKDIR_IN_ROOT = 42,  // mkdir -p s1 inside root (a missing cwd, as runc creates it)
};

enum MountFlags : uint32_t {
  MNT_CREATE_DIR = 1u << 0,   // create the destination as a directory
  MNT_CREATE_FILE = 1u << 1,  // create the destination as an empty file
  MNT_BIND = 1u << 2,         // bind (with a remount for flags in c)
  MNT_SOURCE_IN_ROOT = 1u << 3, // source is a path inside the root too
  MNT_IGNORE_ENOENT = 1u << 4,
};

// SECCOMP_FILTER_FLAG_NEW_LISTENER, in OP_SECCOMP's b.
#define SECCOMP_FLAG_NEW_LISTENER (1u << 3)

// Op flag for OP_PIVOT_ROOT.
#define PIVOT_NO_PIVOT 1u
// Op flag for OP_CHDIR: a first try while still root; EACCES leaves the cwd
// to the CHDIR after the user switch (runc tries before and after).
#define CHDIR_AS_ROOT 1u
// Op flag for OP_CONSOLE: an exec'd process gets a pty but leaves the
// container's /dev/console alone.
#define CONSOLE_NO_DEVCONSOLE 1u
// Op flag for OP_SETNS: the namespace fd is in slot b, opened by an earlier
// OP_OPEN_SLOT (a cgroup namespace is joined only after the clone: see
// src/plan/namespaces.ts).
#define SETNS_FROM_SLOT 1u

// MSG_ERROR steps past the ops: op_count + STEP_* (src/lifecycle/create.ts stepError).
#define STEP_INIT_EXEC 0u         // exec of the sealed tsrun-init
#define STEP_CGROUP_PLACEMENT 1u  // the init's cgroup v2 directory, when clone3 could not place it

// Messages from the child on SLOT_SYNC.
enum ChildMsgKind : uint32_t {
  MSG_SYNC = 1,   // reached OP_SYNC (arg = tag); waits for an ack byte
  MSG_READY = 2,  // setup done; waiting for start (or about to exec)
  MSG_ERROR = 3,  // op `step` failed with `err`
  MSG_PID = 4,    // intermediate: the init's pid is `arg`
  MSG_SECCOMP_FD = 5, // carries the seccomp notify fd (SCM_RIGHTS); waits for an ack byte
};

struct ChildMsg {
  uint32_t kind;
  uint32_t step;
  int32_t err;
  int32_t arg;
};
