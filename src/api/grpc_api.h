/* The gRPC services on top of the gRPC transport (grpc/server.h): TorchServe's inference
 * service on grpc_inference_port, its management service on grpc_management_port ([12]).
 * Each is a method table whose functions decode the protobuf request, do what the HTTP
 * route of the same name does, and answer with the protobuf reply or a gRPC status. */
#ifndef WK_API_GRPC_API_H
#define WK_API_GRPC_API_H

#include <stddef.h>

#include "api/api.h"
#include "grpc/server.h"

/* The methods of each port; their ud is the wk_api_t. grpc_api.c holds the inference
 * service, grpc_management.c the management one. */
extern const wk_grpc_method_t wk_grpc_inference_methods[];
extern const size_t wk_grpc_inference_n_methods;
extern const wk_grpc_method_t wk_grpc_management_methods[];
extern const size_t wk_grpc_management_n_methods;

/* Waits (up to timeout_s) for the management calls still running on their own threads;
 * after wk_api_shutdown, before the registry they use is freed. */
void wk_grpc_management_shutdown(int timeout_s);

/* TorchServe's gRPC status for an HTTP status of the same outcome: a full queue (a 503
 * that came with Retry-After) is RESOURCE_EXHAUSTED, other 503s UNAVAILABLE. */
int wk_grpc_code_for_http(int status, int queue_full);

#endif
