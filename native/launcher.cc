// bin/tsrun: the native launcher.
//
// Cold (the default, and whenever anything below is not exactly right): exec
// Node with the bundled CLI, as the old sh launcher did, with nothing
// inherited that slows Node's start (NODE_EXTRA_CA_CERTS makes it read a CA
// bundle, ~50 ms here, though the runtime never opens a TLS connection;
// NODE_OPTIONS could load anything).
//
// Warm: when a resident engine (`tsrun engine start`) serves this --root, the
// command is handed to it over a unix socket (native/engine_proto.h) with our
// stdio descriptors, and its output and exit status come back. For create,
// run and exec the engine sends back the plan and this process runs it with
// the same executor the addon links (native/executor.cc): the container's
// init is our child, as it is runc's, so a subreaper above us adopts it.
// The parent's steps (cgroups, id maps, hooks, state) stay in the engine,
// which gets the init's sync socket once we have spawned it and talks to the
// init directly, as the addon's spawn/next do cold.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "engine_proto.h"
#include "engine_wire.h"
#include "executor.h"

extern char** environ;

namespace {

// How long a launcher waits for a busy engine's HELLO before running the
// command cold. The engine serves one command at a time; a command issued
// while it is busy (a hook calling tsrun during create, say) must not wait
// for the command that is waiting for it.
const int HELLO_TIMEOUT_MS = 200;

// TSRUN_TRACE=1: one line per step on stderr, in ms since the launcher
// started, beside the engine's own lines for the same command
// (src/bench/trace.ts), so the time between them shows too.
bool tracing = false;
struct timespec started_at;

void trace(const char* what, long arg = -1) {
  if (!tracing) return;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  double ms = (now.tv_sec - started_at.tv_sec) * 1e3 + (now.tv_nsec - started_at.tv_nsec) / 1e6;
  char line[160];
  int n = arg >= 0 ? snprintf(line, sizeof(line), "tsrun-trace: launcher %6.2f ms  %s %ld\n", ms, what, arg)
                   : snprintf(line, sizeof(line), "tsrun-trace: launcher %6.2f ms  %s\n", ms, what);
  if (n > 0) (void)!write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

std::string self_dir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  std::string s(buf);
  size_t slash = s.rfind('/');
  return slash == std::string::npos ? "." : s.substr(0, slash);
}

[[noreturn]] void exec_cold(char** args) {
  unsetenv("NODE_EXTRA_CA_CERTS");
  unsetenv("NODE_OPTIONS");
  const char* path = getenv("PATH");
  std::string p = path ? std::string(path) + ":/usr/local/bin:/usr/bin" : ":/usr/local/bin:/usr/bin";
  setenv("PATH", p.c_str(), 1);
  std::string script = self_dir() + "/../dist/tsrun.js";
  std::vector<char*> av;
  av.push_back((char*)"node");
  // Node 20 reads --env-file anywhere on its command line: after `--` it is
  // the CLI's (or a container command's) argument, not Node's.
  av.push_back((char*)"--");
  av.push_back((char*)script.c_str());
  for (char** a = args; *a; a++) av.push_back(*a);
  av.push_back(nullptr);
  execvp("node", av.data());
  fprintf(stderr, "tsrun: cannot run node: %s\n", strerror(errno));
  _exit(127);
}

// The build id the cold path would run: the footer scripts/bundle.mjs ends
// dist/tsrun-main.js with, plus the protocol and plan versions compiled in here.
std::string own_build_id() {
  std::string file = self_dir() + "/../dist/tsrun-main.js";
  int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  struct stat st;
  char buf[128];
  ssize_t n = -1;
  if (fstat(fd, &st) == 0 && st.st_size > 64) {
    off_t off = st.st_size > (off_t)sizeof(buf) ? st.st_size - (off_t)sizeof(buf) : 0;
    n = pread(fd, buf, sizeof(buf), off);
  }
  close(fd);
  if (n <= 0) return "";
  std::string tail(buf, n);
  const std::string mark = "//# tsrun-build ";
  size_t at = tail.rfind(mark);
  if (at == std::string::npos) return "";
  std::string id = tail.substr(at + mark.size());
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id + "/p" + std::to_string(ENGINE_PROTO_VERSION) + "/v" + std::to_string(TSRUN_PLAN_VERSION);
}

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

struct Parsed {
  std::string root = "/run/tsrun";
  std::string command;  // empty: none found or a flag we do not know
  bool ok = true;
};

// Only what choosing an engine needs: --root and the command's name. Flag
// syntax is commander's (src/cli/main.ts); anything unexpected goes cold,
// where commander owns the error message.
Parsed parse(int argc, char** argv) {
  Parsed p;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a.empty() || a[0] != '-') {
      p.command = a;
      return p;
    }
    if (a == "--debug" || a == "--systemd-cgroup") continue;
    bool valued = a == "--root" || a == "--log" || a == "--log-format" || a == "--rootless" || a == "--criu";
    if (valued) {
      if (i + 1 >= argc) break;
      if (a == "--root") p.root = argv[i + 1];
      i++;
      continue;
    }
    if (a.rfind("--root=", 0) == 0) { p.root = a.substr(7); continue; }
    if (a.rfind("--log=", 0) == 0 || a.rfind("--log-format=", 0) == 0) continue;
    break;  // -h, --version, unknown flags
  }
  p.ok = false;
  return p;
}

