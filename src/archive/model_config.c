/* model-config.yaml: a generic YAML tree built from libyaml events (with limits on size,
 * depth and alias expansion), YAML 1.1 scalar resolution as PyYAML does it, JSON output,
 * and the typed TorchServe/wick keys. It does not apply the settings; the registry does. */
#include "archive/model_config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/buf.h"
#include "core/limits.h"

/* Nodes in one document, aliases' copies included: far above any real model config, far
 * below what a "billion laughs" document asks for. */
#define WK_YAML_MAX_NODES 200000
/* Scalar bytes that alias copies may add to a document. */
#define WK_YAML_MAX_ALIAS_BYTES (WK_MAX_CONFIG_FILE_SIZE)

/* ---- tree ---- */

static wk_yaml_t *node_new(wk_yaml_kind_t kind, size_t line) {
  wk_yaml_t *n = calloc(1, sizeof *n);
  if (n == NULL) return NULL;
  n->kind = kind;
  n->line = line;
  return n;
}

void wk_yaml_free(wk_yaml_t *y) {
  if (y == NULL) return;
  free(y->scalar);
  for (size_t i = 0; i < y->count; i++) {
    if (y->keys) free(y->keys[i]);
    wk_yaml_free(y->items[i]);
  }
  free(y->keys);
  free(y->items);
  free(y);
}

const wk_yaml_t *wk_yaml_get(const wk_yaml_t *map, const char *key) {
  if (map == NULL || map->kind != WK_YAML_MAP) return NULL;
  for (size_t i = map->count; i-- > 0;) { /* a repeated key: the last one wins */
    if (strcmp(map->keys[i], key) == 0) return map->items[i];
  }
  return NULL;
}

/* Appends item (and key, for maps); takes ownership of both on success only. */
static int node_append(wk_yaml_t *parent, char *key, wk_yaml_t *item) {
  if ((parent->count & (parent->count - 1)) == 0) { /* full at 0, 1, 2, 4, ...: grow */
    size_t cap = parent->count ? parent->count * 2 : 1;
    wk_yaml_t **items = realloc(parent->items, cap * sizeof *items);
    if (items == NULL) return WK_ENOMEM;
    parent->items = items;
    if (parent->kind == WK_YAML_MAP) {
      char **keys = realloc(parent->keys, cap * sizeof *keys);
      if (keys == NULL) return WK_ENOMEM;
      parent->keys = keys;
    }
  }
  if (parent->kind == WK_YAML_MAP) parent->keys[parent->count] = key;
  parent->items[parent->count++] = item;
  return 0;
}

/* ---- builder: libyaml events to tree ---- */

typedef struct {
  wk_yaml_t *node; /* the open collection (already attached to its parent) */
  char *key;       /* maps: a key read, waiting for its value (owned) */
  char *anchor;    /* anchor of node, registered when the collection ends (owned) */
} frame_t;

typedef struct {
  char *name;
  const wk_yaml_t *node; /* owned by the tree */
} anchor_t;

typedef struct {
  frame_t stack[WK_MAX_JSON_DEPTH];
  size_t depth;
  wk_yaml_t *root;
  anchor_t *anchors;
  size_t n_anchors;
  size_t nodes;       /* nodes made so far, copies included */
  size_t alias_bytes; /* scalar bytes copied by aliases */
  wk_yaml_t *spare;   /* anchored key nodes, kept alive for their aliases (owned) */
  wk_err_t *err;
} builder_t;

static int count_node(builder_t *b, size_t line) {
  if (++b->nodes > WK_YAML_MAX_NODES) {
    return wk_err(b->err, WK_ETOOBIG,
                  "line %zu: the YAML document has more than %d nodes (each alias counts as "
                  "a copy of what it names)",
                  line, WK_YAML_MAX_NODES);
  }
  return 0;
}

static int add_anchor(builder_t *b, char *name, const wk_yaml_t *node) {
  if ((b->n_anchors & (b->n_anchors - 1)) == 0) {
    size_t cap = b->n_anchors ? b->n_anchors * 2 : 1;
    anchor_t *a = realloc(b->anchors, cap * sizeof *a);
    if (a == NULL) return WK_ENOMEM;
    b->anchors = a;
  }
  b->anchors[b->n_anchors].name = name;
  b->anchors[b->n_anchors].node = node;
  b->n_anchors++;
  return 0;
}

static const wk_yaml_t *find_anchor(const builder_t *b, const char *name) {
  for (size_t i = b->n_anchors; i-- > 0;) { /* an anchor may be redefined */
    if (strcmp(b->anchors[i].name, name) == 0) return b->anchors[i].node;
  }
  return NULL;
}

static size_t tree_height(const wk_yaml_t *n) {
  size_t h = 0;
  for (size_t i = 0; i < n->count; i++) {
    size_t c = tree_height(n->items[i]);
    if (c > h) h = c;
  }
  return h + 1;
}

