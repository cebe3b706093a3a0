/* KServe's Open Inference Protocol over gRPC ([12] part 3): inference.GRPCInferenceService
 * (tritonclient.grpc and KServe clients), the same methods under TorchServe's package name
 * for its Open Inference service, and grpc.health.v1.Health, on the inference gRPC port.
 *
 * Each call becomes an in-process request for the v2 HTTP route of the same meaning
 * (http/server.h's local requests): the gate (stopping, the inference key from the
 * `authorization` metadata), the registry lookups and the v2 code are the HTTP ones, so the
 * two cannot answer differently. ModelInfer's message is decoded straight into the v2
 * request the HTTP route would parse from a body (tensor/oip.h; typed `contents` packed to
 * raw bytes first), every output asked for in binary, and handed to the route beside an
 * empty body (wk_http_local_set_decoded), so no JSON is written or read on the way in; the
 * reply's JSON header (found by parsing it) and the bytes after it become the
 * ModelInferResponse with raw_output_contents. */
#include "api/grpc_v2.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc_predict_v2.pb-c.h"
#include "http/server.h"
#include "tensor/oip.h"

/* ---- a call's in-process request and its answer ---- */

/* Turns the route's answer into the method's reply: status, the JSON that starts the body
 * (NULL when it is not JSON), and the bytes after that JSON (binary tensor data). */
typedef void (*answer_fn)(wk_grpc_call_t *call, int status, json_t *j, const uint8_t *tail, size_t tail_len);

typedef struct {
  wk_grpc_call_t *call;
  answer_fn answer;
  wk_oip_request_t *decoded; /* ModelInfer's request, until the route has answered */
} pending_t;

/* An error reply of the v2 routes ({"error": ...}) as a gRPC status. */
static void fail_from(wk_grpc_call_t *call, int status, json_t *j) {
  const char *msg = json_string_value(json_object_get(j, "error"));
  if (msg == NULL) msg = json_string_value(json_object_get(j, "message"));
  char text[300];
  if (msg == NULL) snprintf(text, sizeof text, "the v2 route answered %d", status);
  wk_grpc_fail(call, wk_grpc_code_for_http(status, 0), msg ? msg : text);
}

static void done(void *ud, int status, const char *content_type, char *body, size_t len) {
  (void)content_type;
  pending_t *p = ud;
  json_error_t e;
  json_t *j = body && len ? json_loadb(body, len, JSON_DISABLE_EOF_CHECK, &e) : NULL;
  size_t used = j ? (size_t)e.position : len;
  if (used > len) used = len;
  p->answer(p->call, status, j, (const uint8_t *)(body ? body : "") + used, len - used);
  json_decref(j);
  free(body);
  if (p->decoded) {
    wk_oip_request_destroy(p->decoded); /* what the route did not take */
    free(p->decoded);
  }
  free(p);
}

static int gone(void *ud) { return wk_grpc_call_gone(((pending_t *)ud)->call); }

/* Hands `method path` to the inference routes on the call's behalf, with a decoded v2
 * request (taken; may be NULL) in place of a body; the answer goes to fn. Answers the call
 * itself when out of memory. */
static void ask(wk_grpc_call_t *call, void *api, const char *method, const char *path, wk_oip_request_t *decoded,
                answer_fn fn) {
  pending_t *p = calloc(1, sizeof *p);
  wk_http_req_t *req = p ? wk_http_local_new("gRPC inference", method, path, "", 0, done, gone, p) : NULL;
  const char *auth = wk_grpc_call_metadata(call, "authorization");
  if (req == NULL || (auth && wk_http_local_header(req, "Authorization", auth) != 0)) {
    wk_http_local_discard(req);
    free(p);
    if (decoded) wk_oip_request_destroy(decoded);
    free(decoded);
    wk_grpc_fail(call, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  p->call = call;
  p->answer = fn;
  p->decoded = decoded;
  if (decoded) wk_http_local_set_decoded(req, decoded);
  wk_api_inference(req, api);
}

/* Packs msg with its descriptor's functions and answers the call with it. */
static void reply_msg(wk_grpc_call_t *call, const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) {
    wk_grpc_fail(call, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory for the reply");
    return;
  }
  protobuf_c_message_pack(msg, buf);
  wk_grpc_reply(call, buf, n);
  free(buf);
}

/* "/v2/models/<name>[/versions/<version>]<suffix>", or 0 after answering the call. */
static int model_path(wk_grpc_call_t *call, const char *name, const char *version, const char *suffix,
                      char *out, size_t size) {
  if (name == NULL || name[0] == '\0') {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "the model name is required");
    return 0;
  }
  int has_version = version && version[0];
  if (strchr(name, '/') || (has_version && strchr(version, '/'))) {
    char text[300];
    snprintf(text, sizeof text, "model %.200s is not registered", name);
    wk_grpc_fail(call, WK_GRPC_NOT_FOUND, text);
    return 0;
  }
  int n = has_version ? snprintf(out, size, "/v2/models/%s/versions/%s%s", name, version, suffix)
                      : snprintf(out, size, "/v2/models/%s%s", name, suffix);
  if (n < 0 || (size_t)n >= size) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "the model name or version is too long");
    return 0;
  }
  return 1;
}

/* A small arena for the pieces of a reply message, freed at once after packing. */
typedef struct {
  void **p;
  size_t n, cap;
  int failed;
} arena_t;

