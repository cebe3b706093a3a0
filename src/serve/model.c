/* Model versions: load (unpack, manifest, config, TorchScript module shared by all
 * workers), parse and submit requests, describe, metrics, free. The queue, batcher and
 * workers are in pool.c; the tensor handler in native.c. Python models: issue [4]. */
#include "serve/model.h"

#include "serve/model_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/liberator.h"
#include "archive/manifest.h"
#include "archive/model_config.h"
#include "archive/zip.h"
#include "backend/pyworker.h"
#include "backend/torch.h"
#include "core/clock.h"
#include "core/buf.h"
#include "core/fs.h"
#include "core/limits.h"
#include "core/log.h"
#include "serve/pydeps.h"
#include "weights/pt.h"
#include "weights/transfer.h"

/* ---- predictions ---- */

/* Moves inputs named after forward()'s arguments into argument order. */
static int order_named_inputs(wk_model_t *m, wk_json_inputs_t *in, char *msg, size_t msglen) {
  if (in->count == 0 || in->names[0] == NULL) return 0;
  size_t nargs = wk_torch_arg_count(m->torch);
  wk_json_inputs_t sorted;
  memset(&sorted, 0, sizeof sorted);
  size_t used = 0;
  for (size_t a = 0; a < nargs && a < WK_MAX_NAMED_INPUTS; a++) {
    const char *arg = wk_torch_arg_name(m->torch, a);
    size_t k = 0;
    while (k < in->count && (in->names[k] == NULL || strcmp(in->names[k], arg) != 0)) k++;
    if (k == in->count) break; /* later arguments may have defaults */
    sorted.tensors[sorted.count] = in->tensors[k];
    sorted.names[sorted.count] = in->names[k];
    in->names[k] = NULL;
    memset(&in->tensors[k], 0, sizeof in->tensors[k]);
    sorted.count++;
    used++;
  }
  if (used != in->count) {
    wk_buf_t b = WK_BUF_INIT;
    for (size_t a = 0; a < nargs; a++) wk_buf_printf(&b, "%s%s", a ? ", " : "", wk_torch_arg_name(m->torch, a));
    const char *bad = "?";
    for (size_t k = 0; k < in->count; k++)
      if (in->names[k] != NULL) bad = in->names[k];
    snprintf(msg, msglen,
             "input '%s' does not match forward(%s): name the inputs after forward()'s "
             "arguments, in order, without gaps",
             bad, b.data ? b.data : "");
    wk_buf_destroy(&b);
    wk_json_inputs_destroy(&sorted);
    return WK_EINVAL;
  }
  wk_json_inputs_destroy(in);
  *in = sorted;
  return 0;
}

/* Reads target and n_steps from the query string. */
static int explain_query(wk__job_t *j, wk_http_req_t *req, wk_err_t *err) {
  const char *names[2] = {"target", "n_steps"};
  for (int k = 0; k < 2; k++) {
    const char *v = wk_http_req_arg(req, names[k]);
    if (v == NULL) continue;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end || x < 0 || (k == 1 && (x < 1 || x > WK_MAX_IG_STEPS)))
      return wk_err(err, WK_EINVAL, "%s: expected %s, got '%s'", names[k],
                    k ? "an integer from 1 to " WK_STR(WK_MAX_IG_STEPS) : "a non-negative class index", v);
    if (k == 0) j->target = x;
    else j->n_steps = (int)x;
  }
  return 0;
}