// A root engines are keyed by: absolute and already normal (path.resolve()
// would not change it), so both sides hash the same bytes.
bool normal_absolute(const std::string& r) {
  if (r.empty() || r[0] != '/') return false;
  if (r.size() > 1 && r.back() == '/') return false;
  return r.find("//") == std::string::npos && r.find("/./") == std::string::npos &&
         r.find("/../") == std::string::npos && !(r.size() >= 2 && r.compare(r.size() - 2, 2, "/.") == 0) &&
         !(r.size() >= 3 && r.compare(r.size() - 3, 3, "/..") == 0);
}

struct Msg {
  EngineMsg h{};
  std::string payload;
  std::vector<int> fds;
};

// One datagram: 1, 0 on EOF, <0 on error.
int recv_msg(int sock, Msg* m) { return wire_recv(sock, &m->h, &m->payload, &m->fds); }

bool send_msg(int sock, const EngineMsg& h, const std::string& payload = "", const int* fds = nullptr, int nfds = 0) {
  return wire_send(sock, h, payload.data(), payload.size(), fds, nfds) == 0;
}

EngineMsg header(uint32_t type, int32_t a = 0, int32_t b = 0, int32_t c = 0, int32_t d = 0) {
  EngineMsg h;
  h.type = type;
  h.a = a;
  h.b = b;
  h.c = c;
  h.d = d;
  return h;
}

std::vector<std::string> split_nul(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find('\0', start);
    if (end == std::string::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// ---- signals: forwarded to the foreground process, as src/lifecycle/foreground.ts does.
const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};
volatile sig_atomic_t fg_pid = 0;
volatile sig_atomic_t pending_mask = 0;

void on_signal(int sig) {
  if (fg_pid > 0) kill(fg_pid, sig);
  else pending_mask = pending_mask | (1 << sig);
}

void forward_signals(bool on) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on ? on_signal : SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int s : FORWARDED) sigaction(s, &sa, nullptr);
  if (!on) pending_mask = 0;
}

int wait_status(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, __WALL) < 0) {
    if (errno != EINTR) return 1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

enum Outcome { COLD, DONE, LOST };

struct Session {
  int sock = -1;
  pid_t child = 0;  // a process we spawned and have not handed over yet
  std::vector<std::string> cleanup;
  pid_t wait_pid = 0;
  std::vector<std::string> after;  // run's delete, once the container is gone
  int after_inline_ms = 0;         // > 0: the engine waits that long for EM_EXITED to run it itself
  int code = 0;
  int init_exe = -1;               // the engine's sealed tsrun-init, from its HELLO
  Prespawn pre = {-1, -1};         // a spawner exec'd while the engine compiles the plan
};

// Connects to the engine for `root` and checks who it is. -1: none to use.
// *init_exe: the sealed tsrun-init its HELLO carries, or -1.
int connect_engine(const std::string& root, const std::string& build, int* init_exe) {
  *init_exe = -1;
  if (geteuid() != 0 || build.empty() || !normal_absolute(root)) return -1;
  char name[100];
  snprintf(name, sizeof(name), "%s/%016llx.sock", ENGINE_SOCKET_DIR, (unsigned long long)fnv1a64(root));
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, name, sizeof(addr.sun_path) - 1);
  int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (sock < 0) return -1;
  if (connect(sock, (struct sockaddr*)&addr, sizeof(addr)) < 0) {
    close(sock);
    return -1;
  }
  // Only an engine running as root may be handed a root's command and stdio.
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) {
    close(sock);
    return -1;
  }
  struct pollfd pfd = {sock, POLLIN, 0};
  int r;
  do { r = poll(&pfd, 1, HELLO_TIMEOUT_MS); } while (r < 0 && errno == EINTR);
  Msg m;
  if (r <= 0 || recv_msg(sock, &m) != 1 || m.h.type != EM_HELLO || m.payload != build) {
    for (int fd : m.fds) close(fd);
    close(sock);
    return -1;
  }
  for (size_t i = 0; i < m.fds.size(); i++) {
    if (i == 0) *init_exe = m.fds[i];
    else close(m.fds[i]);
  }
  trace("engine's hello");
  return sock;
}

