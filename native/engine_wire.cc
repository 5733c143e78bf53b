#include "engine_wire.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

namespace {
const size_t MAX_FDS = 8;
union Control {
  char b[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  struct cmsghdr align;
};
}  // namespace

int wire_send(int sock, const EngineMsg& h, const char* payload, size_t len, const int* fds, size_t nfds) {
  if (nfds > MAX_FDS) return -EINVAL;
  std::string data((const char*)&h, sizeof(h));
  data.append(payload, len);
  struct iovec iov = {(void*)data.data(), data.size()};
  Control u;
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (nfds > 0) {
    mh.msg_control = u.b;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do { n = sendmsg(sock, &mh, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  return n == (ssize_t)data.size() ? 0 : -EMSGSIZE;
}

int wire_recv(int sock, EngineMsg* h, std::string* payload, std::vector<int>* fds) {
  fds->clear();
  payload->clear();
  // SEQPACKET keeps boundaries: peek at the size, then take the whole datagram.
  ssize_t size;
  do { size = recv(sock, nullptr, 0, MSG_PEEK | MSG_TRUNC); } while (size < 0 && errno == EINTR);
  if (size == 0 || (size < 0 && errno == ECONNRESET)) return 0;
  if (size < 0) return -errno;
  if ((size_t)size < sizeof(EngineMsg) || (size_t)size > ENGINE_MAX_MSG) return -EPROTO;
  std::vector<char> buf(size);
  struct iovec iov = {buf.data(), (size_t)size};
  Control u;
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = u.b;
  mh.msg_controllen = sizeof(u.b);
  ssize_t n;
  do { n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
  if (n == 0) return 0;
  if (n < 0) return errno == ECONNRESET ? 0 : -errno;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds->push_back(fd);
    }
  }
  if ((size_t)n < sizeof(EngineMsg)) return -EPROTO;
  memcpy(h, buf.data(), sizeof(EngineMsg));
  payload->assign(buf.data() + sizeof(EngineMsg), n - sizeof(EngineMsg));
  return 1;
}
