/* Registry of model versions: a sorted array of slots under a writer-preferring
 * read-write lock. Each slot counts the references that requests hold; a removed slot
 * waits on a retiring list until its count drops to zero. */
#include "serve/registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/limits.h"

typedef struct {
  long ticket;
  wk_load_state_t state;
  long long since_ms;
  char name[128];
  char url[512];
  char reason[512];
} load_t;

typedef struct slot_s {
  wk_model_t *model;
  atomic_int refs;
  int removed;         /* on the retiring list; written under the write lock */
  struct slot_s *next; /* retiring list */
} slot_t;

struct wk_registry_s {
  pthread_rwlock_t lock;
  slot_t *slots[WK_MAX_MODELS]; /* sorted by name, then version */
  size_t count;
  int is_default[WK_MAX_MODELS];     /* indexed like slots */
  wk_model_t *models[WK_MAX_MODELS]; /* slots[i]->model, for wk_registry_visit */
  slot_t *retiring;
  pthread_mutex_t drain_lock; /* with drained: a retiring slot's count reached zero */
  pthread_cond_t drained;
  pthread_mutex_t loads_lock; /* guards the loads, apart from the models' lock */
  load_t loads[WK_MAX_LOADS]; /* oldest first */
  size_t n_loads;
  long next_ticket;
};

wk_registry_t *wk_registry_new(void) {
  wk_registry_t *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  /* Writers first: a steady stream of predictions must not starve an unregister. */
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&r->lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  pthread_mutex_init(&r->drain_lock, NULL);
  pthread_cond_init(&r->drained, NULL);
  pthread_mutex_init(&r->loads_lock, NULL);
  return r;
}

void wk_registry_free(wk_registry_t *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->count; i++) {
    wk_model_free(r->slots[i]->model);
    free(r->slots[i]);
  }
  pthread_rwlock_destroy(&r->lock);
  pthread_mutex_destroy(&r->drain_lock);
  pthread_cond_destroy(&r->drained);
  pthread_mutex_destroy(&r->loads_lock);
  free(r);
}

static int cmp_key(const wk_model_t *m, const char *name, const char *version) {
  int c = strcmp(wk_model_name(m), name);
  return c ? c : strcmp(wk_model_version(m), version);
}

