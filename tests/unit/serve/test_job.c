/* Unit tests for serve/job.c: the one error map, answering once, the envelopes a handler's
 * body is wrapped in, streams refused where the sink cannot carry them, and explanation
 * parameters read from the request. A capturing sink stands for the transport. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "serve/model_internal.h"
#include "tensor/oip.h"

typedef struct {
  wk_sink_t sink; /* first */
  int calls, status;
  char type[64], content_type[64], body[512], header[128];
} cap_t;

static void cap_reply(wk_sink_t *s, int status, const char *ct, char *body, size_t len) {
  cap_t *c = (cap_t *)s;
  c->calls++;
  c->status = status;
  snprintf(c->content_type, sizeof c->content_type, "%s", ct ? ct : "");
  snprintf(c->body, sizeof c->body, "%.*s", (int)len, body ? body : "");
  free(body);
}

static void cap_error(wk_sink_t *s, int status, const char *type, const char *msg) {
  cap_t *c = (cap_t *)s;
  c->calls++;
  c->status = status;
  snprintf(c->type, sizeof c->type, "%s", type);
  snprintf(c->body, sizeof c->body, "%s", msg);
}

static void cap_header(wk_sink_t *s, const char *name, const char *value) {
  cap_t *c = (cap_t *)s;
  snprintf(c->header, sizeof c->header, "%s: %s", name, value);
}

static const wk_sink_ops_t ops = {.reply = cap_reply, .error = cap_error, .header = cap_header};

static wk_model_t *model_new(void) {
  wk_model_t *m = calloc(1, sizeof *m);
  m->name = strdup("m");
  m->version = strdup("2.0");
  return m;
}

static void model_free(wk_model_t *m) {
  free(m->name);
  free(m->version);
  free(m);
}

static wk__job_t *job(wk_model_t *m, cap_t *c, int envelope) {
  memset(c, 0, sizeof *c);
  c->sink.ops = &ops;
  wk__job_t *j = NULL;
  wk_err_t err = {{0}};
  assert_int_equal(wk__job_new(m, &c->sink, NULL, 0, envelope, &j, &err), 0);
  return j;
}

static void test_one_error_map(void **state) {
  (void)state;
  const struct {
    int code, status;
    const char *type;
  } want[] = {
      {WK_EINVAL, 400, "BadRequestException"},   {WK_EFORMAT, 400, "BadRequestException"},
      {WK_EMODEL, 400, "BadRequestException"},   {WK_ETOOBIG, 413, "PayloadTooLargeException"},
      {WK_ENOTFOUND, 404, "NotFoundException"},  {WK_EUNSUPPORTED, 501, "NotImplementedException"},
      {WK_EBUSY, 503, "ServiceUnavailableException"}, {WK_ETIMEDOUT, 504, "RequestTimeout"},
      {WK_ENOMEM, 507, "OutOfMemoryException"},  {WK_EINTERNAL, 500, "InternalServerException"},
      {WK_EIO, 500, "InternalServerException"},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const char *type = NULL;
    assert_int_equal(wk__error_status(want[i].code, &type), want[i].status);
    assert_string_equal(type, want[i].type);
  }
  /* a job's failure goes out with the mapped status, and an empty message is filled in */
  wk_model_t *m = model_new();
  cap_t c;
  wk__job_t *j = job(m, &c, WK__ENV_TS);
  assert_int_equal(wk__job_fail(m, j, WK_ENOMEM, "out of memory in forward(): x"), 1);
  assert_int_equal(c.status, 507);
  assert_string_equal(c.type, "OutOfMemoryException");
  assert_int_equal(atomic_load(&m->req_server_err), 1);
  wk__job_free(j);
  j = job(m, &c, WK__ENV_TS);
  wk__job_fail(m, j, WK_EINVAL, "");
  assert_int_equal(c.status, 400);
  assert_true(strlen(c.body) > 0);
  assert_int_equal(atomic_load(&m->req_client_err), 1);
  wk__job_free(j);
  model_free(m);
}

static void test_a_job_is_answered_once(void **state) {
  (void)state;
  wk_model_t *m = model_new();
  cap_t c;
  wk__job_t *j = job(m, &c, WK__ENV_TS);
  assert_int_equal(wk__job_reply(m, j, 200, strdup("{\"a\": 1}"), 8), 1);
  assert_int_equal(wk__job_reply_error(m, j, 504, "RequestTimeout", "late"), 0);
  assert_int_equal(wk__job_reply(m, j, 200, strdup("again"), 5), 0); /* freed, not sent */
  assert_int_equal(c.calls, 1);
  assert_int_equal(c.status, 200);
  assert_string_equal(c.body, "{\"a\": 1}");
  assert_int_equal(atomic_load(&m->req_ok), 1);
  assert_int_equal(atomic_load(&m->req_total), 1);
  wk__job_free(j);
  model_free(m);
}

