// Runs a plan after clone. Read executor.h first for the rules of the child.
#include "executor.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#endif

// ---------------------------------------------------------------------------
// Parent side: prepare

static bool in_range(size_t off, size_t len, size_t total) { return off <= total && len <= total - off; }

int plan_prepare(const uint8_t* data, size_t len, PreparedPlan* out, char* err, size_t errlen) {
  memset(out, 0, sizeof(*out));
  for (int i = 0; i < (int)SLOT_COUNT; i++) out->slots[i] = -1;
  out->init_exe_fd = -1;
  auto fail = [&](const char* m) {
    strncpy(err, m, errlen - 1);
    err[errlen - 1] = 0;
    plan_free(out);
    return -1;
  };
  if (len < sizeof(PlanHeader)) return fail("plan too short");
  out->bytes = (uint8_t*)malloc(len + 1);
  if (!out->bytes) return fail("out of memory");
  memcpy(out->bytes, data, len);
  out->bytes[len] = 0;
  out->length = len;
  memcpy(&out->header, out->bytes, sizeof(PlanHeader));
  const PlanHeader& h = out->header;
  if (h.magic != TSRUN_PLAN_MAGIC) return fail("bad plan magic");
  if (h.version != TSRUN_PLAN_VERSION) return fail("plan version mismatch between runtime and addon");
  if (!in_range(h.ops_offset, (size_t)h.op_count * sizeof(PlanOp), len) ||
      !in_range(h.pool_offset, h.pool_length, len) || !in_range(h.lists_offset, h.lists_length, len))
    return fail("plan sections out of bounds");
  if (h.intermediate_ops > h.op_count) return fail("bad intermediate op count");
  // Strings must be NUL-terminated inside the pool; the encoder guarantees it
  // and we check, so the child can never read past the buffer.
  const char* pool = (const char*)out->bytes + h.pool_offset;
  auto str = [&](uint32_t off, const char** res) -> bool {
    if (off == TSRUN_NONE) { *res = nullptr; return true; }
    if (off >= h.pool_length || !memchr(pool + off, 0, h.pool_length - off)) return false;
    *res = pool + off;
    return true;
  };
  out->ops = (PreparedOp*)calloc(h.op_count ? h.op_count : 1, sizeof(PreparedOp));
  if (!out->ops) return fail("out of memory");
  // Count list entries to size one pointer arena.
  const uint8_t* lists = out->bytes + h.lists_offset;
  size_t total_ptrs = 0;
  for (uint32_t i = 0; i < h.op_count; i++) {
    PlanOp op;
    memcpy(&op, out->bytes + h.ops_offset + (size_t)i * sizeof(PlanOp), sizeof(op));
    for (int k = 0; k < 2; k++) {
      if (op.l[k] == TSRUN_NONE) continue;
      if (!in_range(op.l[k], 4, h.lists_length)) return fail("list out of bounds");
      uint32_t n;
      memcpy(&n, lists + op.l[k], 4);
      if (!in_range(op.l[k] + 4, (size_t)n * 4, h.lists_length)) return fail("list out of bounds");
      total_ptrs += n + 1;
    }
  }
  out->list_storage = (char**)calloc(total_ptrs ? total_ptrs : 1, sizeof(char*));
  if (!out->list_storage) return fail("out of memory");
  size_t used = 0;
  for (uint32_t i = 0; i < h.op_count; i++) {
    PreparedOp& p = out->ops[i];
    memcpy(&p.op, out->bytes + h.ops_offset + (size_t)i * sizeof(PlanOp), sizeof(PlanOp));
    for (int k = 0; k < 4; k++) {
      // OP_SECCOMP's s0 is a binary blob of length a, not a string.
      if (p.op.code == OP_SECCOMP && k == 0) {
        if (p.op.s[0] == TSRUN_NONE || !in_range(p.op.s[0], (size_t)p.op.a, h.pool_length))
          return fail("seccomp blob out of bounds");
        p.s[0] = pool + p.op.s[0];
        continue;
      }
      if (!str(p.op.s[k], &p.s[k])) return fail("string out of bounds");
    }
    for (int k = 0; k < 2; k++) {
      if (p.op.l[k] == TSRUN_NONE) continue;
      uint32_t n;
      memcpy(&n, lists + p.op.l[k], 4);
      char** arr = out->list_storage + used;
      for (uint32_t j = 0; j < n; j++) {
        uint32_t off;
        memcpy(&off, lists + p.op.l[k] + 4 + j * 4, 4);
        const char* s;
        if (!str(off, &s) || !s) return fail("list string out of bounds");
        arr[j] = (char*)s;
      }
      arr[n] = nullptr;
      p.list[k] = arr;
      used += n + 1;
    }
    if (p.op.code == OP_SETGROUPS && p.list[0]) {
      size_t n = 0;
      while (p.list[0][n]) n++;
      p.gids = (gid_t*)calloc(n ? n : 1, sizeof(gid_t));
      if (!p.gids) return fail("out of memory");
      for (size_t j = 0; j < n; j++) p.gids[j] = (gid_t)strtoul(p.list[0][j], nullptr, 10);
      p.ngids = n;
    }
  }
  return 0;
}

void plan_free(PreparedPlan* plan) {
  if (plan->ops) {
    for (uint32_t i = 0; i < plan->header.op_count; i++) free(plan->ops[i].gids);
  }
  free(plan->ops);
  free(plan->list_storage);
  free(plan->bytes);
  plan->ops = nullptr;
  plan->list_storage = nullptr;
  plan->bytes = nullptr;
}

// ---------------------------------------------------------------------------
// Child side: helpers that neither allocate nor take locks.

static void child_send(PreparedPlan* p, uint32_t kind, uint32_t step, int err, int arg) {
  ChildMsg m = {kind, step, err, arg};
  // MSG_NOSIGNAL: after `create` exits nobody reads, and SIGPIPE must not kill init.
  (void)!send(p->slots[SLOT_SYNC], &m, sizeof(m), MSG_NOSIGNAL);
}

[[noreturn]] static void child_fail(PreparedPlan* p, uint32_t step, int err) {
  child_send(p, MSG_ERROR, step, err ? err : EINVAL, 0);
  _exit(1);
}

static char* fmt_uint(char* out, unsigned long v) {
  char tmp[24];
  int n = 0;
  do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (n) *out++ = tmp[--n];
  *out = 0;
  return out;
}

