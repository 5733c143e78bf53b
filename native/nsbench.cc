// `tsrun bench`: the timing loops of the namespace-setup benchmark, in C++ so
// that the harness (V8, N-API) stays out of the measured interval. TypeScript
// (src/bench/ns.ts) chooses the cases, runs them in chunks (for progress) and
// does the statistics; each call here runs `count` cycles back to back.
//
// One cycle: clock -> clone(flags) -> the child does its step and _exit(0)s
// -> waitpid -> clock. By default the child shares our memory and descriptor
// table (CLONE_VM | CLONE_FILES, with CLONE_VFORK where the parent has nothing
// to do meanwhile) and runs on a stack of its own, so the cycle costs the
// namespaces and not copies of Node's page tables and descriptors (~20 fds);
// `fork: true` clones fork-like, exactly as the executor does.
// bench/ns-floor.c runs the same cycles from a small C process.
//
// The child follows the executor's rules (executor.h): raw syscalls only on
// memory prepared before the clone; it reports its step's own duration and
// any failure through a MAP_SHARED page.
#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

namespace {

enum BenchStep : int {
  STEP_NONE = 0,     // namespaces only
  STEP_PIVOT = 1,    // pivot_root into `path` (bind-mounted onto itself first, untimed)
  STEP_MOUNT = 2,    // mount(source, path, fstype, mountFlags, data)
  STEP_SECCOMP = 3,  // seccomp(SECCOMP_SET_MODE_FILTER, seccompFlags, bpf)
  STEP_CGROUP = 4,   // parent: mkdir a leaf in each cgroup dir, write files, join the child
  STEP_IDMAP = 5,    // parent: write the child's uid_map and gid_map
};

struct Shared {
  int64_t step_ns;
  int err;
  const char* where;
};

struct CgroupDir {
  std::string leaf;                                   // absolute path of the leaf to create
  std::vector<std::pair<std::string, std::string>> files;  // written after mkdir, before joining
  std::string procs;                                  // leaf + "/cgroup.procs"
};

struct Case {
  uint64_t clone_flags = 0;
  int unshare_flags = 0;
  int step = STEP_NONE;
  bool fork_like = false;
  std::string path, source, fstype, data;
  unsigned long mount_flags = 0;
  std::vector<uint8_t> bpf;
  unsigned seccomp_flags = 0;
  std::vector<CgroupDir> cgroups;
  std::string uid_map, gid_map;
  // prepared before the loop
  Shared* shared = nullptr;
  int gate[2] = {-1, -1};  // the parent releases a waiting child (cgroup, idmap)
};

inline int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

[[noreturn]] void child_fail(Case* c, const char* where) {
  c->shared->err = errno ? errno : EINVAL;
  c->shared->where = where;
  _exit(1);
}

int do_pivot(Case* c) {
  // Untimed preparation, as the executor's earlier ops do it: a private
  // propagation and the rootfs bind-mounted onto itself (pivot_root wants a mount).
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) child_fail(c, "make / private");
  if (mount(c->path.c_str(), c->path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0) child_fail(c, "bind rootfs");
  int root = open(c->path.c_str(), O_DIRECTORY | O_PATH | O_CLOEXEC);
  if (root < 0) child_fail(c, "open rootfs");
  int64_t t0 = now_ns();
  // executor.cc do_pivot_root
  if (fchdir(root) < 0) child_fail(c, "fchdir rootfs");
  int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (oldroot < 0) child_fail(c, "open /");
  if (syscall(SYS_pivot_root, ".", ".") < 0) child_fail(c, "pivot_root");
  if (fchdir(oldroot) < 0) child_fail(c, "fchdir old root");
  close(oldroot);
  if (mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0) child_fail(c, "make old root slave");
  if (umount2(".", MNT_DETACH) < 0) child_fail(c, "detach old root");
  if (chdir("/") < 0) child_fail(c, "chdir /");
  c->shared->step_ns = now_ns() - t0;
  close(root);  // the descriptor table is the parent's (CLONE_FILES)
  return 0;
}

int child_main(void* arg) {
  Case* c = (Case*)arg;
  if (c->unshare_flags && unshare(c->unshare_flags) < 0) child_fail(c, "unshare");
  if (c->gate[0] >= 0) {
    char b;
    ssize_t r;
    do { r = read(c->gate[0], &b, 1); } while (r < 0 && errno == EINTR);
    if (r != 1) child_fail(c, "wait for the parent");
  }
  switch (c->step) {
    case STEP_PIVOT:
      do_pivot(c);
      break;
    case STEP_MOUNT: {
      if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) child_fail(c, "make / private");
      int64_t t0 = now_ns();
      if (mount(c->source.c_str(), c->path.c_str(), c->fstype.c_str(), c->mount_flags,
                c->data.empty() ? nullptr : c->data.c_str()) < 0)
        child_fail(c, "mount");
      c->shared->step_ns = now_ns() - t0;
      break;
    }
    case STEP_SECCOMP: {
      struct {
        unsigned short len;
        const void* filter;
      } prog = {(unsigned short)(c->bpf.size() / 8), c->bpf.data()};
      int64_t t0 = now_ns();
      if (syscall(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, c->seccomp_flags, &prog) < 0) child_fail(c, "seccomp");
      c->shared->step_ns = now_ns() - t0;
      break;
    }
    default:
      break;
  }
  _exit(0);
}

