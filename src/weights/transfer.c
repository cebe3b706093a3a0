/* Partial state transfer (torch_liberator's load_partial_state, rewritten in C): the
 * association of two state_dicts' keys (as they are, "module." hack, best prefix, or the
 * maximum common ordered subtree of their dotted-key trees scored by common suffixes),
 * then the per-key decision (copy, mangle, skip). No file I/O, no tensor data but
 * wk_xfer_copy_block. */
#include "weights/transfer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/limits.h"

enum { ACT_NONE = 0, ACT_FULL, ACT_SOME, ACT_ALL, ACT_SKIPPED, ACT_DROPPED };

struct wk_xfer_s {
  wk_assoc_t assoc;
  bool mangle;
  size_t nself, nother;
  char **self_names;
  char **renamed;      /* per other key: its name after the association */
  unsigned char *oact; /* per other key: ACT_* */
  long *src;           /* per self key: other index or -1 */
  unsigned char *sact; /* per self key: wk_xfer_action_t */
  bool have_mapping;   /* false: torch_liberator reports no mapping (hack modes) */
  size_t nmap;
  char **map_from, **map_to;
};

static const char *const g_assoc_names[] = {"strict", "module-hack", "prefix-hack", "isomorphism",
                                            "embedding"};

int wk_assoc_parse(const char *name, wk_assoc_t *out, wk_err_t *err) {
  for (int i = 0; i < 5; i++)
    if (strcmp(name, g_assoc_names[i]) == 0) {
      *out = (wk_assoc_t)i;
      return 0;
    }
  return wk_err(err, WK_EINVAL,
                "unknown association '%s': expected strict, module-hack, prefix-hack, "
                "isomorphism or embedding",
                name);
}

const char *wk_assoc_name(wk_assoc_t a) {
  return (unsigned)a < 5 ? g_assoc_names[a] : "?";
}

/* ---- small helpers ---- */

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *c = malloc(n);
  if (c) memcpy(c, s, n);
  return c;
}

static char *concat(const char *a, size_t alen, const char *b) {
  size_t bl = strlen(b);
  char *c = malloc(alen + bl + 1);
  if (!c) return NULL;
  memcpy(c, a, alen);
  memcpy(c + alen, b, bl + 1);
  return c;
}

static bool starts_with(const char *s, const char *p) {
  return strncmp(s, p, strlen(p)) == 0;
}

static bool ends_with(const char *s, const char *p) {
  size_t n = strlen(s), m = strlen(p);
  return n >= m && memcmp(s + n - m, p, m) == 0;
}

/* A sorted index of names for lookups. */
typedef struct {
  const char **names;
  size_t *idx;
  size_t n;
} name_index_t;

/* Sorted through (name, index) pairs: qsort has no context argument, and a global one
 * would make plans on two threads race. */
typedef struct {
  const char *name;
  size_t i;
} named_t;

static int cmp_named(const void *a, const void *b) {
  const named_t *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : (x->i < y->i ? -1 : x->i > y->i);
}

static int index_build(name_index_t *ix, const char **names, size_t n) {
  ix->names = names;
  ix->n = n;
  ix->idx = malloc((n ? n : 1) * sizeof *ix->idx);
  named_t *tmp = malloc((n ? n : 1) * sizeof *tmp);
  if (!ix->idx || !tmp) {
    free(tmp);
    return WK_ENOMEM;
  }
  for (size_t i = 0; i < n; i++)
    tmp[i] = (named_t){names[i], i};
  qsort(tmp, n, sizeof *tmp, cmp_named);
  for (size_t i = 0; i < n; i++)
    ix->idx[i] = tmp[i].i;
  free(tmp);
  return 0;
}

/* The index of name (the first among equals), or -1. */
static long index_find(const name_index_t *ix, const char *name) {
  size_t lo = 0, hi = ix->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(ix->names[ix->idx[mid]], name) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < ix->n && strcmp(ix->names[ix->idx[lo]], name) == 0) return (long)ix->idx[lo];
  return -1;
}

/* ---- the dotted-key trees ---- */

/* torch_liberator shortens the trees before the search: ".0"-".9", ".weight", ".bias",
 * ".num_batches_tracked", ".running_mean" and ".running_var" become ":..." so that a
 * layer's index and its tensors' names are one token. Replaced in this order, each
 * left to right, as str.replace does. */
static void shrink(char *s) {
  static const char *const pats[] = {".0",
                                     ".1",
                                     ".2",
                                     ".3",
                                     ".4",
                                     ".5",
                                     ".6",
                                     ".7",
                                     ".8",
                                     ".9",
                                     ".weight",
                                     ".bias",
                                     ".num_batches_tracked",
                                     ".running_mean",
                                     ".running_var"};
  for (size_t p = 0; p < sizeof pats / sizeof *pats; p++) {
    size_t m = strlen(pats[p]);
    for (char *q = s; (q = strstr(q, pats[p])) != NULL; q += m)
      *q = ':';
  }
}

typedef struct {
  int n;            /* nodes, numbered in preorder */
  int *parent;      /* -1 for roots */
  int *next;        /* next sibling, -1 */
  int *size;        /* nodes in the subtree, itself included */
  int *depth;       /* 0 for roots */
  int *tok;         /* token id, shared by both trees */
  long *key;        /* index of the key whose path ends here, or -1 */
  const char **src; /* the key this node was made from (not shrunk) ... */
  int *len;         /* ... and the length of this node's prefix of it */
} tree_t;

static void tree_free(tree_t *t) {
  free(t->parent);
  free(t->next);
  free(t->size);
  free(t->depth);
  free(t->tok);
  free(t->key);
  free(t->src);
  free(t->len);
  memset(t, 0, sizeof *t);
}

/* Interned tokens: open addressing over (pointer, length) slices. */
typedef struct {
  const char **s;
  int *len;
  int *id;
  size_t cap;
  int count;
} toks_t;

static int toks_init(toks_t *tk, size_t expect) {
  tk->cap = 64;
  while (tk->cap < expect * 2)
    tk->cap *= 2;
  tk->s = calloc(tk->cap, sizeof *tk->s);
  tk->len = calloc(tk->cap, sizeof *tk->len);
  tk->id = calloc(tk->cap, sizeof *tk->id);
  tk->count = 0;
  return tk->s && tk->len && tk->id ? 0 : WK_ENOMEM;
}

static void toks_free(toks_t *tk) {
  free(tk->s);
  free(tk->len);
  free(tk->id);
}

static int toks_get(toks_t *tk, const char *s, int len) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < len; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  size_t i = (size_t)h & (tk->cap - 1);
  while (tk->s[i]) {
    if (tk->len[i] == len && memcmp(tk->s[i], s, (size_t)len) == 0) return tk->id[i];
    i = (i + 1) & (tk->cap - 1);
  }
  tk->s[i] = s;
  tk->len[i] = len;
  tk->id[i] = tk->count++;
  return tk->id[i];
}

typedef struct {
  const char *path; /* shrunk */
  const char *orig; /* as given: the same length, '.' where path may have ':' */
  long key;
} spath_t;

