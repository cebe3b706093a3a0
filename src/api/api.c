/* Routing for the three ports. Paths are split into at most six segments; anything
 * unknown is 404 with TorchServe's message, a known path with the wrong method is 405.
 * openapi.c's table describes these routes: change both together. */
#include "api/api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/bridge.h"
#include "api/management.h"
#include "api/openapi.h"
#include "core/buf.h"
#include "core/limits.h"

#define MAX_SEGS 6

/* Splits "/a/b/c" into segments (in place in buf). Returns the count, or -1 if too many. */
static int split_path(const char *path, char *buf, size_t buflen, char **segs) {
  snprintf(buf, buflen, "%s", path);
  int n = 0;
  for (char *p = buf; *p;) {
    while (*p == '/') p++;
    if (!*p) break;
    if (n == MAX_SEGS) return -1;
    segs[n++] = p;
    while (*p && *p != '/') p++;
    if (*p) *p++ = '\0';
  }
  return n;
}

static int is(const char *method, const char *m) { return strcmp(method, m) == 0; }

static void not_found(wk_http_req_t *req) {
  wk_http_reply_error(req, 404, "ResourceNotFoundException",
                      "Requested resource is not found, please refer to API document.");
}

static void bad_method(wk_http_req_t *req, const char *allowed) {
  wk_http_reply_header(req, "Allow", allowed);
  wk_http_reply_error(req, 405, "MethodNotAllowedException", "%s %s is not supported; use %s",
                      wk_http_req_method(req), wk_http_req_path(req), allowed);
}

static void model_not_found(wk_http_req_t *req, const char *name, const char *version) {
  if (version)
    wk_http_reply_error(req, 404, "ModelNotFoundException",
                        "Model version not found: %s version %s", name, version);
  else
    wk_http_reply_error(req, 404, "ModelNotFoundException", "Model not found: %s", name);
}

static void reply_buf(wk_http_req_t *req, int status, const char *type, wk_buf_t *b) {
  size_t len;
  char *body = wk_buf_steal(b, &len);
  wk_http_reply(req, status, type, body, len);
}

/* ---- inference port ---- */

static void ping_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  (void)is_default;
  char why[256];
  for (size_t i = 0; i < n; i++)
    if (!wk_model_healthy(models[i], why, sizeof why)) *(int *)ud = 0;
}

static void ping(wk_api_t *api, wk_http_req_t *req) {
  int healthy = 1;
  wk_registry_visit(api->registry, ping_visit, &healthy);
  const char *body = healthy ? "{\n  \"status\": \"Healthy\"\n}\n" : "{\n  \"status\": \"Unhealthy\"\n}\n";
  wk_http_reply_json(req, healthy ? 200 : 500, body, strlen(body));
}

/* OPTIONS / and GET /api-description on any port: answers them (returns 1), else 0. */
static int api_description(const wk_api_t *api, wk_port_t port, wk_http_req_t *req, char **seg,
                           int n) {
  if (n == 0 || (n == 1 && strcmp(seg[0], "api-description") == 0)) {
    wk_openapi_reply(api, port, n == 0, req);
    return 1;
  }
  return 0;
}

/* Lets a request in (returns 1, holding the lock shared) unless the server is stopping or
 * token authorization turns it away; then it is answered and 0 returned. need is the key
 * the API asks for, or -1 for none (metrics). GET /token is answered here. */
static int gate_enter(wk_api_t *api, wk_http_req_t *req, int need) {
  pthread_rwlock_rdlock(&api->lock);
  if (api->stopping) {
    pthread_rwlock_unlock(&api->lock);
    wk_http_reply_error(req, 503, "ServiceUnavailableException", "the server is shutting down");
    return 0;
  }
  const char *path = wk_http_req_path(req);
  if (api->auth == NULL || need < 0 || wk_auth_is_public((wk_auth_kind_t)need, path)) return 1;
  if (need == WK_AUTH_MANAGEMENT && strcmp(path, "/token") == 0) {
    wk_auth_token_request(api->auth, req);
  } else if (wk_auth_check(api->auth, req, (wk_auth_kind_t)need)) {
    return 1;
  }
  pthread_rwlock_unlock(&api->lock);
  return 0;
}

