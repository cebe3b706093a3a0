/* The limit for the MLP bench: wick's own libtorch binding called in a loop, with no
 * HTTP, JSON or queue in between. Loads a TorchScript file the way the native worker
 * does (frozen at load unless told otherwise), runs forward on one [1,16] float32
 * tensor, warms up, then times each call and prints one JSON line:
 *   {"model": ..., "iterations": N, "threads": T, "p50_us": ..., "p99_us": ...,
 *    "mean_us": ..., "calls_per_s": ...}
 *
 * usage: forward_loop MODEL.pt [iterations=20000] [threads=1] [freeze=1]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/torch.h"
#include "core/error.h"
#include "tensor/tensor.h"

#define WARMUP 1000
#define IN_FEATURES 16

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static long parse_long(const char *s, const char *what, long lo, long hi) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "forward_loop: %s must be an integer in [%ld, %ld], got '%s'\n", what, lo,
            hi, s);
    exit(2);
  }
  return v;
}

/* Nearest-rank percentile of sorted samples. */
static double percentile(const double *sorted, size_t n, double p) {
  size_t k = (size_t)(p / 100.0 * (double)n + 0.5);
  if (k < 1) k = 1;
  if (k > n) k = n;
  return sorted[k - 1];
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 5 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    fprintf(stderr, "usage: %s MODEL.pt [iterations=20000] [threads=1] [freeze=1]\n",
            argc > 0 ? argv[0] : "forward_loop");
    return 2;
  }
  const char *path = argv[1];
  long iters = argc > 2 ? parse_long(argv[2], "iterations", 1, 100000000L) : 20000;
  long threads = argc > 3 ? parse_long(argv[3], "threads", 1, 256) : 1;
  long freeze = argc > 4 ? parse_long(argv[4], "freeze", 0, 1) : 1;

  if (!wk_torch_available()) {
    fprintf(stderr, "forward_loop: wick was built without libtorch\n");
    return 1;
  }
  wk_torch_set_threads((int)threads);

  wk_err_t err = {{0}};
  wk_torch_opts_t opts = {.freeze = (int)freeze, .device = -1};
  wk_torch_model_t *model = NULL;
  int rc = wk_torch_load(path, &opts, &model, &err);
  if (rc != 0) {
    fprintf(stderr, "forward_loop: cannot load %s: %s (%s)\n", path, err.msg, wk_strerror(rc));
    return 1;
  }

  wk_value_t *input = wk_value_new(WK_V_TENSOR);
  double *samples = calloc((size_t)iters, sizeof *samples);
  if (input == NULL || samples == NULL) {
    fprintf(stderr, "forward_loop: out of memory\n");
    return 1;
  }
  const int64_t shape[2] = {1, IN_FEATURES};
  rc = wk_tensor_alloc(&input->tensor, WK_DT_FLOAT32, 2, shape);
  if (rc != 0) {
    fprintf(stderr, "forward_loop: cannot allocate the input: %s\n", wk_strerror(rc));
    return 1;
  }
  float *x = input->tensor.data;
  for (int i = 0; i < IN_FEATURES; i++) x[i] = (float)(i + 1) / (float)IN_FEATURES;
  const wk_value_t *args[1] = {input};

  for (long i = 0; i < WARMUP + iters; i++) {
    wk_value_t *out = NULL;
    double t0 = now_us();
    rc = wk_torch_forward(model, args, 1, &out, &err);
    double t1 = now_us();
    if (rc != 0) {
      fprintf(stderr, "forward_loop: forward failed at call %ld: %s (%s)\n", i, err.msg,
              wk_strerror(rc));
      return 1;
    }
    wk_value_free(out);
    if (i >= WARMUP) samples[i - WARMUP] = t1 - t0;
  }

  double total = 0;
  for (long i = 0; i < iters; i++) total += samples[i];
  qsort(samples, (size_t)iters, sizeof *samples, cmp_double);
  double mean = total / (double)iters;

  printf("{\"model\": ");
  json_string(path);
  printf(", \"iterations\": %ld, \"threads\": %ld, \"freeze\": %ld, \"p50_us\": %.2f, "
         "\"p99_us\": %.2f, \"mean_us\": %.2f, \"calls_per_s\": %.1f}\n",
         iters, threads, freeze, percentile(samples, (size_t)iters, 50),
         percentile(samples, (size_t)iters, 99), mean, total > 0 ? 1e6 * (double)iters / total : 0.0);

  free(samples);
  wk_value_free(input);
  wk_torch_free(model);
  return 0;
}
