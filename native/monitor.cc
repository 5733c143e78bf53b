// tsrun-monitor: the per-container monitor tsctl starts (the role of conmon).
//
// It must stay tiny: one of these lives next to every running container, so
// a Node process (~40 MB RSS) is out of the question; this one is a few
// hundred KB. It is plain POSIX, single-threaded, poll()-driven.
//
//   tsrun-monitor -d DIR -i CID -S SYNCFD [-t] [-s] -- CREATE-ARGV... [--- ONEXIT-ARGV...]
//
//   -d DIR     the container's directory: DIR/CID-json.log (the log),
//              DIR/init.pid (tsrun's --pid-file), DIR/exit.json (exit code and
//              time), DIR/attach.sock (attach clients), DIR/console.sock
//              (receives the pty master when -t)
//   -t         the container has a terminal: CREATE-ARGV carries
//              --console-socket DIR/console.sock and the master arrives there
//   -s         keep the container's stdin open (a pipe fed by attach clients)
//   -S FD      where the outcome of `create` is written for tsctl, then closed:
//              "ok PID\n" or "err CODE\n<what the runtime printed>"
//
// Sequence: become a child subreaper (so the container init, orphaned when
// `tsrun create` exits, is reparented to us and we can wait for it), run
// CREATE-ARGV with the container's stdio, report, then copy the container's
// output into the json-file log and to attach clients until the init exits;
// record its status; finally exec ONEXIT-ARGV (tsctl's cleanup), which keeps
// this pid so "the monitor is gone" means "cleanup is done".
//
// Attach protocol (DIR/attach.sock, stream): frames of [type u8][len u32 BE][data].
//   monitor -> client: 1 stdout, 2 stderr, 3 exit (data: decimal exit code)
//   client -> monitor: 0 stdin data, 1 stdin closed, 2 resize (rows u16, cols u16)
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace {

const size_t kMaxLine = 16 * 1024;  // Docker's json-file splits longer lines (partial messages)
const int kMaxClients = 32;

std::string dir, cid;
int syncFd = -1;
bool tty = false, keepStdin = false;

void die(const char* what) {
  fprintf(stderr, "tsrun-monitor: %s: %s\n", what, strerror(errno));
  _exit(1);
}

// Sockets are bound by names relative to DIR (our cwd): a unix socket path
// is limited to 108 bytes and DIR (<root>/containers/<64 hex>) can be longer.
std::string path(const char* leaf) { return dir + "/" + leaf; }

std::string nowRFC3339Nano() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%09ldZ", ts.tv_nsec);
  return buf;
}

bool writeAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= (size_t)w;
  }
  return true;
}

// Appends s as a JSON string body, as Go's encoding/json would (Docker's
// json-file is written by it): invalid UTF-8 becomes U+FFFD, control
// characters and <>& are \u-escaped.
void jsonEscape(std::string& out, const char* s, size_t n) {
  static const char* hex = "0123456789abcdef";
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 15];
          } else {
            out += (char)c;
          }
      }
      i++;
      continue;
    }
    // a multi-byte sequence: copy it if it is valid UTF-8, else U+FFFD for one byte
    size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] & 0xc0) == 0x80;
    if (ok && len == 3) {
      unsigned char c1 = (unsigned char)s[i + 1];
      ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);  // overlong, surrogates
    }
    if (ok && len == 4) {
      unsigned char c1 = (unsigned char)s[i + 1];
      ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(s + i, len);
      i += len;
    } else {
      out += "\xef\xbf\xbd";
      i++;
    }
  }
}

int logFd = -1;

void logLine(const char* stream, const char* p, size_t n) {
  std::string line = "{\"log\":\"";
  jsonEscape(line, p, n);
  line += "\",\"stream\":\"";
  line += stream;
  line += "\",\"time\":\"";
  line += nowRFC3339Nano();
  line += "\"}\n";
  writeAll(logFd, line.data(), line.size());  // O_APPEND: one write per line
}

struct Stream {
  const char* name;
  int type;  // attach frame type
  int fd;
  std::string pending;  // an unterminated line, kept until its newline
};

struct Client {
  int fd;
  std::string in;
};

std::vector<Client> clients;

void sendFrame(int fd, int type, const char* p, size_t n) {
  unsigned char h[5] = {(unsigned char)type, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                        (unsigned char)(n >> 8), (unsigned char)n};
  if (!writeAll(fd, (const char*)h, 5) || !writeAll(fd, p, n)) {
    // a client that went away (or stopped reading for the send timeout) is dropped
    shutdown(fd, SHUT_RDWR);
  }
}

void broadcast(int type, const char* p, size_t n) {
  for (auto& c : clients) sendFrame(c.fd, type, p, n);
}

