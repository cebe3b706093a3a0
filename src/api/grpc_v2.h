/* KServe v2 (Open Inference Protocol) over gRPC, with Triton's ModelConfig and
 * ModelStatistics and grpc.health.v1.Health, for the inference gRPC port ([12] part 3).
 * Each method is an in-process request for the v2 HTTP route of the same meaning. */
#ifndef WK_API_GRPC_V2_H
#define WK_API_GRPC_V2_H

#include "api/grpc_api.h"

/* inference.GRPCInferenceService, TorchServe's org.pytorch.serve.grpc.openinference
 * package for the same methods, and grpc.health.v1.Health; ud is the wk_api_t. */
extern const wk_grpc_method_t wk_grpc_v2_methods[];
extern const size_t wk_grpc_v2_n_methods;

/* Ends the health watches still open (UNAVAILABLE) and their thread. Main thread, after
 * wk_api_shutdown and before the gRPC servers stop. */
void wk_grpc_v2_shutdown(void);

#endif
