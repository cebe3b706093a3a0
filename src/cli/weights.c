/* `wick weights transfer --from A.pt --into B.pt -o OUT.pt`: A's tensors in B's layout,
 * read and written with wick's safe .pt reader and writer; nothing from either file is
 * run. The association and the report are weights/transfer.c's. */
#include "cli/weights.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weights/pt.h"
#include "weights/transfer.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: wick weights transfer --from A.pt --into B.pt [-o OUT.pt] [options]\n"
          "\n"
          "Copies A's tensors into B's layout: each tensor of B that an association of the\n"
          "keys gives a tensor of A of the same shape and dtype takes A's values; the others\n"
          "keep B's. OUT.pt is a state_dict with B's keys in B's order.\n"
          "\n"
          "  --association NAME  strict, module-hack, prefix-hack, isomorphism (default) or\n"
          "                      embedding: torch_liberator's load_partial_state associations\n"
          "  --mangle            tensors of equal rank and other shapes get the overlapping\n"
          "                      block (keys ending in 'bias' never do)\n"
          "  --strict            fail (exit 1, OUT.pt not written) unless every tensor of B is\n"
          "                      set whole and every tensor of A is used\n"
          "  --report PATH       write the JSON report to PATH ('-': standard output)\n"
          "  --json              the same as --report -\n");
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "wick weights transfer: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 1;
}

/* The keys of pt's state_dict, for the planner. The caller frees the array. */
static wk_xfer_key_t *keys_of(const wk_pt_t *pt, size_t *n) {
  *n = wk_pt_count(pt);
  wk_xfer_key_t *k = calloc(*n + 1, sizeof *k);
  if (!k) return NULL;
  for (size_t i = 0; i < *n; i++) {
    const wk_pt_tensor_t *t = wk_pt_tensor(pt, i);
    k[i].name = t->name;
    k[i].dtype = t->dtype;
    k[i].ndim = t->ndim;
    k[i].shape = t->shape;
  }
  return k;
}

/* Writes B's layout with A's tensors where the plan says so. */
static int write_out(const char *path, const wk_pt_t *a, const wk_pt_t *b, const wk_xfer_t *x,
                     wk_err_t *err) {
  size_t n = wk_pt_count(b);
  wk_pt_tensor_t *out = calloc(n + 1, sizeof *out);
  void **bufs = calloc(n + 1, sizeof *bufs);
  int rc = WK_ENOMEM;
  if (!out || !bufs) goto done;
  for (size_t i = 0; i < n; i++) {
    const wk_pt_tensor_t *bt = wk_pt_tensor(b, i);
    long src;
    wk_xfer_action_t act = wk_xfer_action(x, i, &src);
    const wk_pt_tensor_t *at = src >= 0 ? wk_pt_tensor(a, (size_t)src) : NULL;
    if (act == WK_XFER_FULL) {
      out[i] = *at;
      out[i].name = bt->name;
      out[i].requires_grad = bt->requires_grad;
    } else {
      out[i] = *bt;
    }
    if (!out[i].data && out[i].numel > 0) {
      rc = wk_err(err, WK_EUNSUPPORTED, "tensor '%s' has no data (a meta tensor)", bt->name);
      goto done;
    }
    if (act == WK_XFER_PARTIAL_SOME || act == WK_XFER_PARTIAL_ALL) {
      if (!at->data && at->numel > 0) {
        rc = wk_err(err, WK_EUNSUPPORTED, "tensor '%s' has no data (a meta tensor)", at->name);
        goto done;
      }
      if (!(bufs[i] = malloc(bt->nbytes ? bt->nbytes : 1))) goto done;
      wk_pt_tensor_copy(bt, bufs[i]);
      wk_xfer_copy_block(at, bufs[i], bt->shape);
      int64_t s = 1;
      for (int d = bt->ndim - 1; d >= 0; d--) {
        out[i].strides[d] = s;
        s *= bt->shape[d];
      }
      out[i].offset = 0;
      out[i].contiguous = true;
      out[i].data = bufs[i];
    }
  }
  rc = wk_pt_write(path, out, n, err);
done:
  if (rc == WK_ENOMEM) wk_err(err, rc, "out of memory");
  for (size_t i = 0; bufs && i < n; i++)
    free(bufs[i]);
  free(bufs);
  free(out);
  return rc;
}