/* Deep copy of src for an alias; every node and byte counts against the limits. */
static int copy_tree(builder_t *b, const wk_yaml_t *src, size_t line, wk_yaml_t **out) {
  int rc = count_node(b, line);
  if (rc != 0) return rc;
  wk_yaml_t *n = node_new(src->kind, line);
  if (n == NULL) return wk_err(b->err, WK_ENOMEM, "out of memory reading YAML");
  n->plain = src->plain;
  if (src->scalar != NULL) {
    size_t len = strlen(src->scalar);
    b->alias_bytes += len;
    if (b->alias_bytes > WK_YAML_MAX_ALIAS_BYTES || (n->scalar = strdup(src->scalar)) == NULL) {
      wk_yaml_free(n);
      if (b->alias_bytes > WK_YAML_MAX_ALIAS_BYTES) {
        return wk_err(b->err, WK_ETOOBIG,
                      "line %zu: the YAML document's aliases expand to more than %d bytes", line,
                      WK_YAML_MAX_ALIAS_BYTES);
      }
      return wk_err(b->err, WK_ENOMEM, "out of memory reading YAML");
    }
  }
  for (size_t i = 0; i < src->count; i++) {
    char *key = NULL;
    wk_yaml_t *item = NULL;
    if (src->kind == WK_YAML_MAP && (key = strdup(src->keys[i])) == NULL) {
      rc = wk_err(b->err, WK_ENOMEM, "out of memory reading YAML");
    } else if ((rc = copy_tree(b, src->items[i], line, &item)) == 0 &&
               node_append(n, key, item) != 0) {
      rc = wk_err(b->err, WK_ENOMEM, "out of memory reading YAML");
    }
    if (rc != 0) {
      free(key);
      wk_yaml_free(item);
      wk_yaml_free(n);
      return rc;
    }
  }
  *out = n;
  return 0;
}

/* Places a finished or just-opened node: as the root, as a sequence item, as a map key
 * (scalars only) or as a map value. Takes ownership of n in every case. */
static int attach(builder_t *b, wk_yaml_t *n, int anchored) {
  if (b->depth == 0) {
    if (b->root != NULL) { /* cannot happen with one document; be safe */
      wk_yaml_free(n);
      return wk_err(b->err, WK_EFORMAT, "line %zu: more than one root node", n->line);
    }
    b->root = n;
    return 0;
  }
  frame_t *f = &b->stack[b->depth - 1];
  if (f->node->kind == WK_YAML_SEQ) {
    if (node_append(f->node, NULL, n) != 0) {
      wk_yaml_free(n);
      return wk_err(b->err, WK_ENOMEM, "out of memory reading YAML");
    }
    return 0;
  }
  if (f->key == NULL) { /* n is a key */
    if (n->kind != WK_YAML_SCALAR) {
      size_t line = n->line;
      wk_yaml_free(n);
      return wk_err(b->err, WK_EUNSUPPORTED,
                    "line %zu: a mapping key must be a plain value, not a list or mapping", line);
    }
    if (!anchored) {
      f->key = n->scalar;
      n->scalar = NULL;
      wk_yaml_free(n);
      return 0;
    }
    /* an anchor points at n: keep it (in b->spare) and copy the key text */
    if ((b->spare == NULL && (b->spare = node_new(WK_YAML_SEQ, 0)) == NULL) ||
        (f->key = strdup(n->scalar)) == NULL || node_append(b->spare, NULL, n) != 0) {
      free(f->key);
      f->key = NULL;
      wk_yaml_free(n);
      return wk_err(b->err, WK_ENOMEM, "out of memory reading YAML");
    }
    return 0;
  }
  if (node_append(f->node, f->key, n) != 0) {
    wk_yaml_free(n);
    return wk_err(b->err, WK_ENOMEM, "out of memory reading YAML");
  }
  f->key = NULL;
  return 0;
}

static int is_core_tag(const char *tag, const char *name) {
  static const char prefix[] = "tag:yaml.org,2002:";
  return strncmp(tag, prefix, sizeof prefix - 1) == 0 && strcmp(tag + sizeof prefix - 1, name) == 0;
}

static int on_scalar(builder_t *b, const yaml_event_t *ev, size_t line) {
  int rc = count_node(b, line);
  if (rc != 0) return rc;
  size_t len = ev->data.scalar.length;
  const char *value = (const char *)ev->data.scalar.value;
  if (memchr(value, '\0', len) != NULL) {
    return wk_err(b->err, WK_EINVAL, "line %zu: NUL characters are not allowed in values", line);
  }
  wk_yaml_t *n = node_new(WK_YAML_SCALAR, line);
  if (n == NULL || (n->scalar = strndup(value, len)) == NULL) {
    wk_yaml_free(n);
    return wk_err(b->err, WK_ENOMEM, "out of memory reading YAML");
  }
  const char *tag = (const char *)ev->data.scalar.tag;
  if (tag == NULL || strcmp(tag, "!") == 0) {
    n->plain = ev->data.scalar.plain_implicit && tag == NULL;
  } else {
    n->plain = is_core_tag(tag, "int") || is_core_tag(tag, "float") || is_core_tag(tag, "bool") ||
               is_core_tag(tag, "null");
  }
  if (ev->data.scalar.anchor != NULL) {
    char *name = strdup((const char *)ev->data.scalar.anchor);
    if (name == NULL || add_anchor(b, name, n) != 0) {
      free(name);
      wk_yaml_free(n);
      return wk_err(b->err, WK_ENOMEM, "out of memory reading YAML");
    }
  }
  return attach(b, n, ev->data.scalar.anchor != NULL);
}

