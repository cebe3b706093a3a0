/* Fuzz target: multipart/form-data bodies (first line of the input is the boundary),
 * urlencoded forms (the whole input) and base64 decoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/form.h"
#include "core/multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data;
  const char *nl = memchr(p, '\n', size);
  size_t blen = nl ? (size_t)(nl - p) : 0;
  if (blen > 70) blen = 70;
  char ct[128] = "multipart/form-data; boundary=";
  memcpy(ct + strlen(ct), p, blen);
  const char *body = nl ? nl + 1 : p;
  size_t len = nl ? size - (size_t)(nl + 1 - p) : size;
  wk_multipart_part_t parts[WK_MULTIPART_MAX_PARTS];
  int n = wk_multipart_parse(ct, body, len, parts, WK_MULTIPART_MAX_PARTS, NULL);
  for (int i = 0; i < n; i++) {
    if (parts[i].data < body || parts[i].data + parts[i].len > body + len) abort();
  }
  wk_form_field_t fields[WK_MULTIPART_MAX_PARTS];
  n = wk_form_parse(p, size, fields, WK_MULTIPART_MAX_PARTS, NULL);
  for (int i = 0; i < n; i++) {
    if (fields[i].len > size || strlen(fields[i].name) > size) abort(); /* decoding shrinks */
  }
  if (n > 0) wk_form_fields_free(fields, n);
  unsigned char *out;
  size_t outlen;
  if (wk_base64_decode(p, size, &out, &outlen, NULL) == 0) free(out);
  return 0;
}
