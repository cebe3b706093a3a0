/* `wick top`'s screen, without a terminal or a network: one frame of text from the body of
 * GET /status.json, sized to a given width and height, with every text the server sent
 * made safe to print. Reading the server and drawing on the terminal are top.c's. */
#ifndef WK_CLI_TOP_FORMAT_H
#define WK_CLI_TOP_FORMAT_H

#include <stddef.h>
#include <time.h>

#include "core/buf.h"

typedef struct wk_top_view_s {
  int width;          /* columns; every line of a frame fits in them (at least 1) */
  int height;         /* lines a frame may take; 0: as many as it needs */
  int utf8;           /* the terminal shows UTF-8: accented Latin, Greek and Cyrillic
                         letters stay; with 0 every non-ASCII character becomes '?' */
  int ansi;           /* the column titles in reverse video (an escape sequence of its own,
                         not counted in the width); 0: plain text only */
  time_t now;         /* the clock shown first in the header; 0: none */
  const char *source; /* the address read, named by error frames; NULL: none */
  const char *footer; /* the last line (at the bottom when height is set); NULL: none */
} wk_top_view_t;

/* Copies len bytes of text from the server into out as a terminal may show it: printable
 * ASCII stays, tab, CR and LF become a space, every other control byte (ESC, BEL, DEL, C1)
 * and every byte that is not well-formed UTF-8 becomes '?', and a well-formed non-ASCII
 * character stays (view->utf8 set, and a narrow letter: see top_format.c) or becomes one
 * '?'. out (cap >= 1) is always NUL-terminated; what does not fit is dropped, never half
 * a character. Returns the columns written (one per character). Any thread. */
size_t wk_top_clean(const char *text, size_t len, int utf8, char *out, size_t cap);

/* Formats one frame from the text of a GET /status.json answer into out (emptied first):
 * a header (the server, its memory, GPUs, health), one row per model version and per load
 * that is running or failed, then the recent errors, newest first, as many as fit. Lines
 * end in '\n'; there are at most view->height of them (when set) and none is wider than
 * view->width columns. Keys that are missing or of another type show as "-". Returns 0, or
 * WK_EFORMAT when the text is not a JSON object (out then holds a frame that says so).
 * Any thread. */
int wk_top_format(const char *json, size_t len, const wk_top_view_t *view, wk_buf_t *out);

/* Formats a frame that says the server could not be read (message: "connection refused",
 * "401 ..."), within the same bounds as wk_top_format. Any thread. */
void wk_top_format_error(const char *message, const wk_top_view_t *view, wk_buf_t *out);

#endif
