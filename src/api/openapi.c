/* The OpenAPI 3.0 description of the three ports, generated from the table of operations
 * below. The table must list exactly what api.c and management.c route: the e2e test
 * (tests/e2e/test_openapi.py) sends every listed operation to a real server and checks a
 * fixed list of real routes against the document. It does not describe bodies in depth. */
#include "api/openapi.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"

enum {
  F_MODEL_API = 1, /* only with enable_model_api=true */
  F_AUTH = 2,      /* only with token authorization on */
  F_PUBLIC = 4     /* needs no token even with token authorization on */
};

typedef struct op_s {
  unsigned ports;        /* wk_port_t bits */
  const char *method;    /* lower case, as OpenAPI names operations */
  const char *path;      /* OpenAPI template; {x} is a path parameter */
  unsigned flags;        /* F_* */
  const char *id;        /* operationId */
  const char *summary;   /* one line */
  const char *query;     /* "name:type|..." of query parameters (type: string, integer,
                            boolean), NULL for none */
  const char *body;      /* "type|..." of accepted request content types, NULL for none */
  const char *responses; /* "code:description|..." */
} op_t;

#define INF WK_PORT_INFERENCE
#define MGT WK_PORT_MANAGEMENT
#define MET WK_PORT_METRICS
#define ALL (INF | MGT | MET)

#define PREDICT_BODY "application/json|application/octet-stream|multipart/form-data|*/*"
#define PREDICT_REPLIES                                                                            \
  "200:the handler's output|400:bad input|404:no such model or version|413:body too "              \
  "large|503:queue full or no workers|504:response timeout"
#define V2_BODY "application/json|application/octet-stream"
#define REGISTER_QUERY                                                                             \
  "url:string|model_name:string|handler:string|runtime:string|batch_size:integer|"                 \
  "max_batch_delay:integer|initial_workers:integer|synchronous:boolean|response_timeout:"          \
  "integer|startup_timeout:integer"
#define SCALE_QUERY "min_worker:integer|max_worker:integer|synchronous:boolean|timeout:integer"

