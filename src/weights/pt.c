/* The .pt reader: finds the record folder and data.pkl in torch.save's zip, runs the
 * restricted pickle machine, maps storages (data/<key>) to the file's bytes and checks
 * every tensor's extent against them, then names tensors and opaque entries by path.
 * The writer emits the same layout for a state_dict. */
#include "weights/pt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/zip.h"
#include "core/buf.h"
#include "weights/pickle.h"

/* A string -> index map (open addressing); keys are borrowed. */
typedef struct slot_s {
  const char *key;
  size_t val;
} slot_t;

typedef struct map_s {
  slot_t *slots;
  size_t cap, n;
} map_t;

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static slot_t *map_slot(const map_t *m, const char *key) {
  size_t i = (size_t)hash_str(key) & (m->cap - 1);
  while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
    i = (i + 1) & (m->cap - 1);
  return &m->slots[i];
}

static int map_get(const map_t *m, const char *key, size_t *val) {
  if (m->cap == 0) return 0;
  slot_t *s = map_slot(m, key);
  if (s->key == NULL) return 0;
  *val = s->val;
  return 1;
}

static int map_put(map_t *m, const char *key, size_t val) {
  if ((m->n + 1) * 2 > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    slot_t *old = m->slots;
    size_t oldcap = m->cap;
    m->slots = calloc(cap, sizeof *m->slots);
    if (m->slots == NULL) {
      m->slots = old;
      return WK_ENOMEM;
    }
    m->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
      if (old[i].key) *map_slot(m, old[i].key) = old[i];
    free(old);
  }
  slot_t *s = map_slot(m, key);
  if (s->key == NULL) m->n++;
  s->key = key;
  s->val = val;
  return 0;
}

typedef struct storage_s {
  const unsigned char *data;
  uint64_t len;
} storage_t;

/* One pickle and the storages its persistent ids name: data.pkl with <record>/data/<key>;
 * for TorchScript also constants.pkl with <record>/constants/<key>. */
typedef struct src_s {
  wk_pickle_t *pk;
  const char *folder;
  wk_pt_tensor_t *res; /* per pickle tensor: resolved once */
  unsigned char *resolved;
  storage_t *st; /* storages by key */
  size_t nst, capst;
  map_t st_by_key;
} src_t;

struct wk_pt_s {
  wk_zip_t *z;
  src_t src[2];
  int nsrc;
  wk_pt_kind_t kind;
  char *record;
  int version;
  char *sd_path;
  wk_pt_tensor_t *named, *all;
  size_t nnamed, capnamed, nall, capall;
  wk_pt_opaque_t *opq;
  size_t nopq, capopq;
  wk_pt_entry_t *ent; /* the root dict's other entries (checkpoints whose root is a dict) */
  size_t nent, capent;
  map_t names; /* named[i].name -> i */
  void **bufs; /* inflated storages */
  size_t nbufs, capbufs;
  char **strs; /* names and paths we own */
  size_t nstrs, capstrs;
};

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 16;
  while (n < need)
    n *= 2;
  void *p = realloc(*arr, n * elem);
  if (p == NULL) return WK_ENOMEM;
  *arr = p;
  *cap = n;
  return 0;
}

static char *own(wk_pt_t *pt, const char *s) {
  if (grow((void **)&pt->strs, &pt->capstrs, pt->nstrs + 1, sizeof *pt->strs) != 0) return NULL;
  char *c = strdup(s);
  if (c) pt->strs[pt->nstrs++] = c;
  return c;
}

void wk_pt_close(wk_pt_t *pt) {
  if (pt == NULL) return;
  for (int i = 0; i < 2; i++) {
    wk_pickle_free(pt->src[i].pk);
    free(pt->src[i].res);
    free(pt->src[i].resolved);
    free(pt->src[i].st);
    free(pt->src[i].st_by_key.slots);
  }
  wk_zip_close(pt->z);
  for (size_t i = 0; i < pt->nbufs; i++)
    free(pt->bufs[i]);
  for (size_t i = 0; i < pt->nstrs; i++)
    free(pt->strs[i]);
  free(pt->bufs);
  free(pt->strs);
  free(pt->named);
  free(pt->all);
  free(pt->opq);
  free(pt->ent);
  free(pt->names.slots);
  free(pt);
}

/* ---- storages and bounds ---- */

static int storage_of(wk_pt_t *pt, src_t *src, const wk_pv_t *sv, const storage_t **out,
                      wk_err_t *err) {
  size_t idx;
  if (map_get(&src->st_by_key, sv->s, &idx)) {
    *out = &src->st[idx];
    return 0;
  }
  if (sv->len == 0 || strlen(sv->s) != sv->len || strchr(sv->s, '/') || strcmp(sv->s, "..") == 0 ||
      sv->len > 256)
    return wk_err(err, WK_EFORMAT, "storage key '%.64s' is not a plain name like \"0\"", sv->s);
  char name[WK_MAX_ZIP_NAME + 1];
  int n = snprintf(name, sizeof name, "%s/%s/%s", pt->record, src->folder, sv->s);
  if (n < 0 || (size_t)n >= sizeof name)
    return wk_err(err, WK_ETOOBIG, "storage name longer than %d bytes", WK_MAX_ZIP_NAME);
  int i = wk_zip_find(pt->z, name);
  if (i < 0)
    return wk_err(err, WK_EFORMAT, "storage '%s' is referenced but the archive has no %s", sv->s,
                  name);
  const wk_zip_entry_t *e = wk_zip_entry(pt->z, (size_t)i);
  storage_t s;
  int64_t off = wk_zip_data_offset(pt->z, (size_t)i);
  if (off >= 0) { /* stored: point into the mapping, no copy, no CRC pass over big data */
    size_t maplen;
    const unsigned char *map = wk_zip_map(pt->z, &maplen);
    s.data = map + off;
    s.len = e->size;
  } else {
    const void *d;
    size_t len;
    void *to_free;
    int rc = wk_zip_read(pt->z, (size_t)i, &d, &len, &to_free, err);
    if (rc != 0) return rc;
    if (to_free) {
      if (grow((void **)&pt->bufs, &pt->capbufs, pt->nbufs + 1, sizeof *pt->bufs) != 0) {
        free(to_free);
        return wk_err(err, WK_ENOMEM, "out of memory");
      }
      pt->bufs[pt->nbufs++] = to_free;
    }
    s.data = d;
    s.len = len;
  }
  if (grow((void **)&src->st, &src->capst, src->nst + 1, sizeof *src->st) != 0)
    return wk_err(err, WK_ENOMEM, "out of memory");
  src->st[src->nst] = s;
  if (map_put(&src->st_by_key, sv->s, src->nst) != 0)
    return wk_err(err, WK_ENOMEM, "out of memory");
  *out = &src->st[src->nst++];
  return 0;
}

