/* Growable byte buffer. */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void wk_buf_init(wk_buf_t *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void wk_buf_destroy(wk_buf_t *b) {
  free(b->data);
  wk_buf_init(b);
}

int wk_buf_reserve(wk_buf_t *b, size_t n) {
  if (b->len + n + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + n + 1) {
    if (cap > ((size_t)-1) / 2) return WK_ENOMEM;
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (p == NULL) return WK_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int wk_buf_append(wk_buf_t *b, const void *p, size_t n) {
  if (wk_buf_reserve(b, n) != 0) return WK_ENOMEM;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int wk_buf_puts(wk_buf_t *b, const char *s) { return wk_buf_append(b, s, strlen(s)); }

int wk_buf_putc(wk_buf_t *b, char c) { return wk_buf_append(b, &c, 1); }

int wk_buf_vprintf(wk_buf_t *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap2);
  va_end(ap2);
  if (n < 0) return WK_EINVAL;
  if ((size_t)n < sizeof small) return wk_buf_append(b, small, (size_t)n);
  if (wk_buf_reserve(b, (size_t)n) != 0) return WK_ENOMEM;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int wk_buf_printf(wk_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = wk_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

int wk_buf_json_str(wk_buf_t *b, const char *s) {
  if (wk_buf_putc(b, '"') != 0) return WK_ENOMEM;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    int rc;
    switch (*p) {
    case '"': rc = wk_buf_puts(b, "\\\""); break;
    case '\\': rc = wk_buf_puts(b, "\\\\"); break;
    case '\n': rc = wk_buf_puts(b, "\\n"); break;
    case '\r': rc = wk_buf_puts(b, "\\r"); break;
    case '\t': rc = wk_buf_puts(b, "\\t"); break;
    default:
      if (*p < 0x20) rc = wk_buf_printf(b, "\\u%04x", *p);
      else rc = wk_buf_putc(b, (char)*p);
    }
    if (rc != 0) return rc;
  }
  return wk_buf_putc(b, '"');
}

char *wk_buf_steal(wk_buf_t *b, size_t *len) {
  char *p = b->data;
  if (len) *len = b->len;
  if (p == NULL) p = calloc(1, 1);
  wk_buf_init(b);
  return p;
}
