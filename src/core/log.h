/* Logging to stderr with a timestamp and a level. Any thread; lines are written with
 * one write() so they do not interleave. */
#ifndef WK_CORE_LOG_H
#define WK_CORE_LOG_H

#include <stddef.h>

enum { WK_LOG_DEBUG = 0, WK_LOG_INFO = 1, WK_LOG_WARN = 2, WK_LOG_ERROR = 3 };

void wk_log_set_level(int level);
/* Copies in[0..len) to out (at most cap bytes; returns the count) with control characters
 * written as \xNN and each newline followed by "    | ", so that nothing logged (a request
 * path with CR LF or ESC, a handler's message) can forge an entry or a terminal escape.
 * wk_log applies it to every message. [11] part 8. */
size_t wk_log_escape(const char *in, size_t len, char *out, size_t cap);

void wk_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define wk_log_info(...) wk_log(WK_LOG_INFO, __VA_ARGS__)
#define wk_log_warn(...) wk_log(WK_LOG_WARN, __VA_ARGS__)
#define wk_log_error(...) wk_log(WK_LOG_ERROR, __VA_ARGS__)
#define wk_log_debug(...) wk_log(WK_LOG_DEBUG, __VA_ARGS__)

#endif