// Output: raw to attach clients at once, to the log line by line (as Docker).
void onOutput(Stream& s, const char* p, size_t n) {
  broadcast(s.type, p, n);
  s.pending.append(p, n);
  size_t start = 0;
  for (;;) {
    size_t nl = s.pending.find('\n', start);
    if (nl == std::string::npos) break;
    logLine(s.name, s.pending.data() + start, nl + 1 - start);
    start = nl + 1;
  }
  s.pending.erase(0, start);
  while (s.pending.size() >= kMaxLine) {
    logLine(s.name, s.pending.data(), kMaxLine);
    s.pending.erase(0, kMaxLine);
  }
}

void flushStream(Stream& s) {
  if (!s.pending.empty()) logLine(s.name, s.pending.data(), s.pending.size());
  s.pending.clear();
}

int listenUnix(const std::string& p) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  if (p.size() >= sizeof a.sun_path) {
    errno = ENAMETOOLONG;
    die(p.c_str());
  }
  strcpy(a.sun_path, p.c_str());
  unlink(p.c_str());
  if (bind(fd, (struct sockaddr*)&a, sizeof a) < 0) die(p.c_str());
  chmod(p.c_str(), 0600);
  if (listen(fd, 8) < 0) die("listen");
  return fd;
}

// Receives the one fd of a runc-style console-socket message.
int recvFd(int conn) {
  char data[256];
  struct iovec iov = {data, sizeof data};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = u.buf;
  msg.msg_controllen = sizeof u.buf;
  ssize_t n;
  do n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      memcpy(&fd, CMSG_DATA(c), sizeof fd);
      return fd;
    }
  }
  errno = EBADMSG;
  return -1;
}

void report(const std::string& s) {
  if (syncFd < 0) return;
  writeAll(syncFd, s.data(), s.size());
  close(syncFd);
  syncFd = -1;
}

std::string drain(int fd) {
  std::string out;
  if (fd < 0) return out;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 && out.size() < 65536) out.append(buf, (size_t)n);
  return out;
}

void writeFileAtomic(const std::string& file, const std::string& text) {
  std::string tmp = file + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die(tmp.c_str());
  writeAll(fd, text.data(), text.size());
  fsync(fd);
  close(fd);
  if (rename(tmp.c_str(), file.c_str()) < 0) die(file.c_str());
}

int readPid(const std::string& file) {
  char buf[32] = {0};
  int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n > 0 ? atoi(buf) : -1;
}

