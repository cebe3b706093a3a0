/* Test tool for the integrated-gradients backend: loads a TorchScript model the way the
 * native worker does (frozen unless -F), reads one float32 input from a raw file, runs
 * wk_torch_integrated_gradients and writes the attribution as raw float32 to stdout and
 * one JSON line to stderr:
 *   {"target": T, "f_x": ..., "f_base": ..., "sum": ..., "repeat": R, "first_ms": ...,
 *    "median_ms": ..., "parallel_forwards": P}
 * median_ms is over the calls after the first (the first also loads the autograd copy).
 * With -p a second thread runs forward on the same model for as long as the explanations
 * run. On failure it prints "wkig: <message>" to stderr and exits 1 (2 for bad usage).
 *
 * usage: wkig [-t target] [-n steps] [-b internal_batch] [-r repeat] [-j threads] [-F] [-p]
 *             MODEL.pt INPUT.f32 SHAPE (e.g. 1,1,28,28)
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/torch.h"
#include "core/error.h"
#include "tensor/tensor.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long parse_long(const char *s, const char *what, long lo, long hi) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "wkig: %s must be an integer in [%ld, %ld], got '%s'\n", what, lo, hi, s);
    exit(2);
  }
  return v;
}

/* Parses "1,1,28,28" into shape; returns the rank. */
static int parse_shape(const char *s, int64_t *shape) {
  int ndim = 0;
  const char *p = s;
  for (;;) {
    char *end = NULL;
    errno = 0;
    long long d = strtoll(p, &end, 10);
    if (errno != 0 || end == p || d < 1 || d > (1LL << 31) || ndim == WK_MAX_DIMS) {
      fprintf(stderr,
              "wkig: SHAPE must be up to %d positive integers separated by commas, got '%s'\n",
              WK_MAX_DIMS, s);
      exit(2);
    }
    shape[ndim++] = d;
    if (*end == '\0') return ndim;
    if (*end != ',') {
      fprintf(stderr, "wkig: bad SHAPE '%s'\n", s);
      exit(2);
    }
    p = end + 1;
  }
}

static int read_input(const char *path, wk_tensor_t *x, wk_err_t *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return wk_err(err, WK_EIO, "%s: %s", path, strerror(errno));
  size_t got = fread(x->data, 1, x->nbytes, f);
  int extra = fgetc(f) != EOF;
  fclose(f);
  if (got != x->nbytes || extra) {
    char shape[128];
    wk_shape_str(x->shape, x->ndim, shape, sizeof shape);
    return wk_err(err, WK_EINVAL, "%s: expected exactly %zu bytes (float32 %s)", path, x->nbytes,
                  shape);
  }
  return 0;
}

typedef struct {
  wk_torch_model_t *model;
  const wk_tensor_t *x;
  atomic_int stop;
  long calls;
  int failed;
  wk_err_t err;
} forward_loop_t;

/* Runs forward on the input until told to stop: load on the model while IG runs. */
static void *forward_thread(void *arg) {
  forward_loop_t *fl = arg;
  wk_value_t *in = wk_value_new(WK_V_TENSOR);
  if (in == NULL) {
    fl->failed = 1;
    return NULL;
  }
  in->tensor = *fl->x;
  in->tensor.owns_data = 0; /* a view of the caller's input */
  const wk_value_t *args[1] = {in};
  while (!atomic_load(&fl->stop)) {
    wk_value_t *out = NULL;
    if (wk_torch_forward(fl->model, args, 1, &out, &fl->err) != 0) {
      fl->failed = 1;
      break;
    }
    wk_value_free(out);
    fl->calls++;
  }
  wk_value_free(in);
  return NULL;
}

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s [-t target] [-n steps] [-b internal_batch] [-r repeat] [-j threads] [-F] "
          "[-p] MODEL.pt INPUT.f32 SHAPE\n",
          argv0);
  exit(2);
}