static int cmp_spath(const void *a, const void *b) {
  return strcmp(((const spath_t *)a)->path, ((const spath_t *)b)->path);
}

/* Builds the ordered tree of the sorted shrunk paths (as torch_liberator's
 * paths_to_otree: a node per prefix, children in the order first seen), numbered in
 * preorder. paths[i].path must outlive t. */
static int tree_build(tree_t *t, spath_t *paths, size_t n, toks_t *tk) {
  qsort(paths, n, sizeof *paths, cmp_spath);
  size_t cap = 0;
  for (size_t i = 0; i < n; i++) {
    cap++;
    for (const char *c = paths[i].path; *c; c++)
      cap += *c == '.';
  }
  /* nodes in insertion order first */
  int *par = malloc((cap + 1) * sizeof(int)), *first = malloc((cap + 1) * sizeof(int));
  int *last = malloc((cap + 1) * sizeof(int)), *nxt = malloc((cap + 1) * sizeof(int));
  int *tok = malloc((cap + 1) * sizeof(int)), *len = malloc((cap + 1) * sizeof(int));
  long *key = malloc((cap + 1) * sizeof(long));
  const char **src = malloc((cap + 1) * sizeof(char *));
  int rc = WK_ENOMEM;
  int nn = 0, root_first = -1, root_last = -1;
  if (!par || !first || !last || !nxt || !tok || !len || !key || !src) goto out;
  for (size_t i = 0; i < n; i++) {
    const char *p = paths[i].path;
    int cur = -1;
    const char *ts = p;
    for (;;) {
      const char *dot = strchr(ts, '.');
      int tl = dot ? (int)(dot - ts) : (int)strlen(ts);
      int id = toks_get(tk, ts, tl);
      /* find the child of cur with this token: the last one first (sorted input) */
      int c = cur < 0 ? root_last : last[cur];
      if (c < 0 || tok[c] != id) {
        c = cur < 0 ? root_first : first[cur];
        while (c >= 0 && tok[c] != id)
          c = nxt[c];
      }
      if (c < 0) {
        c = nn++;
        par[c] = cur;
        first[c] = last[c] = nxt[c] = -1;
        tok[c] = id;
        key[c] = -1;
        src[c] = paths[i].orig;
        len[c] = (int)(ts - p) + tl;
        if (cur < 0) {
          if (root_last >= 0)
            nxt[root_last] = c;
          else
            root_first = c;
          root_last = c;
        } else {
          if (last[cur] >= 0)
            nxt[last[cur]] = c;
          else
            first[cur] = c;
          last[cur] = c;
        }
      }
      cur = c;
      if (!dot) break;
      ts = dot + 1;
    }
    key[cur] = paths[i].key;
  }
  /* renumber in preorder */
  t->n = nn;
  t->parent = malloc((size_t)(nn + 1) * sizeof(int));
  t->next = malloc((size_t)(nn + 1) * sizeof(int));
  t->size = malloc((size_t)(nn + 1) * sizeof(int));
  t->depth = malloc((size_t)(nn + 1) * sizeof(int));
  t->tok = malloc((size_t)(nn + 1) * sizeof(int));
  t->key = malloc((size_t)(nn + 1) * sizeof(long));
  t->src = malloc((size_t)(nn + 1) * sizeof(char *));
  t->len = malloc((size_t)(nn + 1) * sizeof(int));
  int *pre = malloc((size_t)(nn + 1) * sizeof(int));
  int *stack = malloc((size_t)(nn + 1) * sizeof(int));
  if (!t->parent || !t->next || !t->size || !t->depth || !t->tok || !t->key || !t->src || !t->len ||
      !pre || !stack) {
    free(pre);
    free(stack);
    tree_free(t);
    goto out;
  }
  /* iterative DFS: push siblings in reverse so the first is visited first */
  int sp = 0, count = 0;
  for (int c = root_first; c >= 0; c = nxt[c])
    stack[sp++] = c;
  for (int a = 0, b = sp - 1; a < b; a++, b--) {
    int x = stack[a];
    stack[a] = stack[b];
    stack[b] = x;
  }
  while (sp > 0) {
    int v = stack[--sp];
    pre[v] = count++;
    int base = sp;
    for (int c = first[v]; c >= 0; c = nxt[c])
      stack[sp++] = c;
    for (int a = base, b = sp - 1; a < b; a++, b--) {
      int x = stack[a];
      stack[a] = stack[b];
      stack[b] = x;
    }
  }
  for (int v = 0; v < nn; v++) {
    int p = pre[v];
    t->parent[p] = par[v] >= 0 ? pre[par[v]] : -1;
    t->next[p] = nxt[v] >= 0 ? pre[nxt[v]] : -1;
    t->tok[p] = tok[v];
    t->key[p] = key[v];
    t->src[p] = src[v];
    t->len[p] = len[v];
    t->size[p] = 1;
  }
  for (int p = 0; p < nn; p++)
    t->depth[p] = t->parent[p] < 0 ? 0 : t->depth[t->parent[p]] + 1;
  for (int p = nn - 1; p >= 0; p--)
    if (t->parent[p] >= 0) t->size[t->parent[p]] += t->size[p];
  free(pre);
  free(stack);
  rc = 0;
out:
  free(par);
  free(first);
  free(last);
  free(nxt);
  free(tok);
  free(len);
  free(key);
  free(src);
  return rc;
}

/* torch_liberator's node affinity (how many trailing tokens two node paths share) of
 * every node pair, row u of a, column v of b. Built in O(a->n * b->n) from the parents'
 * (numbered before their children): walking each pair's paths instead cost the searches
 * their depth per cell, 18 s of a fuzz input whose keys were 100 dots deep. Saturates at
 * 65535 shared tokens. NULL when out of memory. */
static uint16_t *affinities(const tree_t *a, const tree_t *b) {
  size_t w = (size_t)b->n;
  uint16_t *t = malloc(((size_t)a->n * w + 1) * sizeof *t);
  if (t == NULL) return NULL;
  for (int u = 0; u < a->n; u++)
    for (int v = 0; v < b->n; v++) {
      uint16_t s = 0;
      if (a->tok[u] == b->tok[v]) {
        int pu = a->parent[u], pv = b->parent[v];
        s = 1;
        if (pu >= 0 && pv >= 0) {
          uint16_t up = t[(size_t)pu * w + (size_t)pv];
          s = up == UINT16_MAX ? up : (uint16_t)(up + 1);
        }
      }
      t[(size_t)u * w + (size_t)v] = s;
    }
  return t;
}

/* ---- maximum common ordered subtree isomorphism ----
 * A state is a forest: node u and its following siblings (with their subtrees), or the
 * empty forest (n). Its head is u's children, its tail u's following siblings. For each
 * pair of states two values are kept, as in the balanced-sequence recurrence that
 * torch_liberator uses: LVL, the best common subforest whose roots are roots of both
 * states, and ANY, the best anywhere below. Ties are broken in the same order. */
