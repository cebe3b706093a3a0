/* The OpenAPI 3.0 description of a port, generated from the route table (api/routes.c),
 * the same table the routers dispatch with. It does not describe bodies in depth. */
#include "api/openapi.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"

static const char *port_title(wk_port_t port) {
  return port == WK_PORT_INFERENCE    ? "wick inference API"
         : port == WK_PORT_MANAGEMENT ? "wick management API"
                                      : "wick metrics API";
}

/* Calls fn(into, item, len) for each '|'-separated item of list. */
static int each_item(const char *list, json_t *into, int (*fn)(json_t *, const char *, size_t)) {
  for (const char *p = list; p && *p;) {
    size_t n = strcspn(p, "|");
    if (fn(into, p, n) != 0) return WK_ENOMEM;
    p += n;
    if (*p == '|') p++;
  }
  return 0;
}

static json_t *schema(const char *type, size_t len) {
  return json_pack("{s:s%}", "type", type, len);
}

static int add_query(json_t *params, const char *item, size_t len) {
  const char *colon = memchr(item, ':', len);
  if (colon == NULL) return WK_EINTERNAL;
  char what[96];
  snprintf(what, sizeof what, "the %.*s setting (optional)", (int)(colon - item), item);
  json_t *p = json_pack("{s:s%,s:s,s:s,s:b,s:o}", "name", item, (size_t)(colon - item), "in",
                        "query", "description", what, "required", 0, "schema",
                        schema(colon + 1, len - (size_t)(colon + 1 - item)));
  return p == NULL || json_array_append_new(params, p) != 0 ? WK_ENOMEM : 0;
}

/* One accepted body type. JSON is an object, or any JSON value when the item says
 * "application/json=any" (a prediction's body is whatever its handler reads); anything else
 * travels as bytes. */
static int add_content(json_t *content, const char *item, size_t len) {
  char type[64];
  if (len >= sizeof type) return WK_EINTERNAL;
  memcpy(type, item, len);
  type[len] = '\0';
  char *eq = strchr(type, '=');
  int any = eq != NULL && strcmp(eq, "=any") == 0;
  if (eq) *eq = '\0';
  json_t *media = strcmp(type, "application/json") != 0
                      ? json_pack("{s:{s:s,s:s}}", "schema", "type", "string", "format", "binary")
                  : any ? json_pack("{s:{}}", "schema")
                        : json_pack("{s:{s:s}}", "schema", "type", "object");
  return media == NULL || json_object_set_new(content, type, media) != 0 ? WK_ENOMEM : 0;
}

/* The body of an error reply: TorchServe's {code, type, message}. */
static json_t *error_schema(void) {
  return json_pack("{s:s,s:[s,s,s],s:{s:{s:s,s:s},s:{s:s,s:s},s:{s:s,s:s}}}", "type", "object",
                   "required", "code", "type", "message", "properties", "code", "type",
                   "integer", "description", "the HTTP status", "type", "type", "string",
                   "description", "the error's class, as TorchServe names it", "message",
                   "type", "string", "description", "what was wrong and what was expected");
}

/* One reply, "code:description". A description that starts with "<type>" names the reply's
 * media type, or "<type,type>" several (the one sent depends on the request's Accept); a
 * type other than JSON has any schema (a prediction's reply is whatever its handler sends,
 * the star type). Otherwise it is JSON: an array when the description starts with "[", an
 * object otherwise (errors: error_schema). */
static int add_response(json_t *responses, const char *item, size_t len) {
  const char *colon = memchr(item, ':', len);
  if (colon == NULL || colon - item != 3) return WK_EINTERNAL;
  char code[4], media[128] = "application/json";
  memcpy(code, item, 3);
  code[3] = '\0';
  const char *desc = colon + 1;
  size_t dlen = len - 4;
  if (dlen > 0 && desc[0] == '<') {
    const char *end = memchr(desc, '>', dlen);
    if (end == NULL || (size_t)(end - desc) >= sizeof media) return WK_EINTERNAL;
    memcpy(media, desc + 1, (size_t)(end - desc - 1));
    media[end - desc - 1] = '\0';
    dlen -= (size_t)(end + 1 - desc);
    desc = end + 1;
  }
  json_t *r = json_pack("{s:s%,s:{}}", "description", desc, dlen, "content");
  if (r == NULL) return WK_ENOMEM;
  json_t *content = json_object_get(r, "content");
  char *save = NULL;
  for (char *type = strtok_r(media, ",", &save); type; type = strtok_r(NULL, ",", &save)) {
    json_t *body;
    if (code[0] >= '4') body = error_schema();
    else if (strcmp(type, "application/json") != 0) body = json_object();
    else if (dlen > 0 && desc[0] == '[') body = json_pack("{s:s}", "type", "array");
    else body = json_pack("{s:s}", "type", "object");
    if (body == NULL ||
        json_object_set_new(content, type, json_pack("{s:o}", "schema", body)) != 0) {
      json_decref(r);
      return WK_ENOMEM;
    }
  }
  return json_object_set_new(responses, code, r) != 0 ? WK_ENOMEM : 0;
}

