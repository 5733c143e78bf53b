// Interleaved A/B timing of commands, for development on a busy machine.
//
//   cc -O2 -o bench/.build/ab bench/ab.c
//   bench/.build/ab [-n RUNS] [-w WARMUP] [--json] 'cmd1 args' 'cmd2 args' ...
//
// hyperfine runs one command's runs back to back, so a change in machine
// load between commands biases the comparison. This runs the commands round
// robin (run i of every command before run i+1 of any), each by fork+execvp
// with no shell (arguments split on spaces), stdout and stderr to /dev/null,
// and reports per command the median, 25th percentile and minimum wall time
// and the median CPU time (user+sys from wait4) in milliseconds.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static double quantile(double* v, int n, double q) {
  qsort(v, n, sizeof(double), cmp);
  double pos = q * (n - 1);
  int lo = (int)pos;
  int hi = lo + 1 < n ? lo + 1 : lo;
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

static char** split(const char* s) {
  char* copy = strdup(s);
  int cap = 8, n = 0;
  char** argv = malloc(cap * sizeof(char*));
  for (char* tok = strtok(copy, " "); tok; tok = strtok(NULL, " ")) {
    if (n + 2 > cap) argv = realloc(argv, (cap *= 2) * sizeof(char*));
    argv[n++] = tok;
  }
  argv[n] = NULL;
  return argv;
}

static int run(char** argv, double* wall, double* cpu) {
  double t0 = now_ms();
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    execvp(argv[0], argv);
    _exit(127);
  }
  int status;
  struct rusage ru;
  if (wait4(pid, &status, 0, &ru) < 0) return -1;
  *wall = now_ms() - t0;
  *cpu = ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char** argv) {
  int runs = 30, warmup = 3, json = 0, first = 1;
  for (; first < argc && argv[first][0] == '-'; first++) {
    if (!strcmp(argv[first], "-n") && first + 1 < argc) runs = atoi(argv[++first]);
    else if (!strcmp(argv[first], "-w") && first + 1 < argc) warmup = atoi(argv[++first]);
    else if (!strcmp(argv[first], "--json")) json = 1;
    else if (!strcmp(argv[first], "--")) { first++; break; }
    else { fprintf(stderr, "usage: ab [-n RUNS] [-w WARMUP] [--json] CMD...\n"); return 2; }
  }
  int ncmd = argc - first;
  if (ncmd <= 0 || runs <= 0) { fprintf(stderr, "usage: ab [-n RUNS] [-w WARMUP] [--json] CMD...\n"); return 2; }
  char*** cmds = malloc(ncmd * sizeof(char**));
  double* wall = calloc((size_t)ncmd * runs, sizeof(double));
  double* cpu = calloc((size_t)ncmd * runs, sizeof(double));
  int* failed = calloc(ncmd, sizeof(int));
  for (int c = 0; c < ncmd; c++) cmds[c] = split(argv[first + c]);
  for (int i = -warmup; i < runs; i++) {
    for (int c = 0; c < ncmd; c++) {
      double w = 0, u = 0;
      int rc = run(cmds[c], &w, &u);
      if (rc != 0) failed[c]++;
      if (i >= 0) {
        wall[c * runs + i] = w;
        cpu[c * runs + i] = u;
      }
    }
    if (!json) fprintf(stderr, "\r%d/%d", i + 1 + warmup, runs + warmup);
  }
  if (!json) fprintf(stderr, "\n");
  if (json) printf("[\n");
  for (int c = 0; c < ncmd; c++) {
    double* w = wall + c * runs;
    double* u = cpu + c * runs;
    double med = quantile(w, runs, 0.5), p25 = quantile(w, runs, 0.25), min = quantile(w, runs, 0);
    double cmed = quantile(u, runs, 0.5);
    if (json)
      printf("  {\"command\": \"%s\", \"median\": %.3f, \"p25\": %.3f, \"min\": %.3f, \"cpu_median\": %.3f, \"nonzero_exits\": %d}%s\n",
             argv[first + c], med, p25, min, cmed, failed[c], c + 1 < ncmd ? "," : "");
    else
      printf("%8.2f med %8.2f p25 %8.2f min %8.2f cpu  %s%s\n", med, p25, min, cmed, argv[first + c],
             failed[c] ? " (non-zero exits)" : "");
  }
  if (json) printf("]\n");
  return 0;
}