int wk__job_new(wk_model_t *m, wk_http_req_t *req, int explain, wk__job_t **out, wk_err_t *err) {
  atomic_fetch_add(&m->req_total, 1);
  wk__job_t *j = calloc(1, sizeof *j);
  if (j == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  j->req = req;
  j->explain = explain;
  j->target = -1;
  j->n_steps = WK_DEFAULT_IG_STEPS;
  int rc = explain ? explain_query(j, req, err) : 0;
  if (rc != 0) {
    wk__job_free(j);
    return rc;
  }
  *out = j;
  return 0;
}

void wk__job_enqueue(wk_model_t *m, wk__job_t *j) {
  j->enqueued_us = wk_now_us();
  j->deadline_us = j->enqueued_us + (int64_t)m->response_timeout_s * 1000000;
  wk__pool_submit(m, j);
}

void wk__submit(wk_model_t *m, wk_http_req_t *req, int explain, int envelope) {
  wk_err_t err = {{0}};
  wk__job_t *j = NULL;
  int rc = wk__job_new(m, req, explain, &j, &err);
  if (rc != 0) {
    int status = rc == WK_ENOMEM ? 500 : 400;
    wk__job_t tmp = {.req = req, .envelope = envelope};
    wk__job_reply_error(m, &tmp, status, status == 500 ? "InternalServerException" : "BadRequestException",
                        err.msg);
    return;
  }
  j->envelope = envelope;
  if (m->kind == WK__H_PYTHON) {
    rc = wk__python_job_init(m, j, req, &err);
  } else if (WK__TAKES_IMAGES(m->kind)) {
    rc = wk__image_job_init(m, j, req, &err);
  } else {
    size_t len;
    const char *body = wk_http_req_body(req, &len);
    rc = wk_json_parse_inputs(body, len, &j->inputs, &err);
    if (rc == 0) rc = order_named_inputs(m, &j->inputs, err.msg, sizeof err.msg);
  }
  if (rc != 0) {
    wk__job_reply_error(m, j, rc == WK_ETOOBIG ? 413 : 400, "BadRequestException", err.msg);
    wk__job_free(j);
    return;
  }
  wk__job_enqueue(m, j);
}

void wk_model_predict(wk_model_t *m, wk_http_req_t *req) { wk__submit(m, req, 0, WK__ENV_TS); }

void wk_model_explain(wk_model_t *m, wk_http_req_t *req) { wk__submit(m, req, 1, WK__ENV_TS); }

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

/* The native built-in handlers wick runs in C; -1 for anything else. */
static int native_handler(const char *h) {
  if (h == NULL || *h == '\0' || strcmp(h, "tensor") == 0 || strcmp(h, "base_handler") == 0)
    return WK__H_TENSOR;
  if (strcmp(h, "image_classifier") == 0) return WK__H_IMAGE;
  if (strcmp(h, "object_detector") == 0) return WK__H_DETECT;
  return -1;
}

/* Appends up to 5 names to b, with how many more there were. */
static void name_some(wk_buf_t *b, const char *what, const char *const *names, size_t n) {
  if (n == 0) return;
  wk_buf_printf(b, "; %s:", what);
  for (size_t i = 0; i < n && i < 5; i++)
    wk_buf_printf(b, " %s", names[i]);
  if (n > 5) wk_buf_printf(b, " (and %zu more)", n - 5);
}

/* wk_torch_prepare_fn for wick.weights: reads the checkpoint with the safe reader,
 * associates its keys with the module's parameters and buffers, and copies what fits.
 * arg is the model. At load (main thread), and again for the explanations' unfrozen copy
 * (an explanation's thread, under the backend's lock; the plan is the same, so only the
 * first call logs). */
static int load_weights(wk_torch_model_t *tm, void *arg, wk_err_t *err) {
  wk_model_t *m = arg;
  const char *path = m->weights_path;
  bool quiet = m->weights_copied != 0;
  const wk_model_config_t *c = &m->config;
  const char *file = c->wick_weights_file;
  wk_assoc_t assoc = WK_ASSOC_ISOMORPHISM;
  bool mangle = c->wick_weights_mangle == 1, strict = c->wick_weights_strict == 1;
  int rc;
  if (c->wick_weights_association &&
      (rc = wk_assoc_parse(c->wick_weights_association, &assoc, err)))
    return rc;
  if (!wk_fs_exists(path))
    return wk_err(err, WK_ENOTFOUND,
                  "wick.weights.file: '%s' is not in the archive: expected a .pt checkpoint "
                  "beside the serialized file",
                  file);
  wk_pt_t *pt = NULL;
  wk_torch_state_t *st = NULL;
  size_t nst = 0;
  wk_xfer_key_t *ko = NULL, *ks = NULL;
  wk_xfer_t *x = NULL;
  if ((rc = wk_pt_open(path, 0, &pt, err)) != 0) {
    wk_err_prefix(err, "wick.weights.file '%s'", file);
    return rc;
  }
  if ((rc = wk_torch_state_list(tm, &st, &nst, err)) != 0) goto out;
  size_t no = wk_pt_count(pt);
  ko = calloc(no + 1, sizeof *ko);
  ks = calloc(nst + 1, sizeof *ks);
  if (!ko || !ks) {
    rc = wk_err(err, WK_ENOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < no; i++) {
    const wk_pt_tensor_t *t = wk_pt_tensor(pt, i);
    ko[i] = (wk_xfer_key_t){t->name, t->dtype, t->ndim, t->shape};
  }
  for (size_t i = 0; i < nst; i++)
    ks[i] = (wk_xfer_key_t){st[i].name, st[i].dtype, st[i].ndim, st[i].shape};
  if ((rc = wk_xfer_plan(ko, no, ks, nst, assoc, mangle, &x, err)) != 0) goto out;
  char sum[256];
  wk_xfer_summary(x, sum, sizeof sum);
  if (!wk_xfer_perfect(x) && !quiet) {
    /* the names that did not fit, for the log and for a strict failure */
    wk_buf_t b = WK_BUF_INIT;
    const char **unset = calloc(nst + 1, sizeof *unset);
    const char **unused = calloc(no + 1, sizeof *unused);
    size_t nu = 0, nx = 0;
    bool *used = calloc(no + 1, sizeof *used);
    if (!unset || !unused || !used) {
      free(unset), free(unused), free(used);
      rc = wk_err(err, WK_ENOMEM, "out of memory");
      goto out;
    }
    for (size_t i = 0; i < nst; i++) {
      long src;
      wk_xfer_action(x, i, &src);
      if (src < 0)
        unset[nu++] = st[i].name;
      else
        used[src] = true;
    }
    for (size_t i = 0; i < no; i++)
      if (!used[i]) unused[nx++] = ko[i].name;
    wk_buf_printf(&b, "%s", sum);
    name_some(&b, "model tensors not set", unset, nu);
    name_some(&b, "checkpoint tensors not used", unused, nx);
    char *report = wk_xfer_report_json(x, 0);
    if (strict) {
      wk_log_error("model %s %s: wick.weights %s: not a perfect fit (strict): %s", m->name,
                   m->version, file, report ? report : "");
      rc = wk_err(err, WK_EMODEL, "wick.weights.file '%s' does not fit the model (strict, %s): %s",
                  file, wk_assoc_name(assoc), b.data ? b.data : sum);
    } else {
      wk_log_warn("model %s %s: wick.weights %s is a partial fit (%s%s): %s", m->name, m->version,
                  file, wk_assoc_name(assoc), mangle ? ", mangle" : "", b.data ? b.data : sum);
    }
    free(report);
    free(unset);
    free(unused);
    free(used);
    wk_buf_destroy(&b);
    if (rc) goto out;
  }
  for (size_t i = 0; i < nst; i++) {
    long src;
    wk_xfer_action(x, i, &src);
    if (src < 0) continue;
    const wk_pt_tensor_t *t = wk_pt_tensor(pt, (size_t)src);
    if (t->numel == 0) continue; /* nothing to copy */
    if (!t->data && t->numel > 0) {
      rc = wk_err(err, WK_EUNSUPPORTED, "wick.weights.file '%s': tensor '%s' has no data", file,
                  t->name);
      goto out;
    }
    if ((rc = wk_torch_state_copy(tm, st[i].name, t->dtype, t->ndim, t->shape, t->strides, t->data,
                                  err)) != 0)
      goto out;
  }
  if (wk_xfer_perfect(x) && !quiet)
    wk_log_info("model %s %s: wick.weights %s: %s (%s%s)", m->name, m->version, file, sum,
                wk_assoc_name(assoc), mangle ? ", mangle" : "");
  m->weights_copied = 1;
out:
  wk_xfer_free(x);
  free(ko);
  free(ks);
  wk_torch_state_free(st, nst);
  wk_pt_close(pt);
  return rc;
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

/* Unpacks the archives system.extraFiles names (relative to the model directory) into
 * the model directory, in order, once, before any worker starts. */
static int unpack_extra_files(wk_model_t *m, const char *what, wk_err_t *err) {
  for (size_t i = 0; i < m->config.n_extra_files; i++) {
    const char *name = m->config.extra_files[i];
    char path[4096];
    int rc = wk_archive_check_name(name, strlen(name), err);
    if (rc == 0 && wk_fs_join(path, sizeof path, m->model_dir, name) != 0)
      rc = wk_err(err, WK_ETOOBIG, "path too long");
    if (rc == 0) rc = wk_archive_unpack_into(path, m->model_dir, err);
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

/* GPUs the NVIDIA driver lists (/proc/driver/nvidia/gpus/<bus id>/); 0 without one. */
static int count_gpus(void) {
  DIR *d = opendir("/proc/driver/nvidia/gpus");
  if (d == NULL) return 0;
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

/* Which GPU each Python worker gets: deviceType gpu (or no deviceType on a machine with
 * GPUs) spreads the workers round-robin over deviceIds (default: every GPU); deviceType
 * cpu, or no GPU, gives none. The worker's handler falls back to the CPU when CUDA is
 * absent from its Python. */
static int assign_gpus(wk_model_t *m, wk_err_t *err) {
  const char *dt = m->config.device_type;
  if (dt != NULL && strcmp(dt, "cpu") != 0 && strcmp(dt, "gpu") != 0)
    return wk_err(err, WK_EINVAL, "model '%s': deviceType: expected cpu or gpu, got '%s'", m->name,
                  dt);
  int ngpu = count_gpus();
  m->n_gpu_ids = 0;
  if (dt != NULL ? strcmp(dt, "gpu") != 0 : ngpu == 0) return 0;
  if (m->config.n_device_ids > 0) {
    for (int i = 0; i < m->config.n_device_ids; i++) {
      int id = m->config.device_ids[i];
      if (ngpu > 0 && id >= ngpu)
        return wk_err(err, WK_EINVAL,
            "model '%s': deviceIds[%d] is %d, but this machine has %d GPU(s) (ids 0 to %d)",
            m->name, i, id, ngpu, ngpu - 1);
      m->gpu_ids[i] = id;
    }
    m->n_gpu_ids = m->config.n_device_ids;
  } else if (ngpu > 0) {
    int max = (int)(sizeof m->gpu_ids / sizeof m->gpu_ids[0]);
    for (int i = 0; i < ngpu && i < max; i++)
      m->gpu_ids[i] = i;
    m->n_gpu_ids = ngpu < max ? ngpu : max;
  } else {
    wk_log_warn("model %s: deviceType is gpu, but no GPU was found (no /proc/driver/nvidia/gpus) "
                "and no deviceIds are given; its workers run on the CPU",
                m->name);
  }
  return 0;
}

/* With install_py_deps, pip-installs the manifest's requirementsFile into a private
 * folder of this model (m->deps_dir); then sets the workers' PYTHONPATH. */
static int python_requirements(wk_model_t *m, int install, wk_err_t *err) {
  const char *req = m->manifest.requirements_file;
  wk_buf_t pp = WK_BUF_INIT;
  if (req != NULL && !install) {
    wk_log_info("model %s: requirementsFile %s is not installed (install_py_dep_per_model is "
                "false)",
                m->name, req);
  } else if (req != NULL) {
    char path[4096];
    int rc = wk_archive_check_name(req, strlen(req), err);
    if (rc == 0 && wk_fs_join(path, sizeof path, m->model_dir, req) != 0)
      rc = wk_err(err, WK_ETOOBIG, "path too long");
    if (rc == 0 && !wk_fs_exists(path))
      rc = wk_err(err, WK_ENOTFOUND, "the archive has no such file");
    if (rc == 0) rc = wk_fs_mkdtemp("pydeps", m->deps_dir, sizeof m->deps_dir, err);
    int64_t t0 = wk_now_us();
    if (rc == 0)
      rc = wk_pydeps_install(m->python, path, m->deps_dir, m->model_dir, WK_PIP_TIMEOUT_S, err);
    if (rc != 0) {
      wk_err_prefix(err, "model '%s': requirementsFile %s", m->name, req);
      return rc;
    }
    wk_log_info("model %s: requirements installed into %s in %lld ms", m->name, m->deps_dir,
                (long long)((wk_now_us() - t0) / 1000));
  }
  wk_buf_puts(&pp, wk__python_dir());
  if (m->deps_dir[0]) wk_buf_printf(&pp, ":%s", m->deps_dir);
  if (pp.data == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  m->pythonpath = wk_buf_steal(&pp, NULL);
  return 0;
}

int wk_model_load(const wk_model_load_opts_t *o, wk_model_t **out, wk_err_t *err) {
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
  int rc;
  const char *what = o->name ? o->name : o->url;

  /* 1. the archive, unpacked into a private directory (directories are used in place) */
  int kind = wk_archive_kind(o->archive);
  if (kind < 0) {
    rc = wk_err(err, WK_ENOTFOUND, "model '%s': %s is not a model archive (.mar, .tar.gz) or directory",
                what, o->archive);
    goto fail;
  }
  if (kind == WK_ARCHIVE_DIR) {
    if (realpath(o->archive, m->model_dir) == NULL)
      snprintf(m->model_dir, sizeof m->model_dir, "%s", o->archive);
  } else {
    if ((rc = wk_fs_mkdtemp("model", m->tmp_dir, sizeof m->tmp_dir, err)) != 0) goto fail;
    snprintf(m->model_dir, sizeof m->model_dir, "%s", m->tmp_dir);
    if ((rc = wk_archive_unpack(o->archive, m->model_dir, err)) != 0) {
      wk_err_prefix(err, "model '%s': %s", what, o->archive);
      goto fail;
    }
  }

  /* 2. the manifest and the model config */
  char path[4096];
  char *text = NULL;
  size_t len = 0;
  wk_fs_join(path, sizeof path, m->model_dir, "MAR-INF/MANIFEST.json");
  rc = wk_fs_read_file(path, WK_MAX_MANIFEST_SIZE, &text, &len, err);
  if (rc == WK_ENOTFOUND) {
    /* no manifest: a torch_liberator deploy zip is served as it is */
    wk_err_t lerr = {{0}};
    int lrc = liberator_manifest(m, o->archive, &lerr);
    if (lrc == WK_ENOTFOUND) {
      wk_err(err, rc,
             "model '%s': %s has no MAR-INF/MANIFEST.json (pack it with wick pack) and is not a "
             "torch_liberator deployment (no deploy_snapshot.pt beside a liberated model .py)",
             what, o->archive);
      goto fail;
    }
    if (lrc != 0) {
      rc = wk_err(err, lrc, "model '%s': %s", what, lerr.msg);
      goto fail;
    }
    rc = 0;
  } else if (rc != 0) {
    wk_err_prefix(err, "model '%s': %s", what, o->archive);
    goto fail;
  } else {
    rc = wk_manifest_parse(text, len, &m->manifest, err);
    free(text);
    if (rc != 0) {
      wk_err_prefix(err, "model '%s': MANIFEST.json", what);
      goto fail;
    }
  }
  if (m->manifest.config_file) {
    wk_fs_join(path, sizeof path, m->model_dir, m->manifest.config_file);
    if ((rc = wk_fs_read_file(path, WK_MAX_CONFIG_FILE_SIZE, &text, &len, err)) != 0) {
      wk_err_prefix(err, "model '%s': configFile", what);
      goto fail;
    }
    rc = wk_model_config_parse(text, len, &m->config, err);
    free(text);
    if (rc != 0) {
      wk_err_prefix(err, "model '%s': %s", what, m->manifest.config_file);
      goto fail;
    }
  }
  if ((rc = unpack_extra_files(m, what, err)) != 0) goto fail;
  m->name = dup_or(o->name, m->manifest.model_name);
  m->version = dup_or(m->manifest.model_version, "1.0");
  m->url = dup_or(o->url, o->archive);
  m->handler = dup_or(o->handler ? o->handler : m->manifest.handler, "tensor");
  m->loaded_at_startup = o->loaded_at_startup;
  m->spin_us = o->worker_spin_us;

  /* 3. which runtime: native for TorchScript with a native built-in handler (or when
   * wick.runtime says native), else Python worker processes */
  const char *ser = m->manifest.serialized_file;
  path[0] = '\0';
  if (ser) wk_fs_join(path, sizeof path, m->model_dir, ser);
  const char *runtime = m->config.wick_runtime;
  int forced_native = runtime && strcmp(runtime, "native") == 0;
  int forced_python = runtime && strcmp(runtime, "python") == 0;
  int handler_kind = native_handler(o->handler ? o->handler : m->manifest.handler);
  int native = !forced_python && handler_kind >= 0 && ser != NULL &&
               (forced_native || (m->manifest.model_file == NULL && is_torchscript(path)));
  if (forced_native && !native) {
    rc = wk_err(err, WK_EINVAL,
                "model '%s': wick.runtime is native, but %s", m->name,
                ser == NULL ? "the manifest names no serializedFile"
                            : "its handler is not a native one (tensor, base_handler, "
                              "image_classifier)");
    goto fail;
  }
  m->kind = native ? (wk__handler_t)handler_kind : WK__H_PYTHON;
  m->python = strdup(o->python && *o->python ? o->python : WK_PYWORKER_DEFAULT_PYTHON);
  m->startup_timeout_s = o->startup_timeout_s > 0 ? o->startup_timeout_s : WK_DEFAULT_STARTUP_TIMEOUT_S;

  /* 4. settings: a register request's overrides, then model-config.yaml, then the
   * server's defaults */
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
  m->max_batch_delay_ms = pick(o->max_batch_delay_ms, pick(m->config.max_batch_delay_ms, 100));
  m->response_timeout_s = pick(o->response_timeout_s_override,
                               pick(m->config.response_timeout_s,
                                    o->response_timeout_s > 0 ? o->response_timeout_s
                                                              : WK_DEFAULT_RESPONSE_TIMEOUT_S));
  if (m->response_timeout_s < 1) m->response_timeout_s = 1;
  m->queue_cap = pick(m->config.job_queue_size,
                      o->job_queue_size > 0 ? o->job_queue_size : WK_DEFAULT_JOB_QUEUE_SIZE);
  int threads = m->config.wick_threads > 0 ? m->config.wick_threads : o->torch_threads;
  if (threads <= 0) {
    int per = m->min_workers > 0 ? m->min_workers : 1;
    threads = (int)(ncpu / per > 0 ? ncpu / per : 1);
  }
  wk_torch_set_threads(threads);

  if (m->kind == WK__H_IMAGE && (rc = wk__image_configure(m, o->max_image_pixels, err)) != 0) {
    wk_err_prefix(err, "model '%s'", m->name);
    goto fail;
  }
  if (m->kind == WK__H_DETECT && (rc = wk__detect_configure(m, o->max_image_pixels, err)) != 0) {
    wk_err_prefix(err, "model '%s'", m->name);
    goto fail;
  }

  if (m->kind == WK__H_PYTHON) {
    if ((rc = assign_gpus(m, err)) != 0 ||
        (rc = python_requirements(m, o->install_py_deps, err)) != 0)
      goto fail;
    /* Start one worker process now, so that a handler that cannot load fails the load
     * with its traceback; the first worker thread takes this process over. */
    int64_t t0 = wk_now_us();
    if ((rc = wk__python_start(m, 0, &m->first_py, err)) != 0) {
      wk_err_prefix(err, "model '%s'", m->name);
      goto fail;
    }
    wk_log_info("model %s %s: handler %s loaded in a Python worker in %lld ms (python, %d "
                "workers, batch size %d)",
                m->name, m->version, m->handler, (long long)((wk_now_us() - t0) / 1000),
                m->min_workers, m->batch_size);
    if ((rc = wk__pool_start(m, m->min_workers, err)) != 0) goto fail;
    *out = m;
    return 0;
  }

  /* 5. the module, loaded once and shared by every worker */
  /* Freezing + optimize_for_inference at load: 1.4-2.8x faster forwards here
   * (MACHINE-NOTES); wick: {freeze: false} turns it off for modules that misbehave. */
  wk_torch_opts_t topts = {.freeze = m->config.wick_freeze != 0, .device = -1};
  if (m->config.wick_weights_file) {
    if (wk_fs_join(m->weights_path, sizeof m->weights_path, m->model_dir,
                   m->config.wick_weights_file)) {
      rc = wk_err(err, WK_ETOOBIG, "model '%s': wick.weights.file: path too long", m->name);
      goto fail;
    }
    topts.prepare = load_weights;
    topts.prepare_arg = m;
  }
  int64_t t0 = wk_now_us();
  if ((rc = wk_torch_load(path, &topts, &m->torch, err)) != 0) {
    wk_err_prefix(err, "model '%s': %s", m->name, m->manifest.serialized_file);
    goto fail;
  }
  wk_log_info("model %s %s: TorchScript %s loaded in %lld ms (native, %s, %d workers, batch "
              "size %d, %d torch threads)",
              m->name, m->version, m->manifest.serialized_file,
              (long long)((wk_now_us() - t0) / 1000), topts.freeze ? "frozen" : "not frozen",
              m->min_workers, m->batch_size, threads);

  /* 6. workers and the timeout monitor */
  if ((rc = wk__pool_start(m, m->min_workers, err)) != 0) goto fail;
  *out = m;
  return 0;

fail:
  wk_model_free(m);
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
  if (m->torch) wk_torch_free(m->torch);
  if (m->first_py) wk_pyworker_stop(m->first_py);
  free(m->python);
  free(m->pythonpath);
  if (m->deps_dir[0]) wk_fs_rmtree(m->deps_dir);
  wk__image_unconfigure(m);
  if (m->tmp_dir[0]) wk_fs_rmtree(m->tmp_dir);
  wk_manifest_destroy(&m->manifest);
  wk_model_config_destroy(&m->config);
  pthread_mutex_destroy(&m->lock);
  pthread_cond_destroy(&m->fill_cond);
  pthread_cond_destroy(&m->idle_cond);
  pthread_cond_destroy(&m->state_cond);
  pthread_cond_destroy(&m->mon_cond);
  for (size_t i = 0; i < m->n_custom; i++) {
    free(m->custom[i].name);
    free(m->custom[i].labels);
  }
  free(m->custom);
  pthread_mutex_destroy(&m->custom_lock);
  free(m->name);
  free(m->version);
  free(m->url);
  free(m->handler);
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
}

const char *wk_model_name(const wk_model_t *m) { return m->name; }
const char *wk_model_version(const wk_model_t *m) { return m->version; }
const char *wk_model_url(const wk_model_t *m) { return m->url; }

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

int wk_model_healthy(const wk_model_t *mc, char *why, size_t whylen) {
  wk_model_t *m = (wk_model_t *)mc;
  pthread_mutex_lock(&m->lock);
  int workers = m->workers, min = m->min_workers, abandoned = m->abandoned;
  pthread_mutex_unlock(&m->lock);
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
                m->kind == WK__H_PYTHON ? "python" : "native");
  wk_buf_json_str(b, m->handler);
  pthread_mutex_lock(&m->lock);
  wk_buf_printf(b,
                ",\n    \"minWorkers\": %d,\n    \"maxWorkers\": %d,\n    \"batchSize\": %d,\n"
                "    \"maxBatchDelay\": %d,\n    \"responseTimeout\": %d,\n"
                "    \"loadedAtStartup\": %s,\n    \"workers\": [",
                m->min_workers, m->max_workers, m->batch_size, m->max_batch_delay_ms,
                m->response_timeout_s, m->loaded_at_startup ? "true" : "false");
  int i = 0;
  for (wk__worker_t *w = m->worker_list; w; w = w->next, i++) {
    char ts[32];
    struct tm tm;
    gmtime_r(&w->start_time, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    wk_buf_printf(b,
                  "%s\n      {\n        \"id\": \"%d\",\n        \"startTime\": \"%s\",\n"
                  "        \"status\": \"%s\",\n        \"memoryUsage\": 0,\n"
                  "        \"pid\": %d,\n        \"gpu\": false,\n        \"gpuUsage\": \"N/A\"\n      }",
                  i ? "," : "", w->id, ts, worker_status(w->state), (int)getpid());
  }
  wk_buf_printf(b,
                "\n    ],\n    \"jobQueueStatus\": {\n      \"remainingCapacity\": %d,\n"
                "      \"pendingRequests\": %d\n    }\n  }",
                m->queue_cap - m->queued, m->queued);
  pthread_mutex_unlock(&m->lock);
}

/* Prints a histogram; scale turns the stored sum into the unit of the buckets. */
static void hist_print(wk_buf_t *b, const char *metric, const char *labels, const wk__hist_t *hc,
                       const double *bounds, size_t nb, double scale) {
  wk__hist_t *h = (wk__hist_t *)hc;
  uint64_t cum = 0;
  for (size_t i = 0; i <= nb; i++) {
    cum += atomic_load(&h->counts[i]);
    if (i < nb)
      wk_buf_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", metric, labels, bounds[i],
                    (unsigned long long)cum);
    else
      wk_buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", metric, labels, (unsigned long long)cum);
  }
  wk_buf_printf(b, "%s_sum{%s} %.6f\n", metric, labels, (double)atomic_load(&h->sum) * scale);
  wk_buf_printf(b, "%s_count{%s} %llu\n", metric, labels, (unsigned long long)atomic_load(&h->n));
}

static void labels_of(const wk_model_t *m, char *out, size_t outlen) {
  snprintf(out, outlen, "model_name=\"%s\",model_version=\"%s\"", m->name, m->version);
}

/* Counter/gauge families: name, type, help, and the reader of one model's value. */
typedef uint64_t (*reader_fn)(wk_model_t *m);
static uint64_t rd_total(wk_model_t *m) { return atomic_load(&m->req_total); }
static uint64_t rd_lat(wk_model_t *m) { return atomic_load(&m->inference_us_total); }
static uint64_t rd_queue(wk_model_t *m) { return atomic_load(&m->queue_us_total); }
static uint64_t rd_depth(wk_model_t *m) {
  pthread_mutex_lock(&m->lock);
  uint64_t q = (uint64_t)m->queued;
  pthread_mutex_unlock(&m->lock);
  return q;
}
static uint64_t rd_workers(wk_model_t *m) { return (uint64_t)locked_int(m, &m->workers); }
static uint64_t rd_abandoned(wk_model_t *m) { return (uint64_t)locked_int(m, &m->abandoned); }

void wk_models_metrics(wk_model_t *const *models, size_t n, wk_buf_t *b) {
  static const struct {
    const char *name, *type, *help;
    reader_fn read;
  } families[] = {
      {"ts_inference_requests_total", "counter", "Prediction requests received, by model.", rd_total},
      {"ts_inference_latency_microseconds", "counter", "Total time spent in forward(), microseconds.", rd_lat},
      {"ts_queue_latency_microseconds", "counter", "Total time requests waited in the job queue, microseconds.", rd_queue},
      {"wick_queue_depth", "gauge", "Requests waiting in the job queue.", rd_depth},
      {"wick_workers", "gauge", "Live workers.", rd_workers},
      {"wick_workers_abandoned", "gauge", "Workers stuck in a forward past the response timeout.", rd_abandoned},
  };
  char labels[512];
  for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
    wk_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help,
                  families[f].name, families[f].type);
    for (size_t i = 0; i < n; i++) {
      labels_of(models[i], labels, sizeof labels);
      wk_buf_printf(b, "%s{%s} %llu\n", families[f].name, labels,
                    (unsigned long long)families[f].read(models[i]));
    }
  }
  wk_buf_puts(b, "# HELP wick_model_requests_total Prediction replies by model and result.\n"
                 "# TYPE wick_model_requests_total counter\n");
  for (size_t i = 0; i < n; i++) {
    wk_model_t *m = models[i];
    labels_of(m, labels, sizeof labels);
    wk_buf_printf(b, "wick_model_requests_total{%s,result=\"ok\"} %llu\n", labels, (unsigned long long)atomic_load(&m->req_ok));
    wk_buf_printf(b, "wick_model_requests_total{%s,result=\"client_error\"} %llu\n", labels, (unsigned long long)atomic_load(&m->req_client_err));
    wk_buf_printf(b, "wick_model_requests_total{%s,result=\"server_error\"} %llu\n", labels, (unsigned long long)atomic_load(&m->req_server_err));
  }
  static const struct {
    const char *name, *help;
    size_t off;
    const double *bounds;
    size_t nb;
    double scale;
  } hists[] = {
      {"wick_inference_seconds", "Time in forward() per request.",
       offsetof(wk_model_t, inference_hist), wk__lat_bounds, WK__LAT_BUCKETS, 1e-6},
      {"wick_queue_seconds", "Time in the job queue per request.", offsetof(wk_model_t, queue_hist),
       wk__lat_bounds, WK__LAT_BUCKETS, 1e-6},
      {"wick_batch_size", "Requests per forward() call.", offsetof(wk_model_t, batch_hist),
       wk__batch_bounds, WK__BATCH_BUCKETS, 1},
  };
  for (size_t h = 0; h < sizeof hists / sizeof hists[0]; h++) {
    wk_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", hists[h].name, hists[h].help,
                  hists[h].name);
    for (size_t i = 0; i < n; i++) {
      labels_of(models[i], labels, sizeof labels);
      hist_print(b, hists[h].name, labels,
                 (const wk__hist_t *)((const char *)models[i] + hists[h].off), hists[h].bounds,
                 hists[h].nb, hists[h].scale);
    }
  }
  /* values Python handlers recorded through context.metrics, grouped by name */
  for (size_t i = 0; i < n; i++) pthread_mutex_lock(&models[i]->custom_lock);
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < models[i]->n_custom; k++) {
      const wk__custom_metric_t *c = &models[i]->custom[k];
      int first = 1; /* print the family once, at its first occurrence */
      for (size_t i2 = 0; i2 <= i && first; i2++)
        for (size_t k2 = 0; k2 < (i2 == i ? k : models[i2]->n_custom) && first; k2++)
          if (strcmp(models[i2]->custom[k2].name, c->name) == 0) first = 0;
      if (!first) continue;
      wk_buf_printf(b, "# HELP %s Recorded by the model's handler (context.metrics).\n# TYPE %s %s\n",
                    c->name, c->name, c->counter ? "counter" : "gauge");
      for (size_t i2 = i; i2 < n; i2++) {
        labels_of(models[i2], labels, sizeof labels);
        for (size_t k2 = 0; k2 < models[i2]->n_custom; k2++) {
          const wk__custom_metric_t *d = &models[i2]->custom[k2];
          if (strcmp(d->name, c->name) != 0) continue;
          wk_buf_printf(b, "%s{%s%s%s} %.17g\n", d->name, labels, d->labels[0] ? "," : "",
                        d->labels, d->value);
        }
      }
    }
  }
  for (size_t i = 0; i < n; i++) pthread_mutex_unlock(&models[i]->custom_lock);
}
