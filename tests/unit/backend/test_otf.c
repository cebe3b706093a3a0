/* Unit tests for backend/otf: the frames of docs/otf-protocol.md's worked examples byte
 * for byte, every truncation of a response, corrupted lengths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/otf.h"

/* Decodes a hex string, ignoring spaces, into out; returns the byte count. */
static size_t unhex(const char *s, uint8_t *out) {
  size_t n = 0;
  int hi = -1;
  for (; *s; s++) {
    int d;
    if (*s >= '0' && *s <= '9') d = *s - '0';
    else if (*s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
    else continue;
    if (hi < 0) hi = d;
    else {
      out[n++] = (uint8_t)(hi << 4 | d);
      hi = -1;
    }
  }
  return n;
}

static const char LOAD_HEX[] = "4c 00000001 6d 00000002 2f64 00000001 00000004 682e7079"
                               " ffffffff 00000000 01";
static const char INFER_HEX[] = "49 00000002 7231 00000001 61 00000001 62 ffffffff"
                                " 00000004 626f6479 0000000a 746578742f706c61696e"
                                " 00000002 6869 ffffffff ffffffff";
static const char RESP_HEX[] = "000000c8 00000002 6f6b 00000002 7231"
                               " 0000000a 746578742f706c61696e 000000c8 00000000"
                               " 00000001 00000001 78 00000001 79 00000002 6869 ffffffff";
static const char LOAD_RESP_HEX[] = "000000c8 0000000e 6c6f61646564206d6f64656c206d ffffffff";

static void test_encode_load(void **state) {
  (void)state;
  uint8_t want[64];
  size_t n = unhex(LOAD_HEX, want);
  wk_buf_t b = WK_BUF_INIT;
  wk_otf_load_t l = {"m", "/d", 1, "h.py", -1, NULL, 1};
  wk_err_t err;
  assert_int_equal(wk_otf_encode_load(&b, &l, &err), 0);
  assert_int_equal(b.len, n);
  assert_memory_equal(b.data, want, n);
  /* a bad batch size changes nothing */
  l.batch_size = 0;
  assert_int_equal(wk_otf_encode_load(&b, &l, &err), WK_EINVAL);
  assert_int_equal(b.len, n);
  assert_non_null(strstr(err.msg, "batch size"));
  wk_buf_destroy(&b);
}

static void test_encode_inference(void **state) {
  (void)state;
  uint8_t want[128];
  size_t n = unhex(INFER_HEX, want);
  wk_otf_kv_t h = {"a", "b"};
  wk_otf_param_t p = {"body", "text/plain", "hi", 2};
  wk_otf_request_t r = {"r1", &h, 1, &p, 1};
  wk_buf_t b = WK_BUF_INIT;
  wk_err_t err;
  assert_int_equal(wk_otf_encode_inference(&b, &r, 1, &err), 0);
  assert_int_equal(b.len, n);
  assert_memory_equal(b.data, want, n);
  assert_int_equal(wk_otf_encode_inference(&b, &r, 0, &err), WK_EINVAL);
  r.id = "";
  assert_int_equal(wk_otf_encode_inference(&b, &r, 1, &err), WK_EINVAL);
  assert_int_equal(b.len, n);
  wk_buf_destroy(&b);
}

static void test_parse_response(void **state) {
  (void)state;
  uint8_t buf[128];
  size_t n = unhex(RESP_HEX, buf);
  buf[n] = 0xee; /* a byte of the next frame is not consumed */
  wk_otf_response_t r;
  size_t used = 0;
  wk_err_t err;
  assert_int_equal(wk_otf_parse_response(buf, n + 1, &r, &used, &err), 0);
  assert_int_equal(used, n);
  assert_int_equal(r.code, 200);
  assert_string_equal(r.message, "ok");
  assert_int_equal(r.n_preds, 1);
  assert_string_equal(r.preds[0].id, "r1");
  assert_string_equal(r.preds[0].content_type, "text/plain");
  assert_int_equal(r.preds[0].status, 200);
  assert_string_equal(r.preds[0].reason, "");
  assert_int_equal(r.preds[0].n_headers, 1);
  assert_string_equal(r.preds[0].headers[0].name, "x");
  assert_string_equal(wk_otf_prediction_header(&r.preds[0], "X"), "y");
  assert_null(wk_otf_prediction_header(&r.preds[0], "z"));
  assert_int_equal(r.preds[0].body_len, 2);
  assert_memory_equal(r.preds[0].body, "hi", 2);
  assert_int_equal(wk_otf_response_streams(&r), 0);
  wk_otf_response_destroy(&r);
  assert_null(r.mem_);

  n = unhex(LOAD_RESP_HEX, buf);
  assert_int_equal(wk_otf_parse_response(buf, n, &r, &used, &err), 0);
  assert_int_equal(used, n);
  assert_int_equal(r.code, 200);
  assert_string_equal(r.message, "loaded model m");
  assert_int_equal(r.n_preds, 0);
  assert_null(r.preds);
  wk_otf_response_destroy(&r);
}

static void test_every_truncation_needs_more(void **state) {
  (void)state;
  uint8_t buf[128];
  size_t n = unhex(RESP_HEX, buf);
  for (size_t k = 0; k < n; k++) {
    uint8_t *copy = malloc(k > 0 ? k : 1); /* exact size: ASan catches overreads */
    memcpy(copy, buf, k);
    wk_otf_response_t r = {0};
    size_t used = 12345;
    wk_err_t err;
    assert_int_equal(wk_otf_parse_response(copy, k, &r, &used, &err), WK_OTF_NEED_MORE);
    assert_int_equal(used, 12345);
    assert_null(r.mem_);
    free(copy);
  }
}

static void test_corrupted_lengths(void **state) {
  (void)state;
  uint8_t buf[128];
  size_t n = unhex(RESP_HEX, buf);
  wk_otf_response_t r;
  size_t used;
  wk_err_t err;
  /* message length -2 */
  uint8_t bad[128];
  memcpy(bad, buf, n);
  memcpy(bad + 4, "\xff\xff\xff\xfe", 4);
  assert_int_equal(wk_otf_parse_response(bad, n, &r, &used, &err), WK_EFORMAT);
  assert_non_null(strstr(err.msg, "response message"));
  /* message length -1 is not an end marker there */
  memcpy(bad + 4, "\xff\xff\xff\xff", 4);
  assert_int_equal(wk_otf_parse_response(bad, n, &r, &used, &err), WK_EFORMAT);
  /* a 2 GiB - 1 body: over the frame limit, not "need more" forever */
  memcpy(bad, buf, n);
  size_t body_len_at = n - 4 - 2 - 4;
  memcpy(bad + body_len_at, "\x7f\xff\xff\xff", 4);
  assert_int_equal(wk_otf_parse_response(bad, n, &r, &used, &err), WK_ETOOBIG);
  /* a 2 MiB message: over the string limit */
  memcpy(bad, buf, n);
  memcpy(bad + 4, "\x00\x20\x00\x00", 4);
  assert_int_equal(wk_otf_parse_response(bad, n, &r, &used, &err), WK_ETOOBIG);
  /* header count -1 and 5000 */
  memcpy(bad, buf, n);
  size_t hc_at = 4 + 6 + 6 + 14 + 4 + 4;
  assert_memory_equal(bad + hc_at, "\x00\x00\x00\x01", 4);
  memcpy(bad + hc_at, "\xff\xff\xff\xff", 4);
  assert_int_equal(wk_otf_parse_response(bad, n, &r, &used, &err), WK_EFORMAT);
  memcpy(bad + hc_at, "\x00\x00\x13\x88", 4);
  assert_int_equal(wk_otf_parse_response(bad, n, &r, &used, &err), WK_ETOOBIG);
  /* every single-byte corruption: an answer, never a crash */
  for (size_t i = 0; i < n; i++) {
    for (int v = 0; v < 256; v += 17) {
      memcpy(bad, buf, n);
      bad[i] = (uint8_t)v;
      int rc = wk_otf_parse_response(bad, n, &r, &used, &err);
      assert_true(rc == 0 || rc == WK_OTF_NEED_MORE || rc == WK_EFORMAT || rc == WK_ETOOBIG);
      if (rc == 0) {
        assert_true(used <= n);
        wk_otf_response_destroy(&r);
      }
    }
  }
}

static void test_too_many_predictions(void **state) {
  (void)state;
  /* 4097 minimal predictions: id "a", ct "", status, reason "", 0 headers, body "" */
  static const uint8_t pred[] = {0, 0, 0, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 200,
                                 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  size_t n = 8 + sizeof pred * (WK_OTF_MAX_REQUESTS + 1) + 4;
  uint8_t *buf = calloc(1, n);
  buf[3] = 200;
  for (int i = 0; i <= WK_OTF_MAX_REQUESTS; i++) memcpy(buf + 8 + i * sizeof pred, pred, sizeof pred);
  memset(buf + n - 4, 0xff, 4);
  wk_otf_response_t r;
  size_t used;
  wk_err_t err;
  assert_int_equal(wk_otf_parse_response(buf, n, &r, &used, &err), WK_ETOOBIG);
  /* exactly the limit is fine */
  size_t m = 8 + sizeof pred * WK_OTF_MAX_REQUESTS;
  memset(buf + m, 0xff, 4);
  assert_int_equal(wk_otf_parse_response(buf, m + 4, &r, &used, &err), 0);
  assert_int_equal(r.n_preds, WK_OTF_MAX_REQUESTS);
  assert_int_equal(r.preds[WK_OTF_MAX_REQUESTS - 1].status, 200);
  wk_otf_response_destroy(&r);
  free(buf);
}

static void test_streaming_header(void **state) {
  (void)state;
  wk_otf_kv_t h = {"ts_stream_next", "true"};
  wk_otf_prediction_t p = {0};
  p.headers = &h;
  p.n_headers = 1;
  wk_otf_response_t r = {0};
  r.preds = &p;
  r.n_preds = 1;
  assert_int_equal(wk_otf_response_streams(&r), 1);
  h.value = "false";
  assert_int_equal(wk_otf_response_streams(&r), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_encode_load),
      cmocka_unit_test(test_encode_inference),
      cmocka_unit_test(test_parse_response),
      cmocka_unit_test(test_every_truncation_needs_more),
      cmocka_unit_test(test_corrupted_lengths),
      cmocka_unit_test(test_too_many_predictions),
      cmocka_unit_test(test_streaming_header),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