std::string join_nul(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) {
    s += x;
    s.push_back('\0');
  }
  return s;
}

// The cold path as a child (for run's delete and a lost command's undo).
int run_cold_child(const std::vector<std::string>& args, bool quiet) {
  pid_t pid = fork();
  if (pid == 0) {
    if (quiet) {
      int null = open("/dev/null", O_RDWR);
      if (null >= 0) {
        dup2(null, 1);
        dup2(null, 2);
      }
    }
    std::vector<char*> av;
    for (auto& a : args) av.push_back((char*)a.c_str());
    av.push_back(nullptr);
    exec_cold(av.data());
  }
  if (pid < 0) return 1;
  return wait_status(pid);
}

// Hands argv to the engine and serves its requests until the command is over.
// `spawns`: a command that will have the engine send a plan (create, run, exec).
Outcome serve(Session& s, const std::string& build, const std::vector<std::string>& args, bool spawns) {
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof(cwd))) return COLD;
  mode_t mask = umask(0);
  umask(mask);
  std::string payload = build;
  payload.push_back('\0');
  payload += cwd;
  payload.push_back('\0');
  payload += join_nul(args);
  int envc = 0;
  for (char** e = environ; *e; e++, envc++) {
    payload += *e;
    payload.push_back('\0');
  }
  int stdio[3] = {0, 1, 2};
  if (!send_msg(s.sock, header(EM_REQUEST, (int32_t)mask, (int32_t)args.size(), envc), payload, stdio, 3)) return COLD;
  trace("request sent");
  // Its exec (~0.4 ms here) now overlaps the engine's work on the plan; a
  // command that ends without one cancels it (try_engine).
  if (spawns && s.init_exe >= 0 && plan_prespawn(s.init_exe, &s.pre) == 0) trace("spawner started, pid", s.pre.pid);
  bool started = false;  // the engine acted on the request
  for (;;) {
    Msg m;
    int r = recv_msg(s.sock, &m);
    if (r != 1) return started ? LOST : COLD;
    started = true;
    switch (m.h.type) {
      case EM_EXIT:
        s.code = m.h.a;
        return DONE;
      case EM_FALLBACK:
        return COLD;
      case EM_SPAWN: {
        trace("plan received, bytes", (long)m.payload.size());
        size_t i = 0;
        // The sealed tsrun-init every child execs first (native/init-main.cc):
        // the engine's copy, so containers never run a file on the host.
        int init_exe = i < m.fds.size() ? m.fds[i++] : -1;
        int console = m.h.a ? (i < m.fds.size() ? m.fds[i++] : -1) : -1;
        int cgroup = m.h.b ? (i < m.fds.size() ? m.fds[i++] : -1) : -1;
        if (m.h.c) forward_signals(true);  // a foreground process: signals queue from now on
        PreparedPlan plan;
        char err[256];
        EngineMsg reply;
        std::string body;
        int sync = -1;
        if (init_exe < 0 || plan_prepare((const uint8_t*)m.payload.data(), m.payload.size(), &plan, err, sizeof(err)) < 0) {
          reply = header(EM_SPAWN_FAILED, -EINVAL);
        } else {
          plan.init_exe_fd = init_exe;
          ChildMsg failure = {};
          pid_t pid = plan_spawn_prespawned(&plan, &s.pre, console, cgroup, &sync, &failure);
          plan_free(&plan);
          if (pid == -EPROTO && failure.kind == MSG_ERROR) {
            reply = header(EM_SPAWN_FAILED, 0);
            body.assign((const char*)&failure, sizeof(failure));
          } else if (pid < 0) {
            reply = header(EM_SPAWN_FAILED, pid);
          } else {
            s.child = pid;
            reply = header(EM_SPAWNED, pid);
          }
        }
        for (int fd : m.fds) close(fd);
        trace("spawned, pid", reply.type == EM_SPAWNED ? reply.a : 0);
        // The sync socket goes to the engine, which then talks to the init
        // itself: no hop through us for each of its messages.
        bool sent = send_msg(s.sock, reply, body, sync >= 0 ? &sync : nullptr, sync >= 0 ? 1 : 0);
        if (sync >= 0) close(sync);
        if (!sent) return LOST;
        break;
      }
      case EM_REAP: {
        int reaped = 0;
        for (int waited = 0; waited <= m.h.b; waited += 2) {
          int st;
          pid_t w = waitpid(m.h.a, &st, WNOHANG | __WALL);
          if (w == m.h.a || (w < 0 && errno == ECHILD)) {
            reaped = 1;
            break;
          }
          sleep_ms(2);
        }
        if (m.h.a == s.child) s.child = 0;
        if (!send_msg(s.sock, header(EM_DONE, reaped))) return LOST;
        break;
      }
      case EM_CLEANUP:
        s.cleanup = split_nul(m.payload);
        break;
      case EM_WAIT:
        trace("process handed over, pid", m.h.a);
        s.wait_pid = m.h.a;
        s.after = split_nul(m.payload);
        s.after_inline_ms = m.h.b;
        return DONE;
      default:
        return LOST;
    }
  }
}

