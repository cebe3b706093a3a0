/* The routes of the inference and metrics ports (api/routes.c matches requests to them):
 * TorchServe's predictions, explanations and ping; KServe v1 and v2; Prometheus metrics.
 * Predictions go to serve/ as a plain request with a sink that replies (api/bridge.c). */
#include "api/api.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/bridge.h"
#include "api/handlers.h"
#include "core/buf.h"
#include "core/limits.h"
#include "core/log.h"
#include "serve/host_metrics.h"

static void reply_buf(wk_http_req_t *req, int status, const char *type, wk_buf_t *b) {
  size_t len;
  char *body = wk_buf_steal(b, &len);
  wk_http_reply(req, status, type, body, len);
}

/* 404 as TorchServe answers it: ModelVersionNotFoundException when the model is there but
 * not that version (tests/compat found it). */
static void model_not_found(wk_api_t *api, wk_http_req_t *req, const char *name,
                            const char *version) {
  if (version && wk_registry_has_name(api->registry, name))
    wk_http_reply_error(req, 404, "ModelVersionNotFoundException",
                        "Model version: %s does not exist for model: %s", version, name);
  else
    wk_http_reply_error(req, 404, "ModelNotFoundException", "Model not found: %s", name);
}

void wk_api_init(wk_api_t *api, wk_registry_t *registry) {
  memset(api, 0, sizeof *api);
  api->registry = registry;
  pthread_rwlock_init(&api->lock, NULL);
  pthread_mutex_init(&api->reg_lock, NULL);
  pthread_cond_init(&api->reg_cond, NULL);
}

void wk_api_shutdown(wk_api_t *api) {
  pthread_rwlock_wrlock(&api->lock);
  api->stopping = 1;
  pthread_rwlock_unlock(&api->lock);
  pthread_mutex_lock(&api->reg_lock);
  if (api->registering > 0)
    wk_log_info("waiting for %d registration(s) still running", api->registering);
  while (api->registering > 0) pthread_cond_wait(&api->reg_cond, &api->reg_lock);
  pthread_mutex_unlock(&api->reg_lock);
}

void wk_api_destroy(wk_api_t *api) {
  pthread_rwlock_destroy(&api->lock);
  pthread_mutex_destroy(&api->reg_lock);
  pthread_cond_destroy(&api->reg_cond);
}

/* ---- health ---- */

static void ping_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  (void)is_default;
  char why[256];
  for (size_t i = 0; i < n; i++)
    if (!wk_model_healthy(models[i], why, sizeof why)) *(int *)ud = 0;
}

int wk_api_healthy(wk_api_t *api) {
  int healthy = 1;
  wk_registry_visit(api->registry, ping_visit, &healthy);
  return healthy;
}

void wk_api_ping(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  (void)a;
  int healthy = wk_api_healthy(api);
  const char *body = healthy ? "{\n  \"status\": \"Healthy\"\n}\n" : "{\n  \"status\": \"Unhealthy\"\n}\n";
  wk_http_reply_json(req, healthy ? 200 : 500, body, strlen(body));
}

/* ---- predictions ---- */

typedef enum { PREDICT, EXPLAIN, PREDICT_V1, EXPLAIN_V1, INFER_V2, EXPLAIN_V2 } entry_t;

/* Hands req to m's queue as serve/'s plain request, with a sink that replies to req. */
static void submit(wk_model_t *m, wk_http_req_t *req, wk_api_errors_t errors, entry_t entry) {
  wk_sink_t *sink = wk_api_sink_new(req, errors);
  if (sink == NULL) {
    if (errors == WK_API_ERRORS_KSERVE) wk_http_reply_kserve_error(req, 500, "InternalServerException", "out of memory");
    else wk_http_reply_error(req, 500, "InternalServerException", "out of memory");
    return;
  }
  wk_api_request_t r;
  wk_api_request_from_http(req, &r);
  if (entry == INFER_V2 || entry == EXPLAIN_V2) r.r.v2 = wk_http_req_decoded(req);
  switch (entry) {
  case PREDICT: wk_model_predict(m, &r.r, sink, 0); break;
  case EXPLAIN: wk_model_predict(m, &r.r, sink, 1); break;
  case PREDICT_V1: wk_model_predict_v1(m, &r.r, sink, 0); break;
  case EXPLAIN_V1: wk_model_predict_v1(m, &r.r, sink, 1); break;
  case INFER_V2: wk_model_infer_v2(m, &r.r, sink, 0); break;
  case EXPLAIN_V2: wk_model_infer_v2(m, &r.r, sink, 1); break;
  }
}

