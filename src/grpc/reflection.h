/* gRPC server reflection ([12] part 3): what grpcurl and similar tools ask a server so that
 * they can list and call its services without .proto files. The descriptors of every
 * .proto file in proto/ are compiled in (protoc's FileDescriptorSet, embedded at build time);
 * this part answers one ServerReflectionRequest at a time. It knows no transport: the
 * gRPC server (server.c) feeds it the messages of a ServerReflectionInfo stream. */
#ifndef WK_GRPC_REFLECTION_H
#define WK_GRPC_REFLECTION_H

#include <stddef.h>
#include <stdint.h>

/* The method paths of the reflection service (v1alpha and v1 carry the same messages). */
extern const char *const wk_grpc_reflection_paths[2];

/* The ServerReflectionResponse (malloc'd into *out, *out_len bytes) for one request
 * message: list_services answers services (fully qualified names, e.g.
 * "inference.GRPCInferenceService"); file_by_filename and file_containing_symbol answer the
 * file and every file it imports; anything unknown is an error_response NOT_FOUND. Returns
 * 0, or WK_EINVAL when the request is not a ServerReflectionRequest, WK_ENOMEM. Any
 * thread. */
int wk_grpc_reflection_answer(const char *const *services, size_t n_services, const uint8_t *req, size_t len,
                              uint8_t **out, size_t *out_len);

#endif