static void *arena_alloc(arena_t *a, size_t size) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 32;
    void **p = realloc(a->p, cap * sizeof *p);
    if (p == NULL) {
      a->failed = 1;
      return NULL;
    }
    a->p = p;
    a->cap = cap;
  }
  void *x = calloc(1, size ? size : 1);
  if (x == NULL) {
    a->failed = 1;
    return NULL;
  }
  return a->p[a->n++] = x;
}

static void arena_free(arena_t *a) {
  for (size_t i = 0; i < a->n; i++) free(a->p[i]);
  free(a->p);
}

/* A JSON string's text, or "" (protobuf-c strings are never NULL). */
static char *str_of(json_t *j) {
  const char *s = json_string_value(j);
  return (char *)(s ? s : "");
}

/* A JSON array of integers as an int64 list in the arena. */
static int64_t *ints_of(arena_t *a, json_t *arr, size_t *n) {
  *n = json_array_size(arr);
  int64_t *v = arena_alloc(a, *n * sizeof *v);
  for (size_t i = 0; v && i < *n; i++) v[i] = json_integer_value(json_array_get(arr, i));
  return v;
}

/* ---- liveness, readiness, metadata ---- */

static void unpack_or_fail(wk_grpc_call_t *call, const ProtobufCMessageDescriptor *d, const uint8_t *msg,
                           size_t len, ProtobufCMessage **out) {
  *out = protobuf_c_message_unpack(d, NULL, len, msg);
  if (*out == NULL) {
    char text[200];
    snprintf(text, sizeof text, "the message is not a %s", d->name);
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, text);
  }
}

static void live_answer(wk_grpc_call_t *call, int status, json_t *j, const uint8_t *t, size_t n) {
  (void)t, (void)n;
  Inference__ServerLiveResponse out = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
  out.live = status == 200 && json_is_true(json_object_get(j, "live"));
  reply_msg(call, &out.base);
}

static void server_live(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  ProtobufCMessage *in;
  unpack_or_fail(call, &inference__server_live_request__descriptor, msg, len, &in);
  if (in == NULL) return;
  protobuf_c_message_free_unpacked(in, NULL);
  ask(call, api, "GET", "/v2/health/live", NULL, live_answer);
}

/* ready: 200 true, 400 false (the HTTP protocol's way of saying not ready) */
static void ready_answer(wk_grpc_call_t *call, int status, json_t *j, const uint8_t *t, size_t n) {
  (void)t, (void)n;
  if (status != 200 && status != 400 && status != 404) {
    fail_from(call, status, j);
    return;
  }
  Inference__ServerReadyResponse out = INFERENCE__SERVER_READY_RESPONSE__INIT;
  out.ready = status == 200 && json_is_true(json_object_get(j, "ready"));
  reply_msg(call, &out.base);
}

static void server_ready(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  ProtobufCMessage *in;
  unpack_or_fail(call, &inference__server_ready_request__descriptor, msg, len, &in);
  if (in == NULL) return;
  protobuf_c_message_free_unpacked(in, NULL);
  ask(call, api, "GET", "/v2/health/ready", NULL, ready_answer);
}

/* A model that is not registered is not ready (false, as Triton answers), not an error. */
static void model_ready_answer(wk_grpc_call_t *call, int status, json_t *j, const uint8_t *t, size_t n) {
  (void)t, (void)n;
  if (status != 200 && status != 400 && status != 404) {
    fail_from(call, status, j);
    return;
  }
  Inference__ModelReadyResponse out = INFERENCE__MODEL_READY_RESPONSE__INIT;
  out.ready = status == 200 && json_is_true(json_object_get(j, "ready"));
  reply_msg(call, &out.base);
}

static void model_ready(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  Inference__ModelReadyRequest *in =
      (Inference__ModelReadyRequest *)protobuf_c_message_unpack(&inference__model_ready_request__descriptor, NULL, len, msg);
  char path[700];
  if (in == NULL) wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "the message is not a ModelReadyRequest");
  else if (model_path(call, in->name, in->version, "/ready", path, sizeof path))
    ask(call, api, "GET", path, NULL, model_ready_answer);
  if (in) protobuf_c_message_free_unpacked(&in->base, NULL);
}

static void server_metadata_answer(wk_grpc_call_t *call, int status, json_t *j, const uint8_t *t, size_t n) {
  (void)t, (void)n;
  if (status != 200 || j == NULL) {
    fail_from(call, status, j);
    return;
  }
  Inference__ServerMetadataResponse out = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
  out.name = str_of(json_object_get(j, "name"));
  out.version = str_of(json_object_get(j, "version"));
  json_t *ext = json_object_get(j, "extensions");
  char *names[16];
  for (size_t i = 0; i < json_array_size(ext) && i < 16; i++) names[out.n_extensions++] = str_of(json_array_get(ext, i));
  out.extensions = names;
  reply_msg(call, &out.base);
}

static void server_metadata(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  ProtobufCMessage *in;
  unpack_or_fail(call, &inference__server_metadata_request__descriptor, msg, len, &in);
  if (in == NULL) return;
  protobuf_c_message_free_unpacked(in, NULL);
  ask(call, api, "GET", "/v2", NULL, server_metadata_answer);
}

