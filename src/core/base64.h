/* Base64 (RFC 4648): decoding (standard and URL-safe alphabets, padding optional,
 * whitespace ignored) for image bytes sent inside JSON, and encoding for bytes replied in JSON. */
#ifndef WK_CORE_BASE64_H
#define WK_CORE_BASE64_H

#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

/* Decodes src into a malloc'd buffer (caller frees). Fails with WK_EINVAL and a message
 * naming the offset of the first bad character. */
int wk_base64_decode(const char *src, size_t len, unsigned char **out, size_t *out_len,
                     wk_err_t *err);

/* Appends the standard, padded base64 text of data[0..len) to b. */
int wk_base64_encode(wk_buf_t *b, const void *data, size_t len);

#endif
