/* The registry: every loaded model version by name, each name's default version, and a
 * reference count per version so that unregistering waits for requests that hold one.
 * Any thread may call these functions; none of them loads or starts a model. */
#ifndef WK_SERVE_REGISTRY_H
#define WK_SERVE_REGISTRY_H

#include <stddef.h>

#include "core/error.h"
#include "serve/model.h"

typedef struct wk_registry_s wk_registry_t;

wk_registry_t *wk_registry_new(void);
/* Frees every model still registered (answering their queued requests with 503). No
 * reference may be held. Main thread, at shutdown. */
void wk_registry_free(wk_registry_t *r);

/* Adds m (taking ownership on success only). The first version of a name becomes its
 * default. WK_EEXIST if that name and version are already registered, WK_ETOOBIG past
 * WK_MAX_MODELS; err says so in TorchServe's words. */
int wk_registry_add(wk_registry_t *r, wk_model_t *m, wk_err_t *err);

/* The version of name (NULL: the default one) with a reference held, or NULL. The model
 * stays valid until the caller gives the reference back with wk_registry_release. */
wk_model_t *wk_registry_acquire(wk_registry_t *r, const char *name, const char *version);
void wk_registry_release(wk_registry_t *r, wk_model_t *m);

/* Takes the version of name (NULL: the default one) out of the registry, so that new
 * lookups fail, then waits until every reference to it is released and hands it to the
 * caller, who frees it with wk_model_free. Fails with WK_ENOTFOUND (no such name or
 * version) or WK_EINVAL (it is the default version and other versions remain), with
 * TorchServe's message in err. Never call it while holding a reference. */
int wk_registry_remove(wk_registry_t *r, const char *name, const char *version, wk_model_t **out,
                       wk_err_t *err);

/* Makes version the default of name. WK_ENOTFOUND (name or version) with a message. */
int wk_registry_set_default(wk_registry_t *r, const char *name, const char *version, wk_err_t *err);

/* 1 if any version of name is registered. */
int wk_registry_has_name(wk_registry_t *r, const char *name);

/* Called with every registered version, sorted by name then version, and for each whether
 * it is its name's default. It runs under the registry's read lock: the models stay valid
 * during the call, and it must not call any wk_registry_* function. */
typedef void (*wk_registry_visit_fn)(wk_model_t *const *models, const int *is_default, size_t n,
                                     void *ud);
void wk_registry_visit(wk_registry_t *r, wk_registry_visit_fn fn, void *ud);

#endif
