/* The registry: every loaded model version by name, and each name's default version.
 * Lookups take a read lock and may run on any HTTP thread. */
#ifndef WK_SERVE_REGISTRY_H
#define WK_SERVE_REGISTRY_H

#include <stddef.h>

#include "core/error.h"
#include "serve/model.h"

typedef struct wk_registry_s wk_registry_t;

wk_registry_t *wk_registry_new(void);
/* Frees every model still registered (answering their queued requests with 503). */
void wk_registry_free(wk_registry_t *r);
/* Adds m (taking ownership). The first version of a name becomes its default.
 * WK_EEXIST if that name and version are already registered. */
int wk_registry_add(wk_registry_t *r, wk_model_t *m, wk_err_t *err);
/* The version of name (NULL: the default one), or NULL. */
wk_model_t *wk_registry_get(wk_registry_t *r, const char *name, const char *version);
/* Copies up to cap model pointers into out (sorted by name, then version); returns the
 * total. The pointers stay valid while models are not removed. */
size_t wk_registry_list(wk_registry_t *r, wk_model_t **out, size_t cap);
/* 1 if name's default version is m. */
int wk_registry_is_default(wk_registry_t *r, const wk_model_t *m);

#endif
