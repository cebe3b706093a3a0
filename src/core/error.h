/* Error codes and error messages shared by every module.
 * Functions return 0 or a negative WK_E* code; a wk_err_t, when given, receives a
 * sentence for the user that says what was wrong and what was expected. */
#ifndef WK_CORE_ERROR_H
#define WK_CORE_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  WK_OK = 0,
  WK_EINVAL = -1,       /* malformed input */
  WK_ENOMEM = -2,       /* allocation failed */
  WK_EIO = -3,          /* read/write/open failed */
  WK_ETOOBIG = -4,      /* a size limit was exceeded */
  WK_ENOTFOUND = -5,    /* no such file, entry, model, key */
  WK_EFORMAT = -6,      /* bytes are not in the expected format */
  WK_ECRC = -7,         /* checksum mismatch */
  WK_EUNSUPPORTED = -8, /* valid but not supported by wick */
  WK_EEXIST = -9,       /* already exists */
  WK_EUNSAFE = -10,     /* refused for safety (path escape, link, code) */
  WK_EMODEL = -11,      /* the model rejected the input */
  WK_EBUSY = -12,       /* queue full, no worker */
  WK_ETIMEDOUT = -13,   /* deadline passed */
  WK_EINTERNAL = -14,   /* a bug or an unexpected library failure */
  WK_EWORKER = -15      /* a worker could not start (its handler raised, it timed out) */
};

/* A message for the user. Always NUL-terminated; empty when nothing was said. */
typedef struct wk_err_s {
  char msg[512];
} wk_err_t;

/* Returns a static name for code ("invalid input", ...). Any thread. */
const char *wk_strerror(int code);

/* Formats a message into err (if err is non-NULL) and returns code, so that callers
 * can write `return wk_err(err, WK_EINVAL, "...", ...);`. */
int wk_err(wk_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to the message already in err. */
void wk_err_prefix(wk_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif
