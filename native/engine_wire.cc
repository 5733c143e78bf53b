#include "engine_wire.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "executor.h"  // fds_send / fds_recv: the one SCM_RIGHTS implementation

int wire_send(int sock, const EngineMsg& h, const char* payload, size_t len, const int* fds, size_t nfds) {
  if (nfds > FDS_MAX) return -EINVAL;
  std::string data((const char*)&h, sizeof(h));
  data.append(payload, len);
  ssize_t n = fds_send(sock, data.data(), data.size(), fds, (int)nfds);
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
  int got[FDS_MAX];
  int ngot = 0;
  ssize_t n = fds_recv(sock, buf.data(), buf.size(), got, FDS_MAX, &ngot);
  if (n == 0) return 0;
  if (n < 0) return errno == ECONNRESET ? 0 : -errno;
  fds->assign(got, got + ngot);
  if ((size_t)n < sizeof(EngineMsg)) return -EPROTO;
  memcpy(h, buf.data(), sizeof(EngineMsg));
  payload->assign(buf.data() + sizeof(EngineMsg), n - sizeof(EngineMsg));
  return 1;
}
