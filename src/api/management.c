/* Routes of the management port: TorchServe's /models API. Registration resolves the url
 * (a file or directory in the model store, or an http(s) URL that allowed_urls names),
 * loads the version and adds it to the registry; unregistering waits for the requests that
 * hold the version, then frees it. Worker scaling and loading are serve/model.c's. */
#include "api/handlers.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/fs.h"
#include "core/limits.h"
#include "core/log.h"
#include "serve/download.h"
#include "serve/status.h"

/* Replies TorchServe's {"status": "..."}. */
static void reply_status(wk_http_req_t *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_status(wk_http_req_t *req, int code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  wk_http_reply_field(req, code, "status", msg, 1);
}

static void reply_buf(wk_http_req_t *req, int status, wk_buf_t *b) {
  size_t len;
  char *body = wk_buf_steal(b, &len);
  wk_http_reply(req, status, "application/json", body, len);
}

/* 404 for a name or version that is not registered, in TorchServe's words. */
static void model_not_found(wk_api_t *api, wk_http_req_t *req, const char *name,
                            const char *version) {
  if (version == NULL || !wk_registry_has_name(api->registry, name))
    wk_http_reply_error(req, 404, "ModelNotFoundException", "Model not found: %s", name);
  else
    wk_http_reply_error(req, 404, "ModelVersionNotFoundException",
                        "Model version: %s does not exist for model: %s", version, name);
}

/* ---- settings from the server config ---- */

static const char *setting(const wk_api_t *api, const char *key) {
  return api->config ? wk_props_get(&api->config->props, key) : NULL;
}

/* enable_model_api, as TorchServe 0.11+: off unless set to true. */
static int model_api_enabled(const wk_api_t *api) {
  const char *v = setting(api, "enable_model_api");
  return v != NULL && strcasecmp(v, "true") == 0;
}

static const char *model_store(const wk_api_t *api) {
  return api->config ? api->config->model_store : NULL;
}

static void model_api_disabled(wk_http_req_t *req) {
  wk_http_reply_error(req, 405, "MethodNotAllowedException",
                      "%s %s is disabled: registering and unregistering models needs "
                      "enable_model_api=true in the config (or wick serve --enable-model-api)",
                      wk_http_req_method(req), wk_http_req_path(req));
}

/* 1 if url matches one of allowed_urls (comma-separated POSIX extended regexes, matched
 * against the whole URL, ignoring case, as TorchServe does), 0 if none does or the list is
 * empty, -1 with err set if a pattern does not compile. */
static int url_allowed(const char *allowed_urls, const char *url, wk_err_t *err) {
  if (allowed_urls == NULL) return 0;
  char *list = strdup(allowed_urls);
  if (list == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  int found = 0;
  char *save = NULL;
  for (char *pat = strtok_r(list, ",", &save); pat && found == 0;
       pat = strtok_r(NULL, ",", &save)) {
    while (isspace((unsigned char)*pat))
      pat++;
    if (*pat == '\0') continue;
    size_t len = strlen(pat) + 5;
    char *anchored = malloc(len);
    if (anchored == NULL) {
      found = wk_err(err, WK_ENOMEM, "out of memory");
      break;
    }
    snprintf(anchored, len, "^(%s)$", pat);
    regex_t re;
    int rc = regcomp(&re, anchored, REG_EXTENDED | REG_ICASE | REG_NOSUB);
    free(anchored);
    if (rc != 0) {
      char why[128];
      regerror(rc, &re, why, sizeof why);
      found = wk_err(err, WK_EINVAL, "allowed_urls: '%s' is not a valid regular expression (%s)",
                     pat, why);
      break;
    }
    found = regexec(&re, url, 0, NULL, 0) == 0;
    regfree(&re);
  }
  free(list);
  return found;
}

typedef struct allow_ctx_s {
  const char *allowed_urls;
} allow_ctx_t;

static int allow_redirect(const char *url, void *ud) {
  wk_err_t err;
  return url_allowed(((allow_ctx_t *)ud)->allowed_urls, url, &err) == 1;
}

/* download_timeout: seconds a whole download may take (WK_DEFAULT_DOWNLOAD_TIMEOUT_S). */
static int download_timeout(const wk_api_t *api) {
  const char *v = setting(api, "download_timeout");
  long n = v ? strtol(v, NULL, 10) : 0;
  return n > 0 && n < INT_MAX ? (int)n : WK_DEFAULT_DOWNLOAD_TIMEOUT_S;
}

/* "scheme://..." */
static int has_scheme(const char *url) {
  const char *p = url;
  if (!isalpha((unsigned char)*p)) return 0;
  while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
    p++;
  return strncmp(p, "://", 3) == 0;
}

static int is_http(const char *url) {
  return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

/* The archive's file name in an http(s) URL: the last segment of its path. Refuses names
 * that could mean anything but a plain file in the model store. */
static int url_file_name(const char *url, char *out, size_t outlen, wk_err_t *err) {
  const char *p = strstr(url, "://") + 3;
  size_t path_at = strcspn(p, "/?#");
  const char *path = p + path_at;
  size_t path_len = *path == '/' ? strcspn(path, "?#") : 0;
  const char *name = path;
  for (size_t i = 0; i < path_len; i++)
    if (path[i] == '/') name = path + i + 1;
  size_t len = path_len ? (size_t)(path + path_len - name) : 0;
  int ok = len > 0 && len < outlen && name[0] != '.';
  for (size_t i = 0; ok && i < len; i++)
    ok = isalnum((unsigned char)name[i]) || strchr("._+-", name[i]) != NULL;
  if (!ok)
    return wk_err(err, WK_EINVAL,
                  "the URL %s must end in an archive file name made of letters, digits and . _ + - "
                  "(such as /models/resnet.mar)",
                  url);
  memcpy(out, name, len);
  out[len] = '\0';
  return 0;
}

/* ---- request parameters: the query string, or a JSON body with the same names ---- */

typedef struct params_s {
  wk_http_req_t *req;
  json_t *body; /* NULL: read the query string */
  char scratch[16][32];
  int used;
} params_t;

/* The value of key as text (NULL if absent). Returns -1 with err set for a JSON value that
 * is not a string, integer or boolean. */
static int param(params_t *p, const char *key, const char **out, wk_err_t *err) {
  *out = NULL;
  if (p->body == NULL) {
    *out = wk_http_req_arg(p->req, key);
    return 0;
  }
  json_t *v = json_object_get(p->body, key);
  if (v == NULL || json_is_null(v)) return 0;
  if (json_is_string(v)) {
    *out = json_string_value(v);
  } else if (json_is_boolean(v)) {
    *out = json_is_true(v) ? "true" : "false";
  } else if (json_is_integer(v) && p->used < 16) {
    snprintf(p->scratch[p->used], sizeof p->scratch[0], "%" JSON_INTEGER_FORMAT,
             json_integer_value(v));
    *out = p->scratch[p->used++];
  } else {
    return wk_err(err, WK_EINVAL, "%s must be a string, an integer or a boolean", key);
  }
  return 0;
}

/* An integer parameter of the query string read as TorchServe reads it: absent, or not an
 * integer at all ("dd", ""), gives def; the latter is logged as ignored. In a JSON body a
 * value that is not an integer is an error. Ranges are the caller's. */
static int lenient_int(params_t *p, const char *key, int def, int *out, wk_err_t *err) {
  const char *s;
  if (param(p, key, &s, err) != 0) return WK_EINVAL;
  *out = def;
  if (s == NULL) return 0;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  int bad = end == s || *end || errno || v < INT_MIN || v > INT_MAX;
  if (bad && p->body != NULL) /* a JSON body is a typed document: no guessing there */
    return wk_err(err, WK_EINVAL, "%s must be an integer, got '%.64s'", key, s);
  if (bad)
    wk_log_warn("%s %s: %s='%.64s' is not an integer; ignored (as TorchServe ignores it)",
                wk_http_req_method(p->req), wk_http_req_path(p->req), key, s);
  else
    *out = (int)v;
  return 0;
}

/* A boolean parameter read as TorchServe reads it (Java's parseBoolean): "true" in any case
 * is true, anything else false; a value other than true/false is logged. */
static int lenient_bool(params_t *p, const char *key, int def, int *out, wk_err_t *err) {
  const char *s;
  if (param(p, key, &s, err) != 0) return WK_EINVAL;
  *out = s == NULL ? def : strcasecmp(s, "true") == 0;
  if (s != NULL && strcasecmp(s, "true") != 0 && strcasecmp(s, "false") != 0)
    wk_log_warn("%s %s: %s='%.64s' is not true or false; read as false (as TorchServe reads it)",
                wk_http_req_method(p->req), wk_http_req_path(p->req), key, s);
  return 0;
}

static int is_json(wk_http_req_t *req) {
  const char *ct = wk_http_req_header(req, "Content-Type");
  if (ct == NULL) return 0;
  while (*ct == ' ')
    ct++;
  return strncasecmp(ct, "application/json", 16) == 0 &&
         (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

/* ---- POST /models ---- */

typedef struct reg_s {
  const char *url, *model_name, *handler, *runtime;
  int batch_size, max_batch_delay, initial_workers, synchronous, response_timeout, startup_timeout;
} reg_t;

/* The numbers as TorchServe reads them (lenient_int): a value that is not a number, or a
 * negative one, means "not given"; initial_workers <= 0 registers without workers. */
static int parse_register(params_t *p, reg_t *r, wk_err_t *err) {
  if (param(p, "url", &r->url, err) || param(p, "model_name", &r->model_name, err) ||
      param(p, "handler", &r->handler, err) || param(p, "runtime", &r->runtime, err) ||
      lenient_int(p, "batch_size", -1, &r->batch_size, err) ||
      lenient_int(p, "max_batch_delay", -1, &r->max_batch_delay, err) ||
      lenient_int(p, "initial_workers", INT_MIN, &r->initial_workers, err) ||
      lenient_bool(p, "synchronous", 1, &r->synchronous, err) ||
      lenient_int(p, "response_timeout", -1, &r->response_timeout, err) ||
      lenient_int(p, "startup_timeout", -1, &r->startup_timeout, err))
    return WK_EINVAL;
  if (r->batch_size < 1) r->batch_size = -1;
  if (r->batch_size > WK_MAX_BATCH_SIZE)
    return wk_err(err, WK_EINVAL, "batch_size must be at most %d, got %d", WK_MAX_BATCH_SIZE,
                  r->batch_size);
  if (r->max_batch_delay < 0) r->max_batch_delay = -1;
  if (r->response_timeout < 1) r->response_timeout = -1;
  if (r->initial_workers > WK_MAX_WORKERS)
    return wk_err(err, WK_EINVAL, "initial_workers must be at most %d, got %d", WK_MAX_WORKERS,
                  r->initial_workers);
  if (r->url == NULL || r->url[0] == '\0')
    return wk_err(err, WK_EINVAL, "Parameter url is required.");
  if (r->model_name && (r->model_name[0] == '\0' || strchr(r->model_name, '/')))
    return wk_err(err, WK_EINVAL, "model_name must be a non-empty name without '/', got '%.64s'",
                  r->model_name);
  if (r->runtime && strcmp(r->runtime, "python") != 0 && strcmp(r->runtime, "python3") != 0 &&
      strcmp(r->runtime, "LSP") != 0)
    return wk_err(err, WK_EINVAL, "Invalid RuntimeType value: %.64s (expected python or python3)",
                  r->runtime);
  return 0;
}

/* 1 if path has a ".." component. */
static int has_dotdot(const char *path) {
  for (const char *p = path; *p;) {
    size_t n = strcspn(p, "/");
    if (n == 2 && p[0] == '.' && p[1] == '.') return 1;
    p += n;
    while (*p == '/')
      p++;
  }
  return 0;
}

/* Resolves the url of a register request to a path in the model store, downloading it
 * first when it is an allowed http(s) URL (*downloaded set). Replies and returns -1 on
 * failure. */
static int resolve_url(wk_api_t *api, wk_http_req_t *req, const char *url, char *path,
                       size_t pathlen, int *downloaded) {
  const char *store = model_store(api);
  wk_err_t err = {{0}};
  *downloaded = 0;
  if (has_scheme(url)) {
    const char *allowed = setting(api, "allowed_urls");
    int ok = url_allowed(allowed, url, &err);
    if (ok < 0) {
      wk_http_reply_error(req, 500, "InternalServerException", "%s", err.msg);
      return -1;
    }
    if (!ok) {
      wk_http_reply_error(req, 404, "ModelNotFoundException",
                          "Given URL %s does not match any allowed URL(s)%s", url,
                          allowed ? "" : " (allowed_urls is not set, so no URL is allowed)");
      return -1;
    }
    if (!is_http(url)) {
      wk_http_reply_error(req, 400, "BadRequestException",
                          "Only http:// and https:// URLs can be downloaded, got %s", url);
      return -1;
    }
    if (store == NULL) {
      wk_http_reply_error(req, 404, "ModelNotFoundException",
                          "Model store has not been configured.");
      return -1;
    }
    char name[256];
    if (url_file_name(url, name, sizeof name, &err) != 0) {
      wk_http_reply_error(req, 400, "BadRequestException", "%s", err.msg);
      return -1;
    }
    if (wk_fs_join(path, pathlen, store, name) != 0) {
      wk_http_reply_error(req, 400, "BadRequestException", "the model store path is too long");
      return -1;
    }
    int rc =
        wk_download(url, path, WK_MAX_DOWNLOAD_SIZE, download_timeout(api), allow_redirect,
                    &(allow_ctx_t){allowed}, &err);
    if (rc == WK_EEXIST) {
      wk_http_reply_error(req, 500, "InternalServerException", "Model file already exists %s",
                          name);
      return -1;
    }
    if (rc != 0) {
      wk_log_error("download of %s failed: %s", url, err.msg);
      wk_http_reply_error(req, 400, "DownloadArchiveException",
                          "Failed to download archive from: %s: %s", url, err.msg);
      return -1;
    }
    *downloaded = 1;
    wk_log_info("downloaded %s into %s", url, path);
    return 0;
  }
  if (url[0] == '/') {
    wk_http_reply_error(
        req, 400, "BadRequestException",
        "Absolute paths are not allowed in url: %s (name a file or directory inside "
        "the model store)",
        url);
    return -1;
  }
  if (has_dotdot(url)) {
    wk_http_reply_error(req, 400, "BadRequestException",
                        "Relative path is not allowed in url: %s (name a file or directory inside "
                        "the model store)",
                        url);
    return -1;
  }
  if (store == NULL) {
    wk_http_reply_error(req, 404, "ModelNotFoundException", "Model store has not been configured.");
    return -1;
  }
  if (wk_fs_join(path, pathlen, store, url) != 0 || !wk_fs_exists(path)) {
    wk_http_reply_error(req, 404, "ModelNotFoundException",
                        "Model not found at: %s (the model store has no such file or directory)",
                        url);
    return -1;
  }
  return 0;
}

/* Removes what a failed or undone registration downloaded. */
static void forget_download(const char *path, int downloaded) {
  if (downloaded && unlink(path) != 0) wk_log_warn("could not remove %s", path);
}

/* Registers what r names and replies: TorchServe's status, or (v2) Triton's empty load
 * reply. r's strings are the caller's. */
static void register_parsed(wk_api_t *api, wk_http_req_t *req, const reg_t *rp, int v2) {
  reg_t r = *rp;
  wk_err_t err = {{0}};
  char path[PATH_MAX];
  int downloaded = 0;
  /* readiness says "loading" from now on; a request refused for its url is not a load */
  char load_name[256];
  if (r.model_name) snprintf(load_name, sizeof load_name, "%s", r.model_name);
  else wk_registry_name_of_url(r.url, load_name, sizeof load_name);
  long ticket = wk_registry_load_begin(api->registry, load_name, r.url);
  if (resolve_url(api, req, r.url, path, sizeof path, &downloaded) != 0) {
    wk_registry_load_end(api->registry, ticket, NULL);
    return;
  }

  wk_model_load_opts_t o;
  wk_model_load_opts_from_config(&o, api->config);
  o.archive = path;
  o.url = r.url;
  o.name = r.model_name;
  o.loaded_at_startup = 0;
  o.handler = r.handler;
  o.batch_size = r.batch_size;
  o.max_batch_delay_ms = r.max_batch_delay;
  /* TorchServe: without initial_workers, default_workers_per_model if set, else none; a
   * negative count is none too */
  o.initial_workers = r.initial_workers == INT_MIN ? o.default_workers
                                                   : (r.initial_workers > 0 ? r.initial_workers : 0);
  o.response_timeout_s_override = r.response_timeout;
  o.startup_timeout_s = r.startup_timeout > 0 ? r.startup_timeout : 0;
  if (v2) o.initial_workers = -1; /* Triton's load makes it ready: its usual workers */
  if (r.startup_timeout == 0 && o.initial_workers != 0) {
    /* TorchServe takes it literally and its workers time out at once */
    forget_download(path, downloaded);
    wk_registry_load_end(api->registry, ticket, NULL);
    wk_http_reply_error(req, 500, "InternalServerException",
                        "Failed to start workers for %s: startup_timeout=0 leaves them no time to "
                        "start; give the seconds a worker may take to load",
                        r.url);
    return;
  }

  wk_model_t *m = NULL;
  int rc = wk_model_load(&o, &m, &err);
  if (rc != 0) {
    forget_download(path, downloaded);
    /* a worker that failed to start (its handler raised, it timed out) is TorchServe's 500 */
    int internal = rc == WK_EIO || rc == WK_ENOMEM || rc == WK_EINTERNAL || rc == WK_EWORKER ||
                   rc == WK_ETIMEDOUT;
    /* the model never reached the registry: the operator's view remembers why */
    /* out of memory while loading (a worker's MemoryError included) is TorchServe's 507 */
    int status = rc == WK_ENOMEM ? 507 : internal ? 500 : 400;
    wk_status_note_error(r.model_name ? r.model_name : r.url, NULL, status, err.msg);
    wk_registry_load_end(api->registry, ticket, err.msg);
    wk_http_reply_error(req, status, internal ? "InternalServerException" : "InvalidModelException",
                        "%s", err.msg);
    return;
  }
  char name[256], version[128];
  snprintf(name, sizeof name, "%s", wk_model_name(m));
  snprintf(version, sizeof version, "%s", wk_model_version(m));
  int workers = wk_model_min_workers(m);
  rc = wk_registry_add(api->registry, m, &err);
  /* a version already registered stands: that is no failed load */
  wk_registry_load_end(api->registry, ticket, rc != 0 && rc != WK_EEXIST ? err.msg : NULL);
  if (rc != 0) {
    wk_model_free(m);
    forget_download(path, downloaded);
    wk_http_reply_error(req, rc == WK_EEXIST ? 409 : 507,
                        rc == WK_EEXIST ? "ConflictStatusException"
                                        : "InsufficientStorageException",
                        "%s", err.msg);
    return;
  }
  wk_log_info("model %s version %s registered (%s, %d workers)", name, version, r.url, workers);
  if (v2)
    wk_http_reply_json(req, 200, "{}\n", 3); /* Triton's load: nothing to say */
  else if (workers == 0)
    reply_status(
        req, 200,
        "Model \"%s\" Version: %s registered with 0 initial workers. Use scale workers API "
        "to add workers for the model.",
        name, version);
  else if (!r.synchronous)
    reply_status(req, 202, "Processing worker updates...");
  else
    reply_status(req, 200, "Model \"%s\" Version: %s registered with %d initial workers", name,
                 version, workers);
}

/* A registration runs on a thread of its own ([11] part 6): unpacking a large archive or a
 * slow download must not hold the management port's one event thread, so listing,
 * describing and scaling go on meanwhile. The reply comes from that thread (the
 * connection waits suspended, as a prediction's does); wk_api_shutdown waits for it. */
typedef struct reg_job_s {
  wk_api_t *api;
  wk_http_req_t *req;
  reg_t r;
  int v2;
  char *url, *model_name, *handler, *runtime; /* r's strings, owned */
} reg_job_t;

static void reg_job_free(reg_job_t *j) {
  free(j->url);
  free(j->model_name);
  free(j->handler);
  free(j->runtime);
  free(j);
}

static void *register_thread(void *arg) {
  reg_job_t *j = arg;
  wk_api_t *api = j->api;
  register_parsed(api, j->req, &j->r, j->v2);
  reg_job_free(j);
  pthread_mutex_lock(&api->reg_lock);
  api->registering--;
  pthread_cond_broadcast(&api->reg_cond);
  pthread_mutex_unlock(&api->reg_lock);
  return NULL;
}

static char *dup_opt(const char *s, int *failed) {
  if (s == NULL) return NULL;
  char *d = strdup(s);
  if (d == NULL) *failed = 1;
  return d;
}

/* Registers r on its own thread; r's strings are copied. When no thread can be had, the
 * registration runs here instead (slower for everyone else, but done). */
static void register_async(wk_api_t *api, wk_http_req_t *req, const reg_t *r, int v2) {
  reg_job_t *j = calloc(1, sizeof *j);
  int failed = j == NULL;
  if (j) {
    j->api = api;
    j->req = req;
    j->r = *r;
    j->v2 = v2;
    j->r.url = j->url = dup_opt(r->url, &failed);
    j->r.model_name = j->model_name = dup_opt(r->model_name, &failed);
    j->r.handler = j->handler = dup_opt(r->handler, &failed);
    j->r.runtime = j->runtime = dup_opt(r->runtime, &failed);
  }
  pthread_attr_t attr;
  pthread_t t;
  if (!failed && pthread_attr_init(&attr) == 0) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&api->reg_lock);
    api->registering++;
    pthread_mutex_unlock(&api->reg_lock);
    int rc = pthread_create(&t, &attr, register_thread, j);
    pthread_attr_destroy(&attr);
    if (rc == 0) return;
    pthread_mutex_lock(&api->reg_lock);
    api->registering--;
    pthread_mutex_unlock(&api->reg_lock);
  }
  if (j) reg_job_free(j);
  wk_log_warn("registering %s on the management thread: no thread for it", r->url);
  register_parsed(api, req, r, v2);
}

static void register_model(wk_api_t *api, wk_http_req_t *req) {
  if (!model_api_enabled(api)) {
    model_api_disabled(req);
    return;
  }
  wk_err_t err = {{0}};
  params_t p = {.req = req};
  if (is_json(req)) {
    size_t len;
    const char *body = wk_http_req_body(req, &len);
    json_error_t jerr;
    p.body = len ? json_loadb(body, len, 0, &jerr) : json_object();
    if (p.body == NULL || !json_is_object(p.body)) {
      if (p.body)
        wk_err(&err, WK_EINVAL, "the body must be a JSON object");
      else
        wk_err(&err, WK_EINVAL, "the body is not valid JSON: %s (line %d, column %d)", jerr.text,
               jerr.line, jerr.column);
      json_decref(p.body);
      wk_http_reply_error(req, 400, "BadRequestException", "%s", err.msg);
      return;
    }
  }
  reg_t r;
  if (parse_register(&p, &r, &err) != 0) {
    wk_http_reply_error(req, 400, "BadRequestException", "%s", err.msg);
    json_decref(p.body);
    return;
  }
  register_async(api, req, &r, 0);
  json_decref(p.body);
}

/* ---- PUT /models/{m}[/{v}] ---- */

static void scale_model(wk_api_t *api, wk_http_req_t *req, const char *name, const char *version) {
  params_t p = {.req = req};
  wk_err_t err = {{0}};
  int min, max, sync, timeout;
  if (version == NULL) version = wk_http_req_arg(req, "model_version");
  /* read and checked in TorchServe's order: numbers leniently, max < min, the model, and
   * then what wick cannot do (a negative count) */
  lenient_int(&p, "min_worker", 1, &min, &err);
  lenient_int(&p, "max_worker", min, &max, &err);
  lenient_bool(&p, "synchronous", 0, &sync, &err);
  lenient_int(&p, "timeout", -1, &timeout, &err); /* TorchServe reads it and ignores it */
  (void)timeout;
  if (max < min) {
    wk_http_reply_error(req, 400, "BadRequestException",
                        "max_worker cannot be less than min_worker.");
    return;
  }
  wk_model_t *m = wk_registry_acquire(api->registry, name, version);
  if (m == NULL) {
    model_not_found(api, req, name, version);
    return;
  }
  if (min < 0 || max > WK_MAX_WORKERS) {
    wk_registry_release(api->registry, m);
    wk_http_reply_error(req, 400, "BadRequestException",
                        "min_worker and max_worker must be from 0 to %d, got %d and %d",
                        WK_MAX_WORKERS, min, max);
    return;
  }
  int rc = wk_model_scale(m, min, max, sync, &err);
  int live = wk_model_live_workers(m);
  wk_registry_release(api->registry, m);
  if (rc != 0) {
    int bad = rc == WK_EINVAL || rc == WK_ETOOBIG;
    wk_http_reply_error(req, bad ? 400 : 500,
                        bad ? "BadRequestException" : "InternalServerException",
                        "Failed to start workers for model %s version: %s: %s", name,
                        version ? version : "default", err.msg);
    return;
  }
  if (!sync)
    reply_status(req, 202, "Processing worker updates...");
  else if (live < min)
    reply_status(req, 206, "Workers scaling in progress...");
  else if (version)
    reply_status(req, 200, "Workers scaled to %d for model: %s, version: %s", min, name, version);
  else
    reply_status(req, 200, "Workers scaled to %d for model: %s", min, name);
}

/* ---- DELETE /models/{m}[/{v}] ---- */

static void unregister_model(wk_api_t *api, wk_http_req_t *req, const char *name,
                             const char *version) {
  if (!model_api_enabled(api)) {
    model_api_disabled(req);
    return;
  }
  wk_err_t err = {{0}};
  wk_model_t *m = NULL;
  int rc = wk_registry_remove(api->registry, name, version, &m, &err);
  if (rc == WK_EINVAL) {
    wk_http_reply_error(req, 403, "InvalidModelVersionException", "%s", err.msg);
    return;
  }
  if (rc != 0) {
    /* a name that only failed to load: unregistering it forgets the failure, so that
     * readiness stops reporting it */
    if (version == NULL && wk_registry_load_forget(api->registry, name) > 0) {
      wk_log_info("model %s: its failed load is forgotten", name);
      reply_status(req, 200, "Model \"%s\" failed to load; that failure is forgotten", name);
      return;
    }
    model_not_found(api, req, name, version);
    return;
  }
  /* A version registered from an http(s) URL was downloaded into the store: remove the file
   * too, as TorchServe does, so that registering it again downloads it again. */
  char path[PATH_MAX] = "";
  const char *url = wk_model_url(m);
  char file[256];
  const char *store = model_store(api);
  if (url && store && is_http(url) && url_file_name(url, file, sizeof file, &err) == 0)
    wk_fs_join(path, sizeof path, store, file);
  char version_copy[128];
  snprintf(version_copy, sizeof version_copy, "%s", wk_model_version(m));
  wk_model_free(m); /* answers what is still queued with 503, joins the workers */
  if (path[0] && unlink(path) != 0) wk_log_warn("could not remove the downloaded archive %s", path);
  wk_log_info("model %s version %s unregistered", name, version_copy);
  reply_status(req, 200, "Model \"%s\" unregistered", name);
}

/* ---- PUT /models/{m}/{v}/set-default ---- */

static void set_default(wk_api_t *api, wk_http_req_t *req, const char *name, const char *version) {
  wk_err_t err = {{0}};
  int rc = wk_registry_set_default(api->registry, name, version, &err);
  if (rc != 0) {
    int no_name = !wk_registry_has_name(api->registry, name);
    wk_http_reply_error(req, 404,
                        no_name ? "ModelNotFoundException" : "ModelVersionNotFoundException", "%s",
                        err.msg);
    return;
  }
  reply_status(req, 200, "Default version successfully updated for model \"%s\" to \"%s\"", name,
               version);
}

/* ---- GET /models ---- */

typedef struct list_ctx_s {
  long start, limit;
  wk_buf_t b;
} list_ctx_t;

/* One entry per model name, with its default version's URL. Registry read lock held.
 * nextPageToken as TorchServe gives it: whenever start + limit does not pass the number
 * of models, so a page that ends exactly at the last model has one too (tests/compat). */
static void list_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  list_ctx_t *c = ud;
  wk_buf_puts(&c->b, "{\n  \"models\": [");
  long idx = 0, shown = 0, total = 0;
  for (size_t i = 0; i < n; i++) total += is_default[i] != 0;
  for (size_t i = 0; i < n && shown < c->limit; i++) {
    if (!is_default[i]) continue;
    if (idx++ < c->start) continue;
    wk_buf_puts(&c->b,
                shown++ ? ",\n    {\n      \"modelName\": " : "\n    {\n      \"modelName\": ");
    wk_buf_json_str(&c->b, wk_model_name(models[i]));
    wk_buf_puts(&c->b, ",\n      \"modelUrl\": ");
    wk_buf_json_str(&c->b, wk_model_url(models[i]));
    wk_buf_puts(&c->b, "\n    }");
  }
  wk_buf_puts(&c->b, shown ? "\n  ]" : "]");
  if (c->start + c->limit <= total)
    wk_buf_printf(&c->b, ",\n  \"nextPageToken\": \"%ld\"", c->start + c->limit);
  wk_buf_puts(&c->b, "\n}\n");
}

static void list_models(wk_api_t *api, wk_http_req_t *req) {
  list_ctx_t c = {.start = 0, .limit = 100, .b = WK_BUF_INIT};
  /* as TorchServe: not a number means the default; limit outside 0..100 is 100, a negative
   * token 0 */
  params_t p = {.req = req};
  wk_err_t err = {{0}};
  int limit, start;
  lenient_int(&p, "limit", 100, &limit, &err);
  lenient_int(&p, "next_page_token", 0, &start, &err);
  c.limit = limit < 0 || limit > 100 ? 100 : limit;
  c.start = start < 0 ? 0 : start;

  wk_registry_visit(api->registry, list_visit, &c);
  reply_buf(req, 200, &c.b);
}

/* ---- GET /models/{m}[/{v}|/all] ---- */

typedef struct describe_ctx_s {
  const char *name, *version;
  const char *customized; /* JSON for customizedMetadata, or NULL */
  int all, shown;
  wk_buf_t b;
} describe_ctx_t;

static void describe_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  describe_ctx_t *c = ud;
  for (size_t i = 0; i < n; i++) {
    wk_model_t *m = models[i];
    if (strcmp(wk_model_name(m), c->name) != 0) continue;
    if (!c->all && (c->version ? strcmp(wk_model_version(m), c->version) != 0 : !is_default[i]))
      continue;
    wk_buf_puts(&c->b, c->shown++ ? ",\n  " : "\n  ");
    wk_model_describe(m, &c->b);
    /* the object ends in "\n  }": customizedMetadata goes before that */
    if (c->customized && c->b.len >= 4 && memcmp(c->b.data + c->b.len - 4, "\n  }", 4) == 0) {
      c->b.len -= 4;
      wk_buf_puts(&c->b, ",\n    \"customizedMetadata\": ");
      wk_buf_puts(&c->b, c->customized);
      wk_buf_puts(&c->b, "\n  }");
    }
  }
}

/* customized=true: the version's customizedMetadata, asked before the registry is visited
 * (the handler's answer comes through the queue). NULL when not asked or not there. */
static char *customized(wk_api_t *api, wk_http_req_t *req, const char *name, const char *version,
                        wk_err_t *err, int *failed) {
  const char *q = wk_http_req_arg(req, "customized");
  *failed = 0;
  if (q == NULL || strcasecmp(q, "true") != 0 || (version && strcmp(version, "all") == 0)) return NULL;
  wk_model_t *m = wk_registry_acquire(api->registry, name, version);
  if (m == NULL) return NULL;
  char *text = NULL;
  size_t len = 0;
  int rc = wk_model_customized(m, 30000, &text, &len, err);
  wk_registry_release(api->registry, m);
  if (rc != 0) {
    *failed = 1;
    return NULL;
  }
  /* JSON as it is (null: {}); other text as a JSON string, as TorchServe keeps it */
  json_t *j = text ? json_loadb(text, len, JSON_DECODE_ANY, NULL) : NULL;
  char *out = NULL;
  if (j == NULL || json_is_null(j)) {
    json_decref(j);
    int none = len == 0 || (len == 4 && memcmp(text, "null", 4) == 0);
    j = none ? json_object() : json_stringn(text, len);
  }
  out = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(j);
  free(text);
  return out;
}

static void describe(wk_api_t *api, wk_http_req_t *req, const char *name, const char *version) {
  wk_err_t err = {{0}};
  int failed;
  char *meta = customized(api, req, name, version, &err, &failed);
  if (failed) {
    wk_http_reply_error(req, 500, "InternalServerException", "customized=true: %s", err.msg);
    return;
  }
  describe_ctx_t c = {.name = name, .version = version, .b = WK_BUF_INIT, .customized = meta};
  c.all = version && strcmp(version, "all") == 0;
  wk_buf_puts(&c.b, "[");
  wk_registry_visit(api->registry, describe_visit, &c);
  if (c.shown == 0) {
    wk_buf_destroy(&c.b);
    free(meta);
    model_not_found(api, req, name, c.all ? NULL : version);
    return;
  }
  wk_buf_puts(&c.b, "\n]\n");
  free(meta);
  reply_buf(req, 200, &c.b);
}

void wk_mgmt_list(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  (void)a;
  list_models(api, req);
}

void wk_mgmt_register(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  (void)a;
  register_model(api, req);
}

void wk_mgmt_describe(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  describe(api, req, a->model_name, a->model_version);
}

void wk_mgmt_scale(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  scale_model(api, req, a->model_name, a->model_version);
}

void wk_mgmt_unregister(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  unregister_model(api, req, a->model_name, a->model_version);
}

void wk_mgmt_set_default(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  set_default(api, req, a->model_name, a->model_version);
}

/* ---- Triton's model repository API (inference port, /v2/repository/...) ---- */

typedef struct repo_ctx_s {
  json_t *list;
  int ready_only;
} repo_ctx_t;

static void repo_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  (void)is_default;
  repo_ctx_t *c = ud;
  char why[256] = "";
  for (size_t i = 0; i < n; i++) {
    int ready = wk_model_healthy(models[i], why, sizeof why);
    if (c->ready_only && !ready) continue;
    json_array_append_new(c->list, json_pack("{s:s,s:s,s:s,s:s}", "name", wk_model_name(models[i]),
                                             "version", wk_model_version(models[i]), "state",
                                             ready ? "READY" : "UNAVAILABLE", "reason",
                                             ready ? "" : why));
  }
}