Napi::Error Errno(Napi::Env env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

int write_file(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t w = write(fd, text.data(), text.size());
  int e = errno;
  close(fd);
  if (w < 0) { errno = e; return -1; }
  if ((size_t)w != text.size()) { errno = EIO; return -1; }
  return 0;
}

void remove_leaves(const Case& c) {
  for (auto it = c.cgroups.rbegin(); it != c.cgroups.rend(); ++it) {
    // A v1 hierarchy may still count the reaped child for a moment.
    for (int i = 0; i < 200 && rmdir(it->leaf.c_str()) < 0 && errno == EBUSY; i++) usleep(100);
  }
}

// The parent's part of a cycle that waits for it: returns the step's
// nanoseconds, or -1 with errno and *where set.
int64_t parent_step(Case& c, pid_t pid, const char** where) {
  char pidbuf[16];
  snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
  std::string procdir = "/proc/" + std::string(pidbuf);
  std::string uid_path = procdir + "/uid_map", gid_path = procdir + "/gid_map";
  int64_t t0 = now_ns();
  if (c.step == STEP_CGROUP) {
    for (auto& d : c.cgroups) {
      if (mkdir(d.leaf.c_str(), 0755) < 0) { *where = "mkdir cgroup"; return -1; }
      for (auto& f : d.files)
        if (write_file(d.leaf + "/" + f.first, f.second) < 0) { *where = "write cgroup file"; return -1; }
      if (write_file(d.procs, pidbuf) < 0) { *where = "join cgroup"; return -1; }
    }
  } else if (c.step == STEP_IDMAP) {
    if (!c.uid_map.empty() && write_file(uid_path, c.uid_map) < 0) { *where = "write uid_map"; return -1; }
    if (!c.gid_map.empty() && write_file(gid_path, c.gid_map) < 0) { *where = "write gid_map"; return -1; }
  }
  return now_ns() - t0;
}

Case ParseCase(const Napi::Object& o) {
  Case c;
  auto num = [&](const char* k, double def) -> double {
    Napi::Value v = o.Get(k);
    return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : def;
  };
  auto str = [&](const char* k) -> std::string {
    Napi::Value v = o.Get(k);
    return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
  };
  c.clone_flags = (uint64_t)num("cloneFlags", 0);
  c.unshare_flags = (int)num("unshareFlags", 0);
  c.step = (int)num("step", STEP_NONE);
  c.fork_like = o.Get("fork").ToBoolean().Value();
  c.path = str("path");
  c.source = str("source");
  c.fstype = str("fstype");
  c.data = str("data");
  c.mount_flags = (unsigned long)num("mountFlags", 0);
  c.seccomp_flags = (unsigned)num("seccompFlags", 0);
  c.uid_map = str("uidMap");
  c.gid_map = str("gidMap");
  Napi::Value bpf = o.Get("bpf");
  if (bpf.IsBuffer()) {
    auto b = bpf.As<Napi::Buffer<uint8_t>>();
    c.bpf.assign(b.Data(), b.Data() + b.Length());
  }
  Napi::Value cg = o.Get("cgroups");
  if (cg.IsArray()) {
    Napi::Array a = cg.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Object d = a.Get(i).As<Napi::Object>();
      CgroupDir dir;
      dir.leaf = d.Get("leaf").As<Napi::String>().Utf8Value();
      dir.procs = dir.leaf + "/cgroup.procs";
      Napi::Value files = d.Get("files");
      if (files.IsArray()) {
        Napi::Array fa = files.As<Napi::Array>();
        for (uint32_t j = 0; j < fa.Length(); j++) {
          Napi::Array kv = fa.Get(j).As<Napi::Array>();
          dir.files.emplace_back(kv.Get((uint32_t)0).As<Napi::String>().Utf8Value(),
                                 kv.Get((uint32_t)1).As<Napi::String>().Utf8Value());
        }
      }
      c.cgroups.push_back(std::move(dir));
    }
  }
  return c;
}

constexpr size_t kStackSize = 256 * 1024;

