/* application/x-www-form-urlencoded bodies (see form.h). */
#include "core/form.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int wk_form_is(const char *content_type) {
  static const char mt[] = "application/x-www-form-urlencoded";
  if (content_type == NULL) return 0;
  while (*content_type == ' ') content_type++;
  if (strncasecmp(content_type, mt, sizeof mt - 1) != 0) return 0;
  char c = content_type[sizeof mt - 1];
  return c == '\0' || c == ';' || c == ' ';
}

static int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes s[0..n) into a new NUL-terminated string; *out_len its length. at: the offset of
 * s in the body, for the message. */
static int decode(const char *s, size_t n, size_t at, char **out, size_t *out_len, wk_err_t *err) {
  char *d = malloc(n + 1);
  if (d == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '+') {
      d[k++] = ' ';
    } else if (s[i] == '%') {
      int hi = i + 2 < n ? hex(s[i + 1]) : -1;
      int lo = i + 2 < n ? hex(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        free(d);
        return wk_err(err, WK_EINVAL,
                      "the form body (application/x-www-form-urlencoded) has a bad %%-escape at "
                      "byte %zu: expected %% and two hex digits",
                      at + i);
      }
      d[k++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      d[k++] = s[i];
    }
  }
  d[k] = '\0';
  *out = d;
  *out_len = k;
  return 0;
}

int wk_form_parse(const char *body, size_t len, wk_form_field_t *fields, int max, wk_err_t *err) {
  int n = 0;
  size_t pos = 0;
  while (pos < len) {
    const char *p = body + pos, *amp = memchr(p, '&', len - pos);
    size_t plen = amp ? (size_t)(amp - p) : len - pos;
    if (plen > 0) {
      if (n == max) {
        wk_form_fields_free(fields, n);
        return wk_err(err, WK_ETOOBIG, "the form body has more than %d fields", max);
      }
      const char *eq = memchr(p, '=', plen);
      size_t nlen = eq ? (size_t)(eq - p) : plen, nl;
      wk_form_field_t *f = &fields[n];
      int rc = decode(p, nlen, pos, &f->name, &nl, err);
      if (rc == 0) {
        rc = eq ? decode(eq + 1, plen - nlen - 1, pos + nlen + 1, &f->value, &f->len, err)
                : decode("", 0, pos, &f->value, &f->len, err);
        if (rc != 0) free(f->name);
      }
      if (rc != 0) {
        wk_form_fields_free(fields, n);
        return rc;
      }
      n++;
    }
    pos += plen + 1;
  }
  return n;
}

void wk_form_fields_free(wk_form_field_t *fields, int n) {
  for (int i = 0; i < n; i++) {
    free(fields[i].name);
    free(fields[i].value);
  }
}
