/* A growable byte buffer (always NUL-terminated after len) for building replies,
 * files and messages. Not thread-safe; one owner at a time. */
#ifndef WK_CORE_BUF_H
#define WK_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wk_buf_s {
  char *data; /* NULL until the first append; data[len] == '\0' after any append */
  size_t len;
  size_t cap;
} wk_buf_t;

#define WK_BUF_INIT {NULL, 0, 0}

void wk_buf_init(wk_buf_t *b);
/* Frees the memory; b is empty and reusable afterwards. */
void wk_buf_destroy(wk_buf_t *b);
/* Ensures room for n more bytes. Returns 0 or WK_ENOMEM. */
int wk_buf_reserve(wk_buf_t *b, size_t n);
int wk_buf_append(wk_buf_t *b, const void *p, size_t n);
int wk_buf_puts(wk_buf_t *b, const char *s);
int wk_buf_putc(wk_buf_t *b, char c);
int wk_buf_printf(wk_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int wk_buf_vprintf(wk_buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends s as a JSON string literal, quotes included. */
int wk_buf_json_str(wk_buf_t *b, const char *s);
/* Hands the memory to the caller (who frees it with free()) and empties b. */
char *wk_buf_steal(wk_buf_t *b, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