void wk_api_predictions(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  wk_model_t *m = wk_registry_acquire(api->registry, a->model_name, a->model_version);
  if (m == NULL) {
    model_not_found(api, req, a->model_name, a->model_version);
    return;
  }
  submit(m, req, WK_API_ERRORS_TS, a->arg ? EXPLAIN : PREDICT);
  wk_registry_release(api->registry, m);
}

int wk_api_model_exists(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  wk_model_t *m = wk_registry_acquire(api->registry, a->model_name, a->model_version);
  if (m == NULL) model_not_found(api, req, a->model_name, a->model_version);
  else wk_registry_release(api->registry, m);
  return m != NULL;
}

static void startup_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  const char **only = ud;
  for (size_t i = 0; i < n; i++) {
    if (!is_default[i] || !wk_model_loaded_at_startup(models[i])) continue;
    /* one name, or "" once a second one shows up */
    only[0] = only[0] == NULL ? wk_model_name(models[i]) : "";
  }
}

/* SageMaker's route (TorchServe answers it): the model is the model_name argument, or the
 * one model loaded at startup. */
void wk_api_invocations(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  wk_route_args_t named = *a;
  char only[512] = "";
  named.model_name = wk_http_req_arg(req, "model_name");
  if (named.model_name == NULL || named.model_name[0] == '\0') {
    const char *one = NULL;
    wk_registry_visit(api->registry, startup_visit, &one);
    if (one != NULL && one[0] != '\0') snprintf(only, sizeof only, "%s", one);
    named.model_name = only[0] ? only : NULL;
  }
  if (named.model_name == NULL) {
    wk_http_reply_error(req, 400, "BadRequestException",
                        "Parameter model_name is required (one model was not loaded at startup)");
    return;
  }
  wk_api_predictions(api, req, &named);
}

/* ---- KServe v1 ---- */

static void v1_list_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  wk_buf_t *b = ud;
  int first = 1;
  for (size_t i = 0; i < n; i++) {
    if (!is_default[i]) continue;
    if (!first) wk_buf_puts(b, ", ");
    first = 0;
    wk_buf_json_str(b, wk_model_name(models[i]));
  }
}

void wk_api_v1_list(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  (void)a;
  wk_buf_t b = WK_BUF_INIT;
  wk_buf_puts(&b, "{\"models\": [");
  wk_registry_visit(api->registry, v1_list_visit, &b);
  wk_buf_puts(&b, "]}\n");
  reply_buf(req, 200, "application/json", &b);
}

/* The version a KServe route names, acquired (release it), or NULL once 404 is answered. */
static wk_model_t *kserve_model(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  wk_model_t *m = wk_registry_acquire(api->registry, a->model_name, a->model_version);
  if (m == NULL && a->model_version && wk_registry_has_name(api->registry, a->model_name))
    wk_http_reply_kserve_error(req, 404, "ModelVersionNotFoundException",
                               "model %s has no version %s", a->model_name, a->model_version);
  else if (m == NULL)
    wk_http_reply_kserve_error(req, 404, "ModelNotFoundException", "model %s is not registered",
                               a->model_name);
  return m;
}

/* {"name": ..., "ready": ...}: 200 when ready; when not, v2's 400 (as the protocol has it)
 * or v1's 503 (as KServe's model server answers), with the state (loading, failed,
 * unhealthy) and why. A name still loading, or whose load failed, is not ready rather than
 * unknown ([13] part 3). */
static void model_ready(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a, int v2) {
  char why[512] = "";
  const char *state = "ready";
  wk_model_t *m = wk_registry_acquire(api->registry, a->model_name, a->model_version);
  if (m != NULL) {
    if (!wk_model_healthy(m, why, sizeof why)) state = wk_model_failed(m) ? "failed" : "unhealthy";
    wk_registry_release(api->registry, m);
  } else if (a->model_version == NULL || !wk_registry_has_name(api->registry, a->model_name)) {
    wk_load_state_t ls = wk_registry_load_state(api->registry, a->model_name, why, sizeof why);
    if (ls == WK_LOAD_NONE) {
      kserve_model(api, req, a); /* answers 404 */
      return;
    }
    state = ls == WK_LOAD_LOADING ? "loading" : "failed";
  } else {
    kserve_model(api, req, a); /* that version is unknown: 404 */
    return;
  }
  int ready = strcmp(state, "ready") == 0;
  wk_buf_t b = WK_BUF_INIT;
  wk_buf_puts(&b, "{\"name\": ");
  wk_buf_json_str(&b, a->model_name);
  wk_buf_printf(&b, ", \"ready\": %s", ready ? "true" : "false");
  if (!ready) {
    wk_buf_printf(&b, ", \"state\": \"%s\", \"reason\": ", state);
    wk_buf_json_str(&b, why);
  }
  wk_buf_puts(&b, "}\n");
  reply_buf(req, ready ? 200 : v2 ? 400 : 503, "application/json", &b);
}