static void gate_leave(wk_api_t *api) { pthread_rwlock_unlock(&api->lock); }

void wk_api_init(wk_api_t *api, wk_registry_t *registry) {
  memset(api, 0, sizeof *api);
  api->registry = registry;
  pthread_rwlock_init(&api->lock, NULL);
}

void wk_api_shutdown(wk_api_t *api) {
  pthread_rwlock_wrlock(&api->lock);
  api->stopping = 1;
  pthread_rwlock_unlock(&api->lock);
}

void wk_api_destroy(wk_api_t *api) { pthread_rwlock_destroy(&api->lock); }

static void inference(wk_api_t *api, wk_http_req_t *req);
static void management(wk_api_t *api, wk_http_req_t *req);
static void metrics(wk_api_t *api, wk_http_req_t *req);

void wk_api_inference(wk_http_req_t *req, void *ud) {
  if (!gate_enter(ud, req, WK_AUTH_INFERENCE)) return;
  inference(ud, req);
  gate_leave(ud);
}

void wk_api_management(wk_http_req_t *req, void *ud) {
  if (!gate_enter(ud, req, WK_AUTH_MANAGEMENT)) return;
  management(ud, req);
  gate_leave(ud);
}

void wk_api_metrics(wk_http_req_t *req, void *ud) {
  if (!gate_enter(ud, req, -1)) return;
  metrics(ud, req);
  gate_leave(ud);
}

/* ---- predictions ---- */

typedef enum { PREDICT, EXPLAIN, PREDICT_V1, EXPLAIN_V1, INFER_V2 } entry_t;

/* Hands req to m's queue as serve/'s plain request, with a sink that replies to req. */
static void submit(wk_model_t *m, wk_http_req_t *req, wk_api_errors_t errors, entry_t entry) {
  wk_sink_t *sink = wk_api_sink_new(req, errors);
  if (sink == NULL) {
    if (errors == WK_API_ERRORS_KSERVE) wk_http_reply_kserve_error(req, 500, "out of memory");
    else wk_http_reply_error(req, 500, "InternalServerException", "out of memory");
    return;
  }
  wk_api_request_t r;
  wk_api_request_from_http(req, &r);
  switch (entry) {
  case PREDICT: wk_model_predict(m, &r.r, sink, 0); break;
  case EXPLAIN: wk_model_predict(m, &r.r, sink, 1); break;
  case PREDICT_V1: wk_model_predict_v1(m, &r.r, sink, 0); break;
  case EXPLAIN_V1: wk_model_predict_v1(m, &r.r, sink, 1); break;
  case INFER_V2: wk_model_infer_v2(m, &r.r, sink); break;
  }
}

/* ---- KServe v1 (inference port) ---- */


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

