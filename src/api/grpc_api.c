/* TorchServe's gRPC inference service (see grpc_api.h): Ping, Predictions and
 * StreamPredictions; StreamPredictions2 (sequence batching) answers UNIMPLEMENTED. */
#include "api/grpc_api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/auth.h"
#include "core/buf.h"
#include "core/clock.h"
#include "serve/model.h"
#include "serve/registry.h"
#include "serve/sink.h"

#include "google/protobuf/empty.pb-c.h"
#include "inference.pb-c.h"

#define INFERENCE "/org.pytorch.serve.grpc.inference.InferenceAPIsService/"

/* Holds the API's lock shared for the call, as the HTTP routers do; 0 when the server is
 * stopping (answered UNAVAILABLE). */
static int enter(wk_api_t *api, wk_grpc_call_t *call) {
  pthread_rwlock_rdlock(&api->lock);
  if (!api->stopping) return 1;
  pthread_rwlock_unlock(&api->lock);
  wk_grpc_fail(call, WK_GRPC_UNAVAILABLE, "the server is stopping");
  return 0;
}

/* With token authorization on, the call's `authorization` metadata ("Bearer <key>") must
 * hold kind's key, as the HTTP APIs ask; else UNAUTHENTICATED saying why, and 0. */
static int authorized(wk_api_t *api, wk_grpc_call_t *call, wk_auth_kind_t kind) {
  if (api->auth == NULL) return 1;
  wk_err_t err = {{0}};
  if (wk_auth_verify(api->auth, wk_grpc_call_metadata(call, "authorization"), kind, wk_now_us(), &err) == 0)
    return 1;
  char msg[600];
  snprintf(msg, sizeof msg, "Token Authorization failed: %s", err.msg);
  wk_grpc_fail(call, WK_GRPC_UNAUTHENTICATED, msg);
  return 0;
}

static void leave(wk_api_t *api) { pthread_rwlock_unlock(&api->lock); }

/* Ping(google.protobuf.Empty) -> TorchServeHealthResponse: the JSON of GET /ping, status OK
 * either way (as TorchServe answers it). */
static void ping(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *ud) {
  wk_api_t *api = ud;
  Google__Protobuf__Empty *in = google__protobuf__empty__unpack(NULL, len, msg);
  if (in == NULL) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "Ping takes google.protobuf.Empty; the message is not one");
    return;
  }
  google__protobuf__empty__free_unpacked(in, NULL);
  if (!enter(api, call)) return;
  int healthy = wk_api_healthy(api);
  leave(api);
  Org__Pytorch__Serve__Grpc__Inference__TorchServeHealthResponse out =
      ORG__PYTORCH__SERVE__GRPC__INFERENCE__TORCH_SERVE_HEALTH_RESPONSE__INIT;
  out.health = healthy ? "{\n  \"status\": \"Healthy\"\n}" : "{\n  \"status\": \"Unhealthy\"\n}";
  uint8_t buf[128];
  size_t n = org__pytorch__serve__grpc__inference__torch_serve_health_response__pack(&out, buf);
  wk_grpc_reply(call, buf, n);
}

/* ---- Predictions: a request for a model's queue, answered through a sink ---- */

typedef struct {
  wk_sink_t sink; /* first */
  wk_grpc_call_t *call;
  int retry_after; /* the queue was full (Retry-After came with the 503) */
  int streaming;   /* StreamPredictions: each piece of a streamed reply is a message */
  int status;      /* a streamed reply's status */
  int sent;        /* messages sent so far */
  wk_buf_t joined; /* the pieces kept back: Predictions' whole reply, or an error's text */
} grpc_sink_t;

static void sink_free(grpc_sink_t *g) {
  wk_buf_destroy(&g->joined);
  free(g);
}

/* A PredictionResponse holding data: sent as one message of a stream, or (last) as the
 * call's answer. Returns nonzero when the call is gone. */
static int send_prediction(wk_grpc_call_t *call, const void *data, size_t len, int last) {
  Org__Pytorch__Serve__Grpc__Inference__PredictionResponse out =
      ORG__PYTORCH__SERVE__GRPC__INFERENCE__PREDICTION_RESPONSE__INIT;
  out.prediction.data = (uint8_t *)data;
  out.prediction.len = data ? len : 0;
  size_t n = org__pytorch__serve__grpc__inference__prediction_response__get_packed_size(&out);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) {
    if (last) wk_grpc_fail(call, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory for the reply");
    return 1;
  }
  org__pytorch__serve__grpc__inference__prediction_response__pack(&out, buf);
  int rc = 0;
  if (last) wk_grpc_reply(call, buf, n);
  else rc = wk_grpc_send(call, buf, n);
  free(buf);
  return rc;
}