enum { C_NONE = 0, C_H1S2, C_T1S2, C_S1H2, C_S1T2, C_LVL, C_MATCH, C_HT1, C_HT2 };

typedef struct {
  int u1, u2;
} pair_t;

static int iso_search(const tree_t *a, const tree_t *b, pair_t **pairs, size_t *npairs,
                      wk_err_t *err) {
  size_t w = (size_t)b->n + 1, cells = ((size_t)a->n + 1) * w;
  if (cells > WK_MAX_XFER_CELLS)
    return wk_err(err, WK_ETOOBIG,
                  "the isomorphism search needs %zu cells (%d x %d tree nodes), more than "
                  "WK_MAX_XFER_CELLS (%ld): try prefix-hack or module-hack",
                  cells, a->n, b->n, (long)WK_MAX_XFER_CELLS);
  int32_t *vany = calloc(cells, sizeof *vany), *vlvl = calloc(cells, sizeof *vlvl);
  unsigned char *cany = calloc(cells, 1), *clvl = calloc(cells, 1);
  pair_t *out = malloc(((size_t)(a->n < b->n ? a->n : b->n) + 1) * sizeof *out);
  size_t sc = (size_t)a->n + (size_t)b->n + 8;
  int *stk = malloc(sc * 3 * sizeof *stk);
  int rc = WK_ENOMEM;
  uint16_t *aff_of = affinities(a, b);
  if (!vany || !vlvl || !cany || !clvl || !out || !stk || !aff_of) goto done;
#define IX(x, y) ((size_t)(x)*w + (size_t)(y))
  for (int s1 = a->n - 1; s1 >= 0; s1--) {
    int h1 = a->size[s1] > 1 ? s1 + 1 : a->n, t1 = a->next[s1] >= 0 ? a->next[s1] : a->n;
    for (int s2 = b->n - 1; s2 >= 0; s2--) {
      int h2 = b->size[s2] > 1 ? s2 + 1 : b->n, t2 = b->next[s2] >= 0 ? b->next[s2] : b->n;
      int32_t va = 0, vl = 0;
      unsigned char ca = C_NONE, cl = C_NONE;
      if (vany[IX(h1, s2)] > va) va = vany[IX(h1, s2)], ca = C_H1S2;
      if (vany[IX(t1, s2)] > va) va = vany[IX(t1, s2)], ca = C_T1S2;
      if (vany[IX(s1, h2)] > va) va = vany[IX(s1, h2)], ca = C_S1H2;
      if (vany[IX(s1, t2)] > va) va = vany[IX(s1, t2)], ca = C_S1T2;
      if (vlvl[IX(s1, t2)] > vl) vl = vlvl[IX(s1, t2)], cl = C_S1T2;
      if (vlvl[IX(t1, s2)] > vl) vl = vlvl[IX(t1, s2)], cl = C_T1S2;
      int aff = aff_of[(size_t)s1 * (size_t)b->n + (size_t)s2];
      if (aff) {
        int32_t nv = vlvl[IX(h1, h2)] + vlvl[IX(t1, t2)] + aff;
        if (nv > vl) vl = nv, cl = C_MATCH;
      }
      if (vl >= va) va = vl, ca = C_LVL;
      vany[IX(s1, s2)] = va;
      vlvl[IX(s1, s2)] = vl;
      cany[IX(s1, s2)] = ca;
      clvl[IX(s1, s2)] = cl;
    }
  }
  /* walk back from ANY(0, 0): frames (level?, s1, s2); a match emits its pair, then its
   * heads, then its tails, so pairs come out in preorder */
  size_t n = 0;
  int sp = 0;
  if (a->n > 0 && b->n > 0) {
    stk[0] = 0, stk[1] = 0, stk[2] = 0;
    sp = 1;
  }
  while (sp > 0) {
    sp--;
    int lvl = stk[sp * 3], s1 = stk[sp * 3 + 1], s2 = stk[sp * 3 + 2];
    if (s1 >= a->n || s2 >= b->n) continue;
    int h1 = a->size[s1] > 1 ? s1 + 1 : a->n, t1 = a->next[s1] >= 0 ? a->next[s1] : a->n;
    int h2 = b->size[s2] > 1 ? s2 + 1 : b->n, t2 = b->next[s2] >= 0 ? b->next[s2] : b->n;
    int c = lvl ? clvl[IX(s1, s2)] : cany[IX(s1, s2)];
    int f[2][3], nf = 0;
    switch (c) {
    case C_H1S2: f[nf][0] = 0, f[nf][1] = h1, f[nf++][2] = s2; break;
    case C_T1S2: f[nf][0] = lvl, f[nf][1] = t1, f[nf++][2] = s2; break;
    case C_S1H2: f[nf][0] = 0, f[nf][1] = s1, f[nf++][2] = h2; break;
    case C_S1T2: f[nf][0] = lvl, f[nf][1] = s1, f[nf++][2] = t2; break;
    case C_LVL: f[nf][0] = 1, f[nf][1] = s1, f[nf++][2] = s2; break;
    case C_MATCH:
      out[n].u1 = s1, out[n++].u2 = s2;
      f[nf][0] = 1, f[nf][1] = t1, f[nf++][2] = t2; /* pushed first, popped last */
      f[nf][0] = 1, f[nf][1] = h1, f[nf++][2] = h2;
      break;
    default: break;
    }
    for (int k = 0; k < nf; k++) {
      if ((size_t)sp + 1 > sc) { /* cannot happen: each frame moves right in one tree */
        rc = wk_err(err, WK_EINTERNAL, "isomorphism walk overflowed");
        goto done;
      }
      stk[sp * 3] = f[k][0], stk[sp * 3 + 1] = f[k][1], stk[sp * 3 + 2] = f[k][2];
      sp++;
    }
  }
#undef IX
  *pairs = out;
  *npairs = n;
  out = NULL;
  rc = 0;
done:
  free(aff_of);
  free(vany);
  free(vlvl);
  free(cany);
  free(clvl);
  free(out);
  free(stk);
  return rc;
}

/* ---- maximum common ordered subtree embedding ----
 * A state is what is left of the balanced sequence after deleting leading nodes: the
 * descendants of an ancestor a (or of the virtual root) whose preorder index is at least
 * that of a node u. It is numbered base[u] + k - 1, where a is u's k-th ancestor (the
 * virtual root is the last). From it: head = u's children, tail = after u's subtree,
 * head+tail = u deleted. */
typedef struct {
  const tree_t *t;
  int *base;
  int nstates;
} etree_t;

static int et_init(etree_t *e, const tree_t *t) {
  e->t = t;
  e->base = malloc(((size_t)t->n + 1) * sizeof *e->base);
  if (!e->base) return WK_ENOMEM;
  long s = 0;
  for (int u = 0; u < t->n; u++) {
    e->base[u] = (int)s;
    s += t->depth[u] + 1;
    if (s > (long)INT32_MAX / 2) return WK_ETOOBIG;
  }
  e->base[t->n] = (int)s;
  e->nstates = (int)s;
  return 0;
}