// "/proc/self/fd/N": how a path-taking syscall (mount) is pointed at an
// inode we resolved safely with openat2.
static void fd_path(char* buf, int fd) {
  const char* prefix = "/proc/self/fd/";
  size_t n = strlen(prefix);
  memcpy(buf, prefix, n);
  fmt_uint(buf + n, (unsigned long)fd);
}

static int openat2_in_root(int root, const char* path, int flags, mode_t mode) {
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = (uint64_t)flags | O_CLOEXEC;
  how.mode = (flags & O_CREAT) ? mode : 0;
  // RESOLVE_IN_ROOT scopes ".." and absolute symlinks to the rootfs, so a
  // symlink planted in the image cannot point a mount outside it.
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  while (*path == '/') path++;
  if (!*path) path = ".";
  // EAGAIN: the kernel could not prove ".." stayed inside root because a
  // mount or rename happened somewhere on the host meanwhile; try again
  // (bounded), as runc does. Busy hosts (other containers starting) hit it.
  long r;
  int tries = 0;
  do {
    r = syscall(SYS_openat2, root, path, &how, sizeof(how));
  } while (r < 0 && errno == EAGAIN && ++tries < 256);
  return (int)r;
}

// mkdir -p of `rel` inside root (every component resolved inside root), and
// for the last component a directory or an empty file. Returns 0 or -1/errno.
// The length of `s` without trailing slashes, copied into out (which must hold PATH_MAX).
static size_t copy_trimmed(char* out, size_t cap, const char* s) {
  while (*s == '/') s++;
  size_t len = strlen(s);
  if (len >= cap) return (size_t)-1;
  memcpy(out, s, len + 1);
  while (len > 0 && out[len - 1] == '/') out[--len] = 0;
  return len;
}

// Creates `name` in `parent`: an empty file or a directory. 0 when it was
// made or already exists; -1/errno otherwise.
static int create_entry(int parent, const char* name, bool as_file) {
  int r;
  if (as_file) {
    r = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (r >= 0) close(r);
  } else {
    r = mkdirat(parent, name, 0755);
  }
  return r < 0 && errno != EEXIST ? -1 : 0;
}

// mkdir -p of `rel` inside root (every component resolved inside root), and
// for the last component a directory or an empty file. A component that is a
// dangling symlink is followed, inside the root, and its target created (as
// runc's securejoin MkdirAll does): "/evil -> /tmp/x" makes rootfs/tmp/x.
// Returns 0 or -1/errno.
static int ensure_in_root(int root, const char* rel, bool last_is_file) {
  char buf[4096];
  size_t len = copy_trimmed(buf, sizeof(buf), rel);
  if (len == (size_t)-1) { errno = ENAMETOOLONG; return -1; }
  int links = 0;
restart:
  if (len == 0) return 0;
  // Most targets exist already (the image's /proc, /sys, mask paths), or
  // only their last component is missing (/dev/null in an empty /dev): one
  // lookup of the whole path, then one of its parent, instead of one per
  // component. Anything else (a missing parent, a dangling symlink, an
  // error) takes the walk below, which creates what is missing or says why not.
  int whole = openat2_in_root(root, buf, O_PATH, 0);
  if (whole >= 0) {
    close(whole);
    return 0;
  }
  char* slash = strrchr(buf, '/');
  if (errno == ENOENT && slash) {
    *slash = 0;
    int parent = openat2_in_root(root, buf, O_PATH | O_DIRECTORY, 0);
    *slash = '/';
    if (parent >= 0) {
      char target[8];
      // Not a (dangling) symlink: those are followed by the walk.
      bool made = readlinkat(parent, slash + 1, target, sizeof(target)) < 0 && errno != EINVAL &&
                  create_entry(parent, slash + 1, last_is_file) == 0;
      close(parent);
      if (made) return 0;
    }
  }
  size_t start = 0;
  while (start < len) {
    size_t end = start;
    while (end < len && buf[end] != '/') end++;
    bool last = end == len;
    char saved = buf[end];
    buf[end] = 0;
    int fd = openat2_in_root(root, buf, O_PATH, 0);
    if (fd >= 0) {
      close(fd);
    } else if (errno == ENOENT) {
      // Create the component in its (root-resolved) parent.
      int parent;
      if (start == 0) {
        parent = dup(root);
      } else {
        buf[start - 1] = 0;
        parent = openat2_in_root(root, buf, O_PATH | O_DIRECTORY, 0);
        buf[start - 1] = '/';
      }
      if (parent < 0) return -1;
      char target[4096];
      ssize_t tl = readlinkat(parent, buf + start, target, sizeof(target) - 1);
      if (tl >= 0) {
        // A dangling symlink: continue with its target in place of it.
        close(parent);
        if (++links > 40) { errno = ELOOP; return -1; }
        target[tl] = 0;
        char next[4096];
        size_t n = 0;
        if (target[0] != '/' && start > 0) {  // relative: from the link's directory
          memcpy(next, buf, start);
          n = start;
        }
        size_t t = strlen(target);
        const char* rest = last ? "" : buf + end + 1;
        size_t r = strlen(rest);
        if (n + t + 1 + r >= sizeof(next)) { errno = ENAMETOOLONG; return -1; }
        memcpy(next + n, target, t);
        n += t;
        if (r) {
          next[n++] = '/';
          memcpy(next + n, rest, r);
          n += r;
        }
        next[n] = 0;
        len = copy_trimmed(buf, sizeof(buf), next);
        if (len == (size_t)-1) { errno = ENAMETOOLONG; return -1; }
        goto restart;
      }
      int r = create_entry(parent, buf + start, last && last_is_file);
      int e = errno;
      close(parent);
      if (r < 0) { errno = e; return -1; }
    } else {
      return -1;
    }
    buf[end] = saved;
    start = end + 1;
  }
  return 0;
}

// Splits rel into its parent (opened inside root) and its last component.
static int open_parent_in_root(int root, const char* rel, char* base_out, size_t base_len) {
  char buf[4096];
  while (*rel == '/') rel++;
  size_t len = strlen(rel);
  if (len == 0 || len >= sizeof(buf)) { errno = EINVAL; return -1; }
  memcpy(buf, rel, len + 1);
  while (len > 1 && buf[len - 1] == '/') buf[--len] = 0;
  char* slash = strrchr(buf, '/');
  const char* base = slash ? slash + 1 : buf;
  if (strlen(base) >= base_len) { errno = ENAMETOOLONG; return -1; }
  strcpy(base_out, base);
  if (!slash) return dup(root);
  *slash = 0;
  if (ensure_in_root(root, buf, false) < 0) return -1;
  return openat2_in_root(root, buf, O_PATH | O_DIRECTORY, 0);
}