static int resolve(wk_pt_t *pt, src_t *src, const wk_pv_t *v, const char *path,
                   const wk_pt_tensor_t **out, wk_err_t *err) {
  const wk_pv_tensor_t *pv = v->tensor;
  wk_pt_tensor_t *t = &src->res[pv->index];
  if (src->resolved[pv->index]) {
    *out = t;
    return 0;
  }
  const char *nm = path[0] ? path : "(root)";
  if (pv->dtype < 0)
    return wk_err(err, WK_EUNSUPPORTED,
                  "tensor '%s' has dtype %s, which wick does not read (float32, float64, "
                  "float16, bfloat16, int8, int16, int32, int64, uint8, bool)",
                  nm, pv->dtype_name ? pv->dtype_name : "?");
  memset(t, 0, sizeof *t);
  t->dtype = (wk_dtype_t)pv->dtype;
  t->ndim = pv->ndim;
  t->offset = pv->offset;
  t->requires_grad = pv->requires_grad;
  t->is_parameter = pv->is_parameter;
  size_t es = wk_dtype_size(t->dtype);
  int64_t numel = 1, last = 0; /* last: index of the furthest element */
  bool overflow = false;
  for (int d = 0; d < pv->ndim; d++) {
    t->shape[d] = pv->shape[d];
    t->strides[d] = pv->strides[d];
    overflow |= __builtin_mul_overflow(numel, pv->shape[d], &numel);
  }
  if (!overflow && numel > 0) {
    for (int d = 0; d < pv->ndim; d++) {
      int64_t span;
      overflow |= __builtin_mul_overflow(pv->shape[d] - 1, pv->strides[d], &span);
      overflow |= __builtin_add_overflow(last, span, &last);
    }
    overflow |= __builtin_add_overflow(last, pv->offset, &last);
  }
  size_t nbytes = 0;
  overflow |= __builtin_mul_overflow((size_t)(numel < 0 ? 0 : numel), es, &nbytes);
  if (overflow)
    return wk_err(err, WK_ETOOBIG, "tensor '%s': its sizes and strides overflow 64 bits", nm);
  t->numel = numel;
  t->nbytes = nbytes;
  int64_t expect = 1;
  t->contiguous = true;
  for (int d = pv->ndim - 1; d >= 0; d--) {
    if (pv->shape[d] != 1 && pv->strides[d] != expect) t->contiguous = false;
    expect *= pv->shape[d] ? pv->shape[d] : 1;
  }
  if (pv->storage == NULL) {
    t->device = "meta";
  } else {
    const wk_pv_t *sv = pv->storage;
    const storage_t *s;
    int rc = storage_of(pt, src, sv, &s, err);
    if (rc != 0) {
      wk_err_prefix(err, "tensor '%s'", nm);
      return rc;
    }
    uint64_t sbytes;
    if (__builtin_mul_overflow((uint64_t)sv->numel, (uint64_t)es, &sbytes) || sbytes > s->len)
      return wk_err(err, WK_EFORMAT,
                    "tensor '%s': storage '%s' declares %lld %s elements but holds %llu bytes", nm,
                    sv->s, (long long)sv->numel, wk_dtype_name(t->dtype),
                    (unsigned long long)s->len);
    if (numel > 0 && last >= sv->numel)
      return wk_err(err, WK_EFORMAT,
                    "tensor '%s' (offset %lld) reaches element %lld of storage '%s', which has "
                    "%lld: the storage is shorter than the tensor it backs",
                    nm, (long long)pv->offset, (long long)last, sv->s, (long long)sv->numel);
    if (nbytes > sbytes && nbytes - sbytes > (uint64_t)WK_MAX_PT_EXPANSION)
      return wk_err(err, WK_ETOOBIG,
                    "tensor '%s' is a view of %llu bytes of storage '%s' that repeats its elements "
                    "into %zu bytes (a stride of 0); at most %lld bytes more than its storage are "
                    "allowed",
                    nm, (unsigned long long)sbytes, sv->s, nbytes, (long long)WK_MAX_PT_EXPANSION);
    if (numel == 0 && pv->offset > sv->numel)
      return wk_err(err, WK_EFORMAT, "tensor '%s': offset %lld is past storage '%s' (%lld)", nm,
                    (long long)pv->offset, sv->s, (long long)sv->numel);
    t->data = s->data + (size_t)pv->offset * es;
    t->storage_key = sv->s;
    t->device = sv->location;
  }
  src->resolved[pv->index] = 1;
  *out = t;
  return 0;
}