static int on_start(builder_t *b, wk_yaml_kind_t kind, const yaml_char_t *anchor, size_t line) {
  int rc = count_node(b, line);
  if (rc != 0) return rc;
  if (b->depth >= WK_MAX_JSON_DEPTH) {
    return wk_err(b->err, WK_ETOOBIG, "line %zu: YAML nesting is deeper than %d levels", line,
                  WK_MAX_JSON_DEPTH);
  }
  wk_yaml_t *n = node_new(kind, line);
  char *name = NULL;
  if (n == NULL || (anchor != NULL && (name = strdup((const char *)anchor)) == NULL)) {
    wk_yaml_free(n);
    return wk_err(b->err, WK_ENOMEM, "out of memory reading YAML");
  }
  if ((rc = attach(b, n, 0)) != 0) {
    free(name);
    return rc;
  }
  frame_t *f = &b->stack[b->depth++];
  f->node = n;
  f->key = NULL;
  f->anchor = name;
  return 0;
}

static int on_end(builder_t *b) {
  frame_t *f = &b->stack[--b->depth];
  free(f->key); /* libyaml always pairs keys with values; be safe */
  f->key = NULL;
  if (f->anchor != NULL) {
    if (add_anchor(b, f->anchor, f->node) != 0) {
      free(f->anchor);
      f->anchor = NULL;
      return wk_err(b->err, WK_ENOMEM, "out of memory reading YAML");
    }
    f->anchor = NULL;
  }
  return 0;
}

static int on_alias(builder_t *b, const yaml_event_t *ev, size_t line) {
  const char *name = (const char *)ev->data.alias.anchor;
  const wk_yaml_t *src = find_anchor(b, name);
  if (src == NULL) {
    return wk_err(b->err, WK_EINVAL, "line %zu: alias *%s names no anchor defined before it", line,
                  name);
  }
  if (b->depth + tree_height(src) > WK_MAX_JSON_DEPTH) {
    return wk_err(b->err, WK_ETOOBIG,
                  "line %zu: alias *%s makes YAML nesting deeper than %d levels", line, name,
                  WK_MAX_JSON_DEPTH);
  }
  wk_yaml_t *copy = NULL;
  int rc = copy_tree(b, src, line, &copy);
  if (rc != 0) return rc;
  return attach(b, copy, 0);
}

static void builder_cleanup(builder_t *b) {
  while (b->depth > 0) {
    frame_t *f = &b->stack[--b->depth];
    free(f->key);
    free(f->anchor);
  }
  for (size_t i = 0; i < b->n_anchors; i++)
    free(b->anchors[i].name);
  free(b->anchors);
  b->anchors = NULL;
  b->n_anchors = 0;
  wk_yaml_free(b->spare);
  b->spare = NULL;
}

int wk_yaml_parse(const char *text, size_t len, wk_yaml_t **out, wk_err_t *err) {
  if (len > WK_MAX_CONFIG_FILE_SIZE) {
    return wk_err(err, WK_ETOOBIG, "YAML file is %zu bytes, the limit is %d bytes", len,
                  WK_MAX_CONFIG_FILE_SIZE);
  }
  if (text == NULL) text = ""; /* libyaml asserts on a NULL input */
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) return wk_err(err, WK_ENOMEM, "out of memory");
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  builder_t b;
  memset(&b, 0, sizeof b);
  b.err = err;
  int rc = 0, done = 0, documents = 0;
  while (rc == 0 && !done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      if (parser.error == YAML_MEMORY_ERROR) {
        rc = wk_err(err, WK_ENOMEM, "out of memory reading YAML");
      } else if (parser.error == YAML_READER_ERROR) {
        rc = wk_err(err, WK_EFORMAT, "YAML: %s at byte %zu",
                    parser.problem ? parser.problem : "unreadable input", parser.problem_offset);
      } else {
        rc = wk_err(err, WK_EFORMAT, "YAML syntax error at line %zu, column %zu: %s%s%s",
                    parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                    parser.problem ? parser.problem : "malformed input", parser.context ? " " : "",
                    parser.context ? parser.context : "");
      }
      break;
    }
    size_t line = ev.start_mark.line + 1;
    switch (ev.type) {
    case YAML_DOCUMENT_START_EVENT:
      if (++documents > 1) {
        rc = wk_err(err, WK_EUNSUPPORTED,
                    "line %zu: expected one YAML document, found a second one", line);
      }
      break;
    case YAML_SCALAR_EVENT: rc = on_scalar(&b, &ev, line); break;
    case YAML_SEQUENCE_START_EVENT:
      rc = on_start(&b, WK_YAML_SEQ, ev.data.sequence_start.anchor, line);
      break;
    case YAML_MAPPING_START_EVENT:
      rc = on_start(&b, WK_YAML_MAP, ev.data.mapping_start.anchor, line);
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: rc = on_end(&b); break;
    case YAML_ALIAS_EVENT: rc = on_alias(&b, &ev, line); break;
    case YAML_STREAM_END_EVENT: done = 1; break;
    default: break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  builder_cleanup(&b);
  if (rc == 0 && b.root == NULL && (b.root = node_new(WK_YAML_MAP, 1)) == NULL) {
    rc = wk_err(err, WK_ENOMEM, "out of memory reading YAML");
  }
  if (rc != 0) {
    wk_yaml_free(b.root);
    return rc;
  }
  *out = b.root;
  return 0;
}

/* ---- YAML 1.1 scalar resolution (PyYAML's implicit resolvers) ---- */

int wk_yaml_is_null(const wk_yaml_t *n) {
  if (n == NULL) return 1;
  if (n->kind != WK_YAML_SCALAR || !n->plain) return 0;
  const char *s = n->scalar;
  return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
         strcmp(s, "NULL") == 0;
}

