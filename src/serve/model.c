/* Model versions: load (unpack, manifest, config, which handler kind and runtime, the
 * settings), submit a request to the handler and the queue, describe, health, free. The
 * queue, batcher and workers are in pool.c, the handler kinds in *_handler.c, the
 * counters in metrics.c. */
#include "serve/model.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/liberator.h"
#include "archive/manifest.h"
#include "archive/model_config.h"
#include "archive/pt2.h"
#include "archive/zip.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/fs.h"
#include "core/limits.h"
#include "core/log.h"
#include "serve/config.h"
#include "serve/model_internal.h"
#include "weights/transfer.h"
#include "vision/image.h"

/* ---- predictions ---- */

void wk__submit(wk_model_t *m, const wk_request_t *r, wk_sink_t *sink, int explain, int envelope) {
  wk_err_t err = {{0}};
  wk__job_t *j = NULL;
  int rc = wk__job_new(m, sink, r, explain, envelope, &j, &err);
  if (rc != 0) {
    const char *type;
    int status = wk__error_status(rc, &type);
    atomic_fetch_add(status >= 500 ? &m->req_server_err : &m->req_client_err, 1);
    wk__status_answered(m, NULL, status);
    wk__status_error(m, status, err.msg);
    sink->ops->error(sink, status, type, err.msg);
    return;
  }
  rc = m->h->parse(m, j, r, &err);
  if (rc != 0) {
    wk__job_fail(m, j, rc, err.msg);
    wk__job_free(j);
    return;
  }
  wk__job_enqueue(m, j);
}

void wk_model_predict(wk_model_t *m, const wk_request_t *r, wk_sink_t *sink, int explain) {
  wk__submit(m, r, sink, explain, WK__ENV_TS);
}

/* ---- loading ---- */

/* A TorchScript archive holds code/ and constants.pkl beside data.pkl; a state_dict
 * (torch.save of tensors) holds only data.pkl, data/ and version. */
static int is_torchscript(const char *path) {
  wk_zip_t *z = NULL;
  if (wk_zip_open(path, &z, NULL) != 0) return 0;
  int found = 0;
  for (size_t i = 0; i < wk_zip_count(z) && !found; i++) {
    const char *n = wk_zip_entry(z, i)->name;
    const char *slash = strchr(n, '/');
    if (slash && (strcmp(slash + 1, "constants.pkl") == 0 || strncmp(slash + 1, "code/", 5) == 0))
      found = 1;
  }
  wk_zip_close(z);
  return found;
}

/* Fills m->manifest for the torch_liberator deployment in m->model_dir: the built-in
 * `liberator` handler, named after the deployment's folder (or the archive's file name
 * when the files sit at its root). WK_ENOTFOUND when the directory is not one. */
static int liberator_manifest(wk_model_t *m, const char *archive, wk_err_t *err) {
  wk_liberator_t d;
  int rc = wk_liberator_find(m->model_dir, &d, err);
  if (rc) return rc;
  char name[4096];
  if (d.folder[0]) {
    snprintf(name, sizeof name, "%s", d.folder);
  } else {
    char whole[4096];
    snprintf(whole, sizeof whole, "%s", archive);
    for (size_t n = strlen(whole); n > 1 && whole[n - 1] == '/'; n--)
      whole[n - 1] = '\0'; /* a directory given as "dep/" */
    const char *b = strrchr(whole, '/');
    snprintf(name, sizeof name, "%s", b ? b + 1 : whole);
    static const char *const exts[] = {".zip", ".tar.gz", ".tgz"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
      size_t n = strlen(name), k = strlen(exts[i]);
      if (n > k && strcmp(name + n - k, exts[i]) == 0) name[n - k] = '\0';
    }
  }
  wk_manifest_t *mf = &m->manifest;
  mf->runtime = strdup("python");
  mf->model_name = strdup(name);
  mf->handler = strdup("liberator");
  mf->serialized_file = strdup(d.snapshot);
  mf->model_file = strdup(d.model_py);
  if (mf->runtime == NULL || mf->model_name == NULL || mf->handler == NULL ||
      mf->serialized_file == NULL || mf->model_file == NULL)
    return wk_err(err, WK_ENOMEM, "out of memory");
  wk_log_info("%s: a torch_liberator deployment (%s, %s%s%s); served with the liberator handler",
              archive, d.snapshot, d.model_py, d.train_info[0] ? ", " : "", d.train_info);
  return 0;
}

static char *dup_or(const char *s, const char *dflt) {
  return strdup(s && *s ? s : dflt);
}