/* ---- naming: walk the tree from the root ---- */

typedef struct walk_s {
  wk_pt_t *pt;
  src_t *src;
  unsigned mark;
  wk_buf_t path;
  const wk_pv_t *best; /* the largest dict of tensors */
  size_t best_n;
  char *best_path;
  wk_err_t *err;
} walk_t;

static size_t tensor_values(const wk_pv_t *d) {
  size_t n = 0;
  for (size_t i = 0; i < d->count; i++) {
    if (d->items[2 * i]->kind != WK_PV_STR) return 0;
    n += d->items[2 * i + 1]->kind == WK_PV_TENSOR;
  }
  return n;
}

static int key_str(const wk_pv_t *k, char *out, size_t outlen, const char **s) {
  switch (k->kind) {
  case WK_PV_STR:
  case WK_PV_BYTES: *s = k->s; return 0;
  case WK_PV_INT: snprintf(out, outlen, "%lld", (long long)k->i); break;
  case WK_PV_BOOL: snprintf(out, outlen, "%s", k->i ? "True" : "False"); break;
  case WK_PV_NONE: snprintf(out, outlen, "None"); break;
  default: snprintf(out, outlen, "<%s>", wk_pv_kind_name(k->kind)); break;
  }
  *s = out;
  return 0;
}

static int walk(walk_t *w, const wk_pv_t *v, int depth, bool in_opaque);

static int walk_child(walk_t *w, const char *key, const wk_pv_t *v, int depth, bool in_opaque) {
  size_t keep = w->path.len;
  if (key) {
    if (keep && wk_buf_putc(&w->path, '.') != 0) return wk_err(w->err, WK_ENOMEM, "out of memory");
    if (wk_buf_puts(&w->path, key) != 0) return wk_err(w->err, WK_ENOMEM, "out of memory");
    if (w->path.len > WK_MAX_PT_NAME)
      return wk_err(w->err, WK_ETOOBIG, "an entry's path is longer than %d bytes", WK_MAX_PT_NAME);
  }
  int rc = walk(w, v, depth + 1, in_opaque);
  w->path.len = keep;
  if (w->path.data) w->path.data[keep] = '\0';
  return rc;
}

static const char *cur_path(const walk_t *w) {
  return w->path.data ? w->path.data : "";
}

static int walk(walk_t *w, const wk_pv_t *cv, int depth, bool in_opaque) {
  wk_pv_t *v = (wk_pv_t *)cv; /* only the walk mark is written */
  wk_pt_t *pt = w->pt;
  if (depth > WK_MAX_PICKLE_DEPTH)
    return wk_err(w->err, WK_ETOOBIG, "'%.200s' is nested deeper than %d levels", cur_path(w),
                  WK_MAX_PICKLE_DEPTH);
  char kb[64];
  const char *k;
  int rc;
  switch (v->kind) {
  case WK_PV_TENSOR: {
    const wk_pt_tensor_t *t;
    if ((rc = resolve(pt, w->src, v, cur_path(w), &t, w->err)) != 0) return rc;
    if (grow((void **)&pt->all, &pt->capall, pt->nall + 1, sizeof *pt->all) != 0)
      return wk_err(w->err, WK_ENOMEM, "out of memory");
    if (pt->nall >= WK_MAX_PT_TENSORS)
      return wk_err(w->err, WK_ETOOBIG, "more than %d tensors", WK_MAX_PT_TENSORS);
    pt->all[pt->nall] = *t;
    if ((pt->all[pt->nall].name = own(pt, cur_path(w))) == NULL)
      return wk_err(w->err, WK_ENOMEM, "out of memory");
    pt->nall++;
    return 0;
  }
  case WK_PV_DICT:
  case WK_PV_LIST:
  case WK_PV_TUPLE:
    if (v->walk == w->mark) return 0;
    v->walk = w->mark;
    if (v->kind == WK_PV_DICT) {
      size_t n = in_opaque ? 0 : tensor_values(v);
      if (n > w->best_n) {
        w->best = v;
        w->best_n = n;
        free(w->best_path);
        if ((w->best_path = strdup(cur_path(w))) == NULL)
          return wk_err(w->err, WK_ENOMEM, "out of memory");
      }
      for (size_t i = 0; i < v->count; i++) {
        key_str(v->items[2 * i], kb, sizeof kb, &k);
        /* a pickled nn.Module: name its tensors as its state_dict does ("layer1.0.weight") */
        if (in_opaque && (strcmp(k, "_modules") == 0 || strcmp(k, "_parameters") == 0 ||
                          strcmp(k, "_buffers") == 0))
          k = NULL;
        if ((rc = walk_child(w, k, v->items[2 * i + 1], depth, in_opaque)) != 0) return rc;
      }
    } else {
      for (size_t i = 0; i < v->count; i++) {
        snprintf(kb, sizeof kb, "%zu", i);
        if ((rc = walk_child(w, kb, v->items[i], depth, in_opaque)) != 0) return rc;
      }
    }
    return 0;
  case WK_PV_OPAQUE:
    if (v->walk == w->mark) return 0;
    v->walk = w->mark;
    if (!in_opaque && pt->kind == WK_PT_CHECKPOINT) {
      if (grow((void **)&pt->opq, &pt->capopq, pt->nopq + 1, sizeof *pt->opq) != 0)
        return wk_err(w->err, WK_ENOMEM, "out of memory");
      wk_pt_opaque_t *o = &pt->opq[pt->nopq];
      if ((o->path = own(pt, cur_path(w))) == NULL || (o->global = own(pt, v->s)) == NULL)
        return wk_err(w->err, WK_ENOMEM, "out of memory");
      pt->nopq++;
    }
    /* TorchScript modules keep their attributes in the BUILD state: name them by it */
    if (v->state && (rc = walk_child(w, NULL, v->state, depth, true)) != 0) return rc;
    if (v->contents && (rc = walk_child(w, NULL, v->contents, depth, true)) != 0) return rc;
    if (v->args && (rc = walk_child(w, NULL, v->args, depth, true)) != 0) return rc;
    return 0;
  default: return 0;
  }
}

