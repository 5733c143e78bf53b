// One engine_proto.h datagram in or out, with its descriptors: shared by the
// launcher (native/launcher.cc) and the engine's addon calls (native/engine.cc).
#pragma once
#include <stddef.h>

#include <string>
#include <vector>

#include "engine_proto.h"

// Sends header + payload with up to 8 fds (SCM_RIGHTS). Returns 0 or -errno.
int wire_send(int sock, const EngineMsg& h, const char* payload, size_t len, const int* fds, size_t nfds);

// Receives one datagram (fds arrive close-on-exec). Returns 1, 0 on EOF
// (or a reset peer), -errno; -EPROTO for one too short or too long.
int wire_recv(int sock, EngineMsg* h, std::string* payload, std::vector<int>* fds);
