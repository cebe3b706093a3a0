/* Text helpers (see text.h). */
#include "core/text.h"

#include <string.h>

const char *wk_text_shown(const char *name, size_t len, char *out, size_t cap) {
  size_t keep = cap - 4, n = 0;
  for (size_t i = 0; i < len && n < keep; i++) {
    unsigned char c = (unsigned char)name[i];
    out[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (len > keep) {
    memcpy(out + n, "...", 3);
    n += 3;
  }
  out[n] = '\0';
  return out;
}
