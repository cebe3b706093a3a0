/* Unit tests for in-process requests (http/server.h's wk_http_local_*): the accessors read
 * what the owner added, every reply form reaches the done callback once with its body, and
 * streamed replies are refused. No server runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/server.h"

typedef struct {
  int calls, status, gone;
  char type[64];
  char body[512];
} seen_t;

static void done(void *ud, int status, const char *content_type, char *body, size_t len) {
  seen_t *s = ud;
  s->calls++;
  s->status = status;
  strncpy(s->type, content_type ? content_type : "", sizeof s->type - 1);
  memcpy(s->body, body ? body : "", len < sizeof s->body - 1 ? len : sizeof s->body - 1);
  free(body);
}

static int gone(void *ud) { return ((seen_t *)ud)->gone; }

static int count(void *ud, const char *name, const char *value) {
  (void)name, (void)value;
  return ++*(int *)ud == 2; /* stop at the second */
}

static void test_accessors_read_what_was_added(void **state) {
  (void)state;
  seen_t s = {0};
  wk_http_req_t *r = wk_http_local_new("gRPC management", "PUT", "/models/m", "abc", 3, done, gone, &s);
  assert_non_null(r);
  assert_int_equal(wk_http_local_arg(r, "min_worker", "2"), 0);
  assert_int_equal(wk_http_local_arg(r, "synchronous", "true"), 0);
  assert_int_equal(wk_http_local_arg(r, "flag", NULL), 0);
  assert_int_equal(wk_http_local_header(r, "Authorization", "Bearer k"), 0);
  assert_string_equal(wk_http_req_method(r), "PUT");
  assert_string_equal(wk_http_req_path(r), "/models/m");
  assert_string_equal(wk_http_req_server_name(r), "gRPC management");
  assert_string_equal(wk_http_req_arg(r, "min_worker"), "2");
  assert_string_equal(wk_http_req_arg(r, "flag"), "");
  assert_null(wk_http_req_arg(r, "MIN_WORKER")); /* arguments match case */
  assert_string_equal(wk_http_req_header(r, "authorization"), "Bearer k"); /* headers do not */
  assert_null(wk_http_req_header(r, "Content-Type"));
  size_t len;
  assert_memory_equal(wk_http_req_body(r, &len), "abc", 3);
  assert_int_equal(len, 3);
  int n = 0;
  assert_int_equal(wk_http_req_each_arg(r, count, &n), 2);
  assert_int_equal(wk_http_req_client_gone(r), 0);
  s.gone = 1;
  assert_int_equal(wk_http_req_client_gone(r), 1);
  wk_http_reply_header(r, "Retry-After", "1");
  wk_http_reply_json(r, 201, "{\"a\": 1}", 8);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.status, 201);
  assert_string_equal(s.type, "application/json");
  assert_string_equal(s.body, "{\"a\": 1}");
}

static void test_errors_and_streams(void **state) {
  (void)state;
  seen_t s = {0};
  wk_http_req_t *r = wk_http_local_new("x", "GET", "/models/nosuch", NULL, 0, done, NULL, &s);
  assert_non_null(r);
  assert_int_equal(wk_http_req_client_gone(r), 0); /* no gone callback: never gone */
  assert_int_equal(wk_http_stream_begin(r, 200, "text/plain"), WK_EINVAL);
  wk_http_reply_error(r, 404, "ModelNotFoundException", "Model not found: %s", "nosuch");
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.status, 404);
  assert_non_null(strstr(s.body, "\"type\": \"ModelNotFoundException\""));
  assert_non_null(strstr(s.body, "Model not found: nosuch"));

  /* a request never handed to a handler is freed without a reply */
  r = wk_http_local_new("x", "GET", "/", NULL, 0, done, NULL, &s);
  assert_non_null(r);
  wk_http_local_discard(r);
  assert_int_equal(s.calls, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accessors_read_what_was_added),
      cmocka_unit_test(test_errors_and_streams),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
