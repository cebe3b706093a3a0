/* Error names and message formatting. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *wk_strerror(int code) {
  switch (code) {
  case WK_OK: return "ok";
  case WK_EINVAL: return "invalid input";
  case WK_ENOMEM: return "out of memory";
  case WK_EIO: return "i/o error";
  case WK_ETOOBIG: return "too large";
  case WK_ENOTFOUND: return "not found";
  case WK_EFORMAT: return "bad format";
  case WK_ECRC: return "checksum mismatch";
  case WK_EUNSUPPORTED: return "not supported";
  case WK_EEXIST: return "already exists";
  case WK_EUNSAFE: return "refused as unsafe";
  case WK_EMODEL: return "model rejected the input";
  case WK_EBUSY: return "busy";
  case WK_ETIMEDOUT: return "timed out";
  case WK_EINTERNAL: return "internal error";
  case WK_EWORKER: return "worker failed to start";
  default: return "unknown error";
  }
}

int wk_err(wk_err_t *err, int code, const char *fmt, ...) {
  if (err != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

void wk_err_prefix(wk_err_t *err, const char *fmt, ...) {
  if (err == NULL) return;
  char prefix[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  char old[sizeof err->msg];
  memcpy(old, err->msg, sizeof old);
  size_t n = strlen(prefix);
  if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
  memcpy(err->msg, prefix, n);
  memcpy(err->msg + n, ": ", 2);
  size_t room = sizeof err->msg - n - 3;
  size_t m = strnlen(old, room);
  memcpy(err->msg + n + 2, old, m);
  err->msg[n + 2 + m] = '\0';
}
