/* Unit tests for tensor/oip: KServe v2 request parsing (JSON fast path and tree path,
 * binary tensor data, BYTES, datatype conversions) and response writing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/buf.h"
#include "tensor/oip.h"

static int parse(const char *text, wk_oip_request_t *r, wk_err_t *err) {
  return wk_oip_parse_request(text, strlen(text), strlen(text), r, err);
}

static void test_json_nested_and_flat(void **state) {
  (void)state;
  wk_oip_request_t r;
  wk_err_t err;
  /* nested and flat data give the same tensor; 0.1 is rounded once, to float32 */
  const char *bodies[] = {
      "{\"id\":\"q\",\"inputs\":[{\"name\":\"x\",\"shape\":[2,2],\"datatype\":\"FP32\",\"data\":[[0.1,2],[3,4]]}]}",
      "{\"inputs\":[{\"data\":[0.1,2,3,4],\"datatype\":\"FP32\",\"shape\":[2,2],\"name\":\"x\"}],\"id\":\"q\"}"};
  for (int k = 0; k < 2; k++) {
    assert_int_equal(parse(bodies[k], &r, &err), 0);
    assert_string_equal(r.id, "q");
    assert_int_equal(r.n_inputs, 1);
    assert_string_equal(r.inputs[0].name, "x");
    assert_int_equal(r.inputs[0].tensor.ndim, 2);
    assert_int_equal(r.inputs[0].tensor.shape[1], 2);
    const float *f = r.inputs[0].tensor.data;
    assert_true(f[0] == 0.1f && f[1] == 2.0f && f[3] == 4.0f);
    wk_oip_request_destroy(&r);
  }
}

static void test_datatypes_and_ranges(void **state) {
  (void)state;
  wk_oip_request_t r;
  wk_err_t err;
  assert_int_equal(parse("{\"inputs\":[{\"name\":\"a\",\"shape\":[2],\"datatype\":\"UINT16\",\"data\":[0,65535]},"
                         "{\"name\":\"b\",\"shape\":[2],\"datatype\":\"BOOL\",\"data\":[true,false]},"
                         "{\"name\":\"c\",\"shape\":[1],\"datatype\":\"FP16\",\"data\":[65504]},"
                         "{\"name\":\"d\",\"shape\":[1],\"datatype\":\"BF16\",\"data\":[1.5]}]}",
                         &r, &err),
                   0);
  assert_int_equal(r.inputs[0].tensor.dtype, WK_DT_INT32);
  assert_int_equal(((int32_t *)r.inputs[0].tensor.data)[1], 65535);
  assert_int_equal(r.inputs[1].tensor.dtype, WK_DT_BOOL);
  assert_int_equal(((uint8_t *)r.inputs[1].tensor.data)[0], 1);
  assert_int_equal(((uint16_t *)r.inputs[2].tensor.data)[0], 0x7bff); /* 65504: float16 max */
  assert_int_equal(((uint16_t *)r.inputs[3].tensor.data)[0], 0x3fc0); /* 1.5 in bfloat16 */
  wk_oip_request_destroy(&r);
  const struct {
    const char *body, *want;
  } bad[] = {
      {"{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"UINT16\",\"data\":[-1]}]}", "out of the range of UINT16"},
      {"{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"INT8\",\"data\":[128]}]}", "out of range for int8"},
      {"{\"inputs\":[{\"name\":\"a\",\"shape\":[3],\"datatype\":\"FP32\",\"data\":[1,2]}]}", "holds 3 elements, data has 2"},
      {"{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1,2]}]}", "more elements than shape [1]"},
      {"{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"STRING\",\"data\":[1]}]}", "unknown datatype \"STRING\""},
      {"{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[1]}]}", "BYTES data must be a list of strings"},
      {"{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[\"x\"]}]}", "not a number"},
      {"{\"inputs\":[]}", "\"inputs\" must be a list of 1 to"},
      {"[1,2]", "expected a JSON object"},
      {"{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]},"
       "{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", "used twice"},
      {"{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],\"outputs\":[{}]}",
       "outputs[0]: \"name\" must be a string"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err.msg[0] = '\0';
    assert_int_not_equal(parse(bad[i].body, &r, &err), 0);
    if (strstr(err.msg, bad[i].want) == NULL) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].want);
  }
}