int wk_yaml_as_bool(const wk_yaml_t *n, int *out) {
  static const char *const yes[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
  static const char *const no[] = {"no",    "No",  "NO",  "false", "False",
                                   "FALSE", "off", "Off", "OFF"};
  if (n == NULL || n->kind != WK_YAML_SCALAR || !n->plain) return WK_EINVAL;
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    if (strcmp(n->scalar, yes[i]) == 0) {
      *out = 1;
      return 0;
    }
    if (strcmp(n->scalar, no[i]) == 0) {
      *out = 0;
      return 0;
    }
  }
  return WK_EINVAL;
}

static int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 99;
}

/* Accumulates digits of base (underscores skipped) from s up to end. Returns 0, WK_EINVAL
 * when a character is not a digit or there is no digit, WK_ETOOBIG on overflow. */
static int accumulate(const char *s, const char *end, int base, unsigned long long *v) {
  int any = 0;
  for (; s < end; s++) {
    if (*s == '_') continue;
    int d = digit_value(*s);
    if (d >= base) return WK_EINVAL;
    if (*v > (ULLONG_MAX - (unsigned)d) / (unsigned)base) return WK_ETOOBIG;
    *v = *v * (unsigned)base + (unsigned)d;
    any = 1;
  }
  return any ? 0 : WK_EINVAL;
}

/* Sexagesimal "a:b:c" (a starts [1-9][0-9_]*, each later part is [0-5]?[0-9]). */
static int sexagesimal(const char *s, const char *end, unsigned long long *v) {
  const char *colon = memchr(s, ':', (size_t)(end - s));
  if (colon == NULL || *s < '1' || *s > '9') return WK_EINVAL;
  int rc = accumulate(s, colon, 10, v);
  if (rc != 0) return rc;
  while (colon != NULL) {
    const char *p = colon + 1;
    const char *next = memchr(p, ':', (size_t)(end - p));
    const char *stop = next ? next : end;
    size_t n = (size_t)(stop - p);
    if (n < 1 || n > 2 || (n == 2 && (p[0] < '0' || p[0] > '5'))) return WK_EINVAL;
    unsigned long long part = 0;
    if ((rc = accumulate(p, stop, 10, &part)) != 0) return rc;
    for (size_t i = 0; i < n; i++) {
      if (p[i] == '_') return WK_EINVAL;
    }
    if (*v > (ULLONG_MAX - part) / 60) return WK_ETOOBIG;
    *v = *v * 60 + part;
    colon = next;
  }
  return 0;
}

/* Resolves s as a YAML 1.1 int. Returns 0 (value in *out), WK_EINVAL (not an int) or
 * WK_ETOOBIG (an int that does not fit in long long). */
static int resolve_int(const char *s, long long *out) {
  int neg = 0;
  if (*s == '-' || *s == '+') neg = *s++ == '-';
  const char *end = s + strlen(s);
  unsigned long long v = 0;
  int rc;
  if (s[0] == '0' && s[1] == 'b') {
    rc = accumulate(s + 2, end, 2, &v);
  } else if (s[0] == '0' && s[1] == 'x') {
    rc = accumulate(s + 2, end, 16, &v);
  } else if (s[0] == '0' && s[1] != '\0') {
    rc = accumulate(s + 1, end, 8, &v);
    if (rc == WK_EINVAL && strspn(s, "0_") == (size_t)(end - s)) rc = 0; /* "0_0" */
  } else if (s[0] == '0') {
    rc = 0;
  } else if (s[0] >= '1' && s[0] <= '9') {
    rc = memchr(s, ':', (size_t)(end - s)) ? sexagesimal(s, end, &v) : accumulate(s, end, 10, &v);
  } else {
    rc = WK_EINVAL;
  }
  if (rc != 0) return rc;
  if (neg ? v > (unsigned long long)LLONG_MAX + 1 : v > (unsigned long long)LLONG_MAX) {
    return WK_ETOOBIG;
  }
  *out = neg ? (long long)(0 - v) : (long long)v;
  return 0;
}

int wk_yaml_as_int(const wk_yaml_t *n, long long *out) {
  if (n == NULL || n->kind != WK_YAML_SCALAR || !n->plain) return WK_EINVAL;
  long long v;
  int rc = resolve_int(n->scalar, &v);
  if (rc == 0) *out = v;
  return rc;
}

/* Skips [0-9_]*; returns where it stopped. */
static const char *skip_digits(const char *p) {
  while ((*p >= '0' && *p <= '9') || *p == '_')
    p++;
  return p;
}