static const op_t ops[] = {
    {ALL, "options", "/", F_PUBLIC, "apiDescription", "This port's API description (OpenAPI 3.0)",
     NULL, NULL, "200:the OpenAPI document"},
    {ALL, "get", "/api-description", F_PUBLIC, "getApiDescription",
     "This port's API description (OpenAPI 3.0)", NULL, NULL, "200:the OpenAPI document"},

    /* inference port: TorchServe's routes (api.c inference) */
    {INF, "get", "/ping", F_PUBLIC, "ping", "Health of the server and its models", NULL, NULL,
     "200:{\"status\": \"Healthy\"}|500:{\"status\": \"Unhealthy\"}"},
    {INF, "post", "/ping", F_PUBLIC, "pingPost", "Health of the server (as GET)", NULL, NULL,
     "200:{\"status\": \"Healthy\"}|500:{\"status\": \"Unhealthy\"}"},
    {INF, "post", "/predictions/{model_name}", 0, "predictions", "Predict with the default version",
     NULL, PREDICT_BODY, PREDICT_REPLIES},
    {INF, "put", "/predictions/{model_name}", 0, "predictionsPut", "Predict (as POST)", NULL,
     PREDICT_BODY, PREDICT_REPLIES},
    {INF, "post", "/predictions/{model_name}/{model_version}", 0, "versionPredictions",
     "Predict with one version", NULL, PREDICT_BODY, PREDICT_REPLIES},
    {INF, "put", "/predictions/{model_name}/{model_version}", 0, "versionPredictionsPut",
     "Predict with one version (as POST)", NULL, PREDICT_BODY, PREDICT_REPLIES},
    {INF, "post", "/explanations/{model_name}", 0, "explanations",
     "Explain with the default version (integrated gradients or the handler's explain)",
     "target:integer|n_steps:integer", PREDICT_BODY, PREDICT_REPLIES},
    {INF, "put", "/explanations/{model_name}", 0, "explanationsPut", "Explain (as POST)",
     "target:integer|n_steps:integer", PREDICT_BODY, PREDICT_REPLIES},
    {INF, "post", "/explanations/{model_name}/{model_version}", 0, "versionExplanations",
     "Explain with one version", "target:integer|n_steps:integer", PREDICT_BODY, PREDICT_REPLIES},
    {INF, "put", "/explanations/{model_name}/{model_version}", 0, "versionExplanationsPut",
     "Explain with one version (as POST)", "target:integer|n_steps:integer", PREDICT_BODY,
     PREDICT_REPLIES},

    /* inference port: KServe v1 (api.c kserve_v1) */
    {INF, "get", "/v1/models", 0, "kserveV1List", "KServe v1: the models' names", NULL, NULL,
     "200:{\"models\": [...]}"},
    {INF, "get", "/v1/models/{model_name}", 0, "kserveV1Ready", "KServe v1: model readiness", NULL,
     NULL, "200:{\"name\": ..., \"ready\": ...}|404:{\"error\": ...}"},
    {INF, "post", "/v1/models/{model_name}:predict", 0, "kserveV1Predict",
     "KServe v1: {\"instances\"|\"inputs\": [...]} -> {\"predictions\": [...]}", NULL,
     "application/json", "200:{\"predictions\": [...]}|400:{\"error\": ...}|404:{\"error\": ...}"},
    {INF, "post", "/v1/models/{model_name}:explain", 0, "kserveV1Explain",
     "KServe v1: explanations of the instances", NULL, "application/json",
     "200:{\"explanations\": [...]}|400:{\"error\": ...}|404:{\"error\": ...}"},

    /* inference port: KServe v2 / Open Inference Protocol (api.c kserve_v2) */
    {INF, "get", "/v2", 0, "kserveV2Server", "Server metadata (name, version, extensions)", NULL,
     NULL, "200:server metadata"},
    {INF, "get", "/v2/health/live", F_PUBLIC, "kserveV2Live", "Server liveness", NULL, NULL,
     "200:{\"live\": true}"},
    {INF, "get", "/v2/health/ready", F_PUBLIC, "kserveV2Ready",
     "Server readiness (every model healthy)", NULL, NULL,
     "200:{\"ready\": true}|400:{\"ready\": false}"},
    {INF, "get", "/v2/models/{model_name}", 0, "kserveV2ModelMetadata",
     "Model metadata: inputs and outputs with name, datatype and shape", NULL, NULL,
     "200:model metadata|404:{\"error\": ...}"},
    {INF, "get", "/v2/models/{model_name}/ready", 0, "kserveV2ModelReady", "Model readiness", NULL,
     NULL, "200:ready|400:not ready|404:{\"error\": ...}"},
    {INF, "post", "/v2/models/{model_name}/infer", 0, "kserveV2Infer",
     "Inference, JSON or the binary tensor data extension", NULL, V2_BODY,
     "200:inference response|400:{\"error\": ...}|404:{\"error\": ...}"},
    {INF, "get", "/v2/models/{model_name}/versions/{model_version}", 0, "kserveV2VersionMetadata",
     "Metadata of one version", NULL, NULL, "200:model metadata|404:{\"error\": ...}"},
    {INF, "get", "/v2/models/{model_name}/versions/{model_version}/ready", 0,
     "kserveV2VersionReady", "Readiness of one version", NULL, NULL,
     "200:ready|400:not ready|404:{\"error\": ...}"},
    {INF, "post", "/v2/models/{model_name}/versions/{model_version}/infer", 0,
     "kserveV2VersionInfer", "Inference with one version", NULL, V2_BODY,
     "200:inference response|400:{\"error\": ...}|404:{\"error\": ...}"},

    /* management port (management.c, auth.c) */
    {MGT, "get", "/models", 0, "listModels", "Registered models, a page at a time",
     "limit:integer|next_page_token:string", NULL, "200:{\"models\": [...]}|400:bad parameter"},
    {MGT, "post", "/models", F_MODEL_API, "registerModel",
     "Register a model archive from the model store or an allowed URL", REGISTER_QUERY,
     "application/json",
     "200:registered|202:registered, workers starting|400:bad parameter or archive|404:no "
     "such archive|409:already registered"},
    {MGT, "get", "/models/{model_name}", 0, "describeModel", "Describe the default version", NULL,
     NULL, "200:[description]|404:no such model"},
    {MGT, "put", "/models/{model_name}", 0, "setAutoScale", "Scale the default version's workers",
     SCALE_QUERY, NULL,
     "200:scaled|202:scaling|206:scaling in progress|400:bad parameter|404:no "
     "such model"},
    {MGT, "delete", "/models/{model_name}", F_MODEL_API, "unregisterModel",
     "Unregister the default version", NULL, NULL, "200:unregistered|404:no such model"},
    {MGT, "get", "/models/{model_name}/{model_version}", 0, "versionDescribeModel",
     "Describe one version ('all': every version)", NULL, NULL,
     "200:[description, ...]|404:no such model or version"},
    {MGT, "put", "/models/{model_name}/{model_version}", 0, "versionSetAutoScale",
     "Scale one version's workers", SCALE_QUERY, NULL,
     "200:scaled|202:scaling|206:scaling in progress|400:bad parameter|404:no such model or "
     "version"},
    {MGT, "delete", "/models/{model_name}/{model_version}", F_MODEL_API, "versionUnregisterModel",
     "Unregister one version", NULL, NULL,
     "200:unregistered|403:the default version of several|404:no such model or version"},
    {MGT, "put", "/models/{model_name}/{model_version}/set-default", 0, "setDefault",
     "Make a version the default", NULL, NULL, "200:done|404:no such model or version"},
    {MGT, "get", "/token", F_AUTH, "token",
     "Replace the inference or management key (needs the API key)", "type:string", NULL,
     "200:the new key|400:bad type|401:not the API key"},

    /* metrics port (api.c metrics) */
    {MET, "get", "/metrics", F_PUBLIC, "metrics", "Prometheus text format", NULL, NULL,
     "200:metrics"},
};

