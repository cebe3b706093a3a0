/* The operator's view on the management port: GET /status.json, every registered model
 * version as serve/status.c prints it, the server's process, the registrations still
 * running and the recent error answers. Read-only: nothing here changes a model. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/handlers.h"
#include "serve/status.h"

static void add_models(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  json_t *list = ud;
  for (size_t i = 0; i < n; i++) {
    json_t *o = wk_status_model(models[i], is_default[i]);
    if (o == NULL) continue;
    char why[256] = "";
    int healthy = wk_model_healthy(models[i], why, sizeof why);
    json_object_set_new(o, "state", json_string(healthy                       ? "ready"
                                                : wk_model_failed(models[i]) ? "failed"
                                                                             : "unhealthy"));
    if (!healthy) json_object_set_new(o, "state_reason", json_string(why));
    json_array_append_new(list, o);
  }
}

static void add_loads(const wk_load_info_t *loads, size_t n, void *ud) {
  json_t *list = ud;
  for (size_t i = 0; i < n; i++)
    json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s,s:I}", "name", loads[i].name, "url",
                                           loads[i].url, "state",
                                           loads[i].state == WK_LOAD_LOADING ? "loading" : "failed",
                                           "reason", loads[i].reason, "since",
                                           (json_int_t)loads[i].since_ms));
}

void wk_api_status_json(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  (void)a;
  json_t *root = json_object(), *models = json_array();
  json_t *process = wk_status_process();
  wk_registry_visit(api->registry, add_models, models);
  pthread_mutex_lock(&api->reg_lock);
  int registering = api->registering;
  pthread_mutex_unlock(&api->reg_lock);
  if (process) {
    json_object_set_new(process, "registrations_running", json_integer(registering));
    /* the actions the page may offer: scale, set-default and unregister */
    const char *v = api->config ? wk_props_get(&api->config->props, "enable_model_api") : NULL;
    json_object_set_new(process, "model_api_enabled",
                        json_boolean(v != NULL && strcasecmp(v, "true") == 0));
    json_object_set_new(process, "token_authorization", json_boolean(api->auth != NULL));
  }
  json_object_set_new(root, "server", process ? process : json_null());
  json_object_set_new(root, "healthy", json_boolean(wk_api_healthy(api)));
  json_object_set_new(root, "ready", json_boolean(wk_api_ready(api)));
  json_object_set_new(root, "models", models);
  json_t *loads = json_array();
  wk_registry_visit_loads(api->registry, add_loads, loads);
  json_object_set_new(root, "loads", loads);
  json_object_set_new(root, "recent_errors", wk_status_recent_errors());
  char *text = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  if (text == NULL) {
    wk_http_reply_error(req, 507, "InsufficientStorageException", "out of memory");
    return;
  }
  size_t len = strlen(text);
  char *body = malloc(len + 2);
  if (body == NULL) {
    free(text);
    wk_http_reply_error(req, 507, "InsufficientStorageException", "out of memory");
    return;
  }
  memcpy(body, text, len);
  body[len++] = '\n';
  free(text);
  wk_http_reply_header(req, "Cache-Control", "no-store");
  wk_http_reply(req, 200, "application/json", body, len);
}