/* Optional exponent [eE][-+][0-9]+ then end of string. */
static int exponent_then_end(const char *p) {
  if (*p == 'e' || *p == 'E') {
    if (p[1] != '-' && p[1] != '+') return 0;
    p += 2;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  return *p == '\0';
}

/* Resolves s as a YAML 1.1 float (PyYAML's regex). Returns 0 with *out set, or WK_EINVAL. */
static int resolve_float(const char *s, double *out) {
  const char *p = s;
  int neg = 0;
  if (*p == '-' || *p == '+') neg = *p++ == '-';
  if (strcmp(p, ".inf") == 0 || strcmp(p, ".Inf") == 0 || strcmp(p, ".INF") == 0) {
    *out = neg ? -INFINITY : INFINITY;
    return 0;
  }
  if (p == s && (strcmp(p, ".nan") == 0 || strcmp(p, ".NaN") == 0 || strcmp(p, ".NAN") == 0)) {
    *out = NAN;
    return 0;
  }
  char clean[128];
  size_t n = 0;
  if (*p >= '0' && *p <= '9') {
    const char *q = skip_digits(p);
    if (*q == ':') { /* sexagesimal: [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* */
      double v = 0;
      const char *r = p;
      for (; r < q; r++) {
        if (*r != '_') v = v * 10 + (*r - '0');
      }
      while (*r == ':') {
        r++;
        int part = 0, digits = 0;
        if (r[0] >= '0' && r[0] <= '5' && r[1] >= '0' && r[1] <= '9') {
          part = (r[0] - '0') * 10 + (r[1] - '0');
          digits = 2;
        } else if (r[0] >= '0' && r[0] <= '9') {
          part = r[0] - '0';
          digits = 1;
        } else {
          return WK_EINVAL;
        }
        r += digits;
        v = v * 60 + part;
      }
      if (*r != '.') return WK_EINVAL;
      const char *frac = r;
      r = skip_digits(r + 1);
      if (*r != '\0') return WK_EINVAL;
      for (const char *f = frac; *f && n < sizeof clean - 1; f++) {
        if (*f != '_') clean[n++] = *f;
      }
      clean[n] = '\0';
      *out = (neg ? -1 : 1) * (v + (n > 1 ? strtod(clean, NULL) : 0));
      return 0;
    }
    if (*q != '.') return WK_EINVAL;
    if (!exponent_then_end(skip_digits(q + 1))) return WK_EINVAL;
  } else if (*p == '.' && p == s && p[1] >= '0' && p[1] <= '9') {
    if (!exponent_then_end(skip_digits(p + 1))) return WK_EINVAL;
  } else {
    return WK_EINVAL;
  }
  /* The text matched; strtod reads it once the underscores are gone. */
  size_t len = strlen(s);
  char *buf = len < sizeof clean ? clean : malloc(len + 1);
  if (buf == NULL) return WK_ENOMEM;
  for (const char *f = s; *f; f++) {
    if (*f != '_') buf[n++] = *f;
  }
  buf[n] = '\0';
  *out = strtod(buf, NULL);
  if (buf != clean) free(buf);
  return 0;
}

int wk_yaml_as_double(const wk_yaml_t *n, double *out) {
  if (n == NULL || n->kind != WK_YAML_SCALAR || !n->plain) return WK_EINVAL;
  long long i;
  int rc = resolve_int(n->scalar, &i);
  if (rc == 0) {
    *out = (double)i;
    return 0;
  }
  double d;
  if ((rc = resolve_float(n->scalar, &d)) != 0) return rc;
  *out = d;
  return 0;
}

/* ---- JSON output ---- */

typedef struct {
  const char *key;
  size_t index;
} key_ref_t;

static int cmp_key_ref(const void *a, const void *b) {
  const key_ref_t *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  if (c != 0) return c;
  return x->index < y->index ? -1 : x->index > y->index;
}

/* Marks in skip[] the keys that a later equal key overrides (last one wins, as in PyYAML). */
static int mark_overridden(const wk_yaml_t *map, unsigned char *skip) {
  if (map->count < 2) return 0;
  key_ref_t *order = malloc(map->count * sizeof *order);
  if (order == NULL) return WK_ENOMEM;
  for (size_t i = 0; i < map->count; i++) {
    order[i].key = map->keys[i];
    order[i].index = i;
  }
  qsort(order, map->count, sizeof *order, cmp_key_ref);
  for (size_t i = 0; i + 1 < map->count; i++) {
    if (strcmp(order[i].key, order[i + 1].key) == 0) skip[order[i].index] = 1;
  }
  free(order);
  return 0;
}

static int put_double(wk_buf_t *b, double d) {
  char text[64];
  for (int prec = 15; prec <= 17; prec++) { /* the shortest text that reads back the same */
    snprintf(text, sizeof text, "%.*g", prec, d);
    if (strtod(text, NULL) == d) break;
  }
  if (strpbrk(text, ".en") == NULL) strcat(text, ".0");
  return wk_buf_puts(b, text);
}

static int put_scalar(wk_buf_t *b, const wk_yaml_t *n) {
  int flag;
  long long i;
  double d;
  if (wk_yaml_is_null(n)) return wk_buf_puts(b, "null");
  if (wk_yaml_as_bool(n, &flag) == 0) return wk_buf_puts(b, flag ? "true" : "false");
  int rc = wk_yaml_as_int(n, &i);
  if (rc == 0) return wk_buf_printf(b, "%lld", i);
  if (rc == WK_ETOOBIG) {
    const char *s = n->scalar + (n->scalar[0] == '+');
    const char *digits = s + (s[0] == '-');
    if (digits[0] != '0' && strspn(digits, "0123456789") == strlen(digits)) {
      return wk_buf_puts(b, s); /* a big decimal: JSON numbers have no size limit */
    }
    return wk_buf_json_str(b, n->scalar);
  }
  rc = resolve_float(n->scalar, &d);
  if (rc == WK_ENOMEM) return rc;
  if (rc == 0 && isfinite(d)) return put_double(b, d);
  return wk_buf_json_str(b, n->scalar); /* strings, and .inf/.nan that JSON cannot hold */
}

static int put_json(wk_buf_t *b, const wk_yaml_t *n) {
  int rc = 0;
  if (n->kind == WK_YAML_SCALAR) return put_scalar(b, n);
  if (n->kind == WK_YAML_SEQ) {
    if ((rc = wk_buf_putc(b, '[')) != 0) return rc;
    for (size_t i = 0; i < n->count && rc == 0; i++) {
      if (i > 0) rc = wk_buf_putc(b, ',');
      if (rc == 0) rc = put_json(b, n->items[i]);
    }
    return rc ? rc : wk_buf_putc(b, ']');
  }
  unsigned char *skip = calloc(n->count ? n->count : 1, 1);
  if (skip == NULL || mark_overridden(n, skip) != 0) {
    free(skip);
    return WK_ENOMEM;
  }
  rc = wk_buf_putc(b, '{');
  int first = 1;
  for (size_t i = 0; i < n->count && rc == 0; i++) {
    if (skip[i]) continue;
    if (!first) rc = wk_buf_putc(b, ',');
    first = 0;
    if (rc == 0) rc = wk_buf_json_str(b, n->keys[i]);
    if (rc == 0) rc = wk_buf_putc(b, ':');
    if (rc == 0) rc = put_json(b, n->items[i]);
  }
  free(skip);
  return rc ? rc : wk_buf_putc(b, '}');
}

char *wk_yaml_to_json(const wk_yaml_t *y) {
  if (y == NULL) return NULL;
  wk_buf_t b = WK_BUF_INIT;
  if (put_json(&b, y) != 0) {
    wk_buf_destroy(&b);
    return NULL;
  }
  return wk_buf_steal(&b, NULL);
}

/* ---- model config ---- */

void wk_model_config_init(wk_model_config_t *c) {
  memset(c, 0, sizeof *c);
  c->min_workers = -1;
  c->max_workers = -1;
  c->batch_size = -1;
  c->max_batch_delay_ms = -1;
  c->response_timeout_s = -1;
  c->startup_timeout_s = -1;
  c->job_queue_size = -1;
  c->wick_threads = -1;
  c->wick_freeze = -1;
  c->wick_weights_mangle = -1;
  c->wick_weights_strict = -1;
  c->max_gpu_memory_mb = -1;
}

void wk_model_config_destroy(wk_model_config_t *c) {
  free(c->device_type);
  free(c->wick_runtime);
  free(c->wick_weights_file);
  free(c->wick_weights_association);
  for (size_t i = 0; i < c->n_extra_files; i++)
    free(c->extra_files[i]);
  free(c->extra_files);
  wk_yaml_free(c->root);
  wk_model_config_init(c);
}

/* "got 'text'" for a scalar (shortened), "got a list" / "got a mapping" otherwise. */
static const char *describe(const wk_yaml_t *n, char *buf, size_t size) {
  if (n->kind == WK_YAML_SEQ) return "a list";
  if (n->kind == WK_YAML_MAP) return "a mapping";
  size_t len = strlen(n->scalar);
  if (len > 40)
    snprintf(buf, size, "'%.40s...'", n->scalar);
  else
    snprintf(buf, size, "'%s'%s", n->scalar, n->plain ? "" : " (quoted: a string)");
  return buf;
}

/* Reads an integer in [min, max]; a missing or null key leaves *out as it is. */
static int get_int(const wk_yaml_t *map, const char *section, const char *key, int min, int max,
                   int *out, wk_err_t *err) {
  const wk_yaml_t *n = wk_yaml_get(map, key);
  if (n == NULL || wk_yaml_is_null(n)) return 0;
  long long v;
  char text[64];
  int rc = wk_yaml_as_int(n, &v);
  if (rc != 0 || v < min || v > max) {
    char limit[32] = "";
    if (max < INT_MAX) snprintf(limit, sizeof limit, " (at most %d)", max);
    return wk_err(err, WK_EINVAL, "%s%s%s: expected %s%s, got %s (line %zu)",
                  section ? section : "", section ? "." : "", key,
                  min == 0 ? "a non-negative integer" : "a positive integer", limit,
                  describe(n, text, sizeof text), n->line);
  }
  *out = (int)v;
  return 0;
}

static int get_string(const wk_yaml_t *map, const char *section, const char *key, char **out,
                      wk_err_t *err) {
  const wk_yaml_t *n = wk_yaml_get(map, key);
  if (n == NULL || wk_yaml_is_null(n)) return 0;
  char text[64];
  if (n->kind != WK_YAML_SCALAR || n->scalar[0] == '\0') {
    return wk_err(err, WK_EINVAL, "%s%s%s: expected a non-empty string, got %s (line %zu)",
                  section ? section : "", section ? "." : "", key, describe(n, text, sizeof text),
                  n->line);
  }
  char *s = strdup(n->scalar);
  if (s == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  free(*out);
  *out = s;
  return 0;
}

static int get_device_ids(const wk_yaml_t *root, wk_model_config_t *c, wk_err_t *err) {
  const wk_yaml_t *n = wk_yaml_get(root, "deviceIds");
  if (n == NULL || wk_yaml_is_null(n)) return 0;
  char text[64];
  int max_ids = (int)(sizeof c->device_ids / sizeof c->device_ids[0]);
  if (n->kind != WK_YAML_SEQ) {
    return wk_err(err, WK_EINVAL, "deviceIds: expected a list of integers, got %s (line %zu)",
                  describe(n, text, sizeof text), n->line);
  }
  if (n->count > (size_t)max_ids) {
    return wk_err(err, WK_EINVAL, "deviceIds: expected at most %d devices, got %zu (line %zu)",
                  max_ids, n->count, n->line);
  }
  for (size_t i = 0; i < n->count; i++) {
    long long v;
    const wk_yaml_t *item = n->items[i];
    if (wk_yaml_as_int(item, &v) != 0 || v < 0 || v > INT_MAX) {
      return wk_err(err, WK_EINVAL,
                    "deviceIds[%zu]: expected a non-negative integer, got %s (line %zu)", i,
                    describe(item, text, sizeof text), item->line);
    }
    c->device_ids[i] = (int)v;
  }
  c->n_device_ids = (int)n->count;
  return 0;
}

static int get_bool(const wk_yaml_t *map, const char *where, const char *key, int *out,
                    wk_err_t *err) {
  const wk_yaml_t *f = wk_yaml_get(map, key);
  char text[64];
  if (f != NULL && !wk_yaml_is_null(f)) {
    if (f->kind != WK_YAML_SCALAR || wk_yaml_as_bool(f, out) != 0)
      return wk_err(err, WK_EINVAL, "%s.%s: expected true or false, got %s (line %zu)", where, key,
                    describe(f, text, sizeof text), f->line);
  }
  return 0;
}

/* wick.weights: {file, association, mangle, strict}. The file must stay inside the model
 * directory. The association's name is checked by the model's load (serve/model.c), which
 * knows weights/: archive/ sits below it. */
static int get_wick_weights(const wk_yaml_t *w, wk_model_config_t *c, wk_err_t *err) {
  const wk_yaml_t *n = wk_yaml_get(w, "weights");
  if (n == NULL || wk_yaml_is_null(n)) return 0;
  char text[64];
  if (n->kind != WK_YAML_MAP)
    return wk_err(err, WK_EINVAL,
                  "wick.weights: expected a mapping {file, association, mangle, strict}, got %s "
                  "(line %zu)",
                  describe(n, text, sizeof text), n->line);
  int rc;
  if ((rc = get_string(n, "wick.weights", "file", &c->wick_weights_file, err)) != 0 ||
      (rc = get_string(n, "wick.weights", "association", &c->wick_weights_association, err)) != 0 ||
      (rc = get_bool(n, "wick.weights", "mangle", &c->wick_weights_mangle, err)) != 0 ||
      (rc = get_bool(n, "wick.weights", "strict", &c->wick_weights_strict, err)) != 0)
    return rc;
  if (c->wick_weights_file == NULL)
    return wk_err(err, WK_EINVAL, "wick.weights: expected a file (line %zu)", n->line);
  const char *f = c->wick_weights_file;
  if (f[0] == '/' || strcmp(f, "..") == 0 || strncmp(f, "../", 3) == 0 ||
      strstr(f, "/../") != NULL || (strlen(f) >= 3 && strcmp(f + strlen(f) - 3, "/..") == 0))
    return wk_err(err, WK_EUNSAFE,
                  "wick.weights.file: '%s' leaves the model directory: expected a path inside "
                  "the archive",
                  f);
  return 0;
}

static int get_wick(const wk_yaml_t *root, wk_model_config_t *c, wk_err_t *err) {
  const wk_yaml_t *w = wk_yaml_get(root, "wick");
  if (w == NULL || wk_yaml_is_null(w)) return 0;
  char text[64];
  if (w->kind != WK_YAML_MAP) {
    return wk_err(err, WK_EINVAL, "wick: expected a mapping, got %s (line %zu)",
                  describe(w, text, sizeof text), w->line);
  }
  int rc = get_string(w, "wick", "runtime", &c->wick_runtime, err);
  if (rc != 0) return rc;
  if (c->wick_runtime != NULL && strcmp(c->wick_runtime, "native") != 0 &&
      strcmp(c->wick_runtime, "python") != 0) {
    const wk_yaml_t *n = wk_yaml_get(w, "runtime");
    return wk_err(err, WK_EINVAL, "wick.runtime: expected 'native' or 'python', got %s (line %zu)",
                  describe(n, text, sizeof text), n->line);
  }
  if ((rc = get_int(w, "wick", "threads", 0, 1024, &c->wick_threads, err)) != 0) return rc;
  const wk_yaml_t *f = wk_yaml_get(w, "freeze");
  if (f != NULL && !wk_yaml_is_null(f)) {
    if (f->kind != WK_YAML_SCALAR || wk_yaml_as_bool(f, &c->wick_freeze) != 0)
      return wk_err(err, WK_EINVAL, "wick.freeze: expected true or false, got %s (line %zu)",
                    describe(f, text, sizeof text), f->line);
  }
  return get_wick_weights(w, c, err);
}

/* Appends the non-empty, blank-trimmed name text[0..len) to c->extra_files. */
static int add_extra_file(wk_model_config_t *c, const char *text, size_t len, wk_err_t *err) {
  while (len > 0 && (*text == ' ' || *text == '\t')) {
    text++;
    len--;
  }
  while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
    len--;
  if (len == 0) return 0;
  if (c->n_extra_files >= WK_MAX_EXTRA_FILES)
    return wk_err(err, WK_EINVAL, "system.extraFiles: expected at most %d files",
                  WK_MAX_EXTRA_FILES);
  char **grown = realloc(c->extra_files, sizeof *grown * (c->n_extra_files + 1));
  if (grown == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  c->extra_files = grown;
  if ((grown[c->n_extra_files] = strndup(text, len)) == NULL)
    return wk_err(err, WK_ENOMEM, "out of memory");
  c->n_extra_files++;
  return 0;
}

/* system.extraFiles (a comma-separated string or a list of strings) and
 * system.maxGPUMemory (a positive number of MB). */
static int get_system(const wk_yaml_t *root, wk_model_config_t *c, wk_err_t *err) {
  const wk_yaml_t *s = wk_yaml_get(root, "system");
  if (s == NULL || wk_yaml_is_null(s)) return 0;
  char text[64];
  if (s->kind != WK_YAML_MAP)
    return wk_err(err, WK_EINVAL, "system: expected a mapping, got %s (line %zu)",
                  describe(s, text, sizeof text), s->line);
  int rc = 0;
  const wk_yaml_t *x = wk_yaml_get(s, "extraFiles");
  if (x != NULL && !wk_yaml_is_null(x)) {
    if (x->kind == WK_YAML_SCALAR) {
      for (const char *p = x->scalar; rc == 0;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        rc = add_extra_file(c, p, n, err);
        if (comma == NULL) break;
        p = comma + 1;
      }
    } else if (x->kind == WK_YAML_SEQ) {
      for (size_t i = 0; i < x->count && rc == 0; i++) {
        const wk_yaml_t *item = x->items[i];
        if (item->kind != WK_YAML_SCALAR || item->scalar[0] == '\0')
          return wk_err(err, WK_EINVAL,
                        "system.extraFiles[%zu]: expected a file name, got %s (line %zu)", i,
                        describe(item, text, sizeof text), item->line);
        rc = add_extra_file(c, item->scalar, strlen(item->scalar), err);
      }
    } else {
      return wk_err(err, WK_EINVAL,
                    "system.extraFiles: expected a file name, a comma-separated list of names "
                    "or a list, got %s (line %zu)",
                    describe(x, text, sizeof text), x->line);
    }
    if (rc != 0) return rc;
  }
  const wk_yaml_t *g = wk_yaml_get(s, "maxGPUMemory");
  if (g != NULL && !wk_yaml_is_null(g)) {
    double mb;
    if (wk_yaml_as_double(g, &mb) != 0 || !(mb > 0) || mb > 1e12)
      return wk_err(err, WK_EINVAL,
                    "system.maxGPUMemory: expected a positive number of megabytes, got %s "
                    "(line %zu)",
                    describe(g, text, sizeof text), g->line);
    c->max_gpu_memory_mb = mb;
  }
  return 0;
}

int wk_model_config_parse(const char *text, size_t len, wk_model_config_t *c, wk_err_t *err) {
  wk_model_config_t tmp;
  wk_model_config_init(&tmp);
  int rc = wk_yaml_parse(text, len, &tmp.root, err);
  if (rc != 0) return rc;
  const wk_yaml_t *r = tmp.root;
  if (r->kind == WK_YAML_SCALAR && wk_yaml_is_null(r)) {
    r = NULL; /* "---" or "~" alone: no settings */
  } else if (r->kind != WK_YAML_MAP) {
    /* the file's text is not quoted: a file that is no model config at all says nothing of
     * itself in a reply (the audit of [11] read /etc/passwd's first line that way) */
    rc = wk_err(err, WK_EINVAL, "model config: expected a mapping of settings, got %s",
                r->kind == WK_YAML_SEQ ? "a list" : "a single value (is this a model config?)");
  }
  if (rc == 0 && r != NULL &&
      ((rc = get_int(r, NULL, "minWorkers", 0, WK_MAX_WORKERS, &tmp.min_workers, err)) != 0 ||
       (rc = get_int(r, NULL, "maxWorkers", 0, WK_MAX_WORKERS, &tmp.max_workers, err)) != 0 ||
       (rc = get_int(r, NULL, "batchSize", 1, WK_MAX_BATCH_SIZE, &tmp.batch_size, err)) != 0 ||
       (rc = get_int(r, NULL, "maxBatchDelay", 0, INT_MAX, &tmp.max_batch_delay_ms, err)) != 0 ||
       (rc = get_int(r, NULL, "responseTimeout", 1, INT_MAX, &tmp.response_timeout_s, err)) != 0 ||
       (rc = get_int(r, NULL, "startupTimeout", 1, INT_MAX, &tmp.startup_timeout_s, err)) != 0 ||
       (rc = get_int(r, NULL, "jobQueueSize", 1, INT_MAX, &tmp.job_queue_size, err)) != 0 ||
       (rc = get_string(r, NULL, "deviceType", &tmp.device_type, err)) != 0 ||
       (rc = get_device_ids(r, &tmp, err)) != 0 || (rc = get_wick(r, &tmp, err)) != 0 ||
       (rc = get_system(r, &tmp, err)) != 0)) {
    /* rc and err are set */
  }
  if (rc == 0 && tmp.min_workers >= 0 && tmp.max_workers >= 0 &&
      tmp.min_workers > tmp.max_workers) {
    rc = wk_err(err, WK_EINVAL, "minWorkers (%d) is greater than maxWorkers (%d)", tmp.min_workers,
                tmp.max_workers);
  }
  if (rc != 0) {
    wk_model_config_destroy(&tmp);
    return rc;
  }
  wk_model_config_destroy(c);
  *c = tmp;
  return 0;
}
