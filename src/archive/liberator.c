/* torch_liberator deployment detection over archive/archive's listing and single-file
 * reads. Names only, plus a bounded read of each candidate .py; nothing is run. */
#include "archive/liberator.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "core/limits.h"

typedef struct names_s {
  char **v;
  unsigned long long *size;
  size_t n, cap;
} names_t;

static int collect(void *ctx, const wk_archive_item_t *it) {
  names_t *l = ctx;
  if (it->is_dir) return 0;
  const char *name = it->name;
  while (name[0] == '.' && name[1] == '/')
    name += 2;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 32;
    char **v = realloc(l->v, cap * sizeof *v);
    if (v == NULL) return WK_ENOMEM;
    l->v = v;
    unsigned long long *s = realloc(l->size, cap * sizeof *s);
    if (s == NULL) return WK_ENOMEM;
    l->size = s;
    l->cap = cap;
  }
  if ((l->v[l->n] = strdup(name)) == NULL) return WK_ENOMEM;
  l->size[l->n++] = it->size;
  return 0;
}

static void names_free(names_t *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  free(l->size);
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The length of the folder prefix ("" or "dir/") of a name that is directly in a folder
 * at most one level deep, or -1 for deeper names. */
static int prefix_len(const char *name) {
  const char *s = strchr(name, '/');
  if (s == NULL) return 0;
  if (strchr(s + 1, '/') != NULL) return -1;
  return (int)(s - name + 1);
}

/* 1 when the .py entry defines get_model_cls, 0 when not, <0 on error. */
static int defines_get_model_cls(const char *path, const char *entry, unsigned long long size,
                                 wk_err_t *err) {
  if (size > WK_MAX_LIBERATOR_FILE_SIZE)
    return wk_err(err, WK_ETOOBIG, "%s: %s is %llu bytes; a liberated model file is at most %d",
                  path, entry, size, WK_MAX_LIBERATOR_FILE_SIZE);
  char *text = NULL;
  size_t len = 0;
  int rc = wk_archive_read_file(path, entry, WK_MAX_LIBERATOR_FILE_SIZE, &text, &len, err);
  if (rc) return rc;
  int found = strstr(text, "def get_model_cls(") != NULL;
  free(text);
  return found;
}

int wk_liberator_find(const char *path, wk_liberator_t *out, wk_err_t *err) {
  names_t l = {NULL, NULL, 0, 0};
  int rc = wk_archive_list(path, collect, &l, err);
  if (rc) {
    names_free(&l);
    if (rc == WK_ENOMEM) wk_err(err, rc, "out of memory listing %s", path);
    return rc;
  }
  /* the folder: the one place (root or a top-level folder) with deploy_snapshot.pt */
  int snap = -1;
  for (size_t i = 0; i < l.n; i++) {
    int p = prefix_len(l.v[i]);
    if (p < 0 || strcmp(l.v[i] + p, WK_LIBERATOR_SNAPSHOT) != 0) continue;
    if (snap >= 0) {
      rc = wk_err(err, WK_EINVAL, "%s holds two deployments (%s and %s); expected one", path,
                  l.v[snap], l.v[i]);
      goto done;
    }
    snap = (int)i;
  }
  if (snap < 0) {
    rc = wk_err(err, WK_ENOTFOUND,
                "%s has no %s at its root or in a top-level folder: not a torch_liberator "
                "deployment",
                path, WK_LIBERATOR_SNAPSHOT);
    goto done;
  }
  size_t plen = (size_t)prefix_len(l.v[snap]);
  const char *prefix = l.v[snap];
  if (plen >= sizeof out->folder) {
    rc = wk_err(err, WK_ETOOBIG, "%s: folder name too long", path);
    goto done;
  }
  /* the model: the .py beside it that defines get_model_cls, else the only .py */
  int py = -1, any_py = -1, n_def = 0, n_py = 0, train = -1;
  for (size_t i = 0; i < l.n; i++) {
    const char *name = l.v[i];
    if (strncmp(name, prefix, plen) != 0 || strchr(name + plen, '/') != NULL) continue;
    if (strcmp(name + plen, WK_LIBERATOR_TRAIN_INFO) == 0) train = (int)i;
    if (!ends_with(name, ".py") || strcmp(name + plen, "__init__.py") == 0) continue;
    n_py++;
    any_py = (int)i;
    int d = defines_get_model_cls(path, name, l.size[i], err);
    if (d < 0) {
      rc = d;
      goto done;
    }
    if (d) {
      n_def++;
      py = (int)i;
    }
  }
  if (n_def > 1) {
    rc = wk_err(err, WK_EINVAL, "%s: %d .py files beside %s define get_model_cls; expected one",
                path, n_def, l.v[snap]);
    goto done;
  }
  if (n_def == 0 && n_py == 1) py = any_py;
  if (py < 0) {
    rc = wk_err(err, WK_ENOTFOUND,
                "%s: %s has %s beside it; a torch_liberator deployment holds one liberated "
                "model .py (defining get_model_cls)",
                path, l.v[snap],
                n_py ? "several .py files and none defines get_model_cls" : "no .py file");
    goto done;
  }
  if (strlen(l.v[snap]) >= sizeof out->snapshot || strlen(l.v[py]) >= sizeof out->model_py ||
      (train >= 0 && strlen(l.v[train]) >= sizeof out->train_info)) {
    rc = wk_err(err, WK_ETOOBIG, "%s: entry name too long", path);
    goto done;
  }
  memset(out, 0, sizeof *out);
  memcpy(out->folder, prefix, plen ? plen - 1 : 0);
  snprintf(out->snapshot, sizeof out->snapshot, "%s", l.v[snap]);
  snprintf(out->model_py, sizeof out->model_py, "%s", l.v[py]);
  if (train >= 0) snprintf(out->train_info, sizeof out->train_info, "%s", l.v[train]);
  rc = 0;
done:
  names_free(&l);
  return rc;
}
