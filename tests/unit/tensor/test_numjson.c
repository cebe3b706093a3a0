/* Unit tests for tensor/numjson: shapes, envelopes, dtypes, error messages and positions,
 * limits, numbers compared bit for bit with strtod/strtof, and printer round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/limits.h"
#include "tensor/numjson.h"
#include "tensor/tensor.h"

/* Parses s (copied into a buffer of exactly strlen(s) bytes, so ASan sees any overread). */
static int parse_inputs(const char *s, wk_json_inputs_t *in, wk_err_t *err) {
  size_t n = strlen(s);
  char *copy = malloc(n ? n : 1);
  memcpy(copy, s, n);
  memset(err, 0, sizeof *err);
  int rc = wk_json_parse_inputs(copy, n, in, err);
  free(copy);
  return rc;
}

static int parse_tensor(const char *s, wk_dtype_t dt, wk_tensor_t *t, wk_err_t *err) {
  size_t n = strlen(s);
  char *copy = malloc(n ? n : 1);
  memcpy(copy, s, n);
  memset(err, 0, sizeof *err);
  int rc = wk_json_parse_tensor(copy, n, dt, t, err);
  free(copy);
  return rc;
}

static void assert_shape(const wk_tensor_t *t, int ndim, const int64_t *shape) {
  assert_int_equal(t->ndim, ndim);
  for (int i = 0; i < ndim; i++)
    assert_int_equal(t->shape[i], shape[i]);
  assert_int_equal(t->nbytes, (size_t)wk_tensor_numel(t) * wk_dtype_size(t->dtype));
}

/* Asserts that s fails with code and a message containing want. */
static void expect_fail(const char *s, int code, const char *want) {
  wk_json_inputs_t in;
  wk_err_t err;
  memset(&in, 0x5a, sizeof in);
  int rc = parse_inputs(s, &in, &err);
  if (rc != code || strstr(err.msg, want) == NULL)
    fail_msg("body %s: rc %d (want %d), message \"%s\" (want \"%s\")", s, rc, code, err.msg, want);
  assert_int_equal(((unsigned char *)&in)[0], 0x5a); /* untouched on failure */
}

