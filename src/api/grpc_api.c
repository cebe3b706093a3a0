/* TorchServe's gRPC services (see grpc_api.h). So far: Ping ([12] part 1); the other
 * methods of both services answer UNIMPLEMENTED, saying that they are not built yet. */
#include "api/grpc_api.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "google/protobuf/empty.pb-c.h"
#include "inference.pb-c.h"

#define INFERENCE "/org.pytorch.serve.grpc.inference.InferenceAPIsService/"
#define MANAGEMENT "/org.pytorch.serve.grpc.management.ManagementAPIsService/"

/* Holds the API's lock shared for the call, as the HTTP routers do; 0 when the server is
 * stopping (answered UNAVAILABLE). */
static int enter(wk_api_t *api, wk_grpc_call_t *call) {
  pthread_rwlock_rdlock(&api->lock);
  if (!api->stopping) return 1;
  pthread_rwlock_unlock(&api->lock);
  wk_grpc_fail(call, WK_GRPC_UNAVAILABLE, "the server is stopping");
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

static void not_yet(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *ud) {
  (void)msg, (void)len, (void)ud;
  wk_grpc_fail(call, WK_GRPC_UNIMPLEMENTED,
               "wick does not serve this gRPC method yet (HTTP has it: see docs/api-inference.md)");
}

static void sequences(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *ud) {
  (void)msg, (void)len, (void)ud;
  wk_grpc_fail(call, WK_GRPC_UNIMPLEMENTED,
               "StreamPredictions2 needs sequence batching, which wick does not have");
}

const wk_grpc_method_t wk_grpc_inference_methods[] = {
    {INFERENCE "Ping", ping},
    {INFERENCE "Predictions", not_yet},
    {INFERENCE "StreamPredictions", not_yet},
    {INFERENCE "StreamPredictions2", sequences},
};
const size_t wk_grpc_inference_n_methods =
    sizeof wk_grpc_inference_methods / sizeof wk_grpc_inference_methods[0];

const wk_grpc_method_t wk_grpc_management_methods[] = {
    {MANAGEMENT "DescribeModel", not_yet}, {MANAGEMENT "ListModels", not_yet},
    {MANAGEMENT "RegisterModel", not_yet}, {MANAGEMENT "ScaleWorker", not_yet},
    {MANAGEMENT "SetDefault", not_yet},    {MANAGEMENT "UnregisterModel", not_yet},
};
const size_t wk_grpc_management_n_methods =
    sizeof wk_grpc_management_methods / sizeof wk_grpc_management_methods[0];
