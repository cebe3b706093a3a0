/* TorchServe's gRPC management service ([12] part 2): each call becomes an in-process
 * request for the management HTTP route of the same name (http/server.h's local requests)
 * and goes through the same gate (stopping, token authorization from the `authorization`
 * metadata, enable_model_api) and the same code, so the two transports cannot drift apart.
 * The route's answer comes back as TorchServe's ManagementResponse: describe and list hand
 * over their JSON, the others the text of their {"status": ...}; an error status becomes
 * the gRPC status TorchServe gives it, with the message and the error's type on a second
 * line (TorchServe adds its exception's class there).
 *
 * Each call runs on a thread of its own (run()), so that a synchronous scale, an
 * unregister waiting for its requests or a customized describe does not hold up the other
 * calls of its connection. */
#include "api/grpc_api.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "http/server.h"
#include "management.pb-c.h"

#define SERVICE "/org.pytorch.serve.grpc.management.ManagementAPIsService/"

typedef struct {
  wk_grpc_call_t *call;
  int status_text; /* the reply's msg is the "status" field of the route's JSON */
} pending_t;

static void answer_msg(wk_grpc_call_t *call, const char *msg) {
  Org__Pytorch__Serve__Grpc__Management__ManagementResponse out =
      ORG__PYTORCH__SERVE__GRPC__MANAGEMENT__MANAGEMENT_RESPONSE__INIT;
  out.msg = (char *)msg;
  size_t n = org__pytorch__serve__grpc__management__management_response__get_packed_size(&out);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) {
    wk_grpc_fail(call, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory for the reply");
    return;
  }
  org__pytorch__serve__grpc__management__management_response__pack(&out, buf);
  wk_grpc_reply(call, buf, n);
  free(buf);
}

/* The route's reply, on whichever thread gave it. */
static void done(void *ud, int status, const char *content_type, char *body, size_t len) {
  (void)content_type;
  pending_t *p = ud;
  json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
  if (status >= 200 && status < 300) {
    const char *field = p->status_text ? json_string_value(json_object_get(j, "status")) : NULL;
    if (field != NULL) {
      answer_msg(p->call, field);
    } else {
      while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == '\r')) len--;
      char *text = strndup(body ? body : "", len);
      if (text) answer_msg(p->call, text);
      else wk_grpc_fail(p->call, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory for the reply");
      free(text);
    }
  } else {
    const char *msg = json_string_value(json_object_get(j, "message"));
    const char *type = json_string_value(json_object_get(j, "type"));
    char text[1400];
    if (msg == NULL) snprintf(text, sizeof text, "the management API answered %d", status);
    else if (type == NULL) snprintf(text, sizeof text, "%s", msg);
    else snprintf(text, sizeof text, "%s\n%s", msg, type);
    wk_grpc_fail(p->call, wk_grpc_code_for_http(status, 0), text);
  }
  json_decref(j);
  free(body);
  free(p);
}

static int gone(void *ud) { return wk_grpc_call_gone(((pending_t *)ud)->call); }

/* A path segment must not hold '/' (it would name another route) and must not be empty. */
static int segment_ok(const char *s) { return s != NULL && s[0] != '\0' && strchr(s, '/') == NULL; }

/* The request for `method path` on the call's behalf, carrying its authorization; NULL
 * after answering the call when out of memory. */
