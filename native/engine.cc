// The engine's side of native/engine_proto.h: Node can neither speak
// SOCK_SEQPACKET nor pass descriptors (SCM_RIGHTS) nor read SO_PEERCRED, so
// these few calls do it (src/engine/wire.ts types them).
#include <napi.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "engine_wire.h"

namespace {

Napi::Error Errno(Napi::Env env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

bool fill_addr(const std::string& path, struct sockaddr_un* addr) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr->sun_path)) return false;
  memcpy(addr->sun_path, path.c_str(), path.size());
  return true;
}

// listen(path) -> fd: the socket only root can connect to (0600 in a 0700 dir).
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  struct sockaddr_un addr;
  if (!fill_addr(path, &addr)) {
    Errno(env, ENAMETOOLONG, "bind " + path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  mode_t old = umask(0177);
  int r = fd < 0 ? -1 : bind(fd, (struct sockaddr*)&addr, sizeof(addr));
  int err = errno;
  umask(old);
  if (r == 0) r = listen(fd, 128);
  if (r < 0) {
    err = errno;
    if (fd >= 0) close(fd);
    Errno(env, err, "listen " + path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// connect(path) -> fd, or -1 when nobody (root) listens there.
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct sockaddr_un addr;
  if (!fill_addr(info[0].As<Napi::String>().Utf8Value(), &addr)) return Napi::Number::New(env, -1);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::Number::New(env, -1);
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (connect(fd, (struct sockaddr*)&addr, sizeof(addr)) < 0 ||
      getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) {
    close(fd);
    return Napi::Number::New(env, -1);
  }
  return Napi::Number::New(env, fd);
}

// accept(listenFd, timeoutMs, hello, initFd?) -> Promise<{fd, pid} | null>: on a
// worker thread, so the engine's event loop runs while it is idle. Peers
// that are not root are refused here (SO_PEERCRED), before a byte is
// exchanged; the others get EM_HELLO with `hello` (the build id), and the
// sealed tsrun-init `initFd` if given, at once,
// from this thread, so the launcher's wait for it does not include waking
// the main thread.
class AcceptWorker : public Napi::AsyncWorker {
 public:
  AcceptWorker(Napi::Env env, int fd, int timeout, std::string hello, int init_fd)
      : Napi::AsyncWorker(env), fd_(fd), timeout_(timeout), init_fd_(init_fd), hello_(std::move(hello)), deferred_(env) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    for (;;) {
      struct pollfd pfd = {fd_, POLLIN, 0};
      int r = poll(&pfd, 1, timeout_);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        err_ = errno;
        return;
      }
      if (r == 0) return;  // idle timeout
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
        if (errno == EINVAL) return;  // stopListening(): the engine is going
        err_ = errno;
        return;
      }
      struct ucred cred;
      socklen_t len = sizeof(cred);
      if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) {
        close(c);
        continue;
      }
      EngineMsg h = {EM_HELLO, 0, 0, 0, 0};
      if (wire_send(c, h, hello_.data(), hello_.size(), init_fd_ >= 0 ? &init_fd_ : nullptr, init_fd_ >= 0 ? 1 : 0) < 0) {
        close(c);  // gone already
        continue;
      }
      conn_ = c;
      pid_ = cred.pid;
      return;
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (err_) {
      deferred_.Reject(Errno(env, err_, "accept").Value());
      return;
    }
    if (conn_ < 0) {
      deferred_.Resolve(env.Null());
      return;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("fd", conn_);
    o.Set("pid", pid_);
    deferred_.Resolve(o);
  }

 private:
  int fd_, timeout_, init_fd_;
  std::string hello_;
  int conn_ = -1, pid_ = 0, err_ = 0;
  Napi::Promise::Deferred deferred_;
};

Napi::Value Accept(const Napi::CallbackInfo& info) {
  int init_fd = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : -1;
  auto* w = new AcceptWorker(info.Env(), info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(),
                             info[2].As<Napi::String>().Utf8Value(), init_fd);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// stopListening(listenFd): wakes an accept() waiting on its worker thread
// (poll reports the shut-down socket readable; accept then fails with
// EINVAL, which ends the wait as "no connection"). process.exit() joins
// libuv's threadpool, so an engine leaving on a signal must do this first or
// hang with the worker still in poll.
Napi::Value StopListening(const Napi::CallbackInfo& info) {
  shutdown(info[0].As<Napi::Number>().Int32Value(), SHUT_RD);
  return info.Env().Undefined();
}

// peerClosed(fd): whether the other end of a connection has closed (or
// reset), without reading: poll with no timeout.
Napi::Value PeerClosed(const Napi::CallbackInfo& info) {
  struct pollfd pfd = {info[0].As<Napi::Number>().Int32Value(), POLLRDHUP, 0};
  int r;
  do { r = poll(&pfd, 1, 0); } while (r < 0 && errno == EINTR);
  return Napi::Boolean::New(info.Env(), r > 0 && (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)));
}

// sameNamespaces(pid, names): whether process pid is in our namespace of
// each kind in names (/proc/<pid>/ns/<name>; device and inode compared, as
// the kernel names a namespace). One call on every command's path, where a
// readlink per namespace from JavaScript cost ~70 us. A kind this kernel
// does not have (neither link exists) counts as the same.
Napi::Value SameNamespaces(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid = info[0].As<Napi::Number>().Int32Value();
  Napi::Array names = info[1].As<Napi::Array>();
  if (pid <= 0) return Napi::Boolean::New(env, false);
  for (uint32_t i = 0; i < names.Length(); i++) {
    std::string name = names.Get(i).As<Napi::String>().Utf8Value();
    std::string ours = "/proc/self/ns/" + name;
    std::string theirs = "/proc/" + std::to_string(pid) + "/ns/" + name;
    struct stat a, b;
    bool have_a = stat(ours.c_str(), &a) == 0;
    bool have_b = stat(theirs.c_str(), &b) == 0;
    if (!have_a && !have_b) continue;
    if (have_a != have_b || a.st_dev != b.st_dev || a.st_ino != b.st_ino) return Napi::Boolean::New(env, false);
  }
  return Napi::Boolean::New(env, true);
}

// send(fd, type, [a, b, c, d], payload?, fds?)
Napi::Value Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  EngineMsg h;
  h.type = info[1].As<Napi::Number>().Uint32Value();
  Napi::Array nums = info[2].As<Napi::Array>();
  int32_t* fields[4] = {&h.a, &h.b, &h.c, &h.d};
  for (uint32_t i = 0; i < 4; i++) *fields[i] = i < nums.Length() ? nums.Get(i).As<Napi::Number>().Int32Value() : 0;
  const char* payload = nullptr;
  size_t len = 0;
  if (info.Length() > 3 && info[3].IsBuffer()) {
    auto b = info[3].As<Napi::Buffer<char>>();
    payload = b.Data();
    len = b.Length();
  }
  std::vector<int> fds;
  if (info.Length() > 4 && info[4].IsArray()) {
    Napi::Array a = info[4].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) fds.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  }
  int r = wire_send(fd, h, payload, len, fds.data(), fds.size());
  if (r < 0) Errno(env, -r, "engine send").ThrowAsJavaScriptException();
  return env.Undefined();
}