/* The name an entry of the model store registers under: "x.mar", "x.tar.gz", "x.tgz" and
 * a folder x are x; anything else NULL. */
static int store_name(const char *entry, int is_dir, char *out, size_t cap) {
  static const char *const ext[] = {".mar", ".tar.gz", ".tgz"};
  size_t n = strlen(entry);
  if (entry[0] == '.') return 0;
  if (is_dir) {
    snprintf(out, cap, "%s", entry);
    return 1;
  }
  for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
    size_t e = strlen(ext[i]);
    if (n > e && strcmp(entry + n - e, ext[i]) == 0 && n - e < cap) {
      memcpy(out, entry, n - e);
      out[n - e] = '\0';
      return 1;
    }
  }
  return 0;
}

/* The loads of names not registered: LOADING, or UNAVAILABLE with the failure as reason
 * (copied out under the loads' lock, checked against the registry after). */
typedef struct {
  json_t *list;
} loads_ctx_t;

static void copy_loads(const wk_load_info_t *loads, size_t n, void *ud) {
  loads_ctx_t *c = ud;
  for (size_t i = 0; i < n; i++)
    json_array_append_new(c->list, json_pack("{s:s,s:s,s:s}", "name", loads[i].name, "state",
                                             loads[i].state == WK_LOAD_LOADING ? "LOADING"
                                                                               : "UNAVAILABLE",
                                             "reason", loads[i].reason));
}