// A bind remount can fail with EPERM when it would clear flags the kernel
// locked (e.g. nosuid inherited across a user namespace); keep those, as runc does.
static int remount(const char* path, unsigned long flags, const void* data) {
  if (mount(nullptr, path, nullptr, flags, data) == 0) return 0;
  if (errno != EPERM) return -1;
  struct statvfs sv;
  if (statvfs(path, &sv) < 0) { errno = EPERM; return -1; }
  unsigned long locked = 0;
  if (sv.f_flag & ST_NOSUID) locked |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) locked |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) locked |= MS_NOEXEC;
  if (sv.f_flag & ST_RDONLY) locked |= MS_RDONLY;
  if (sv.f_flag & ST_NOATIME) locked |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) locked |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) locked |= MS_RELATIME;
  return mount(nullptr, path, nullptr, flags | locked, data);
}

static int reopen_in_root(int root, const char* rel, int* fd, char* path) {
  if (*fd >= 0) close(*fd);
  *fd = openat2_in_root(root, rel, O_PATH, 0);
  if (*fd < 0) return -1;
  fd_path(path, *fd);
  return 0;
}

static int do_mount_in_root(PreparedPlan* p, const PreparedOp& o) {
  int root = p->slots[SLOT_ROOT];
  uint32_t f = o.op.flags;
  if (f & (MNT_CREATE_DIR | MNT_CREATE_FILE)) {
    if (ensure_in_root(root, o.s[1], (f & MNT_CREATE_FILE) != 0) < 0) return -1;
  }
  int target = -1;
  char path[64];
  if (reopen_in_root(root, o.s[1], &target, path) < 0) return -1;
  const char* source = o.s[0];
  char srcpath[64];
  int srcfd = -1;
  if (f & MNT_SOURCE_IN_ROOT) {
    srcfd = openat2_in_root(root, source, O_PATH, 0);
    if (srcfd < 0) { int e = errno; close(target); errno = e; return -1; }
    fd_path(srcpath, srcfd);
    source = srcpath;
  }
  // MS_REMOUNT in a: change the flags of what is already mounted there.
  int r = (o.op.a & MS_REMOUNT) ? remount(path, (unsigned long)o.op.a, o.s[3])
                                : mount(source, path, o.s[2], (unsigned long)o.op.a, o.s[3]);
  int e = errno;
  if (srcfd >= 0) close(srcfd);
  if (r == 0 && (o.op.c || o.op.b)) {
    // Flags and propagation apply to the new mount, which the old fd does not see.
    r = reopen_in_root(root, o.s[1], &target, path);
    if (r == 0 && o.op.c) r = remount(path, (unsigned long)o.op.c, nullptr);
    if (r == 0 && o.op.b) r = mount(nullptr, path, nullptr, (unsigned long)o.op.b, nullptr);
    e = errno;
  }
  close(target);
  errno = e;
  return r;
}

static int do_mask(PreparedPlan* p, const PreparedOp& o) {
  int fd = openat2_in_root(p->slots[SLOT_ROOT], o.s[1], O_PATH, 0);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  struct stat st;
  char path[64];
  fd_path(path, fd);
  int r = fstat(fd, &st);
  if (r == 0) {
    if (S_ISDIR(st.st_mode))
      r = mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0k");
    else
      r = mount("/dev/null", path, nullptr, MS_BIND, nullptr);
  }
  int e = errno;
  close(fd);
  errno = e;
  return r;
}

static int do_readonly(PreparedPlan* p, const PreparedOp& o) {
  int root = p->slots[SLOT_ROOT];
  int fd = openat2_in_root(root, o.s[1], O_PATH, 0);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  char path[64];
  fd_path(path, fd);
  int r = mount(path, path, nullptr, MS_BIND | MS_REC, nullptr);
  if (r == 0) r = reopen_in_root(root, o.s[1], &fd, path);
  if (r == 0) r = remount(path, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr);
  int e = errno;
  if (fd >= 0) close(fd);
  errno = e;
  return r;
}

static int do_mknod(PreparedPlan* p, const PreparedOp& o) {
  char base[256];
  int parent = open_parent_in_root(p->slots[SLOT_ROOT], o.s[1], base, sizeof(base));
  if (parent < 0) return -1;
  int r = mknodat(parent, base, (mode_t)o.op.a, (dev_t)o.op.b);
  if (r < 0 && errno == EEXIST) {
    unlinkat(parent, base, 0);
    r = mknodat(parent, base, (mode_t)o.op.a, (dev_t)o.op.b);
  }
  if (r == 0 && o.op.c != -1) {
    uid_t uid = (uid_t)((uint64_t)o.op.c >> 32);
    gid_t gid = (gid_t)((uint64_t)o.op.c & 0xffffffffu);
    r = fchownat(parent, base, uid, gid, AT_SYMLINK_NOFOLLOW);
  }
  // mknod applies the umask; the config's fileMode is what the user asked for.
  if (r == 0) r = fchmodat(parent, base, (mode_t)o.op.a & 07777, 0);
  int e = errno;
  close(parent);
  errno = e;
  return r;
}

static int do_symlink(PreparedPlan* p, const PreparedOp& o) {
  char base[256];
  int parent = open_parent_in_root(p->slots[SLOT_ROOT], o.s[1], base, sizeof(base));
  if (parent < 0) return -1;
  int r = symlinkat(o.s[0], parent, base);
  if (r < 0 && errno == EEXIST) r = 0;
  int e = errno;
  close(parent);
  errno = e;
  return r;
}

