// The N-API face of the executor: a handful of synchronous calls plus an
// asynchronous waitpid. All policy is in TypeScript (src/native.ts types it).
#include <napi.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <linux/bpf.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "executor.h"
#include "seccomp.h"

// native/nsbench.cc: the timing loops of `tsrun bench`.
Napi::Object NsBenchExports(Napi::Env env);
// native/engine.cc: the resident engine's socket (src/engine/).
Napi::Object EngineExports(Napi::Env env);
// The image unpacker's file primitives: the block at the end of this file.
void ImageFsRegister(Napi::Env env, Napi::Object exports);

namespace {

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

Napi::Object MsgToObject(Napi::Env env, const ChildMsg& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", m.kind);
  o.Set("step", m.step);
  o.Set("errno", m.err);
  o.Set("arg", m.arg);
  return o;
}

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

// The init binary every spawned child execs first (native/init-main.cc),
// as a sealed memfd: nothing can write it, and it is no file on the host
// (CVE-2019-5736; runc runs its init from a sealed copy of itself too).
// Made once per runtime process from tsrun-init next to this addon.
int InitExeFd(std::string* why) {
  static int fd = -1;
  if (fd >= 0) return fd;
  Dl_info info;
  if (!dladdr((void*)&InitExeFd, &info) || !info.dli_fname) {
    *why = "cannot locate the addon";
    return -1;
  }
  std::string path(info.dli_fname);
  path = path.substr(0, path.rfind('/') + 1) + "tsrun-init";
  int src = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (src < 0 || fstat(src, &st) < 0) {
    *why = path + ": " + strerror(errno) + " (rebuild: npm run build:native)";
    if (src >= 0) close(src);
    return -1;
  }
  int m = (int)syscall(SYS_memfd_create, "tsrun-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (m < 0 && errno == EINVAL) m = (int)syscall(SYS_memfd_create, "tsrun-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  off_t off = 0;
  bool ok = m >= 0;
  while (ok && off < st.st_size) {
    ssize_t n = sendfile(m, src, &off, (size_t)(st.st_size - off));
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
  }
  int e = errno;
  close(src);
  if (ok && fcntl(m, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
    ok = false;
    e = errno;
  }
  if (!ok) {
    if (m >= 0) close(m);
    *why = std::string("sealed copy of ") + path + ": " + strerror(e);
    return -1;
  }
  fd = m;
  return fd;
}

// initExeFd() -> fd: the sealed tsrun-init, for a warm engine to hand to
// the launcher that spawns (src/engine/host.ts) instead of copying it there.
Napi::Value InitExe(const Napi::CallbackInfo& info) {
  std::string why;
  int fd = InitExeFd(&why);
  if (fd < 0) Napi::Error::New(info.Env(), "container init binary: " + why).ThrowAsJavaScriptException();
  return Napi::Number::New(info.Env(), fd);
}

// spawn(plan: Buffer, consoleSocket: number) -> { pid, sync }
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto buf = info[0].As<Napi::Buffer<uint8_t>>();
  int console = info[1].As<Napi::Number>().Int32Value();
  int cgroup = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : -1;
  PreparedPlan plan;
  char err[256];
  if (plan_prepare(buf.Data(), buf.Length(), &plan, err, sizeof(err)) < 0) {
    Napi::Error::New(env, std::string("invalid plan: ") + err).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string why;
  plan.init_exe_fd = InitExeFd(&why);
  if (plan.init_exe_fd < 0) {
    plan_free(&plan);
    Napi::Error::New(env, "container init binary: " + why).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int sync = -1;
  ChildMsg failure = {};
  pid_t pid = plan_spawn(&plan, console, cgroup, &sync, &failure);
  plan_free(&plan);
  if (pid == -EPROTO && failure.kind == MSG_ERROR) {
    // An op of the intermediate failed: report it like any step failure.
    Napi::Object o = Napi::Object::New(env);
    o.Set("failure", MsgToObject(env, failure));
    return o;
  }
  if (pid < 0) {
    ErrnoError(env, -pid, "clone").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", pid);
  o.Set("sync", sync);
  return o;
}

// next(sync, ack, timeoutMs) -> message | null (EOF); throws on timeout/errors
Napi::Value Next(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  bool ack = info[1].As<Napi::Boolean>().Value();
  int timeout = info[2].As<Napi::Number>().Int32Value();
  ChildMsg m;
  int r = plan_next(fd, ack, timeout, &m);
  if (r < 0) {
    ErrnoError(env, -r, "waiting for container init").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (r == 0) return env.Null();
  return MsgToObject(env, m);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Value StatusToObject(Napi::Env env, int status) {
  Napi::Object o = Napi::Object::New(env);
  if (WIFEXITED(status)) {
    o.Set("code", WEXITSTATUS(status));
    o.Set("signal", env.Null());
  } else {
    o.Set("code", env.Null());
    o.Set("signal", WTERMSIG(status));
  }
  return o;
}

class WaitWorker : public Napi::AsyncWorker {
 public:
  WaitWorker(Napi::Env env, pid_t pid) : Napi::AsyncWorker(env), pid_(pid), deferred_(env) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    int r;
    do { r = waitpid(pid_, &status_, __WALL); } while (r < 0 && errno == EINTR);
    if (r < 0) err_ = errno;
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (err_) deferred_.Reject(ErrnoError(env, err_, "waitpid").Value());
    else deferred_.Resolve(StatusToObject(env, status_));
  }

 private:
  pid_t pid_;
  int status_ = 0;
  int err_ = 0;
  Napi::Promise::Deferred deferred_;
};

// waitPid(pid) -> Promise<{code, signal}>: waitpid on a libuv worker thread so
// the main thread stays free to forward signals.
Napi::Value WaitPid(const Napi::CallbackInfo& info) {
  auto* w = new WaitWorker(info.Env(), info[0].As<Napi::Number>().Int32Value());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// tryWait(pid) -> {code, signal} | null while it runs
Napi::Value TryWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int status;
  pid_t r = waitpid(info[0].As<Napi::Number>().Int32Value(), &status, WNOHANG | __WALL);
  if (r < 0) {
    ErrnoError(env, errno, "waitpid").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (r == 0) return env.Null();
  return StatusToObject(env, status);
}

// connectUnix(path) -> fd, for --console-socket (synchronous on purpose: it
// is handed straight to the init).
Napi::Value ConnectUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    ErrnoError(env, ENAMETOOLONG, "connect " + path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  memcpy(addr.sun_path, path.c_str(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr*)&addr, sizeof(addr)) < 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    ErrnoError(env, e, "connect " + path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// mkfifo(path, mode): the exec fifo `start` opens to release the init.
Napi::Value MkFifo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (mkfifo(path.c_str(), (mode_t)info[1].As<Napi::Number>().Uint32Value()) < 0)
    ErrnoError(env, errno, "mkfifo " + path).ThrowAsJavaScriptException();
  return env.Undefined();
}

// exchange(a, b): swaps two paths atomically (renameat2 RENAME_EXCHANGE).
// false where it cannot be done: b does not exist yet, or the kernel or the
// filesystem has no exchange (ENOSYS, EINVAL); the caller then renames.
Napi::Value Exchange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string a = info[0].As<Napi::String>().Utf8Value();
  std::string b = info[1].As<Napi::String>().Utf8Value();
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
  if (syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0)
    return Napi::Boolean::New(env, true);
  if (errno == ENOENT || errno == EINVAL || errno == ENOSYS) return Napi::Boolean::New(env, false);
  ErrnoError(env, errno, "exchange " + a + " and " + b).ThrowAsJavaScriptException();
  return env.Undefined();
}

// socketpair() -> [a, b]: the console channel of `run`/`exec` with a
// terminal and no --console-socket (the init sends the pty master on b).
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    ErrnoError(env, errno, "socketpair").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set((uint32_t)0, sv[0]);
  a.Set((uint32_t)1, sv[1]);
  return a;
}

// recvFd(sock) -> fd: the one descriptor of an SCM_RIGHTS message.
Napi::Value RecvFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = info[0].As<Napi::Number>().Int32Value();
  char data[256];
  int fd;
  ssize_t n = fd_recv(sock, data, sizeof(data), &fd);
  if (n <= 0 || fd < 0) {
    if (fd >= 0) close(fd);
    ErrnoError(env, n < 0 ? errno : EBADMSG, "receive pty").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// dup(fd) -> a second descriptor (close-on-exec) for the same open file.
Napi::Value Dup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) {
    ErrnoError(env, errno, "dup").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// sendFd(sock, data: Buffer, fd): one message with one descriptor
// (SCM_RIGHTS), as the seccomp listener protocol of the runtime spec wants.
Napi::Value SendFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = info[0].As<Napi::Number>().Int32Value();
  auto data = info[1].As<Napi::Buffer<uint8_t>>();
  int fd = info[2].As<Napi::Number>().Int32Value();
  ssize_t n = fd_send(sock, data.Data(), data.Length(), fd);
  if (n < 0) ErrnoError(env, errno, "sendmsg").ThrowAsJavaScriptException();
  else if ((size_t)n != data.Length()) ErrnoError(env, EMSGSIZE, "sendmsg").ThrowAsJavaScriptException();
  return env.Undefined();
}

// setWinsize(fd, rows, cols): propagate the caller's terminal size.
Napi::Value SetWinsize(const Napi::CallbackInfo& info) {
  struct winsize ws;
  memset(&ws, 0, sizeof(ws));
  ws.ws_row = (unsigned short)info[1].As<Napi::Number>().Uint32Value();
  ws.ws_col = (unsigned short)info[2].As<Napi::Number>().Uint32Value();
  ioctl(info[0].As<Napi::Number>().Int32Value(), TIOCSWINSZ, &ws);
  return info.Env().Undefined();
}

// exitNow(code): _exit(2), the CLI's last act (src/bench/exit.ts) once its
// output is written, which it always is synchronously. Node's own exit first
// stops its platform's worker threads, shuts libuv down and runs static
// destructors: ~1 ms of a cold command here, for a process about to vanish.
Napi::Value ExitNow(const Napi::CallbackInfo& info) {
  _exit(info[0].As<Napi::Number>().Int32Value() & 0xff);
}

Napi::Value StrError(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), strerror(info[0].As<Napi::Number>().Int32Value()));
}

// attachDeviceFilter(cgroupDir, insns, license): loads a BPF_PROG_TYPE_CGROUP_DEVICE
// program (compiled in src/cgroups/devices.ts) and attaches it to a cgroup v2
// directory with BPF_F_ALLOW_MULTI, as runc does. The attachment holds the
// program; it goes away with the cgroup.
Napi::Value AttachDeviceFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  auto insns = info[1].As<Napi::Buffer<uint8_t>>();
  std::string license = info[2].As<Napi::String>().Utf8Value();
  if (insns.Length() == 0 || insns.Length() % sizeof(struct bpf_insn) != 0) {
    Napi::Error::New(env, "invalid BPF program length").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insn_cnt = insns.Length() / sizeof(struct bpf_insn);
  attr.insns = (uint64_t)(uintptr_t)insns.Data();
  attr.license = (uint64_t)(uintptr_t)license.c_str();
  int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
  if (prog < 0) {
    int err = errno;
    // Load again with the verifier's log, for a message that says why.
    std::string log(16384, '\0');
    attr.log_level = 1;
    attr.log_size = log.size();
    attr.log_buf = (uint64_t)(uintptr_t)log.data();
    int again = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
    if (again >= 0) close(again);
    log.resize(strnlen(log.c_str(), log.size()));
    ErrnoError(env, err, "bpf(BPF_PROG_LOAD)" + (log.empty() ? std::string() : " [" + log + "]"))
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    close(prog);
    ErrnoError(env, err, "open " + dir).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  memset(&attr, 0, sizeof(attr));
  attr.target_fd = fd;
  attr.attach_bpf_fd = prog;
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  int r = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof(attr));
  int err = errno;
  close(fd);
  close(prog);
  if (r < 0) ErrnoError(env, err, "bpf(BPF_PROG_ATTACH)").ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("spawn", Napi::Function::New(env, Spawn));
  exports.Set("next", Napi::Function::New(env, Next));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("waitPid", Napi::Function::New(env, WaitPid));
  exports.Set("tryWait", Napi::Function::New(env, TryWait));
  exports.Set("connectUnix", Napi::Function::New(env, ConnectUnix));
  exports.Set("mkfifo", Napi::Function::New(env, MkFifo));
  exports.Set("exchange", Napi::Function::New(env, Exchange));
  exports.Set("strerror", Napi::Function::New(env, StrError));
  exports.Set("exitNow", Napi::Function::New(env, ExitNow));  // src/bench/exit.ts
  exports.Set("socketPair", Napi::Function::New(env, SocketPair));
  exports.Set("recvFd", Napi::Function::New(env, RecvFd));
  exports.Set("dup", Napi::Function::New(env, Dup));
  exports.Set("sendFd", Napi::Function::New(env, SendFd));
  exports.Set("setWinsize", Napi::Function::New(env, SetWinsize));
  exports.Set("seccomp", SeccompExports(env));  // native/seccomp.h
  exports.Set("bench", NsBenchExports(env));  // native/nsbench.cc (tsrun bench)
  exports.Set("attachDeviceFilter", Napi::Function::New(env, AttachDeviceFilter));  // src/cgroups/devices.ts
  exports.Set("planVersion", Napi::Number::New(env, TSRUN_PLAN_VERSION));
  exports.Set("engine", EngineExports(env));  // native/engine.cc (src/engine/)
  exports.Set("initExeFd", Napi::Function::New(env, InitExe));  // src/engine/host.ts
  ImageFsRegister(env, exports);  // mknod, xattrs: end of this file
  return exports;
}

}  // namespace

NODE_API_MODULE(tsrun, Init)

// ===== image unpacking: mknod and xattrs (src/shim/image/unpack.ts) =====
// Node has neither mknod nor the xattr calls. All synchronous, all the l*
// variants: the unpacker never follows a symlink it did not create itself.
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <vector>

namespace {

Napi::Error ImageFsError(Napi::Env env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

// mknod(path, mode, dev): mode carries the type (S_IFCHR, S_IFBLK, S_IFIFO).
Napi::Value ImageMknod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  mode_t mode = (mode_t)info[1].As<Napi::Number>().Uint32Value();
  dev_t dev = (dev_t)info[2].As<Napi::Number>().Int64Value();
  if (mknod(path.c_str(), mode, dev) < 0) ImageFsError(env, errno, "mknod " + path).ThrowAsJavaScriptException();
  return env.Undefined();
}

// lsetxattr(path, name, value: Buffer)
Napi::Value ImageLsetxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  Napi::Buffer<char> value = info[2].As<Napi::Buffer<char>>();
  if (lsetxattr(path.c_str(), name.c_str(), value.Data(), value.Length(), 0) < 0)
    ImageFsError(env, errno, "lsetxattr " + name + " " + path).ThrowAsJavaScriptException();
  return env.Undefined();
}

// llistxattr(path) -> string[]
Napi::Value ImageLlistxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::vector<char> buf;
  ssize_t n;
  for (;;) {  // the list can grow between the size query and the read
    n = llistxattr(path.c_str(), nullptr, 0);
    if (n >= 0) {
      buf.resize(n + 1);
      n = llistxattr(path.c_str(), buf.data(), buf.size());
    }
    if (n >= 0 || errno != ERANGE) break;
  }
  if (n < 0) {
    ImageFsError(env, errno, "llistxattr " + path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array out = Napi::Array::New(env);
  uint32_t k = 0;
  for (ssize_t i = 0; i < n;) {
    size_t len = strnlen(buf.data() + i, n - i);
    if (len) out.Set(k++, Napi::String::New(env, buf.data() + i, len));
    i += len + 1;
  }
  return out;
}

// lgetxattr(path, name) -> Buffer
Napi::Value ImageLgetxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  std::vector<char> buf;
  ssize_t n;
  for (;;) {
    n = lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (n >= 0) {
      buf.resize(n + 1);
      n = lgetxattr(path.c_str(), name.c_str(), buf.data(), buf.size());
    }
    if (n >= 0 || errno != ERANGE) break;
  }
  if (n < 0) {
    ImageFsError(env, errno, "lgetxattr " + name + " " + path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Buffer<char>::Copy(env, buf.data(), n);
}

}  // namespace

void ImageFsRegister(Napi::Env env, Napi::Object exports) {
  exports.Set("mknod", Napi::Function::New(env, ImageMknod));
  exports.Set("lsetxattr", Napi::Function::New(env, ImageLsetxattr));
  exports.Set("llistxattr", Napi::Function::New(env, ImageLlistxattr));
  exports.Set("lgetxattr", Napi::Function::New(env, ImageLgetxattr));
}
// ===== end of image unpacking =====
