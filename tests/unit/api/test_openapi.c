/* Unit tests for api/openapi: each port's document is valid JSON with OpenAPI's required
 * fields, path parameters match their templates, operation ids are unique, and the
 * settings decide which operations are listed. The document comes from the route table
 * the routers dispatch with (test_routes.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/openapi.h"

/* The document of port as the router serves it: the table's routes of that port that the
 * settings describe. */
static json_t *describe(const wk_api_t *api, wk_port_t port) {
  size_t n;
  const wk_route_t *all = wk_routes(&n);
  const wk_route_t **list = calloc(n, sizeof *list);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if ((all[i].ports & port) && wk_route_enabled(api, &all[i], 1)) list[k++] = &all[i];
  wk_buf_t b = WK_BUF_INIT;
  assert_int_equal(wk_openapi_describe(api, port, list, k, &b), 0);
  free(list);
  json_error_t je;
  json_t *doc = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &je);
  if (doc == NULL) fail_msg("not JSON: %s", je.text);
  wk_buf_destroy(&b);
  return doc;
}

static int has_op(json_t *doc, const char *path, const char *method) {
  return json_object_get(json_object_get(json_object_get(doc, "paths"), path), method) != NULL;
}

/* Every {x} of template is a required path parameter of op, and there are no others. */
static void check_path_params(const char *template, json_t *op) {
  size_t want = 0, got = 0;
  for (const char *p = strchr(template, '{'); p; p = strchr(p + 1, '{')) {
    size_t n = strcspn(p + 1, "}");
    int found = 0;
    size_t i;
    json_t *par;
    json_array_foreach(json_object_get(op, "parameters"), i, par) {
      const char *name = json_string_value(json_object_get(par, "name"));
      if (strcmp(json_string_value(json_object_get(par, "in")), "path") == 0 && strlen(name) == n &&
          strncmp(name, p + 1, n) == 0)
        found = json_is_true(json_object_get(par, "required"));
    }
    if (!found) fail_msg("%s: path parameter %.*s missing", template, (int)n, p + 1);
    want++;
  }
  size_t i;
  json_t *par;
  json_array_foreach(json_object_get(op, "parameters"), i, par) {
    if (strcmp(json_string_value(json_object_get(par, "in")), "path") == 0) got++;
  }
  assert_int_equal(got, want);
}

static void check_document(json_t *doc, const char *title) {
  assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.0.1");
  json_t *info = json_object_get(doc, "info");
  assert_string_equal(json_string_value(json_object_get(info, "title")), title);
  assert_string_equal(json_string_value(json_object_get(info, "version")), WK_VERSION);
  json_t *paths = json_object_get(doc, "paths");
  assert_true(json_is_object(paths) && json_object_size(paths) > 0);
  json_t *ids = json_object();
  const char *template;
  json_t *item;
  json_object_foreach(paths, template, item) {
    assert_true(template[0] == '/');
    const char *method;
    json_t *op;
    json_object_foreach(item, method, op) {
      const char *id = json_string_value(json_object_get(op, "operationId"));
      assert_non_null(id);
      if (json_object_get(ids, id)) fail_msg("operationId %s used twice", id);
      json_object_set_new(ids, id, json_true());
      assert_true(json_object_size(json_object_get(op, "responses")) > 0);
      check_path_params(template, op);
    }
  }
  json_decref(ids);
}

static void test_documents(void **state) {
  (void)state;
  wk_api_t api;
  memset(&api, 0, sizeof api);
  json_t *inf = describe(&api, WK_PORT_INFERENCE);
  json_t *mgt = describe(&api, WK_PORT_MANAGEMENT);
  json_t *met = describe(&api, WK_PORT_METRICS);
  check_document(inf, "wick inference API");
  check_document(mgt, "wick management API");
  check_document(met, "wick metrics API");
  /* each port its own routes */
  assert_true(has_op(inf, "/ping", "get"));
  assert_true(has_op(inf, "/v1/models/{model_name}:predict", "post"));
  assert_true(has_op(inf, "/v2/models/{model_name}/versions/{model_version}/infer", "post"));
  assert_false(has_op(inf, "/models", "get"));
  assert_true(has_op(mgt, "/models/{model_name}/{model_version}/set-default", "put"));
  assert_false(has_op(mgt, "/ping", "get"));
  /* the status page: GET / answers a browser with HTML and anything else with JSON */
  json_t *root_get = json_object_get(json_object_get(json_object_get(mgt, "paths"), "/"), "get");
  json_t *root_200 =
      json_object_get(json_object_get(json_object_get(root_get, "responses"), "200"), "content");
  assert_int_equal(json_object_size(root_200), 2);
  assert_non_null(json_object_get(root_200, "text/html"));
  assert_non_null(json_object_get(root_200, "application/json"));
  assert_true(has_op(mgt, "/status", "get"));
  assert_false(has_op(inf, "/", "get"));
  assert_false(has_op(inf, "/status", "get"));
  assert_int_equal(json_object_size(json_object_get(met, "paths")), 3);
  assert_true(has_op(met, "/metrics", "get"));
  for (json_t *d = inf; d; d = d == inf ? mgt : d == mgt ? met : NULL) {
    assert_true(has_op(d, "/", "options"));
    assert_true(has_op(d, "/api-description", "get"));
    assert_null(json_object_get(d, "security")); /* no token authorization */
  }
  /* no config: the model API is off, so no register or unregister; no /token */
  assert_false(has_op(mgt, "/models", "post"));
  assert_false(has_op(mgt, "/models/{model_name}", "delete"));
  assert_false(has_op(mgt, "/token", "get"));
  json_decref(inf);
  json_decref(mgt);
  json_decref(met);
}