static Inference__ModelMetadataResponse__TensorMetadata **tensor_list(arena_t *a, json_t *arr, size_t *n) {
  *n = json_array_size(arr);
  Inference__ModelMetadataResponse__TensorMetadata **v = arena_alloc(a, *n * sizeof *v);
  for (size_t i = 0; v && i < *n; i++) {
    json_t *t = json_array_get(arr, i);
    Inference__ModelMetadataResponse__TensorMetadata *m = arena_alloc(a, sizeof *m);
    if (m == NULL) return NULL;
    inference__model_metadata_response__tensor_metadata__init(m);
    m->name = str_of(json_object_get(t, "name"));
    m->datatype = str_of(json_object_get(t, "datatype"));
    m->shape = ints_of(a, json_object_get(t, "shape"), &m->n_shape);
    v[i] = m;
  }
  return v;
}

static void model_metadata_answer(wk_grpc_call_t *call, int status, json_t *j, const uint8_t *t, size_t n) {
  (void)t, (void)n;
  if (status != 200 || j == NULL) {
    fail_from(call, status, j);
    return;
  }
  arena_t a = {0};
  Inference__ModelMetadataResponse out = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
  out.name = str_of(json_object_get(j, "name"));
  out.platform = str_of(json_object_get(j, "platform"));
  json_t *versions = json_object_get(j, "versions");
  out.n_versions = json_array_size(versions);
  out.versions = arena_alloc(&a, out.n_versions * sizeof *out.versions);
  for (size_t i = 0; out.versions && i < out.n_versions; i++) out.versions[i] = str_of(json_array_get(versions, i));
  out.inputs = tensor_list(&a, json_object_get(j, "inputs"), &out.n_inputs);
  out.outputs = tensor_list(&a, json_object_get(j, "outputs"), &out.n_outputs);
  if (a.failed) wk_grpc_fail(call, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory for the reply");
  else reply_msg(call, &out.base);
  arena_free(&a);
}

static void model_metadata(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  Inference__ModelMetadataRequest *in = (Inference__ModelMetadataRequest *)protobuf_c_message_unpack(
      &inference__model_metadata_request__descriptor, NULL, len, msg);
  char path[700];
  if (in == NULL) wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "the message is not a ModelMetadataRequest");
  else if (model_path(call, in->name, in->version, "", path, sizeof path))
    ask(call, api, "GET", path, NULL, model_metadata_answer);
  if (in) protobuf_c_message_free_unpacked(&in->base, NULL);
}

/* ---- ModelConfig and ModelStatistics (Triton's) ---- */

static int data_type_of(const char *s) {
  const ProtobufCEnumValue *v = s ? protobuf_c_enum_descriptor_get_value_by_name(&inference__data_type__descriptor, s) : NULL;
  return v ? v->value : INFERENCE__DATA_TYPE__TYPE_INVALID;
}

