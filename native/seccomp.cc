// Seccomp filters built with libseccomp in the runtime process. Read seccomp.h.
#include "seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <vector>

#ifndef SECCOMP_SET_MODE_FILTER
#define SECCOMP_SET_MODE_FILTER 1
#endif
#ifndef SECCOMP_GET_ACTION_AVAIL
#define SECCOMP_GET_ACTION_AVAIL 2
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

// The operator numbers TypeScript sends are libseccomp's enum values.
static_assert(SCMP_CMP_NE == 1 && SCMP_CMP_LT == 2 && SCMP_CMP_LE == 3 && SCMP_CMP_EQ == 4 &&
                  SCMP_CMP_GE == 5 && SCMP_CMP_GT == 6 && SCMP_CMP_MASKED_EQ == 7,
              "src/oci/seccomp-validate.ts SECCOMP_OPERATORS mirrors enum scmp_compare");
// And the actions are the kernel's SECCOMP_RET_* values, which libseccomp uses as is.
static_assert(SCMP_ACT_ALLOW == 0x7fff0000U && SCMP_ACT_KILL_PROCESS == 0x80000000U &&
                  SCMP_ACT_TRAP == 0x00030000U && SCMP_ACT_ERRNO(0) == 0x00050000U &&
                  SCMP_ACT_TRACE(0) == 0x7ff00000U && SCMP_ACT_LOG == 0x7ffc0000U,
              "src/oci/seccomp-validate.ts SECCOMP_ACTIONS mirrors SECCOMP_RET_*");

namespace {

Napi::Error SeccompError(Napi::Env env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

Napi::Value Version(Napi::Env env) {
  const struct scmp_version* v = seccomp_version();
  if (!v) return Napi::String::New(env, "unknown");
  return Napi::String::New(env, std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                                    std::to_string(v->micro));
}

Napi::Value ResolveArch(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  return Napi::Number::New(info.Env(), seccomp_arch_resolve_name(name.c_str()));
}

Napi::Value ResolveSyscall(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  return Napi::Number::New(info.Env(), seccomp_syscall_resolve_name(name.c_str()));
}

// 0 when the kernel knows the action (SECCOMP_RET_* without its data bits).
Napi::Value ActionAvailable(const Napi::CallbackInfo& info) {
  uint32_t action = info[0].As<Napi::Number>().Uint32Value();
  long r = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action);
  return Napi::Boolean::New(info.Env(), r == 0);
}

// A filter flag the kernel knows is checked before the program is read: with
// a NULL program it fails with EFAULT, an unknown flag with EINVAL. Nothing is
// ever installed in this process. WAIT_KILLABLE_RECV is only valid together
// with NEW_LISTENER, so it is probed with it.
Napi::Value FlagSupported(const Napi::CallbackInfo& info) {
  unsigned long flag = info[0].As<Napi::Number>().Uint32Value();
  if (flag & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) flag |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
  long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flag, nullptr);
  return Napi::Boolean::New(info.Env(), r < 0 && errno == EFAULT);
}