/* The state (ancestor at depth ad, with ad = -1 for the virtual root, end = its subtree's
 * end) starting at node w, or the empty state. */
static int et_state(const etree_t *e, int w, int ad, int end) {
  if (w >= end) return e->nstates;
  return e->base[w] + (e->t->depth[w] - ad) - 1;
}

typedef struct {
  int u, ad, end;
} estate_t;

static estate_t et_decode(const etree_t *e, int s, int u) {
  const tree_t *t = e->t;
  int k = s - e->base[u] + 1;
  int ad = t->depth[u] - k;
  int a = u;
  for (int i = 0; i < k && a >= 0; i++)
    a = t->parent[a];
  estate_t r = {u, ad, a >= 0 ? a + t->size[a] : t->n};
  return r;
}

/* torch_liberator takes max((value, (subseq1, subseq2)), ...) over the three candidates:
 * equal values are decided by comparing the encoded subsequences (one character per open
 * and close, numbered in preorder over tree 1 and then tree 2's nodes that tree 1 lacks).
 * The comparison walks both candidates lazily: a cell stands for its subsequence, which is
 * that of its representative (the first MATCH cell its choices lead to), and two cells
 * with the same representative are skipped together. Items: >= 0 a cell, < 0 token -1-t. */
typedef struct {
  const int32_t *rep;
  const int *node1, *node2, *h1, *t1, *h2, *t2;
  const int32_t *tok2; /* tree 2 node -> token number */
  size_t w;
  int64_t *sa, *sb;
  size_t cap;
} ecmp_t;

static void ecmp_expand(const ecmp_t *c, int side, int32_t r, int64_t *st, size_t *n) {
  if (r < 0 || *n + 4 > c->cap) return;
  size_t s1 = (size_t)r / c->w, s2 = (size_t)r % c->w;
  int64_t tok = side == 1 ? 2 * (int64_t)c->node1[s1] : 2 * (int64_t)c->tok2[c->node2[s2]];
  st[(*n)++] = (int64_t)c->t1[s1] * (int64_t)c->w + c->t2[s2];
  st[(*n)++] = -1 - (tok + 1);
  st[(*n)++] = (int64_t)c->h1[s1] * (int64_t)c->w + c->h2[s2];
  st[(*n)++] = -1 - tok;
}

/* Compares the side-th subsequences of two candidates given as item lists. */
static int ecmp_side(const ecmp_t *c, int side, const int64_t *ia, int na_, const int64_t *ib,
                     int nb_) {
  size_t na = 0, nb = 0;
  for (int i = na_ - 1; i >= 0; i--)
    c->sa[na++] = ia[i];
  for (int i = nb_ - 1; i >= 0; i--)
    c->sb[nb++] = ib[i];
  for (;;) {
    while (na > 0 && nb > 0 && c->sa[na - 1] >= 0 && c->sb[nb - 1] >= 0) {
      int32_t ra = c->rep[c->sa[--na]], rb = c->rep[c->sb[--nb]];
      if (ra == rb) continue;
      ecmp_expand(c, side, ra, c->sa, &na);
      ecmp_expand(c, side, rb, c->sb, &nb);
    }
    while (na > 0 && c->sa[na - 1] >= 0) {
      int32_t r = c->rep[c->sa[--na]];
      ecmp_expand(c, side, r, c->sa, &na);
    }
    while (nb > 0 && c->sb[nb - 1] >= 0) {
      int32_t r = c->rep[c->sb[--nb]];
      ecmp_expand(c, side, r, c->sb, &nb);
    }
    if (na == 0 || nb == 0) return (na > 0) - (nb > 0);
    int64_t ta = -1 - c->sa[--na], tb = -1 - c->sb[--nb];
    if (ta != tb) return ta < tb ? -1 : 1;
  }
}

/* A candidate's items for one side: a cell, or a match (open, heads, close, tails). */
typedef struct {
  int64_t cell;  /* >= 0: the candidate is this cell */
  size_t s1, s2; /* else: a match at (s1, s2) */
} ecand_t;

static int ecand_items(const ecmp_t *c, const ecand_t *x, int side, int64_t *it) {
  if (x->cell >= 0) {
    it[0] = x->cell;
    return 1;
  }
  int64_t tok = side == 1 ? 2 * (int64_t)c->node1[x->s1] : 2 * (int64_t)c->tok2[c->node2[x->s2]];
  it[0] = -1 - tok;
  it[1] = (int64_t)c->h1[x->s1] * (int64_t)c->w + c->h2[x->s2];
  it[2] = -1 - (tok + 1);
  it[3] = (int64_t)c->t1[x->s1] * (int64_t)c->w + c->t2[x->s2];
  return 4;
}

/* > 0 when x's (subseq1, subseq2) is greater than y's. */
static int ecmp(const ecmp_t *c, const ecand_t *x, const ecand_t *y) {
  int64_t ix[4], iy[4];
  for (int side = 1; side <= 2; side++) {
    int nx = ecand_items(c, x, side, ix), ny = ecand_items(c, y, side, iy);
    int r = ecmp_side(c, side, ix, nx, iy, ny);
    if (r) return r;
  }
  return 0;
}

/* Token numbers of tree b's nodes as torch_liberator gives them: a node whose path is in
 * tree a has a's number (its preorder index), the others follow a's, in b's preorder. */
static void tokens_of_b(const tree_t *a, const tree_t *b, int32_t *tok2, int *eq) {
  int next = a->n;
  for (int v = 0; v < b->n; v++) {
    int p = b->parent[v], found = -1;
    int c = p < 0 ? (a->n > 0 ? 0 : -1) : (eq[p] >= 0 && a->size[eq[p]] > 1 ? eq[p] + 1 : -1);
    if (p >= 0 && eq[p] < 0) c = -1;
    for (; c >= 0; c = a->next[c])
      if (a->tok[c] == b->tok[v]) {
        found = c;
        break;
      }
    eq[v] = found;
    tok2[v] = found >= 0 ? found : next++;
  }
}