void wk_api_v1_ready(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  model_ready(api, req, a, 0);
}

/* :predict / :explain (arg), and v2's infer: the model's own entry point. */
static void kserve_submit(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a, entry_t e) {
  wk_model_t *m = kserve_model(api, req, a);
  if (m == NULL) return;
  submit(m, req, WK_API_ERRORS_KSERVE, e);
  wk_registry_release(api->registry, m);
}

void wk_api_v1_predict(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  kserve_submit(api, req, a, a->arg ? EXPLAIN_V1 : PREDICT_V1);
}

/* ---- KServe v2 / Open Inference Protocol ---- */

void wk_api_v2_server(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  (void)api, (void)a;
  const char *body = "{\"name\": \"wick\", \"version\": \"" WK_VERSION "\", \"extensions\": "
                     "[\"binary_tensor_data\"]}\n";
  wk_http_reply_json(req, 200, body, strlen(body));
}

void wk_api_v2_live(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  (void)api, (void)a;
  wk_http_reply_json(req, 200, "{\"live\": true}\n", 15);
}

static void ready_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  (void)is_default;
  char why[256];
  for (size_t i = 0; i < n; i++)
    if (!wk_model_healthy(models[i], why, sizeof why)) *(int *)ud = 0;
}

typedef struct {
  char names[WK_MAX_LOADS][128];
  size_t n;
} failed_t;

static void loads_visit(const wk_load_info_t *loads, size_t n, void *ud) {
  failed_t *f = ud;
  for (size_t i = 0; i < n; i++)
    if (loads[i].state == WK_LOAD_FAILED && f->n < WK_MAX_LOADS)
      snprintf(f->names[f->n++], sizeof f->names[0], "%s", loads[i].name);
}

/* Ready when every registered version is healthy and no model failed to load (Triton's
 * strict readiness): a pod whose model failed to load is not ready. A registration still
 * running, or a failed new version of a name that is served, does not take a serving pod
 * out of its service (per-model readiness and /status.json show those). */
int wk_api_ready(wk_api_t *api) {
  int ready = 1;
  wk_registry_visit(api->registry, ready_visit, &ready);
  static __thread failed_t f; /* 8 kB: not on an HTTP thread's stack */
  f.n = 0;
  wk_registry_visit_loads(api->registry, loads_visit, &f);
  for (size_t i = 0; i < f.n && ready; i++)
    if (!wk_registry_has_name(api->registry, f.names[i])) ready = 0;
  return ready;
}

void wk_api_v2_ready(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  (void)a;
  int ready = wk_api_ready(api);
  const char *body = ready ? "{\"ready\": true}\n" : "{\"ready\": false}\n";
  wk_http_reply_json(req, ready ? 200 : 400, body, strlen(body)); /* 4xx is false */
}

void wk_api_v2_metadata(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  wk_model_t *m = kserve_model(api, req, a);
  if (m == NULL) return;
  wk_buf_t b = WK_BUF_INIT;
  wk_model_v2_metadata(m, &b);
  wk_buf_putc(&b, '\n');
  wk_registry_release(api->registry, m);
  reply_buf(req, 200, "application/json", &b);
}

void wk_api_v2_model_ready(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  model_ready(api, req, a, 1);
}

void wk_api_v2_config(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  wk_model_t *m = kserve_model(api, req, a);
  if (m == NULL) return;
  wk_buf_t b = WK_BUF_INIT;
  wk_model_v2_config(m, &b);
  wk_buf_putc(&b, '\n');
  wk_registry_release(api->registry, m);
  reply_buf(req, 200, "application/json", &b);
}

typedef struct {
  const char *name, *version; /* NULL: any */
  json_t *list;
} stats_ctx_t;

static void stats_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  (void)is_default;
  stats_ctx_t *c = ud;
  for (size_t i = 0; i < n; i++)
    if ((c->name == NULL || strcmp(wk_model_name(models[i]), c->name) == 0) &&
        (c->version == NULL || strcmp(wk_model_version(models[i]), c->version) == 0))
      wk_model_v2_stats(models[i], c->list);
}

/* Triton's statistics: every version, a model's versions, or one version. */
void wk_api_v2_stats(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  if (a->model_name) { /* 404 for what is not there */
    wk_model_t *m = kserve_model(api, req, a);
    if (m == NULL) return;
    wk_registry_release(api->registry, m);
  }
  stats_ctx_t c = {a->model_name, a->model_version, json_array()};
  wk_registry_visit(api->registry, stats_visit, &c);
  json_t *root = json_pack("{s:o}", "model_stats", c.list);
  char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  if (text == NULL) {
    wk_http_reply_error(req, 500, "InternalServerException", "out of memory");
    return;
  }
  wk_http_reply(req, 200, "application/json", text, strlen(text));
}