static int cmd_transfer(int argc, char **argv) {
  const char *from = NULL, *into = NULL, *outp = NULL, *report = NULL, *assoc_name = "isomorphism";
  bool mangle = false, strict = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has = i + 1 < argc;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--from") == 0 && has) {
      from = argv[++i];
    } else if (strcmp(a, "--into") == 0 && has) {
      into = argv[++i];
    } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && has) {
      outp = argv[++i];
    } else if (strcmp(a, "--association") == 0 && has) {
      assoc_name = argv[++i];
    } else if (strcmp(a, "--report") == 0 && has) {
      report = argv[++i];
    } else if (strcmp(a, "--json") == 0) {
      report = "-";
    } else if (strcmp(a, "--mangle") == 0) {
      mangle = true;
    } else if (strcmp(a, "--strict") == 0) {
      strict = true;
    } else {
      fprintf(stderr, "wick weights transfer: unknown or incomplete option '%s'\n\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (!from || !into) {
    fprintf(stderr, "wick weights transfer: --from and --into are required\n\n");
    usage(stderr);
    return 2;
  }
  wk_err_t err = {{0}};
  wk_assoc_t assoc;
  if (wk_assoc_parse(assoc_name, &assoc, &err)) return fail("%s", err.msg);
  wk_pt_t *a = NULL, *b = NULL;
  wk_xfer_t *x = NULL;
  wk_xfer_key_t *ka = NULL, *kb = NULL;
  int status = 1;
  if (wk_pt_open(from, 0, &a, &err)) {
    fail("%s: %s", from, err.msg);
    goto done;
  }
  if (wk_pt_open(into, 0, &b, &err)) {
    fail("%s: %s", into, err.msg);
    goto done;
  }
  size_t na, nb;
  ka = keys_of(a, &na);
  kb = keys_of(b, &nb);
  if (!ka || !kb) {
    fail("out of memory");
    goto done;
  }
  double t0 = now_s();
  if (wk_xfer_plan(ka, na, kb, nb, assoc, mangle, &x, &err)) {
    fail("%s", err.msg);
    goto done;
  }
  double t1 = now_s();
  char sum[256];
  wk_xfer_summary(x, sum, sizeof sum);
  fprintf(stderr, "wick weights transfer: %s (%s, %zu into %zu keys, mapped in %.1f ms)\n", sum,
          assoc_name, na, nb, (t1 - t0) * 1e3);
  if (report) {
    char *js = wk_xfer_report_json(x, 2);
    FILE *f = strcmp(report, "-") == 0 ? stdout : fopen(report, "w");
    if (!js || !f) {
      free(js);
      fail("cannot write the report to %s", report);
      goto done;
    }
    fputs(js, f);
    fputc('\n', f);
    free(js);
    if (f != stdout && fclose(f) != 0) {
      fail("cannot write the report to %s", report);
      goto done;
    }
  }
  if (strict && !wk_xfer_perfect(x)) {
    fail("--strict: not a perfect fit (%s)%s", sum, outp ? ", nothing written" : "");
    goto done;
  }
  if (outp && write_out(outp, a, b, x, &err)) {
    fail("%s: %s", outp, err.msg);
    goto done;
  }
  status = 0;
done:
  wk_xfer_free(x);
  free(ka);
  free(kb);
  wk_pt_close(a);
  wk_pt_close(b);
  return status;
}

int wk_cmd_weights(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "transfer") == 0) return cmd_transfer(argc - 1, argv + 1);
  fprintf(stderr, "wick weights: unknown subcommand '%s' (expected transfer)\n\n", argv[1]);
  usage(stderr);
  return 2;
}