static int add_named(wk_pt_t *pt, const char *name, const wk_pt_tensor_t *t, wk_err_t *err) {
  size_t at;
  if (map_get(&pt->names, name, &at)) { /* a later duplicate key wins, as in a dict */
    const char *keep = pt->named[at].name;
    pt->named[at] = *t;
    pt->named[at].name = keep;
    return 0;
  }
  if (grow((void **)&pt->named, &pt->capnamed, pt->nnamed + 1, sizeof *pt->named) != 0)
    return wk_err(err, WK_ENOMEM, "out of memory");
  pt->named[pt->nnamed] = *t;
  if ((pt->named[pt->nnamed].name = own(pt, name)) == NULL ||
      map_put(&pt->names, pt->named[pt->nnamed].name, pt->nnamed) != 0)
    return wk_err(err, WK_ENOMEM, "out of memory");
  pt->nnamed++;
  return 0;
}

static const wk_pv_t *dict_get(const wk_pv_t *d, const char *key) {
  const wk_pv_t *found = NULL;
  for (size_t i = 0; i < d->count; i++)
    if (d->items[2 * i]->kind == WK_PV_STR && strcmp(d->items[2 * i]->s, key) == 0)
      found = d->items[2 * i + 1];
  return found;
}

/* A line about v for inspect: its value when short, else its kind and size. */
static void describe(wk_buf_t *b, const wk_pv_t *v, int depth) {
  switch (v->kind) {
  case WK_PV_NONE: wk_buf_puts(b, "None"); break;
  case WK_PV_BOOL: wk_buf_puts(b, v->i ? "True" : "False"); break;
  case WK_PV_INT: wk_buf_printf(b, "%lld", (long long)v->i); break;
  case WK_PV_FLOAT: wk_buf_printf(b, "%.9g", v->f); break;
  case WK_PV_STR:
    if (v->len <= 60) wk_buf_printf(b, "'%s'", v->s);
    else wk_buf_printf(b, "'%.57s...' (%zu bytes)", v->s, v->len);
    break;
  case WK_PV_TENSOR: {
    char shape[128];
    wk_shape_str(v->tensor->shape, v->tensor->ndim, shape, sizeof shape);
    wk_buf_printf(b, "tensor %s %s", v->tensor->dtype_name ? v->tensor->dtype_name : "?", shape);
    break;
  }
  case WK_PV_OPAQUE: wk_buf_printf(b, "opaque %s (not built)", v->s ? v->s : "?"); break;
  case WK_PV_DICT:
    wk_buf_printf(b, "dict of %zu", v->count);
    if (depth == 0 && v->count > 0) { /* the keys say what it holds (callbacks by name) */
      wk_buf_puts(b, ": ");
      for (size_t i = 0; i < v->count && i < 4; i++) {
        const wk_pv_t *k = v->items[2 * i];
        if (i) wk_buf_puts(b, ", ");
        if (k->kind == WK_PV_STR) wk_buf_printf(b, "%.80s", k->s);
        else wk_buf_puts(b, wk_pv_kind_name(k->kind));
      }
      if (v->count > 4) wk_buf_printf(b, ", ... (%zu more)", v->count - 4);
    }
    break;
  case WK_PV_LIST:
  case WK_PV_TUPLE:
    wk_buf_printf(b, "%s of %zu", wk_pv_kind_name(v->kind), v->count);
    break;
  default: wk_buf_puts(b, wk_pv_kind_name(v->kind)); break;
  }
}

/* The root dict's entries other than the state_dict (epoch, callbacks, hyper-parameters,
 * optimizer states...), described. */
static int list_entries(wk_pt_t *pt, const wk_pv_t *root, const wk_pv_t *sd, wk_err_t *err) {
  for (size_t i = 0; i < root->count; i++) {
    const wk_pv_t *k = root->items[2 * i], *v = root->items[2 * i + 1];
    if (v == sd) continue;
    wk_buf_t b = WK_BUF_INIT;
    describe(&b, v, 0);
    char *key = own(pt, k->kind == WK_PV_STR ? k->s : wk_pv_kind_name(k->kind));
    char *sum = b.data ? own(pt, b.data) : own(pt, "");
    wk_buf_destroy(&b);
    if (key == NULL || sum == NULL ||
        grow((void **)&pt->ent, &pt->capent, pt->nent + 1, sizeof *pt->ent) != 0)
      return wk_err(err, WK_ENOMEM, "out of memory");
    pt->ent[pt->nent].key = key;
    pt->ent[pt->nent].summary = sum;
    pt->nent++;
  }
  return 0;
}