/* The parameters of op: its path's {x} (required strings), then its query parameters. */
static json_t *parameters(const wk_route_t *op) {
  json_t *params = json_array();
  if (params == NULL) return NULL;
  for (const char *p = strchr(op->path, '{'); p; p = strchr(p + 1, '{')) {
    size_t n = strcspn(p + 1, "}");
    json_t *one = json_pack("{s:s%,s:s,s:s,s:b,s:{s:s}}", "name", p + 1, n, "in", "path",
                            "description",
                            strncmp(p + 1, "model_name", 10) == 0 ? "the model's name"
                                                                   : "the model's version",
                            "required", 1, "schema", "type", "string");
    if (one == NULL || json_array_append_new(params, one) != 0) goto fail;
  }
  if (each_item(op->query, params, add_query) != 0) goto fail;
  return params;
fail:
  json_decref(params);
  return NULL;
}

static json_t *operation(const wk_route_t *op, int auth_on) {
  json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:{}}", "operationId", op->id, "summary", op->summary,
                        "description", op->summary, "parameters", parameters(op), "responses");
  if (o == NULL) return NULL;
  json_t *responses = json_object_get(o, "responses");
  if (each_item(op->responses, responses, add_response) != 0) goto fail;
  /* any route can fail inside the server */
  if (json_object_get(responses, "500") == NULL &&
      add_response(responses, "500:internal error", 18) != 0)
    goto fail;
  if (strcmp(op->path, "/api-description") == 0 && json_object_set_new(o, "deprecated", json_true()) != 0)
    goto fail; /* OPTIONS / is the way to ask, as in TorchServe */
  if (op->body) {
    json_t *body = json_pack("{s:s,s:b,s:{}}", "description", "the input, as the model's handler reads it",
                             "required", 0, "content");
    if (body == NULL || json_object_set_new(o, "requestBody", body) != 0) goto fail;
    if (each_item(op->body, json_object_get(body, "content"), add_content) != 0) goto fail;
  }
  /* With token authorization, public routes say that they need no token. */
  if (auth_on && (op->flags & WK_ROUTE_PUBLIC) && json_object_set_new(o, "security", json_array()) != 0)
    goto fail;
  return o;
fail:
  json_decref(o);
  return NULL;
}

int wk_openapi_describe(const wk_api_t *api, wk_port_t port, const wk_route_t *const *routes,
                        size_t n, wk_buf_t *b) {
  int auth_on = api->auth != NULL && port != WK_PORT_METRICS;
  json_t *doc = json_pack(
      "{s:s,s:{s:s,s:s,s:s},s:{}}", "openapi", "3.0.1", "info", "title", port_title(port),
      "version", WK_VERSION, "description",
      "Generated by wick from its route table; every path answers as listed here.", "paths");
  if (doc == NULL) return WK_ENOMEM;
  json_t *paths = json_object_get(doc, "paths");
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const wk_route_t *op = routes[i];
    json_t *item = json_object_get(paths, op->path);
    if (item == NULL) {
      item = json_object();
      if (item == NULL || json_object_set_new(paths, op->path, item) != 0) {
        rc = WK_ENOMEM;
        break;
      }
    }
    json_t *o = operation(op, auth_on);
    if (o == NULL || json_object_set_new(item, op->method, o) != 0) rc = WK_ENOMEM;
  }
  if (rc == 0 && auth_on) {
    json_t *sec =
        json_pack("{s:{s:{s:s,s:s,s:s}}}", "securitySchemes", "bearer", "type", "http", "scheme",
                  "bearer", "description", "the inference or management key from key_file.json");
    json_t *req = json_pack("[{s:[]}]", "bearer");
    if (sec == NULL || req == NULL || json_object_set_new(doc, "components", sec) != 0 ||
        json_object_set_new(doc, "security", req) != 0)
      rc = WK_ENOMEM;
  }
  char *text = rc == 0 ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
  json_decref(doc);
  if (text == NULL) return WK_ENOMEM;
  rc = wk_buf_puts(b, text) == 0 && wk_buf_putc(b, '\n') == 0 ? 0 : WK_ENOMEM;
  free(text);
  return rc;
}