// recv(fd, timeoutMs) -> {type, a, b, c, d, payload, fds} | null on EOF.
// Synchronous on purpose: the engine is inside one command, whose steps
// (create's sync points) are synchronous too.
Napi::Value Recv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int timeout = info[1].As<Napi::Number>().Int32Value();
  struct pollfd pfd = {fd, POLLIN, 0};
  int r;
  do { r = poll(&pfd, 1, timeout); } while (r < 0 && errno == EINTR);
  if (r == 0) {
    Errno(env, ETIMEDOUT, "engine receive").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  EngineMsg h;
  std::string payload;
  std::vector<int> got;
  int n = wire_recv(fd, &h, &payload, &got);
  if (n == 0) return env.Null();
  if (n < 0) {
    Errno(env, -n, "engine receive").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array fds = Napi::Array::New(env);
  for (uint32_t i = 0; i < got.size(); i++) fds.Set(i, got[i]);
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", h.type);
  o.Set("a", h.a);
  o.Set("b", h.b);
  o.Set("c", h.c);
  o.Set("d", h.d);
  o.Set("payload", Napi::Buffer<char>::Copy(env, payload.data(), payload.size()));
  o.Set("fds", fds);
  return o;
}

// dup2(from, to): a command's stdio becomes the engine's 0, 1 and 2 while it runs.
Napi::Value Dup2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (dup2(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value()) < 0)
    Errno(env, errno, "dup2").ThrowAsJavaScriptException();
  return env.Undefined();
}

// closeInherited(): closes every descriptor >= 3 without FD_CLOEXEC. Node
// and libuv open all of theirs close-on-exec, so these came from whoever
// started the engine (a test runner's pipe, say), which a daemon must not
// hold open for the rest of its life.
Napi::Value CloseInherited(const Napi::CallbackInfo& info) {
  std::vector<int> fds;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (struct dirent* e = readdir(d)) {
      int fd = atoi(e->d_name);
      if (fd >= 3 && fd != dirfd(d)) fds.push_back(fd);
    }
    closedir(d);
  }
  for (int fd : fds) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0 && !(fl & FD_CLOEXEC)) close(fd);
  }
  return info.Env().Undefined();
}

}  // namespace

Napi::Object EngineExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("listen", Napi::Function::New(env, Listen));
  o.Set("stopListening", Napi::Function::New(env, StopListening));
  o.Set("peerClosed", Napi::Function::New(env, PeerClosed));
  o.Set("sameNamespaces", Napi::Function::New(env, SameNamespaces));
  o.Set("connect", Napi::Function::New(env, Connect));
  o.Set("accept", Napi::Function::New(env, Accept));
  o.Set("send", Napi::Function::New(env, Send));
  o.Set("recv", Napi::Function::New(env, Recv));
  o.Set("dup2", Napi::Function::New(env, Dup2));
  o.Set("closeInherited", Napi::Function::New(env, CloseInherited));
  o.Set("protoVersion", Napi::Number::New(env, ENGINE_PROTO_VERSION));
  return o;
}
