/* Base64 decoding and encoding. */
#include "core/base64.h"

#include <stdlib.h>

static int value_of(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

int wk_base64_decode(const char *src, size_t len, unsigned char **out, size_t *out_len,
                     wk_err_t *err) {
  unsigned char *buf = malloc(len / 4 * 3 + 3);
  if (buf == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  size_t n = 0, pad = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)src[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      pad++;
      continue;
    }
    int v = value_of(c);
    if (v < 0 || pad > 0) {
      free(buf);
      return wk_err(err, WK_EINVAL, "invalid base64 at offset %zu: %s", i,
                    v < 0 ? "not a base64 character" : "data after '=' padding");
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      buf[n++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (bits >= 6 || pad > 2) {
    free(buf);
    return wk_err(err, WK_EINVAL, "invalid base64: the data ends in the middle of a byte");
  }
  *out = buf;
  *out_len = n;
  return 0;
}

int wk_base64_encode(wk_buf_t *b, const void *data, size_t len) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const unsigned char *p = data;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
    char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
    if (wk_buf_append(b, q, 4) != 0) return WK_ENOMEM;
  }
  if (i < len) {
    unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0);
    char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], i + 1 < len ? tab[(v >> 6) & 63] : '=', '='};
    if (wk_buf_append(b, q, 4) != 0) return WK_ENOMEM;
  }
  return 0;
}