/* POST /v2/repository/index [{"ready": true}]: the registered versions with their state,
 * the loads running or failed, then the model store's archives that are not registered
 * (UNAVAILABLE, "unloaded"). */
void wk_mgmt_repo_index(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  (void)a;
  size_t len;
  const char *body = wk_http_req_body(req, &len);
  json_t *in = len ? json_loadb(body, len, 0, NULL) : NULL;
  if (len && !json_is_object(in)) {
    json_decref(in);
    wk_http_reply_error(req, 400, "BadRequestException",
                        "the body must be a JSON object such as {\"ready\": true}");
    return;
  }
  repo_ctx_t c = {json_array(), json_is_true(json_object_get(in, "ready"))};
  json_decref(in);
  wk_registry_visit(api->registry, repo_visit, &c);
  loads_ctx_t lc = {json_array()};
  wk_registry_visit_loads(api->registry, copy_loads, &lc);
  size_t k;
  json_t *entry;
  json_array_foreach(lc.list, k, entry) {
    const char *name = json_string_value(json_object_get(entry, "name"));
    if (!c.ready_only && !wk_registry_has_name(api->registry, name))
      json_array_append(c.list, entry);
  }
  const char *store = model_store(api);
  DIR *d = store && !c.ready_only ? opendir(store) : NULL;
  for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
    char path[PATH_MAX], name[256];
    if (wk_fs_join(path, sizeof path, store, e->d_name) != 0 ||
        !store_name(e->d_name, wk_fs_is_dir(path), name, sizeof name) ||
        wk_registry_has_name(api->registry, name) ||
        wk_registry_load_state(api->registry, name, NULL, 0) != WK_LOAD_NONE)
      continue;
    json_array_append_new(c.list, json_pack("{s:s,s:s,s:s}", "name", name, "state", "UNAVAILABLE",
                                             "reason", "unloaded"));
  }
  if (d) closedir(d);
  json_decref(lc.list);
  char *text = json_dumps(c.list, JSON_COMPACT);
  json_decref(c.list);
  if (text == NULL) {
    wk_http_reply_error(req, 500, "InternalServerException", "out of memory");
    return;
  }
  wk_http_reply(req, 200, "application/json", text, strlen(text));
}

