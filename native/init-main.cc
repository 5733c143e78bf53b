// tsrun-init: the program every container init (and exec'd process, and
// hook run in the container) becomes right after clone. The runtime execs it
// from a sealed memfd copy (native/addon.cc), so:
//  - /proc/<pid>/exe of anything tsrun starts in a container is that sealed
//    copy, never a host binary a container could open and overwrite
//    (CVE-2019-5736; runc re-execs a sealed copy of itself for the same
//    reason);
//  - the init no longer shares a copy of the runtime's (Node's) memory, and
//    the clone of the init that an intermediate makes is cheap.
// It is statically linked: nothing is loaded from the host after the exec.
//
//   tsrun-init PLAN_FD SYNC_FD CONSOLE_FD KEEP_BELOW CGROUP_FD
//   tsrun-init --await-plan SOCK   (the same, as descriptors on SOCK: a warm
//                                   launcher starts it before the plan exists)
//
// It runs in the runtime's namespaces as the spawner: the plan is read from
// PLAN_FD (a memfd the runtime filled), the joins by path run here, and the
// init is cloned from here (CLONE_PARENT: still the runtime's child; into
// CGROUP_FD with clone3 where possible) to run the rest of the plan exactly
// as the executor always has (native/executor.cc).
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor.h"

static int number(const char* s) {
  char* end;
  long v = strtol(s, &end, 10);
  return *s && !*end ? (int)v : -2;
}

// Moves a received descriptor out of [0, keep_below), where the container
// would take it for one of its stdio or --preserve-fds.
static int above(int fd, int keep_below) {
  if (fd < 0 || fd >= keep_below) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, keep_below);
  close(fd);
  return moved;
}

// tsrun-init --await-plan SOCK (native/executor.cc plan_prespawn): started
// before the plan existed; the descriptors the command line would name
// arrive on SOCK. EOF (the launcher had nothing to spawn): exit quietly.
static bool await_plan(int sock, int* plan_fd, int* sync, int* console, int* cgroup) {
  PrespawnArgs a;
  int fds[4];
  int n = 0;
  ssize_t r = fds_recv(sock, &a, sizeof(a), fds, 4, &n);
  close(sock);
  int want = r == (ssize_t)sizeof(a) ? 2 + (a.has_console ? 1 : 0) + (a.has_cgroup ? 1 : 0) : -1;
  if (n != want) {
    for (int i = 0; i < n; i++) close(fds[i]);
    return false;
  }
  int i = 0;
  *plan_fd = above(fds[i++], a.keep_below);
  *sync = above(fds[i++], a.keep_below);
  *console = a.has_console ? above(fds[i++], a.keep_below) : -1;
  *cgroup = a.has_cgroup ? above(fds[i++], a.keep_below) : -1;
  return *plan_fd >= 0 && *sync >= 0 && (!a.has_console || *console >= 0) && (!a.has_cgroup || *cgroup >= 0);
}

int main(int argc, char** argv) {
  // execve made us dumpable again: undo it before anything else.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  int plan_fd, sync, console, cgroup;
  if (argc == 3 && strcmp(argv[1], PRESPAWN_ARG) == 0) {
    int sock = number(argv[2]);
    if (sock < 0 || !await_plan(sock, &plan_fd, &sync, &console, &cgroup)) return 0;
  } else if (argc == 6) {
    plan_fd = number(argv[1]), sync = number(argv[2]), console = number(argv[3]), cgroup = number(argv[5]);
  } else {
    return 127;
  }
  struct stat st;
  uint8_t* bytes = nullptr;
  size_t len = 0;
  int err = 0;
  if (plan_fd < 0 || fstat(plan_fd, &st) < 0) err = errno ? errno : EBADF;
  if (!err) {
    len = (size_t)st.st_size;
    bytes = (uint8_t*)malloc(len ? len : 1);
    size_t off = 0;
    while (bytes && off < len) {
      ssize_t r = pread(plan_fd, bytes + off, len - off, (off_t)off);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) { err = r < 0 ? errno : EIO; break; }
      off += (size_t)r;
    }
    if (!bytes) err = ENOMEM;
    close(plan_fd);
  }
  PreparedPlan plan;
  char msg[256];
  if (!err && plan_prepare(bytes, len, &plan, msg, sizeof(msg)) < 0) err = EINVAL;
  free(bytes);
  if (err) {
    // Reported as a failure of the step after the last op ("start the
    // container init"): there is no plan to name a step from.
    ChildMsg m = {MSG_ERROR, 0xfffffffeu, err, 0};
    if (sync >= 0) (void)!send(sync, &m, sizeof(m), MSG_NOSIGNAL);
    return 1;
  }
  // They had to survive our exec; they must not survive the container's
  // (the fds OP_DUP2 reads too: only their copies are the process's).
  if (sync >= 0) fcntl(sync, F_SETFD, FD_CLOEXEC);
  if (console >= 0) fcntl(console, F_SETFD, FD_CLOEXEC);
  if (cgroup >= 0) fcntl(cgroup, F_SETFD, FD_CLOEXEC);
  for (uint32_t i = 0; i < plan.header.op_count; i++)
    if (plan.ops[i].op.code == OP_DUP2 && plan.ops[i].op.a >= 3) fcntl((int)plan.ops[i].op.a, F_SETFD, FD_CLOEXEC);
  plan.slots[SLOT_SYNC] = sync;
  plan.slots[SLOT_CONSOLE_SOCKET] = console;
  plan_spawner_main(&plan, cgroup < 0 ? -1 : cgroup);
}