static int name_tensors(wk_pt_t *pt, wk_err_t *err) {
  src_t *src = &pt->src[0];
  walk_t w = {.pt = pt, .src = src, .mark = wk_pickle_new_walk(src->pk), .err = err};
  wk_buf_init(&w.path);
  wk_pv_t *root = wk_pickle_root(src->pk);
  int rc = walk(&w, root, 0, false);
  if (rc == 0 && pt->nsrc > 1) { /* TorchScript constants (frozen weights): "constants.3" */
    w.src = &pt->src[1];
    w.mark = wk_pickle_new_walk(w.src->pk);
    rc = walk_child(&w, "constants", wk_pickle_root(w.src->pk), 0, true);
  }
  wk_buf_destroy(&w.path);
  if (rc != 0) {
    free(w.best_path);
    return rc;
  }
  /* which dict is the state_dict: the root, a conventional key, else the largest */
  const wk_pv_t *sd = NULL;
  const char *sd_path = NULL;
  if (pt->kind == WK_PT_CHECKPOINT && root->kind == WK_PV_DICT) {
    if (tensor_values(root) > 0) {
      sd = root;
      sd_path = "";
    } else {
      static const char *const keys[] = {"state_dict", "model_state_dict", "model", "module",
                                         "net",        "network"};
      for (size_t i = 0; i < sizeof keys / sizeof keys[0] && sd == NULL; i++) {
        const wk_pv_t *c = dict_get(root, keys[i]);
        if (c && c->kind == WK_PV_DICT && tensor_values(c) > 0) {
          sd = c;
          sd_path = keys[i];
        }
      }
    }
  }
  if (sd == NULL && pt->kind == WK_PT_CHECKPOINT && w.best) {
    sd = w.best;
    sd_path = w.best_path;
  }
  if (sd) {
    if ((pt->sd_path = own(pt, sd_path)) == NULL) rc = wk_err(err, WK_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < sd->count; i++) {
      const wk_pv_t *v = sd->items[2 * i + 1];
      if (v->kind != WK_PV_TENSOR) continue;
      const wk_pt_tensor_t *t;
      if ((rc = resolve(pt, src, v, sd->items[2 * i]->s, &t, err)) != 0) break;
      rc = add_named(pt, sd->items[2 * i]->s, t, err);
    }
  } else {
    for (size_t i = 0; rc == 0 && i < pt->nall; i++)
      rc = add_named(pt, pt->all[i].name, &pt->all[i], err);
  }
  free(w.best_path);
  if (rc == 0 && pt->kind == WK_PT_CHECKPOINT && root->kind == WK_PV_DICT && sd != root)
    rc = list_entries(pt, root, sd, err);
  return rc;
}

/* ---- opening ---- */

static const unsigned char g_legacy_magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
                                               0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

/* A message for bytes that are not a zip: what they look like instead. */
static int not_zip(const unsigned char *head, size_t n, wk_err_t *err) {
  char why[sizeof err->msg];
  snprintf(why, sizeof why, "%s", err ? err->msg : "");
  if (n >= sizeof g_legacy_magic && memcmp(head, g_legacy_magic, sizeof g_legacy_magic) == 0)
    return wk_err(err, WK_EUNSUPPORTED,
                  "this is the legacy torch.save format (PyTorch before 1.6, or "
                  "_use_new_zipfile_serialization=False), which wick does not read; re-save it "
                  "with a current torch (torch.save(torch.load(f), f2))");
  if (n >= 262 && memcmp(head + 257, "ustar", 5) == 0)
    return wk_err(err, WK_EUNSUPPORTED,
                  "this is the tar-based torch.save format of PyTorch before 0.4, which wick "
                  "does not read; re-save it with a current torch");
  /* A pickle of protocol 2 or later opens with PROTO (0x80) and its version. */
  if (n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5)
    return wk_err(err, WK_EUNSUPPORTED,
                  "this is a bare pickle, not a torch.save zip checkpoint; wick reads .pt files "
                  "written by torch.save (PyTorch 1.6 or later)");
  return wk_err(err, WK_EFORMAT, "not a PyTorch checkpoint (a torch.save zip was expected): %s",
                why);
}

static int read_small(wk_pt_t *pt, const char *leaf, char *out, size_t outlen, wk_err_t *err) {
  char name[WK_MAX_ZIP_NAME + 1];
  snprintf(name, sizeof name, "%s/%s", pt->record, leaf);
  int i = wk_zip_find(pt->z, name);
  out[0] = '\0';
  if (i < 0) return WK_ENOTFOUND;
  const void *d;
  size_t len;
  void *to_free;
  int rc = wk_zip_read(pt->z, (size_t)i, &d, &len, &to_free, err);
  if (rc != 0) return rc;
  size_t n = len < outlen - 1 ? len : outlen - 1;
  memcpy(out, d, n);
  out[n] = '\0';
  free(to_free);
  while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
    out[--n] = '\0';
  return 0;
}

/* Reads <record>/<pkl> with the restricted machine into src; its storages live in
 * <record>/<folder>/. */
