/* Routing for the three ports. Paths are split into at most four segments; anything
 * unknown is 404 with TorchServe's message, a known path with the wrong method is 405. */
#include "api/api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/limits.h"

#define MAX_SEGS 5

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

static void ping(wk_api_t *api, wk_http_req_t *req) {
  wk_model_t *models[WK_MAX_MODELS];
  size_t n = wk_registry_list(api->registry, models, WK_MAX_MODELS);
  int healthy = 1;
  for (size_t i = 0; i < n; i++)
    if (wk_model_live_workers(models[i]) < wk_model_min_workers(models[i])) healthy = 0;
  const char *body = healthy ? "{\n  \"status\": \"Healthy\"\n}\n" : "{\n  \"status\": \"Unhealthy\"\n}\n";
  wk_http_reply_json(req, healthy ? 200 : 500, body, strlen(body));
}

static int gate_enter(wk_api_t *api, wk_http_req_t *req) {
  pthread_rwlock_rdlock(&api->lock);
  if (!api->stopping) return 1;
  pthread_rwlock_unlock(&api->lock);
  wk_http_reply_error(req, 503, "ServiceUnavailableException", "the server is shutting down");
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
  if (!gate_enter(ud, req)) return;
  inference(ud, req);
  gate_leave(ud);
}

void wk_api_management(wk_http_req_t *req, void *ud) {
  if (!gate_enter(ud, req)) return;
  management(ud, req);
  gate_leave(ud);
}

void wk_api_metrics(wk_http_req_t *req, void *ud) {
  if (!gate_enter(ud, req)) return;
  metrics(ud, req);
  gate_leave(ud);
}

static void inference(wk_api_t *api, wk_http_req_t *req) {
  const char *method = wk_http_req_method(req);
  char buf[WK_MAX_URL_PATH];
  char *seg[MAX_SEGS];
  int n = split_path(wk_http_req_path(req), buf, sizeof buf, seg);
  if (n == 1 && strcmp(seg[0], "ping") == 0) {
    if (is(method, "GET") || is(method, "POST")) ping(api, req);
    else bad_method(req, "GET");
    return;
  }
  if ((n == 2 || n == 3) && strcmp(seg[0], "predictions") == 0) {
    if (!is(method, "POST") && !is(method, "PUT")) {
      bad_method(req, "POST, PUT");
      return;
    }
    const char *version = n == 3 ? seg[2] : NULL;
    wk_model_t *m = wk_registry_get(api->registry, seg[1], version);
    if (m == NULL) {
      model_not_found(req, seg[1], version);
      return;
    }
    wk_model_predict(m, req);
    return;
  }
  not_found(req);
}

/* ---- management port ---- */

static void list_models(wk_api_t *api, wk_http_req_t *req) {
  wk_model_t *models[WK_MAX_MODELS];
  size_t n = wk_registry_list(api->registry, models, WK_MAX_MODELS);
  const char *limit_s = wk_http_req_arg(req, "limit");
  const char *token_s = wk_http_req_arg(req, "next_page_token");
  long limit = 100, start = 0;
  char *end;
  if (limit_s) {
    limit = strtol(limit_s, &end, 10);
    if (*end || limit < 1) {
      wk_http_reply_error(req, 400, "BadRequestException", "limit must be a positive integer, got '%s'", limit_s);
      return;
    }
  }
  if (token_s) {
    start = strtol(token_s, &end, 10);
    if (*end || start < 0) {
      wk_http_reply_error(req, 400, "BadRequestException", "next_page_token must be a token from a previous reply, got '%s'", token_s);
      return;
    }
  }
  /* one entry per model name, with its default version's URL */
  wk_buf_t b = WK_BUF_INIT;
  wk_buf_puts(&b, "{\n  \"models\": [");
  long idx = 0, shown = 0;
  for (size_t i = 0; i < n; i++) {
    if (!wk_registry_is_default(api->registry, models[i])) continue;
    if (idx++ < start) continue;
    if (shown == limit) {
      wk_buf_printf(&b, "\n  ],\n  \"nextPageToken\": \"%ld\"\n}\n", start + limit);
      reply_buf(req, 200, "application/json", &b);
      return;
    }
    wk_buf_puts(&b, shown++ ? ",\n    {\n      \"modelName\": " : "\n    {\n      \"modelName\": ");
    wk_buf_json_str(&b, wk_model_name(models[i]));
    wk_buf_puts(&b, ",\n      \"modelUrl\": ");
    wk_buf_json_str(&b, wk_model_url(models[i]));
    wk_buf_puts(&b, "\n    }");
  }
  wk_buf_puts(&b, shown ? "\n  ]\n}\n" : "]\n}\n");
  reply_buf(req, 200, "application/json", &b);
}

static void describe(wk_api_t *api, wk_http_req_t *req, const char *name, const char *version) {
  wk_model_t *models[WK_MAX_MODELS];
  size_t n = wk_registry_list(api->registry, models, WK_MAX_MODELS);
  int all = version && strcmp(version, "all") == 0;
  wk_buf_t b = WK_BUF_INIT;
  wk_buf_puts(&b, "[");
  int shown = 0;
  for (size_t i = 0; i < n; i++) {
    wk_model_t *m = models[i];
    if (strcmp(wk_model_name(m), name) != 0) continue;
    if (!all && (version ? strcmp(wk_model_version(m), version) != 0 : !wk_registry_is_default(api->registry, m)))
      continue;
    wk_buf_puts(&b, shown++ ? ",\n  " : "\n  ");
    wk_model_describe(m, &b);
  }
  if (shown == 0) {
    wk_buf_destroy(&b);
    model_not_found(req, name, all ? NULL : version);
    return;
  }
  wk_buf_puts(&b, "\n]\n");
  reply_buf(req, 200, "application/json", &b);
}

static void management(wk_api_t *api, wk_http_req_t *req) {
  const char *method = wk_http_req_method(req);
  char buf[WK_MAX_URL_PATH];
  char *seg[MAX_SEGS];
  int n = split_path(wk_http_req_path(req), buf, sizeof buf, seg);
  if (n >= 1 && n <= 3 && strcmp(seg[0], "models") == 0) {
    if (!is(method, "GET")) {
      wk_http_reply_error(req, 405, "MethodNotAllowedException",
                          "%s %s is not supported by this version of wick (registering, scaling "
                          "and unregistering models come with the full management API)",
                          method, wk_http_req_path(req));
      return;
    }
    if (n == 1) list_models(api, req);
    else describe(api, req, seg[1], n == 3 ? seg[2] : NULL);
    return;
  }
  not_found(req);
}

/* ---- metrics port ---- */

static void metrics(wk_api_t *api, wk_http_req_t *req) {
  char buf[WK_MAX_URL_PATH];
  char *seg[MAX_SEGS];
  int n = split_path(wk_http_req_path(req), buf, sizeof buf, seg);
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
  wk_model_t *models[WK_MAX_MODELS];
  size_t nm = wk_registry_list(api->registry, models, WK_MAX_MODELS);
  wk_models_metrics(models, nm, &b);
  reply_buf(req, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}
