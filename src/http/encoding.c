/* gzip and deflate content codings (see encoding.h). */
#include "http/encoding.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* 1 if the token s[0..n) equals name, ignoring case. */
static int token_is(const char *s, size_t n, const char *name) {
  return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

wk_encoding_t wk_encoding_of(const char *ce) {
  if (ce == NULL) return WK_ENC_IDENTITY;
  while (*ce == ' ' || *ce == '\t') ce++;
  size_t n = strlen(ce);
  while (n > 0 && (ce[n - 1] == ' ' || ce[n - 1] == '\t')) n--;
  if (n == 0 || token_is(ce, n, "identity")) return WK_ENC_IDENTITY;
  if (token_is(ce, n, "gzip") || token_is(ce, n, "x-gzip")) return WK_ENC_GZIP;
  if (token_is(ce, n, "deflate")) return WK_ENC_DEFLATE;
  return WK_ENC_UNKNOWN;
}

wk_encoding_t wk_encoding_accepted(const char *ae) {
  int gzip = 0, deflate = 0, star = 0;
  for (const char *p = ae; p && *p;) {
    while (*p == ' ' || *p == ',' || *p == '\t') p++;
    size_t n = strcspn(p, ",; \t");
    const char *tok = p;
    p += n;
    double q = 1;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == ';') { /* parameters: only q matters */
      const char *qp = strstr(p, "q=");
      const char *end = p + strcspn(p, ",");
      if (qp != NULL && qp < end) q = strtod(qp + 2, NULL);
      p = end;
    }
    if (q <= 0) continue;
    if (token_is(tok, n, "gzip") || token_is(tok, n, "x-gzip")) gzip = 1;
    else if (token_is(tok, n, "deflate")) deflate = 1;
    else if (token_is(tok, n, "*")) star = 1;
  }
  return gzip || star ? WK_ENC_GZIP : deflate ? WK_ENC_DEFLATE : WK_ENC_IDENTITY;
}

/* One inflate pass with zlib's windowBits wb. Returns 0, or Z_DATA_ERROR-like failure as
 * WK_EFORMAT (so the caller may retry as raw deflate), WK_ETOOBIG, WK_ENOMEM. */
static int inflate_with(int wb, const char *in, size_t len, size_t max, char **out,
                        size_t *out_len, wk_err_t *err) {
  z_stream s;
  memset(&s, 0, sizeof s);
  if (inflateInit2(&s, wb) != Z_OK) return wk_err(err, WK_ENOMEM, "out of memory");
  size_t cap = len * 4 + 64 < max + 1 ? len * 4 + 64 : max + 1, used = 0;
  char *buf = malloc(cap + 1);
  int rc = buf ? 0 : wk_err(err, WK_ENOMEM, "out of memory");
  s.next_in = (Bytef *)in;
  while (rc == 0) {
    /* zlib counts in uInt: feed at most 1 GiB at a time */
    size_t left_in = len - (size_t)((const char *)s.next_in - in);
    s.avail_in = (uInt)(left_in < (1u << 30) ? left_in : (1u << 30));
    if (used == cap) {
      if (cap > max) {
        rc = wk_err(err, WK_ETOOBIG, "the body inflates past the limit (max_request_size) of %zu bytes", max);
        break;
      }
      size_t ncap = cap * 2 < max + 1 ? cap * 2 : max + 1;
      char *nb = realloc(buf, ncap + 1);
      if (nb == NULL) {
        rc = wk_err(err, WK_ENOMEM, "out of memory");
        break;
      }
      buf = nb;
      cap = ncap;
    }
    s.next_out = (Bytef *)buf + used;
    size_t room = cap - used;
    s.avail_out = (uInt)(room < (1u << 30) ? room : (1u << 30));
    uInt before = s.avail_out;
    int z = inflate(&s, Z_NO_FLUSH);
    used += before - s.avail_out;
    if (z == Z_STREAM_END) {
      if (used > max)
        rc = wk_err(err, WK_ETOOBIG, "the body inflates past the limit (max_request_size) of %zu bytes", max);
      break;
    }
    if (z == Z_BUF_ERROR && s.avail_in == 0 && used < cap) {
      rc = wk_err(err, WK_EFORMAT, "the compressed body ends before its end");
      break;
    }
    if (z != Z_OK && z != Z_BUF_ERROR) {
      rc = wk_err(err, WK_EFORMAT, "the compressed body is not valid (%s)", s.msg ? s.msg : "zlib error");
      break;
    }
  }
  inflateEnd(&s);
  if (rc != 0) {
    free(buf);
    return rc;
  }
  buf[used] = '\0';
  *out = buf;
  *out_len = used;
  return 0;
}

int wk_encoding_inflate(wk_encoding_t enc, const char *in, size_t len, size_t max, char **out,
                        size_t *out_len, wk_err_t *err) {
  if (enc == WK_ENC_GZIP) return inflate_with(16 + MAX_WBITS, in, len, max, out, out_len, err);
  int rc = inflate_with(MAX_WBITS, in, len, max, out, out_len, err);
  if (rc == WK_EFORMAT) rc = inflate_with(-MAX_WBITS, in, len, max, out, out_len, err);
  return rc;
}

int wk_encoding_deflate(wk_encoding_t enc, const char *in, size_t len, char **out, size_t *out_len) {
  z_stream s;
  memset(&s, 0, sizeof s);
  if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, enc == WK_ENC_GZIP ? 16 + MAX_WBITS : MAX_WBITS,
                   8, Z_DEFAULT_STRATEGY) != Z_OK)
    return WK_ENOMEM;
  if (len > (1u << 30)) { /* one call's worth; replies are far smaller */
    deflateEnd(&s);
    return WK_ETOOBIG;
  }
  uLong bound = deflateBound(&s, (uLong)len) + 32;
  char *buf = malloc(bound);
  if (buf == NULL) {
    deflateEnd(&s);
    return WK_ENOMEM;
  }
  s.next_in = (Bytef *)in;
  s.avail_in = (uInt)len;
  s.next_out = (Bytef *)buf;
  s.avail_out = (uInt)bound;
  int z = deflate(&s, Z_FINISH);
  size_t n = bound - s.avail_out;
  deflateEnd(&s);
  if (z != Z_STREAM_END) {
    free(buf);
    return WK_EINTERNAL;
  }
  *out = buf;
  *out_len = n;
  return 0;
}