static const char *port_title(wk_port_t port) {
  return port == WK_PORT_INFERENCE    ? "wick inference API"
         : port == WK_PORT_MANAGEMENT ? "wick management API"
                                      : "wick metrics API";
}

/* Calls fn(into, item, len) for each '|'-separated item of list. */
static int each_item(const char *list, json_t *into, int (*fn)(json_t *, const char *, size_t)) {
  for (const char *p = list; p && *p;) {
    size_t n = strcspn(p, "|");
    if (fn(into, p, n) != 0) return WK_ENOMEM;
    p += n;
    if (*p == '|') p++;
  }
  return 0;
}

static json_t *schema(const char *type, size_t len) {
  return json_pack("{s:s%}", "type", type, len);
}

static int add_query(json_t *params, const char *item, size_t len) {
  const char *colon = memchr(item, ':', len);
  if (colon == NULL) return WK_EINTERNAL;
  json_t *p =
      json_pack("{s:s%,s:s,s:b,s:o}", "name", item, (size_t)(colon - item), "in", "query",
                "required", 0, "schema", schema(colon + 1, len - (size_t)(colon + 1 - item)));
  return p == NULL || json_array_append_new(params, p) != 0 ? WK_ENOMEM : 0;
}

static int add_content(json_t *content, const char *item, size_t len) {
  char type[64];
  if (len >= sizeof type) return WK_EINTERNAL;
  memcpy(type, item, len);
  type[len] = '\0';
  json_t *media = json_pack("{s:{}}", "schema");
  return media == NULL || json_object_set_new(content, type, media) != 0 ? WK_ENOMEM : 0;
}

static int add_response(json_t *responses, const char *item, size_t len) {
  const char *colon = memchr(item, ':', len);
  if (colon == NULL || colon - item != 3) return WK_EINTERNAL;
  char code[4];
  memcpy(code, item, 3);
  code[3] = '\0';
  json_t *r = json_pack("{s:s%}", "description", colon + 1, len - 4);
  return r == NULL || json_object_set_new(responses, code, r) != 0 ? WK_ENOMEM : 0;
}

/* The parameters of op: its path's {x} (required strings), then its query parameters. */
static json_t *parameters(const op_t *op) {
  json_t *params = json_array();
  if (params == NULL) return NULL;
  for (const char *p = strchr(op->path, '{'); p; p = strchr(p + 1, '{')) {
    size_t n = strcspn(p + 1, "}");
    json_t *one = json_pack("{s:s%,s:s,s:b,s:{s:s}}", "name", p + 1, n, "in", "path", "required", 1,
                            "schema", "type", "string");
    if (one == NULL || json_array_append_new(params, one) != 0) goto fail;
  }
  if (each_item(op->query, params, add_query) != 0) goto fail;
  return params;
fail:
  json_decref(params);
  return NULL;
}

