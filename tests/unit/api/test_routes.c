/* Unit tests for api/routes: the route table is what the routers dispatch with, so every
 * route must be found by its own path and method on each of its ports; a path with the
 * wrong method lists exactly the methods it has; captures come out without suffixes;
 * settings decide which routes exist. No server runs: matching only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/routes.h"

/* template -> a concrete path: {model_name} -> "m", {model_version} -> "1.0" */
static void concrete(const char *t, char *out, size_t cap) {
  size_t n = 0;
  for (const char *p = t; *p && n + 8 < cap;) {
    if (strncmp(p, "{model_name}", 12) == 0) {
      n += (size_t)snprintf(out + n, cap - n, "m");
      p += 12;
    } else if (strncmp(p, "{model_version}", 15) == 0) {
      n += (size_t)snprintf(out + n, cap - n, "1.0");
      p += 15;
    } else {
      out[n++] = *p++;
    }
  }
  out[n] = '\0';
}

static const wk_route_t *find(const wk_api_t *api, wk_port_t port, const char *method,
                              const char *path, wk_route_args_t *a, char *allow) {
  static char buf[256];
  return wk_route_find(api, port, method, path, buf, sizeof buf, a, allow);
}

static void test_every_route_is_reached_by_its_own_path(void **state) {
  (void)state;
  wk_api_t api;
  memset(&api, 0, sizeof api);
  api.auth = (wk_auth_t *)&api; /* only compared with NULL here: /token exists */
  size_t n;
  const wk_route_t *all = wk_routes(&n);
  assert_true(n > 30);
  for (size_t i = 0; i < n; i++) {
    assert_non_null(all[i].fn);
    char path[256], allow[WK_ROUTE_MAX_ALLOW];
    concrete(all[i].path, path, sizeof path);
    for (unsigned port = 1; port <= 4; port <<= 1) {
      if (!(all[i].ports & port)) continue;
      wk_route_args_t a;
      const wk_route_t *r = find(&api, (wk_port_t)port, all[i].method, path, &a, allow);
      if (r != &all[i]) fail_msg("%s %s on port %u: found %s", all[i].method, path, port, r ? r->path : "nothing");
      assert_int_equal(a.port, port);
      assert_int_equal(a.arg, all[i].arg);
      if (strstr(all[i].path, "{model_name}")) assert_string_equal(a.model_name, "m");
      else assert_null(a.model_name);
      if (strstr(all[i].path, "{model_version}")) assert_string_equal(a.model_version, "1.0");
      else assert_null(a.model_version);
    }
  }
}

static void test_captures_and_suffixes(void **state) {
  (void)state;
  wk_api_t api;
  memset(&api, 0, sizeof api);
  wk_route_args_t a;
  char allow[WK_ROUTE_MAX_ALLOW];
  const wk_route_t *r = find(&api, WK_PORT_INFERENCE, "POST", "/v1/models/fashion:explain", &a, allow);
  assert_non_null(r);
  assert_string_equal(a.model_name, "fashion");
  assert_int_equal(a.arg, 1);
  r = find(&api, WK_PORT_INFERENCE, "POST", "/v1/models/fashion:predict", &a, allow);
  assert_non_null(r);
  assert_int_equal(a.arg, 0);
  /* a verb the table does not have is no route at all */
  assert_null(find(&api, WK_PORT_INFERENCE, "POST", "/v1/models/fashion:frobnicate", &a, allow));
  assert_string_equal(allow, "");
  r = find(&api, WK_PORT_INFERENCE, "PUT", "//predictions//mlp/2.0/", &a, allow);
  assert_non_null(r);
  assert_string_equal(a.model_name, "mlp");
  assert_string_equal(a.model_version, "2.0");
  r = find(&api, WK_PORT_MANAGEMENT, "GET", "/models/mlp/all", &a, allow);
  assert_non_null(r);
  assert_string_equal(a.model_version, "all");
}

