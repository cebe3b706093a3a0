/* Small text helpers for messages about untrusted input. */
#ifndef WK_CORE_TEXT_H
#define WK_CORE_TEXT_H

#include <stddef.h>

/* A printable, bounded copy of an untrusted name (an archive entry, a path) for error
 * messages: control bytes become '?', and a name longer than cap - 4 bytes is cut and ends
 * in "...". Writes into out (cap >= 8) and returns it. Any thread. */
const char *wk_text_shown(const char *name, size_t len, char *out, size_t cap);

#endif