static int load_src(wk_pt_t *pt, src_t *src, const char *pkl, const char *folder, unsigned pflags,
                    wk_err_t *err) {
  char name[WK_MAX_ZIP_NAME + 1];
  snprintf(name, sizeof name, "%s/%s", pt->record, pkl);
  int i = wk_zip_find(pt->z, name);
  if (i < 0) return wk_err(err, WK_EFORMAT, "no %s", name);
  if (wk_zip_entry(pt->z, (size_t)i)->size > (uint64_t)WK_MAX_PICKLE_SIZE)
    return wk_err(err, WK_ETOOBIG, "%s is larger than %ld bytes", name, (long)WK_MAX_PICKLE_SIZE);
  const void *d;
  size_t len;
  void *to_free;
  int rc = wk_zip_read(pt->z, (size_t)i, &d, &len, &to_free, err);
  if (rc != 0) return rc;
  rc = wk_pickle_load(d, len, pflags, &src->pk, err);
  free(to_free);
  if (rc != 0) {
    wk_err_prefix(err, "%s", name);
    return rc;
  }
  src->folder = folder;
  size_t nt = wk_pickle_tensor_count(src->pk);
  src->res = calloc(nt ? nt : 1, sizeof *src->res);
  src->resolved = calloc(nt ? nt : 1, 1);
  if (src->res == NULL || src->resolved == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  return 0;
}

static int open_zip(wk_zip_t *z, unsigned flags, wk_pt_t **out, wk_err_t *err) {
  wk_pt_t *pt = calloc(1, sizeof *pt);
  if (pt == NULL) {
    wk_zip_close(z);
    return wk_err(err, WK_ENOMEM, "out of memory");
  }
  pt->z = z;
  int rc = 0;
  const wk_zip_entry_t *first = wk_zip_entry(z, 0);
  const char *slash = first ? strchr(first->name, '/') : NULL;
  if (first == NULL || slash == NULL || slash == first->name) {
    rc = wk_err(err, WK_EFORMAT,
                "a zip, but not a PyTorch checkpoint: its first entry '%.100s' is not inside a "
                "record folder (torch.save writes <folder>/data.pkl, <folder>/data/0, ...)",
                first ? first->name : "(none)");
    goto fail;
  }
  {
    char rec[WK_MAX_ZIP_NAME + 1];
    snprintf(rec, sizeof rec, "%.*s", (int)(slash - first->name), first->name);
    if ((pt->record = own(pt, rec)) == NULL) {
      rc = wk_err(err, WK_ENOMEM, "out of memory");
      goto fail;
    }
  }
  char name[WK_MAX_ZIP_NAME + 1], small[64];
  snprintf(name, sizeof name, "%s/constants.pkl", pt->record);
  bool ts = wk_zip_find(z, name) >= 0;
  snprintf(name, sizeof name, "%s/code/", pt->record);
  for (size_t i = 0; !ts && i < wk_zip_count(z); i++)
    ts = strncmp(wk_zip_entry(z, i)->name, name, strlen(name)) == 0;
  pt->kind = ts ? WK_PT_TORCHSCRIPT : WK_PT_CHECKPOINT;
  rc = read_small(pt, "byteorder", small, sizeof small, err);
  if (rc == 0 && strcmp(small, "little") != 0) {
    rc = wk_err(err, WK_EUNSUPPORTED,
                "byteorder is '%.20s'; wick reads little-endian checkpoints only", small);
    goto fail;
  } else if (rc != 0 && rc != WK_ENOTFOUND) {
    goto fail;
  }
  rc = read_small(pt, "version", small, sizeof small, err);
  if (rc != 0 && rc != WK_ENOTFOUND) goto fail;
  pt->version = atoi(small);
  snprintf(name, sizeof name, "%s/data.pkl", pt->record);
  if (wk_zip_find(z, name) < 0) {
    rc = wk_err(err, WK_EFORMAT, "a zip, but not a PyTorch checkpoint: it has no %s", name);
    goto fail;
  }
  unsigned pflags = (flags & WK_PT_STRICT) && !ts ? WK_PICKLE_STRICT : 0;
  if ((rc = load_src(pt, &pt->src[0], "data.pkl", "data", pflags, err)) != 0) goto fail;
  pt->nsrc = 1;
  snprintf(name, sizeof name, "%s/constants.pkl", pt->record);
  if (ts && wk_zip_find(z, name) >= 0) {
    if ((rc = load_src(pt, &pt->src[1], "constants.pkl", "constants", 0, err)) != 0) goto fail;
    pt->nsrc = 2;
  }
  if ((rc = name_tensors(pt, err)) != 0) goto fail;
  *out = pt;
  return 0;
fail:
  wk_pt_close(pt);
  return rc;
}

int wk_pt_open_mem(const void *data, size_t len, unsigned flags, wk_pt_t **out, wk_err_t *err) {
  wk_zip_t *z;
  int rc = wk_zip_open_mem(data, len, &z, err);
  if (rc != 0) return rc == WK_ENOMEM ? rc : not_zip(data, len, err);
  return open_zip(z, flags, out, err);
}

int wk_pt_open(const char *path, unsigned flags, wk_pt_t **out, wk_err_t *err) {
  wk_zip_t *z;
  int rc = wk_zip_open(path, &z, err);
  if (rc != 0) {
    if (rc == WK_ENOTFOUND || rc == WK_ENOMEM || rc == WK_EIO) return rc;
    unsigned char head[512];
    size_t n = 0;
    FILE *f = fopen(path, "rb");
    if (f) {
      n = fread(head, 1, sizeof head, f);
      fclose(f);
    }
    rc = not_zip(head, n, err);
    wk_err_prefix(err, "%s", path);
    return rc;
  }
  rc = open_zip(z, flags, out, err);
  if (rc != 0) wk_err_prefix(err, "%s", path);
  return rc;
}

wk_pt_kind_t wk_pt_kind(const wk_pt_t *pt) {
  return pt->kind;
}

const char *wk_pt_record(const wk_pt_t *pt) {
  return pt->record;
}

int wk_pt_version(const wk_pt_t *pt) {
  return pt->version;
}

const char *wk_pt_state_dict_path(const wk_pt_t *pt) {
  return pt->sd_path;
}

size_t wk_pt_count(const wk_pt_t *pt) {
  return pt->nnamed;
}

const wk_pt_tensor_t *wk_pt_tensor(const wk_pt_t *pt, size_t i) {
  return i < pt->nnamed ? &pt->named[i] : NULL;
}

const wk_pt_tensor_t *wk_pt_find(const wk_pt_t *pt, const char *name) {
  size_t i;
  return map_get(&pt->names, name, &i) ? &pt->named[i] : NULL;
}

size_t wk_pt_all_count(const wk_pt_t *pt) {
  return pt->nall;
}

const wk_pt_tensor_t *wk_pt_all_tensor(const wk_pt_t *pt, size_t i) {
  return i < pt->nall ? &pt->all[i] : NULL;
}

size_t wk_pt_opaque_count(const wk_pt_t *pt) {
  return pt->nopq;
}

const wk_pt_opaque_t *wk_pt_opaque(const wk_pt_t *pt, size_t i) {
  return i < pt->nopq ? &pt->opq[i] : NULL;
}

void wk_pt_tensor_copy(const wk_pt_tensor_t *t, void *dst) {
  size_t es = wk_dtype_size(t->dtype);
  if (t->numel == 0 || t->data == NULL) return;
  if (t->contiguous) {
    memcpy(dst, t->data, t->nbytes);
    return;
  }
  int64_t idx[WK_MAX_PT_DIMS] = {0};
  unsigned char *o = dst;
  const unsigned char *src = t->data;
  for (int64_t n = 0; n < t->numel; n++) {
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++)
      off += idx[d] * t->strides[d];
    memcpy(o, src + (size_t)off * es, es);
    o += es;
    for (int d = t->ndim - 1; d >= 0; d--) {
      if (++idx[d] < t->shape[d]) break;
      idx[d] = 0;
    }
  }
}