// Runs args through an engine; false when it must run cold instead.
bool try_engine(const Parsed& p, const std::string& build, const std::vector<std::string>& args, int* code) {
  Session s;
  s.sock = connect_engine(p.root, build, &s.init_exe);
  if (s.sock < 0) return false;
  // args are argv's (p parsed them) or run's delete afterwards.
  std::vector<char*> av = {(char*)"tsrun"};
  for (auto& a : args) av.push_back((char*)a.c_str());
  std::string cmd = parse((int)av.size(), av.data()).command;
  bool spawns = cmd == "create" || cmd == "run" || cmd == "exec";
  Outcome o = serve(s, build, args, spawns);
  // A spawner the command did not use exits on EOF; reaped here, so it is
  // never mistaken for (or outlives) what the command did start.
  plan_prespawn_cancel(&s.pre);
  if (s.init_exe >= 0) close(s.init_exe);
  s.init_exe = -1;
  // Kept open only for run's delete on the same connection (EM_WAIT b).
  bool inline_after = o == DONE && s.wait_pid > 0 && !s.after.empty() && s.after_inline_ms > 0;
  if (!inline_after) {
    close(s.sock);
    s.sock = -1;
  }
  if (o == COLD) {
    forward_signals(false);
    return false;
  }
  if (o == LOST) {
    // The engine died mid-command. What we spawned dies with the command;
    // what it made on disk is undone cold, so a retry starts from nothing.
    forward_signals(false);
    if (s.child > 0) {
      kill(s.child, SIGKILL);
      wait_status(s.child);
    }
    if (!s.cleanup.empty()) run_cold_child(s.cleanup, true);
    bool readonly = p.command == "state" || p.command == "list" || p.command == "ps";
    if (readonly && s.child == 0) return false;  // nothing changed: just answer it cold
    fprintf(stderr, "tsrun: %s: the engine exited before the command completed%s\n", p.command.c_str(),
            s.cleanup.empty() ? "" : "; what it had created was removed");
    *code = 1;
    return true;
  }
  if (s.wait_pid > 0) {
    // Foreground run/exec: the process is ours to wait for, as runc's is.
    fg_pid = s.wait_pid;
    for (int sig = 1; sig < 32; sig++)
      if (pending_mask & (1 << sig)) kill(s.wait_pid, sig);
    pending_mask = 0;
    int status = wait_status(s.wait_pid);
    trace("process exited, status", status);
    forward_signals(false);
    fg_pid = 0;
    *code = status;
    if (!s.after.empty()) {
      int after = 0;
      bool done = false;
      if (s.sock >= 0) {
        // The engine may still be waiting for us: then it runs the delete
        // and answers EM_EXIT. Past its wait the connection is closed (send
        // fails or recv sees EOF) and the delete goes as a command of its own.
        Msg m;
        if (send_msg(s.sock, header(EM_EXITED, status)) && recv_msg(s.sock, &m) == 1 && m.h.type == EM_EXIT) {
          after = m.h.a;
          done = true;
          trace("deleted on the same connection");
        }
        close(s.sock);
        s.sock = -1;
      }
      std::vector<std::string> av(s.after.begin(), s.after.end());
      if (!done && !try_engine(p, build, av, &after)) after = run_cold_child(av, false);
      if (after != 0) *code = after;
    }
    if (s.sock >= 0) close(s.sock);
    return true;
  }
  forward_signals(false);
  *code = s.code;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  clock_gettime(CLOCK_MONOTONIC, &started_at);
  const char* tr = getenv("TSRUN_TRACE");
  tracing = tr && *tr && strcmp(tr, "0") != 0;
  const char* mode = getenv("TSRUN_ENGINE");
  bool off = mode && (strcmp(mode, "0") == 0 || strcmp(mode, "off") == 0);
  Parsed p = parse(argc, argv);
  static const char* const SERVED[] = {"create", "run", "exec", "start", "state", "kill", "delete", "list",
                                       "ps", "pause", "resume", "update", "events"};
  bool served = false;
  for (const char* c : SERVED) served = served || p.command == c;
  if (!off && p.ok && served) {
    std::string build = own_build_id();
    std::vector<std::string> args(argv + 1, argv + argc);
    int code = 0;
    if (try_engine(p, build, args, &code)) {
      trace("done");
      return code;
    }
  }
  trace("cold: exec node");
  exec_cold(argv + 1);
}
