/* The AOTInductor package part of `wick inspect`: what a .pt2 holds, read with wick's zip
 * reader (archive/pt2.h); nothing in it is loaded or run. */
#ifndef WK_CLI_INSPECT_PT2_H
#define WK_CLI_INSPECT_PT2_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Reads the package at path, or in data (read out of an archive; name is its file name),
 * and returns what inspect shows of it, or NULL when it is no AOTInductor package. */
typedef struct wk__pt2_view_s wk__pt2_view_t;
wk__pt2_view_t *wk__pt2_view(const char *name, const void *data, size_t len);
void wk__pt2_view_free(wk__pt2_view_t *v);

/* The view as text (a section of inspect's output) or as a JSON object. */
void wk__pt2_print(const wk__pt2_view_t *v);
json_t *wk__pt2_json(const wk__pt2_view_t *v);

/* Whether wick would refuse to load it (then the view says why). */
bool wk__pt2_refused(const wk__pt2_view_t *v);

/* `wick inspect model.pt2`: 0, or 1 after printing the error. */
int wk__inspect_pt2_file(const char *path, bool as_json);

#endif
