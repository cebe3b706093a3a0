/* Registry of model versions: a sorted array of slots under a writer-preferring
 * read-write lock. Each slot counts the references that requests hold; a removed slot
 * waits on a retiring list until its count drops to zero. */
#include "serve/registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

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
