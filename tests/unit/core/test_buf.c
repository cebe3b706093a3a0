/* Unit tests for core/buf and core/error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/error.h"

static void test_append_and_printf(void **state) {
  (void)state;
  wk_buf_t b = WK_BUF_INIT;
  assert_int_equal(wk_buf_puts(&b, "abc"), 0);
  for (int i = 0; i < 100; i++) assert_int_equal(wk_buf_printf(&b, "%d,", i), 0);
  assert_int_equal(b.len, 3 + 10 * 2 + 90 * 3);
  assert_memory_equal(b.data, "abc0,1,2,", 9);
  assert_int_equal(b.data[b.len], '\0');
  wk_buf_destroy(&b);
  assert_null(b.data);
}

static void test_long_printf(void **state) {
  (void)state;
  wk_buf_t b = WK_BUF_INIT;
  char big[1000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(wk_buf_printf(&b, "<%s>", big), 0);
  assert_int_equal(b.len, 1001);
  assert_int_equal(b.data[1000], '>');
  wk_buf_destroy(&b);
}

static void test_json_str_escapes(void **state) {
  (void)state;
  wk_buf_t b = WK_BUF_INIT;
  assert_int_equal(wk_buf_json_str(&b, "a\"b\\c\n\x01"), 0);
  assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
  wk_buf_destroy(&b);
}

static void test_err_format_and_prefix(void **state) {
  (void)state;
  wk_err_t e;
  assert_int_equal(wk_err(&e, WK_EINVAL, "bad %d", 7), WK_EINVAL);
  assert_string_equal(e.msg, "bad 7");
  wk_err_prefix(&e, "entry %s", "x.bin");
  assert_string_equal(e.msg, "entry x.bin: bad 7");
  assert_int_equal(wk_err(NULL, WK_EIO, "ignored"), WK_EIO);
  assert_string_equal(wk_strerror(WK_ETOOBIG), "too large");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_append_and_printf),
      cmocka_unit_test(test_long_printf),
      cmocka_unit_test(test_json_str_escapes),
      cmocka_unit_test(test_err_format_and_prefix),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
