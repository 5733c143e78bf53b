// The executor runs a plan (plan.h). It knows nothing about N-API or V8 so
// the same code can be linked into a standalone launcher.
//
// Two halves with different rules:
//  - plan_prepare / plan_spawn run in the runtime process: they may allocate.
//  - everything after clone runs in a copy of a multi-threaded process, so it
//    only makes raw syscalls on memory prepared before the clone: no malloc,
//    no stdio, no glibc set*id wrappers (those signal threads that do not
//    exist in the child and would hang).
#pragma once
#include <sys/types.h>
#include "plan.h"

struct PreparedOp {
  PlanOp op;
  const char* s[4];
  char* const* list[2];
  gid_t* gids;   // OP_SETGROUPS
  size_t ngids;
};

struct PreparedPlan {
  PlanHeader header;
  uint8_t* bytes;       // owned copy of the serialized plan
  size_t length;        // of bytes
  int init_exe_fd;      // a sealed copy of tsrun-init the child execs first; -1: run the plan in place
  PreparedOp* ops;
  char** list_storage;  // owned pointer arrays for lists
  int slots[SLOT_COUNT];
  bool cwd_done;        // an OP_CHDIR succeeded (the later one is skipped)
  char exec_path[4096]; // filled by OP_RESOLVE_EXEC in the child
};

// Parses and checks a serialized plan. Returns 0, or -1 with a message in err.
int plan_prepare(const uint8_t* data, size_t len, PreparedPlan* out, char* err, size_t errlen);
void plan_free(PreparedPlan* plan);

// Clones the init (through an intermediate process when the plan asks for
// one). With plan->init_exe_fd the child first execs that binary, which
// re-reads the plan from a memfd; either way the child runs the ops; the parent gets the init's pid and its end of
// the sync socket. With cgroup_fd (a cgroup v2 directory, or -1) a direct
// clone uses clone3(CLONE_INTO_CGROUP) where the kernel has it. On failure
// returns -errno (or -EPROTO when an intermediate op failed, with *failure
// describing it).
pid_t plan_spawn(PreparedPlan* plan, int console_socket, int cgroup_fd, int* sync_fd, ChildMsg* failure);

// In the init binary (native/init-main.cc), after the re-exec: the
// intermediate's part of the plan (joins by path), then the clone of the
// init (into cgroup_fd where possible), which runs the rest. Never returns.
[[noreturn]] void plan_spawner_main(PreparedPlan* plan, int cgroup_fd);

// One message with one descriptor (SCM_RIGHTS), and its receiving side
// (*fd = -1 when none came; received fds are close-on-exec). No allocation:
// safe in the child. Return what sendmsg/recvmsg return.
// The warm launcher's head start (native/launcher.cc): tsrun-init forked and
// exec'd before the plan exists, waiting on a socket (PRESPAWN_ARG SOCK) for
// what plan_spawn's child would have passed it on its command line.
#define PRESPAWN_ARG "--await-plan"
struct Prespawn {
  pid_t pid;  // -1: none (or handed over)
  int sock;
};
// The one message a prespawned tsrun-init receives; SCM_RIGHTS carries the
// plan memfd, the sync socket, then the console socket and the cgroup v2
// directory when present.
struct PrespawnArgs {
  int32_t keep_below;  // [0, keep_below) is stdio and --preserve-fds
  int32_t has_console;
  int32_t has_cgroup;
};
int plan_prespawn(int init_exe_fd, Prespawn* out);
// Closes its socket (it exits) and reaps it.
void plan_prespawn_cancel(Prespawn* pre);
// plan_spawn, using `pre` (consumed) where it can; otherwise as plan_spawn.
pid_t plan_spawn_prespawned(PreparedPlan* plan, Prespawn* pre, int console_socket, int cgroup_fd, int* sync_fd,
                            ChildMsg* failure);

#define FDS_MAX 8
ssize_t fds_send(int sock, const void* data, size_t len, const int* fds, int nfds);
// Up to `max` descriptors land in fds (close-on-exec), their count in *nfds.
ssize_t fds_recv(int sock, void* data, size_t len, int* fds, int max, int* nfds);
ssize_t fd_send(int sock, const void* data, size_t len, int fd);
ssize_t fd_recv(int sock, void* data, size_t len, int* fd);

// Parent side of the sync protocol: optionally acknowledge a MSG_SYNC, then
// wait up to timeout_ms for the next message. Returns 1 with *msg filled,
// 0 on EOF (the child exec'd or died), -ETIMEDOUT or -errno.
int plan_next(int sync_fd, bool ack, int timeout_ms, ChildMsg* msg);