static void config_answer(wk_grpc_call_t *call, int status, json_t *j, const uint8_t *t, size_t n) {
  (void)t, (void)n;
  if (status != 200 || j == NULL) {
    fail_from(call, status, j);
    return;
  }
  arena_t a = {0};
  Inference__ModelConfig c = INFERENCE__MODEL_CONFIG__INIT;
  c.name = str_of(json_object_get(j, "name"));
  c.platform = str_of(json_object_get(j, "platform"));
  c.backend = str_of(json_object_get(j, "backend"));
  c.max_batch_size = (int32_t)json_integer_value(json_object_get(j, "max_batch_size"));
  Inference__ModelVersionPolicy policy = INFERENCE__MODEL_VERSION_POLICY__INIT;
  Inference__ModelVersionPolicy__Latest latest = INFERENCE__MODEL_VERSION_POLICY__LATEST__INIT;
  latest.num_versions = 1;
  policy.policy_choice_case = INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_LATEST;
  policy.latest = &latest;
  c.version_policy = &policy;
  json_t *ins = json_object_get(j, "input"), *outs = json_object_get(j, "output");
  c.n_input = json_array_size(ins);
  c.input = arena_alloc(&a, c.n_input * sizeof *c.input);
  for (size_t i = 0; c.input && i < c.n_input; i++) {
    json_t *x = json_array_get(ins, i);
    Inference__ModelInput *m = arena_alloc(&a, sizeof *m);
    if (m == NULL) break;
    inference__model_input__init(m);
    m->name = str_of(json_object_get(x, "name"));
    m->data_type = data_type_of(json_string_value(json_object_get(x, "data_type")));
    m->dims = ints_of(&a, json_object_get(x, "dims"), &m->n_dims);
    m->optional = json_is_true(json_object_get(x, "optional"));
    c.input[i] = m;
  }
  c.n_output = json_array_size(outs);
  c.output = arena_alloc(&a, c.n_output * sizeof *c.output);
  for (size_t i = 0; c.output && i < c.n_output; i++) {
    json_t *x = json_array_get(outs, i);
    Inference__ModelOutput *m = arena_alloc(&a, sizeof *m);
    if (m == NULL) break;
    inference__model_output__init(m);
    m->name = str_of(json_object_get(x, "name"));
    m->data_type = data_type_of(json_string_value(json_object_get(x, "data_type")));
    m->dims = ints_of(&a, json_object_get(x, "dims"), &m->n_dims);
    c.output[i] = m;
  }
  json_t *groups = json_object_get(j, "instance_group");
  c.n_instance_group = json_array_size(groups);
  c.instance_group = arena_alloc(&a, c.n_instance_group * sizeof *c.instance_group);
  for (size_t i = 0; c.instance_group && i < c.n_instance_group; i++) {
    json_t *x = json_array_get(groups, i);
    Inference__ModelInstanceGroup *g = arena_alloc(&a, sizeof *g);
    if (g == NULL) break;
    inference__model_instance_group__init(g);
    g->name = str_of(json_object_get(x, "name"));
    g->count = (int32_t)json_integer_value(json_object_get(x, "count"));
    const char *kind = json_string_value(json_object_get(x, "kind"));
    g->kind = kind && strcmp(kind, "KIND_GPU") == 0 ? INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_GPU
                                                    : INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_CPU;
    json_t *gpus = json_object_get(x, "gpus");
    g->n_gpus = json_array_size(gpus);
    g->gpus = arena_alloc(&a, g->n_gpus * sizeof *g->gpus);
    for (size_t k = 0; g->gpus && k < g->n_gpus; k++) g->gpus[k] = (int32_t)json_integer_value(json_array_get(gpus, k));
    c.instance_group[i] = g;
  }
  Inference__ModelDynamicBatching batching = INFERENCE__MODEL_DYNAMIC_BATCHING__INIT;
  json_t *db = json_object_get(j, "dynamic_batching");
  if (db) {
    batching.max_queue_delay_microseconds = (uint64_t)json_integer_value(json_object_get(db, "max_queue_delay_microseconds"));
    c.dynamic_batching = &batching;
  }
  /* parameters: every value as its string_value (Triton's ModelParameter has only that) */
  json_t *params = json_object_get(j, "parameters");
  c.parameters = arena_alloc(&a, json_object_size(params) * sizeof *c.parameters);
  const char *key;
  json_t *val;
  json_object_foreach(params, key, val) {
    if (c.parameters == NULL) break;
    json_t *inner = json_is_object(val) ? json_object_iter_value(json_object_iter(val)) : val;
    char *text = json_is_string(inner) ? strdup(json_string_value(inner)) : json_dumps(inner, JSON_ENCODE_ANY);
    Inference__ModelConfig__ParametersEntry *e = arena_alloc(&a, sizeof *e);
    Inference__ModelParameter *v = arena_alloc(&a, sizeof *v);
    char *kept = text ? arena_alloc(&a, strlen(text) + 1) : NULL;
    if (e == NULL || v == NULL || kept == NULL) {
      free(text);
      a.failed = 1;
      break;
    }
    strcpy(kept, text);
    free(text);
    inference__model_config__parameters_entry__init(e);
    inference__model_parameter__init(v);
    v->string_value = kept;
    e->key = (char *)key;
    e->value = v;
    c.parameters[c.n_parameters++] = e;
  }
  Inference__ModelConfigResponse out = INFERENCE__MODEL_CONFIG_RESPONSE__INIT;
  out.config = &c;
  if (a.failed) wk_grpc_fail(call, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory for the reply");
  else reply_msg(call, &out.base);
  arena_free(&a);
}

static void model_config(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  Inference__ModelConfigRequest *in = (Inference__ModelConfigRequest *)protobuf_c_message_unpack(
      &inference__model_config_request__descriptor, NULL, len, msg);
  char path[700];
  if (in == NULL) wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "the message is not a ModelConfigRequest");
  else if (model_path(call, in->name, in->version, "/config", path, sizeof path))
    ask(call, api, "GET", path, NULL, config_answer);
  if (in) protobuf_c_message_free_unpacked(&in->base, NULL);
}

static Inference__StatisticDuration *duration(arena_t *a, json_t *j) {
  Inference__StatisticDuration *d = arena_alloc(a, sizeof *d);
  if (d == NULL) return NULL;
  inference__statistic_duration__init(d);
  d->count = (uint64_t)json_integer_value(json_object_get(j, "count"));
  d->ns = (uint64_t)json_integer_value(json_object_get(j, "ns"));
  return d;
}

static void stats_answer(wk_grpc_call_t *call, int status, json_t *j, const uint8_t *t, size_t n) {
  (void)t, (void)n;
  if (status != 200 || j == NULL) {
    fail_from(call, status, j);
    return;
  }
  arena_t a = {0};
  Inference__ModelStatisticsResponse out = INFERENCE__MODEL_STATISTICS_RESPONSE__INIT;
  json_t *list = json_object_get(j, "model_stats");
  out.n_model_stats = json_array_size(list);
  out.model_stats = arena_alloc(&a, out.n_model_stats * sizeof *out.model_stats);
  for (size_t i = 0; out.model_stats && i < out.n_model_stats; i++) {
    json_t *x = json_array_get(list, i), *is = json_object_get(x, "inference_stats");
    Inference__ModelStatistics *s = arena_alloc(&a, sizeof *s);
    Inference__InferStatistics *st = arena_alloc(&a, sizeof *st);
    if (s == NULL || st == NULL) break;
    inference__model_statistics__init(s);
    inference__infer_statistics__init(st);
    s->name = str_of(json_object_get(x, "name"));
    s->version = str_of(json_object_get(x, "version"));
    s->last_inference = (uint64_t)json_integer_value(json_object_get(x, "last_inference"));
    s->inference_count = (uint64_t)json_integer_value(json_object_get(x, "inference_count"));
    s->execution_count = (uint64_t)json_integer_value(json_object_get(x, "execution_count"));
    st->success = duration(&a, json_object_get(is, "success"));
    st->fail = duration(&a, json_object_get(is, "fail"));
    st->queue = duration(&a, json_object_get(is, "queue"));
    st->compute_input = duration(&a, json_object_get(is, "compute_input"));
    st->compute_infer = duration(&a, json_object_get(is, "compute_infer"));
    st->compute_output = duration(&a, json_object_get(is, "compute_output"));
    st->cache_hit = duration(&a, json_object_get(is, "cache_hit"));
    st->cache_miss = duration(&a, json_object_get(is, "cache_miss"));
    s->inference_stats = st;
    json_t *bs = json_object_get(x, "batch_stats");
    s->n_batch_stats = json_array_size(bs);
    s->batch_stats = arena_alloc(&a, s->n_batch_stats * sizeof *s->batch_stats);
    for (size_t k = 0; s->batch_stats && k < s->n_batch_stats; k++) {
      json_t *b = json_array_get(bs, k);
      Inference__InferBatchStatistics *bb = arena_alloc(&a, sizeof *bb);
      if (bb == NULL) break;
      inference__infer_batch_statistics__init(bb);
      bb->batch_size = (uint64_t)json_integer_value(json_object_get(b, "batch_size"));
      bb->compute_input = duration(&a, json_object_get(b, "compute_input"));
      bb->compute_infer = duration(&a, json_object_get(b, "compute_infer"));
      bb->compute_output = duration(&a, json_object_get(b, "compute_output"));
      s->batch_stats[k] = bb;
    }
    out.model_stats[i] = s;
  }
  if (a.failed) wk_grpc_fail(call, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory for the reply");
  else reply_msg(call, &out.base);
  arena_free(&a);
}

static void model_statistics(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  Inference__ModelStatisticsRequest *in = (Inference__ModelStatisticsRequest *)protobuf_c_message_unpack(
      &inference__model_statistics_request__descriptor, NULL, len, msg);
  char path[700];
  if (in == NULL) wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "the message is not a ModelStatisticsRequest");
  else if (in->name[0] == '\0') ask(call, api, "GET", "/v2/models/stats", NULL, stats_answer);
  else if (model_path(call, in->name, in->version, "/stats", path, sizeof path))
    ask(call, api, "GET", path, NULL, stats_answer);
  if (in) protobuf_c_message_free_unpacked(&in->base, NULL);
}