static void test_model_api_setting(void **state) {
  (void)state;
  wk_config_t cfg;
  wk_config_init(&cfg);
  wk_api_t api;
  memset(&api, 0, sizeof api);
  api.config = &cfg;
  wk_err_t err;
  assert_int_equal(wk_config_set(&cfg, "enable_model_api", "false", &err), 0);
  json_t *off = describe(&api, WK_PORT_MANAGEMENT);
  assert_false(has_op(off, "/models", "post"));
  assert_int_equal(wk_config_set(&cfg, "enable_model_api", "TRUE", &err), 0);
  json_t *on = describe(&api, WK_PORT_MANAGEMENT);
  assert_true(has_op(on, "/models", "post"));
  assert_true(has_op(on, "/models/{model_name}", "delete"));
  assert_true(has_op(on, "/models/{model_name}/{model_version}", "delete"));
  json_decref(off);
  json_decref(on);
  wk_config_destroy(&cfg);
}

/* The schema of op's reply code as JSON. */
static json_t *reply_schema(json_t *doc, const char *path, const char *method, const char *code) {
  json_t *op = json_object_get(json_object_get(json_object_get(doc, "paths"), path), method);
  json_t *r = json_object_get(json_object_get(op, "responses"), code);
  json_t *s =
      json_object_get(json_object_get(json_object_get(r, "content"), "application/json"), "schema");
  if (s == NULL) fail_msg("%s %s: no JSON schema for %s", method, path, code);
  return s;
}

/* 1 if the JSON array list holds the string s. */
static int lists(json_t *list, const char *s) {
  size_t i;
  json_t *v;
  json_array_foreach(list, i, v) if (strcmp(json_string_value(v), s) == 0) return 1;
  return 0;
}

/* A JSON reply says which keys it has, and which of them are always there. */
static void test_reply_schemas(void **state) {
  (void)state;
  wk_api_t api;
  memset(&api, 0, sizeof api);
  json_t *inf = describe(&api, WK_PORT_INFERENCE);
  json_t *mgt = describe(&api, WK_PORT_MANAGEMENT);
  /* /ping: {"status": "Healthy"}, and its 500 is {"status": "Unhealthy"}, not an error */
  json_t *ping = reply_schema(inf, "/ping", "get", "200");
  assert_true(lists(json_object_get(ping, "required"), "status"));
  json_t *status = json_object_get(json_object_get(ping, "properties"), "status");
  assert_string_equal(json_string_value(json_object_get(status, "type")), "string");
  assert_true(lists(json_object_get(status, "enum"), "Healthy"));
  json_t *sick = reply_schema(inf, "/ping", "get", "500");
  assert_non_null(json_object_get(json_object_get(sick, "properties"), "status"));
  assert_null(json_object_get(json_object_get(sick, "properties"), "code"));
  /* GET /models: models always, nextPageToken not on the last page; limit's default */
  json_t *list = reply_schema(mgt, "/models", "get", "200");
  assert_true(lists(json_object_get(list, "required"), "models"));
  assert_false(lists(json_object_get(list, "required"), "nextPageToken"));
  assert_non_null(json_object_get(json_object_get(list, "properties"), "nextPageToken"));
  json_t *models = json_object_get(json_object_get(list, "properties"), "models");
  assert_string_equal(json_string_value(json_object_get(models, "type")), "array");
  assert_true(lists(json_object_get(json_object_get(models, "items"), "required"), "modelUrl"));
  json_t *params = json_object_get(
      json_object_get(json_object_get(json_object_get(mgt, "paths"), "/models"), "get"),
      "parameters");
  json_t *limit = json_object_get(json_array_get(params, 0), "schema");
  assert_string_equal(json_string_value(json_object_get(json_array_get(params, 0), "name")),
                      "limit");
  assert_int_equal(json_integer_value(json_object_get(limit, "default")), 100);
  /* describe: an array of versions, each with its workers */
  json_t *desc = reply_schema(mgt, "/models/{model_name}", "get", "200");
  assert_string_equal(json_string_value(json_object_get(desc, "type")), "array");
  json_t *version = json_object_get(desc, "items");
  assert_true(lists(json_object_get(version, "required"), "modelVersion"));
  assert_false(lists(json_object_get(version, "required"), "customizedMetadata"));
  json_t *worker =
      json_object_get(json_object_get(json_object_get(version, "properties"), "workers"), "items");
  assert_true(lists(
      json_object_get(json_object_get(json_object_get(worker, "properties"), "status"), "enum"),
      "READY"));
  /* errors: TorchServe's three keys, and KServe's "error" on its paths */
  json_t *err = reply_schema(mgt, "/models/{model_name}", "get", "404");
  assert_true(lists(json_object_get(err, "required"), "message"));
  assert_false(lists(json_object_get(err, "required"), "error"));
  json_t *kerr = reply_schema(inf, "/v2/models/{model_name}", "get", "404");
  assert_true(lists(json_object_get(kerr, "required"), "error"));
  assert_true(lists(json_object_get(kerr, "required"), "code"));
  /* /metrics only where it is served */
  assert_false(has_op(inf, "/metrics", "get"));
  assert_false(has_op(mgt, "/metrics", "get"));
  json_decref(inf);
  json_decref(mgt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_documents),
      cmocka_unit_test(test_model_api_setting),
      cmocka_unit_test(test_reply_schemas),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