/* POST /v2/repository/models/{m}/load: registers m.mar (m.tar.gz, m.tgz, or the folder m)
 * of the model store under the name m with its usual workers; a model already registered
 * is left as it is. */
void wk_mgmt_repo_load(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  if (!model_api_enabled(api)) {
    model_api_disabled(req);
    return;
  }
  if (wk_registry_has_name(api->registry, a->model_name)) {
    wk_http_reply_json(req, 200, "{}\n", 3);
    return;
  }
  static const char *const forms[] = {".mar", ".tar.gz", ".tgz", ""}; /* after the name */
  const char *store = model_store(api);
  char file[512] = "", path[PATH_MAX];
  for (size_t i = 0; store && i < sizeof forms / sizeof forms[0] && !file[0]; i++) {
    snprintf(file, sizeof file, "%s%s", a->model_name, forms[i]);
    if (strchr(a->model_name, '/') || a->model_name[0] == '.' ||
        wk_fs_join(path, sizeof path, store, file) != 0 || !wk_fs_exists(path))
      file[0] = '\0';
  }
  if (!file[0]) {
    wk_http_reply_error(req, 404, "ModelNotFoundException",
                        "failed to load '%s': the model store has no %s.mar, %s.tar.gz or folder %s",
                        a->model_name, a->model_name, a->model_name, a->model_name);
    return;
  }
  reg_t r = {.url = file, .model_name = a->model_name, .batch_size = -1, .max_batch_delay = -1,
             .initial_workers = INT_MIN, .synchronous = 1, .response_timeout = -1,
             .startup_timeout = -1};
  register_async(api, req, &r, 1);
}