int main(int argc, char **argv) {
  long target = -1, steps = 50, batch = 0, repeat = 1, threads = 0;
  int freeze = 1, parallel = 0, opt;
  while ((opt = getopt(argc, argv, "t:n:b:r:j:Fp")) != -1) {
    switch (opt) {
    /* Wider than the API accepts on purpose: the backend must reject bad values. */
    case 't': target = parse_long(optarg, "target", -1000000, 1000000); break;
    case 'n': steps = parse_long(optarg, "steps", -1000000, 1000000); break;
    case 'b': batch = parse_long(optarg, "internal_batch", -1000000, 1000000); break;
    case 'r': repeat = parse_long(optarg, "repeat", 1, 100000); break;
    case 'j': threads = parse_long(optarg, "threads", 0, 256); break;
    case 'F': freeze = 0; break;
    case 'p': parallel = 1; break;
    default: usage(argv[0]);
    }
  }
  if (argc - optind != 3) usage(argv[0]);
  const char *model_path = argv[optind], *input_path = argv[optind + 1];
  int64_t shape[WK_MAX_DIMS];
  int ndim = parse_shape(argv[optind + 2], shape);

  wk_err_t err = {{0}};
  wk_tensor_t x = {0};
  if (wk_tensor_alloc(&x, WK_DT_FLOAT32, ndim, shape) != 0 ||
      read_input(input_path, &x, &err) != 0) {
    fprintf(stderr, "wkig: %s\n", err.msg[0] ? err.msg : "input too large");
    return 1;
  }
  if (threads > 0) wk_torch_set_threads((int)threads);
  wk_torch_opts_t opts = {.freeze = freeze, .device = -1};
  wk_torch_model_t *model = NULL;
  if (wk_torch_load(model_path, &opts, &model, &err) != 0) {
    fprintf(stderr, "wkig: %s\n", err.msg);
    wk_tensor_destroy(&x);
    return 1;
  }

  double *ms = calloc((size_t)repeat, sizeof *ms);
  if (ms == NULL) {
    fprintf(stderr, "wkig: out of memory\n");
    return 1;
  }
  forward_loop_t fl = {.model = model, .x = &x};
  pthread_t tid;
  if (parallel && pthread_create(&tid, NULL, forward_thread, &fl) != 0) {
    fprintf(stderr, "wkig: cannot start the forward thread\n");
    return 1;
  }
  wk_tensor_t attr = {0};
  int64_t target_used = -1;
  double f_x = 0, f_base = 0;
  int rc = 0;
  for (long i = 0; i < repeat && rc == 0; i++) {
    wk_tensor_destroy(&attr);
    double t0 = now_ms();
    rc = wk_torch_integrated_gradients(model, &x, target, (int)steps, (int)batch, &attr,
                                       &target_used, &f_x, &f_base, &err);
    ms[i] = now_ms() - t0;
  }
  if (parallel) {
    atomic_store(&fl.stop, 1);
    pthread_join(tid, NULL);
    if (fl.failed) {
      fprintf(stderr, "wkig: forward in the parallel thread failed: %s\n", fl.err.msg);
      rc = rc ? rc : WK_EINTERNAL;
    }
  }
  if (rc != 0) {
    fprintf(stderr, "wkig: %s (%s)\n", err.msg, wk_strerror(rc));
    free(ms);
    wk_torch_free(model);
    wk_tensor_destroy(&x);
    return 1;
  }

  double first_ms = ms[0];
  if (repeat > 1) qsort(ms + 1, (size_t)(repeat - 1), sizeof *ms, cmp_double);
  double median_ms = repeat > 1 ? ms[1 + (repeat - 1) / 2] : first_ms;
  free(ms);
  const float *a = attr.data;
  double sum = 0;
  for (int64_t i = 0; i < wk_tensor_numel(&attr); i++)
    sum += a[i];
  int ok = fwrite(attr.data, 1, attr.nbytes, stdout) == attr.nbytes && fflush(stdout) == 0;
  fprintf(stderr,
          "{\"target\": %lld, \"f_x\": %.9g, \"f_base\": %.9g, \"sum\": %.9g, \"repeat\": %ld, "
          "\"first_ms\": %.3f, \"median_ms\": %.3f, \"parallel_forwards\": %ld}\n",
          (long long)target_used, f_x, f_base, sum, repeat, first_ms, median_ms, fl.calls);
  wk_tensor_destroy(&attr);
  wk_torch_free(model);
  wk_tensor_destroy(&x);
  if (!ok) {
    fprintf(stderr, "wkig: cannot write the attribution to stdout\n");
    return 1;
  }
  return 0;
}