/* ---- ModelInfer ---- */

/* The layout every parameter map entry of the v2 messages shares. */
typedef struct {
  ProtobufCMessage base;
  char *key;
  Inference__InferParameter *value;
} param_entry_t;

/* A parameter map as a JSON object. */
static json_t *params_json(param_entry_t *const *e, size_t n) {
  json_t *o = json_object();
  for (size_t i = 0; o && i < n; i++) {
    const Inference__InferParameter *v = e[i]->value;
    if (v == NULL) continue;
    json_t *x = NULL;
    switch (v->parameter_choice_case) {
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM: x = json_boolean(v->bool_param); break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM: x = json_integer(v->int64_param); break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM: x = json_string(v->string_param); break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM: x = json_real(v->double_param); break;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM: x = json_integer((json_int_t)v->uint64_param); break;
    default: break;
    }
    if (x) json_object_set_new(o, e[i]->key, x);
  }
  return o;
}

/* Bytes per element of a v2 datatype; 0 for BYTES, -1 for an unknown one. */
static int elem_size(const char *dt) {
  static const struct {
    const char *name;
    int size;
  } types[] = {{"BOOL", 1}, {"UINT8", 1},  {"UINT16", 2}, {"UINT32", 4}, {"UINT64", 8},
               {"INT8", 1}, {"INT16", 2},  {"INT32", 4},  {"INT64", 8}, {"FP16", 2},
               {"BF16", 2}, {"FP32", 4},   {"FP64", 8},   {"BYTES", 0}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (strcmp(types[i].name, dt) == 0) return types[i].size;
  return -1;
}

/* Typed contents packed as the raw bytes of datatype dt (little-endian, as this machine).
 * Returns 0, or a message saying what does not fit. */
static const char *pack_contents(const Inference__InferTensorContents *c, const char *dt, wk_buf_t *b) {
  int size = elem_size(dt);
  if (strcmp(dt, "BYTES") == 0) {
    for (size_t i = 0; i < c->n_bytes_contents; i++) {
      uint32_t n = (uint32_t)c->bytes_contents[i].len;
      wk_buf_append(b, &n, 4);
      wk_buf_append(b, c->bytes_contents[i].data, c->bytes_contents[i].len);
    }
    return NULL;
  }
#define PACK(list, count, type)                                                                    \
  for (size_t i = 0; i < c->count; i++) {                                                          \
    type x = (type)c->list[i];                                                                     \
    wk_buf_append(b, &x, sizeof x);                                                                \
  }
  if (strcmp(dt, "BOOL") == 0) PACK(bool_contents, n_bool_contents, uint8_t)
  else if (strcmp(dt, "INT8") == 0) PACK(int_contents, n_int_contents, int8_t)
  else if (strcmp(dt, "INT16") == 0) PACK(int_contents, n_int_contents, int16_t)
  else if (strcmp(dt, "INT32") == 0) PACK(int_contents, n_int_contents, int32_t)
  else if (strcmp(dt, "INT64") == 0) PACK(int64_contents, n_int64_contents, int64_t)
  else if (strcmp(dt, "UINT8") == 0) PACK(uint_contents, n_uint_contents, uint8_t)
  else if (strcmp(dt, "UINT16") == 0) PACK(uint_contents, n_uint_contents, uint16_t)
  else if (strcmp(dt, "UINT32") == 0) PACK(uint_contents, n_uint_contents, uint32_t)
  else if (strcmp(dt, "UINT64") == 0) PACK(uint64_contents, n_uint64_contents, uint64_t)
  else if (strcmp(dt, "FP32") == 0) PACK(fp32_contents, n_fp32_contents, float)
  else if (strcmp(dt, "FP64") == 0) PACK(fp64_contents, n_fp64_contents, double)
  else if (size > 0) return "FP16 and BF16 tensors must come as raw_input_contents (they have no typed list)";
  else return "an unknown datatype";
#undef PACK
  return NULL;
}

/* ModelInfer's request as the v2 route's (binary output asked for everywhere: raw output
 * contents carry every output). 0, or the WK_E* code with err saying what is wrong. */
static int decode_infer(const Inference__ModelInferRequest *in, wk_oip_request_t *r, wk_err_t *err) {
  if (in->n_raw_input_contents && in->n_raw_input_contents != in->n_inputs)
    return wk_err(err, WK_EINVAL, "raw_input_contents has %zu entries for %zu inputs: give one per input, or none",
                  in->n_raw_input_contents, in->n_inputs);
  if (in->n_inputs == 0) /* too many: wk_oip_add_input says so */
    return wk_err(err, WK_EINVAL, "\"inputs\" must be a list of 1 to %d tensors", WK_OIP_MAX_TENSORS);
  if (in->id[0] && (r->id = strdup(in->id)) == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  r->binary_output = 1;
  if (in->n_parameters == 0) {
    r->parameters = strdup("{\"binary_data_output\":true}");
  } else { /* for handlers that read the request as JSON */
    json_t *params = params_json((param_entry_t *const *)in->parameters, in->n_parameters);
    json_object_set_new(params, "binary_data_output", json_true());
    r->parameters = json_dumps(params, JSON_COMPACT);
    json_decref(params);
  }
  if (r->parameters == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  wk_buf_t packed = WK_BUF_INIT;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < in->n_inputs; i++) {
    const Inference__ModelInferRequest__InferInputTensor *t = in->inputs[i];
    const void *data;
    size_t len;
    if (in->n_raw_input_contents) {
      data = in->raw_input_contents[i].data;
      len = in->raw_input_contents[i].len;
    } else if (t->contents) {
      packed.len = 0;
      const char *bad = pack_contents(t->contents, t->datatype, &packed);
      if (bad) {
        rc = wk_err(err, WK_EINVAL, "input %.100s (%.20s): %s", t->name, t->datatype, bad);
        break;
      }
      data = packed.data ? packed.data : "";
      len = packed.len;
    } else {
      rc = wk_err(err, WK_EINVAL, "input %.100s has neither contents nor raw_input_contents", t->name);
      break;
    }
    rc = wk_oip_add_input(r, t->name, t->datatype, t->shape, t->n_shape, data, len, err);
  }
  wk_buf_destroy(&packed);
  for (size_t i = 0; rc == 0 && i < in->n_outputs; i++) rc = wk_oip_add_output(r, in->outputs[i]->name, 1, err);
  return rc;
}

static Inference__InferParameter *param_of(arena_t *a, json_t *x) {
  Inference__InferParameter *p = arena_alloc(a, sizeof *p);
  if (p == NULL) return NULL;
  inference__infer_parameter__init(p);
  if (json_is_boolean(x)) {
    p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM;
    p->bool_param = json_is_true(x);
  } else if (json_is_integer(x)) {
    p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
    p->int64_param = json_integer_value(x);
  } else if (json_is_real(x)) {
    p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM;
    p->double_param = json_real_value(x);
  } else if (json_is_string(x)) {
    p->parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
    p->string_param = (char *)json_string_value(x);
  } else {
    return NULL;
  }
  return p;
}

/* A JSON parameters object as a map (without binary_data_size, which raw output makes moot). */
static param_entry_t **params_map(arena_t *a, json_t *obj, size_t *n, const ProtobufCMessageDescriptor *entry) {
  *n = 0;
  param_entry_t **v = arena_alloc(a, json_object_size(obj) * sizeof *v);
  const char *key;
  json_t *x;
  json_object_foreach(obj, key, x) {
    if (v == NULL || strcmp(key, "binary_data_size") == 0) continue;
    Inference__InferParameter *p = param_of(a, x);
    param_entry_t *e = p ? arena_alloc(a, sizeof *e) : NULL;
    if (e == NULL) continue;
    protobuf_c_message_init(entry, e);
    e->key = (char *)key;
    e->value = p;
    v[(*n)++] = e;
  }
  return v;
}

static void infer_answer(wk_grpc_call_t *call, int status, json_t *j, const uint8_t *tail, size_t tail_len) {
  if (status != 200 || j == NULL) {
    fail_from(call, status, j);
    return;
  }
  arena_t a = {0};
  wk_buf_t converted = WK_BUF_INIT; /* outputs that came as JSON data */
  Inference__ModelInferResponse out = INFERENCE__MODEL_INFER_RESPONSE__INIT;
  out.model_name = str_of(json_object_get(j, "model_name"));
  out.model_version = str_of(json_object_get(j, "model_version"));
  out.id = str_of(json_object_get(j, "id"));
  out.parameters = (Inference__ModelInferResponse__ParametersEntry **)params_map(
      &a, json_object_get(j, "parameters"), &out.n_parameters, &inference__model_infer_response__parameters_entry__descriptor);
  json_t *outs = json_object_get(j, "outputs");
  size_t n = json_array_size(outs), off = 0;
  out.outputs = arena_alloc(&a, n * sizeof *out.outputs);
  out.raw_output_contents = arena_alloc(&a, n * sizeof *out.raw_output_contents);
  /* offsets into converted, fixed up once it stops growing */
  size_t *conv_off = arena_alloc(&a, n * sizeof *conv_off), *conv_len = arena_alloc(&a, n * sizeof *conv_len);
  for (size_t i = 0; !a.failed && i < n; i++) {
    json_t *x = json_array_get(outs, i), *params = json_object_get(x, "parameters");
    Inference__ModelInferResponse__InferOutputTensor *t = arena_alloc(&a, sizeof *t);
    if (t == NULL) break;
    inference__model_infer_response__infer_output_tensor__init(t);
    t->name = str_of(json_object_get(x, "name"));
    t->datatype = str_of(json_object_get(x, "datatype"));
    t->shape = ints_of(&a, json_object_get(x, "shape"), &t->n_shape);
    t->parameters = (Inference__ModelInferResponse__InferOutputTensor__ParametersEntry **)params_map(
        &a, params, &t->n_parameters, &inference__model_infer_response__infer_output_tensor__parameters_entry__descriptor);
    json_t *size = json_object_get(params, "binary_data_size");
    conv_len[i] = (size_t)-1;
    if (json_is_integer(size)) {
      size_t len = (size_t)json_integer_value(size);
      if (len > tail_len - off) {
        wk_grpc_fail(call, WK_GRPC_INTERNAL, "the v2 reply's binary outputs are shorter than its header says");
        wk_buf_destroy(&converted);
        arena_free(&a);
        return;
      }
      out.raw_output_contents[i].data = (uint8_t *)tail + off;
      out.raw_output_contents[i].len = len;
      off += len;
    } else {
      conv_off[i] = converted.len; /* an output the route answered in JSON */
      wk_err_t err = {{0}};
      if (wk_oip_output_binary(x, i, &converted, &err) != 0) {
        wk_grpc_fail(call, WK_GRPC_INTERNAL, err.msg);
        wk_buf_destroy(&converted);
        arena_free(&a);
        return;
      }
      conv_len[i] = converted.len - conv_off[i];
    }
    out.outputs[out.n_outputs++] = t;
  }
  for (size_t i = 0; !a.failed && i < n; i++)
    if (conv_len[i] != (size_t)-1) {
      out.raw_output_contents[i].data = (uint8_t *)converted.data + conv_off[i];
      out.raw_output_contents[i].len = conv_len[i];
    }
  out.n_raw_output_contents = out.n_outputs;
  if (a.failed) wk_grpc_fail(call, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory for the reply");
  else reply_msg(call, &out.base);
  wk_buf_destroy(&converted);
  arena_free(&a);
}

static void model_infer(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  Inference__ModelInferRequest *in = (Inference__ModelInferRequest *)protobuf_c_message_unpack(
      &inference__model_infer_request__descriptor, NULL, len, msg);
  char path[700];
  if (in == NULL) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "the message is not a ModelInferRequest");
  } else if (model_path(call, in->model_name, in->model_version, "/infer", path, sizeof path)) {
    wk_oip_request_t *r = calloc(1, sizeof *r);
    wk_err_t err = {{0}};
    int rc = r ? decode_infer(in, r, &err) : wk_err(&err, WK_ENOMEM, "out of memory");
    if (rc != 0) {
      if (r) wk_oip_request_destroy(r);
      free(r);
      wk_grpc_fail(call, rc == WK_ETOOBIG || rc == WK_ENOMEM ? WK_GRPC_RESOURCE_EXHAUSTED : WK_GRPC_INVALID_ARGUMENT,
                   err.msg);
    } else {
      ask(call, api, "POST", path, r, infer_answer);
    }
  }
  if (in) protobuf_c_message_free_unpacked(&in->base, NULL);
}

/* ---- grpc.health.v1.Health ---- */

static const char *const health_services[] = {
    "", "inference.GRPCInferenceService", "org.pytorch.serve.grpc.openinference.GRPCInferenceService",
    "org.pytorch.serve.grpc.inference.InferenceAPIsService"};

static int known_service(const char *name) {
  for (size_t i = 0; i < sizeof health_services / sizeof health_services[0]; i++)
    if (strcmp(name, health_services[i]) == 0) return 1;
  return 0;
}

static void health_answer(wk_grpc_call_t *call, int status, json_t *j, const uint8_t *t, size_t n) {
  (void)j, (void)t, (void)n;
  Grpc__Health__V1__HealthCheckResponse out = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  out.status = status == 200 ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                             : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
  reply_msg(call, &out.base);
}

/* Check(service): "" is the server (GET /ping's answer: healthy while every model is), a
 * service this port serves is SERVING when the server is, any other NOT_FOUND (the
 * protocol's answer for an unknown service). */
static void health_check(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  Grpc__Health__V1__HealthCheckRequest *in = (Grpc__Health__V1__HealthCheckRequest *)protobuf_c_message_unpack(
      &grpc__health__v1__health_check_request__descriptor, NULL, len, msg);
  if (in == NULL) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "the message is not a HealthCheckRequest");
    return;
  }
  if (!known_service(in->service)) {
    char text[300];
    snprintf(text, sizeof text, "unknown service %.200s", in->service);
    wk_grpc_fail(call, WK_GRPC_NOT_FOUND, text);
  } else {
    ask(call, api, "GET", "/ping", NULL, health_answer);
  }
  protobuf_c_message_free_unpacked(&in->base, NULL);
}

