/* Unit tests for core/form: application/x-www-form-urlencoded bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/form.h"

static void test_content_type(void **state) {
  (void)state;
  assert_true(wk_form_is("application/x-www-form-urlencoded"));
  assert_true(wk_form_is("Application/X-WWW-Form-Urlencoded; charset=utf-8"));
  assert_false(wk_form_is("application/x-www-form-urlencodedx"));
  assert_false(wk_form_is("multipart/form-data; boundary=x"));
  assert_false(wk_form_is(NULL));
}

static void test_pairs_decoded(void **state) {
  (void)state;
  const char body[] = "data=%7B%22a%22%3A+1%7D&x+y=1%2C2&flag&&empty=";
  wk_form_field_t f[8];
  wk_err_t err = {{0}};
  int n = wk_form_parse(body, sizeof body - 1, f, 8, &err);
  assert_int_equal(n, 4);
  assert_string_equal(f[0].name, "data");
  assert_string_equal(f[0].value, "{\"a\": 1}");
  assert_int_equal(f[0].len, 8);
  assert_string_equal(f[1].name, "x y");
  assert_string_equal(f[1].value, "1,2");
  assert_string_equal(f[2].name, "flag"); /* no '=': a name with an empty value */
  assert_int_equal(f[2].len, 0);
  assert_string_equal(f[3].name, "empty");
  assert_int_equal(f[3].len, 0);
  wk_form_fields_free(f, n);
}

static void test_nul_and_binary_values(void **state) {
  (void)state;
  const char body[] = "b=%00%ff%0A";
  wk_form_field_t f[1];
  assert_int_equal(wk_form_parse(body, sizeof body - 1, f, 1, NULL), 1);
  assert_int_equal(f[0].len, 3);
  assert_memory_equal(f[0].value, "\x00\xff\n", 3);
  wk_form_fields_free(f, 1);
}

static void test_bad_escapes_refused(void **state) {
  (void)state;
  static const char *bad[] = {"a=%", "a=%4", "a=%zz", "ok=1&b%2=x", "a=1%"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    wk_form_field_t f[4];
    wk_err_t err = {{0}};
    assert_int_equal(wk_form_parse(bad[i], strlen(bad[i]), f, 4, &err), WK_EINVAL);
    assert_non_null(strstr(err.msg, "bad %-escape"));
  }
}

static void test_too_many_fields(void **state) {
  (void)state;
  wk_form_field_t f[2];
  wk_err_t err = {{0}};
  assert_int_equal(wk_form_parse("a=1&b=2&c=3", 11, f, 2, &err), WK_ETOOBIG);
  assert_non_null(strstr(err.msg, "more than 2 fields"));
  assert_int_equal(wk_form_parse("", 0, f, 2, &err), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_content_type),
      cmocka_unit_test(test_pairs_decoded),
      cmocka_unit_test(test_nul_and_binary_values),
      cmocka_unit_test(test_bad_escapes_refused),
      cmocka_unit_test(test_too_many_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