static int pick(int from_config, int fallback) { return from_config >= 0 ? from_config : fallback; }

/* Bytes every model's unpacked folder holds together (max_unpacked_total_size). */
static _Atomic uint64_t g_unpacked;

/* How many more bytes m may unpack: the least of what is left of its archive's share
 * (max_unpacked_archive_size), of the server's total (max_unpacked_total_size) and of the
 * disk's free space under m->tmp_dir less a reserve. *why names the one that binds. */
static uint64_t unpack_budget(const wk_model_t *m, const wk_model_load_opts_t *o, char *why,
                              size_t whylen) {
  uint64_t per = (uint64_t)(o->max_unpacked_archive > 0 ? o->max_unpacked_archive
                                                        : WK_DEFAULT_MAX_UNPACKED_ARCHIVE);
  uint64_t total = (uint64_t)(o->max_unpacked_total > 0 ? o->max_unpacked_total
                                                        : WK_DEFAULT_MAX_UNPACKED_TOTAL);
  uint64_t used = atomic_load(&g_unpacked);
  uint64_t budget = per > m->unpacked ? per - m->unpacked : 0;
  snprintf(why, whylen, "max_unpacked_archive_size is %llu bytes", (unsigned long long)per);
  uint64_t left = total > used ? total - used : 0;
  if (left < budget) {
    budget = left;
    snprintf(why, whylen,
             "max_unpacked_total_size is %llu bytes and the models loaded hold %llu of them",
             (unsigned long long)total, (unsigned long long)used);
  }
  struct statvfs sv;
  if (statvfs(m->tmp_dir, &sv) == 0) {
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    avail = avail > (uint64_t)WK_UNPACK_DISK_RESERVE ? avail - WK_UNPACK_DISK_RESERVE : 0;
    if (avail < budget) {
      budget = avail;
      snprintf(why, whylen, "the disk under %.200s has %llu bytes free, %lld of them kept in reserve",
               m->tmp_dir, (unsigned long long)sv.f_bavail * sv.f_frsize,
               (long long)WK_UNPACK_DISK_RESERVE);
    }
  }
  return budget;
}

/* Counts n more unpacked bytes for m; WK_ETOOBIG when that takes the server past its total
 * (two models unpacking at once, each within what was left). */
static int count_unpacked(wk_model_t *m, const wk_model_load_opts_t *o, uint64_t n, wk_err_t *err) {
  m->unpacked += n;
  uint64_t now = atomic_fetch_add(&g_unpacked, n) + n;
  uint64_t total = (uint64_t)(o->max_unpacked_total > 0 ? o->max_unpacked_total
                                                        : WK_DEFAULT_MAX_UNPACKED_TOTAL);
  if (now > total)
    return wk_err(err, WK_ETOOBIG,
                  "the unpacked models would hold %llu bytes, more than max_unpacked_total_size "
                  "(%llu bytes)",
                  (unsigned long long)now, (unsigned long long)total);
  return 0;
}

/* Adds why a limit refused an archive to err's message. */
static void limit_hint(int rc, const char *why, wk_err_t *err) {
  if (rc != WK_ETOOBIG) return;
  size_t n = strlen(err->msg);
  snprintf(err->msg + n, sizeof err->msg - n, " (%s)", why);
}

/* Unpacks the archives system.extraFiles names (relative to the model directory) into
 * the model directory, in order, once, before any worker starts. */
static int unpack_extra_files(wk_model_t *m, const wk_model_load_opts_t *o, const char *what,
                              wk_err_t *err) {
  for (size_t i = 0; i < m->config.n_extra_files; i++) {
    const char *name = m->config.extra_files[i];
    char path[4096], why[512];
    uint64_t n = 0;
    int rc = wk_archive_check_name(name, strlen(name), err);
    if (rc == 0 && wk_fs_join(path, sizeof path, m->model_dir, name) != 0)
      rc = wk_err(err, WK_ETOOBIG, "path too long");
    if (rc == 0) {
      uint64_t budget = m->tmp_dir[0] ? unpack_budget(m, o, why, sizeof why) : UINT64_MAX;
      rc = wk_archive_unpack_into_max(path, m->model_dir, budget, &n, err);
      limit_hint(rc, why, err);
    }
    if (rc == 0 && m->tmp_dir[0]) rc = count_unpacked(m, o, n, err);
    if (rc != 0) {
      wk_err_prefix(err, "model '%s': system.extraFiles '%s'", what, name);
      return rc;
    }
  }
  if (m->config.n_extra_files)
    wk_log_info("model %s: unpacked %zu system.extraFiles archive(s) into %s", what,
                m->config.n_extra_files, m->model_dir);
  return 0;
}

