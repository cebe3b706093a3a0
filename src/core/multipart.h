/* multipart/form-data bodies (RFC 7578): split into parts without copying. Used for
 * images and form fields sent with `curl -F`. */
#ifndef WK_CORE_MULTIPART_H
#define WK_CORE_MULTIPART_H

#include <stddef.h>

#include "core/error.h"

#define WK_MULTIPART_MAX_PARTS 64

typedef struct wk_multipart_part_s {
  char name[128];      /* the form field name ("" when absent) */
  char filename[256];  /* "" unless the part is a file */
  char content_type[128];
  const char *data; /* points into the body */
  size_t len;
} wk_multipart_part_t;

/* 1 if content_type is multipart/form-data. */
int wk_multipart_is(const char *content_type);

/* Splits body by the boundary named in content_type into parts (at most
 * WK_MULTIPART_MAX_PARTS). Returns the count, or a negative WK_E* code with a message
 * ("multipart body has no closing boundary"). */
int wk_multipart_parse(const char *content_type, const char *body, size_t len,
                       wk_multipart_part_t *parts, int max_parts, wk_err_t *err);

#endif
