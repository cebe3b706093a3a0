/* Base64 decoding (RFC 4648, standard and URL-safe alphabets, padding optional,
 * whitespace ignored) for image bytes sent inside JSON. */
#ifndef WK_CORE_BASE64_H
#define WK_CORE_BASE64_H

#include <stddef.h>

#include "core/error.h"

/* Decodes src into a malloc'd buffer (caller frees). Fails with WK_EINVAL and a message
 * naming the offset of the first bad character. */
int wk_base64_decode(const char *src, size_t len, unsigned char **out, size_t *out_len,
                     wk_err_t *err);

#endif