/* GET /v1/models, GET /v1/models/{m}, POST /v1/models/{m}:predict|:explain. */
static void kserve_v1(wk_api_t *api, wk_http_req_t *req, char **seg, int n) {
  const char *method = wk_http_req_method(req);
  if (n == 2) {
    if (!is(method, "GET")) {
      bad_method(req, "GET");
      return;
    }
    wk_buf_t b = WK_BUF_INIT;
    wk_buf_puts(&b, "{\"models\": [");
    wk_registry_visit(api->registry, v1_list_visit, &b);
    wk_buf_puts(&b, "]}\n");
    reply_buf(req, 200, "application/json", &b);
    return;
  }
  char *name = seg[2];
  char *verb = strrchr(name, ':');
  if (verb) *verb++ = '\0';
  if (verb && strcmp(verb, "predict") != 0 && strcmp(verb, "explain") != 0) {
    wk_http_reply_kserve_error(req, 404, "unknown verb ':%s': expected :predict or :explain", verb);
    return;
  }
  if (verb ? !is(method, "POST") : !is(method, "GET")) {
    bad_method(req, verb ? "POST" : "GET");
    return;
  }
  wk_model_t *m = wk_registry_acquire(api->registry, name, NULL);
  if (m == NULL) {
    wk_http_reply_kserve_error(req, 404, "model %s is not registered", name);
    return;
  }
  if (verb) {
    submit(m, req, WK_API_ERRORS_KSERVE, strcmp(verb, "explain") == 0 ? EXPLAIN_V1 : PREDICT_V1);
  } else {
    char why[256];
    int ready = wk_model_healthy(m, why, sizeof why);
    wk_buf_t b = WK_BUF_INIT;
    wk_buf_puts(&b, "{\"name\": ");
    wk_buf_json_str(&b, name);
    wk_buf_printf(&b, ", \"ready\": %s}\n", ready ? "true" : "false");
    reply_buf(req, 200, "application/json", &b);
  }
  wk_registry_release(api->registry, m);
}

/* ---- KServe v2 / Open Inference Protocol (inference port) ---- */

static void ready_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  (void)is_default;
  char why[256];
  for (size_t i = 0; i < n; i++)
    if (!wk_model_healthy(models[i], why, sizeof why)) *(int *)ud = 0;
}

static void kserve_v2(wk_api_t *api, wk_http_req_t *req, char **seg, int n) {
  const char *method = wk_http_req_method(req);
  if (n == 1 || (n == 3 && strcmp(seg[1], "health") == 0)) {
    if (!is(method, "GET")) {
      bad_method(req, "GET");
      return;
    }
    wk_buf_t b = WK_BUF_INIT;
    int status = 200;
    if (n == 1) {
      wk_buf_puts(&b, "{\"name\": \"wick\", \"version\": \"" WK_VERSION "\", \"extensions\": "
                      "[\"binary_tensor_data\"]}\n");
    } else if (strcmp(seg[2], "live") == 0) {
      wk_buf_puts(&b, "{\"live\": true}\n");
    } else if (strcmp(seg[2], "ready") == 0) {
      int ready = 1;
      wk_registry_visit(api->registry, ready_visit, &ready);
      status = ready ? 200 : 400; /* the protocol: 200 is true, 4xx false */
      wk_buf_printf(&b, "{\"ready\": %s}\n", ready ? "true" : "false");
    } else {
      wk_buf_destroy(&b);
      wk_http_reply_kserve_error(req, 404, "unknown health check '%s': expected live or ready", seg[2]);
      return;
    }
    reply_buf(req, status, "application/json", &b);
    return;
  }
  /* models/{m}[/versions/{v}][/ready|/infer] */
  if (n < 3 || strcmp(seg[1], "models") != 0) {
    wk_http_reply_kserve_error(req, 404, "%s is not a v2 route", wk_http_req_path(req));
    return;
  }
  const char *name = seg[2], *version = NULL, *verb = NULL;
  int rest = 3;
  if (n >= 5 && strcmp(seg[3], "versions") == 0) {
    version = seg[4];
    rest = 5;
  }
  if (n == rest + 1) verb = seg[rest];
  else if (n != rest) {
    wk_http_reply_kserve_error(req, 404, "%s is not a v2 route", wk_http_req_path(req));
    return;
  }
  if (verb && strcmp(verb, "ready") != 0 && strcmp(verb, "infer") != 0) {
    wk_http_reply_kserve_error(req, 404, "unknown model route '%s': expected ready or infer", verb);
    return;
  }
  int infer = verb && strcmp(verb, "infer") == 0;
  if (infer ? !is(method, "POST") : !is(method, "GET")) {
    bad_method(req, infer ? "POST" : "GET");
    return;
  }
  wk_model_t *m = wk_registry_acquire(api->registry, name, version);
  if (m == NULL) {
    if (version) wk_http_reply_kserve_error(req, 404, "model %s has no version %s", name, version);
    else wk_http_reply_kserve_error(req, 404, "model %s is not registered", name);
    return;
  }
  if (infer) {
    submit(m, req, WK_API_ERRORS_KSERVE, INFER_V2);
  } else if (verb) {
    char why[256];
    int ready = wk_model_healthy(m, why, sizeof why);
    wk_buf_t b = WK_BUF_INIT;
    wk_buf_puts(&b, "{\"name\": ");
    wk_buf_json_str(&b, name);
    wk_buf_printf(&b, ", \"ready\": %s}\n", ready ? "true" : "false");
    reply_buf(req, ready ? 200 : 400, "application/json", &b);
  } else {
    wk_buf_t b = WK_BUF_INIT;
    wk_model_v2_metadata(m, &b);
    wk_buf_putc(&b, '\n');
    reply_buf(req, 200, "application/json", &b);
  }
  wk_registry_release(api->registry, m);
}