static int emb_search(const tree_t *a, const tree_t *b, pair_t **pairs, size_t *npairs,
                      wk_err_t *err) {
  etree_t ea = {0}, eb = {0};
  int32_t *val = NULL;
  unsigned char *ch = NULL;
  int *node_of1 = NULL, *node_of2 = NULL, *stk = NULL, *eq = NULL;
  int *h1s = NULL, *t1s = NULL, *ht1s = NULL, *h2s = NULL, *t2s = NULL, *ht2s = NULL;
  int32_t *rep = NULL, *tok2 = NULL;
  int64_t *sa = NULL, *sb = NULL;
  uint16_t *aff_of = NULL;
  pair_t *out = NULL;
  int rc = WK_ENOMEM;
  if ((rc = et_init(&ea, a)) || (rc = et_init(&eb, b))) {
    if (rc == WK_ETOOBIG) rc = wk_err(err, WK_ETOOBIG, "the key trees are too deep");
    goto done;
  }
  rc = WK_ENOMEM;
  size_t w = (size_t)eb.nstates + 1, cells = ((size_t)ea.nstates + 1) * w;
  if (cells > WK_MAX_XFER_CELLS) {
    rc = wk_err(err, WK_ETOOBIG,
                "the embedding search needs %zu cells (%d x %d states), more than "
                "WK_MAX_XFER_CELLS (%ld): try isomorphism, prefix-hack or module-hack",
                cells, ea.nstates, eb.nstates, (long)WK_MAX_XFER_CELLS);
    goto done;
  }
  val = calloc(cells, sizeof *val);
  ch = calloc(cells, 1);
  rep = malloc(cells * sizeof *rep);
  aff_of = affinities(a, b);
  tok2 = malloc(((size_t)b->n + 1) * sizeof *tok2);
  eq = malloc(((size_t)b->n + 1) * sizeof *eq);
  size_t scap = 4 * ((size_t)a->n + (size_t)b->n) + 64;
  sa = malloc(scap * sizeof *sa);
  sb = malloc(scap * sizeof *sb);
  /* per state: its node, and its head / tail / head+tail states */
  node_of1 = malloc(((size_t)ea.nstates + 1) * sizeof(int));
  node_of2 = malloc(((size_t)eb.nstates + 1) * sizeof(int));
  h1s = malloc(((size_t)ea.nstates + 1) * sizeof(int));
  t1s = malloc(((size_t)ea.nstates + 1) * sizeof(int));
  ht1s = malloc(((size_t)ea.nstates + 1) * sizeof(int));
  h2s = malloc(((size_t)eb.nstates + 1) * sizeof(int));
  t2s = malloc(((size_t)eb.nstates + 1) * sizeof(int));
  ht2s = malloc(((size_t)eb.nstates + 1) * sizeof(int));
  out = malloc(((size_t)(a->n < b->n ? a->n : b->n) + 1) * sizeof *out);
  stk = malloc(((size_t)ea.nstates + (size_t)eb.nstates + 8) * 2 * sizeof(int));
  if (!val || !ch || !node_of1 || !node_of2 || !h1s || !t1s || !ht1s || !h2s || !t2s || !ht2s ||
      !out || !stk || !rep || !tok2 || !eq || !sa || !sb || !aff_of)
    goto done;
  memset(rep, 0xff, cells * sizeof *rep); /* -1: no match (the empty rows and columns) */
  tokens_of_b(a, b, tok2, eq);
  for (int pass = 0; pass < 2; pass++) {
    const etree_t *e = pass ? &eb : &ea;
    int *no = pass ? node_of2 : node_of1, *hs = pass ? h2s : h1s, *ts = pass ? t2s : t1s;
    int *hts = pass ? ht2s : ht1s;
    const tree_t *t = e->t;
    for (int u = 0; u < t->n; u++)
      for (int s = e->base[u]; s < e->base[u + 1]; s++) {
        estate_t d = et_decode(e, s, u);
        no[s] = u;
        hs[s] = t->size[u] > 1 ? e->base[u + 1] : e->nstates; /* (u, first child) */
        ts[s] = et_state(e, u + t->size[u], d.ad, d.end);
        hts[s] = et_state(e, u + 1, d.ad, d.end);
      }
  }
#define IX(x, y) ((size_t)(x)*w + (size_t)(y))
  ecmp_t ec = {rep, node_of1, node_of2, h1s, t1s, h2s, t2s, tok2, w, sa, sb, scap};
  for (int s1 = ea.nstates - 1; s1 >= 0; s1--) {
    int u1 = node_of1[s1];
    for (int s2 = eb.nstates - 1; s2 >= 0; s2--) {
      int u2 = node_of2[s2];
      /* candidates: u1 deleted, u2 deleted, u1 matched with u2; the best value wins, and
       * equal values go to the greater subsequences, as Python's max of tuples does */
      ecand_t cand[3] = {{(int64_t)IX(ht1s[s1], s2), 0, 0},
                         {(int64_t)IX(s1, ht2s[s2]), 0, 0},
                         {-1, (size_t)s1, (size_t)s2}};
      int32_t v[3] = {val[cand[0].cell], val[cand[1].cell], -1};
      int aff = aff_of[(size_t)u1 * (size_t)b->n + (size_t)u2];
      if (aff) v[2] = val[IX(h1s[s1], h2s[s2])] + val[IX(t1s[s1], t2s[s2])] + aff;
      int k = 0;
      for (int j = 1; j < 3; j++)
        if (v[j] > v[k] || (v[j] == v[k] && v[k] > 0 && ecmp(&ec, &cand[j], &cand[k]) > 0)) k = j;
      size_t here = IX(s1, s2);
      val[here] = v[k];
      ch[here] = v[k] > 0 ? (unsigned char)(k == 0 ? C_HT1 : k == 1 ? C_HT2 : C_MATCH) : C_NONE;
      rep[here] = ch[here] == C_MATCH ? (int32_t)here : ch[here] == C_NONE ? -1 : rep[cand[k].cell];
    }
  }
  size_t n = 0;
  int sp = 0;
  if (ea.nstates > 0 && eb.nstates > 0) stk[0] = 0, stk[1] = 0, sp = 1;
  while (sp > 0) {
    sp--;
    int s1 = stk[sp * 2], s2 = stk[sp * 2 + 1];
    if (s1 >= ea.nstates || s2 >= eb.nstates) continue;
    switch (ch[IX(s1, s2)]) {
    case C_HT1: stk[sp * 2] = ht1s[s1], stk[sp * 2 + 1] = s2, sp++; break;
    case C_HT2: stk[sp * 2] = s1, stk[sp * 2 + 1] = ht2s[s2], sp++; break;
    case C_MATCH:
      out[n].u1 = node_of1[s1], out[n++].u2 = node_of2[s2];
      stk[sp * 2] = t1s[s1], stk[sp * 2 + 1] = t2s[s2], sp++;
      stk[sp * 2] = h1s[s1], stk[sp * 2 + 1] = h2s[s2], sp++;
      break;
    default: break;
    }
  }
#undef IX
  *pairs = out;
  *npairs = n;
  out = NULL;
  rc = 0;
done:
  free(ea.base);
  free(eb.base);
  free(val);
  free(ch);
  free(node_of1);
  free(node_of2);
  free(h1s);
  free(t1s);
  free(ht1s);
  free(h2s);
  free(t2s);
  free(ht2s);
  free(out);
  free(stk);
  free(rep);
  free(tok2);
  free(eq);
  free(sa);
  free(sb);
  free(aff_of);
  return rc;
}

/* The dotted path of node u: a prefix of the key it was made from (shrinking keeps
 * lengths, so the shrunk prefix's length is the original's; a ':' in a key stays). */
static char *node_path(const tree_t *t, int u) {
  char *s = malloc((size_t)t->len[u] + 1);
  if (!s) return NULL;
  memcpy(s, t->src[u], (size_t)t->len[u]);
  s[t->len[u]] = 0;
  return s;
}

