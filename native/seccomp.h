// Seccomp through libseccomp, in the runtime (parent) process only.
//
// TypeScript (src/plan/seccomp.ts) validates and normalizes the OCI profile
// into numbers: libseccomp builds the filter from them and exports it as
// classic BPF, which the plan carries to the executor's OP_SECCOMP. Nothing
// here runs after clone: the child only calls seccomp(2) on the prepared
// bytes, so libseccomp may allocate freely.
//
// addon.cc exposes SeccompExports() as `addon.seccomp` (typed in src/native.ts):
//   version                 "2.5.4": the libseccomp this addon was linked with
//   resolveArch(name)       libseccomp arch token for "x86_64", ..., 0 if unknown
//   resolveSyscall(name)    native syscall number, -1 (__NR_SCMP_ERROR) if unknown
//   actionAvailable(act)    seccomp(SECCOMP_GET_ACTION_AVAIL) for a SECCOMP_RET_* action
//   flagSupported(flag)     whether the kernel accepts a SECCOMP_FILTER_FLAG_*
//   compile(profile)        the BPF program (Buffer of 8-byte sock_filter entries)
#pragma once
#include <napi.h>

Napi::Object SeccompExports(Napi::Env env);