static wk_http_req_t *begin(wk_grpc_call_t *call, const char *method, const char *path,
                            int status_text) {
  pending_t *p = calloc(1, sizeof *p);
  wk_http_req_t *req = p ? wk_http_local_new("gRPC management", method, path, NULL, 0, done, gone, p) : NULL;
  if (req == NULL) {
    free(p);
    wk_grpc_fail(call, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  p->call = call;
  p->status_text = status_text;
  const char *auth = wk_grpc_call_metadata(call, "authorization");
  if (auth != NULL && wk_http_local_header(req, "Authorization", auth) != 0) {
    wk_http_local_discard(req);
    free(p);
    wk_grpc_fail(call, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  return req;
}

/* Adds key=value (value printed from an int) unless the value is 0, which in proto3 means
 * "not given": the route's default then applies, as TorchServe applies its own. */
static int int_arg(wk_http_req_t *req, const char *key, int32_t v) {
  if (v == 0) return 0;
  char text[16];
  snprintf(text, sizeof text, "%d", (int)v);
  return wk_http_local_arg(req, key, text);
}

static int str_arg(wk_http_req_t *req, const char *key, const char *v) {
  return v == NULL || v[0] == '\0' ? 0 : wk_http_local_arg(req, key, v);
}

/* Management calls run on a thread of their own: a synchronous register, scale or
 * unregister waits for workers, and on the connection's thread it held up every other
 * stream of that connection (a Ping behind a scale-up waited for the workers). They are
 * counted, so that shutdown can wait for them before the registry goes. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int running;
} g_calls = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

typedef struct {
  wk_http_req_t *req;
  void *api;
} call_job_t;

static void *call_main(void *arg) {
  call_job_t *j = arg;
  wk_api_management(j->req, j->api);
  free(j);
  pthread_mutex_lock(&g_calls.lock);
  g_calls.running--;
  pthread_cond_broadcast(&g_calls.cond);
  pthread_mutex_unlock(&g_calls.lock);
  return NULL;
}

/* Hands req to the management routes on a thread of its own (they answer through done;
 * inline when no thread can be had), or answers it here when an argument could not be
 * added. */
static void run(wk_http_req_t *req, int args_failed, void *api) {
  if (args_failed) {
    wk_http_reply_error(req, 500, "InternalServerException", "out of memory");
    return;
  }
  call_job_t *j = malloc(sizeof *j);
  pthread_attr_t attr;
  pthread_t t;
  int started = 0;
  if (j != NULL && pthread_attr_init(&attr) == 0) {
    j->req = req;
    j->api = api;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&g_calls.lock);
    started = pthread_create(&t, &attr, call_main, j) == 0;
    if (started) g_calls.running++;
    pthread_mutex_unlock(&g_calls.lock);
    pthread_attr_destroy(&attr);
  }
  if (!started) {
    free(j);
    wk_api_management(req, api);
  }
}

void wk_grpc_management_shutdown(int timeout_s) {
  int64_t give_up = wk_now_us() + (int64_t)timeout_s * 1000000;
  pthread_mutex_lock(&g_calls.lock);
  while (g_calls.running > 0 && wk_now_us() < give_up) {
    struct timespec until;
    wk_realtime_in(100000, &until);
    pthread_cond_timedwait(&g_calls.cond, &g_calls.lock, &until);
  }
  int left = g_calls.running;
  pthread_mutex_unlock(&g_calls.lock);
  if (left > 0) wk_log_warn("%d gRPC management call(s) still running after %d s; stopping anyway", left, timeout_s);
}

/* "/models/<name>" or "/models/<name>/<version>" (+ suffix), or 0 after answering
 * NOT_FOUND / INVALID_ARGUMENT for a name or version that cannot be a path segment. */
static int model_path(wk_grpc_call_t *call, const char *name, const char *version, const char *suffix,
                      char *out, size_t size) {
  if (name == NULL || name[0] == '\0') {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "model_name is required");
    return 0;
  }
  int has_version = version != NULL && version[0] != '\0';
  if (!segment_ok(name) || (has_version && !segment_ok(version))) {
    char text[400];
    snprintf(text, sizeof text, "Model not found: %.300s", name);
    wk_grpc_fail(call, WK_GRPC_NOT_FOUND, text);
    return 0;
  }
  int n = has_version ? snprintf(out, size, "/models/%s/%s%s", name, version, suffix)
                      : snprintf(out, size, "/models/%s%s", name, suffix);
  if (n < 0 || (size_t)n >= size) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "model_name or model_version is too long");
    return 0;
  }
  return 1;
}

/* DescribeModel -> GET /models/{name}[/{version}][?customized=true] */
static void describe(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  Org__Pytorch__Serve__Grpc__Management__DescribeModelRequest *in =
      org__pytorch__serve__grpc__management__describe_model_request__unpack(NULL, len, msg);
  if (in == NULL) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "DescribeModel takes a DescribeModelRequest; the message is not one");
    return;
  }
  char path[700];
  wk_http_req_t *req;
  if (model_path(call, in->model_name, in->model_version, "", path, sizeof path) &&
      (req = begin(call, "GET", path, 0)) != NULL)
    run(req, in->customized ? wk_http_local_arg(req, "customized", "true") : 0, api);
  org__pytorch__serve__grpc__management__describe_model_request__free_unpacked(in, NULL);
}

/* ListModels -> GET /models?limit=&next_page_token= */
static void list(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  Org__Pytorch__Serve__Grpc__Management__ListModelsRequest *in =
      org__pytorch__serve__grpc__management__list_models_request__unpack(NULL, len, msg);
  if (in == NULL) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "ListModels takes a ListModelsRequest; the message is not one");
    return;
  }
  wk_http_req_t *req = begin(call, "GET", "/models", 0);
  if (req)
    run(req, int_arg(req, "limit", in->limit) || int_arg(req, "next_page_token", in->next_page_token), api);
  org__pytorch__serve__grpc__management__list_models_request__free_unpacked(in, NULL);
}