static json_t *operation(const op_t *op, int auth_on) {
  json_t *o = json_pack("{s:s,s:s,s:o,s:{}}", "operationId", op->id, "summary", op->summary,
                        "parameters", parameters(op), "responses");
  if (o == NULL) return NULL;
  if (each_item(op->responses, json_object_get(o, "responses"), add_response) != 0) goto fail;
  if (op->body) {
    json_t *body = json_pack("{s:b,s:{}}", "required", 0, "content");
    if (body == NULL || json_object_set_new(o, "requestBody", body) != 0) goto fail;
    if (each_item(op->body, json_object_get(body, "content"), add_content) != 0) goto fail;
  }
  /* With token authorization, public routes say that they need no token. */
  if (auth_on && (op->flags & F_PUBLIC) && json_object_set_new(o, "security", json_array()) != 0)
    goto fail;
  return o;
fail:
  json_decref(o);
  return NULL;
}

static int enabled(const wk_api_t *api, const op_t *op) {
  if (op->flags & F_AUTH && api->auth == NULL) return 0;
  if (op->flags & F_MODEL_API) {
    const char *v = api->config ? wk_props_get(&api->config->props, "enable_model_api") : NULL;
    if (v == NULL || strcasecmp(v, "true") != 0) return 0;
  }
  return 1;
}

int wk_openapi_describe(const wk_api_t *api, wk_port_t port, wk_buf_t *b) {
  int auth_on = api->auth != NULL && port != WK_PORT_METRICS;
  json_t *doc = json_pack(
      "{s:s,s:{s:s,s:s,s:s},s:{}}", "openapi", "3.0.1", "info", "title", port_title(port),
      "version", WK_VERSION, "description",
      "Generated by wick from its route table; every path answers as listed here.", "paths");
  if (doc == NULL) return WK_ENOMEM;
  json_t *paths = json_object_get(doc, "paths");
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < sizeof ops / sizeof ops[0]; i++) {
    const op_t *op = &ops[i];
    if (!(op->ports & port) || !enabled(api, op)) continue;
    json_t *item = json_object_get(paths, op->path);
    if (item == NULL) {
      item = json_object();
      if (item == NULL || json_object_set_new(paths, op->path, item) != 0) {
        rc = WK_ENOMEM;
        break;
      }
    }
    json_t *o = operation(op, auth_on);
    if (o == NULL || json_object_set_new(item, op->method, o) != 0) rc = WK_ENOMEM;
  }
  if (rc == 0 && auth_on) {
    json_t *sec =
        json_pack("{s:{s:{s:s,s:s,s:s}}}", "securitySchemes", "bearer", "type", "http", "scheme",
                  "bearer", "description", "the inference or management key from key_file.json");
    json_t *req = json_pack("[{s:[]}]", "bearer");
    if (sec == NULL || req == NULL || json_object_set_new(doc, "components", sec) != 0 ||
        json_object_set_new(doc, "security", req) != 0)
      rc = WK_ENOMEM;
  }
  char *text = rc == 0 ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
  json_decref(doc);
  if (text == NULL) return WK_ENOMEM;
  rc = wk_buf_puts(b, text) == 0 && wk_buf_putc(b, '\n') == 0 ? 0 : WK_ENOMEM;
  free(text);
  return rc;
}

void wk_openapi_reply(const wk_api_t *api, wk_port_t port, int root, wk_http_req_t *req) {
  const char *method = wk_http_req_method(req);
  const char *want = root ? "OPTIONS" : "GET";
  if (strcmp(method, want) != 0) {
    wk_http_reply_header(req, "Allow", want);
    wk_http_reply_error(req, 405, "MethodNotAllowedException", "%s %s is not supported; use %s",
                        method, wk_http_req_path(req), want);
    return;
  }
  wk_buf_t b = WK_BUF_INIT;
  if (wk_openapi_describe(api, port, &b) != 0) {
    wk_buf_destroy(&b);
    wk_http_reply_error(req, 500, "InternalServerException", "out of memory");
    return;
  }
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  wk_http_reply(req, 200, "application/json", body, len);
}