/* Watch(service): the status now, then each change, as one stream per caller, until the
 * client cancels or the server stops. One thread looks at every watch every
 * WATCH_PERIOD_MS (the server's health is the /ping rule, read directly); a service this
 * port does not serve is SERVICE_UNKNOWN, sent once, as the protocol asks. */
#define WATCH_PERIOD_MS 250

typedef struct watch_s {
  wk_grpc_call_t *call;
  int known;
  int last; /* the status sent last */
  struct watch_s *next;
} watch_t;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  watch_t *list;
  wk_api_t *api;
  pthread_t thread;
  int started, stopping;
} g_watch = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, 0};

static int watch_status(wk_api_t *api, int known) {
  if (!known) return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
  return wk_api_healthy(api) ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                             : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

/* Sends status on call's stream; WK_EIO once the call is gone or answered. */
static int watch_send(wk_grpc_call_t *call, int status) {
  Grpc__Health__V1__HealthCheckResponse out = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  out.status = status;
  uint8_t buf[16];
  size_t n = protobuf_c_message_pack(&out.base, buf);
  return wk_grpc_send(call, buf, n);
}

static void *watch_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&g_watch.lock);
  while (!g_watch.stopping) {
    struct timespec until;
    wk_realtime_in(WATCH_PERIOD_MS * 1000, &until);
    pthread_cond_timedwait(&g_watch.cond, &g_watch.lock, &until);
    if (g_watch.stopping) break;
    int healthy = -1; /* read once per round, for every watch */
    for (watch_t **p = &g_watch.list; *p;) {
      watch_t *w = *p;
      int status = w->last;
      if (w->known) {
        if (healthy < 0) healthy = watch_status(g_watch.api, 1);
        status = healthy;
      }
      if (wk_grpc_call_gone(w->call) || (status != w->last && watch_send(w->call, status) != 0)) {
        *p = w->next; /* the client went (or its deadline passed): end its call */
        wk_grpc_fail(w->call, WK_GRPC_CANCELLED, "the client cancelled the watch");
        free(w);
        continue;
      }
      w->last = status;
      p = &w->next;
    }
  }
  pthread_mutex_unlock(&g_watch.lock);
  return NULL;
}