/* Step 1: the archive, unpacked into a private directory (directories are used in place). */
static int unpack(wk_model_t *m, const wk_model_load_opts_t *o, const char *what, wk_err_t *err) {
  int kind = wk_archive_kind(o->archive);
  if (kind < 0)
    return wk_err(err, WK_ENOTFOUND,
                  "model '%s': %s is not a model archive (.mar, .tar.gz) or directory", what,
                  o->archive);
  if (kind == WK_ARCHIVE_DIR) {
    if (realpath(o->archive, m->model_dir) == NULL)
      snprintf(m->model_dir, sizeof m->model_dir, "%s", o->archive);
    return 0;
  }
  int rc = wk_fs_mkdtemp("model", m->tmp_dir, sizeof m->tmp_dir, err);
  if (rc != 0) return rc;
  snprintf(m->model_dir, sizeof m->model_dir, "%s", m->tmp_dir);
  char why[512];
  uint64_t n = 0;
  uint64_t budget = unpack_budget(m, o, why, sizeof why);
  rc = wk_archive_unpack_max(o->archive, m->model_dir, budget, &n, err);
  limit_hint(rc, why, err);
  if (rc == 0) rc = count_unpacked(m, o, n, err);
  if (rc != 0) wk_err_prefix(err, "model '%s': %s", what, o->archive);
  return rc;
}

/* Refuses a path the archive names (field says which) unless it stays inside the model
 * directory: relative, no "..", and, for a file that is there, no link that leads out of
 * it (a model folder in the store may hold links). [11] part 3. */
static int inside(const wk_model_t *m, const char *field, const char *rel, size_t len,
                  wk_err_t *err) {
  char name[1024], path[4096], real[PATH_MAX], base[PATH_MAX];
  int rc = wk_archive_check_name(rel, len, err);
  if (rc == 0 && len >= sizeof name) rc = wk_err(err, WK_ETOOBIG, "the name is too long");
  if (rc == 0) {
    memcpy(name, rel, len);
    name[len] = '\0';
    if (wk_fs_join(path, sizeof path, m->model_dir, name) != 0)
      rc = wk_err(err, WK_ETOOBIG, "the path is too long");
  }
  if (rc == 0 && realpath(path, real) != NULL && realpath(m->model_dir, base) != NULL) {
    size_t n = strlen(base);
    if (strncmp(real, base, n) != 0 || (real[n] != '/' && real[n] != '\0'))
      rc = wk_err(err, WK_EUNSAFE, "'%s' leads out of the model directory (a link)", name);
  }
  if (rc != 0) wk_err_prefix(err, "%s", field);
  return rc;
}

/* A handler given as a file ("handler.py", "dir/h.py:fn"; not a module name or a built-in
 * kind) stays inside the model directory, whether the manifest or a register request
 * names it. */
static int check_handler_path(const wk_model_t *m, const char *h, wk_err_t *err) {
  size_t n = strcspn(h, ":");
  if (memchr(h, '/', n) == NULL && !(n > 3 && memcmp(h + n - 3, ".py", 3) == 0)) return 0;
  return inside(m, "handler", h, n, err);
}

/* Every path the manifest names stays inside the model directory: serializedFile,
 * configFile, modelFile, requirementsFile, each of extraFiles (the handler: see
 * check_handler_path). */
static int check_manifest_paths(const wk_model_t *m, wk_err_t *err) {
  const wk_manifest_t *mf = &m->manifest;
  const struct {
    const char *field, *value;
  } files[] = {{"serializedFile", mf->serialized_file},
               {"configFile", mf->config_file},
               {"modelFile", mf->model_file},
               {"requirementsFile", mf->requirements_file}};
  int rc = 0;
  for (size_t i = 0; i < sizeof files / sizeof files[0] && rc == 0; i++)
    if (files[i].value) rc = inside(m, files[i].field, files[i].value, strlen(files[i].value), err);
  for (const char *p = mf->extra_files; rc == 0 && p && *p;) {
    size_t n = strcspn(p, ",");
    if (n > 0) rc = inside(m, "extraFiles", p, n, err);
    p += n + (p[n] == ',');
  }
  return rc;
}

/* Step 2: the manifest (or a torch_liberator deployment's), the model config, and the
 * extra files it unpacks. */