ssize_t fds_send(int sock, const void* data, size_t len, const int* fds, int nfds) {
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  struct iovec iov = {(void*)data, len};
  union {
    char buf[CMSG_SPACE(sizeof(int) * FDS_MAX)];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof(u));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    if (nfds > FDS_MAX) {
      errno = EINVAL;
      return -1;
    }
    msg.msg_control = u.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do { n = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
  return n;
}

ssize_t fds_recv(int sock, void* data, size_t len, int* fds, int max, int* nfds) {
  *nfds = 0;
  struct iovec iov = {data, len};
  union {
    char buf[CMSG_SPACE(sizeof(int) * FDS_MAX)];
    struct cmsghdr align;
  } u;
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = u.buf;
  msg.msg_controllen = sizeof(u.buf);
  ssize_t n;
  do { n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
  struct cmsghdr* c = n >= 0 ? CMSG_FIRSTHDR(&msg) : nullptr;
  if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
    int got = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int keep = got < max ? got : max;
    memcpy(fds, CMSG_DATA(c), sizeof(int) * keep);
    // More than asked for: not ours to hold.
    for (int i = keep; i < got; i++) {
      int extra;
      memcpy(&extra, CMSG_DATA(c) + sizeof(int) * i, sizeof(int));
      close(extra);
    }
    *nfds = keep;
  }
  return n;
}

ssize_t fd_send(int sock, const void* data, size_t len, int fd) { return fds_send(sock, data, len, &fd, fd >= 0 ? 1 : 0); }

ssize_t fd_recv(int sock, void* data, size_t len, int* fd) {
  int n = 0;
  *fd = -1;
  return fds_recv(sock, data, len, fd, 1, &n);
}

static int send_fd(int sock, int fd, const char* name) {
  return fd_send(sock, name, strlen(name), fd) < 0 ? -1 : 0;
}

static int do_console(PreparedPlan* p, const PreparedOp& o) {
  int root = p->slots[SLOT_ROOT];
  // The pty must come from the container's own devpts instance.
  int master = openat2_in_root(root, "dev/pts/ptmx", O_RDWR | O_NOCTTY, 0);
  if (master < 0) return -1;
  int unlock = 0;
  int r = ioctl(master, TIOCSPTLCK, &unlock);
  int slave = r < 0 ? -1 : ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) { int e = errno; close(master); errno = e; return -1; }
  if (o.op.b > 0 && o.op.c > 0) {
    struct winsize ws;
    memset(&ws, 0, sizeof(ws));
    ws.ws_row = (unsigned short)o.op.b;
    ws.ws_col = (unsigned short)o.op.c;
    ioctl(master, TIOCSWINSZ, &ws);
  }
  // /dev/console is the slave, bound over an empty file as runc does.
  if (!(o.op.flags & CONSOLE_NO_DEVCONSOLE) && ensure_in_root(root, "dev/console", true) == 0) {
    int target = openat2_in_root(root, "dev/console", O_PATH, 0);
    if (target >= 0) {
      char tpath[64], spath[64];
      fd_path(tpath, target);
      fd_path(spath, slave);
      r = mount(spath, tpath, nullptr, MS_BIND, nullptr);
      close(target);
      if (r < 0) { int e = errno; close(master); close(slave); errno = e; return -1; }
    }
  }
  int sock = p->slots[o.op.a];
  r = sock >= 0 ? send_fd(sock, master, "/dev/ptmx") : 0;
  int e = errno;
  close(master);
  if (r < 0) { close(slave); errno = e; return -1; }
  if (sock >= 0) { close(sock); p->slots[o.op.a] = -1; }
  p->slots[SLOT_PTY] = slave;
  return 0;
}

static int do_pivot_root(PreparedPlan* p, const PreparedOp& o) {
  int root = p->slots[SLOT_ROOT];
  if (fchdir(root) < 0) return -1;
  if (o.op.flags & PIVOT_NO_PIVOT) {
    if (mount(".", "/", nullptr, MS_MOVE, nullptr) < 0) return -1;
    if (chroot(".") < 0) return -1;
  } else {
    int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0) return -1;
    if (syscall(SYS_pivot_root, ".", ".") < 0) { int e = errno; close(oldroot); errno = e; return -1; }
    // The old root now sits on top of "."; make it a slave first so its
    // unmount cannot propagate to the host, then detach it.
    if (fchdir(oldroot) < 0) { int e = errno; close(oldroot); errno = e; return -1; }
    close(oldroot);
    if (mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0) return -1;
    if (umount2(".", MNT_DETACH) < 0) return -1;
  }
  if (chdir("/") < 0) return -1;
  close(root);
  p->slots[SLOT_ROOT] = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  return p->slots[SLOT_ROOT] < 0 ? -1 : 0;
}

static int do_close_fds(PreparedPlan* p, const PreparedOp& o) {
  int first = (int)o.op.a;
  // Keep the slot fds: sort them (insertion sort; no allocation) and close the gaps.
  int keep[SLOT_COUNT];
  int n = 0;
  for (int i = 0; i < (int)SLOT_COUNT; i++) {
    int fd = p->slots[i];
    if (fd < first) continue;
    int j = n++;
    while (j > 0 && keep[j - 1] > fd) { keep[j] = keep[j - 1]; j--; }
    keep[j] = fd;
  }
  int from = first;
  for (int i = 0; i < n; i++) {
    if (keep[i] > from && syscall(SYS_close_range, from, keep[i] - 1, 0) < 0) return -1;
    from = keep[i] + 1;
  }
  if (syscall(SYS_close_range, from, ~0U, 0) < 0) return -1;
  // stdio and --preserve-fds (3..first-1) are handed to the process as they
  // are; Node marks its own stdio close-on-exec, so clear that.
  for (int fd = 0; fd < first; fd++) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0 && (fl & FD_CLOEXEC)) fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
  }
  return 0;
}

static int do_capset(const PreparedOp& o) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  uint64_t e = (uint64_t)o.op.a, pm = (uint64_t)o.op.b, in = (uint64_t)o.op.c;
  data[0].effective = (uint32_t)e;
  data[1].effective = (uint32_t)(e >> 32);
  data[0].permitted = (uint32_t)pm;
  data[1].permitted = (uint32_t)(pm >> 32);
  data[0].inheritable = (uint32_t)in;
  data[1].inheritable = (uint32_t)(in >> 32);
  return (int)syscall(SYS_capset, &hdr, data);
}

