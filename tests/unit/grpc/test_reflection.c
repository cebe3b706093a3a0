/* Unit tests for grpc/reflection: answers to ServerReflectionRequest messages from the
 * descriptors compiled in, without a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/error.h"
#include "grpc/reflection.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"

static const char *const services[] = {"inference.GRPCInferenceService", "grpc.health.v1.Health"};

/* Packs req, asks, unpacks the answer (free it). */
static Grpc__Reflection__V1alpha__ServerReflectionResponse *ask(Grpc__Reflection__V1alpha__ServerReflectionRequest *req) {
  uint8_t buf[512], *out = NULL;
  size_t n = grpc__reflection__v1alpha__server_reflection_request__pack(req, buf), out_len = 0;
  assert_int_equal(wk_grpc_reflection_answer(services, 2, buf, n, &out, &out_len), 0);
  Grpc__Reflection__V1alpha__ServerReflectionResponse *r =
      grpc__reflection__v1alpha__server_reflection_response__unpack(NULL, out_len, out);
  free(out);
  assert_non_null(r);
  return r;
}

/* 1 if one of r's files is named name (the name is field 1 of a FileDescriptorProto: its
 * first bytes are 0x0a, the length, the name). */
static int has_file(const Grpc__Reflection__V1alpha__ServerReflectionResponse *r, const char *name) {
  const Grpc__Reflection__V1alpha__FileDescriptorResponse *f = r->file_descriptor_response;
  size_t n = strlen(name);
  for (size_t i = 0; f && i < f->n_file_descriptor_proto; i++) {
    const ProtobufCBinaryData *d = &f->file_descriptor_proto[i];
    if (d->len > n + 2 && d->data[0] == 0x0a && d->data[1] == n && memcmp(d->data + 2, name, n) == 0) return 1;
  }
  return 0;
}

static void test_list_services(void **state) {
  (void)state;
  Grpc__Reflection__V1alpha__ServerReflectionRequest req = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  req.host = "h";
  req.message_request_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
  req.list_services = "";
  Grpc__Reflection__V1alpha__ServerReflectionResponse *r = ask(&req);
  assert_string_equal(r->valid_host, "h");
  assert_non_null(r->original_request);
  assert_int_equal(r->list_services_response->n_service, 2);
  assert_string_equal(r->list_services_response->service[0]->name, "inference.GRPCInferenceService");
  grpc__reflection__v1alpha__server_reflection_response__free_unpacked(r, NULL);
}

static void test_files_by_name_and_symbol(void **state) {
  (void)state;
  Grpc__Reflection__V1alpha__ServerReflectionRequest req = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  req.message_request_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
  req.file_by_filename = "inference.proto";
  Grpc__Reflection__V1alpha__ServerReflectionResponse *r = ask(&req);
  assert_true(has_file(r, "inference.proto"));
  assert_true(has_file(r, "google/rpc/status.proto"));
  assert_true(has_file(r, "google/protobuf/any.proto")); /* an import of an import */
  assert_false(has_file(r, "management.proto"));
  grpc__reflection__v1alpha__server_reflection_response__free_unpacked(r, NULL);

  static const char *const symbols[] = {"inference.GRPCInferenceService", ".inference.ModelInferRequest",
                                        "inference.ModelInferRequest.InferInputTensor",
                                        "inference.GRPCInferenceService.ModelInfer", "inference.DataType"};
  req.message_request_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
  for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
    req.file_containing_symbol = (char *)symbols[i];
    r = ask(&req);
    assert_true(has_file(r, "grpc_predict_v2.proto"));
    grpc__reflection__v1alpha__server_reflection_response__free_unpacked(r, NULL);
  }
}

static void test_unknown_and_malformed(void **state) {
  (void)state;
  Grpc__Reflection__V1alpha__ServerReflectionRequest req = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  req.message_request_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
  req.file_containing_symbol = "inference.Nothing";
  Grpc__Reflection__V1alpha__ServerReflectionResponse *r = ask(&req);
  assert_int_equal(r->error_response->error_code, 5);
  assert_non_null(strstr(r->error_response->error_message, "inference.Nothing"));
  grpc__reflection__v1alpha__server_reflection_response__free_unpacked(r, NULL);
  req.message_request_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE;
  req.all_extension_numbers_of_type = "inference.ModelInferRequest";
  r = ask(&req);
  assert_non_null(r->all_extension_numbers_response);
  assert_int_equal(r->all_extension_numbers_response->n_extension_number, 0);
  grpc__reflection__v1alpha__server_reflection_response__free_unpacked(r, NULL);

  uint8_t bad[] = {0xff, 0xff, 0xff}, *out = NULL;
  size_t out_len = 0;
  assert_int_equal(wk_grpc_reflection_answer(services, 2, bad, sizeof bad, &out, &out_len), WK_EINVAL);
  assert_null(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_list_services),
      cmocka_unit_test(test_files_by_name_and_symbol),
      cmocka_unit_test(test_unknown_and_malformed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