/* ---- writer ---- */

static const char *storage_class(wk_dtype_t dt) {
  static const char *const names[WK_DT_COUNT] = {
      [WK_DT_FLOAT32] = "FloatStorage", [WK_DT_FLOAT64] = "DoubleStorage",
      [WK_DT_FLOAT16] = "HalfStorage",  [WK_DT_BFLOAT16] = "BFloat16Storage",
      [WK_DT_INT8] = "CharStorage",     [WK_DT_INT16] = "ShortStorage",
      [WK_DT_INT32] = "IntStorage",     [WK_DT_INT64] = "LongStorage",
      [WK_DT_UINT8] = "ByteStorage",    [WK_DT_BOOL] = "BoolStorage"};
  return (unsigned)dt < WK_DT_COUNT ? names[dt] : NULL;
}

static int pk_put(wk_buf_t *b, const void *p, size_t n) {
  return wk_buf_append(b, p, n);
}

static int pk_byte(wk_buf_t *b, unsigned char c) {
  return wk_buf_append(b, &c, 1);
}

static int pk_unicode(wk_buf_t *b, const char *s) {
  size_t n = strlen(s);
  if (n > UINT32_MAX) return WK_ETOOBIG;
  unsigned char h[5] = {'X', n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >> 24) & 0xff};
  int rc = pk_put(b, h, 5);
  return rc ? rc : pk_put(b, s, n);
}

static int pk_glob(wk_buf_t *b, const char *mod, const char *name) {
  return wk_buf_printf(b, "c%s\n%s\n", mod, name);
}

/* The smallest of BININT1, BININT2, BININT and LONG1 that holds v (v >= 0). */
static int pk_uint(wk_buf_t *b, int64_t v) {
  unsigned char o[10];
  size_t n;
  if (v < 256) {
    o[0] = 'K', o[1] = (unsigned char)v, n = 2;
  } else if (v < 65536) {
    o[0] = 'M', o[1] = v & 0xff, o[2] = (v >> 8) & 0xff, n = 3;
  } else if (v <= INT32_MAX) {
    o[0] = 'J';
    for (int i = 0; i < 4; i++)
      o[1 + i] = (unsigned char)(v >> (8 * i));
    n = 5;
  } else {
    o[0] = 0x8a, o[1] = 8;
    for (int i = 0; i < 8; i++)
      o[2 + i] = (unsigned char)((uint64_t)v >> (8 * i));
    n = 10;
  }
  return pk_put(b, o, n);
}

/* One state_dict entry, as torch.save writes it: name, then
 * _rebuild_tensor_v2(persistent storage, 0, size, stride, requires_grad, OrderedDict()). */
static int pk_entry(wk_buf_t *b, const wk_pt_tensor_t *t, size_t key) {
  char k[32];
  snprintf(k, sizeof k, "%zu", key);
  int rc = pk_unicode(b, t->name);
  rc = rc ? rc : pk_glob(b, "torch._utils", "_rebuild_tensor_v2");
  rc = rc ? rc : pk_put(b, "((", 2);
  rc = rc ? rc : pk_unicode(b, "storage");
  rc = rc ? rc : pk_glob(b, "torch", storage_class(t->dtype));
  rc = rc ? rc : pk_unicode(b, k);
  rc = rc ? rc : pk_unicode(b, "cpu");
  rc = rc ? rc : pk_uint(b, t->numel);
  rc = rc ? rc : pk_put(b, "tQ", 2);
  rc = rc ? rc : pk_uint(b, 0);
  rc = rc ? rc : pk_byte(b, '(');
  for (int d = 0; rc == 0 && d < t->ndim; d++)
    rc = pk_uint(b, t->shape[d]);
  rc = rc ? rc : pk_put(b, "t(", 2);
  int64_t stride = 1, strides[WK_MAX_PT_DIMS];
  for (int d = t->ndim - 1; d >= 0; d--) { /* contiguous strides, as torch computes them */
    strides[d] = stride;
    stride *= t->shape[d] > 0 ? t->shape[d] : 1;
  }
  for (int d = 0; rc == 0 && d < t->ndim; d++)
    rc = pk_uint(b, strides[d]);
  rc = rc ? rc : pk_byte(b, 't');
  rc = rc ? rc : pk_byte(b, t->requires_grad ? 0x88 : 0x89);
  rc = rc ? rc : pk_glob(b, "collections", "OrderedDict");
  rc = rc ? rc : pk_put(b, ")RtR", 4);
  return rc;
}