// Descriptors tsctl's caller left open must not be held for the container's
// whole life (a test waiting for a pipe's EOF would wait forever).
void closeInherited() {
  std::vector<int> fds;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (struct dirent* e = readdir(d)) {
      int fd = atoi(e->d_name);
      if (fd > 2 && fd != syncFd && fd != dirfd(d)) fds.push_back(fd);
    }
    closedir(d);
  }
  for (int fd : fds) close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> createArgv, exitArgv;
  int i = 1;
  for (; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--") {
      i++;
      break;
    }
    if (a == "-t") tty = true;
    else if (a == "-s") keepStdin = true;
    else if ((a == "-d" || a == "-i" || a == "-S") && i + 1 < argc) {
      const char* v = argv[++i];
      if (a == "-d") dir = v;
      else if (a == "-i") cid = v;
      else syncFd = atoi(v);
    } else {
      fprintf(stderr, "tsrun-monitor: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  for (; i < argc && strcmp(argv[i], "---") != 0; i++) createArgv.push_back(argv[i]);
  for (i++; i < argc; i++) exitArgv.push_back(argv[i]);
  createArgv.push_back(nullptr);
  exitArgv.push_back(nullptr);
  if (dir.empty() || cid.empty() || createArgv.size() < 2) {
    fprintf(stderr, "usage: tsrun-monitor -d DIR -i CID -S FD [-t] [-s] -- CREATE-ARGV... [--- ONEXIT-ARGV...]\n");
    return 2;
  }
  if (syncFd >= 0) fcntl(syncFd, F_SETFD, FD_CLOEXEC);
  closeInherited();
  if (chdir(dir.c_str()) < 0) die(dir.c_str());

  // Orphans in our subtree (the container init once `tsrun create` exits) become ours.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) die("PR_SET_CHILD_SUBREAPER");
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sigFd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigFd < 0) die("signalfd");

  std::string logPath = path((cid + "-json.log").c_str());
  logFd = open(logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (logFd < 0) die(logPath.c_str());

  // The container's stdio: pipes (stdin only with -s), or nothing with -t
  // (the init gets the pty slave; we get the master over the console socket).
  int outP[2] = {-1, -1}, errP[2] = {-1, -1}, inP[2] = {-1, -1};
  int devNull = open("/dev/null", O_RDWR | O_CLOEXEC);
  int consoleListen = -1;
  if (tty) {
    consoleListen = listenUnix("console.sock");
  } else {
    if (pipe2(outP, O_CLOEXEC) < 0 || pipe2(errP, O_CLOEXEC) < 0) die("pipe");
  }
  if (keepStdin && !tty && pipe2(inP, O_CLOEXEC) < 0) die("pipe");

  pid_t createPid = fork();
  if (createPid < 0) die("fork");
  if (createPid == 0) {
    sigprocmask(SIG_UNBLOCK, &mask, nullptr);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    dup2(inP[0] >= 0 ? inP[0] : devNull, 0);
    dup2(outP[1] >= 0 ? outP[1] : devNull, 1);
    dup2(errP[1] >= 0 ? errP[1] : devNull, 2);
    execvp(createArgv[0], createArgv.data());
    fprintf(stderr, "exec %s: %s\n", createArgv[0], strerror(errno));
    _exit(127);
  }
  if (inP[0] >= 0) close(inP[0]);
  if (outP[1] >= 0) close(outP[1]);
  if (errP[1] >= 0) close(errP[1]);

  // Wait for `create` (and, with -t, for the pty master it sends meanwhile).
  int master = -1, createStatus = 0;
  for (;;) {
    struct pollfd p[2] = {{sigFd, POLLIN, 0}, {consoleListen, POLLIN, 0}};
    if (poll(p, consoleListen >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) die("poll");
    if (consoleListen >= 0 && (p[1].revents & POLLIN)) {
      int conn = accept4(consoleListen, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn >= 0) {
        int fd = recvFd(conn);
        if (fd >= 0) {
          if (master >= 0) close(master);
          master = fd;
        }
        close(conn);
      }
    }
    struct signalfd_siginfo si;
    while (read(sigFd, &si, sizeof si) == sizeof si) {}
    int st;
    pid_t r = waitpid(createPid, &st, WNOHANG);
    if (r == createPid) {
      createStatus = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      break;
    }
  }
  if (consoleListen >= 0) {
    close(consoleListen);
    unlink("console.sock");
  }
  int initPid = createStatus == 0 ? readPid(path("init.pid")) : -1;
  if (createStatus != 0 || initPid <= 0 || (tty && master < 0)) {
    std::string msg = drain(errP[0]) + drain(outP[0]);
    if (createStatus == 0) msg += initPid <= 0 ? "no init pid after create\n" : "no pty master received on the console socket\n";
    report("err " + std::to_string(createStatus ? createStatus : 1) + "\n" + msg);
    return 1;
  }

  int attachListen = listenUnix("attach.sock");
  report("ok " + std::to_string(initPid) + "\n");

  Stream out = {"stdout", 1, tty ? master : outP[0], {}};
  Stream err = {"stderr", 2, tty ? -1 : errP[0], {}};
  int stdinFd = tty ? master : inP[1];
  if (stdinFd >= 0 && !tty) fcntl(stdinFd, F_SETFL, fcntl(stdinFd, F_GETFL) | O_NONBLOCK);
  std::string stdinPending;
  bool closeStdinWhenWritten = false;

  bool initExited = false, firstRound = true;
  int exitCode = 0;
  struct timespec exitedAt = {0, 0};
  char buf[32768];
  for (;;) {
    if (initExited && out.fd < 0 && err.fd < 0) break;
    std::vector<struct pollfd> p;
    p.push_back({sigFd, POLLIN, 0});
    p.push_back({attachListen, POLLIN, 0});
    p.push_back({out.fd, POLLIN, 0});
    p.push_back({err.fd, POLLIN, 0});
    // stdin backpressure: while a write is pending, clients are not read
    p.push_back({stdinPending.empty() ? -1 : stdinFd, POLLOUT, 0});
    for (auto& c : clients) p.push_back({stdinPending.empty() ? c.fd : -1, POLLIN, 0});
    // once the init is gone, its output is drained for a bounded time only
    // (a process that escaped the container could hold the pipe open)
    int timeout = -1;
    if (initExited) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long elapsed = (now.tv_sec - exitedAt.tv_sec) * 1000 + (now.tv_nsec - exitedAt.tv_nsec) / 1000000;
      timeout = elapsed >= 2000 ? 0 : (int)(2000 - elapsed);
    }
    // with its output closed and no exit seen, look once a second whether the
    // init is gone without us seeing its status (reaped elsewhere): then 255
    if (!initExited && out.fd < 0 && err.fd < 0) timeout = 1000;
    int n = poll(p.data(), p.size(), timeout);
    if (n < 0 && errno != EINTR) die("poll");
    if (n == 0 && initExited) break;
    if (n == 0 && !initExited && kill(initPid, 0) < 0 && errno == ESRCH) {
      initExited = true;
      exitCode = 255;
      clock_gettime(CLOCK_MONOTONIC, &exitedAt);
    }

    // the first round reaps too: the init may have exited before the loop began
    if ((p[0].revents & POLLIN) || firstRound) {
      firstRound = false;
      struct signalfd_siginfo si;
      while (read(sigFd, &si, sizeof si) == sizeof si) {}
      int st;
      pid_t r;
      while ((r = waitpid(-1, &st, WNOHANG)) > 0) {
        if (r == initPid && !initExited) {
          initExited = true;
          exitCode = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
          clock_gettime(CLOCK_MONOTONIC, &exitedAt);
        }
      }
    }
    if (p[1].revents & POLLIN) {
      int c = accept4(attachListen, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        if ((int)clients.size() >= kMaxClients) {
          close(c);
        } else {
          struct timeval tv = {5, 0};
          setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
          clients.push_back({c, {}});
        }
      }
    }
    Stream* streams[2] = {&out, &err};
    for (int k = 0; k < 2; k++) {
      Stream& s = *streams[k];
      if (s.fd < 0 || !(p[2 + k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = read(s.fd, buf, sizeof buf);
      if (r > 0) {
        onOutput(s, buf, (size_t)r);
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        // EOF; a pty master reads EIO once the last slave is closed
        flushStream(s);
        if (s.fd != stdinFd) close(s.fd);
        s.fd = -1;
      }
    }
    if (p[4].revents & (POLLOUT | POLLERR | POLLHUP)) {
      ssize_t w = write(stdinFd, stdinPending.data(), stdinPending.size());
      if (w > 0) stdinPending.erase(0, (size_t)w);
      else if (w < 0 && errno != EAGAIN && errno != EINTR) stdinPending.clear();
    }
    // only the clients that were polled (one accepted just now waits for the next round)
    for (size_t k = 0; k + 5 < p.size(); k++) {
      Client& c = clients[k];
      short re = p[5 + k].revents;
      if (!re) continue;
      ssize_t r = read(c.fd, buf, sizeof buf);
      if (r <= 0) {
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        close(c.fd);
        c.fd = -1;
        continue;
      }
      c.in.append(buf, (size_t)r);
      while (c.in.size() >= 5) {
        size_t len = ((size_t)(unsigned char)c.in[1] << 24) | ((size_t)(unsigned char)c.in[2] << 16) |
                     ((size_t)(unsigned char)c.in[3] << 8) | (size_t)(unsigned char)c.in[4];
        if (c.in.size() < 5 + len) break;
        int type = (unsigned char)c.in[0];
        const char* d = c.in.data() + 5;
        if (type == 0 && stdinFd >= 0) {
          stdinPending.append(d, len);
        } else if (type == 1 && !tty && stdinFd >= 0) {
          closeStdinWhenWritten = true;  // after what is queued: the container reads it all, then EOF
        } else if (type == 2 && tty && len == 4) {
          struct winsize ws;
          memset(&ws, 0, sizeof ws);
          ws.ws_row = (unsigned short)(((unsigned char)d[0] << 8) | (unsigned char)d[1]);
          ws.ws_col = (unsigned short)(((unsigned char)d[2] << 8) | (unsigned char)d[3]);
          ioctl(master, TIOCSWINSZ, &ws);
        }
        c.in.erase(0, 5 + len);
      }
    }
    if (closeStdinWhenWritten && stdinPending.empty() && stdinFd >= 0) {
      close(stdinFd);  // the container reads EOF, as with `docker run -i` and a closed stdin
      stdinFd = -1;
      closeStdinWhenWritten = false;
    }
    for (size_t k = clients.size(); k-- > 0;)
      if (clients[k].fd < 0) clients.erase(clients.begin() + (long)k);
  }
  flushStream(out);
  flushStream(err);
  close(attachListen);
  unlink("attach.sock");

  writeFileAtomic(path("exit.json"), "{\"exitCode\":" + std::to_string(exitCode) + ",\"finishedAt\":\"" +
                                         nowRFC3339Nano() + "\",\"pid\":" + std::to_string(initPid) + "}\n");
  std::string code = std::to_string(exitCode);
  broadcast(3, code.data(), code.size());
  for (auto& c : clients) close(c.fd);
  clients.clear();
  close(logFd);
  if (master >= 0) close(master);

  if (exitArgv.size() > 1) {
    if (chdir("/") < 0) die("chdir /");  // the cleanup may remove DIR
    sigprocmask(SIG_UNBLOCK, &mask, nullptr);
    signal(SIGINT, SIG_DFL);
    if (devNull >= 0) dup2(devNull, 0);
    execvp(exitArgv[0], exitArgv.data());
    die("exec on-exit command");
  }
  return 0;
}
