/* The route table and the routers of the three ports: a request's path is matched against
 * the table (templates with {model_name} and {model_version}); the matched route's auth
 * class decides which key the gate asks for; its function answers. A path the table does
 * not have is 404, a method it does not list for that path 405 with Allow. */
#include "api/routes.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/auth.h"
#include "api/handlers.h"
#include "api/openapi.h"
#include "core/buf.h"
#include "core/limits.h"

static void describe(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
static void token(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
static void model_doc(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
static void root(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);

#define INF WK_PORT_INFERENCE
#define MGT WK_PORT_MANAGEMENT
#define MET WK_PORT_METRICS
#define ALL (INF | MGT | MET)

/* The JSON replies (the notation is in routes.h). */
#define OPENAPI_DOC                                                                                \
  "{openapi:string(3.0.1),info:{title:string,version:string(wick's),description:string}"           \
  "(what this document is),paths:object(each path and method this port answers),"                 \
  "components?:object(the bearer scheme; with token authorization),security?:[object](the bearer " \
  "scheme; with token authorization)} the OpenAPI document"
#define STATUS_REPLY "{status:string(what was done, in words)}"
#define MODEL_LIST                                                                                 \
  "{models:[{modelName:string(the model's name),modelUrl:string(the archive its default version " \
  "came from)}](a page of the registered models, by name),nextPageToken?:string(the "              \
  "next_page_token of the next page; not on the last page)}"
#define WORKER                                                                                     \
  "{id:string(the worker's number),startTime:string(when it started; ISO 8601 UTC),"               \
  "status:=READY/BUSY/ABANDONED(its state),memoryUsage:integer(0: not measured),pid:integer(the "  \
  "server's process),gpu:boolean(whether it runs on a GPU),gpuUsage:string(gpuId::N, or N/A)}"
#define MODEL_DESCRIPTION                                                                          \
  "[{modelName:string(the model's name),modelVersion:string(this version),modelUrl:string(the "    \
  "archive it came from),runtime:=native/python(who runs it: libtorch in the server, or Python "   \
  "workers),handler:string(the handler),minWorkers:integer(the fewest workers),maxWorkers:integer(" \
  "the most workers),batchSize:integer(the largest batch),maxBatchDelay:integer(how long a batch " \
  "waits to fill; ms),responseTimeout:integer(s),startupTimeout:integer(s),"                       \
  "maxRetryTimeoutInSec:integer,clientTimeoutInMills:integer,parallelType:string,"                 \
  "parallelLevel:integer,deviceType:=cpu/gpu,continuousBatching:boolean,useJobTicket:boolean,"     \
  "useVenv:boolean,stateful:boolean,sequenceMaxIdleMSec:integer,sequenceTimeoutMSec:integer,"      \
  "maxNumSequence:integer,maxSequenceJobQueueSize:integer,loadedAtStartup:boolean(registered by "  \
  "--models at startup),workers:[" WORKER "](its workers),jobQueueStatus:{remainingCapacity:"      \
  "integer(requests the queue still takes),pendingRequests:integer(requests waiting)},"            \
  "customizedMetadata?:any(with customized=true: what the handler's describe_handle answered)}]"
#define READY_REPLY "{name:string(the model's name),ready:boolean(true)}"
#define NOT_READY                                                                                  \
  "{name:string(the model's name),ready:boolean(false),state:=loading/failed/unhealthy(why not),"  \
  "reason:string(what went wrong)}"
#define TENSOR_META "{name:string,datatype?:string(v2's datatype),shape?:[integer](-1: any size)}"
#define V2_METADATA                                                                                \
  "{name:string,versions:[string],platform:string(pytorch_libtorch, python, ...),inputs:["         \
  TENSOR_META "],outputs:[" TENSOR_META "]}"
#define V2_INFER_REPLY                                                                             \
  "200:<application/json,application/octet-stream>{model_name:string,model_version:string,id?:"    \
  "string(the request's id),outputs:[{name:string,datatype?:string,shape?:[integer],data?:[any],"  \
  "parameters?:object(binary_data_size: the output is in the binary part)}]} the outputs; "        \
  "application/octet-stream when the client asked for binary outputs: this JSON, then the "        \
  "tensors' bytes (Inference-Header-Content-Length is the JSON's size)"
#define TRITON_CONFIG                                                                              \
  "{name:string,platform:string,backend:=pytorch/python,version_policy:object,"                    \
  "max_batch_size:integer,instance_group:[{name:string,kind:=KIND_CPU/KIND_GPU,count:integer,"     \
  "gpus:[integer]}],input:[{name:string,data_type:string,dims:[integer],format:string,"           \
  "optional:boolean}],output:[{name:string,data_type:string,dims:[integer]}],dynamic_batching?:{"  \
  "preferred_batch_size:[integer],max_queue_delay_microseconds:integer}(with a batch size over 1),"\
  "parameters:{handler:{string_value:string},response_timeout:{string_value_int:integer}}}"
#define COUNT_NS "{count:integer,ns:integer}"
#define TRITON_STATS                                                                               \
  "{model_stats:[{name:string,version:string,last_inference:integer(ms since the epoch; 0: none)," \
  "inference_count:integer,execution_count:integer(batches run),inference_stats:{success:"         \
  COUNT_NS ",fail:" COUNT_NS ",queue:" COUNT_NS ",compute_input:" COUNT_NS ",compute_infer:"        \
  COUNT_NS ",compute_output:" COUNT_NS ",cache_hit:" COUNT_NS ",cache_miss:" COUNT_NS "},"         \
  "batch_stats:[{batch_size:integer,compute_input:" COUNT_NS ",compute_infer:" COUNT_NS            \
  ",compute_output:" COUNT_NS "}],memory_usage:[any]}]}"
#define STATUS_JSON                                                                                \
  "{server:object(the process: version, pid, uptime, memory, CPUs, GPUs, settings),"               \
  "healthy:boolean(as /ping),ready:boolean(as /v2/health/ready),models:[{name:string,"             \
  "version:string,default:boolean}](each version: settings, workers, queue, totals, samples),"      \
  "loads:[object](registrations running or failed),recent_errors:[object](the last errors "       \
  "answered)} the server's status"

#define PREDICT_BODY "application/json=any|application/octet-stream|multipart/form-data|*/*"
#define PREDICT_REPLIES                                                                            \
  "200:<*/*>the handler's output|400:bad input|404:no such model or version|413:body too "              \
  "large|503:queue full or no workers|504:response timeout"
#define V2_BODY "application/json|application/octet-stream|*/*"
#define REGISTER_QUERY                                                                             \
  "url:string|model_name:string|handler:string|runtime:string|batch_size:integer|"                 \
  "max_batch_delay:integer|initial_workers:integer|synchronous:boolean|response_timeout:"          \
  "integer|startup_timeout:integer"
#define SCALE_QUERY "min_worker:integer|max_worker:integer|synchronous:boolean|timeout:integer"

static const wk_route_t routes[] = {
    {ALL, "options", "/", WK_ROUTE_PUBLIC, describe, 1, "apiDescription", "This port's API description (OpenAPI 3.0)",
     NULL, NULL, "200:" OPENAPI_DOC},
    {ALL, "get", "/api-description", WK_ROUTE_PUBLIC, describe, 0, "getApiDescription",
     "This port's API description (OpenAPI 3.0)", NULL, NULL, "200:" OPENAPI_DOC},
    /* the status page ([13]): static, so public; its data comes from /status.json */
    {MGT, "get", "/", WK_ROUTE_PUBLIC, root, 0, "root",
     "The status page for a browser (Accept: text/html), else this API description", NULL, NULL,
     "200:<text/html,application/json>" OPENAPI_DOC "; or the status page"},
    {MGT, "get", "/status", WK_ROUTE_PUBLIC, wk_api_status_page, 0, "statusPage",
     "The status page (HTML; it reads /status.json with the key typed into it)", NULL, NULL,
     "200:<text/html>the status page"},

    /* inference port: TorchServe's routes (api.c) */
    {INF, "get", "/ping", WK_ROUTE_PUBLIC, wk_api_ping, 0, "ping", "Health of the server and its models", NULL, NULL,
     "200:{status:=Healthy(every model is healthy)} healthy|500:{status:=Unhealthy(a model is "
     "not)} unhealthy"},
    {INF, "post", "/ping", WK_ROUTE_PUBLIC, wk_api_ping, 0, "pingPost", "Health of the server (as GET)", NULL, NULL,
     "200:{status:=Healthy(every model is healthy)} healthy|500:{status:=Unhealthy(a model is "
     "not)} unhealthy"},
    {INF, "*", "/ping", WK_ROUTE_PUBLIC, wk_api_ping, 0, "pingAny", "Health (any method, as TorchServe)", NULL, NULL, NULL},
    {INF, "options", "/predictions/{model_name}", 0, model_doc, 0, "predictionsApi",
     "The prediction routes of one model (OpenAPI 3.0)", NULL, NULL, "200:" OPENAPI_DOC "|404:no such model"},
    {INF, "options", "/predictions/{model_name}/{model_version}", 0, model_doc, 0, "versionPredictionsApi",
     "The prediction routes of one version (OpenAPI 3.0)", NULL, NULL,
     "200:" OPENAPI_DOC "|404:no such model or version"},
    {INF, "post", "/predictions/{model_name}", 0, wk_api_predictions, 0, "predictions", "Predict with the default version",
     NULL, PREDICT_BODY, PREDICT_REPLIES},
    {INF, "put", "/predictions/{model_name}", 0, wk_api_predictions, 0, "predictionsPut", "Predict (as POST)", NULL,
     PREDICT_BODY, PREDICT_REPLIES},
    {INF, "post", "/predictions/{model_name}/{model_version}", 0, wk_api_predictions, 0, "versionPredictions",
     "Predict with one version", NULL, PREDICT_BODY, PREDICT_REPLIES},
    {INF, "put", "/predictions/{model_name}/{model_version}", 0, wk_api_predictions, 0, "versionPredictionsPut",
     "Predict with one version (as POST)", NULL, PREDICT_BODY, PREDICT_REPLIES},
    {INF, "post", "/explanations/{model_name}", 0, wk_api_predictions, 1, "explanations",
     "Explain with the default version (integrated gradients or the handler's explain)",
     "target:integer|n_steps:integer", PREDICT_BODY, PREDICT_REPLIES},
    {INF, "put", "/explanations/{model_name}", 0, wk_api_predictions, 1, "explanationsPut", "Explain (as POST)",
     "target:integer|n_steps:integer", PREDICT_BODY, PREDICT_REPLIES},
    {INF, "post", "/explanations/{model_name}/{model_version}", 0, wk_api_predictions, 1, "versionExplanations",
     "Explain with one version", "target:integer|n_steps:integer", PREDICT_BODY, PREDICT_REPLIES},
    {INF, "put", "/explanations/{model_name}/{model_version}", 0, wk_api_predictions, 1, "versionExplanationsPut",
     "Explain with one version (as POST)", "target:integer|n_steps:integer", PREDICT_BODY,
     PREDICT_REPLIES},
    /* TorchServe hands a prediction route any method (a GET reaches the handler too), and
     * still answers its older routes; not in the description */
    {INF, "*", "/predictions/{model_name}", 0, wk_api_predictions, 0, "predictionsAny", "", NULL, NULL, NULL},
    {INF, "*", "/predictions/{model_name}/{model_version}", 0, wk_api_predictions, 0, "versionPredictionsAny", "",
     NULL, NULL, NULL},
    {INF, "*", "/explanations/{model_name}", 0, wk_api_predictions, 1, "explanationsAny", "", NULL, NULL, NULL},
    {INF, "*", "/explanations/{model_name}/{model_version}", 0, wk_api_predictions, 1, "versionExplanationsAny", "",
     NULL, NULL, NULL},
    {INF, "*", "/invocations", 0, wk_api_invocations, 0, "invocations", "", NULL, NULL, NULL},
    {INF, "*", "/models/{model_name}/invoke", 0, wk_api_predictions, 0, "invoke", "", NULL, NULL, NULL},
    {INF, "*", "/{model_name}/predict", 0, wk_api_predictions, 0, "legacyPredict", "", NULL, NULL, NULL},
    {INF, "*", "/{model_name}/{model_version}/predict", 0, wk_api_predictions, 0, "legacyVersionPredict", "", NULL,
     NULL, NULL},

    /* inference port: KServe v1 (api.c) */
    {INF, "get", "/v1/models", 0, wk_api_v1_list, 0, "kserveV1List", "KServe v1: the models' names", NULL, NULL,
     "200:{models:[string](the models' names)} the models"},
    {INF, "get", "/v1/models/{model_name}", 0, wk_api_v1_ready, 0, "kserveV1Ready", "KServe v1: model readiness", NULL,
     NULL, "200:" READY_REPLY " ready|404:no such model|503:" NOT_READY " not ready"},
    {INF, "post", "/v1/models/{model_name}:predict", 0, wk_api_v1_predict, 0, "kserveV1Predict",
     "KServe v1: {\"instances\"|\"inputs\": [...]} -> {\"predictions\": [...]}", NULL,
     "application/json|*/*", "200:{predictions:[any](an answer per instance)} the answers|400:bad input|404:no such "
     "model|503:queue full or no workers"},
    {INF, "post", "/v1/models/{model_name}:explain", 0, wk_api_v1_predict, 1, "kserveV1Explain",
     "KServe v1: explanations of the instances", NULL, "application/json|*/*",
     "200:{explanations:[any](an explanation per instance)} the explanations|400:bad input|404:no "
     "such model|503:queue full or no workers"},

    /* inference port: KServe v2 / Open Inference Protocol (api.c) */
    {INF, "get", "/v2", 0, wk_api_v2_server, 0, "kserveV2Server", "Server metadata (name, version, extensions)", NULL,
     NULL, "200:{name:string(wick),version:string,extensions:[string]} server metadata"},
    {INF, "get", "/v2/health/live", WK_ROUTE_PUBLIC, wk_api_v2_live, 0, "kserveV2Live", "Server liveness", NULL, NULL,
     "200:{live:boolean(true)} live"},
    {INF, "get", "/v2/health/ready", WK_ROUTE_PUBLIC, wk_api_v2_ready, 0, "kserveV2Ready",
     "Server readiness (every model healthy)", NULL, NULL,
     "200:{ready:boolean(true)} ready|400:{ready:boolean(false)} not ready"},
    /* Triton's extensions: statistics, model configuration, the model repository */
    {INF, "get", "/v2/models/stats", 0, wk_api_v2_stats, 0, "tritonStats", "Statistics of every model version",
     NULL, NULL, "200:" TRITON_STATS " statistics"},
    {INF, "get", "/v2/models/{model_name}/stats", 0, wk_api_v2_stats, 0, "tritonModelStats",
     "Statistics of a model's versions", NULL, NULL, "200:" TRITON_STATS " statistics|404:no such model or version"},
    {INF, "get", "/v2/models/{model_name}/versions/{model_version}/stats", 0, wk_api_v2_stats, 0,
     "tritonVersionStats", "Statistics of one version", NULL, NULL,
     "200:" TRITON_STATS " statistics|404:no such model or version"},
    {INF, "get", "/v2/models/{model_name}/config", 0, wk_api_v2_config, 0, "tritonModelConfig",
     "The model's configuration as Triton writes it", NULL, NULL, "200:" TRITON_CONFIG " the configuration|404:no such model or version"},
    {INF, "get", "/v2/models/{model_name}/versions/{model_version}/config", 0, wk_api_v2_config, 0,
     "tritonVersionConfig", "One version's configuration", NULL, NULL,
     "200:" TRITON_CONFIG " the configuration|404:no such model or version"},
    {INF, "post", "/v2/repository/index", WK_ROUTE_MGMT_KEY, wk_mgmt_repo_index, 0, "tritonRepositoryIndex",
     "The model store's archives and the registered versions, with their state", NULL, "application/json",
     "200:[{name:string,version?:string(registered versions only),state:=READY/UNAVAILABLE/LOADING,"
     "reason:string(why not ready; unloaded: in the store, not registered)}] the models|400:bad body"},
    {INF, "post", "/v2/repository/models/{model_name}/load", WK_ROUTE_MODEL_API | WK_ROUTE_MGMT_KEY, wk_mgmt_repo_load,
     0, "tritonLoad", "Register {model_name}.mar (or the folder) of the model store, as POST /models does",
     NULL, "application/json", "200:{} loaded|400:bad request|404:no such archive"},
    {INF, "post", "/v2/repository/models/{model_name}/unload", WK_ROUTE_MODEL_API | WK_ROUTE_MGMT_KEY,
     wk_mgmt_repo_unload, 0, "tritonUnload", "Unregister every version of the model", NULL, "application/json",
     "200:{} unloaded|400:not loaded|404:no such model"},
    {INF, "get", "/v2/models/{model_name}", 0, wk_api_v2_metadata, 0, "kserveV2ModelMetadata",
     "Model metadata: inputs and outputs with name, datatype and shape", NULL, NULL,
     "200:" V2_METADATA " model metadata|404:no such model or version"},
    {INF, "get", "/v2/models/{model_name}/ready", 0, wk_api_v2_model_ready, 0, "kserveV2ModelReady", "Model readiness", NULL,
     NULL, "200:" READY_REPLY " ready|400:" NOT_READY " not ready|404:no such model or version"},
    {INF, "post", "/v2/models/{model_name}/infer", 0, wk_api_v2_infer, 0, "kserveV2Infer",
     "Inference, JSON or the binary tensor data extension", NULL, V2_BODY,
     V2_INFER_REPLY "|400:bad input|404:no such model or version|503:queue full or no workers"},
    {INF, "post", "/v2/models/{model_name}/explain", 0, wk_api_v2_infer, 1, "kserveV2Explain",
     "Explanation, as TorchServe routes it: the handler's explain", NULL, V2_BODY,
     V2_INFER_REPLY "|400:bad input|404:no such model or version|503:queue full or no workers"},
    {INF, "get", "/v2/models/{model_name}/versions/{model_version}", 0, wk_api_v2_metadata, 0, "kserveV2VersionMetadata",
     "Metadata of one version", NULL, NULL, "200:" V2_METADATA " model metadata|404:no such model or version"},
    {INF, "get", "/v2/models/{model_name}/versions/{model_version}/ready", 0, wk_api_v2_model_ready, 0,
     "kserveV2VersionReady", "Readiness of one version", NULL, NULL,
     "200:" READY_REPLY " ready|400:" NOT_READY " not ready|404:no such model or version"},
    {INF, "post", "/v2/models/{model_name}/versions/{model_version}/infer", 0, wk_api_v2_infer, 0,
     "kserveV2VersionInfer", "Inference with one version", NULL, V2_BODY,
     V2_INFER_REPLY "|400:bad input|404:no such model or version|503:queue full or no workers"},
    {INF, "post", "/v2/models/{model_name}/versions/{model_version}/explain", 0, wk_api_v2_infer, 1,
     "kserveV2VersionExplain", "Explanation with one version", NULL, V2_BODY,
     V2_INFER_REPLY "|400:bad input|404:no such model or version|503:queue full or no workers"},

    /* management port (management.c; /token: auth.c) */
    {MGT, "get", "/models", 0, wk_mgmt_list, 0, "listModels", "Registered models, a page at a time",
     "limit:integer=100|next_page_token:string=0", NULL, "200:" MODEL_LIST " a page of models|400:bad parameter"},
    {MGT, "post", "/models", WK_ROUTE_MODEL_API, wk_mgmt_register, 0, "registerModel",
     "Register a model archive from the model store or an allowed URL", REGISTER_QUERY,
     "application/json",
     "200:" STATUS_REPLY " registered|202:" STATUS_REPLY " registered, workers starting|400:bad parameter or archive|404:no "
     "such archive|409:already registered"},
    {MGT, "get", "/models/{model_name}", 0, wk_mgmt_describe, 0, "describeModel", "Describe the default version", NULL,
     NULL, "200:" MODEL_DESCRIPTION " the default version|404:no such model"},
    {MGT, "put", "/models/{model_name}", 0, wk_mgmt_scale, 0, "setAutoScale", "Scale the default version's workers",
     SCALE_QUERY, NULL,
     "200:" STATUS_REPLY " scaled|202:" STATUS_REPLY " scaling|206:" STATUS_REPLY " scaling in progress|400:bad parameter|404:no "
     "such model"},
    {MGT, "delete", "/models/{model_name}", WK_ROUTE_MODEL_API, wk_mgmt_unregister, 0, "unregisterModel",
     "Unregister the default version", NULL, NULL, "200:" STATUS_REPLY " unregistered|404:no such model"},
    {MGT, "get", "/models/{model_name}/{model_version}", 0, wk_mgmt_describe, 0, "versionDescribeModel",
     "Describe one version ('all': every version)", NULL, NULL,
     "200:" MODEL_DESCRIPTION " the version, or every one|404:no such model or version"},
    {MGT, "put", "/models/{model_name}/{model_version}", 0, wk_mgmt_scale, 0, "versionSetAutoScale",
     "Scale one version's workers", SCALE_QUERY, NULL,
     "200:" STATUS_REPLY " scaled|202:" STATUS_REPLY " scaling|206:" STATUS_REPLY " scaling in progress|400:bad parameter|404:no such model or "
     "version"},
    {MGT, "delete", "/models/{model_name}/{model_version}", WK_ROUTE_MODEL_API, wk_mgmt_unregister, 0, "versionUnregisterModel",
     "Unregister one version", NULL, NULL,
     "200:" STATUS_REPLY " unregistered|403:the default version of several|404:no such model or version"},
    {MGT, "put", "/models/{model_name}/{model_version}/set-default", 0, wk_mgmt_set_default, 0, "setDefault",
     "Make a version the default", NULL, NULL, "200:" STATUS_REPLY " done|404:no such model or version"},
    {MGT, "get", "/status.json", 0, wk_api_status_json, 0, "status",
     "The operator's view: models, workers, queues, the last minutes' samples, recent errors",
     NULL, NULL, "200:" STATUS_JSON},
    {MGT, "get", "/token", WK_ROUTE_AUTH, token, 0, "token",
     "Replace the inference or management key (needs the API key)", "type:string", NULL,
     "200:{management?:{key:string,expiration time?:string},inference?:{key:string,"
     "expiration time?:string}} the new key of the type asked for|400:bad type|401:not the API key"},

    /* metrics port (api.c) */
    {MET, "get", "/metrics", WK_ROUTE_PUBLIC, wk_api_metrics_text, 0, "metrics",
     "Prometheus text format (name[]=X, repeated: only those families)", "name[]:string", NULL,
     "200:<text/plain>metrics in Prometheus' text format"},
};

#undef INF
#undef MGT
#undef MET
#undef ALL

const wk_route_t *wk_routes(size_t *n) {
  *n = sizeof routes / sizeof routes[0];
  return routes;
}

int wk_route_enabled(const wk_api_t *api, const wk_route_t *r, int for_description) {
  if ((r->flags & WK_ROUTE_AUTH) && api->auth == NULL) return 0;
  if (for_description && strcmp(r->method, "*") == 0) return 0; /* compatibility only */
  if (for_description && (r->flags & WK_ROUTE_MODEL_API)) {
    const char *v = api->config ? wk_props_get(&api->config->props, "enable_model_api") : NULL;
    if (v == NULL || strcasecmp(v, "true") != 0) return 0;
  }
  return 1;
}

#define MAX_SEGS 8

/* Splits "/a/b/c" into segments, in place in buf. Returns the count, or -1 if too many. */
static int split(const char *path, char *buf, size_t buflen, char **segs) {
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

/* Matches segment seg against one template segment t (tlen bytes): a literal, or a capture
 * "{name}" with an optional literal suffix. A capture takes at least one byte, and no ':'.
 * Sets *name / *value for a capture; 1 if it matches. */
static int match_seg(const char *t, size_t tlen, char *seg, const char **name, size_t *namelen,
                     char **value, size_t *valuelen) {
  *name = NULL;
  if (tlen == 0 || t[0] != '{') return strlen(seg) == tlen && memcmp(seg, t, tlen) == 0;
  const char *close = memchr(t, '}', tlen);
  if (close == NULL) return 0;
  const char *suffix = close + 1;
  size_t slen = tlen - (size_t)(suffix - t), n = strlen(seg);
  if (n <= slen || memcmp(seg + n - slen, suffix, slen) != 0) return 0;
  if (memchr(seg, ':', n - slen) != NULL) return 0;
  *name = t + 1;
  *namelen = (size_t)(close - t - 1);
  *value = seg;
  *valuelen = n - slen;
  return 1;
}

/* What a template captured: where each value starts in the path's segments and how long
 * it is (a suffix such as ":predict" is cut off only once the route is chosen). */
typedef struct {
  char *at[2]; /* model_name, model_version */
  size_t len[2];
} captures_t;

/* 1 if segs match template path. */
static int match(const char *path, char **segs, int nsegs, captures_t *c) {
  int k = 0;
  memset(c, 0, sizeof *c);
  for (const char *p = path; *p;) {
    while (*p == '/') p++;
    if (!*p) break;
    size_t tlen = strcspn(p, "/");
    if (k == nsegs) return 0;
    const char *name;
    size_t namelen, valuelen;
    char *value;
    if (!match_seg(p, tlen, segs[k], &name, &namelen, &value, &valuelen)) return 0;
    if (name) {
      int which = namelen == 13 && strncmp(name, "model_version", 13) == 0;
      c->at[which] = value;
      c->len[which] = valuelen;
    }
    k++;
    p += tlen;
  }
  return k == nsegs;
}

const wk_route_t *wk_route_find(const wk_api_t *api, wk_port_t port, const char *method,
                                const char *path, char *buf, size_t buflen, wk_route_args_t *args,
                                char allow[WK_ROUTE_MAX_ALLOW]) {
  char *segs[MAX_SEGS];
  allow[0] = '\0';
  memset(args, 0, sizeof *args);
  args->port = port;
  int n = split(path, buf, buflen, segs);
  if (n < 0 || strlen(path) >= buflen) return NULL;
  size_t used = 0;
  int public_path = 1;
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    const wk_route_t *r = &routes[i];
    if (!(r->ports & port) || !wk_route_enabled(api, r, 0)) continue;
    captures_t c;
    if (!match(r->path, segs, n, &c)) continue;
    if (strcasecmp(r->method, method) == 0 || strcmp(r->method, "*") == 0) {
      for (int k = 0; k < 2; k++)
        if (c.at[k]) c.at[k][c.len[k]] = '\0';
      args->model_name = c.at[0];
      args->model_version = c.at[1];
      args->arg = r->arg;
      return r;
    }
    /* the path is right, the method is not: list the ones it has, upper case */
    public_path &= (r->flags & WK_ROUTE_PUBLIC) != 0;
    char up[16];
    size_t m = 0;
    for (; r->method[m] && m < sizeof up - 1; m++) up[m] = (char)toupper((unsigned char)r->method[m]);
    up[m] = '\0';
    if (strstr(allow, up) == NULL && used + m + 2 < WK_ROUTE_MAX_ALLOW)
      used += (size_t)snprintf(allow + used, WK_ROUTE_MAX_ALLOW - used, "%s%s", used ? ", " : "", up);
  }
  args->public_path = used > 0 && public_path;
  return NULL;
}

/* ---- answers of the table itself ---- */

/* Replies the OpenAPI document of the routes of a's port that pass keep. */
static void describe_some(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a,
                          int (*keep)(const wk_route_t *)) {
  const wk_route_t *list[sizeof routes / sizeof routes[0]];
  size_t n = 0;
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
    if ((routes[i].ports & a->port) && wk_route_enabled(api, &routes[i], 1) &&
        (keep == NULL || keep(&routes[i])))
      list[n++] = &routes[i];
  wk_buf_t b = WK_BUF_INIT;
  if (wk_openapi_describe(api, a->port, list, n, &b) != 0) {
    wk_buf_destroy(&b);
    wk_http_reply_error(req, 500, "InternalServerException", "out of memory");
    return;
  }
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  wk_http_reply(req, 200, "application/json", body, len);
}

static void describe(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  describe_some(api, req, a, NULL);
}

/* GET / on the management port: a browser gets the status page, anything else (curl,
 * scripts) the API description, as OPTIONS / answers. */
static void root(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  wk_http_reply_header(req, "Vary", "Accept");
  if (wk_api_wants_html(req)) wk_api_status_page(api, req, a);
  else describe(api, req, a);
}

/* The routes a model predicts through, as TorchServe's per-model description lists them. */
static int predicts(const wk_route_t *r) {
  return strcmp(r->method, "post") == 0 && r->arg == 0 &&
         (strcmp(r->path, "/predictions/{model_name}") == 0 ||
          strcmp(r->path, "/v1/models/{model_name}:predict") == 0 ||
          strcmp(r->path, "/v2/models/{model_name}/infer") == 0);
}

/* OPTIONS /predictions/{model}: that model's prediction routes (404 when it is not there). */
static void model_doc(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  if (wk_api_model_exists(api, req, a)) describe_some(api, req, a, predicts);
}

/* GET /token: the API key is checked by auth.c itself. */
static void token(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  (void)a;
  wk_auth_token_request(api->auth, req);
}

/* ---- the routers ---- */

static void no_route(wk_http_req_t *req, const char *allow) {
  const char *path = wk_http_req_path(req), *method = wk_http_req_method(req);
  int kserve = strncmp(path, "/v1/", 4) == 0 || strncmp(path, "/v2/", 4) == 0 || strcmp(path, "/v2") == 0;
  if (*allow) {
    wk_http_reply_header(req, "Allow", allow);
    wk_http_reply_error(req, 405, "MethodNotAllowedException", "%s %s is not supported; use %s",
                        method, path, allow);
  } else if (kserve) {
    wk_http_reply_kserve_error(req, 404, "ResourceNotFoundException", "%s is not a route of this server (OPTIONS / lists them)",
                               path);
  } else {
    wk_http_reply_error(req, 404, "ResourceNotFoundException",
                        "Requested resource is not found, please refer to API document.");
  }
}

/* The gate: refuses requests while the server stops, then asks for the key the route's
 * auth class needs, then answers through the route (or 404/405). */
static void dispatch(wk_api_t *api, wk_port_t port, wk_http_req_t *req) {
  char buf[WK_MAX_URL_PATH];
  char allow[WK_ROUTE_MAX_ALLOW];
  wk_route_args_t args;
  pthread_rwlock_rdlock(&api->lock);
  if (api->stopping) {
    pthread_rwlock_unlock(&api->lock);
    wk_http_reply_error(req, 503, "ServiceUnavailableException", "the server is shutting down");
    return;
  }
  const wk_route_t *r = wk_route_find(api, port, wk_http_req_method(req), wk_http_req_path(req),
                                      buf, sizeof buf, &args, allow);
  int open = api->auth == NULL || port == WK_PORT_METRICS ||
             (r != NULL && (r->flags & (WK_ROUTE_PUBLIC | WK_ROUTE_AUTH))) ||
             (r == NULL && args.public_path);
  int inference_key = port == WK_PORT_INFERENCE && !(r && (r->flags & WK_ROUTE_MGMT_KEY));
  if (open || wk_auth_check(api->auth, req, inference_key ? WK_AUTH_INFERENCE : WK_AUTH_MANAGEMENT)) {
    if (r != NULL) r->fn(api, req, &args);
    else no_route(req, allow);
  }
  pthread_rwlock_unlock(&api->lock);
}

void wk_api_inference(wk_http_req_t *req, void *api) { dispatch(api, WK_PORT_INFERENCE, req); }
void wk_api_management(wk_http_req_t *req, void *api) { dispatch(api, WK_PORT_MANAGEMENT, req); }
void wk_api_metrics(wk_http_req_t *req, void *api) { dispatch(api, WK_PORT_METRICS, req); }
