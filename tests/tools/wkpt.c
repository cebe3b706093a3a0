/* wkpt: dumps what wick's safe .pt reader sees, for the pytest that compares it with torch:
 * `wkpt [--strict] [--all] FILE` prints one JSON object with every tensor's dtype, shape,
 * strides, offset and its elements as hex (row-major, gathered through the strides).
 * `wkpt --write OUT FILE` writes FILE's state_dict tensors to OUT with wick's writer.
 * Errors go to stderr as "wkpt: <message>" with exit status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "weights/pt.h"

static int put_tensor(wk_buf_t *b, const wk_pt_tensor_t *t) {
  wk_buf_puts(b, "{\"name\": ");
  wk_buf_json_str(b, t->name);
  wk_buf_printf(b, ", \"dtype\": \"%s\", \"shape\": [", wk_dtype_name(t->dtype));
  for (int d = 0; d < t->ndim; d++)
    wk_buf_printf(b, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
  wk_buf_puts(b, "], \"strides\": [");
  for (int d = 0; d < t->ndim; d++)
    wk_buf_printf(b, "%s%lld", d ? ", " : "", (long long)t->strides[d]);
  wk_buf_printf(b,
                "], \"offset\": %lld, \"contiguous\": %s, \"requires_grad\": %s, "
                "\"is_parameter\": %s, \"device\": \"%s\", \"hex\": \"",
                (long long)t->offset, t->contiguous ? "true" : "false",
                t->requires_grad ? "true" : "false", t->is_parameter ? "true" : "false", t->device);
  unsigned char *tmp = malloc(t->nbytes ? t->nbytes : 1);
  if (tmp == NULL) return 1;
  wk_pt_tensor_copy(t, tmp);
  if (t->data) {
    for (size_t i = 0; i < t->nbytes; i++)
      wk_buf_printf(b, "%02x", tmp[i]);
  }
  free(tmp);
  wk_buf_puts(b, "\"}");
  return 0;
}

int main(int argc, char **argv) {
  unsigned flags = 0;
  int all = 0;
  const char *path = NULL, *write_to = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--write") == 0 && i + 1 < argc)
      write_to = argv[++i];
    else if (strcmp(argv[i], "--strict") == 0)
      flags |= WK_PT_STRICT;
    else if (strcmp(argv[i], "--all") == 0)
      all = 1;
    else
      path = argv[i];
  }
  if (path == NULL) {
    fprintf(stderr, "usage: wkpt [--strict] [--all] FILE.pt\n");
    return 2;
  }
  wk_pt_t *pt;
  wk_err_t err;
  if (wk_pt_open(path, flags, &pt, &err) != 0) {
    fprintf(stderr, "wkpt: %s\n", err.msg);
    return 1;
  }
  if (write_to) {
    wk_pt_tensor_t *ts = calloc(wk_pt_count(pt) + 1, sizeof *ts);
    for (size_t i = 0; i < wk_pt_count(pt); i++)
      ts[i] = *wk_pt_tensor(pt, i);
    int rc = wk_pt_write(write_to, ts, wk_pt_count(pt), &err);
    free(ts);
    wk_pt_close(pt);
    if (rc != 0) fprintf(stderr, "wkpt: %s\n", err.msg);
    return rc != 0;
  }
  wk_buf_t b = WK_BUF_INIT;
  const char *sd = wk_pt_state_dict_path(pt);
  wk_buf_printf(&b, "{\"kind\": \"%s\", \"version\": %d, \"state_dict\": ",
                wk_pt_kind(pt) == WK_PT_TORCHSCRIPT ? "torchscript" : "checkpoint",
                wk_pt_version(pt));
  if (sd)
    wk_buf_json_str(&b, sd);
  else
    wk_buf_puts(&b, "null");
  wk_buf_puts(&b, ",\n \"tensors\": [");
  size_t n = all ? wk_pt_all_count(pt) : wk_pt_count(pt);
  for (size_t i = 0; i < n; i++) {
    wk_buf_puts(&b, i ? ",\n  " : "\n  ");
    put_tensor(&b, all ? wk_pt_all_tensor(pt, i) : wk_pt_tensor(pt, i));
  }
  wk_buf_puts(&b, "],\n \"opaque\": [");
  for (size_t i = 0; i < wk_pt_opaque_count(pt); i++) {
    const wk_pt_opaque_t *o = wk_pt_opaque(pt, i);
    wk_buf_puts(&b, i ? ", {\"path\": " : "{\"path\": ");
    wk_buf_json_str(&b, o->path);
    wk_buf_puts(&b, ", \"global\": ");
    wk_buf_json_str(&b, o->global);
    wk_buf_puts(&b, "}");
  }
  wk_buf_puts(&b, "]}\n");
  fwrite(b.data, 1, b.len, stdout);
  wk_buf_destroy(&b);
  wk_pt_close(pt);
  return 0;
}
