/* multipart/form-data parsing: boundary from the Content-Type, part headers
 * (Content-Disposition name/filename, Content-Type), data as pointers into the body. */
#include "core/multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int wk_multipart_is(const char *ct) {
  return ct != NULL && strncasecmp(ct, "multipart/form-data", 19) == 0;
}

/* Copies the value of param (e.g. boundary=, name=) from a header value into out. */
static int header_param(const char *v, size_t vlen, const char *param, char *out, size_t outlen) {
  size_t plen = strlen(param);
  for (size_t i = 0; i + plen < vlen; i++) {
    if (strncasecmp(v + i, param, plen) != 0) continue;
    if (i > 0 && v[i - 1] != ';' && v[i - 1] != ' ' && v[i - 1] != '\t') continue;
    size_t j = i + plen, k = 0;
    if (j < vlen && v[j] == '"') {
      for (j++; j < vlen && v[j] != '"' && k + 1 < outlen; j++) out[k++] = v[j];
    } else {
      for (; j < vlen && v[j] != ';' && v[j] != ' ' && v[j] != '\r' && k + 1 < outlen; j++)
        out[k++] = v[j];
    }
    out[k] = '\0';
    return 1;
  }
  return 0;
}

static const char *find(const char *hay, size_t haylen, const char *needle, size_t nlen) {
  return memmem(hay, haylen, needle, nlen);
}

int wk_multipart_parse(const char *ct, const char *body, size_t len, wk_multipart_part_t *parts,
                       int max_parts, wk_err_t *err) {
  char boundary[200];
  if (!wk_multipart_is(ct) || !header_param(ct, strlen(ct), "boundary=", boundary + 2, sizeof boundary - 2))
    return wk_err(err, WK_EINVAL, "multipart/form-data without a boundary parameter");
  boundary[0] = boundary[1] = '-';
  size_t blen = strlen(boundary);
  if (blen < 3) return wk_err(err, WK_EINVAL, "multipart/form-data with an empty boundary");
  const char *p = find(body, len, boundary, blen);
  if (p == NULL) return wk_err(err, WK_EINVAL, "multipart body does not contain its boundary");
  const char *end = body + len;
  int n = 0;
  for (;;) {
    p += blen;
    if (end - p >= 2 && p[0] == '-' && p[1] == '-') return n; /* closing boundary */
    if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') p += 2;
    else if (p < end && p[0] == '\n') p += 1;
    else return wk_err(err, WK_EINVAL, "multipart body is malformed after a boundary");
    const char *hdr_end = find(p, (size_t)(end - p), "\r\n\r\n", 4);
    size_t sep = 4;
    if (hdr_end == NULL) {
      hdr_end = find(p, (size_t)(end - p), "\n\n", 2);
      sep = 2;
    }
    if (hdr_end == NULL) return wk_err(err, WK_EINVAL, "multipart part without the blank line after its headers");
    const char *data = hdr_end + sep;
    const char *next = find(data, (size_t)(end - data), boundary, blen);
    if (next == NULL) return wk_err(err, WK_EINVAL, "multipart body has no closing boundary");
    if (n == max_parts) return wk_err(err, WK_ETOOBIG, "multipart body has more than %d parts", max_parts);
    wk_multipart_part_t *part = &parts[n++];
    memset(part, 0, sizeof *part);
    /* headers: one per line */
    for (const char *line = p; line < hdr_end;) {
      const char *eol = memchr(line, '\n', (size_t)(hdr_end - line));
      if (eol == NULL) eol = hdr_end;
      size_t llen = (size_t)(eol - line);
      if (llen > 20 && strncasecmp(line, "Content-Disposition:", 20) == 0) {
        header_param(line, llen, "name=", part->name, sizeof part->name);
        header_param(line, llen, "filename=", part->filename, sizeof part->filename);
      } else if (llen > 13 && strncasecmp(line, "Content-Type:", 13) == 0) {
        const char *v = line + 13;
        while (v < eol && *v == ' ') v++;
        size_t vl = (size_t)(eol - v);
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' ')) vl--;
        snprintf(part->content_type, sizeof part->content_type, "%.*s", (int)vl, v);
      }
      line = eol + 1;
    }
    /* the data ends before the CRLF that precedes the next boundary */
    const char *dend = next;
    if (dend - data >= 2 && dend[-2] == '\r' && dend[-1] == '\n') dend -= 2;
    else if (dend - data >= 1 && dend[-1] == '\n') dend -= 1;
    part->data = data;
    part->len = (size_t)(dend - data);
    p = next;
  }
}