typedef struct versions_ctx_s {
  const char *name;
  char versions[WK_MAX_MODELS][128];
  int is_default[WK_MAX_MODELS];
  size_t n;
} versions_ctx_t;

static void versions_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  versions_ctx_t *c = ud;
  for (size_t i = 0; i < n && c->n < WK_MAX_MODELS; i++) {
    if (strcmp(wk_model_name(models[i]), c->name) != 0) continue;
    snprintf(c->versions[c->n], sizeof c->versions[0], "%s", wk_model_version(models[i]));
    c->is_default[c->n++] = is_default[i];
  }
}

/* POST /v2/repository/models/{m}/unload: unregisters every version of m (the default
 * last), as DELETE /models does one at a time. */
void wk_mgmt_repo_unload(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  if (!model_api_enabled(api)) {
    model_api_disabled(req);
    return;
  }
  versions_ctx_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    wk_http_reply_error(req, 500, "InternalServerException", "out of memory");
    return;
  }
  c->name = a->model_name;
  wk_registry_visit(api->registry, versions_visit, c);
  if (c->n == 0) {
    free(c);
    wk_http_reply_error(req, 400, "ModelNotFoundException", "failed to unload '%s': it is not loaded",
                        a->model_name);
    return;
  }
  for (int pass = 0; pass < 2; pass++) /* the others first: the default goes once alone */
    for (size_t i = 0; i < c->n; i++) {
      if (c->is_default[i] != pass) continue;
      wk_model_t *m = NULL;
      wk_err_t err = {{0}};
      if (wk_registry_remove(api->registry, a->model_name, c->versions[i], &m, &err) == 0) {
        wk_model_free(m);
        wk_log_info("model %s version %s unloaded (v2 repository API)", a->model_name, c->versions[i]);
      }
    }
  free(c);
  wk_http_reply_json(req, 200, "{}\n", 3);
}