static void test_envelopes(void **state) {
  (void)state;
  wk_model_t *m = model_new();
  cap_t c;
  /* TorchServe: the body and its type as they are */
  wk__job_t *j = job(m, &c, WK__ENV_TS);
  wk__job_reply_typed(m, j, 200, "text/plain", strdup("hi"), 2);
  assert_string_equal(c.content_type, "text/plain");
  assert_string_equal(c.body, "hi");
  wk__job_free(j);
  /* v1: inside "predictions" (or "explanations") */
  j = job(m, &c, WK__ENV_V1);
  wk__job_reply(m, j, 200, strdup("[[1, 2]]"), 8);
  assert_string_equal(c.body, "{\"predictions\": [[1, 2]]}\n");
  wk__job_free(j);
  j = job(m, &c, WK__ENV_V1);
  j->explain = 1;
  wk__job_reply(m, j, 200, strdup("[0.5]"), 5);
  assert_string_equal(c.body, "{\"explanations\": [0.5]}\n");
  wk__job_free(j);
  /* a handler's error body on a KServe route becomes the error message */
  j = job(m, &c, WK__ENV_V1);
  wk__job_reply_typed(m, j, 418, "text/plain", strdup("I am a teapot"), 13);
  assert_int_equal(c.status, 418);
  assert_string_equal(c.body, "I am a teapot");
  assert_string_equal(c.type, "PredictionException");
  wk__job_free(j);
  /* v2: a Python body without "outputs" becomes one BYTES output named after the model */
  j = job(m, &c, WK__ENV_V2);
  j->v2 = calloc(1, sizeof *j->v2);
  wk__job_reply_typed(m, j, 200, "application/json", strdup("\"cat\""), 5);
  assert_int_equal(c.status, 200);
  assert_non_null(strstr(c.body, "\"model_name\":\"m\""));
  assert_non_null(strstr(c.body, "\"model_version\":\"2.0\""));
  assert_non_null(strstr(c.body, "\"datatype\":\"BYTES\""));
  wk__job_free(j);
  model_free(m);
}

/* A sink without stream functions (a KServe instance's) gets 501, not a stream. */
static void test_streams_need_a_sink_that_carries_them(void **state) {
  (void)state;
  wk_model_t *m = model_new();
  cap_t c;
  wk__job_t *j = job(m, &c, WK__ENV_TS);
  assert_int_equal(wk__job_stream_begin(m, j, 200, "text/plain"), 0);
  assert_int_equal(c.status, 501);
  assert_non_null(strstr(c.body, "streams its reply"));
  wk__job_free(j);
  model_free(m);
}

static void test_explanation_parameters(void **state) {
  (void)state;
  wk_model_t *m = model_new();
  cap_t c;
  memset(&c, 0, sizeof c);
  c.sink.ops = &ops;
  wk_kv_t args[2] = {{"target", "3"}, {"n_steps", "20"}};
  wk_request_t r = {.body = "", .args = args, .n_args = 2};
  wk__job_t *j = NULL;
  wk_err_t err = {{0}};
  assert_int_equal(wk__job_new(m, &c.sink, &r, 1, WK__ENV_TS, &j, &err), 0);
  assert_int_equal(j->target, 3);
  assert_int_equal(j->n_steps, 20);
  /* a multipart field or JSON field overrides; predictions ignore them */
  assert_int_equal(wk__job_explain_param(j, "target", "7", 1, &err), 0);
  assert_int_equal(j->target, 7);
  assert_int_equal(wk__job_explain_param(j, "n_steps", "0", 1, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "n_steps"));
  wk__job_free(j);
  args[1].value = "many";
  assert_int_equal(wk__job_new(m, &c.sink, &r, 1, WK__ENV_TS, &j, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "n_steps: expected an integer from 1 to"));
  assert_int_equal(wk__job_new(m, &c.sink, &r, 0, WK__ENV_TS, &j, &err), 0); /* not read */
  assert_int_equal(wk__job_explain_param(j, "target", "x", 1, &err), 0);
  wk__job_free(j);
  model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_error_map),
      cmocka_unit_test(test_a_job_is_answered_once),
      cmocka_unit_test(test_envelopes),
      cmocka_unit_test(test_streams_need_a_sink_that_carries_them),
      cmocka_unit_test(test_explanation_parameters),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