/* Finds the subtree association and renames the other keys it maps. */
static int assoc_subtree(wk_xfer_t *x, const wk_xfer_key_t *other, const wk_xfer_key_t *self,
                         wk_err_t *err) {
  int rc = WK_ENOMEM;
  spath_t *p1 = malloc((x->nother + 1) * sizeof *p1), *p2 = malloc((x->nself + 1) * sizeof *p2);
  tree_t t1 = {0}, t2 = {0};
  toks_t tk = {0};
  pair_t *pairs = NULL;
  size_t np = 0;
  if (!p1 || !p2) goto out;
  memset(p1, 0, (x->nother + 1) * sizeof *p1);
  memset(p2, 0, (x->nself + 1) * sizeof *p2);
  for (size_t i = 0; i < x->nother; i++) {
    char *s = xstrdup(other[i].name);
    if (!s) goto out;
    shrink(s);
    p1[i].path = s, p1[i].orig = other[i].name, p1[i].key = (long)i;
  }
  for (size_t i = 0; i < x->nself; i++) {
    char *s = xstrdup(self[i].name);
    if (!s) goto out;
    shrink(s);
    p2[i].path = s, p2[i].orig = self[i].name, p2[i].key = (long)i;
  }
  if (toks_init(&tk, (x->nother + x->nself) * 4 + 16)) goto out;
  if ((rc = tree_build(&t1, p1, x->nother, &tk)) || (rc = tree_build(&t2, p2, x->nself, &tk)))
    goto out;
  rc = x->assoc == WK_ASSOC_EMBEDDING ? emb_search(&t1, &t2, &pairs, &np, err)
                                      : iso_search(&t1, &t2, &pairs, &np, err);
  if (rc) goto out;
  /* the mapping is between the leaves of the common subtree: matched nodes with no
   * matched descendant (pairs are in preorder) */
  rc = WK_ENOMEM;
  x->map_from = calloc(np + 1, sizeof(char *));
  x->map_to = calloc(np + 1, sizeof(char *));
  if (!x->map_from || !x->map_to) goto out;
  x->have_mapping = true;
  for (size_t k = 0; k < np; k++) {
    int u1 = pairs[k].u1;
    if (k + 1 < np && pairs[k + 1].u1 < u1 + t1.size[u1]) continue;
    char *from = node_path(&t1, u1), *to = node_path(&t2, pairs[k].u2);
    if (!from || !to) {
      free(from);
      free(to);
      goto out;
    }
    x->map_from[x->nmap] = from;
    x->map_to[x->nmap++] = to;
    long key = t1.key[u1];
    if (key >= 0) {
      char *r = xstrdup(to);
      if (!r) goto out;
      free(x->renamed[key]);
      x->renamed[key] = r;
    }
  }
  rc = 0;
out:
  if (p1)
    for (size_t i = 0; i < x->nother; i++)
      free((char *)p1[i].path);
  if (p2)
    for (size_t i = 0; i < x->nself; i++)
      free((char *)p2[i].path);
  free(p1);
  free(p2);
  tree_free(&t1);
  tree_free(&t2);
  toks_free(&tk);
  free(pairs);
  return rc;
}

/* ---- the hacks ---- */

static int rename_all(wk_xfer_t *x, const char *remove, const char *add) {
  for (size_t i = 0; i < x->nother; i++) {
    const char *k = x->renamed[i];
    size_t skip = remove && *remove && starts_with(k, remove) ? strlen(remove) : 0;
    char *r = concat(add ? add : "", add ? strlen(add) : 0, k + skip);
    if (!r) return WK_ENOMEM;
    free(x->renamed[i]);
    x->renamed[i] = r;
  }
  return 0;
}

/* How many other keys land on a self key after removing then adding a prefix. */
static size_t prefix_hits(const wk_xfer_t *x, const name_index_t *six, const char *remove,
                          const char *add, wk_buf_t *tmp) {
  size_t hits = 0;
  for (size_t i = 0; i < x->nother; i++) {
    const char *k = x->renamed[i];
    if (remove && *remove && starts_with(k, remove)) k += strlen(remove);
    tmp->len = 0;
    if (wk_buf_puts(tmp, add ? add : "") || wk_buf_puts(tmp, k) || wk_buf_putc(tmp, 0)) return 0;
    hits += index_find(six, tmp->data) >= 0;
  }
  return hits;
}

/* Splits s at '.' into parts (pointers into a copy the caller frees). */
static int split_dots(const char *s, char **copy, char ***parts, int *n) {
  *copy = xstrdup(s);
  int cnt = 1;
  for (const char *c = s; *c; c++)
    cnt += *c == '.';
  *parts = malloc((size_t)cnt * sizeof(char *));
  if (!*copy || !*parts) return WK_ENOMEM;
  int i = 0;
  char *p = *copy;
  (*parts)[i++] = p;
  for (; *p; p++)
    if (*p == '.') *p = 0, (*parts)[i++] = p + 1;
  *n = cnt;
  return 0;
}

static size_t common_prefix_len(char *const *names, size_t n) {
  if (n == 0) return 0;
  size_t l = strlen(names[0]);
  for (size_t i = 1; i < n; i++) {
    size_t j = 0;
    while (j < l && names[i][j] == names[0][j])
      j++;
    l = j;
  }
  return l;
}

/* torch_liberator's _best_prefix_transform: the common prefixes of both key sets, their
 * equal trailing parts dropped, and every (remove a leading part of one, add a leading part
 * of the other) tried; the transform that lands the most keys wins (the first on ties). */