static void test_binary_numbers_and_bytes(void **state) {
  (void)state;
  const char *head = "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"UINT32\","
                     "\"parameters\":{\"binary_data_size\":8}},{\"name\":\"s\",\"shape\":[2],"
                     "\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":11}}],"
                     "\"parameters\":{\"binary_data_output\":true}}";
  unsigned char bin[19] = {0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0, 3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0};
  size_t hl = strlen(head);
  char *body = malloc(hl + sizeof bin);
  memcpy(body, head, hl);
  memcpy(body + hl, bin, sizeof bin);
  wk_oip_request_t r;
  wk_err_t err;
  assert_int_equal(wk_oip_parse_request(body, hl + sizeof bin, hl, &r, &err), 0);
  assert_int_equal(r.binary_output, 1);
  assert_int_equal(r.inputs[0].tensor.dtype, WK_DT_INT64);
  assert_int_equal(((int64_t *)r.inputs[0].tensor.data)[0], 4294967295LL);
  assert_true(r.inputs[0].binary);
  assert_int_equal(r.inputs[1].n_elems, 2);
  assert_int_equal(r.inputs[1].elem_lens[0], 3);
  assert_memory_equal(r.inputs[1].elems[0], "abc", 3);
  assert_int_equal(r.inputs[1].elem_lens[1], 0);
  wk_oip_request_destroy(&r);
  /* one byte short, one byte too many, header past the body */
  assert_int_not_equal(wk_oip_parse_request(body, hl + sizeof bin - 1, hl, &r, &err), 0);
  assert_non_null(strstr(err.msg, "only 10 bytes of binary data are left"));
  char *longer = malloc(hl + sizeof bin + 1);
  memcpy(longer, body, hl + sizeof bin);
  longer[hl + sizeof bin] = 0;
  assert_int_not_equal(wk_oip_parse_request(longer, hl + sizeof bin + 1, hl, &r, &err), 0);
  assert_non_null(strstr(err.msg, "add up to 19"));
  assert_int_not_equal(wk_oip_parse_request(body, hl, hl + 1, &r, &err), 0);
  assert_non_null(strstr(err.msg, "Inference-Header-Content-Length"));
  free(longer);
  free(body);
}

/* A request built without JSON (gRPC's ModelInfer): the same checks as the parser's. */
static void test_built_request(void **state) {
  (void)state;
  wk_oip_request_t r;
  memset(&r, 0, sizeof r);
  wk_err_t err;
  const int64_t shape[] = {2};
  const unsigned char u32[8] = {0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0};
  assert_int_equal(wk_oip_add_input(&r, "x", "UINT32", shape, 1, u32, sizeof u32, &err), 0);
  assert_int_equal(r.inputs[0].tensor.dtype, WK_DT_INT64);
  assert_int_equal(((int64_t *)r.inputs[0].tensor.data)[0], 4294967295LL);
  assert_true(r.inputs[0].binary);
  const unsigned char bytes[11] = {3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0};
  assert_int_equal(wk_oip_add_input(&r, "s", "BYTES", shape, 1, bytes, sizeof bytes, &err), 0);
  assert_int_equal(r.inputs[1].n_elems, 2);
  assert_memory_equal(r.inputs[1].elems[0], "abc", 3);
  assert_int_equal(wk_oip_add_output(&r, "y", 1, &err), 0);
  assert_int_equal(r.n_outputs, 1);
  /* the JSON form a handler that reads JSON gets */
  wk_buf_t b = WK_BUF_INIT;
  assert_int_equal(wk_oip_request_json(&r, &b), 0);
  wk_buf_putc(&b, '\0');
  assert_non_null(strstr(b.data, "4294967295"));
  assert_non_null(strstr(b.data, "\"abc\""));
  wk_buf_destroy(&b);
  /* wrong size, a name used twice, an unknown datatype, a negative size: each named */
  assert_int_equal(wk_oip_add_input(&r, "z", "FP32", shape, 1, u32, 4, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "inputs[2] 'z': shape [2] of FP32 needs 8 bytes"));
  wk_oip_request_destroy(&r);
  assert_int_equal(wk_oip_add_input(&r, "x", "FP32", shape, 1, u32, 8, &err), 0);
  assert_int_equal(wk_oip_add_input(&r, "x", "INT32", shape, 1, u32, 8, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "used twice"));
  assert_int_equal(wk_oip_add_input(&r, "w", "FP8", shape, 1, u32, 8, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "unknown datatype \"FP8\""));
  const int64_t negative[] = {-1};
  assert_int_equal(wk_oip_add_input(&r, "v", "FP32", negative, 1, u32, 8, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "shape[0] must be a non-negative integer"));
  const int64_t huge[] = {1LL << 40, 1LL << 40};
  assert_int_equal(wk_oip_add_input(&r, "h", "FP32", huge, 2, u32, 8, &err), WK_ETOOBIG);
  wk_oip_request_destroy(&r);
}

