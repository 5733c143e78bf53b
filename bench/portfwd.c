// The port-forwarding bench's tool (bench/portfwd.sh builds and runs it):
//
//   portfwd server PORT               in the container's namespace: per connection
//                                     (one forked child each), the first byte says
//                                     what to do: 'S' sink everything until EOF,
//                                     'R' answer each byte with one byte until EOF
//   portfwd stream HOST PORT SECONDS  one connection, 128 KiB writes for SECONDS;
//                                     prints {"bytes":N,"seconds":S,"gbit":G}
//   portfwd rr HOST PORT N            N times: connect, 1 byte there, 1 byte back,
//                                     close; prints {"n":N,"p50_us":..,"p90_us":..,"p99_us":..}
//   portfwd proxy PORT HOST TPORT     a userspace proxy for the comparison: listens on
//                                     PORT, per connection a child that splice()s both
//                                     directions through pipes (zero-copy in userspace
//                                     terms: the best a proxy can do)
//
// Plain C so that the tool is never the bottleneck being measured.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
  fprintf(stderr, "portfwd: %s: %s\n", what, strerror(errno));
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int listen_on(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) die("socket");
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  if (listen(s, 1024) < 0) die("listen");
  return s;
}

static int connect_to(const char *host, int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) die("socket");
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "portfwd: bad address %s\n", host);
    exit(2);
  }
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
  return s;
}

static int read_full(int fd, char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r == 0) return 0;
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    got += r;
  }
  return 1;
}

static void serve_one(int c) {
  char mode;
  if (read_full(c, &mode, 1) <= 0) return;
  static char buf[1 << 17];
  if (mode == 'S') {
    while (read(c, buf, sizeof buf) > 0) {
    }
  } else {
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char b;
    while (read_full(c, &b, 1) > 0)
      if (write(c, &b, 1) != 1) break;
  }
}

// Accepts forever; each connection is handled by `fn` in a forked child.
static int accept_loop(int port, void (*fn)(int c, void *arg), void *arg) {
  signal(SIGCHLD, SIG_IGN);  // children reaped by the kernel
  int s = listen_on(port);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      die("accept");
    }
    if (fork() == 0) {
      close(s);
      fn(c, arg);
      _exit(0);
    }
    close(c);
  }
}

static void serve_conn(int c, void *arg) {
  (void)arg;
  serve_one(c);
}

static int server(int port) { return accept_loop(port, serve_conn, NULL); }

static int stream(const char *host, int port, double seconds) {
  int s = connect_to(host, port);
  static char buf[1 << 17];
  memset(buf, 'x', sizeof buf);
  if (write(s, "S", 1) != 1) die("write");
  unsigned long long total = 0;
  double start = now(), end = start + seconds, t = start;
  while (t < end) {
    ssize_t w = write(s, buf, sizeof buf);
    if (w < 0) {
      if (errno == EINTR) continue;
      die("write");
    }
    total += w;
    t = now();
  }
  shutdown(s, SHUT_WR);
  close(s);
  double el = t - start;
  printf("{\"bytes\":%llu,\"seconds\":%.3f,\"gbit\":%.3f}\n", total, el, total * 8 / el / 1e9);
  return 0;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int rr(const char *host, int port, int n) {
  double *lat = calloc(n, sizeof *lat);
  if (!lat) die("calloc");
  char msg[2] = {'R', 'x'}, b;
  for (int i = 0; i < n; i++) {
    double t0 = now();
    int s = connect_to(host, port);
    if (write(s, msg, 2) != 2) die("write");
    if (read_full(s, &b, 1) <= 0) die("read");
    close(s);
    lat[i] = (now() - t0) * 1e6;
  }
  qsort(lat, n, sizeof *lat, cmp);
  printf("{\"n\":%d,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f}\n", n, lat[n / 2], lat[n * 9 / 10], lat[n * 99 / 100]);
  return 0;
}

// One direction: src → pipe → dst with splice, until EOF; then half-close dst.
static void pump(int src, int dst) {
  int p[2];
  if (pipe(p) < 0) _exit(1);
  fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
  for (;;) {
    ssize_t n = splice(src, NULL, p[1], NULL, 1 << 20, SPLICE_F_MOVE);
    if (n <= 0) break;
    while (n > 0) {
      ssize_t m = splice(p[0], NULL, dst, NULL, n, SPLICE_F_MOVE);
      if (m <= 0) _exit(0);
      n -= m;
    }
  }
  shutdown(dst, SHUT_WR);
}

struct target {
  const char *host;
  int port;
};

static void proxy_conn(int c, void *arg) {
  const struct target *t = arg;
  int one = 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int u = connect_to(t->host, t->port);
  pid_t back = fork();  // upstream → client in a second child, client → upstream here
  if (back == 0) {
    pump(u, c);
    _exit(0);
  }
  pump(c, u);
  waitpid(back, NULL, 0);
}

static int proxy(int port, const char *host, int tport) {
  struct target t = {host, tport};
  return accept_loop(port, proxy_conn, &t);
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "server")) return server(atoi(argv[2]));
  if (argc >= 5 && !strcmp(argv[1], "stream")) return stream(argv[2], atoi(argv[3]), atof(argv[4]));
  if (argc >= 5 && !strcmp(argv[1], "rr")) return rr(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc >= 5 && !strcmp(argv[1], "proxy")) return proxy(atoi(argv[2]), argv[3], atoi(argv[4]));
  fprintf(stderr, "usage: portfwd server PORT | stream HOST PORT SECONDS | rr HOST PORT N | proxy PORT HOST TPORT\n");
  return 2;
}
