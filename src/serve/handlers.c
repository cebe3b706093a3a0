/* The native handler kinds, by name. A new kind: its file defines a wk_handler_t, and one
 * line here lists it. (The Python kind is not looked up by name: every handler that is not
 * native runs in Python.) */
#include <string.h>

#include "serve/handler.h"

static const wk_handler_t *const native_kinds[] = {
    &wk__handler_tensor,
    &wk__handler_image,
    &wk__handler_detect,
};

const wk_handler_t *wk__handler_find(const char *name) {
  if (name == NULL || *name == '\0') return &wk__handler_tensor;
  for (size_t i = 0; i < sizeof native_kinds / sizeof native_kinds[0]; i++) {
    const wk_handler_t *h = native_kinds[i];
    if (strcmp(h->name, name) == 0) return h;
    for (const char *const *a = h->aliases; a && *a; a++)
      if (strcmp(*a, name) == 0) return h;
  }
  return NULL;
}
