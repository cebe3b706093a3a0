/* application/x-www-form-urlencoded bodies (`curl -d a=1 -d b=2`): name=value pairs split
 * on '&', '+' read as a space and %XX escapes decoded, as HTML forms and TorchServe read
 * them. */
#ifndef WK_CORE_FORM_H
#define WK_CORE_FORM_H

#include <stddef.h>

#include "core/error.h"

typedef struct wk_form_field_s {
  char *name;  /* decoded, NUL-terminated (malloc'd) */
  char *value; /* decoded, NUL-terminated too (malloc'd); may hold NULs: use len */
  size_t len;
} wk_form_field_t;

/* 1 if content_type is application/x-www-form-urlencoded (parameters ignored). */
int wk_form_is(const char *content_type);

/* Splits body into at most max fields (a pair without '=' is a name with an empty value;
 * empty pairs are skipped). Returns the count, or a negative WK_E* code with a message (a
 * bad %-escape, more than max fields, out of memory); on failure nothing is left
 * allocated. Free the fields with wk_form_fields_free. Any thread. */
int wk_form_parse(const char *body, size_t len, wk_form_field_t *fields, int max, wk_err_t *err);

void wk_form_fields_free(wk_form_field_t *fields, int n);

#endif