static int prefix_hack(wk_xfer_t *x, const name_index_t *six, wk_err_t *err) {
  (void)err;
  int rc = WK_ENOMEM;
  char *c1 = NULL, *c2 = NULL, *cp1 = NULL, *cp2 = NULL, **pp1 = NULL, **pp2 = NULL;
  char *fuzzy = NULL, *best_rm = NULL, *best_add = NULL;
  wk_buf_t pre1, pre2, tmp;
  wk_buf_init(&pre1);
  wk_buf_init(&pre2);
  wk_buf_init(&tmp);
  size_t l1 = common_prefix_len(x->renamed, x->nother);
  size_t l2 = common_prefix_len(x->self_names, x->nself);
  c1 = x->nother ? concat(x->renamed[0], l1, "") : xstrdup("");
  c2 = x->nself ? concat(x->self_names[0], l2, "") : xstrdup("");
  if (!c1 || !c2) goto out;
  int n1, n2;
  if (split_dots(c1, &cp1, &pp1, &n1) || split_dots(c2, &cp2, &pp2, &n2)) goto out;
  int same = 0, mn = n1 < n2 ? n1 : n2;
  for (int i = 1; i < mn; i++) {
    if (strcmp(pp1[n1 - i], pp2[n2 - i]) == 0)
      same = i;
    else
      break;
  }
  /* Python's list[:-0] is empty: with no equal trailing part both lists become empty */
  n1 = same ? n1 - same : 0;
  n2 = same ? n2 - same : 0;
  if (n2 == 0) {
    /* torch_liberator's fuzzy case: the most frequent proper prefix of the self keys */
    size_t best = 0;
    for (size_t i = 0; i < x->nself; i++) {
      const char *k = x->self_names[i];
      for (const char *d = strchr(k, '.'); d; d = strchr(d + 1, '.')) {
        size_t plen = (size_t)(d - k), cnt = 0;
        for (size_t j = 0; j < x->nself; j++)
          cnt += strncmp(x->self_names[j], k, plen) == 0 && x->self_names[j][plen] == '.';
        if (cnt > best) {
          best = cnt;
          free(fuzzy);
          if (!(fuzzy = concat(k, plen, ""))) goto out;
        }
      }
    }
    if (fuzzy) {
      pp2[0] = fuzzy;
      n2 = 1;
    }
  }
  size_t best_val = 0;
  for (int i1 = 0; i1 <= n1; i1++)
    for (int i2 = 0; i2 <= n2; i2++) {
      if (i1 == 0 && i2 == 0) continue;
      pre1.len = pre2.len = 0;
      for (int k = 0; k < i1; k++)
        if (wk_buf_puts(&pre1, pp1[k]) || wk_buf_putc(&pre1, '.')) goto out;
      for (int k = 0; k < i2; k++)
        if (wk_buf_puts(&pre2, pp2[k]) || wk_buf_putc(&pre2, '.')) goto out;
      if (wk_buf_putc(&pre1, 0) || wk_buf_putc(&pre2, 0)) goto out;
      const char *cand[3][2] = {{pre1.data, ""}, {"", pre2.data}, {pre1.data, pre2.data}};
      for (int c = 0; c < 3; c++) {
        size_t v = prefix_hits(x, six, cand[c][0], cand[c][1], &tmp);
        if (v > best_val) {
          best_val = v;
          free(best_rm);
          free(best_add);
          best_rm = xstrdup(cand[c][0]);
          best_add = xstrdup(cand[c][1]);
          if (!best_rm || !best_add) goto out;
        }
      }
    }
  rc = best_val ? rename_all(x, best_rm, best_add) : 0;
out:
  free(c1);
  free(c2);
  free(cp1);
  free(cp2);
  free(pp1);
  free(pp2);
  free(fuzzy);
  free(best_rm);
  free(best_add);
  wk_buf_destroy(&pre1);
  wk_buf_destroy(&pre2);
  wk_buf_destroy(&tmp);
  return rc;
}

static int module_hack(wk_xfer_t *x, const name_index_t *six) {
  static const char prefix[] = "module.";
  wk_buf_t tmp;
  wk_buf_init(&tmp);
  bool add = prefix_hits(x, six, NULL, prefix, &tmp) > 0, strip = false;
  if (!add) {
    for (size_t i = 0; i < x->nother && !strip; i++)
      strip = starts_with(x->renamed[i], prefix) &&
              index_find(six, x->renamed[i] + strlen(prefix)) >= 0;
  }
  wk_buf_destroy(&tmp);
  if (add) return rename_all(x, NULL, prefix);
  if (strip) return rename_all(x, prefix, NULL);
  return 0;
}

/* ---- the plan ---- */

void wk_xfer_free(wk_xfer_t *x) {
  if (!x) return;
  for (size_t i = 0; i < x->nself && x->self_names; i++)
    free(x->self_names[i]);
  for (size_t i = 0; i < x->nother && x->renamed; i++)
    free(x->renamed[i]);
  for (size_t i = 0; i < x->nmap; i++) {
    free(x->map_from[i]);
    free(x->map_to[i]);
  }
  free(x->map_from);
  free(x->map_to);
  free(x->self_names);
  free(x->renamed);
  free(x->oact);
  free(x->src);
  free(x->sact);
  free(x);
}

static bool same_shape(const wk_xfer_key_t *a, const wk_xfer_key_t *b) {
  if (a->ndim != b->ndim) return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return false;
  return true;
}

static int64_t numel(const wk_xfer_key_t *k) {
  int64_t n = 1;
  for (int d = 0; d < k->ndim; d++)
    n *= k->shape[d];
  return n;
}

int wk_xfer_plan(const wk_xfer_key_t *other, size_t nother, const wk_xfer_key_t *self, size_t nself,
                 wk_assoc_t assoc, bool mangle, wk_xfer_t **out, wk_err_t *err) {
  if ((unsigned)assoc > WK_ASSOC_EMBEDDING) return wk_err(err, WK_EINVAL, "bad association");
  if (nother > WK_MAX_PT_TENSORS || nself > WK_MAX_PT_TENSORS)
    return wk_err(err, WK_ETOOBIG, "more than %d tensors", WK_MAX_PT_TENSORS);
  wk_xfer_t *x = calloc(1, sizeof *x);
  if (!x) return wk_err(err, WK_ENOMEM, "out of memory");
  int rc = WK_ENOMEM;
  name_index_t six = {0}, rix = {0};
  x->assoc = assoc;
  x->mangle = mangle;
  x->nself = nself;
  x->nother = nother;
  x->self_names = calloc(nself + 1, sizeof(char *));
  x->renamed = calloc(nother + 1, sizeof(char *));
  x->oact = calloc(nother + 1, 1);
  x->src = malloc((nself + 1) * sizeof(long));
  x->sact = calloc(nself + 1, 1);
  if (!x->self_names || !x->renamed || !x->oact || !x->src || !x->sact) goto fail;
  for (size_t i = 0; i < nself; i++) {
    if (!(x->self_names[i] = xstrdup(self[i].name))) goto fail;
    x->src[i] = -1;
  }
  for (size_t i = 0; i < nother; i++)
    if (!(x->renamed[i] = xstrdup(other[i].name))) goto fail;
  if (index_build(&six, (const char **)x->self_names, nself)) goto fail;

  /* the association: none needed when every other key is a self key */
  bool subset = true;
  for (size_t i = 0; i < nother && subset; i++)
    subset = index_find(&six, other[i].name) >= 0;
  if (subset) {
    x->have_mapping = true;
    x->map_from = calloc(nother + 1, sizeof(char *));
    x->map_to = calloc(nother + 1, sizeof(char *));
    if (!x->map_from || !x->map_to) goto fail;
    for (size_t i = 0; i < nother; i++) {
      x->map_from[i] = xstrdup(other[i].name);
      x->map_to[i] = xstrdup(other[i].name);
      x->nmap++;
      if (!x->map_from[i] || !x->map_to[i]) goto fail;
    }
  } else if (assoc == WK_ASSOC_MODULE_HACK) {
    if ((rc = module_hack(x, &six))) goto fail;
  } else if (assoc == WK_ASSOC_PREFIX_HACK) {
    if ((rc = prefix_hack(x, &six, err))) goto fail;
  } else if (assoc == WK_ASSOC_ISOMORPHISM || assoc == WK_ASSOC_EMBEDDING) {
    if ((rc = assoc_subtree(x, other, self, err))) goto fail;
  }
  rc = WK_ENOMEM;

  /* Two other keys renamed alike: the later one wins, as in a Python dict. */
  if (index_build(&rix, (const char **)x->renamed, nother)) goto fail;
  for (size_t k = 0; k + 1 < nother; k++) {
    size_t i = rix.idx[k], j = rix.idx[k + 1];
    if (strcmp(x->renamed[i], x->renamed[j]) == 0) x->oact[i] = ACT_DROPPED;
  }

  for (size_t i = 0; i < nother; i++) {
    if (x->oact[i] == ACT_DROPPED) continue;
    const char *key = x->renamed[i];
    long s = index_find(&six, key);
    if (s < 0 || x->src[s] >= 0) {
      x->oact[i] = ACT_SKIPPED;
      continue;
    }
    const wk_xfer_key_t *o = &other[i], *m = &self[s];
    if (o->dtype != m->dtype) {
      x->oact[i] = ACT_SKIPPED; /* wick does not convert dtypes */
    } else if (same_shape(o, m)) {
      x->oact[i] = ACT_FULL;
    } else if (o->ndim == m->ndim && mangle && !ends_with(key, "bias")) {
      x->oact[i] = numel(m) < numel(o) ? ACT_SOME : ACT_ALL;
    } else {
      x->oact[i] = ACT_SKIPPED;
    }
    if (x->oact[i] != ACT_SKIPPED) {
      x->src[s] = (long)i;
      x->sact[s] = x->oact[i] == ACT_FULL   ? WK_XFER_FULL
                   : x->oact[i] == ACT_SOME ? WK_XFER_PARTIAL_SOME
                                            : WK_XFER_PARTIAL_ALL;
    }
  }
  free(six.idx);
  free(rix.idx);
  *out = x;
  return 0;
fail:
  free(six.idx);
  free(rix.idx);
  wk_xfer_free(x);
  if (rc == WK_ENOMEM) return wk_err(err, WK_ENOMEM, "out of memory planning the transfer");
  return rc;
}