int wk_grpc_code_for_http(int status, int queue_full) {
  switch (status) {
  case 400: return WK_GRPC_INVALID_ARGUMENT;
  case 401: return WK_GRPC_UNAUTHENTICATED;
  case 403: return WK_GRPC_PERMISSION_DENIED;
  case 404: return WK_GRPC_NOT_FOUND;
  case 405: return WK_GRPC_UNIMPLEMENTED; /* a route the config turned off */
  case 409: return WK_GRPC_ALREADY_EXISTS;
  case 413:
  case 429:
  case 507: return WK_GRPC_RESOURCE_EXHAUSTED;
  case 499: return WK_GRPC_CANCELLED;
  case 501: return WK_GRPC_UNIMPLEMENTED;
  case 503: return queue_full ? WK_GRPC_RESOURCE_EXHAUSTED : WK_GRPC_UNAVAILABLE;
  case 504: return WK_GRPC_DEADLINE_EXCEEDED;
  default: return status < 400 ? WK_GRPC_OK : WK_GRPC_INTERNAL;
  }
}

static void sink_error(wk_sink_t *s, int status, const char *type, const char *msg) {
  (void)type;
  grpc_sink_t *g = (grpc_sink_t *)s;
  wk_grpc_fail(g->call, wk_grpc_code_for_http(status, g->retry_after), msg ? msg : "failed");
  sink_free(g);
}

static void sink_reply(wk_sink_t *s, int status, const char *content_type, char *body, size_t len) {
  (void)content_type;
  grpc_sink_t *g = (grpc_sink_t *)s;
  if (status >= 400) {
    /* a handler's own error status (PredictionException): its body says why */
    char *msg = strndup(body ? body : "", body ? len : 0);
    wk_grpc_fail(g->call, wk_grpc_code_for_http(status, 0), msg ? msg : "failed");
    free(msg);
  } else {
    send_prediction(g->call, body, len, 1);
  }
  free(body);
  sink_free(g);
}

/* A streaming handler (send_intermediate_predict_response). StreamPredictions sends each
 * piece as a PredictionResponse as it comes and ends with OK; Predictions answers the
 * pieces joined in one message, as an HTTP client reads a chunked reply. A failing status
 * keeps the pieces as the error's message. */
static int sink_stream_begin(wk_sink_t *s, int status, const char *content_type) {
  (void)content_type;
  ((grpc_sink_t *)s)->status = status;
  return 0;
}

static int sink_stream_write(wk_sink_t *s, const void *data, size_t len) {
  grpc_sink_t *g = (grpc_sink_t *)s;
  if (g->streaming && g->status < 400) {
    g->sent++;
    return send_prediction(g->call, data, len, 0);
  }
  return wk_buf_append(&g->joined, data, len) != 0 || wk_grpc_call_gone(g->call);
}

static void sink_stream_end(wk_sink_t *s, int failed) {
  grpc_sink_t *g = (grpc_sink_t *)s;
  char text[200];
  if (failed) {
    snprintf(text, sizeof text, "the handler failed in the middle of its streamed reply (after %d %s)",
             g->streaming ? g->sent : 0, g->streaming ? "messages" : "pieces kept back");
    wk_grpc_fail(g->call, WK_GRPC_INTERNAL, text);
  } else if (g->status >= 400) {
    wk_buf_puts(&g->joined, "");
    wk_grpc_fail(g->call, wk_grpc_code_for_http(g->status, 0), g->joined.data ? g->joined.data : "failed");
  } else if (g->streaming) {
    wk_grpc_fail(g->call, WK_GRPC_OK, NULL); /* the end of the stream */
  } else {
    send_prediction(g->call, g->joined.data, g->joined.len, 1);
  }
  sink_free(g);
}

static void sink_header(wk_sink_t *s, const char *name, const char *value) {
  (void)value;
  if (strcasecmp(name, "Retry-After") == 0) ((grpc_sink_t *)s)->retry_after = 1;
}

/* The client cancelled, its deadline passed (the transport answered it) or its connection
 * closed: a queued request of its is dropped before it runs. */
static int sink_gone(wk_sink_t *s) { return wk_grpc_call_gone(((grpc_sink_t *)s)->call); }

static const wk_sink_ops_t grpc_sink_ops = {.reply = sink_reply,
                                            .error = sink_error,
                                            .header = sink_header,
                                            .stream_begin = sink_stream_begin,
                                            .stream_write = sink_stream_write,
                                            .stream_end = sink_stream_end,
                                            .gone = sink_gone};