static bool is_executable(const char* path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

// exec.LookPath with the container's PATH, as runc does before waiting for start.
static int do_resolve_exec(PreparedPlan* p, const PreparedOp& o) {
  const char* file = o.s[0];
  size_t flen = strlen(file);
  if (flen == 0) { errno = ENOENT; return -1; }
  if (strchr(file, '/')) {
    if (flen >= sizeof(p->exec_path)) { errno = ENAMETOOLONG; return -1; }
    memcpy(p->exec_path, file, flen + 1);
    if (is_executable(file)) return 0;
    if (access(file, F_OK) == 0) { errno = EACCES; return -1; }
    return -1;
  }
  const char* path = o.s[1] ? o.s[1] : "";
  const char* dir = path;
  while (true) {
    const char* end = strchr(dir, ':');
    size_t dlen = end ? (size_t)(end - dir) : strlen(dir);
    if (dlen == 0) { dir = "."; dlen = 1; }
    if (dlen + 1 + flen < sizeof(p->exec_path)) {
      memcpy(p->exec_path, dir, dlen);
      p->exec_path[dlen] = '/';
      memcpy(p->exec_path + dlen + 1, file, flen + 1);
      if (is_executable(p->exec_path)) return 0;
    }
    if (!end) break;
    dir = end + 1;
  }
  errno = ENOENT;
  return -1;
}

static int do_wait_start(PreparedPlan* p, uint32_t step, const PreparedOp&) {
  // The fifo is reopened for writing through the container's /proc (as runc
  // does), so the init never holds a host directory. Check now that this
  // will work (a /proc, and a free descriptor under RLIMIT_NOFILE): after
  // READY nobody is left to hear about a failure.
  char path[64];
  fd_path(path, p->slots[SLOT_EXEC_FIFO]);
  int probe = open(path, O_PATH | O_CLOEXEC);
  if (probe < 0) return -1;
  close(probe);
  // `create` exits as soon as it reads READY: stop dying with it first.
  prctl(PR_SET_PDEATHSIG, 0);
  child_send(p, MSG_READY, step, 0, 0);
  // Blocks until `start` opens the fifo for reading.
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t w = write(fd, "0", 1);
  int e = errno;
  close(fd);
  errno = e;
  return w == 1 ? 0 : -1;
}

// Loads the filter. With SCMP_ACT_NOTIFY rules the kernel returns a listener
// fd: it goes to the runtime on the sync socket (SCM_RIGHTS; the runtime
// hands it to process.seccomp.listenerPath), and the init waits for the ack
// so the listener has it before any notified syscall can block on it.
static int do_seccomp(PreparedPlan* p, uint32_t step, const PreparedOp& o) {
  struct sock_fprog_compat {
    unsigned short len;
    const void* filter;
  } prog = {(unsigned short)(o.op.a / 8), o.s[0]};
  int r = (int)syscall(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, (unsigned)o.op.b, &prog);
  if (r < 0 || !((unsigned)o.op.b & SECCOMP_FLAG_NEW_LISTENER)) return r < 0 ? -1 : 0;
  ChildMsg m = {MSG_SECCOMP_FD, step, 0, r};
  ssize_t n = fd_send(p->slots[SLOT_SYNC], &m, sizeof(m), r);
  int e = errno;
  close(r);
  if (n < 0) { errno = e; return -1; }
  char ack;
  do { n = read(p->slots[SLOT_SYNC], &ack, 1); } while (n < 0 && errno == EINTR);
  if (n != 1) _exit(1);  // the runtime died: nobody holds the listener
  return 0;
}

static int run_op(PreparedPlan* p, uint32_t i) {
  const PreparedOp& o = p->ops[i];
  switch (o.op.code) {
    case OP_PRCTL:
      return prctl((int)o.op.a, (unsigned long)o.op.b, 0, 0, 0);
    case OP_CLOSE_FDS:
      return do_close_fds(p, o);
    case OP_SYNC: {
      child_send(p, MSG_SYNC, i, 0, (int)o.op.a);
      char c;
      ssize_t r;
      do { r = read(p->slots[SLOT_SYNC], &c, 1); } while (r < 0 && errno == EINTR);
      if (r != 1) _exit(1);  // the runtime died: nobody is left to finish setup
      return 0;
    }
    case OP_SETNS: {
      int fd;
      if (o.op.flags & SETNS_FROM_SLOT) {
        if (o.op.b < 0 || o.op.b >= SLOT_COUNT || p->slots[o.op.b] < 0) { errno = EBADF; return -1; }
        fd = p->slots[o.op.b];
        p->slots[o.op.b] = -1;
      } else {
        fd = open(o.s[0], O_RDONLY | O_CLOEXEC);
      }
      if (fd < 0) return -1;
      int r = setns(fd, (int)o.op.a);
      int e = errno;
      close(fd);
      errno = e;
      return r;
    }
    case OP_UNSHARE:
      return unshare((int)o.op.a);
    case OP_SETRESID:
      if (syscall(SYS_setresgid, (gid_t)o.op.b, (gid_t)o.op.b, (gid_t)o.op.b) < 0) return -1;
      return (int)syscall(SYS_setresuid, (uid_t)o.op.a, (uid_t)o.op.a, (uid_t)o.op.a);
    case OP_WRITE_FILE: {
      int fd = open(o.s[0], O_WRONLY | O_CLOEXEC);
      if (fd < 0) return -1;
      size_t len = strlen(o.s[1]);
      ssize_t w = write(fd, o.s[1], len);
      int e = errno;
      close(fd);
      if (w < 0) { errno = e; return -1; }
      if ((size_t)w != len) { errno = EIO; return -1; }
      return 0;
    }
    case OP_SETHOSTNAME:
      return sethostname(o.s[0], strlen(o.s[0]));
    case OP_SETDOMAINNAME:
      return setdomainname(o.s[0], strlen(o.s[0]));
    case OP_MOUNT:
      if (o.op.a & MS_REMOUNT) return remount(o.s[1], (unsigned long)o.op.a, o.s[3]);
      return mount(o.s[0], o.s[1], o.s[2], (unsigned long)o.op.a, o.s[3]);
    case OP_OPEN_SLOT: {
      if (o.op.a < 0 || o.op.a >= SLOT_COUNT) { errno = EBADF; return -1; }
      int fd = open(o.s[0], (int)o.op.b | O_CLOEXEC);
      if (fd < 0) return -1;
      if (p->slots[o.op.a] >= 0) close(p->slots[o.op.a]);
      p->slots[o.op.a] = fd;
      return 0;
    }
    case OP_MOUNT_IN_ROOT: {
      int r = do_mount_in_root(p, o);
      if (r < 0 && errno == ENOENT && (o.op.flags & MNT_IGNORE_ENOENT)) return 0;
      return r;
    }
    case OP_MKNOD_IN_ROOT:
      return do_mknod(p, o);
    case OP_SYMLINK_IN_ROOT:
      return do_symlink(p, o);
    case OP_MASK_IN_ROOT:
      return do_mask(p, o);
    case OP_READONLY_IN_ROOT:
      return do_readonly(p, o);
    case OP_CONSOLE:
      return do_console(p, o);
    case OP_PIVOT_ROOT:
      return do_pivot_root(p, o);
    case OP_SETRLIMIT: {
      struct rlimit rl = {(rlim_t)o.op.b, (rlim_t)o.op.c};
      return (int)syscall(SYS_prlimit64, 0, (int)o.op.a, &rl, nullptr);
    }
    case OP_SETSID: {
      if (setsid() < 0) return -1;
      int pty = p->slots[SLOT_PTY];
      if (pty < 0) return 0;
      if (ioctl(pty, TIOCSCTTY, 0) < 0) return -1;
      for (int fd = 0; fd < 3; fd++)
        if (dup2(pty, fd) < 0) return -1;
      return 0;
    }
    case OP_CAP_BOUNDING: {
      uint64_t keep = (uint64_t)o.op.a;
      for (int cap = 0; cap <= (int)o.op.b && cap < 64; cap++) {
        if (keep & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) return -1;
      }
      return 0;
    }
    case OP_SETGROUPS:
      return (int)syscall(SYS_setgroups, o.ngids, o.gids);
    case OP_SETUSER:
      // Keep the permitted set across the uid change; OP_CAPSET then sets
      // exactly the configured sets.
      if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return -1;
      if (syscall(SYS_setresgid, (gid_t)o.op.b, (gid_t)o.op.b, (gid_t)o.op.b) < 0) return -1;
      if (syscall(SYS_setresuid, (uid_t)o.op.a, (uid_t)o.op.a, (uid_t)o.op.a) < 0) return -1;
      return prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    case OP_CAPSET:
      return do_capset(o);
    case OP_CAP_AMBIENT:
      for (int cap = 0; cap < 64; cap++) {
        if (!((uint64_t)o.op.a & (1ULL << cap))) continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) return -1;
      }
      return 0;
    case OP_UMASK:
      umask((mode_t)o.op.a);
      return 0;
    case OP_CHDIR: {
      if (p->cwd_done) return 0;
      if (chdir(o.s[0]) < 0) {
        if ((o.op.flags & CHDIR_AS_ROOT) && (errno == EACCES || errno == EPERM)) return 0;
        return -1;
      }
      // A cwd reached through a leaked host fd (CVE-2024-21626) is outside our
      // root; the raw syscall reports it as "(unreachable)/...".
      char cwd[4096];
      long r = syscall(SYS_getcwd, cwd, sizeof(cwd));
      if (r < 0) return -1;
      if (cwd[0] != '/') { errno = EXDEV; return -1; }
      p->cwd_done = true;
      return 0;
    }
    case OP_SECCOMP:
      return do_seccomp(p, i, o);
    case OP_RESOLVE_EXEC:
      return do_resolve_exec(p, o);
    case OP_WAIT_START:
      return do_wait_start(p, i, o);
    case OP_LOOPBACK_UP: {
      // An ioctl on any socket of the namespace: no netlink message to build.
      int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (s < 0) return -1;
      struct ifreq ifr;
      memset(&ifr, 0, sizeof(ifr));
      memcpy(ifr.ifr_name, "lo", 3);
      int r = ioctl(s, SIOCGIFFLAGS, &ifr);
      if (r == 0) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(s, SIOCSIFFLAGS, &ifr);
      }
      int e = errno;
      close(s);
      errno = e;
      return r;
    }
    case OP_MKDIR_IN_ROOT:
      return ensure_in_root(p->slots[SLOT_ROOT], o.s[1], false);
    case OP_DUP2:
      return dup2((int)o.op.a, (int)o.op.b) < 0 ? -1 : 0;
    case OP_REPORT_READY:
      child_send(p, MSG_READY, i, 0, 0);
      return 0;
    case OP_EXEC:
      execve(p->exec_path[0] ? p->exec_path : o.list[0][0], o.list[0], o.list[1]);
      return -1;
    default:
      errno = ENOSYS;
      return -1;
  }
}