uint64_t BigU64(Napi::Value v) {
  if (v.IsBigInt()) {
    bool lossless;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  return (uint64_t)v.As<Napi::Number>().Int64Value();
}

struct Ctx {
  scmp_filter_ctx ctx;
  explicit Ctx(uint32_t def) : ctx(seccomp_init(def)) {}
  ~Ctx() {
    if (ctx) seccomp_release(ctx);
  }
};

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

// compile({ defaultAction, archs: number[], optimize: boolean,
//           rules: [{ syscall, action, args: [{ index, op, value, valueTwo }] }] }) -> Buffer
// A rule libseccomp refuses throws an Error with `rule` (its index) and `errno`.
Napi::Value Compile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object profile = info[0].As<Napi::Object>();
  uint32_t def = profile.Get("defaultAction").As<Napi::Number>().Uint32Value();
  Ctx c(def);
  if (!c.ctx) {
    SeccompError(env, EINVAL, "seccomp_init").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // The filter is exported, never loaded here; the executor sets no_new_privs
  // itself (or not) as the config says, so libseccomp must not ask for it.
  seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_NNP, 0);
  Napi::Array archs = profile.Get("archs").As<Napi::Array>();
  for (uint32_t i = 0; i < archs.Length(); i++) {
    uint32_t arch = archs.Get(i).As<Napi::Number>().Uint32Value();
    int r = seccomp_arch_add(c.ctx, arch);
    // The native architecture is already in a new filter.
    if (r < 0 && r != -EEXIST) {
      Napi::Error e = SeccompError(env, -r, "seccomp_arch_add");
      e.Set("arch", Napi::Number::New(env, i));
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  if (profile.Get("optimize").ToBoolean().Value()) {
    // Binary tree of syscalls for long profiles, as runc does; an old
    // libseccomp without it still builds a correct (linear) filter.
    (void)seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  }
  Napi::Array rules = profile.Get("rules").As<Napi::Array>();
  std::vector<struct scmp_arg_cmp> conds;
  for (uint32_t i = 0; i < rules.Length(); i++) {
    Napi::Object rule = rules.Get(i).As<Napi::Object>();
    int nr = rule.Get("syscall").As<Napi::Number>().Int32Value();
    uint32_t action = rule.Get("action").As<Napi::Number>().Uint32Value();
    Napi::Array args = rule.Get("args").As<Napi::Array>();
    conds.clear();
    for (uint32_t j = 0; j < args.Length(); j++) {
      Napi::Object a = args.Get(j).As<Napi::Object>();
      struct scmp_arg_cmp cmp;
      memset(&cmp, 0, sizeof(cmp));
      cmp.arg = a.Get("index").As<Napi::Number>().Uint32Value();
      cmp.op = (enum scmp_compare)a.Get("op").As<Napi::Number>().Uint32Value();
      cmp.datum_a = BigU64(a.Get("value"));
      cmp.datum_b = BigU64(a.Get("valueTwo"));
      conds.push_back(cmp);
    }
    int r = seccomp_rule_add_array(c.ctx, action, nr, (unsigned)conds.size(), conds.empty() ? nullptr : conds.data());
    if (r < 0) {
      Napi::Error e = SeccompError(env, -r, "seccomp_rule_add");
      e.Set("rule", Napi::Number::New(env, i));
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  // libseccomp 2.5 exports to a descriptor only; a memfd keeps it off disk.
  Fd mem{(int)syscall(SYS_memfd_create, "tsrun-seccomp", MFD_CLOEXEC)};
  if (mem.fd < 0) {
    SeccompError(env, errno, "memfd_create").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int r = seccomp_export_bpf(c.ctx, mem.fd);
  if (r < 0) {
    SeccompError(env, -r, "seccomp_export_bpf").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  struct stat st;
  if (fstat(mem.fd, &st) < 0) {
    SeccompError(env, errno, "fstat").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<uint8_t> bpf((size_t)st.st_size);
  size_t got = 0;
  while (got < bpf.size()) {
    ssize_t n = pread(mem.fd, bpf.data() + got, bpf.size() - got, (off_t)got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      SeccompError(env, n < 0 ? errno : EIO, "reading the exported filter").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    got += (size_t)n;
  }
  return Napi::Buffer<uint8_t>::Copy(env, bpf.data(), bpf.size());
}

}  // namespace

Napi::Object SeccompExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", Version(env));
  o.Set("resolveArch", Napi::Function::New(env, ResolveArch));
  o.Set("resolveSyscall", Napi::Function::New(env, ResolveSyscall));
  o.Set("actionAvailable", Napi::Function::New(env, ActionAvailable));
  o.Set("flagSupported", Napi::Function::New(env, FlagSupported));
  o.Set("compile", Napi::Function::New(env, Compile));
  return o;
}