static int read_manifest(wk_model_t *m, const wk_model_load_opts_t *o, const char *what,
                         wk_err_t *err) {
  char path[4096];
  char *text = NULL;
  size_t len = 0;
  wk_fs_join(path, sizeof path, m->model_dir, "MAR-INF/MANIFEST.json");
  int rc = wk_fs_read_file(path, WK_MAX_MANIFEST_SIZE, &text, &len, err);
  if (rc == WK_ENOTFOUND) {
    /* no manifest: a torch_liberator deploy zip is served as it is */
    wk_err_t lerr = {{0}};
    int lrc = liberator_manifest(m, o->archive, &lerr);
    if (lrc == WK_ENOTFOUND)
      return wk_err(err, rc,
                    "model '%s': %s has no MAR-INF/MANIFEST.json (pack it with wick pack) and is "
                    "not a torch_liberator deployment (no deploy_snapshot.pt beside a liberated "
                    "model .py)",
                    what, o->archive);
    if (lrc != 0) return wk_err(err, lrc, "model '%s': %s", what, lerr.msg);
  } else if (rc != 0) {
    wk_err_prefix(err, "model '%s': %s", what, o->archive);
    return rc;
  } else {
    rc = wk_manifest_parse(text, len, &m->manifest, err);
    free(text);
    if (rc != 0) {
      wk_err_prefix(err, "model '%s': MANIFEST.json", what);
      return rc;
    }
  }
  if ((rc = check_manifest_paths(m, err)) != 0) {
    wk_err_prefix(err, "model '%s': MANIFEST.json", what);
    return rc;
  }
  if (m->manifest.config_file) {
    wk_fs_join(path, sizeof path, m->model_dir, m->manifest.config_file);
    if ((rc = wk_fs_read_file(path, WK_MAX_CONFIG_FILE_SIZE, &text, &len, err)) != 0) {
      wk_err_prefix(err, "model '%s': configFile", what);
      return rc;
    }
    rc = wk_model_config_parse(text, len, &m->config, err);
    free(text);
    if (rc != 0) {
      wk_err_prefix(err, "model '%s': %s", what, m->manifest.config_file);
      return rc;
    }
  }
  if (m->config.wick_weights_file &&
      (rc = inside(m, "wick.weights.file", m->config.wick_weights_file,
                   strlen(m->config.wick_weights_file), err)) != 0) {
    wk_err_prefix(err, "model '%s': %s", what, m->manifest.config_file);
    return rc;
  }
  const char *assoc = m->config.wick_weights_association;
  wk_assoc_t a;
  if (assoc != NULL && (rc = wk_assoc_parse(assoc, &a, err)) != 0) {
    wk_err_prefix(err, "model '%s': %s: wick.weights.association", what,
                  m->manifest.config_file ? m->manifest.config_file : "model config");
    return rc;
  }
  return unpack_extra_files(m, o, what, err);
}

/* Step 3: the handler kind. Native when the handler is one of the native kinds and the
 * serialized file is TorchScript or an AOTInductor package, with no model file (or
 * wick.runtime says native); every other model runs its handler in Python worker
 * processes. (A package wick refuses goes the native way, whose load says why.) */
static int choose_handler(wk_model_t *m, const wk_model_load_opts_t *o, wk_err_t *err) {
  const char *ser = m->manifest.serialized_file;
  char path[4096] = "";
  if (ser) wk_fs_join(path, sizeof path, m->model_dir, ser);
  const char *runtime = m->config.wick_runtime;
  int forced_native = runtime && strcmp(runtime, "native") == 0;
  int forced_python = runtime && strcmp(runtime, "python") == 0;
  const wk_handler_t *h = wk__handler_find(o->handler ? o->handler : m->manifest.handler);
  int native = !forced_python && h != NULL && (h->flags & WK__HF_NATIVE) && ser != NULL &&
               (forced_native || (m->manifest.model_file == NULL &&
                                  (is_torchscript(path) || wk_pt2_check(path, NULL) != 0)));
  if (forced_native && !native)
    return wk_err(err, WK_EINVAL, "model '%s': wick.runtime is native, but %s", m->name,
                  ser == NULL ? "the manifest names no serializedFile"
                              : "its handler is not a native one (tensor, base_handler, "
                                "image_classifier, object_detector)");
  m->h = native ? h : &wk__handler_python;
  if (!native && ser != NULL && wk_pt2_is_exported(path))
    wk_log_info("model %s %s: %s is a torch.export ExportedProgram, not compiled: it runs in "
                "Python workers (torch.export.load); wick runs it natively once compiled into "
                "an AOTInductor package (wick pack --aot-compile)",
                m->name, m->version ? m->version : "", ser);
  return 0;
}

