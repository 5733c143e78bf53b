// The wire protocol between the native launcher (native/launcher.cc, which
// is bin/tsrun) and a resident engine (src/engine/, through native/engine.cc).
//
// One SOCK_SEQPACKET connection per command: every message is one datagram
// (EngineMsg header, then payload bytes), descriptors ride on it with
// SCM_RIGHTS. The engine speaks first (HELLO with its build id), so a
// launcher that finds the engine busy or from another build has sent nothing
// and can still run the command cold without it having happened twice.
//
// src/engine/protocol.ts mirrors these numbers; bump ENGINE_PROTO_VERSION on
// any change (it is part of the build id both sides compare).
#pragma once
#include <stdint.h>

#define ENGINE_PROTO_VERSION 6
// Where engines listen: <dir>/<fnv1a64(absolute --root) as 16 hex>.sock
#define ENGINE_SOCKET_DIR "/run/tsrun-engine"
// Upper bound of one datagram (a plan is a few KB; env and argv less).
#define ENGINE_MAX_MSG (4u << 20)

struct EngineMsg {
  uint32_t type;
  int32_t a, b, c, d;
};
static_assert(sizeof(EngineMsg) == 20, "wire layout");

enum EngineMsgType : uint32_t {
  // engine -> launcher
  EM_HELLO = 1,       // payload: build id; fd: the sealed tsrun-init, so a launcher
                      // can exec its spawner while the engine compiles the plan
  EM_EXIT = 2,        // a = exit status; the command is over
  EM_FALLBACK = 3,    // run the command cold (nothing of it has happened)
  EM_SPAWN = 4,       // payload: plan; fds: sealed tsrun-init, [console if a] [cgroup dir if b];
                      // c = foreground
                      // (5 and 6, protocol 5's relays of the init's messages: unused)
  EM_REAP = 7,        // wait (bounded, b ms) for child a, already killed
  EM_CLEANUP = 8,     // payload: argv (NUL-separated) that undoes the command
                      // cold if the engine dies before EM_EXIT/EM_WAIT
  EM_WAIT = 9,        // a = pid: wait for it (forwarding signals) and exit with
                      // its status; payload: argv (NUL-separated) to run
                      // afterwards through an engine or cold (run's delete), or empty;
                      // b > 0: the engine waits b ms on this connection for
                      // EM_EXITED and then runs that argv itself, answering EM_EXIT
                      // (a process that outlives the wait finds the connection
                      // closed: the argv then goes the usual way)

  // launcher -> engine
  EM_REQUEST = 101,   // a = umask, b = argc, c = envc;
                      // payload: build id, cwd, argv..., env... (each NUL-terminated);
                      // fds: stdin, stdout, stderr
  EM_SPAWNED = 102,   // a = pid; fd: the sync socket, which is the engine's from
                      // then on (it talks to the init as the addon does cold)
  EM_SPAWN_FAILED = 103, // a = -errno of clone, or 0 with a ChildMsg payload (intermediate op failed)
                      // (104, protocol 5's relayed init message: unused)
  EM_DONE = 105,      // reply to REAP (a = 1 when reaped)
  EM_CONTROL = 106,   // payload: build id, then "status" or "stop"
  EM_EXITED = 107,    // after EM_WAIT with b > 0: the process is gone (a = its status)
};
