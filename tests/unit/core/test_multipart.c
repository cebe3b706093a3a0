/* Unit tests for http/multipart and core/base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/base64.h"
#include "core/multipart.h"

#define CT "multipart/form-data; boundary=XyZ"

static void test_two_parts(void **state) {
  (void)state;
  const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=\"target\"\r\n\r\n7\r\n"
                      "--XyZ\r\nContent-Disposition: form-data; name=\"data\"; filename=\"a.png\"\r\n"
                      "Content-Type: image/png\r\n\r\n\x89PNG\r\n\x00\x01\r\n--XyZ--\r\n";
  wk_multipart_part_t parts[4];
  wk_err_t err = {{0}};
  int n = wk_multipart_parse(CT, body, sizeof body - 1, parts, 4, &err);
  assert_int_equal(n, 2);
  assert_string_equal(parts[0].name, "target");
  assert_string_equal(parts[0].filename, "");
  assert_int_equal(parts[0].len, 1);
  assert_memory_equal(parts[0].data, "7", 1);
  assert_string_equal(parts[1].name, "data");
  assert_string_equal(parts[1].filename, "a.png");
  assert_string_equal(parts[1].content_type, "image/png");
  assert_int_equal(parts[1].len, 8); /* binary data with CR LF and NUL inside */
  assert_memory_equal(parts[1].data, "\x89PNG\r\n\x00\x01", 8);
}

static void test_quoted_boundary_and_bare_newlines(void **state) {
  (void)state;
  const char body[] = "--b\nContent-Disposition: form-data; name=x\n\nhello\n--b--";
  wk_multipart_part_t parts[2];
  int n = wk_multipart_parse("multipart/form-data; boundary=\"b\"", body, sizeof body - 1, parts, 2, NULL);
  assert_int_equal(n, 1);
  assert_string_equal(parts[0].name, "x");
  assert_int_equal(parts[0].len, 5);
}

static void test_malformed(void **state) {
  (void)state;
  wk_multipart_part_t parts[2];
  wk_err_t err = {{0}};
  assert_true(wk_multipart_parse("multipart/form-data", "x", 1, parts, 2, &err) < 0);
  assert_non_null(strstr(err.msg, "boundary"));
  const char open[] = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end";
  assert_true(wk_multipart_parse(CT, open, sizeof open - 1, parts, 2, &err) < 0);
  assert_non_null(strstr(err.msg, "closing boundary"));
  const char many[] = "--XyZ\r\n\r\na\r\n--XyZ\r\n\r\nb\r\n--XyZ\r\n\r\nc\r\n--XyZ--";
  assert_true(wk_multipart_parse(CT, many, sizeof many - 1, parts, 2, &err) < 0);
  assert_true(wk_multipart_is("Multipart/Form-Data; boundary=a"));
  assert_false(wk_multipart_is("application/json"));
  assert_false(wk_multipart_is(NULL));
}

/* Encoding: RFC 4648's test vectors, and every length round-trips through the decoder. */
static void test_base64_encode(void **state) {
  (void)state;
  const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; i++) {
    wk_buf_t b = WK_BUF_INIT;
    assert_int_equal(wk_base64_encode(&b, in[i], strlen(in[i])), 0);
    assert_int_equal(b.len, strlen(want[i]));
    if (b.len) assert_memory_equal(b.data, want[i], b.len);
    wk_buf_destroy(&b);
  }
  unsigned char bytes[256];
  for (int i = 0; i < 256; i++) bytes[i] = (unsigned char)(255 - i);
  for (size_t n = 0; n <= sizeof bytes; n += 37) {
    wk_buf_t b = WK_BUF_INIT;
    assert_int_equal(wk_base64_encode(&b, bytes, n), 0);
    unsigned char *back = NULL;
    size_t back_len = 0;
    assert_int_equal(wk_base64_decode(b.data ? b.data : "", b.len, &back, &back_len, NULL), 0);
    assert_int_equal(back_len, n);
    if (n) assert_memory_equal(back, bytes, n);
    free(back);
    wk_buf_destroy(&b);
  }
}

static void test_base64(void **state) {
  (void)state;
  unsigned char *out;
  size_t n;
  wk_err_t err = {{0}};
  assert_int_equal(wk_base64_decode("aGVsbG8gd29ybGQ=", 16, &out, &n, &err), 0);
  assert_int_equal(n, 11);
  assert_memory_equal(out, "hello world", 11);
  free(out);
  assert_int_equal(wk_base64_decode("aGVs\nbG8", 8, &out, &n, &err), 0); /* no padding, newline */
  assert_int_equal(n, 5);
  free(out);
  assert_int_equal(wk_base64_decode("-_8", 3, &out, &n, &err), 0); /* URL-safe alphabet */
  assert_int_equal(n, 2);
  assert_int_equal(out[0], 0xfb);
  free(out);
  assert_int_equal(wk_base64_decode("aGV*", 4, &out, &n, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "offset 3"));
  assert_int_equal(wk_base64_decode("a", 1, &out, &n, &err), WK_EINVAL);
  assert_int_equal(wk_base64_decode("aGk=aGk=", 8, &out, &n, &err), WK_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_parts),
      cmocka_unit_test(test_quoted_boundary_and_bare_newlines),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_base64),
      cmocka_unit_test(test_base64_encode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
