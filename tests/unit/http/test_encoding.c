/* Unit tests for http/encoding: gzip and deflate bodies in, compressed replies out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "http/encoding.h"

static void test_codings_named(void **state) {
  (void)state;
  assert_int_equal(wk_encoding_of(NULL), WK_ENC_IDENTITY);
  assert_int_equal(wk_encoding_of(" identity "), WK_ENC_IDENTITY);
  assert_int_equal(wk_encoding_of("GZIP"), WK_ENC_GZIP);
  assert_int_equal(wk_encoding_of("x-gzip"), WK_ENC_GZIP);
  assert_int_equal(wk_encoding_of("deflate"), WK_ENC_DEFLATE);
  assert_int_equal(wk_encoding_of("br"), WK_ENC_UNKNOWN);
  assert_int_equal(wk_encoding_of("gzip, deflate"), WK_ENC_UNKNOWN);
  assert_int_equal(wk_encoding_accepted(NULL), WK_ENC_IDENTITY);
  assert_int_equal(wk_encoding_accepted("gzip"), WK_ENC_GZIP);
  assert_int_equal(wk_encoding_accepted("deflate, gzip;q=0"), WK_ENC_DEFLATE);
  assert_int_equal(wk_encoding_accepted("br;q=1.0, deflate;q=0.5"), WK_ENC_DEFLATE);
  assert_int_equal(wk_encoding_accepted("identity"), WK_ENC_IDENTITY);
  assert_int_equal(wk_encoding_accepted("*"), WK_ENC_GZIP);
  assert_int_equal(wk_encoding_accepted("gzip;q=0, deflate;q=0"), WK_ENC_IDENTITY);
}

static void test_round_trips(void **state) {
  (void)state;
  char text[5000];
  for (size_t i = 0; i < sizeof text; i++) text[i] = (char)('a' + i % 7);
  for (wk_encoding_t enc = WK_ENC_GZIP; enc <= WK_ENC_DEFLATE; enc++) {
    char *z, *back;
    size_t zn, n;
    assert_int_equal(wk_encoding_deflate(enc, text, sizeof text, &z, &zn), 0);
    assert_true(zn < sizeof text / 4);
    if (enc == WK_ENC_GZIP) assert_memory_equal(z, "\x1f\x8b", 2);
    wk_err_t err = {{0}};
    assert_int_equal(wk_encoding_inflate(enc, z, zn, sizeof text, &back, &n, &err), 0);
    assert_int_equal(n, sizeof text);
    assert_memory_equal(back, text, n);
    free(back);
    /* one byte over the limit is too big: a small body cannot inflate without bound */
    assert_int_equal(wk_encoding_inflate(enc, z, zn, sizeof text - 1, &back, &n, &err), WK_ETOOBIG);
    assert_non_null(strstr(err.msg, "max_request_size"));
    /* cut short, or corrupted */
    assert_int_equal(wk_encoding_inflate(enc, z, zn / 2, sizeof text, &back, &n, &err), WK_EFORMAT);
    free(z);
  }
}

static void test_raw_deflate_and_garbage(void **state) {
  (void)state;
  /* raw deflate (no zlib header), as some clients send "deflate" */
  unsigned char raw[64];
  z_stream s;
  memset(&s, 0, sizeof s);
  assert_int_equal(deflateInit2(&s, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  s.next_in = (Bytef *)"hello";
  s.avail_in = 5;
  s.next_out = raw;
  s.avail_out = sizeof raw;
  assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
  size_t rn = sizeof raw - s.avail_out;
  deflateEnd(&s);
  char *out;
  size_t n;
  wk_err_t err = {{0}};
  assert_int_equal(wk_encoding_inflate(WK_ENC_DEFLATE, (char *)raw, rn, 100, &out, &n, &err), 0);
  assert_int_equal(n, 5);
  assert_string_equal(out, "hello");
  free(out);
  assert_int_equal(wk_encoding_inflate(WK_ENC_GZIP, "not gzip at all", 15, 100, &out, &n, &err),
                   WK_EFORMAT);
  assert_non_null(strstr(err.msg, "not valid"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codings_named),
      cmocka_unit_test(test_round_trips),
      cmocka_unit_test(test_raw_deflate_and_garbage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