static void test_nested_shapes(void **state) {
  (void)state;
  wk_json_inputs_t in;
  wk_err_t err;
  assert_int_equal(parse_inputs(" \n[[1, 2, 3],\r\n\t[4,5,6e0]] \n", &in, &err), 0);
  assert_int_equal(in.count, 1);
  assert_null(in.names[0]);
  assert_int_equal(in.tensors[0].dtype, WK_DT_FLOAT32);
  assert_shape(&in.tensors[0], 2, (int64_t[]){2, 3});
  const float *f = in.tensors[0].data;
  for (int i = 0; i < 6; i++)
    assert_true(f[i] == (float)(i + 1));
  wk_json_inputs_destroy(&in);
  assert_int_equal(in.count, 0);

  static const struct {
    const char *body;
    int ndim;
    int64_t shape[4];
  } cases[] = {
      {"[]", 1, {0}},
      {"[[],[]]", 2, {2, 0}},
      {"[[[1]]]", 3, {1, 1, 1}},
      {"[[[]]]", 3, {1, 1, 0}},
      {"3.5", 0, {0}},
      {"[1,2,3,4]", 1, {4}},
      {"[[[1,2],[3,4],[5,6]],[[1,2],[3,4],[5,6]]]", 3, {2, 3, 2}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(parse_inputs(cases[i].body, &in, &err), 0);
    assert_shape(&in.tensors[0], cases[i].ndim, cases[i].shape);
    wk_json_inputs_destroy(&in);
  }
  assert_int_equal(parse_inputs("-2.5e-1", &in, &err), 0);
  assert_true(*(float *)in.tensors[0].data == -0.25f);
  wk_json_inputs_destroy(&in);
}

static void named_body(wk_buf_t *b, int n) {
  b->len = 0;
  wk_buf_puts(b, "{\"inputs\": {");
  for (int i = 0; i < n; i++)
    wk_buf_printf(b, "%s\"x%d\": [%d]", i ? "," : "", i, i);
  wk_buf_puts(b, "}}");
}

static void test_envelopes(void **state) {
  (void)state;
  wk_json_inputs_t in;
  wk_err_t err;
  assert_int_equal(parse_inputs("{\"data\": [[1,2]]}", &in, &err), 0);
  assert_shape(&in.tensors[0], 2, (int64_t[]){1, 2});
  wk_json_inputs_destroy(&in);
  assert_int_equal(parse_inputs("{\"body\": 7}", &in, &err), 0);
  assert_shape(&in.tensors[0], 0, NULL);
  assert_true(*(float *)in.tensors[0].data == 7.0f);
  wk_json_inputs_destroy(&in);

  /* instances: rows stacked; scalar rows give [nrows] */
  assert_int_equal(parse_inputs("{\"instances\": [[1,2],[3,4],[5,6]]}", &in, &err), 0);
  assert_shape(&in.tensors[0], 2, (int64_t[]){3, 2});
  assert_true(((float *)in.tensors[0].data)[5] == 6.0f);
  wk_json_inputs_destroy(&in);
  assert_int_equal(parse_inputs("{\"instances\": [1,2,3]}", &in, &err), 0);
  assert_shape(&in.tensors[0], 1, (int64_t[]){3});
  wk_json_inputs_destroy(&in);
  assert_int_equal(parse_inputs("{\"instances\": []}", &in, &err), 0);
  assert_shape(&in.tensors[0], 1, (int64_t[]){0});
  wk_json_inputs_destroy(&in);
  expect_fail("{\"instances\": 5}", WK_EINVAL, "expected '[' (\"instances\" is a list of rows)");
  expect_fail("{\"instances\": [[1,2],[3]]}", WK_EINVAL,
              "ragged nested list at line 1, column 22 (offset 21): expected 2 elements at "
              "depth 2, found 1");

  /* named inputs, with escapes in names */
  assert_int_equal(
      parse_inputs("{\"inputs\": {\"a\": [1,2], \"b\\u00e9\": [[3]], \"c\": 4}}", &in, &err), 0);
  assert_int_equal(in.count, 3);
  assert_string_equal(in.names[0], "a");
  assert_string_equal(in.names[1], "b\xc3\xa9");
  assert_string_equal(in.names[2], "c");
  assert_shape(&in.tensors[0], 1, (int64_t[]){2});
  assert_shape(&in.tensors[1], 2, (int64_t[]){1, 1});
  assert_shape(&in.tensors[2], 0, NULL);
  wk_json_inputs_destroy(&in);
  assert_int_equal(parse_inputs("{\"inputs\": [[1,2],[3,4]]}", &in, &err), 0);
  assert_int_equal(in.count, 1);
  assert_null(in.names[0]);
  assert_shape(&in.tensors[0], 2, (int64_t[]){2, 2});
  wk_json_inputs_destroy(&in);
  expect_fail("{\"inputs\": {\"a\": [1], \"a\": [2]}}", WK_EINVAL, "input \"a\" given twice");
  expect_fail("{\"inputs\": {}}", WK_EINVAL, "\"inputs\" is an empty object");
  expect_fail("{\"inputs\": {\"a\\u0000b\": [1]}}", WK_EINVAL, "contains \\u0000");
  wk_buf_t b = WK_BUF_INIT;
  named_body(&b, WK_MAX_NAMED_INPUTS + 1);
  expect_fail(b.data, WK_ETOOBIG, "at most 16 named inputs");
  named_body(&b, WK_MAX_NAMED_INPUTS);
  assert_int_equal(parse_inputs(b.data, &in, &err), 0);
  assert_int_equal(in.count, WK_MAX_NAMED_INPUTS);
  assert_string_equal(in.names[15], "x15");
  wk_json_inputs_destroy(&in);
  wk_buf_destroy(&b);

  /* unknown keys are skipped (and validated); dtype before or after the data */
  assert_int_equal(
      parse_inputs("{\"meta\": {\"x\": [1, {\"y\": \"s\\\"\\\\\\u00e9\\ud83d\\ude00\"}],"
                   " \"z\": null, \"t\": [true, false, -0.5e+3]}, \"data\": [1],"
                   " \"more\": \"}\"}",
                   &in, &err),
      0);
  assert_shape(&in.tensors[0], 1, (int64_t[]){1});
  wk_json_inputs_destroy(&in);
  assert_int_equal(parse_inputs("{\"data\": [1, 2], \"dtype\": \"int64\"}", &in, &err), 0);
  assert_int_equal(in.tensors[0].dtype, WK_DT_INT64);
  assert_int_equal(((int64_t *)in.tensors[0].data)[1], 2);
  wk_json_inputs_destroy(&in);
  assert_int_equal(parse_inputs("{\"dtype\": \"torch.float64\", \"data\": [0.1]}", &in, &err), 0);
  assert_int_equal(in.tensors[0].dtype, WK_DT_FLOAT64);
  assert_true(*(double *)in.tensors[0].data == 0.1);
  wk_json_inputs_destroy(&in);
  expect_fail("{\"data\": [1.5], \"dtype\": \"int32\"}", WK_EINVAL,
              "1.5 is not an integer (dtype int32)");
  expect_fail("{\"dtype\": \"complex\", \"data\": [1]}", WK_EINVAL,
              "unknown dtype \"complex\" at line 1, column 11 (offset 10): expected one of float32");
  expect_fail("{\"dtype\": 3, \"data\": [1]}", WK_EINVAL, "expected a string such as");
  expect_fail("{\"meta\": 1}", WK_EINVAL, "expected a JSON tensor: a list, or an object");
  expect_fail("{}", WK_EINVAL, "expected a JSON tensor");
  expect_fail("{\"data\": [1], \"inputs\": [2]}", WK_EINVAL, "expected only one of");
  expect_fail("", WK_EINVAL, "empty body: expected a JSON tensor");
  expect_fail(" \r\n\t", WK_EINVAL, "empty body: expected a JSON tensor");
  expect_fail("[1] x", WK_EINVAL,
              "malformed JSON at line 1, column 5 (offset 4): expected the end of the body, "
              "found 'x'");
  expect_fail("{\"data\": [1]} {}", WK_EINVAL, "expected the end of the body");
  expect_fail("{\"data\": [1]", WK_EINVAL, "expected ',' or '}', found the end of the body");
  expect_fail("{\"data\" [1]}", WK_EINVAL, "expected ':', found '['");
  expect_fail("{data: [1]}", WK_EINVAL, "expected a string key, found 'd'");
  expect_fail("{\"data\": [1], }", WK_EINVAL, "expected a string key, found '}'");
  expect_fail("\"text\"", WK_EINVAL, "expected a number or '[', found '\"'");
  expect_fail("{\"data\": {\"a\": [1]}}", WK_EINVAL, "expected a number or '[', found '{'");
}

static void test_dtypes(void **state) {
  (void)state;
  wk_tensor_t t;
  wk_err_t err;
  assert_int_equal(
      parse_tensor("[9223372036854775807, -9223372036854775808, 9007199254740993, 1e3, -0]",
                   WK_DT_INT64, &t, &err),
      0);
  const int64_t *i64 = t.data;
  assert_true(i64[0] == INT64_MAX);
  assert_true(i64[1] == INT64_MIN);
  assert_true(i64[2] == 9007199254740993LL); /* not representable as a double */
  assert_true(i64[3] == 1000);
  assert_true(i64[4] == 0);
  wk_tensor_destroy(&t);

  static const struct {
    const char *body;
    wk_dtype_t dt;
    const char *want; /* NULL: parses */
  } cases[] = {
      {"[9223372036854775808]", WK_DT_INT64, "out of range for int64"},
      {"[-9223372036854775809]", WK_DT_INT64, "out of range for int64"},
      {"[123456789012345678901234]", WK_DT_INT64, "out of range for int64"},
      {"[1e19]", WK_DT_INT64, "out of range for int64"},
      {"[127, -128]", WK_DT_INT8, NULL},
      {"[128]", WK_DT_INT8, "128 is out of range for int8 (-128 to 127)"},
      {"[32767, -32768]", WK_DT_INT16, NULL},
      {"[-32769]", WK_DT_INT16, "out of range for int16"},
      {"[2147483647, -2147483648, 2.0]", WK_DT_INT32, NULL},
      {"[2147483648]", WK_DT_INT32, "out of range for int32"},
      {"[2.5]", WK_DT_INT32, "2.5 is not an integer (dtype int32)"},
      {"[NaN]", WK_DT_INT32, "NaN is not an integer"},
      {"[-Infinity]", WK_DT_INT64, "-Infinity is not an integer"},
      {"[255, 0]", WK_DT_UINT8, NULL},
      {"[-1]", WK_DT_UINT8, "out of range for uint8 (0 to 255)"},
      {"[256]", WK_DT_UINT8, "out of range for uint8"},
      {"[true, false, 1, 0, 1.0]", WK_DT_BOOL, NULL},
      {"[2]", WK_DT_BOOL, "2 is out of range for bool (0 to 1)"},
      {"[null]", WK_DT_BOOL, "expected a number or '[', found 'n'"},
      {"[-NaN]", WK_DT_FLOAT32, "expected a number, found 'N'"},
      {"[Inf]", WK_DT_FLOAT32, "expected a number, found 'I'"},
      {"[nan]", WK_DT_FLOAT32, "found 'n'"},
      {"[truex]", WK_DT_BOOL, "expected ',' or ']', found 'x'"},
      {"[1, trux]", WK_DT_BOOL, "(offset 4): expected a number, found 't'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = parse_tensor(cases[i].body, cases[i].dt, &t, &err);
    if (cases[i].want == NULL) {
      if (rc != 0) fail_msg("%s: %s", cases[i].body, err.msg);
      wk_tensor_destroy(&t);
    } else if (rc != WK_EINVAL || strstr(err.msg, cases[i].want) == NULL) {
      fail_msg("%s: rc %d message \"%s\", want \"%s\"", cases[i].body, rc, err.msg, cases[i].want);
    }
  }

  assert_int_equal(parse_tensor("[true, false, 1, 0]", WK_DT_BOOL, &t, &err), 0);
  assert_memory_equal(t.data, "\1\0\1\0", 4);
  wk_tensor_destroy(&t);
  assert_int_equal(parse_tensor("[true, 0.5]", WK_DT_FLOAT32, &t, &err), 0); /* as torch */
  assert_true(((float *)t.data)[0] == 1.0f);
  wk_tensor_destroy(&t);
  assert_int_equal(
      parse_tensor("[NaN, Infinity, -Infinity, -0.0, 1e39, 1e-50]", WK_DT_FLOAT32, &t, &err), 0);
  const float *f = t.data;
  assert_true(isnan(f[0]));
  assert_true(isinf(f[1]) && f[1] > 0);
  assert_true(isinf(f[2]) && f[2] < 0);
  assert_true(f[3] == 0 && signbit(f[3]));
  assert_true(isinf(f[4]));
  assert_true(f[5] == 0 && !signbit(f[5]));
  wk_tensor_destroy(&t);

  /* float16 and bfloat16: round to nearest even from the double */
  static const struct {
    const char *num;
    wk_dtype_t dt;
    uint16_t bits;
  } smalls[] = {
      {"1", WK_DT_FLOAT16, 0x3c00},
      {"-2", WK_DT_FLOAT16, 0xc000},
      {"65504", WK_DT_FLOAT16, 0x7bff},
      {"65519", WK_DT_FLOAT16, 0x7bff},
      {"65520", WK_DT_FLOAT16, 0x7c00},
      {"0.1", WK_DT_FLOAT16, 0x2e66},
      {"5.960464477539063e-08", WK_DT_FLOAT16, 0x0001},
      {"2.98e-08", WK_DT_FLOAT16, 0x0000},
      {"2.99e-08", WK_DT_FLOAT16, 0x0001},
      {"6.103515625e-05", WK_DT_FLOAT16, 0x0400},
      {"NaN", WK_DT_FLOAT16, 0x7e00},
      {"-Infinity", WK_DT_FLOAT16, 0xfc00},
      {"-0.0", WK_DT_FLOAT16, 0x8000},
      {"1", WK_DT_BFLOAT16, 0x3f80},
      {"3.14159", WK_DT_BFLOAT16, 0x4049},
      {"1e39", WK_DT_BFLOAT16, 0x7f80},
      {"3.4e38", WK_DT_BFLOAT16, 0x7f80},
      {"-1.5", WK_DT_BFLOAT16, 0xbfc0},
  };
  for (size_t i = 0; i < sizeof smalls / sizeof smalls[0]; i++) {
    assert_int_equal(parse_tensor(smalls[i].num, smalls[i].dt, &t, &err), 0);
    uint16_t h;
    memcpy(&h, t.data, 2);
    if (h != smalls[i].bits)
      fail_msg("%s as %s: 0x%04x, want 0x%04x", smalls[i].num, wk_dtype_name(smalls[i].dt), h,
               smalls[i].bits);
    wk_tensor_destroy(&t);
  }
}

static void test_ragged_messages(void **state) {
  (void)state;
  expect_fail("[[1,2,3],[4,5]]", WK_EINVAL,
              "ragged nested list at line 1, column 10 (offset 9): expected 3 elements at depth "
              "2, found 2");
  expect_fail("[[1,2],[3,4,5]]", WK_EINVAL, "expected 2 elements at depth 2, found 3");
  expect_fail("[\n  [1, 2],\n  [3]\n]", WK_EINVAL,
              "ragged nested list at line 3, column 3 (offset 14): expected 2 elements at depth "
              "2, found 1");
  expect_fail("[[1,2],3]", WK_EINVAL,
              "ragged nested list at line 1, column 8 (offset 7): expected a list at depth 2, "
              "found a number");
  expect_fail("[1,[2]]", WK_EINVAL,
              "ragged nested list at line 1, column 4 (offset 3): expected a number at depth 2, "
              "found a list");
  expect_fail("[[[1],[2]],[[3],[4],[5]]]", WK_EINVAL, "expected 2 elements at depth 2, found 3");
  expect_fail("[[], [1]]", WK_EINVAL, "expected 0 elements at depth 2, found 1");
  expect_fail("[[1], []]", WK_EINVAL, "expected 1 elements at depth 2, found 0");
  expect_fail("[[1],x]", WK_EINVAL, "expected '[', found 'x'");
}

static void test_malformed_positions(void **state) {
  (void)state;
  expect_fail("{\n  \"data\": [1, 2,\n    x]\n}", WK_EINVAL,
              "malformed JSON at line 3, column 5 (offset 23): expected a number, found 'x'");
  expect_fail("{\"a\": \"x\ny\", \"data\": [1]}", WK_EINVAL,
              "malformed JSON at line 1, column 9 (offset 8): expected a character (control "
              "bytes must be escaped), found byte 0x0a");
  expect_fail("{\"a\":\n\n  [1, 2 3], \"data\": [1]}", WK_EINVAL,
              "malformed JSON at line 3, column 9 (offset 15): expected ',' or ']', found '3'");
  static const struct {
    const char *body;
    const char *want;
  } cases[] = {
      {"[01]", "(offset 2): numbers cannot have leading zeros"},
      {"[-01]", "(offset 3): numbers cannot have leading zeros"},
      {"[+1]", "(offset 1): expected a number or '[', found '+'"},
      {"[.5]", "(offset 1): expected a number or '[', found '.'"},
      {"[1.]", "(offset 3): expected a digit after '.', found ']'"},
      {"[1.e5]", "(offset 3): expected a digit after '.', found 'e'"},
      {"[0x10]", "(offset 2): expected ',' or ']', found 'x'"},
      {"[1e]", "(offset 3): expected a digit in the exponent, found ']'"},
      {"[1e+]", "(offset 4): expected a digit in the exponent"},
      {"[-]", "(offset 2): expected a digit after '-', found ']'"},
      {"[-a]", "(offset 2): expected a digit after '-'"},
      {"[1,]", "(offset 3): expected a number, found ']'"},
      {"[1 2]", "(offset 3): expected ',' or ']', found '2'"},
      {"[1", "(offset 2): expected ',' or ']', found the end of the body"},
      {"[", "(offset 1): expected a number or '[', found the end of the body"},
      {"1.5e", "(offset 4): expected a digit in the exponent, found the end of the body"},
      {"-", "(offset 1): expected a digit after '-', found the end of the body"},
      {"tru", "(offset 0): expected a number or '[', found 't'"},
      {"[1]]", "(offset 3): expected the end of the body, found ']'"},
      {"{\"data\": [1], \"x\": \"abc}", "expected '\"' to end the string, found the end"},
      {"{\"data\": [1], \"x\": \"\\q\"}", "(offset 21): expected a valid escape"},
      {"{\"data\": [1], \"x\": \"\\u12g4\"}", "(offset 22): expected 4 hex digits"},
      {"{\"data\": [1], \"x\": \"\\ud800\"}", "unpaired surrogate"},
      {"{\"data\": [1], \"x\": \"\\udc00\"}", "unpaired surrogate"},
      {"{\"data\": [1], \"x\": nul}", "(offset 19): expected a JSON value, found 'n'"},
      {"{\"data\": [1], \"x\": [1,]}", "(offset 22): expected a JSON value, found ']'"},
      {"{\"data\": [1], \"x\": {\"a\" 1}}", "(offset 24): expected ':', found '1'"},
      {"{\"data\": [1], \"x\": {\"a\": 1,}}", "(offset 27): expected a string key, found '}'"},
      {"{\"data\": [1], \"x\": 01}", "numbers cannot have leading zeros"},
      {"{\"data\": [1], \"x\": \"\xff\x01\"}", "found byte 0x01"},
      {"[\"a\"]", "(offset 1): expected a number or '[', found '\"'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    wk_json_inputs_t in;
    wk_err_t err;
    int rc = parse_inputs(cases[i].body, &in, &err);
    if (rc != WK_EINVAL || strstr(err.msg, cases[i].want) == NULL ||
        strncmp(err.msg, "malformed JSON at line ", 23) != 0)
      fail_msg("%s: rc %d message \"%s\", want \"%s\"", cases[i].body, rc, err.msg, cases[i].want);
  }
}

static void test_limits(void **state) {
  (void)state;
  wk_tensor_t t;
  wk_err_t err;
  /* rank: WK_MAX_DIMS nested lists parse, one more does not */
  char deep[64] = "";
  for (int i = 0; i < WK_MAX_DIMS; i++)
    strcat(deep, "[");
  strcat(deep, "1");
  for (int i = 0; i < WK_MAX_DIMS; i++)
    strcat(deep, "]");
  assert_int_equal(parse_tensor(deep, WK_DT_FLOAT32, &t, &err), 0);
  assert_int_equal(t.ndim, WK_MAX_DIMS);
  wk_tensor_destroy(&t);
  char deeper[80];
  snprintf(deeper, sizeof deeper, "[%s]", deep);
  assert_int_equal(parse_tensor(deeper, WK_DT_FLOAT32, &t, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "nested list too deep at line 1, column 9 (offset 8): a "
                                  "tensor has at most 8 dimensions"));

  /* nesting of skipped values */
  wk_buf_t b = WK_BUF_INIT;
  wk_buf_puts(&b, "{\"x\": ");
  for (int i = 0; i < WK_MAX_JSON_DEPTH; i++)
    wk_buf_puts(&b, "[");
  for (int i = 0; i < WK_MAX_JSON_DEPTH; i++)
    wk_buf_puts(&b, "]");
  wk_buf_puts(&b, ", \"data\": [1]}");
  wk_json_inputs_t in;
  assert_int_equal(parse_inputs(b.data, &in, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "JSON too deep"));
  wk_buf_destroy(&b);
  wk_buf_puts(&b, "{\"x\": ");
  for (int i = 0; i < WK_MAX_JSON_DEPTH - 1; i++)
    wk_buf_puts(&b, "[");
  for (int i = 0; i < WK_MAX_JSON_DEPTH - 1; i++)
    wk_buf_puts(&b, "]");
  wk_buf_puts(&b, ", \"data\": [1]}");
  assert_int_equal(parse_inputs(b.data, &in, &err), 0);
  wk_json_inputs_destroy(&in);
  wk_buf_destroy(&b);

  /* element count: a small cap through wk_json_parse_tensor_max (the same code path as
   * WK_MAX_TENSOR_ELEMS, without a 128 MB body) */
  const char *ten = "[[1,2],[3,4],[5,6],[7,8],[9,10]]";
  assert_int_equal(wk_json_parse_tensor_max(ten, strlen(ten), WK_DT_FLOAT32, 10, &t, &err), 0);
  wk_tensor_destroy(&t);
  assert_int_equal(wk_json_parse_tensor_max(ten, strlen(ten), WK_DT_FLOAT32, 9, &t, &err),
                   WK_ETOOBIG);
  assert_non_null(strstr(err.msg, "tensor too large at line 1, column 29 (offset 28): more "
                                  "than 9 elements"));
  /* a cap above the global limit is clamped to it */
  assert_int_equal(wk_json_parse_tensor_max(ten, strlen(ten), WK_DT_FLOAT32, SIZE_MAX, &t, &err),
                   0);
  wk_tensor_destroy(&t);
  assert_int_equal(wk_json_parse_tensor(ten, strlen(ten), (wk_dtype_t)99, &t, &err), WK_EINVAL);
}

/* ---- numbers vs the C library ------------------------------------------------------- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) {
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  return g_rng * 0x2545f4914f6cdd1dULL;
}

/* A random JSON number, biased to the fast paths' edges. */
static void gen_number(char *buf, size_t cap, int for_float) {
  int kind = (int)(rnd() % 8);
  size_t n = 0;
  if (kind <= 3) { /* digits: int part, fraction, exponent */
    if (rnd() % 2) buf[n++] = '-';
    int idig = (int)(rnd() % 22), fdig = (int)(rnd() % 22);
    if (idig == 0) buf[n++] = '0';
    for (int i = 0; i < idig; i++)
      buf[n++] = (char)('0' + (i == 0 ? 1 + rnd() % 9 : rnd() % 10));
    if (fdig && rnd() % 4) {
      buf[n++] = '.';
      int zeros = (int)(rnd() % 4 == 0 ? rnd() % 12 : 0);
      for (int i = 0; i < fdig; i++)
        buf[n++] = (char)('0' + (i < zeros ? 0 : rnd() % 10));
    }
    if (rnd() % 2) {
      int range = for_float ? 50 : 330;
      n += (size_t)snprintf(buf + n, cap - n, "e%d", (int)(rnd() % (2 * range + 1)) - range);
    }
    buf[n] = '\0';
  } else if (kind == 4) { /* a random float or double printed at various precisions */
    uint64_t bits = rnd();
    double d;
    if (for_float) {
      uint32_t b32 = (uint32_t)bits;
      float f;
      memcpy(&f, &b32, 4);
      d = f;
    } else {
      memcpy(&d, &bits, 8);
    }
    if (isnan(d) || isinf(d)) d = 1.5;
    snprintf(buf, cap, "%.*g", 6 + (int)(rnd() % 14), d);
  } else if (kind == 5 && for_float) { /* near a float32 midpoint */
    uint32_t b32 = (uint32_t)rnd() & 0x7fffffff;
    float f;
    memcpy(&f, &b32, 4);
    if (isnan(f) || isinf(f)) f = 3.0f;
    double mid = ((double)f + (double)nextafterf(f, INFINITY)) / 2;
    int prec = (int)(rnd() % 4) == 0 ? 30 : 14 + (int)(rnd() % 6);
    snprintf(buf, cap, "%.*g", prec, mid);
  } else if (kind == 5) { /* near a double midpoint */
    uint64_t bits = rnd() & 0x7fffffffffffffffULL;
    double d;
    memcpy(&d, &bits, 8);
    if (isnan(d) || isinf(d)) d = 3.0;
    long double mid = ((long double)d + (long double)nextafter(d, INFINITY)) / 2;
    snprintf(buf, cap, "%.*Lg", 16 + (int)(rnd() % 5), mid);
  } else if (kind == 6) { /* short "nice" numbers in the double fast path */
    snprintf(buf, cap, "%s%llu.%llue%d", rnd() % 2 ? "-" : "",
             (unsigned long long)(rnd() % 1000000), (unsigned long long)(rnd() % 100000),
             (int)(rnd() % 45) - 22);
  } else { /* integers with 15 to 19 digits, scaled by up to 10^+-27 (the long double path) */
    unsigned long long m = rnd() % 10000000000000000000ULL;
    snprintf(buf, cap, "%llue%d", m, (int)(rnd() % 55) - 27);
  }
}

static void check_numbers(int n, wk_dtype_t dt, const char *const *extra, size_t nextra) {
  char **nums = calloc((size_t)n + nextra, sizeof *nums);
  wk_buf_t body = WK_BUF_INIT;
  wk_buf_putc(&body, '[');
  for (int i = 0; i < n + (int)nextra; i++) {
    char tmp[128];
    if ((size_t)i < nextra)
      snprintf(tmp, sizeof tmp, "%s", extra[i]);
    else
      gen_number(tmp, sizeof tmp, dt == WK_DT_FLOAT32);
    nums[i] = strdup(tmp);
    if (i) wk_buf_putc(&body, ',');
    wk_buf_puts(&body, tmp);
  }
  wk_buf_putc(&body, ']');
  wk_tensor_t t;
  wk_err_t err;
  int rc = wk_json_parse_tensor(body.data, body.len, dt, &t, &err);
  if (rc != 0) fail_msg("%s", err.msg);
  assert_int_equal(t.shape[0], n + (int)nextra);
  int bad = 0;
  for (int i = 0; i < n + (int)nextra; i++) {
    if (dt == WK_DT_FLOAT32) {
      float want = strtof(nums[i], NULL), got = ((float *)t.data)[i];
      if (memcmp(&want, &got, 4) != 0 && bad++ < 5)
        print_error("%s: got %.9g want %.9g\n", nums[i], (double)got, (double)want);
    } else {
      double want = strtod(nums[i], NULL), got = ((double *)t.data)[i];
      if (memcmp(&want, &got, 8) != 0 && bad++ < 5)
        print_error("%s: got %.17g want %.17g\n", nums[i], got, want);
    }
    free(nums[i]);
  }
  free(nums);
  wk_tensor_destroy(&t);
  wk_buf_destroy(&body);
  assert_int_equal(bad, 0);
}

static void test_numbers_vs_libc(void **state) {
  (void)state;
  static const char *const f32_edges[] = {"16777217",
                                          "16777217.000000001",
                                          "16777217.0000000001",
                                          "16777217.00000000000000000001",
                                          "1.00000005960464477539",
                                          "1.000000059604644775390625",
                                          "1.0000000596046447753906251",
                                          "1.00000005960464477539062499",
                                          "3.4028235677973366e38",
                                          "3.4028235677973367e38",
                                          "3.40282356779733661637539395458142568448e38",
                                          "340282356779733661637539395458142568448",
                                          "1.4012984643e-45",
                                          "7.006492321624085e-46",
                                          "7.006492321624086e-46",
                                          "1e-46",
                                          "1.17549435e-38",
                                          "0.1",
                                          "0.2",
                                          "0.3",
                                          "123456789",
                                          "9999999999999999999",
                                          "10000000000000000000",
                                          "0.000000000000000000000000000000000000000000001",
                                          "2.5e-45",
                                          "-0",
                                          "0e99999",
                                          "1e-99999",
                                          "1e99999",
                                          "4.3e9",
                                          "12345678.5"};
  static const char *const f64_edges[] = {"9007199254740993",
                                          "9007199254740992.5",
                                          "9007199254740993.0000000001",
                                          "4.9406564584124654e-324",
                                          "2.4703282292062327e-324",
                                          "2.4703282292062328e-324",
                                          "2.2250738585072011e-308",
                                          "2.2250738585072012e-308",
                                          "1.7976931348623157e308",
                                          "1.7976931348623158e308",
                                          "1.7976931348623159e308",
                                          "0.1",
                                          "1e23",
                                          "8.533e-15",
                                          "9223372036854775807",
                                          "18446744073709551615",
                                          "1e22",
                                          "1e-22",
                                          "123456789012345678e-27",
                                          "9999999999999999999e27",
                                          "0.30000000000000004",
                                          "1.0000000000000002",
                                          "3.0517578125e-05",
                                          "7.038531e-26",
                                          "-0.0",
                                          "1e-400",
                                          "1e400"};
  check_numbers(100000, WK_DT_FLOAT32, (const char *const *)f32_edges,
                sizeof f32_edges / sizeof f32_edges[0]);
  check_numbers(100000, WK_DT_FLOAT64, (const char *const *)f64_edges,
                sizeof f64_edges / sizeof f64_edges[0]);
}

/* ---- printer ------------------------------------------------------------------------- */

static char *print_tensor(const wk_tensor_t *t) {
  wk_buf_t b = WK_BUF_INIT;
  assert_int_equal(wk_json_print_tensor(&b, t), 0);
  return wk_buf_steal(&b, NULL);
}

static void test_print_shortest(void **state) {
  (void)state;
  static const struct {
    float f;
    const char *want;
  } cases[] = {
      {0.1f, "0.1"},
      {1.0f, "1.0"},
      {-2.0f, "-2.0"},
      {1e20f, "1e+20"},
      {0.0f, "0.0"},
      {-0.0f, "-0.0"},
      {16777216.0f, "16777216.0"},
      {FLT_MAX, "3.4028235e+38"},
      {1.0f / 3, "0.33333334"},
      {123456.0f, "123456.0"},
      {1e-5f, "1e-05"},
      {0.15625f, "0.15625"},
      {3.14159274f, "3.1415927"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    wk_tensor_t t;
    float f = cases[i].f;
    memset(&t, 0, sizeof t);
    t.dtype = WK_DT_FLOAT32;
    t.data = &f;
    t.nbytes = 4;
    char *s = print_tensor(&t);
    if (strcmp(s, cases[i].want) != 0)
      fail_msg("%.9g printed %s, want %s", (double)f, s, cases[i].want);
    free(s);
  }
  float specials[] = {NAN, INFINITY, -INFINITY, 1.5f};
  wk_tensor_t t = {.dtype = WK_DT_FLOAT32,
                   .ndim = 2,
                   .shape = {2, 2},
                   .data = specials,
                   .nbytes = sizeof specials};
  char *s = print_tensor(&t);
  assert_string_equal(s, "[[NaN,Infinity],[-Infinity,1.5]]");
  free(s);
  double dspec[] = {NAN, -INFINITY, 0.1, 1e300, -0.0, 5e-324, 1.0 / 3};
  t = (wk_tensor_t){
      .dtype = WK_DT_FLOAT64, .ndim = 1, .shape = {7}, .data = dspec, .nbytes = sizeof dspec};
  s = print_tensor(&t);
  assert_string_equal(s, "[NaN,-Infinity,0.1,1e+300,-0.0,4.94065645841247e-324,"
                         "0.3333333333333333]");
  free(s);
  int64_t ints[] = {INT64_MIN, -1, 0, INT64_MAX};
  t = (wk_tensor_t){
      .dtype = WK_DT_INT64, .ndim = 1, .shape = {4}, .data = ints, .nbytes = sizeof ints};
  s = print_tensor(&t);
  assert_string_equal(s, "[-9223372036854775808,-1,0,9223372036854775807]");
  free(s);
  unsigned char bools[] = {1, 0, 1};
  t = (wk_tensor_t){.dtype = WK_DT_BOOL, .ndim = 2, .shape = {3, 1}, .data = bools, .nbytes = 3};
  s = print_tensor(&t);
  assert_string_equal(s, "[[true],[false],[true]]");
  free(s);
  int8_t i8[] = {-128, 127};
  t = (wk_tensor_t){.dtype = WK_DT_INT8, .ndim = 3, .shape = {1, 2, 0}, .data = i8, .nbytes = 2};
  s = print_tensor(&t);
  assert_string_equal(s, "[[[],[]]]");
  free(s);
  t = (wk_tensor_t){.dtype = WK_DT_INT8, .ndim = 1, .shape = {3}, .data = i8, .nbytes = 2};
  wk_buf_t b = WK_BUF_INIT;
  assert_int_equal(wk_json_print_tensor(&b, &t), WK_EINVAL); /* data too short */
  t = (wk_tensor_t){.dtype = WK_DT_INT8, .ndim = 2, .shape = {INT64_C(1) << 40, 0}, .data = i8};
  assert_int_equal(wk_json_print_tensor(&b, &t), WK_ETOOBIG); /* 2^40 times "[]" */
  wk_buf_destroy(&b);
}

/* Prints n elements of dtype dt from data, parses the text back and compares the bits. */
static void round_trip(wk_dtype_t dt, void *data, int64_t n) {
  wk_tensor_t t = {
      .dtype = dt, .ndim = 1, .shape = {n}, .data = data, .nbytes = (size_t)n * wk_dtype_size(dt)};
  char *s = print_tensor(&t);
  wk_tensor_t back;
  wk_err_t err;
  if (wk_json_parse_tensor(s, strlen(s), dt, &back, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(back.nbytes, t.nbytes);
  if (memcmp(back.data, data, t.nbytes) != 0) {
    size_t es = wk_dtype_size(dt);
    for (int64_t i = 0; i < n; i++)
      if (memcmp((char *)back.data + i * es, (char *)data + i * es, es) != 0)
        fail_msg("%s: element %lld differs after a round trip", wk_dtype_name(dt), (long long)i);
  }
  wk_tensor_destroy(&back);
  free(s);
}

static void test_print_round_trip(void **state) {
  (void)state;
  enum { N = 100000 };
  uint32_t *f32 = malloc(N * sizeof *f32);
  for (int i = 0; i < N; i++) {
    uint32_t b;
    do
      b = (uint32_t)rnd();
    while ((b & 0x7f800000) == 0x7f800000 && (b & 0x7fffff)); /* no NaN payloads */
    f32[i] = b;
  }
  f32[0] = 0x00000001; /* smallest subnormal */
  f32[1] = 0x7f7fffff;
  f32[2] = 0x80000000;
  round_trip(WK_DT_FLOAT32, f32, N);
  free(f32);

  uint64_t *f64 = malloc(N * sizeof *f64);
  for (int i = 0; i < N; i++) {
    uint64_t b;
    do
      b = rnd();
    while ((b & 0x7ff0000000000000ULL) == 0x7ff0000000000000ULL);
    f64[i] = b;
  }
  round_trip(WK_DT_FLOAT64, f64, N);
  free(f64);

  /* every float16 and bfloat16 except NaNs */
  uint16_t *h = malloc(65536 * sizeof *h);
  int m = 0;
  for (uint32_t b = 0; b < 65536; b++)
    if ((b & 0x7c00) != 0x7c00 || (b & 0x3ff) == 0) h[m++] = (uint16_t)b;
  round_trip(WK_DT_FLOAT16, h, m);
  m = 0;
  for (uint32_t b = 0; b < 65536; b++)
    if ((b & 0x7f80) != 0x7f80 || (b & 0x7f) == 0) h[m++] = (uint16_t)b;
  round_trip(WK_DT_BFLOAT16, h, m);
  free(h);

  int32_t i32[] = {INT32_MIN, -7, 0, INT32_MAX};
  round_trip(WK_DT_INT32, i32, 4);
  int16_t i16[] = {INT16_MIN, 5, INT16_MAX};
  round_trip(WK_DT_INT16, i16, 3);
  uint8_t u8[] = {0, 128, 255};
  round_trip(WK_DT_UINT8, u8, 3);
}

static void test_print_values(void **state) {
  (void)state;
  wk_value_t *d = wk_value_new(WK_V_DICT);
  wk_value_t *l = wk_value_new(WK_V_LIST);
  wk_value_t *v = wk_value_new(WK_V_INT);
  v->i = -42;
  wk_value_append(l, NULL, v);
  v = wk_value_new(WK_V_DOUBLE);
  v->d = 0.5;
  wk_value_append(l, NULL, v);
  v = wk_value_new(WK_V_BOOL);
  v->i = 1;
  wk_value_append(l, NULL, v);
  wk_value_append(l, NULL, wk_value_new(WK_V_NONE));
  v = wk_value_new(WK_V_STRING);
  v->s = strdup("a\"b\n");
  wk_value_append(l, NULL, v);
  wk_value_append(d, "list", l);
  v = wk_value_new(WK_V_TENSOR);
  int64_t shape[] = {2};
  assert_int_equal(wk_tensor_alloc(&v->tensor, WK_DT_FLOAT32, 1, shape), 0);
  ((float *)v->tensor.data)[0] = 0.1f;
  ((float *)v->tensor.data)[1] = NAN;
  wk_value_append(d, "we\"ird", v);
  v = wk_value_new(WK_V_DOUBLE);
  v->d = INFINITY;
  wk_value_append(d, "inf", v);
  wk_value_append(d, "empty", wk_value_new(WK_V_LIST));
  wk_buf_t b = WK_BUF_INIT;
  assert_int_equal(wk_json_print_value(&b, d), 0);
  assert_string_equal(b.data, "{\"list\":[-42,0.5,true,null,\"a\\\"b\\n\"],\"we\\\"ird\":[0.1,NaN],"
                              "\"inf\":Infinity,\"empty\":[]}");
  wk_buf_destroy(&b);
  wk_value_free(d);
  assert_int_equal(wk_json_print_value(&b, NULL), 0);
  assert_string_equal(b.data, "null");
  wk_buf_destroy(&b);
}

/* Information only (speed belongs in bench/): parse time for a 1000x784 float body. */
static void test_parse_timing_info(void **state) {
  (void)state;
  enum { ROWS = 1000, COLS = 784 };
  for (int style = 0; style < 2; style++) {
    wk_buf_t b = WK_BUF_INIT;
    wk_buf_puts(&b, "{\"instances\": [");
    for (int r = 0; r < ROWS; r++) {
      wk_buf_puts(&b, r ? ",[" : "[");
      for (int c = 0; c < COLS; c++) {
        float f = (float)(rnd() >> 40) / (float)(1 << 24);
        if (style == 0)
          wk_buf_printf(&b, c ? ",%.4g" : "%.4g", (double)f); /* 0.1234 */
        else
          wk_buf_printf(&b, c ? ",%.17g" : "%.17g", (double)f); /* Python's repr */
      }
      wk_buf_putc(&b, ']');
    }
    wk_buf_puts(&b, "]}");
    struct timespec t0, t1;
    wk_json_inputs_t in;
    wk_err_t err;
    double best = 1e9;
    for (int k = 0; k < 3; k++) {
      clock_gettime(CLOCK_MONOTONIC, &t0);
      assert_int_equal(wk_json_parse_inputs(b.data, b.len, &in, &err), 0);
      clock_gettime(CLOCK_MONOTONIC, &t1);
      double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
      if (ms < best) best = ms;
      assert_shape(&in.tensors[0], 2, (int64_t[]){ROWS, COLS});
      wk_json_inputs_destroy(&in);
    }
    printf("info: parsed %dx%d floats (%s, %.1f MB) in %.2f ms\n", ROWS, COLS,
           style ? "17 digits" : "4 digits", (double)b.len / 1e6, best);
    wk_buf_destroy(&b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_nested_shapes),
      cmocka_unit_test(test_envelopes),
      cmocka_unit_test(test_dtypes),
      cmocka_unit_test(test_ragged_messages),
      cmocka_unit_test(test_malformed_positions),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_numbers_vs_libc),
      cmocka_unit_test(test_print_shortest),
      cmocka_unit_test(test_print_round_trip),
      cmocka_unit_test(test_print_values),
      cmocka_unit_test(test_parse_timing_info),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