/* The request's input map as a multipart/form-data body, data (then body) first: the
 * Python handlers see TorchServe's rows ({"data": bytes, ...}), the native ones take the
 * data field as they take a multipart HTTP body. */
static int form_body(const Org__Pytorch__Serve__Grpc__Inference__PredictionsRequest *in, wk_buf_t *b,
                     char *ct, size_t ctlen) {
  static const char boundary[] = "wick-grpc-3f9c1d27b4e8a6";
  snprintf(ct, ctlen, "multipart/form-data; boundary=%s", boundary);
  for (int pass = 0; pass < 3; pass++) {
    for (size_t i = 0; i < in->n_input; i++) {
      const char *key = in->input[i]->key ? in->input[i]->key : "";
      int is_data = strcmp(key, "data") == 0, is_body = strcmp(key, "body") == 0;
      if ((pass == 0) != is_data || (pass == 1) != is_body) continue;
      if (strpbrk(key, "\"\r\n") != NULL) return WK_EINVAL;
      const ProtobufCBinaryData *v = &in->input[i]->value;
      /* an empty value may have no data pointer at all */
      if (v->len > 0 && memmem(v->data, v->len, boundary, sizeof boundary - 1) != NULL) return WK_EINVAL;
      wk_buf_printf(b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n", boundary, key);
      if (v->len > 0) wk_buf_append(b, v->data, v->len);
      wk_buf_puts(b, "\r\n");
    }
  }
  wk_buf_printf(b, "--%s--\r\n", boundary);
  return 0;
}

/* Predictions(PredictionsRequest) -> PredictionResponse: POST /predictions/{model_name}
 * [/{model_version}] with the input map as its form fields; StreamPredictions the same
 * with a stream of PredictionResponse. */
static void predict(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *ud, int streaming) {
  wk_api_t *api = ud;
  Org__Pytorch__Serve__Grpc__Inference__PredictionsRequest *in =
      org__pytorch__serve__grpc__inference__predictions_request__unpack(NULL, len, msg);
  if (in == NULL) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "Predictions takes a PredictionsRequest; the message is not one");
    return;
  }
  char text[400], ct[96];
  wk_buf_t body = WK_BUF_INIT;
  if (!authorized(api, call, WK_AUTH_INFERENCE)) {
    /* answered */
  } else if (in->model_name == NULL || in->model_name[0] == '\0') {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "model_name is required");
  } else if (form_body(in, &body, ct, sizeof ct) != 0) {
    wk_grpc_fail(call, WK_GRPC_INVALID_ARGUMENT, "an input name holds a quote or a line break, or a value "
                                                 "holds wick's form boundary");
  } else if (enter(api, call)) {
    const char *version = in->model_version && in->model_version[0] ? in->model_version : NULL;
    wk_model_t *m = wk_registry_acquire(api->registry, in->model_name, version);
    grpc_sink_t *g = m ? calloc(1, sizeof *g) : NULL;
    if (m == NULL) {
      if (version && wk_registry_has_name(api->registry, in->model_name))
        snprintf(text, sizeof text, "Model version: %.100s does not exist for model: %.100s", version,
                 in->model_name);
      else
        snprintf(text, sizeof text, "Model not found: %.200s", in->model_name);
      wk_grpc_fail(call, WK_GRPC_NOT_FOUND, text);
    } else if (g == NULL) {
      wk_grpc_fail(call, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    } else {
      g->sink.ops = &grpc_sink_ops;
      g->call = call;
      g->streaming = streaming;
      wk_request_t r = {.body = body.data ? body.data : "", .body_len = body.len, .content_type = ct};
      wk_model_predict(m, &r, &g->sink, 0);
    }
    if (m) wk_registry_release(api->registry, m);
    leave(api);
  }
  wk_buf_destroy(&body);
  org__pytorch__serve__grpc__inference__predictions_request__free_unpacked(in, NULL);
}

static void predictions(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *ud) {
  predict(call, msg, len, ud, 0);
}

static void stream_predictions(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *ud) {
  predict(call, msg, len, ud, 1);
}

static void sequences(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *ud) {
  (void)msg, (void)len, (void)ud;
  wk_grpc_fail(call, WK_GRPC_UNIMPLEMENTED,
               "StreamPredictions2 needs sequence batching, which wick does not have");
}

const wk_grpc_method_t wk_grpc_inference_methods[] = {
    {INFERENCE "Ping", ping},
    {INFERENCE "Predictions", predictions},
    {INFERENCE "StreamPredictions", stream_predictions},
    {INFERENCE "StreamPredictions2", sequences},
};
const size_t wk_grpc_inference_n_methods =
    sizeof wk_grpc_inference_methods / sizeof wk_grpc_inference_methods[0];

