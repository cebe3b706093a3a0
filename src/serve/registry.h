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

/* ---- loads: names on their way in, and loads that failed ([13] part 3) ----
 * A registration or a startup load is noted before it starts, so that readiness can say
 * "loading" (not "no such model"), and a failed one stays noted, so that readiness says
 * "failed" and why, until the name is registered, the failure is forgotten
 * (wk_registry_load_forget) or newer failures push it out (at most WK_MAX_LOADS kept). */

#define WK_MAX_LOADS 64

typedef enum { WK_LOAD_NONE = 0, WK_LOAD_LOADING = 1, WK_LOAD_FAILED = 2 } wk_load_state_t;

typedef struct wk_load_info_s {
  const char *name;   /* the name asked for, or the archive's file name without extension */
  const char *url;
  const char *reason; /* "" while loading */
  wk_load_state_t state;
  long long since_ms; /* wall clock: when it started, or failed */
} wk_load_info_t;

/* Notes that name is loading from url; returns a ticket for wk_registry_load_end (0 when
 * the table holds WK_MAX_LOADS loads already: then the load is not shown). Any thread. */
long wk_registry_load_begin(wk_registry_t *r, const char *name, const char *url);
/* Ends a load: with reason NULL it succeeded (the note goes; wk_registry_add has also
 * dropped that name's failures), else it is kept as failed with reason. */
void wk_registry_load_end(wk_registry_t *r, long ticket, const char *reason);
/* The state of name's loads (LOADING wins over FAILED), with the reason of the latest
 * failure in reason (may be NULL). */
wk_load_state_t wk_registry_load_state(wk_registry_t *r, const char *name, char *reason,
                                       size_t reason_len);
/* Forgets name's failed loads; returns how many. */
int wk_registry_load_forget(wk_registry_t *r, const char *name);
/* Calls fn with every noted load, oldest first, under the loads' lock (no wk_registry_*
 * call inside). */
typedef void (*wk_registry_loads_fn)(const wk_load_info_t *loads, size_t n, void *ud);
void wk_registry_visit_loads(wk_registry_t *r, wk_registry_loads_fn fn, void *ud);
/* The name a load of url is known by before its manifest is read: its file name without
 * .mar, .tar.gz, .tgz or .zip ("models/fashion.mar" -> "fashion"). */
void wk_registry_name_of_url(const char *url, char *out, size_t outlen);

#endif