/* Index of the first slot whose (name, version) is not below the given key. Lock held. */
static size_t lower_bound(const wk_registry_t *r, const char *name, const char *version) {
  size_t lo = 0, hi = r->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cmp_key(r->slots[mid]->model, name, version) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int same_name(const wk_registry_t *r, size_t i, const char *name) {
  return i < r->count && strcmp(wk_model_name(r->slots[i]->model), name) == 0;
}

/* The index of name's version (NULL: its default), or -1. Lock held. */
static long find(const wk_registry_t *r, const char *name, const char *version) {
  if (version != NULL) {
    size_t i = lower_bound(r, name, version);
    return i < r->count && cmp_key(r->slots[i]->model, name, version) == 0 ? (long)i : -1;
  }
  for (size_t i = lower_bound(r, name, ""); same_name(r, i, name); i++)
    if (r->is_default[i]) return (long)i;
  return -1;
}

static int has_name(const wk_registry_t *r, const char *name) {
  return same_name(r, lower_bound(r, name, ""), name);
}

/* Rebuilds the model array that wk_registry_visit hands out. Write lock held. */
static void sync_models(wk_registry_t *r) {
  for (size_t i = 0; i < r->count; i++)
    r->models[i] = r->slots[i]->model;
}

int wk_registry_add(wk_registry_t *r, wk_model_t *m, wk_err_t *err) {
  slot_t *s = calloc(1, sizeof *s);
  if (s == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  s->model = m;
  atomic_init(&s->refs, 0);
  const char *name = wk_model_name(m), *version = wk_model_version(m);
  pthread_rwlock_wrlock(&r->lock);
  int rc = 0;
  size_t pos = lower_bound(r, name, version);
  if (r->count == WK_MAX_MODELS) {
    rc = wk_err(err, WK_ETOOBIG, "Too many models: the limit is %d model versions", WK_MAX_MODELS);
  } else if (pos < r->count && cmp_key(r->slots[pos]->model, name, version) == 0) {
    rc = wk_err(err, WK_EEXIST, "Model version %s is already registered for model %s", version,
                name);
  } else {
    int first = !has_name(r, name);
    memmove(&r->slots[pos + 1], &r->slots[pos], (r->count - pos) * sizeof r->slots[0]);
    memmove(&r->is_default[pos + 1], &r->is_default[pos],
            (r->count - pos) * sizeof r->is_default[0]);
    r->slots[pos] = s;
    r->is_default[pos] = first;
    r->count++;
    sync_models(r);
  }
  pthread_rwlock_unlock(&r->lock);
  if (rc != 0) free(s);
  else wk_registry_load_forget(r, name); /* registered now: its earlier failures are past */
  return rc;
}

wk_model_t *wk_registry_acquire(wk_registry_t *r, const char *name, const char *version) {
  wk_model_t *m = NULL;
  pthread_rwlock_rdlock(&r->lock);
  long i = find(r, name, version);
  if (i >= 0) {
    atomic_fetch_add_explicit(&r->slots[i]->refs, 1, memory_order_relaxed);
    m = r->slots[i]->model;
  }
  pthread_rwlock_unlock(&r->lock);
  return m;
}

void wk_registry_release(wk_registry_t *r, wk_model_t *m) {
  pthread_rwlock_rdlock(&r->lock);
  slot_t *s = NULL;
  size_t i = lower_bound(r, wk_model_name(m), wk_model_version(m));
  if (i < r->count && r->slots[i]->model == m) s = r->slots[i];
  for (slot_t *t = r->retiring; s == NULL && t; t = t->next)
    if (t->model == m) s = t;
  if (s == NULL) abort(); /* a release without an acquire: a bug, never input */
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1 && s->removed) {
    pthread_mutex_lock(&r->drain_lock);
    pthread_cond_broadcast(&r->drained);
    pthread_mutex_unlock(&r->drain_lock);
  }
  pthread_rwlock_unlock(&r->lock);
}

int wk_registry_remove(wk_registry_t *r, const char *name, const char *version, wk_model_t **out,
                       wk_err_t *err) {
  pthread_rwlock_wrlock(&r->lock);
  long i = find(r, name, version);
  int rc = 0;
  if (i < 0) {
    if (!has_name(r, name))
      rc = wk_err(err, WK_ENOTFOUND, "Model not found: %s", name);
    else
      rc = wk_err(err, WK_ENOTFOUND, "Model version: %s does not exist for model: %s", version,
                  name);
  } else if (r->is_default[i] &&
             ((i > 0 && same_name(r, (size_t)i - 1, name)) || same_name(r, (size_t)i + 1, name))) {
    rc = wk_err(err, WK_EINVAL,
                "Cannot remove default version for model %s: make another version the default "
                "first (PUT /models/%s/{version}/set-default)",
                name, name);
  }
  if (rc != 0) {
    pthread_rwlock_unlock(&r->lock);
    return rc;
  }
  slot_t *s = r->slots[i];
  size_t tail = r->count - (size_t)i - 1;
  memmove(&r->slots[i], &r->slots[i + 1], tail * sizeof r->slots[0]);
  memmove(&r->is_default[i], &r->is_default[i + 1], tail * sizeof r->is_default[0]);
  r->count--;
  sync_models(r);
  s->removed = 1;
  s->next = r->retiring;
  r->retiring = s;
  pthread_rwlock_unlock(&r->lock);

  /* New lookups fail from here on; wait for the requests that got in before. */
  pthread_mutex_lock(&r->drain_lock);
  while (atomic_load_explicit(&s->refs, memory_order_acquire) > 0)
    pthread_cond_wait(&r->drained, &r->drain_lock);
  pthread_mutex_unlock(&r->drain_lock);

  pthread_rwlock_wrlock(&r->lock);
  for (slot_t **p = &r->retiring; *p; p = &(*p)->next) {
    if (*p == s) {
      *p = s->next;
      break;
    }
  }
  pthread_rwlock_unlock(&r->lock);
  *out = s->model;
  free(s);
  return 0;
}

int wk_registry_set_default(wk_registry_t *r, const char *name, const char *version,
                            wk_err_t *err) {
  pthread_rwlock_wrlock(&r->lock);
  long i = find(r, name, version);
  int rc = 0;
  if (i < 0) {
    if (!has_name(r, name))
      rc = wk_err(err, WK_ENOTFOUND, "Model not found: %s", name);
    else
      rc = wk_err(err, WK_ENOTFOUND, "Model version %s does not exist for model %s", version, name);
  } else {
    for (size_t j = lower_bound(r, name, ""); same_name(r, j, name); j++)
      r->is_default[j] = (long)j == i;
  }
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

int wk_registry_has_name(wk_registry_t *r, const char *name) {
  pthread_rwlock_rdlock(&r->lock);
  int found = has_name(r, name);
  pthread_rwlock_unlock(&r->lock);
  return found;
}

void wk_registry_visit(wk_registry_t *r, wk_registry_visit_fn fn, void *ud) {
  pthread_rwlock_rdlock(&r->lock);
  fn(r->models, r->is_default, r->count, ud);
  pthread_rwlock_unlock(&r->lock);
}

/* ---- loads ---- */

static long long wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Removes loads[i]. Loads' lock held. */
static void drop_load(wk_registry_t *r, size_t i) {
  memmove(&r->loads[i], &r->loads[i + 1], (r->n_loads - i - 1) * sizeof r->loads[0]);
  r->n_loads--;
}

long wk_registry_load_begin(wk_registry_t *r, const char *name, const char *url) {
  pthread_mutex_lock(&r->loads_lock);
  if (r->n_loads == WK_MAX_LOADS) { /* make room: the oldest failure goes */
    for (size_t i = 0; i < r->n_loads; i++) {
      if (r->loads[i].state == WK_LOAD_FAILED) {
        drop_load(r, i);
        break;
      }
    }
  }
  long ticket = 0;
  if (r->n_loads < WK_MAX_LOADS) {
    load_t *l = &r->loads[r->n_loads++];
    memset(l, 0, sizeof *l);
    l->ticket = ticket = ++r->next_ticket;
    l->state = WK_LOAD_LOADING;
    l->since_ms = wall_ms();
    snprintf(l->name, sizeof l->name, "%s", name ? name : "");
    snprintf(l->url, sizeof l->url, "%s", url ? url : "");
  }
  pthread_mutex_unlock(&r->loads_lock);
  return ticket;
}

void wk_registry_load_end(wk_registry_t *r, long ticket, const char *reason) {
  if (ticket == 0) return;
  pthread_mutex_lock(&r->loads_lock);
  for (size_t i = 0; i < r->n_loads; i++) {
    load_t *l = &r->loads[i];
    if (l->ticket != ticket) continue;
    if (reason == NULL) {
      drop_load(r, i);
    } else {
      l->state = WK_LOAD_FAILED;
      l->since_ms = wall_ms();
      snprintf(l->reason, sizeof l->reason, "%s", reason);
    }
    break;
  }
  pthread_mutex_unlock(&r->loads_lock);
}

wk_load_state_t wk_registry_load_state(wk_registry_t *r, const char *name, char *reason,
                                       size_t reason_len) {
  wk_load_state_t st = WK_LOAD_NONE;
  if (reason && reason_len) reason[0] = '\0';
  pthread_mutex_lock(&r->loads_lock);
  for (size_t i = 0; i < r->n_loads; i++) {
    const load_t *l = &r->loads[i];
    if (strcmp(l->name, name) != 0) continue;
    if (l->state == WK_LOAD_LOADING) st = WK_LOAD_LOADING;
    else if (st != WK_LOAD_LOADING) st = WK_LOAD_FAILED;
    if (l->state == WK_LOAD_FAILED && reason && reason_len)
      snprintf(reason, reason_len, "%s", l->reason); /* the latest failure wins */
  }
  pthread_mutex_unlock(&r->loads_lock);
  return st;
}

int wk_registry_load_forget(wk_registry_t *r, const char *name) {
  int n = 0;
  pthread_mutex_lock(&r->loads_lock);
  for (size_t i = 0; i < r->n_loads;) {
    if (r->loads[i].state == WK_LOAD_FAILED && strcmp(r->loads[i].name, name) == 0) {
      drop_load(r, i);
      n++;
    } else {
      i++;
    }
  }
  pthread_mutex_unlock(&r->loads_lock);
  return n;
}

void wk_registry_visit_loads(wk_registry_t *r, wk_registry_loads_fn fn, void *ud) {
  wk_load_info_t info[WK_MAX_LOADS];
  pthread_mutex_lock(&r->loads_lock);
  for (size_t i = 0; i < r->n_loads; i++)
    info[i] = (wk_load_info_t){r->loads[i].name, r->loads[i].url, r->loads[i].reason,
                               r->loads[i].state, r->loads[i].since_ms};
  fn(info, r->n_loads, ud);
  pthread_mutex_unlock(&r->loads_lock);
}

void wk_registry_name_of_url(const char *url, char *out, size_t outlen) {
  const char *q = url ? url : "";
  size_t len = strcspn(q, "?#");
  while (len > 1 && q[len - 1] == '/') len--; /* a folder given as "dep/" */
  const char *base = q;
  for (size_t i = 0; i < len; i++)
    if (q[i] == '/') base = q + i + 1;
  size_t n = len - (size_t)(base - q);
  static const char *const exts[] = {".tar.gz", ".mar", ".tgz", ".zip"};
  for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
    size_t k = strlen(exts[i]);
    if (n > k && strncmp(base + n - k, exts[i], k) == 0) {
      n -= k;
      break;
    }
  }
  snprintf(out, outlen, "%.*s", (int)n, base);
}