static void health_watch(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *api) {
  Grpc__Health__V1__HealthCheckRequest *in = (Grpc__Health__V1__HealthCheckRequest *)protobuf_c_message_unpack(
      &grpc__health__v1__health_check_request__descriptor, NULL, len, msg);
  if (in == NULL) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "the message is not a HealthCheckRequest");
    return;
  }
  watch_t *w = calloc(1, sizeof *w);
  int known = known_service(in->service);
  protobuf_c_message_free_unpacked(&in->base, NULL);
  if (w == NULL) {
    wk_grpc_fail(call, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  w->call = call;
  w->known = known;
  w->last = watch_status(api, known);
  if (watch_send(call, w->last) != 0) {
    free(w);
    wk_grpc_fail(call, WK_GRPC_CANCELLED, "the client went");
    return;
  }
  pthread_mutex_lock(&g_watch.lock);
  if (g_watch.stopping) {
    pthread_mutex_unlock(&g_watch.lock);
    free(w);
    wk_grpc_fail(call, WK_GRPC_UNAVAILABLE, "the server is stopping");
    return;
  }
  g_watch.api = api;
  if (!g_watch.started && pthread_create(&g_watch.thread, NULL, watch_main, NULL) == 0)
    g_watch.started = 1;
  if (!g_watch.started) {
    pthread_mutex_unlock(&g_watch.lock);
    free(w);
    wk_grpc_fail(call, WK_GRPC_RESOURCE_EXHAUSTED, "no thread for the watch: poll Check");
    return;
  }
  w->next = g_watch.list;
  g_watch.list = w;
  pthread_mutex_unlock(&g_watch.lock);
}

void wk_grpc_v2_shutdown(void) {
  pthread_mutex_lock(&g_watch.lock);
  g_watch.stopping = 1;
  pthread_cond_broadcast(&g_watch.cond);
  int started = g_watch.started;
  pthread_mutex_unlock(&g_watch.lock);
  if (started) pthread_join(g_watch.thread, NULL);
  for (watch_t *w = g_watch.list, *next; w; w = next) {
    next = w->next;
    wk_grpc_fail(w->call, WK_GRPC_UNAVAILABLE, "the server is stopping");
    free(w);
  }
  g_watch.list = NULL;
  g_watch.started = 0;
}

/* ---- the table ---- */

#define KSERVE "/inference.GRPCInferenceService/"
#define TS_OIP "/org.pytorch.serve.grpc.openinference.GRPCInferenceService/"

const wk_grpc_method_t wk_grpc_v2_methods[] = {
    {KSERVE "ServerLive", server_live},       {KSERVE "ServerReady", server_ready},
    {KSERVE "ModelReady", model_ready},       {KSERVE "ServerMetadata", server_metadata},
    {KSERVE "ModelMetadata", model_metadata}, {KSERVE "ModelInfer", model_infer},
    {KSERVE "ModelConfig", model_config},     {KSERVE "ModelStatistics", model_statistics},
    {TS_OIP "ServerLive", server_live},       {TS_OIP "ServerReady", server_ready},
    {TS_OIP "ModelReady", model_ready},       {TS_OIP "ServerMetadata", server_metadata},
    {TS_OIP "ModelMetadata", model_metadata}, {TS_OIP "ModelInfer", model_infer},
    {"/grpc.health.v1.Health/Check", health_check},
    {"/grpc.health.v1.Health/Watch", health_watch},
};
const size_t wk_grpc_v2_n_methods = sizeof wk_grpc_v2_methods / sizeof wk_grpc_v2_methods[0];
