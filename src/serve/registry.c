/* Registry of model versions: a small sorted array under a read-write lock. */
#include "serve/registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

typedef struct entry_s {
  wk_model_t *model;
  int is_default;
} entry_t;

struct wk_registry_s {
  pthread_rwlock_t lock;
  entry_t entries[WK_MAX_MODELS];
  size_t count;
};

wk_registry_t *wk_registry_new(void) {
  wk_registry_t *r = calloc(1, sizeof *r);
  if (r) pthread_rwlock_init(&r->lock, NULL);
  return r;
}

void wk_registry_free(wk_registry_t *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->count; i++) wk_model_free(r->entries[i].model);
  pthread_rwlock_destroy(&r->lock);
  free(r);
}

static int cmp_entry(const entry_t *a, const wk_model_t *b) {
  int c = strcmp(wk_model_name(a->model), wk_model_name(b));
  return c ? c : strcmp(wk_model_version(a->model), wk_model_version(b));
}

int wk_registry_add(wk_registry_t *r, wk_model_t *m, wk_err_t *err) {
  pthread_rwlock_wrlock(&r->lock);
  if (r->count == WK_MAX_MODELS) {
    pthread_rwlock_unlock(&r->lock);
    return wk_err(err, WK_ETOOBIG, "too many models (the limit is %d)", WK_MAX_MODELS);
  }
  size_t pos = 0;
  int has_name = 0;
  for (size_t i = 0; i < r->count; i++) {
    int c = cmp_entry(&r->entries[i], m);
    if (c == 0) {
      pthread_rwlock_unlock(&r->lock);
      return wk_err(err, WK_EEXIST, "model '%s' version %s is already registered",
                    wk_model_name(m), wk_model_version(m));
    }
    if (strcmp(wk_model_name(r->entries[i].model), wk_model_name(m)) == 0) has_name = 1;
    if (c < 0) pos = i + 1;
  }
  memmove(&r->entries[pos + 1], &r->entries[pos], (r->count - pos) * sizeof r->entries[0]);
  r->entries[pos].model = m;
  r->entries[pos].is_default = !has_name;
  r->count++;
  pthread_rwlock_unlock(&r->lock);
  return 0;
}

wk_model_t *wk_registry_get(wk_registry_t *r, const char *name, const char *version) {
  wk_model_t *found = NULL;
  pthread_rwlock_rdlock(&r->lock);
  for (size_t i = 0; i < r->count && !found; i++) {
    entry_t *e = &r->entries[i];
    if (strcmp(wk_model_name(e->model), name) != 0) continue;
    if (version ? strcmp(wk_model_version(e->model), version) == 0 : e->is_default) found = e->model;
  }
  pthread_rwlock_unlock(&r->lock);
  return found;
}

size_t wk_registry_list(wk_registry_t *r, wk_model_t **out, size_t cap) {
  pthread_rwlock_rdlock(&r->lock);
  size_t n = r->count;
  for (size_t i = 0; i < n && i < cap; i++) out[i] = r->entries[i].model;
  pthread_rwlock_unlock(&r->lock);
  return n;
}

int wk_registry_is_default(wk_registry_t *r, const wk_model_t *m) {
  int d = 0;
  pthread_rwlock_rdlock(&r->lock);
  for (size_t i = 0; i < r->count; i++)
    if (r->entries[i].model == m) d = r->entries[i].is_default;
  pthread_rwlock_unlock(&r->lock);
  return d;
}