static int check_entry(const wk_pt_tensor_t *t, map_t *seen, wk_err_t *err) {
  const char *nm = t->name ? t->name : "(null)";
  if (t->name == NULL || strlen(t->name) > WK_MAX_PT_NAME)
    return wk_err(err, WK_EINVAL, "tensor name '%.64s' is missing or longer than %d bytes", nm,
                  WK_MAX_PT_NAME);
  if (storage_class(t->dtype) == NULL)
    return wk_err(err, WK_EINVAL, "tensor '%s' has no dtype wick writes", nm);
  if (t->ndim < 0 || t->ndim > WK_MAX_PT_DIMS)
    return wk_err(err, WK_EINVAL, "tensor '%s' has %d dimensions; 0 to %d are written", nm, t->ndim,
                  WK_MAX_PT_DIMS);
  int64_t numel = 1;
  for (int d = 0; d < t->ndim; d++)
    if (t->shape[d] < 0 || __builtin_mul_overflow(numel, t->shape[d], &numel))
      return wk_err(err, WK_EINVAL, "tensor '%s' has a negative or overflowing shape", nm);
  size_t nbytes;
  if (__builtin_mul_overflow((size_t)numel, wk_dtype_size(t->dtype), &nbytes) ||
      (numel > 0 && t->data == NULL))
    return wk_err(err, WK_EINVAL, "tensor '%s' has no data for %lld elements", nm,
                  (long long)numel);
  size_t dummy;
  if (map_get(seen, t->name, &dummy))
    return wk_err(err, WK_EINVAL,
                  "tensor name '%s' is given twice; a state_dict's keys are "
                  "distinct",
                  nm);
  if (map_put(seen, t->name, 0) != 0) return wk_err(err, WK_ENOMEM, "out of memory");
  return 0;
}

int wk_pt_write(const char *path, const wk_pt_tensor_t *tensors, size_t n, wk_err_t *err) {
  if (n > WK_MAX_PT_TENSORS)
    return wk_err(err, WK_ETOOBIG, "%zu tensors; the limit is %d", n, WK_MAX_PT_TENSORS);
  map_t seen = {0};
  wk_pt_tensor_t *ts = calloc(n ? n : 1, sizeof *ts);
  int rc = ts ? 0 : wk_err(err, WK_ENOMEM, "out of memory");
  /* the tensors with numel/nbytes computed from shape, so callers need not fill them */
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if ((rc = check_entry(&tensors[i], &seen, err)) != 0) break;
    ts[i] = tensors[i];
    ts[i].numel = 1;
    for (int d = 0; d < ts[i].ndim; d++)
      ts[i].numel *= ts[i].shape[d];
    ts[i].nbytes = (size_t)ts[i].numel * wk_dtype_size(ts[i].dtype);
    int64_t expect = 1;
    ts[i].contiguous = true;
    for (int d = ts[i].ndim - 1; d >= 0; d--) {
      if (ts[i].shape[d] != 1 && ts[i].strides[d] != expect) ts[i].contiguous = false;
      expect *= ts[i].shape[d] ? ts[i].shape[d] : 1;
    }
  }
  free(seen.slots);
  wk_buf_t pk = WK_BUF_INIT;
  if (rc == 0) {
    rc = pk_put(&pk, "\x80\x02", 2);
    rc = rc ? rc : pk_glob(&pk, "collections", "OrderedDict");
    rc = rc ? rc : pk_put(&pk, ")R(", 3);
    for (size_t i = 0; rc == 0 && i < n; i++)
      rc = pk_entry(&pk, &ts[i], i);
    rc = rc ? rc : pk_put(&pk, "u.", 2);
    if (rc != 0) rc = wk_err(err, WK_ENOMEM, "out of memory building the pickle");
  }
  char tmp[4096];
  wk_zip_writer_t *w = NULL;
  if (rc == 0) {
    int k = snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    if (k < 0 || (size_t)k >= sizeof tmp) rc = wk_err(err, WK_EINVAL, "path too long: %s", path);
  }
  if (rc == 0) rc = wk_zip_writer_open(tmp, &w, err);
  if (rc == 0) rc = wk_zip_writer_add(w, "archive/data.pkl", pk.data, pk.len, WK_ZIP_STORED, err);
  if (rc == 0) rc = wk_zip_writer_add(w, "archive/byteorder", "little", 6, WK_ZIP_STORED, err);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    char name[64];
    snprintf(name, sizeof name, "archive/data/%zu", i);
    const void *data = ts[i].data;
    void *gathered = NULL;
    if (!ts[i].contiguous && ts[i].numel > 0) {
      if ((gathered = malloc(ts[i].nbytes)) == NULL) {
        rc = wk_err(err, WK_ENOMEM, "out of memory");
        break;
      }
      wk_pt_tensor_copy(&ts[i], gathered);
      data = gathered;
    }
    rc = wk_zip_writer_add(w, name, data, ts[i].nbytes, WK_ZIP_STORED, err);
    free(gathered);
  }
  if (rc == 0) rc = wk_zip_writer_add(w, "archive/version", "3\n", 2, WK_ZIP_STORED, err);
  if (w) {
    if (rc == 0)
      rc = wk_zip_writer_close(w, err);
    else
      wk_zip_writer_discard(w);
  }
  if (rc == 0 && rename(tmp, path) != 0) {
    rc = wk_err(err, WK_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    unlink(tmp);
  }
  wk_buf_destroy(&pk);
  free(ts);
  return rc;
}

size_t wk_pt_entry_count(const wk_pt_t *pt) { return pt->nent; }

const wk_pt_entry_t *wk_pt_entry(const wk_pt_t *pt, size_t i) {
  return i < pt->nent ? &pt->ent[i] : NULL;
}
