/* libFuzzer target: the partial state transfer planner on key sets taken from the input
 * (checkpoint names are untrusted): every association, with and without mangling, and
 * the invariants between its counts, actions and report. Input: one key per line, a line
 * "--" between the checkpoint's keys and the model's; a key's shape comes from a hash of
 * its bytes, so equal names get equal shapes and the rest vary. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "weights/transfer.h"

#define MAX_KEYS 512

typedef struct {
  wk_xfer_key_t k[MAX_KEYS];
  int64_t shape[MAX_KEYS][3];
  size_t n;
} side_t;

static void add_key(side_t *s, char *name) {
  if (s->n >= MAX_KEYS) return;
  uint32_t h = 2166136261u;
  for (const char *c = name; *c; c++)
    h = (h ^ (unsigned char)*c) * 16777619u;
  size_t i = s->n++;
  s->k[i].name = name;
  s->k[i].dtype = (h >> 30) == 3 ? WK_DT_INT64 : WK_DT_FLOAT32;
  s->k[i].ndim = (int)(h % 3);
  for (int d = 0; d < 3; d++)
    s->shape[i][d] = 1 + (int64_t)((h >> (4 + 3 * d)) & 3);
  s->k[i].shape = s->shape[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  static side_t a, b;
  a.n = b.n = 0;
  side_t *cur = &a;
  for (char *line = text, *next; line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    if (strcmp(line, "--") == 0) cur = &b;
    else if (*line) add_key(cur, line);
  }
  for (int assoc = WK_ASSOC_STRICT; assoc <= WK_ASSOC_EMBEDDING; assoc++)
    for (int mangle = 0; mangle < 2; mangle++) {
      wk_xfer_t *x = NULL;
      wk_err_t err;
      if (wk_xfer_plan(a.k, a.n, b.k, b.n, (wk_assoc_t)assoc, mangle, &x, &err) != 0) continue;
      wk_xfer_counts_t c;
      wk_xfer_counts(x, &c);
      size_t added = c.full_add + c.partial_add_some + c.partial_add_all, set = 0;
      if (added + c.skipped > a.n || c.skipped != c.other_unused) abort();
      for (size_t i = 0; i < b.n; i++) {
        long src;
        wk_xfer_action_t act = wk_xfer_action(x, i, &src);
        if ((src < 0) != (act == WK_XFER_UNSET) || src >= (long)a.n) abort();
        if (src < 0) continue;
        set++;
        const wk_xfer_key_t *o = &a.k[src], *s = &b.k[i];
        if (o->dtype != s->dtype || o->ndim != s->ndim) abort();
        if (act != WK_XFER_FULL && !mangle) abort();
      }
      if (set != added || b.n - set != c.self_unset) abort();
      free(wk_xfer_report_json(x, 0));
      wk_xfer_free(x);
    }
  free(text);
  return 0;
}