void wk_api_v2_infer(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  wk_http_req_compressible(req); /* as Triton: infer replies follow Accept-Encoding */
  kserve_submit(api, req, a, a->arg ? EXPLAIN_V2 : INFER_V2);
}

/* ---- metrics port ---- */

static void metrics_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  (void)is_default;
  wk_models_metrics(models, n, ud);
}

#define MAX_METRIC_NAMES 64

typedef struct {
  const char *names[MAX_METRIC_NAMES];
  size_t n;
} name_filter_t;

static int keep_name(void *ud, const char *name, const char *value) {
  name_filter_t *f = ud;
  if (strcmp(name, "name[]") == 0 && value && *value && f->n < MAX_METRIC_NAMES) f->names[f->n++] = value;
  return 0;
}

/* 1 if the family of the sample or comment line `line` (len bytes) is one of f's names: a
 * histogram's _bucket, _sum and _count lines belong to their family. */
static int wanted(const name_filter_t *f, const char *line, size_t len) {
  const char *p = line;
  if (len > 2 && line[0] == '#') { /* "# HELP name ..." / "# TYPE name ..." */
    p = memchr(line + 2, ' ', len - 2);
    if (p == NULL) return 0;
    p++;
  }
  size_t n = strcspn(p, "{ \n");
  for (size_t i = 0; i < f->n; i++) {
    size_t k = strlen(f->names[i]);
    if (k > n || strncmp(p, f->names[i], k) != 0) continue;
    const char *rest = p + k;
    size_t rn = n - k;
    if (rn == 0 || (rn == 7 && memcmp(rest, "_bucket", 7) == 0) ||
        (rn == 4 && memcmp(rest, "_sum", 4) == 0) || (rn == 6 && memcmp(rest, "_count", 6) == 0))
      return 1;
  }
  return 0;
}

/* Keeps the lines of the families that f names (TorchServe's `name[]` arguments). */
static void filter_names(wk_buf_t *b, const name_filter_t *f) {
  size_t out = 0;
  for (size_t at = 0; at < b->len;) {
    const char *nl = memchr(b->data + at, '\n', b->len - at);
    size_t len = nl ? (size_t)(nl - (b->data + at)) + 1 : b->len - at;
    if (wanted(f, b->data + at, len)) {
      memmove(b->data + out, b->data + at, len);
      out += len;
    }
    at += len;
  }
  b->len = out;
  if (b->data) b->data[out] = '\0';
}

void wk_api_metrics_text(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  (void)a;
  name_filter_t filter = {.n = 0};
  wk_http_req_each_arg(req, keep_name, &filter);
  wk_buf_t b = WK_BUF_INIT;
  static const char *ports[3] = {"inference", "management", "metrics"};
  wk_buf_puts(&b, "# HELP wick_http_requests_total HTTP replies by API and status code.\n"
                  "# TYPE wick_http_requests_total counter\n");
  for (int p = 0; p < 3; p++) {
    if (api->servers[p] == NULL) continue;
    wk_http_stats_t st;
    wk_http_server_stats(api->servers[p], &st);
    for (int c = 100; c < 600; c++)
      if (st.codes[c])
        wk_buf_printf(&b, "wick_http_requests_total{api=\"%s\",code=\"%d\"} %llu\n", ports[p], c,
                      (unsigned long long)st.codes[c]);
  }
  /* TorchServe's frontend counters: replies of the inference and management APIs by
   * status class, labelled as TorchServe labels host-level metrics. */
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  static const char *classes[] = {"2XX", "4XX", "5XX"};
  uint64_t by_class[6] = {0};
  for (int p = 0; p < 2; p++) {
    if (api->servers[p] == NULL) continue;
    wk_http_stats_t st;
    wk_http_server_stats(api->servers[p], &st);
    for (int k = 2; k <= 5; k++) by_class[k] += st.by_status[k];
  }
  for (int k = 0; k < 3; k++) {
    wk_buf_printf(&b, "# HELP Requests%s Replies with a %s status (inference and management APIs).\n"
                      "# TYPE Requests%s counter\n",
                  classes[k], classes[k], classes[k]);
    wk_buf_printf(&b, "Requests%s{Level=\"Host\",Hostname=", classes[k]);
    wk_buf_json_str(&b, host);
    wk_buf_printf(&b, "} %llu\n", (unsigned long long)by_class[k == 0 ? 2 : k == 1 ? 4 : 5]);
  }
  wk_host_metrics(&b, host);
  wk_registry_visit(api->registry, metrics_visit, &b);
  if (filter.n) filter_names(&b, &filter);
  reply_buf(req, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}
