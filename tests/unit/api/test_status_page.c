/* Unit tests for api/status_page: which Accept headers ask for the page (a browser's do,
 * curl's and a JSON client's do not, q=0 refuses), and that the page is replied whole, as
 * HTML. Its headers and the page in a browser: tests/e2e/test_status_page.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/handlers.h"

extern const unsigned char wk_status_page_html[];
extern const size_t wk_status_page_html_len;

typedef struct {
  int calls, status;
  char type[64];
  char *body;
  size_t len;
} seen_t;

static void done(void *ud, int status, const char *content_type, char *body, size_t len) {
  seen_t *s = ud;
  s->calls++;
  s->status = status;
  strncpy(s->type, content_type ? content_type : "", sizeof s->type - 1);
  s->body = body;
  s->len = len;
}

/* wk_api_wants_html for a request whose Accept header is accept (NULL: none). */
static int wants(const char *accept) {
  seen_t s = {0};
  wk_http_req_t *r = wk_http_local_new("test", "GET", "/", NULL, 0, done, NULL, &s);
  assert_non_null(r);
  if (accept) assert_int_equal(wk_http_local_header(r, "Accept", accept), 0);
  int yes = wk_api_wants_html(r);
  wk_http_local_discard(r);
  return yes;
}

static void test_which_accept_headers_ask_for_html(void **state) {
  (void)state;
  /* browsers */
  assert_true(wants("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"));
  assert_true(wants("text/html"));
  assert_true(wants("application/json, TEXT/HTML ;q=0.5"));
  assert_true(wants("text/html; charset=utf-8; q=1"));
  /* not browsers: no header, curl's, JSON clients', look-alikes, refusals */
  assert_false(wants(NULL));
  assert_false(wants(""));
  assert_false(wants("*/*"));
  assert_false(wants("text/*"));
  assert_false(wants("application/json"));
  assert_false(wants("text/htmlx, text/plain"));
  assert_false(wants("xtext/html"));
  assert_false(wants("text/html;q=0"));
  assert_false(wants("text/html; q=0.000"));
  assert_false(wants(",,,;;;"));
  /* an item longer than any real media range is skipped, the next one still read */
  char big[600];
  memset(big, 'a', sizeof big);
  memcpy(big + sizeof big - 12, ",text/html", 11);
  assert_true(wants(big));
}

static void test_the_page_is_replied_whole(void **state) {
  (void)state;
  seen_t s = {0};
  wk_http_req_t *r = wk_http_local_new("test", "GET", "/status", NULL, 0, done, NULL, &s);
  assert_non_null(r);
  wk_route_args_t a = {.port = WK_PORT_MANAGEMENT};
  wk_api_status_page(NULL, r, &a);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.status, 200);
  assert_string_equal(s.type, "text/html; charset=utf-8");
  assert_int_equal(s.len, wk_status_page_html_len);
  assert_memory_equal(s.body, wk_status_page_html, s.len);
  assert_true(s.len > 1000 && memcmp(s.body, "<!doctype html>", 15) == 0);
  free(s.body);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_which_accept_headers_ask_for_html),
      cmocka_unit_test(test_the_page_is_replied_whole),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