/* RegisterModel -> POST /models?url=...; synchronous is sent either way (its proto3
 * default, false, is TorchServe's gRPC default too, unlike HTTP's true). */
static void register_model(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  Org__Pytorch__Serve__Grpc__Management__RegisterModelRequest *in =
      org__pytorch__serve__grpc__management__register_model_request__unpack(NULL, len, msg);
  if (in == NULL) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "RegisterModel takes a RegisterModelRequest; the message is not one");
    return;
  }
  wk_http_req_t *req = begin(call, "POST", "/models", 1);
  if (req) {
    int failed = str_arg(req, "url", in->url) || str_arg(req, "model_name", in->model_name) ||
                 str_arg(req, "handler", in->handler) || str_arg(req, "runtime", in->runtime) ||
                 int_arg(req, "batch_size", in->batch_size) ||
                 int_arg(req, "max_batch_delay", in->max_batch_delay) ||
                 int_arg(req, "initial_workers", in->initial_workers) ||
                 int_arg(req, "response_timeout", in->response_timeout) ||
                 wk_http_local_arg(req, "synchronous", in->synchronous ? "true" : "false");
    run(req, failed, api);
  }
  org__pytorch__serve__grpc__management__register_model_request__free_unpacked(in, NULL);
}

/* ScaleWorker -> PUT /models/{name}[/{version}]?min_worker=&max_worker=&synchronous= */
static void scale(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  Org__Pytorch__Serve__Grpc__Management__ScaleWorkerRequest *in =
      org__pytorch__serve__grpc__management__scale_worker_request__unpack(NULL, len, msg);
  if (in == NULL) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "ScaleWorker takes a ScaleWorkerRequest; the message is not one");
    return;
  }
  char path[700];
  wk_http_req_t *req;
  if (model_path(call, in->model_name, in->model_version, "", path, sizeof path) &&
      (req = begin(call, "PUT", path, 1)) != NULL) {
    int failed = int_arg(req, "min_worker", in->min_worker) || int_arg(req, "max_worker", in->max_worker) ||
                 int_arg(req, "timeout", in->timeout) ||
                 wk_http_local_arg(req, "synchronous", in->synchronous ? "true" : "false");
    run(req, failed, api);
  }
  org__pytorch__serve__grpc__management__scale_worker_request__free_unpacked(in, NULL);
}

/* SetDefault -> PUT /models/{name}/{version}/set-default */
static void set_default(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  Org__Pytorch__Serve__Grpc__Management__SetDefaultRequest *in =
      org__pytorch__serve__grpc__management__set_default_request__unpack(NULL, len, msg);
  if (in == NULL) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "SetDefault takes a SetDefaultRequest; the message is not one");
    return;
  }
  char path[700];
  wk_http_req_t *req;
  if (in->model_version == NULL || in->model_version[0] == '\0')
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "model_version is required: the version to make the default");
  else if (model_path(call, in->model_name, in->model_version, "/set-default", path, sizeof path) &&
           (req = begin(call, "PUT", path, 1)) != NULL)
    run(req, 0, api);
  org__pytorch__serve__grpc__management__set_default_request__free_unpacked(in, NULL);
}

/* UnregisterModel -> DELETE /models/{name}[/{version}] */
static void unregister(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  Org__Pytorch__Serve__Grpc__Management__UnregisterModelRequest *in =
      org__pytorch__serve__grpc__management__unregister_model_request__unpack(NULL, len, msg);
  if (in == NULL) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "UnregisterModel takes an UnregisterModelRequest; the message is not one");
    return;
  }
  char path[700];
  wk_http_req_t *req;
  if (model_path(call, in->model_name, in->model_version, "", path, sizeof path) &&
      (req = begin(call, "DELETE", path, 1)) != NULL)
    run(req, 0, api);
  org__pytorch__serve__grpc__management__unregister_model_request__free_unpacked(in, NULL);
}

const wk_grpc_method_t wk_grpc_management_methods[] = {
    {SERVICE "DescribeModel", describe}, {SERVICE "ListModels", list},
    {SERVICE "RegisterModel", register_model}, {SERVICE "ScaleWorker", scale},
    {SERVICE "SetDefault", set_default}, {SERVICE "UnregisterModel", unregister},
};
const size_t wk_grpc_management_n_methods =
    sizeof wk_grpc_management_methods / sizeof wk_grpc_management_methods[0];