static void test_response(void **state) {
  (void)state;
  float v[3] = {1.5f, -2.0f, 0.1f};
  wk_tensor_t t = {WK_DT_FLOAT32, 2, {1, 3}, v, sizeof v, 0};
  const char *elems[1] = {"hi"};
  size_t lens[1] = {2};
  wk_oip_output_t outs[2] = {{"OUTPUT__0", &t, 0, NULL, NULL, 0}, {"s", NULL, 1, elems, lens, 1}};
  wk_buf_t b = WK_BUF_INIT;
  size_t json_len;
  assert_int_equal(wk_oip_write_response(&b, "m", "1.0", "id7", outs, 2, &json_len), 0);
  const char *want = "{\"model_name\":\"m\",\"model_version\":\"1.0\",\"id\":\"id7\",\"outputs\":["
                     "{\"name\":\"OUTPUT__0\",\"datatype\":\"FP32\",\"shape\":[1,3],\"data\":[1.5,-2.0,0.1]},"
                     "{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[1],\"parameters\":{\"binary_data_size\":6}}]}";
  assert_int_equal(json_len, strlen(want));
  assert_memory_equal(b.data, want, json_len);
  assert_int_equal(b.len, json_len + 6);
  assert_memory_equal(b.data + json_len, "\x02\x00\x00\x00hi", 6);
  wk_buf_destroy(&b);
}

/* The binary form of one JSON output, as wk_oip_output_binary writes it. */
static int output_binary(const char *json, wk_buf_t *b, wk_err_t *err) {
  json_t *o = json_loads(json, 0, NULL);
  assert_non_null(o);
  b->len = 0;
  memset(err, 0, sizeof *err);
  int rc = wk_oip_output_binary(o, 2, b, err);
  json_decref(o);
  return rc;
}

static void test_output_binary(void **state) {
  (void)state;
  wk_buf_t b = WK_BUF_INIT;
  wk_err_t err;
  /* FP16 and BF16 are rounded to their 16 bits, not cut from an integer */
  assert_int_equal(output_binary("{\"name\":\"h\",\"datatype\":\"FP16\",\"shape\":[3],\"data\":[0.5,-2,65504]}", &b, &err), 0);
  assert_int_equal(b.len, 6);
  assert_memory_equal(b.data, "\x00\x38\x00\xc0\xff\x7b", 6);
  assert_int_equal(output_binary("{\"name\":\"b\",\"datatype\":\"BF16\",\"shape\":[1],\"data\":[1.0]}", &b, &err), 0);
  assert_memory_equal(b.data, "\x80\x3f", 2);
  /* UINT16 is kept in int32 by the reader: two bytes each on the wire; nested data flattened */
  assert_int_equal(output_binary("{\"name\":\"u\",\"datatype\":\"UINT16\",\"shape\":[2,1],\"data\":[[65535],[2]]}", &b, &err), 0);
  assert_int_equal(b.len, 4);
  assert_memory_equal(b.data, "\xff\xff\x02\x00", 4);
  assert_int_equal(output_binary("{\"name\":\"i\",\"datatype\":\"INT64\",\"shape\":[1],\"data\":[-1]}", &b, &err), 0);
  assert_memory_equal(b.data, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
  assert_int_equal(output_binary("{\"name\":\"t\",\"datatype\":\"BOOL\",\"shape\":[2],\"data\":[true,false]}", &b, &err), 0);
  assert_memory_equal(b.data, "\x01\x00", 2);
  assert_int_equal(output_binary("{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[2],\"data\":[\"ab\",\"\"]}", &b, &err), 0);
  assert_int_equal(b.len, 10);
  assert_memory_equal(b.data, "\x02\x00\x00\x00" "ab" "\x00\x00\x00\x00", 10);
  /* what does not fit is refused, naming the output and the element */
  assert_int_equal(output_binary("{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[3],\"data\":[1,2]}", &b, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "outputs[2] 'x'"));
  assert_non_null(strstr(err.msg, "holds 3 elements, data has 2"));
  assert_int_equal(output_binary("{\"name\":\"x\",\"datatype\":\"INT8\",\"shape\":[1],\"data\":[300]}", &b, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "out of the range of INT8"));
  assert_int_equal(output_binary("{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[\"a\"]}", &b, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "element 0 is not a number"));
  assert_int_equal(output_binary("{\"name\":\"x\",\"datatype\":\"FP8\",\"shape\":[1],\"data\":[1]}", &b, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "unknown datatype"));
  wk_buf_destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_nested_and_flat),
      cmocka_unit_test(test_datatypes_and_ranges),
      cmocka_unit_test(test_binary_numbers_and_bytes),
      cmocka_unit_test(test_built_request),
      cmocka_unit_test(test_response),
      cmocka_unit_test(test_output_binary),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