// cycles(case, cycleOut: Float64Array, stepOut: Float64Array | null, offset, count)
// Fills cycleOut[offset + i] (and stepOut) with microseconds.
Napi::Value Cycles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Case c = ParseCase(info[0].As<Napi::Object>());
  auto cycles = info[1].As<Napi::Float64Array>();
  bool has_steps = info[2].IsTypedArray();
  Napi::Float64Array steps = has_steps ? info[2].As<Napi::Float64Array>() : Napi::Float64Array();
  uint32_t offset = info[3].As<Napi::Number>().Uint32Value();
  uint32_t count = info[4].As<Napi::Number>().Uint32Value();
  if ((size_t)offset + count > cycles.ElementLength() || (has_steps && (size_t)offset + count > steps.ElementLength())) {
    Napi::RangeError::New(env, "bench: output array too short").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const bool waits = c.step == STEP_CGROUP || c.step == STEP_IDMAP;
  void* shared = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  void* stack = c.fork_like ? MAP_FAILED : mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE,
                                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (shared == MAP_FAILED || (!c.fork_like && stack == MAP_FAILED)) {
    int e = errno;
    if (shared != MAP_FAILED) munmap(shared, 4096);
    Errno(env, e, "bench: mmap").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  c.shared = (Shared*)shared;
  std::string error;
  int error_errno = 0;
  for (uint32_t i = 0; i < count && error.empty(); i++) {
    c.shared->step_ns = 0;
    c.shared->err = 0;
    c.shared->where = nullptr;
    if (waits && pipe2(c.gate, O_CLOEXEC) < 0) {
      error = "pipe";
      error_errno = errno;
      break;
    }
    // No exit signal: waitpid(__WALL) reaps the child, and a SIGCHLD handler
    // (libuv installs one once Node has spawned anything) stays out of the cycle.
    uint64_t flags = c.clone_flags;
    int64_t t0 = now_ns();
    pid_t pid;
    if (c.fork_like) {
      pid = (pid_t)syscall(SYS_clone, (unsigned long)flags, nullptr, nullptr, nullptr, nullptr);
      if (pid == 0) child_main(&c);
    } else {
      if (!waits) flags |= CLONE_VFORK;
      pid = clone(child_main, (char*)stack + kStackSize, (int)(flags | CLONE_VM | CLONE_FILES), &c);
    }
    if (pid < 0) {
      error = "clone";
      error_errno = errno;
      if (waits) { close(c.gate[0]); close(c.gate[1]); }
      break;
    }
    int64_t step_ns = 0;
    const char* where = nullptr;
    int step_errno = 0;
    if (waits) {
      step_ns = parent_step(c, pid, &where);
      if (step_ns < 0) step_errno = errno;
      if (step_ns < 0) kill(pid, SIGKILL);
      else (void)!write(c.gate[1], "1", 1);
    }
    int status = 0;
    while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {}
    int64_t t1 = now_ns();
    if (waits) {
      // Only now: the child shares our descriptor table and our memory (CLONE_FILES, CLONE_VM).
      close(c.gate[0]);
      close(c.gate[1]);
      c.gate[0] = c.gate[1] = -1;
    }
    if (c.step == STEP_CGROUP) remove_leaves(c);
    if (where) {
      error = where;
      error_errno = step_errno;
    } else if (c.shared->err) {
      error = c.shared->where ? c.shared->where : "child";
      error_errno = c.shared->err;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      error = WIFSIGNALED(status) ? "child killed by signal " + std::to_string(WTERMSIG(status)) : "child failed";
      error_errno = EIO;
    } else {
      if (!waits) step_ns = c.shared->step_ns;
      cycles[offset + i] = (double)(t1 - t0) / 1000.0;
      if (has_steps) steps[offset + i] = (double)step_ns / 1000.0;
    }
  }
  munmap(shared, 4096);
  if (stack != MAP_FAILED) munmap(stack, kStackSize);
  if (!error.empty()) {
    Errno(env, error_errno, "bench: " + error).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return env.Undefined();
}

// pinCpu(cpu): sched_setaffinity of the calling (main) thread; clones inherit it.
Napi::Value PinCpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int cpu = info[0].As<Napi::Number>().Int32Value();
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0 || cpu >= CPU_SETSIZE) {
    Errno(env, EINVAL, "sched_setaffinity").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) < 0) Errno(env, errno, "sched_setaffinity").ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace

// Declared in addon.cc, which exports it as `bench`.
Napi::Object NsBenchExports(Napi::Env env);

Napi::Object NsBenchExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("cycles", Napi::Function::New(env, Cycles));
  o.Set("pinCpu", Napi::Function::New(env, PinCpu));
  o.Set("steps", [&] {
    Napi::Object s = Napi::Object::New(env);
    s.Set("none", (int)STEP_NONE);
    s.Set("pivot", (int)STEP_PIVOT);
    s.Set("mount", (int)STEP_MOUNT);
    s.Set("seccomp", (int)STEP_SECCOMP);
    s.Set("cgroup", (int)STEP_CGROUP);
    s.Set("idmap", (int)STEP_IDMAP);
    return s;
  }());
  return o;
}