/* Step 4: the settings: a register request's overrides, then model-config.yaml, then the
 * server's defaults. */
static void settings(wk_model_t *m, const wk_model_load_opts_t *o) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1) ncpu = 1;
  int dflt_workers = o->default_workers > 0 ? o->default_workers : (int)ncpu;
  /* as TorchServe: the archive's minWorkers wins over a register request's initial_workers */
  m->min_workers = pick(m->config.min_workers, pick(o->initial_workers, dflt_workers));
  m->max_workers = pick(m->config.max_workers, m->min_workers);
  if (m->min_workers > WK_MAX_WORKERS) m->min_workers = WK_MAX_WORKERS;
  if (m->max_workers < m->min_workers) m->max_workers = m->min_workers;
  if (m->max_workers > WK_MAX_WORKERS) m->max_workers = WK_MAX_WORKERS;
  m->batch_size = pick(o->batch_size, pick(m->config.batch_size, 1));
  if (m->batch_size < 1) m->batch_size = 1;
  if (m->batch_size > WK_MAX_BATCH_SIZE) m->batch_size = WK_MAX_BATCH_SIZE;
  m->max_batch_delay_ms = pick(o->max_batch_delay_ms, pick(m->config.max_batch_delay_ms, 100));
  m->response_timeout_s = pick(o->response_timeout_s_override,
                               pick(m->config.response_timeout_s,
                                    o->response_timeout_s > 0 ? o->response_timeout_s
                                                              : WK_DEFAULT_RESPONSE_TIMEOUT_S));
  if (m->response_timeout_s < 1) m->response_timeout_s = 1;
  m->queue_cap = pick(m->config.job_queue_size,
                      o->job_queue_size > 0 ? o->job_queue_size : WK_DEFAULT_JOB_QUEUE_SIZE);
}

/* A load on a thread of its own ([13] part 3), so that the caller can give up on it at the
 * startup timeout: shared by the caller and that thread, freed by the last to leave. */
typedef struct load_ctx_s {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int refs;       /* 2, then 1, then 0 */
  int done;       /* the thread has finished (rc, err, m set) */
  int abandoned;  /* the caller gave up: the thread frees what it loaded */
  int bound_s;    /* how long the load may take; 0: unbounded (a Python model: its workers
                     have their own startup timeout and pip its own) */
  int rc;
  wk_err_t err;
  wk_model_t *m;
  wk_model_load_opts_t o; /* a copy, its strings owned */
} load_ctx_t;

