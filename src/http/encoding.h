/* HTTP content codings (RFC 9110 8.4): gzip and deflate request bodies are inflated
 * before routing, and a reply is compressed when the client's Accept-Encoding asks for it
 * (as Triton does; its clients send both). zlib does the work. */
#ifndef WK_HTTP_ENCODING_H
#define WK_HTTP_ENCODING_H

#include <stddef.h>

#include "core/error.h"

typedef enum { WK_ENC_IDENTITY = 0, WK_ENC_GZIP, WK_ENC_DEFLATE, WK_ENC_UNKNOWN } wk_encoding_t;

/* The coding a Content-Encoding value names (NULL or "" or "identity": identity; "x-gzip"
 * is gzip; several codings, or another one, are WK_ENC_UNKNOWN). */
wk_encoding_t wk_encoding_of(const char *content_encoding);

/* The coding to answer with for an Accept-Encoding value: gzip, else deflate, when listed
 * with a q above 0 (or "*"); identity otherwise. */
wk_encoding_t wk_encoding_accepted(const char *accept_encoding);

/* Inflates in (gzip or deflate; deflate as zlib data, or raw, as browsers have sent it)
 * into a new buffer of at most max bytes (*out, malloc'd, NUL-terminated). WK_ETOOBIG
 * past max, WK_EFORMAT for data that is not in that coding, WK_ENOMEM. */
int wk_encoding_inflate(wk_encoding_t enc, const char *in, size_t len, size_t max, char **out,
                        size_t *out_len, wk_err_t *err);

/* Compresses in with gzip or deflate (zlib format) into a new buffer. WK_ENOMEM. */
int wk_encoding_deflate(wk_encoding_t enc, const char *in, size_t len, char **out, size_t *out_len);

#endif