[[noreturn]] static void child_run(PreparedPlan* p, uint32_t from, uint32_t to) {
  for (uint32_t i = from; i < to; i++) {
    if (run_op(p, i) < 0) child_fail(p, i, errno);
  }
  // A plan that does not exec ends here; report success to whoever waits.
  _exit(0);
}

// ---------------------------------------------------------------------------
// Parent side: spawn and the sync protocol.

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

// clone3 with CLONE_INTO_CGROUP: the child is born in the cgroup v2
// directory cgroup_fd, so no instant of it runs outside its cgroup. Returns
// -1/ENOSYS-like errors when the kernel cannot, and the caller falls back.
static pid_t raw_clone_into(uint64_t flags, int cgroup_fd) {
  struct {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
  } args;
  memset(&args, 0, sizeof(args));
  args.flags = (flags & ~0xffULL) | CLONE_INTO_CGROUP;
  args.exit_signal = flags & 0xff;
  args.cgroup = (uint64_t)cgroup_fd;
  // fork-like like raw_clone: no stack, the child continues on a copy of ours.
  return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

static pid_t raw_clone(uint64_t flags) {
  // fork-like: no new stack, the child continues on a copy of this one.
  return (pid_t)syscall(SYS_clone, (unsigned long)flags, nullptr, nullptr, nullptr, nullptr);
}

static void fmt_int(char* out, long v);

// cgroup.procs of the directory cgroup_fd <- pid (no allocation).
static int place_in_cgroup(int cgroup_fd, pid_t pid) {
  char num[16];
  fmt_int(num, pid);
  int fd = openat(cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t w = write(fd, num, strlen(num));
  int e = errno;
  close(fd);
  if (w < 0) { errno = e; return -1; }
  return 0;
}

// The intermediate process: joins the namespaces given by path (ops [0, k)),
// then clones the init into them.
[[noreturn]] static void child_intermediate(PreparedPlan* plan, uint32_t k, uint32_t n, int cgroup_fd) {
  plan->slots[SLOT_CGROUP] = cgroup_fd;  // an OP_CLOSE_FDS among ops [0, k) keeps it
  for (uint32_t i = 0; i < k; i++)
    if (run_op(plan, i) < 0) child_fail(plan, i, errno);
  // CLONE_PARENT: the init becomes our parent's child, as with runc's
  // stage-2, so the runtime (and then a subreaper) owns it.
  // The gate keeps the init quiet until its pid is on the socket, so the
  // runtime always reads MSG_PID first.
  int gate[2];
  if (pipe2(gate, O_CLOEXEC) < 0) child_fail(plan, k, errno);
  // Born in its cgroup where the kernel can (clone3, 5.7+); otherwise the
  // runtime moves the init at the CLONED sync, before it runs anything of
  // the user's (it does so in any case for v1).
  pid_t init = cgroup_fd >= 0 ? raw_clone_into(plan->header.clone_flags | CLONE_PARENT, cgroup_fd) : -1;
  const bool born_in = init >= 0;
  if (init < 0) init = raw_clone(plan->header.clone_flags | CLONE_PARENT);
  if (init == 0) {
    close(gate[1]);
    char c;
    if (read(gate[0], &c, 1) != 1) _exit(1);
    close(gate[0]);
    if (cgroup_fd >= 0) close(cgroup_fd);  // the init never holds a host directory
    plan->slots[SLOT_CGROUP] = -1;
    child_run(plan, k, n);
  }
  if (init < 0) child_fail(plan, k, errno);
  // No clone3 (seccomp'd to ENOSYS in some containers, or Linux < 5.7): move
  // it while the gate still holds it. This write waits for an RCU grace
  // period, which is why clone3 is tried first.
  if (cgroup_fd >= 0 && !born_in && place_in_cgroup(cgroup_fd, init) < 0) {
    int e = errno;
    kill(init, SIGKILL);
    child_fail(plan, n + STEP_CGROUP_PLACEMENT, e);
  }
  child_send(plan, MSG_PID, k, 0, init);
  (void)!write(gate[1], "1", 1);
  _exit(0);
}

void plan_spawner_main(PreparedPlan* plan, int cgroup_fd) {
  child_intermediate(plan, plan->header.intermediate_ops, plan->header.op_count, cgroup_fd);
}

// What the child needs to become the init binary: prepared in the parent,
// because the child may not allocate.
struct Reexec {
  int plan_fd;
  int keep_below;  // stdio and --preserve-fds: [0, keep_below) survive execve
  int carry[SLOT_COUNT];  // fds OP_DUP2 reads (a hook's stdin and output)
  int ncarry;
  char num[5][16];
  char* argv[7];
};

static void fmt_int(char* out, long v) {
  char tmp[16];
  int n = 0;
  bool neg = v < 0;
  unsigned long u = neg ? (unsigned long)-v : (unsigned long)v;
  do { tmp[n++] = (char)('0' + u % 10); u /= 10; } while (u && n < 15);
  int j = 0;
  if (neg) out[j++] = '-';
  while (n) out[j++] = tmp[--n];
  out[j] = 0;
}

static int prepare_reexec(PreparedPlan* plan, int cgroup_fd, Reexec* r) {
  r->keep_below = 3;
  r->ncarry = 0;
  bool closes = false;
  for (uint32_t i = 0; i < plan->header.op_count; i++) {
    const PlanOp& op = plan->ops[i].op;
    if (op.code == OP_CLOSE_FDS && !closes) {
      r->keep_below = (int)op.a;
      closes = true;
    }
    if (op.code == OP_DUP2 && r->ncarry < (int)SLOT_COUNT) r->carry[r->ncarry++] = (int)op.a;
  }
  r->plan_fd = (int)syscall(SYS_memfd_create, "tsrun-plan", MFD_CLOEXEC);
  if (r->plan_fd < 0) return -errno;
  size_t off = 0;
  while (off < plan->length) {
    ssize_t w = write(r->plan_fd, plan->bytes + off, plan->length - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = w < 0 ? errno : EIO;
      close(r->plan_fd);
      return -e;
    }
    off += (size_t)w;
  }
  fmt_int(r->num[0], r->plan_fd);
  fmt_int(r->num[1], plan->slots[SLOT_SYNC]);
  fmt_int(r->num[2], plan->slots[SLOT_CONSOLE_SOCKET]);
  fmt_int(r->num[3], r->keep_below);
  fmt_int(r->num[4], cgroup_fd);
  r->argv[0] = (char*)"tsrun-init";
  r->argv[1] = r->num[0];
  r->argv[2] = r->num[1];
  r->argv[3] = r->num[2];
  r->argv[4] = r->num[3];
  r->argv[5] = r->num[4];
  r->argv[6] = nullptr;
  return 0;
}

static void keep_across_exec(int fd) {
  if (fd < 0) return;
  int fl = fcntl(fd, F_GETFD);
  if (fl >= 0 && (fl & FD_CLOEXEC)) fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
}

// The child's first act: become the sealed init binary (native/init-main.cc),
// so no process of the container ever runs as, or can reach through
// /proc/<pid>/exe, a host file (CVE-2019-5736), and the init no longer
// carries a copy of the runtime's memory.
[[noreturn]] static void child_reexec(PreparedPlan* plan, Reexec* r, int cgroup_fd) {
  for (int fd = 0; fd < r->keep_below; fd++) keep_across_exec(fd);
  for (int i = 0; i < r->ncarry; i++) keep_across_exec(r->carry[i]);
  keep_across_exec(plan->slots[SLOT_SYNC]);
  keep_across_exec(plan->slots[SLOT_CONSOLE_SOCKET]);
  keep_across_exec(r->plan_fd);
  keep_across_exec(cgroup_fd);
  static char* const envp[] = {nullptr};
  syscall(SYS_execveat, plan->init_exe_fd, "", r->argv, envp, AT_EMPTY_PATH);
  child_fail(plan, plan->header.op_count + STEP_INIT_EXEC, errno);
}

int plan_prespawn(int init_exe_fd, Prespawn* out) {
  out->pid = -1;
  out->sock = -1;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
  // Prepared here: the child may not allocate.
  char num[16];
  fmt_int(num, sv[1]);
  char* argv[] = {(char*)"tsrun-init", (char*)PRESPAWN_ARG, num, nullptr};
  static char* const envp[] = {nullptr};
  pid_t pid = raw_clone(SIGCHLD);
  if (pid == 0) {
    close(sv[0]);
    keep_across_exec(sv[1]);
    syscall(SYS_execveat, init_exe_fd, "", argv, envp, AT_EMPTY_PATH);
    _exit(127);
  }
  int e = errno;
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    return -e;
  }
  out->pid = pid;
  out->sock = sv[0];
  return 0;
}

void plan_prespawn_cancel(Prespawn* pre) {
  if (pre->sock >= 0) close(pre->sock);  // its wait ends with EOF and it exits
  pre->sock = -1;
  if (pre->pid > 0) {
    int status;
    while (waitpid(pre->pid, &status, __WALL) < 0 && errno == EINTR) {}
  }
  pre->pid = -1;
}

// Hands the prepared re-exec to a waiting tsrun-init (PRESPAWN_ARG): what
// child_reexec would pass it on its command line, as descriptors. Our copies
// are closed by the caller as for a clone.
static int prespawn_hand_over(Prespawn* pre, PreparedPlan* plan, Reexec* r, int cgroup_fd) {
  PrespawnArgs a = {r->keep_below, plan->slots[SLOT_CONSOLE_SOCKET] >= 0, cgroup_fd >= 0};
  int fds[4];
  int n = 0;
  fds[n++] = r->plan_fd;
  fds[n++] = plan->slots[SLOT_SYNC];
  if (a.has_console) fds[n++] = plan->slots[SLOT_CONSOLE_SOCKET];
  if (a.has_cgroup) fds[n++] = cgroup_fd;
  ssize_t w = fds_send(pre->sock, &a, sizeof(a), fds, n);
  int e = errno;
  close(pre->sock);
  pre->sock = -1;
  if (w != (ssize_t)sizeof(a)) {
    plan_prespawn_cancel(pre);
    return -(w < 0 ? e : EIO);
  }
  return 0;  // its exit (after cloning the init) is waited for as a clone's would be
}

pid_t plan_spawn(PreparedPlan* plan, int console_socket, int cgroup_fd, int* sync_fd, ChildMsg* failure) {
  return plan_spawn_prespawned(plan, nullptr, console_socket, cgroup_fd, sync_fd, failure);
}

pid_t plan_spawn_prespawned(PreparedPlan* plan, Prespawn* pre, int console_socket, int cgroup_fd, int* sync_fd,
                            ChildMsg* failure) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
  plan->slots[SLOT_SYNC] = sv[1];
  plan->slots[SLOT_CONSOLE_SOCKET] = console_socket;
  const uint32_t n = plan->header.op_count;
  const uint32_t k = plan->header.intermediate_ops;
  Reexec rx;
  rx.plan_fd = -1;
  if (plan->init_exe_fd >= 0) {
    int r = prepare_reexec(plan, cgroup_fd, &rx);
    if (r < 0) {
      close(sv[0]);
      close(sv[1]);
      plan->slots[SLOT_SYNC] = -1;
      return r;
    }
  }
  // With the init binary, a plain clone (no namespaces) execs it while still
  // in the runtime's user namespace (an exec in a fresh user namespace,
  // before its id maps exist, would drop every capability), and it clones
  // the init as an intermediate does: the spawner path below for every plan.
  const bool spawner = rx.plan_fd >= 0 || k > 0;
  pid_t pid;
  if (!spawner) {
    pid = cgroup_fd >= 0 ? raw_clone_into(plan->header.clone_flags | SIGCHLD, cgroup_fd) : -1;
    if (pid < 0) pid = raw_clone(plan->header.clone_flags | SIGCHLD);
    if (pid == 0) {
      close(sv[0]);
      child_run(plan, 0, n);
    }
  } else if (pre && pre->pid > 0 && rx.plan_fd >= 0 && rx.ncarry == 0 &&
             prespawn_hand_over(pre, plan, &rx, cgroup_fd) == 0) {
    // A tsrun-init already exec'd and waiting (plan_prespawn) got what the
    // exec below would have passed it. (Descriptors OP_DUP2 carries are the
    // addon's hooks', never a launcher's: those take the clone. One that is
    // gone takes it too: the hand-over failed and reaped it.)
    pid = pre->pid;
    pre->pid = -1;
  } else {
    if (pre && pre->pid > 0) plan_prespawn_cancel(pre);
    pid_t mid = raw_clone(SIGCHLD);
    if (mid == 0) {
      close(sv[0]);
      if (rx.plan_fd >= 0) child_reexec(plan, &rx, cgroup_fd);
      child_intermediate(plan, k, n, cgroup_fd);
    }
    pid = mid;
  }
  int err = errno;
  if (rx.plan_fd >= 0) close(rx.plan_fd);
  close(sv[1]);
  plan->slots[SLOT_SYNC] = -1;
  if (pid < 0) {
    close(sv[0]);
    return -err;
  }
  if (spawner) {
    // Collect the intermediate, then learn the init's pid from it.
    int status;
    while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {}
    ChildMsg m;
    int r = plan_next(sv[0], false, 30000, &m);
    if (r <= 0 || m.kind != MSG_PID) {
      if (r > 0 && failure) *failure = m;
      close(sv[0]);
      return r > 0 ? -EPROTO : (r == 0 ? -ECHILD : r);
    }
    pid = m.arg;
  }
  *sync_fd = sv[0];
  return pid;
}

int plan_next(int sync_fd, bool ack, int timeout_ms, ChildMsg* msg) {
  if (ack) {
    char c = 1;
    if (send(sync_fd, &c, 1, MSG_NOSIGNAL) < 0) return errno == EPIPE ? 0 : -errno;
  }
  struct pollfd pfd = {sync_fd, POLLIN, 0};
  int r;
  do { r = poll(&pfd, 1, timeout_ms); } while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  if (r == 0) return -ETIMEDOUT;
  // MSG_SECCOMP_FD carries a descriptor (it lands in msg->arg).
  int passed;
  ssize_t n = fd_recv(sync_fd, msg, sizeof(*msg), &passed);
  if (n < 0) return errno == ECONNRESET ? 0 : -errno;
  if (n == 0) {
    if (passed >= 0) close(passed);
    return 0;
  }
  if ((size_t)n != sizeof(*msg) || (msg->kind == MSG_SECCOMP_FD) != (passed >= 0)) {
    if (passed >= 0) close(passed);
    return -EPROTO;
  }
  if (passed >= 0) msg->arg = passed;
  return 1;
}