wk_xfer_action_t wk_xfer_action(const wk_xfer_t *x, size_t i, long *src) {
  *src = x->src[i];
  return (wk_xfer_action_t)x->sact[i];
}

void wk_xfer_counts(const wk_xfer_t *x, wk_xfer_counts_t *c) {
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < x->nother; i++) {
    switch (x->oact[i]) {
    case ACT_FULL: c->full_add++; break;
    case ACT_SOME: c->partial_add_some++; break;
    case ACT_ALL: c->partial_add_all++; break;
    case ACT_SKIPPED: c->skipped++, c->other_unused++; break;
    default: break;
    }
  }
  for (size_t i = 0; i < x->nself; i++)
    c->self_unset += x->src[i] < 0;
  c->mapping = x->nmap;
}

bool wk_xfer_perfect(const wk_xfer_t *x) {
  wk_xfer_counts_t c;
  wk_xfer_counts(x, &c);
  return c.self_unset == 0 && c.other_unused == 0 && c.partial_add_some == 0 &&
         c.partial_add_all == 0;
}

static json_t *names_with(const wk_xfer_t *x, int act) {
  json_t *a = json_array();
  for (size_t i = 0; i < x->nother; i++)
    if (x->oact[i] == act) json_array_append_new(a, json_string(x->renamed[i]));
  return a;
}

char *wk_xfer_report_json(const wk_xfer_t *x, int indent) {
  wk_xfer_counts_t c;
  wk_xfer_counts(x, &c);
  json_t *o = json_object(), *seen = json_object(), *unset = json_array(), *map;
  if (x->have_mapping) {
    map = json_object();
    for (size_t i = 0; i < x->nmap; i++)
      json_object_set_new(map, x->map_from[i], json_string(x->map_to[i]));
  } else {
    map = json_null();
  }
  json_object_set_new(o, "association", json_string(wk_assoc_name(x->assoc)));
  json_object_set_new(o, "mangle", json_boolean(x->mangle));
  json_object_set_new(o, "mapping", map);
  json_object_set_new(seen, "full_add", names_with(x, ACT_FULL));
  json_object_set_new(seen, "partial_add_some", names_with(x, ACT_SOME));
  json_object_set_new(seen, "partial_add_all", names_with(x, ACT_ALL));
  json_object_set_new(seen, "skipped", names_with(x, ACT_SKIPPED));
  json_object_set_new(o, "seen", seen);
  for (size_t i = 0; i < x->nself; i++)
    if (x->src[i] < 0) json_array_append_new(unset, json_string(x->self_names[i]));
  json_object_set_new(o, "self_unset", unset);
  json_object_set_new(o, "other_unused", names_with(x, ACT_SKIPPED));
  json_t *jc = json_object();
  json_object_set_new(jc, "full_add", json_integer((json_int_t)c.full_add));
  json_object_set_new(jc, "partial_add_some", json_integer((json_int_t)c.partial_add_some));
  json_object_set_new(jc, "partial_add_all", json_integer((json_int_t)c.partial_add_all));
  json_object_set_new(jc, "skipped", json_integer((json_int_t)c.skipped));
  json_object_set_new(jc, "self_unset", json_integer((json_int_t)c.self_unset));
  json_object_set_new(jc, "other_unused", json_integer((json_int_t)c.other_unused));
  json_object_set_new(jc, "self", json_integer((json_int_t)x->nself));
  json_object_set_new(jc, "other", json_integer((json_int_t)x->nother));
  json_object_set_new(o, "counts", jc);
  char *s = json_dumps(o, (size_t)JSON_INDENT(indent) | JSON_PRESERVE_ORDER);
  json_decref(o);
  return s;
}

void wk_xfer_summary(const wk_xfer_t *x, char *buf, size_t size) {
  wk_xfer_counts_t c;
  wk_xfer_counts(x, &c);
  snprintf(buf, size, "%zu added (%zu partially), %zu skipped, %zu unset, %zu unused",
           c.full_add + c.partial_add_some + c.partial_add_all,
           c.partial_add_some + c.partial_add_all, c.skipped, c.self_unset, c.other_unused);
}

void wk_xfer_copy_block(const wk_pt_tensor_t *src, void *dst, const int64_t *dst_shape) {
  int nd = src->ndim;
  size_t es = wk_dtype_size(src->dtype);
  int64_t blk[WK_MAX_PT_DIMS], idx[WK_MAX_PT_DIMS] = {0}, dstr[WK_MAX_PT_DIMS];
  int64_t total = 1;
  for (int d = 0; d < nd; d++) {
    blk[d] = src->shape[d] < dst_shape[d] ? src->shape[d] : dst_shape[d];
    total *= blk[d];
  }
  if (total == 0 || !src->data) return;
  int64_t s = 1;
  for (int d = nd - 1; d >= 0; d--) {
    dstr[d] = s;
    s *= dst_shape[d];
  }
  for (int64_t n = 0; n < total; n++) {
    int64_t so = 0, doff = 0;
    for (int d = 0; d < nd; d++) {
      so += idx[d] * src->strides[d];
      doff += idx[d] * dstr[d];
    }
    memcpy((char *)dst + (size_t)doff * es, (const char *)src->data + (size_t)so * es, es);
    for (int d = nd - 1; d >= 0; d--) {
      if (++idx[d] < blk[d]) break;
      idx[d] = 0;
    }
  }
}