static void inference(wk_api_t *api, wk_http_req_t *req) {
  const char *method = wk_http_req_method(req);
  char buf[WK_MAX_URL_PATH];
  char *seg[MAX_SEGS];
  int n = split_path(wk_http_req_path(req), buf, sizeof buf, seg);
  if (api_description(api, WK_PORT_INFERENCE, req, seg, n)) return;
  if (n == 1 && strcmp(seg[0], "ping") == 0) {
    if (is(method, "GET") || is(method, "POST")) ping(api, req);
    else bad_method(req, "GET");
    return;
  }
  int explain = (n == 2 || n == 3) && strcmp(seg[0], "explanations") == 0;
  if ((n == 2 || n == 3) && (explain || strcmp(seg[0], "predictions") == 0)) {
    if (!is(method, "POST") && !is(method, "PUT")) {
      bad_method(req, "POST, PUT");
      return;
    }
    const char *version = n == 3 ? seg[2] : NULL;
    wk_model_t *m = wk_registry_acquire(api->registry, seg[1], version);
    if (m == NULL) {
      model_not_found(req, seg[1], version);
      return;
    }
    submit(m, req, WK_API_ERRORS_TS, explain ? EXPLAIN : PREDICT);
    wk_registry_release(api->registry, m);
    return;
  }
  if ((n == 2 || n == 3) && strcmp(seg[0], "v1") == 0 && strcmp(seg[1], "models") == 0) {
    kserve_v1(api, req, seg, n);
    return;
  }
  if (n >= 1 && strcmp(seg[0], "v2") == 0) {
    kserve_v2(api, req, seg, n);
    return;
  }
  not_found(req);
}

/* ---- management port ---- */

static void management(wk_api_t *api, wk_http_req_t *req) {
  char buf[WK_MAX_URL_PATH];
  char *seg[MAX_SEGS];
  int n = split_path(wk_http_req_path(req), buf, sizeof buf, seg);
  if (api_description(api, WK_PORT_MANAGEMENT, req, seg, n)) return;
  wk_management_handle(api, req);
}

/* ---- metrics port ---- */

static void metrics_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  (void)is_default;
  wk_models_metrics(models, n, ud);
}

static void metrics(wk_api_t *api, wk_http_req_t *req) {
  char buf[WK_MAX_URL_PATH];
  char *seg[MAX_SEGS];
  int n = split_path(wk_http_req_path(req), buf, sizeof buf, seg);
  if (api_description(api, WK_PORT_METRICS, req, seg, n)) return;
  if (!(n == 1 && strcmp(seg[0], "metrics") == 0)) {
    not_found(req);
    return;
  }
  if (!is(wk_http_req_method(req), "GET")) {
    bad_method(req, "GET");
    return;
  }
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
  wk_registry_visit(api->registry, metrics_visit, &b);
  reply_buf(req, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}