static void test_wrong_methods_and_unknown_paths(void **state) {
  (void)state;
  wk_api_t api;
  memset(&api, 0, sizeof api);
  wk_route_args_t a;
  char allow[WK_ROUTE_MAX_ALLOW];
  /* TorchServe hands a prediction route any method, answers /ping to any, and still has
   * its older prediction routes */
  const wk_route_t *r = find(&api, WK_PORT_INFERENCE, "GET", "/predictions/mlp", &a, allow);
  assert_non_null(r);
  assert_string_equal(r->method, "*");
  assert_string_equal(a.model_name, "mlp");
  assert_non_null(find(&api, WK_PORT_INFERENCE, "DELETE", "/ping", &a, allow));
  r = find(&api, WK_PORT_INFERENCE, "POST", "/mlp/2.0/predict", &a, allow);
  assert_non_null(r);
  assert_string_equal(a.model_name, "mlp");
  assert_string_equal(a.model_version, "2.0");
  assert_non_null(find(&api, WK_PORT_INFERENCE, "POST", "/models/mlp/invoke", &a, allow));
  assert_string_equal(a.model_name, "mlp");
  assert_non_null(find(&api, WK_PORT_INFERENCE, "POST", "/invocations", &a, allow));
  r = find(&api, WK_PORT_INFERENCE, "OPTIONS", "/predictions/mlp", &a, allow);
  assert_non_null(r);
  assert_string_equal(r->method, "options");
  assert_null(find(&api, WK_PORT_MANAGEMENT, "POST", "/models/mlp", &a, allow));
  assert_string_equal(allow, "GET, PUT, DELETE");
  assert_null(find(&api, WK_PORT_INFERENCE, "DELETE", "/", &a, allow));
  assert_string_equal(allow, "OPTIONS");
  assert_true(a.public_path); /* a 405 on a public path needs no token */
  assert_null(find(&api, WK_PORT_MANAGEMENT, "DELETE", "/models", &a, allow));
  assert_false(a.public_path);
  assert_null(find(&api, WK_PORT_INFERENCE, "GET", "/v2/models/mlp/infer", &a, allow));
  assert_string_equal(allow, "POST");
  static const char *const nowhere[] = {"/nothing", "/predictions", "/predictions/mlp/1.0/x", "/v1",
                                        "/v2/models", "/models", "/metrics", "/api-description/x",
                                        "/a/b/c/d/e/f/g/h/i/j"};
  for (size_t i = 0; i < sizeof nowhere / sizeof nowhere[0]; i++) {
    assert_null(find(&api, WK_PORT_INFERENCE, "GET", nowhere[i], &a, allow));
    assert_string_equal(allow, "");
  }
  /* each port its own routes */
  assert_null(find(&api, WK_PORT_MANAGEMENT, "GET", "/ping", &a, allow));
  assert_null(find(&api, WK_PORT_METRICS, "GET", "/models", &a, allow));
  assert_non_null(find(&api, WK_PORT_METRICS, "GET", "/metrics", &a, allow));
}

static void test_settings_decide_which_routes_exist(void **state) {
  (void)state;
  wk_api_t api;
  memset(&api, 0, sizeof api);
  wk_route_args_t a;
  char allow[WK_ROUTE_MAX_ALLOW];
  /* /token only with token authorization; it checks the API key itself */
  assert_null(find(&api, WK_PORT_MANAGEMENT, "GET", "/token", &a, allow));
  api.auth = (wk_auth_t *)&api;
  const wk_route_t *r = find(&api, WK_PORT_MANAGEMENT, "GET", "/token", &a, allow);
  assert_non_null(r);
  assert_true(r->flags & WK_ROUTE_AUTH);
  /* the model API's routes are served with the model API off (they say so), not described */
  r = find(&api, WK_PORT_MANAGEMENT, "POST", "/models", &a, allow);
  assert_non_null(r);
  assert_true(wk_route_enabled(&api, r, 0));
  assert_false(wk_route_enabled(&api, r, 1));
  /* health probes and the description need no token; predictions do */
  assert_true(find(&api, WK_PORT_INFERENCE, "GET", "/ping", &a, allow)->flags & WK_ROUTE_PUBLIC);
  assert_true(find(&api, WK_PORT_INFERENCE, "GET", "/v2/health/ready", &a, allow)->flags & WK_ROUTE_PUBLIC);
  assert_true(find(&api, WK_PORT_MANAGEMENT, "OPTIONS", "/", &a, allow)->flags & WK_ROUTE_PUBLIC);
  assert_false(find(&api, WK_PORT_INFERENCE, "POST", "/predictions/m", &a, allow)->flags & WK_ROUTE_PUBLIC);
  assert_false(find(&api, WK_PORT_MANAGEMENT, "GET", "/models", &a, allow)->flags & WK_ROUTE_PUBLIC);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_route_is_reached_by_its_own_path),
      cmocka_unit_test(test_captures_and_suffixes),
      cmocka_unit_test(test_wrong_methods_and_unknown_paths),
      cmocka_unit_test(test_settings_decide_which_routes_exist),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
