/* stderr logger. */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int g_level = WK_LOG_INFO; /* set while threads log (tests, reloads) */

size_t wk_log_escape(const char *in, size_t len, char *out, size_t cap) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    char esc[8];
    size_t k = 0;
    if (c == '\n') { /* a message's own lines stay readable but cannot pass for entries */
      memcpy(esc, "\n    | ", 7);
      k = 7;
    } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
      esc[0] = '\\', esc[1] = 'x', esc[2] = hex[c >> 4], esc[3] = hex[c & 15];
      k = 4;
    } else {
      esc[0] = (char)c;
      k = 1;
    }
    if (o + k > cap) break;
    memcpy(out + o, esc, k);
    o += k;
  }
  return o;
}

void wk_log_set_level(int level) { g_level = level; }

void wk_log(int level, const char *fmt, ...) {
  if (level < g_level) return;
  static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  char line[2048];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                   tm.tm_sec, ts.tv_nsec / 1000000, names[level & 3]);
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t mlen = m < 0 ? 0 : (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
  size_t len = (size_t)n + wk_log_escape(msg, mlen, line + n, sizeof line - (size_t)n - 1);
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
