/* A tiny pickle writer for the weights tests: builds the opcode streams torch.save emits
 * (and malicious ones) byte by byte, so each test shows exactly what it feeds the reader. */
#ifndef WK_TEST_PK_H
#define WK_TEST_PK_H

#include <stdint.h>
#include <string.h>

typedef struct pk_s {
  unsigned char b[1 << 16];
  size_t n;
} pk_t;

static inline void pk_raw(pk_t *p, const void *d, size_t n) {
  memcpy(p->b + p->n, d, n);
  p->n += n;
}
static inline void pk_op(pk_t *p, unsigned char op) {
  p->b[p->n++] = op;
}
static inline void pk_str(pk_t *p, const char *s) {
  uint32_t n = (uint32_t)strlen(s);
  pk_op(p, 'X');
  unsigned char l[4] = {n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >> 24};
  pk_raw(p, l, 4);
  pk_raw(p, s, n);
}
static inline void pk_global(pk_t *p, const char *mod, const char *name) {
  pk_op(p, 'c');
  pk_raw(p, mod, strlen(mod));
  pk_op(p, '\n');
  pk_raw(p, name, strlen(name));
  pk_op(p, '\n');
}
static inline void pk_int(pk_t *p, int64_t v) {
  if (v >= 0 && v < 256) {
    pk_op(p, 'K');
    pk_op(p, (unsigned char)v);
  } else { /* LONG1, 8 bytes */
    pk_op(p, 0x8a);
    pk_op(p, 8);
    for (int i = 0; i < 8; i++)
      pk_op(p, (unsigned char)((uint64_t)v >> (8 * i)));
  }
}
static inline void pk_ints(pk_t *p, const int64_t *v, int n) {
  pk_op(p, '(');
  for (int i = 0; i < n; i++)
    pk_int(p, v[i]);
  pk_op(p, 't');
}
/* _rebuild_tensor_v2(('storage', <cls>, key, 'cpu', numel), offset, size, stride, False,
 * OrderedDict()) */
static inline void pk_tensor(pk_t *p, const char *cls, const char *key, int64_t numel,
                             int64_t offset, const int64_t *size, const int64_t *stride, int ndim) {
  pk_global(p, "torch._utils", "_rebuild_tensor_v2");
  pk_op(p, '(');
  pk_op(p, '(');
  pk_str(p, "storage");
  pk_global(p, "torch", cls);
  pk_str(p, key);
  pk_str(p, "cpu");
  pk_int(p, numel);
  pk_op(p, 't');
  pk_op(p, 'Q');
  pk_int(p, offset);
  pk_ints(p, size, ndim);
  pk_ints(p, stride, ndim);
  pk_op(p, 0x89);
  pk_global(p, "collections", "OrderedDict");
  pk_op(p, ')');
  pk_op(p, 'R');
  pk_op(p, 't');
  pk_op(p, 'R');
}
static inline void pk_begin_dict(pk_t *p) {
  p->n = 0;
  pk_op(p, 0x80);
  pk_op(p, 2);
  pk_op(p, '}');
  pk_op(p, '(');
}
static inline void pk_end_dict(pk_t *p) {
  pk_op(p, 'u');
  pk_op(p, '.');
}

#endif
