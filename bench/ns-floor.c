// The C floor of `tsrun bench`: the same clone -> child exit -> waitpid
// cycles as native/nsbench.cc, from a small C process instead of Node, so the
// report can show what tsrun's harness adds (bench/ns.sh compiles it with
// cc -O2; `tsrun bench --floor` runs it per case).
//
//   ns-floor [--kinds none,uts,...] [--iterations N] [--warmup N] [--cpu N] [--fork] [--samples]
//
// Prints JSON on stdout: {"tool":"ns-floor","unit":"us","results":[{"name",
// "iterations","cycle":{"n","min","mean","p50","p90","p99","max"}}]}; with --samples
// each result also has "samples" (every cycle in µs, in run order).
// Percentiles interpolate linearly between closest ranks, as src/bench/stats.ts.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x80
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

struct kind {
  const char* name;
  unsigned long clone_flags;
  int unshare_flags;
  int fork_like;
};

#define RUNC (CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS)

// The namespace cases of src/bench/ns.ts, same names.
static const struct kind KINDS[] = {
    {"none", 0, 0, 0},
    {"none-fork", 0, 0, 1},
    {"pid", CLONE_NEWPID, 0, 0},
    {"mount", CLONE_NEWNS, 0, 0},
    {"uts", CLONE_NEWUTS, 0, 0},
    {"ipc", CLONE_NEWIPC, 0, 0},
    {"net", CLONE_NEWNET, 0, 0},
    {"user", CLONE_NEWUSER, 0, 0},
    {"cgroup", CLONE_NEWCGROUP, 0, 0},
    {"time", 0, CLONE_NEWTIME, 0},
    {"runc", RUNC, 0, 0},
    {"all", RUNC | CLONE_NEWUSER | CLONE_NEWCGROUP, CLONE_NEWTIME, 0},
};
#define NKINDS (sizeof(KINDS) / sizeof(KINDS[0]))

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static volatile int child_err;

static int child_main(void* arg) {
  const struct kind* k = arg;
  if (k->unshare_flags && unshare(k->unshare_flags) < 0) {
    child_err = errno;
    _exit(1);
  }
  _exit(0);
}

#define STACK_SIZE (256 * 1024)

// One cycle; returns microseconds or -1.
static double cycle(const struct kind* k, int fork_like, char* stack) {
  unsigned long flags = k->clone_flags;  // no exit signal, as nsbench.cc: waitpid(__WALL) reaps
  int64_t t0 = now_ns();
  pid_t pid;
  if (fork_like || k->fork_like) {
    pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
    if (pid == 0) child_main((void*)k);
  } else {
    pid = clone(child_main, stack + STACK_SIZE, (int)(flags | CLONE_VM | CLONE_VFORK | CLONE_FILES), (void*)k);
  }
  if (pid < 0) return -1;
  int status;
  while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {}
  int64_t t1 = now_ns();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    errno = child_err ? child_err : EIO;
    return -1;
  }
  return (double)(t1 - t0) / 1000.0;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static double quantile(const double* s, int n, double q) {
  double pos = q * (n - 1);
  int lo = (int)pos;
  int hi = lo + 1 < n ? lo + 1 : n - 1;
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

static void usage(void) {
  fprintf(stderr, "usage: ns-floor [--kinds LIST] [--iterations N] [--warmup N] [--cpu N] [--fork]\nkinds:");
  for (size_t i = 0; i < NKINDS; i++) fprintf(stderr, " %s", KINDS[i].name);
  fprintf(stderr, "\n");
  exit(2);
}

int main(int argc, char** argv) {
  const char* kinds = NULL;
  int iterations = 1000, warmup = 50, cpu = -1, fork_like = 0, want_samples = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--kinds") && i + 1 < argc) kinds = argv[++i];
    else if (!strcmp(argv[i], "--iterations") && i + 1 < argc) iterations = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--cpu") && i + 1 < argc) cpu = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--fork")) fork_like = 1;
    else if (!strcmp(argv[i], "--samples")) want_samples = 1;
    else usage();
  }
  if (iterations < 1 || warmup < 0) usage();
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0) {
      perror("ns-floor: sched_setaffinity");
      return 1;
    }
  }
  char* stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  double* samples = malloc(sizeof(double) * (size_t)iterations);
  double* ordered = malloc(sizeof(double) * (size_t)iterations);
  if (stack == MAP_FAILED || !samples || !ordered) {
    perror("ns-floor: allocation");
    return 1;
  }
  printf("{\"tool\": \"ns-floor\", \"unit\": \"us\", \"results\": [");
  int first = 1;
  for (size_t i = 0; i < NKINDS; i++) {
    const struct kind* k = &KINDS[i];
    if (kinds) {
      // exact match of one comma-separated name
      size_t len = strlen(k->name);
      const char* p = kinds;
      int found = 0;
      while (*p) {
        const char* e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == len && !strncmp(p, k->name, len)) found = 1;
        p += l + (e ? 1 : 0);
      }
      if (!found) continue;
    }
    for (int w = 0; w < warmup; w++) {
      if (cycle(k, fork_like, stack) < 0) {
        fprintf(stderr, "ns-floor: %s: %s\n", k->name, strerror(errno));
        return 1;
      }
    }
    double sum = 0;
    for (int n = 0; n < iterations; n++) {
      double us = cycle(k, fork_like, stack);
      if (us < 0) {
        fprintf(stderr, "ns-floor: %s: %s\n", k->name, strerror(errno));
        return 1;
      }
      samples[n] = ordered[n] = us;
      sum += us;
    }
    qsort(samples, (size_t)iterations, sizeof(double), cmp);
    printf("%s\n  {\"name\": \"%s\", \"iterations\": %d, \"clone\": \"%s\", \"cycle\": {\"n\": %d, \"min\": %.3f, \"mean\": %.3f, "
           "\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"max\": %.3f}",
           first ? "" : ",", k->name, iterations, (fork_like || k->fork_like) ? "fork" : "vm", iterations, samples[0],
           sum / iterations, quantile(samples, iterations, 0.5), quantile(samples, iterations, 0.9),
           quantile(samples, iterations, 0.99), samples[iterations - 1]);
    if (want_samples) {
      printf(", \"samples\": [");
      for (int n = 0; n < iterations; n++) printf("%s%.3f", n ? "," : "", ordered[n]);
      printf("]");
    }
    printf("}");
    first = 0;
    fflush(stdout);
  }
  printf("\n]}\n");
  return 0;
}