/* Sets how long the load may take from its start, once the model's settings say. */
static void load_bound(load_ctx_t *c, int seconds) {
  if (c == NULL) return;
  pthread_mutex_lock(&c->lock);
  c->bound_s = seconds;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

static int load_now(const wk_model_load_opts_t *o, wk_model_t **out, wk_err_t *err,
                    load_ctx_t *ctx) {
  wk_model_t *m = calloc(1, sizeof *m);
  if (m == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  wk_manifest_init(&m->manifest);
  wk_model_config_init(&m->config);
  pthread_mutex_init(&m->lock, NULL);
  pthread_cond_init(&m->fill_cond, NULL);
  pthread_cond_init(&m->idle_cond, NULL);
  pthread_cond_init(&m->state_cond, NULL);
  pthread_cond_init(&m->mon_cond, NULL);
  pthread_mutex_init(&m->custom_lock, NULL);
  const char *what = o->name ? o->name : o->url;
  int rc;
  if ((rc = unpack(m, o, what, err)) != 0 || (rc = read_manifest(m, o, what, err)) != 0) goto fail;
  m->name = dup_or(o->name, m->manifest.model_name);
  m->version = dup_or(m->manifest.model_version, "1.0");
  m->url = dup_or(o->url, o->archive);
  m->handler = dup_or(o->handler ? o->handler : m->manifest.handler, "tensor");
  m->loaded_at_startup = o->loaded_at_startup;
  if (o->service_envelope && *o->service_envelope && (m->service_envelope = strdup(o->service_envelope)) == NULL) {
    rc = wk_err(err, WK_ENOMEM, "out of memory");
    goto fail;
  }
  m->startup_timeout_s = pick(m->config.startup_timeout_s, o->startup_timeout_s > 0
                                                               ? o->startup_timeout_s
                                                               : WK_DEFAULT_STARTUP_TIMEOUT_S);
  load_bound(ctx, m->startup_timeout_s);
  m->spin_us = o->worker_spin_us;
  m->max_response_size = o->max_response_size > 0 ? o->max_response_size : WK_DEFAULT_MAX_RESPONSE_SIZE;
  if (m->name == NULL || m->version == NULL || m->url == NULL || m->handler == NULL) {
    rc = wk_err(err, WK_ENOMEM, "out of memory");
    goto fail;
  }
  if ((rc = check_handler_path(m, m->handler, err)) != 0) {
    wk_err_prefix(err, "model '%s'", what);
    goto fail;
  }
  if ((rc = choose_handler(m, o, err)) != 0) goto fail;
  if (!(m->h->flags & WK__HF_NATIVE)) load_bound(ctx, 0);
  settings(m, o);
  if ((rc = wk__metrics_init(m)) != 0 || (rc = wk__status_init(m, o->status_interval_ms)) != 0) {
    wk_err(err, rc, "out of memory");
    goto fail;
  }
  /* 5. the handler's state (the module, loaded once and shared by every worker; or the
   * first Python process), then 6. the workers and the timeout monitor */
  if ((rc = m->h->init(m, o, err)) != 0 || (rc = wk__pool_start(m, m->min_workers, err)) != 0)
    goto fail;
  *out = m;
  return 0;

fail:
  wk_model_free(m);
  return rc;
}

static void load_ctx_release(load_ctx_t *c) {
  pthread_mutex_lock(&c->lock);
  int last = --c->refs == 0;
  pthread_mutex_unlock(&c->lock);
  if (!last) return;
  pthread_mutex_destroy(&c->lock);
  pthread_cond_destroy(&c->cond);
  const char **strs[] = {&c->o.archive, &c->o.url,     &c->o.name,   &c->o.python,
                         &c->o.service_envelope, &c->o.handler, &c->o.version};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) free((char *)*strs[i]);
  free(c);
}

static void *load_thread(void *arg) {
  load_ctx_t *c = arg;
  wk_model_t *m = NULL;
  wk_err_t err = {{0}};
  int rc = load_now(&c->o, &m, &err, c);
  pthread_mutex_lock(&c->lock);
  c->done = 1;
  c->rc = rc;
  c->err = err;
  c->m = m;
  int abandoned = c->abandoned;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
  if (abandoned) {
    wk_log_warn("model %s: the load abandoned at its startup timeout has ended (%s)%s",
                c->o.name ? c->o.name : c->o.url, rc == 0 ? "loaded" : err.msg,
                rc == 0 ? "; it is freed" : "");
    if (rc == 0) wk_model_free(m);
  }
  load_ctx_release(c);
  return NULL;
}

/* Copies s into *dst; 0, or -1 when out of memory. */
static int copy_opt(const char **dst, const char *s) {
  if (s == NULL) return 0;
  *dst = strdup(s);
  return *dst ? 0 : -1;
}

int wk_model_load(const wk_model_load_opts_t *o, wk_model_t **out, wk_err_t *err) {
  load_ctx_t *c = calloc(1, sizeof *c);
  if (c == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  c->o = *o;
  c->o.archive = c->o.url = c->o.name = c->o.python = c->o.service_envelope = NULL;
  c->o.handler = c->o.version = NULL;
  c->refs = 2;
  c->bound_s = o->startup_timeout_s > 0 ? o->startup_timeout_s : WK_DEFAULT_STARTUP_TIMEOUT_S;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  const char *what = o->name ? o->name : o->url;
  pthread_t t;
  if (copy_opt(&c->o.archive, o->archive) || copy_opt(&c->o.url, o->url) ||
      copy_opt(&c->o.name, o->name) || copy_opt(&c->o.python, o->python) ||
      copy_opt(&c->o.service_envelope, o->service_envelope) ||
      copy_opt(&c->o.handler, o->handler) || copy_opt(&c->o.version, o->version) ||
      pthread_create(&t, NULL, load_thread, c) != 0) {
    c->refs = 1;
    load_ctx_release(c);
    return load_now(o, out, err, NULL); /* no thread to be had: load here, unbounded */
  }
  pthread_detach(t);
  int64_t start = wk_now_us();
  pthread_mutex_lock(&c->lock);
  while (!c->done) {
    int64_t now = wk_now_us();
    if (c->bound_s > 0 && now - start >= (int64_t)c->bound_s * 1000000) break;
    struct timespec until;
    wk_realtime_in(200000, &until); /* the bound may change: look again soon */
    pthread_cond_timedwait(&c->cond, &c->lock, &until);
  }
  int rc;
  if (c->done) {
    rc = c->rc;
    if (rc == 0) *out = c->m;
    else *err = c->err;
  } else {
    c->abandoned = 1;
    rc = wk_err(err, WK_ETIMEDOUT,
                "model '%s': loading took longer than its startup timeout (startupTimeout in "
                "model-config.yaml, startup_timeout when registering) of %d s; the load was "
                "abandoned",
                what, c->bound_s);
    wk_log_error("%s (it goes on in the background and is freed when it ends)", err->msg);
  }
  pthread_mutex_unlock(&c->lock);
  load_ctx_release(c);
  return rc;
}

void wk_model_free(wk_model_t *m) {
  if (m == NULL) return;
  wk__pool_stop(m);
  if (!wk__pool_all_exited(m)) {
    /* A worker is stuck in a forward that never returned: it still uses the module and
     * this struct, so both stay allocated (a bounded leak, logged) rather than freed
     * under it. */
    wk_log_warn("model %s %s: a worker is still inside forward() after the timeout; its "
                "memory is not freed",
                m->name, m->version);
    return;
  }
  if (m->h && m->h->free) m->h->free(m);
  if (m->tmp_dir[0]) wk_fs_rmtree(m->tmp_dir);
  atomic_fetch_sub(&g_unpacked, m->unpacked);
  wk_manifest_destroy(&m->manifest);
  wk_model_config_destroy(&m->config);
  pthread_mutex_destroy(&m->lock);
  pthread_cond_destroy(&m->fill_cond);
  pthread_cond_destroy(&m->idle_cond);
  pthread_cond_destroy(&m->state_cond);
  pthread_cond_destroy(&m->mon_cond);
  wk__metrics_free(m);
  wk__status_free(m);
  pthread_mutex_destroy(&m->custom_lock);
  free(m->name);
  free(m->version);
  free(m->url);
  free(m->handler);
  free(m->service_envelope);
  free(m);
}

void wk_model_load_opts_init(wk_model_load_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->batch_size = -1;
  o->max_batch_delay_ms = -1;
  o->initial_workers = -1;
  o->response_timeout_s_override = -1;
  o->worker_spin_us = WK_DEFAULT_WORKER_SPIN_US;
  o->max_image_pixels = WK_IMAGE_DEFAULT_MAX_PIXELS;
  o->python_fork_server = 1;
}

void wk_model_load_opts_from_config(wk_model_load_opts_t *o, const wk_config_t *cfg) {
  wk_model_load_opts_init(o);
  if (cfg == NULL) {
    o->job_queue_size = WK_DEFAULT_JOB_QUEUE_SIZE;
    o->response_timeout_s = WK_DEFAULT_RESPONSE_TIMEOUT_S;
    return;
  }
  o->default_workers = cfg->default_workers_per_model;
  o->job_queue_size = cfg->job_queue_size;
  o->response_timeout_s = cfg->default_response_timeout;
  o->torch_threads = cfg->torch_threads;
  o->worker_spin_us = cfg->worker_spin_us;
  o->status_interval_ms = cfg->status_interval_ms;
  o->max_response_size = cfg->max_response_size;
  o->python = cfg->python;
  o->service_envelope = wk_props_get(&cfg->props, "service_envelope");
  o->install_py_deps = wk_config_bool(cfg, "install_py_dep_per_model", 0);
  o->python_fork_server = wk_config_bool(cfg, "python_fork_server", 1);
  const char *limit = wk_props_get(&cfg->props, "limit_max_image_pixels");
  if (limit && strcasecmp(limit, "false") == 0) o->max_image_pixels = 0;
  o->max_unpacked_archive = cfg->max_unpacked_archive_size;
  o->max_unpacked_total = cfg->max_unpacked_total_size;
}

const char *wk_model_name(const wk_model_t *m) { return m->name; }
const char *wk_model_version(const wk_model_t *m) { return m->version; }
const char *wk_model_url(const wk_model_t *m) { return m->url; }
int wk_model_loaded_at_startup(const wk_model_t *m) { return m->loaded_at_startup; }

static int locked_int(wk_model_t *m, const int *field) {
  pthread_mutex_lock(&m->lock);
  int v = *field;
  pthread_mutex_unlock(&m->lock);
  return v;
}

int wk_model_live_workers(const wk_model_t *mc) {
  wk_model_t *m = (wk_model_t *)mc;
  return locked_int(m, &m->workers);
}

int wk_model_min_workers(const wk_model_t *mc) {
  wk_model_t *m = (wk_model_t *)mc;
  return locked_int(m, &m->min_workers);
}

int wk_model_failed(const wk_model_t *m) {
  return wk__pool_failed((wk_model_t *)m, NULL, 0);
}

int wk_model_healthy(const wk_model_t *mc, char *why, size_t whylen) {
  wk_model_t *m = (wk_model_t *)mc;
  pthread_mutex_lock(&m->lock);
  int workers = m->workers, min = m->min_workers, abandoned = m->abandoned;
  int failed = m->failed;
  if (failed) snprintf(why, whylen, "%s", m->failed_reason);
  pthread_mutex_unlock(&m->lock);
  if (failed) return 0;
  if (workers < min) {
    snprintf(why, whylen, "model %s %s has %d live workers, fewer than its minWorkers %d",
             m->name, m->version, workers, min);
    return 0;
  }
  if (abandoned > WK_MAX_ABANDONED_WORKERS) {
    snprintf(why, whylen, "model %s %s has %d workers stuck past the response timeout", m->name,
             m->version, abandoned);
    return 0;
  }
  return 1;
}

/* ---- describe and metrics ---- */

static const char *worker_status(wk__wstate_t st) {
  switch (st) {
  case WK__W_BUSY: return "BUSY";
  case WK__W_ABANDONED: return "ABANDONED";
  default: return "READY";
  }
}

void wk_model_describe(const wk_model_t *mc, wk_buf_t *b) {
  wk_model_t *m = (wk_model_t *)mc;
  wk_buf_puts(b, "{\n    \"modelName\": ");
  wk_buf_json_str(b, m->name);
  wk_buf_puts(b, ",\n    \"modelVersion\": ");
  wk_buf_json_str(b, m->version);
  wk_buf_puts(b, ",\n    \"modelUrl\": ");
  wk_buf_json_str(b, m->url);
  wk_buf_printf(b, ",\n    \"runtime\": \"%s\",\n    \"handler\": ",
                m->h->flags & WK__HF_NATIVE ? "native" : "python");
  wk_buf_json_str(b, m->handler);
  pthread_mutex_lock(&m->lock);
  wk_buf_printf(b,
                ",\n    \"minWorkers\": %d,\n    \"maxWorkers\": %d,\n    \"batchSize\": %d,\n"
                "    \"maxBatchDelay\": %d,\n    \"responseTimeout\": %d,\n"
                "    \"startupTimeout\": %d,\n    \"maxRetryTimeoutInSec\": 300,\n"
                "    \"clientTimeoutInMills\": 0,\n    \"parallelType\": \"\",\n"
                "    \"parallelLevel\": 0,\n    \"deviceType\": \"%s\",\n"
                "    \"continuousBatching\": false,\n    \"useJobTicket\": false,\n"
                "    \"useVenv\": false,\n    \"stateful\": false,\n"
                "    \"sequenceMaxIdleMSec\": 0,\n    \"sequenceTimeoutMSec\": 0,\n"
                "    \"maxNumSequence\": 0,\n    \"maxSequenceJobQueueSize\": 0,\n"
                "    \"loadedAtStartup\": %s,\n    \"workers\": [",
                m->min_workers, m->max_workers, m->batch_size, m->max_batch_delay_ms,
                m->response_timeout_s, m->startup_timeout_s,
                m->h && m->h->device && m->h->device(m, 0) >= 0 ? "gpu" : "cpu",
                m->loaded_at_startup ? "true" : "false");
  int i = 0;
  for (wk__worker_t *w = m->worker_list; w; w = w->next, i++) {
    char ts[32];
    struct tm tm;
    gmtime_r(&w->start_time, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int dev = m->h && m->h->device ? m->h->device(m, w->id - WK__WORKER_ID_BASE) : -1;
    char gpu[32] = "N/A";
    if (dev >= 0) snprintf(gpu, sizeof gpu, "gpuId::%d", dev);
    wk_buf_printf(b,
                  "%s\n      {\n        \"id\": \"%d\",\n        \"startTime\": \"%s\",\n"
                  "        \"status\": \"%s\",\n        \"memoryUsage\": 0,\n"
                  "        \"pid\": %d,\n        \"gpu\": %s,\n        \"gpuUsage\": \"%s\"\n      }",
                  i ? "," : "", w->id, ts, worker_status(w->state), (int)getpid(),
                  dev >= 0 ? "true" : "false", gpu);
  }
  wk_buf_printf(b,
                "\n    ],\n    \"jobQueueStatus\": {\n      \"remainingCapacity\": %d,\n"
                "      \"pendingRequests\": %d\n    }\n  }",
                m->queue_cap - m->queued, m->queued);
  pthread_mutex_unlock(&m->lock);
}

