/* The OpenAPI 3.0 description of a port, generated from the route table (api/routes.c),
 * the same table the routers dispatch with: each JSON reply with the keys it has, written
 * in the table's short notation (routes.h). It does not check replies against it. */
#include "api/openapi.h"

#include <ctype.h>
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

/* One query parameter, "name:type" or "name:type=default". */
static int add_query(json_t *params, const char *item, size_t len) {
  const char *colon = memchr(item, ':', len);
  if (colon == NULL) return WK_EINTERNAL;
  const char *type = colon + 1, *end = item + len, *eq = memchr(type, '=', (size_t)(end - type));
  char what[96];
  snprintf(what, sizeof what, "the %.*s setting (optional)", (int)(colon - item), item);
  json_t *s = schema(type, (size_t)((eq ? eq : end) - type));
  if (s != NULL && eq != NULL) {
    char value[32];
    snprintf(value, sizeof value, "%.*s", (int)(end - eq - 1), eq + 1);
    json_t *def = strncmp(type, "integer", 7) == 0   ? json_integer(strtoll(value, NULL, 10))
                  : strncmp(type, "boolean", 7) == 0 ? json_boolean(strcmp(value, "true") == 0)
                                                      : json_string(value);
    if (def == NULL || json_object_set_new(s, "default", def) != 0) {
      json_decref(s);
      return WK_ENOMEM;
    }
  }
  json_t *p = json_pack("{s:s%,s:s,s:s,s:b,s:o}", "name", item, (size_t)(colon - item), "in",
                        "query", "description", what, "required", 0, "schema", s);
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

/* The body of an error reply: TorchServe's {code, type, message}; on KServe's paths
 * (/v1/..., /v2...) "error" too, as http/server.c writes it there. */
static json_t *error_schema(const char *path) {
  json_t *s = json_pack("{s:s,s:[s,s,s],s:{s:{s:s,s:s},s:{s:s,s:s},s:{s:s,s:s}}}", "type", "object",
                        "required", "code", "type", "message", "properties", "code", "type",
                        "integer", "description", "the HTTP status", "type", "type", "string",
                        "description", "the error's class, as TorchServe names it", "message",
                        "type", "string", "description", "what was wrong and what was expected");
  if (s != NULL && (strncmp(path, "/v1/", 4) == 0 || strncmp(path, "/v2", 3) == 0) &&
      (json_array_append_new(json_object_get(s, "required"), json_string("error")) != 0 ||
       json_object_set_new(json_object_get(s, "properties"), "error",
                           json_pack("{s:s,s:s}", "type", "string", "description",
                                     "the message again, where KServe's clients read it")) != 0)) {
    json_decref(s);
    return NULL;
  }
  return s;
}

static json_t *parse_schema(const char **p, const char *end);

/* "(text)" after a member, if there is one: its description. */
static int parse_description(const char **p, const char *end, json_t *into) {
  if (*p == end || **p != '(') return 0;
  const char *close = memchr(*p, ')', (size_t)(end - *p));
  if (close == NULL) return WK_EINTERNAL;
  int rc = json_object_set_new(into, "description",
                               json_stringn(*p + 1, (size_t)(close - *p - 1))) != 0
               ? WK_ENOMEM
               : 0;
  *p = close + 1;
  return rc;
}

/* "{name:schema(description),name?:schema,...}": an object; '?' marks a key not always sent,
 * the others are required. */
static json_t *parse_object(const char **p, const char *end) {
  json_t *props = json_object(), *required = json_array();
  json_t *s = json_pack("{s:s,s:o}", "type", "object", "properties", props);
  const char *at = *p + 1;
  if (s == NULL || required == NULL) goto fail;
  while (at < end && *at != '}') {
    size_t n = strcspn(at, ":?");
    if (at + n >= end || n == 0) goto fail;
    int optional = at[n] == '?';
    const char *name = at;
    at += n + optional;
    if (at >= end || *at != ':') goto fail;
    at++;
    json_t *member = parse_schema(&at, end);
    if (member == NULL || json_object_setn_new(props, name, n, member) != 0 ||
        parse_description(&at, end, member) != 0 ||
        (!optional && json_array_append_new(required, json_stringn(name, n)) != 0))
      goto fail;
    if (at < end && *at == ',') at++;
  }
  if (at >= end) goto fail;
  *p = at + 1;
  if (json_array_size(required) > 0) json_object_set(s, "required", required);
  json_decref(required);
  return s;
fail:
  json_decref(s);
  json_decref(required);
  return NULL;
}

/* One schema of the table's notation (routes.h): {...} an object, [schema] an array of
 * them, a type (string, integer, number, boolean, object: any object, any: any value), or
 * =A/B/C: a string, one of those. Advances *p past it; NULL if it is not one. */
static json_t *parse_schema(const char **p, const char *end) {
  const char *at = *p;
  if (at >= end) return NULL;
  if (*at == '{') return parse_object(p, end);
  if (*at == '[') {
    at++;
    json_t *items = parse_schema(&at, end);
    if (items == NULL || at >= end || *at != ']') {
      json_decref(items);
      return NULL;
    }
    *p = at + 1;
    return json_pack("{s:s,s:o}", "type", "array", "items", items);
  }
  if (*at == '=') {
    json_t *values = json_array();
    for (at++; values && at < end && isalnum((unsigned char)*at);) {
      size_t n = 0;
      while (at + n < end && (isalnum((unsigned char)at[n]) || at[n] == '_')) n++;
      json_array_append_new(values, json_stringn(at, n));
      at += n;
      if (at < end && *at == '/') at++;
    }
    *p = at;
    return values ? json_pack("{s:s,s:o}", "type", "string", "enum", values) : NULL;
  }
  size_t n = 0;
  while (at + n < end && isalpha((unsigned char)at[n])) n++;
  *p = at + n;
  if (n == 3 && strncmp(at, "any", 3) == 0) return json_object();
  static const char *const types[] = {"string", "integer", "number", "boolean", "object"};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (strlen(types[i]) == n && strncmp(at, types[i], n) == 0) return json_pack("{s:s}", "type", types[i]);
  return NULL;
}

/* One reply of op, "code:[<types>][schema ]description" (routes.h). A type other than JSON
 * has any schema (a prediction's reply is whatever its handler sends, the star type); a JSON
 * reply has the schema it names, or, for an error without one, error_schema. */
static int add_response(json_t *responses, const wk_route_t *op, const char *item, size_t len) {
  const char *colon = memchr(item, ':', len);
  if (colon == NULL || colon - item != 3) return WK_EINTERNAL;
  char code[4], media[128] = "application/json";
  memcpy(code, item, 3);
  code[3] = '\0';
  const char *desc = colon + 1, *end = item + len;
  if (desc < end && desc[0] == '<') {
    const char *close = memchr(desc, '>', (size_t)(end - desc));
    if (close == NULL || (size_t)(close - desc) >= sizeof media) return WK_EINTERNAL;
    memcpy(media, desc + 1, (size_t)(close - desc - 1));
    media[close - desc - 1] = '\0';
    desc = close + 1;
  }
  json_t *body = NULL;
  if (desc < end && (desc[0] == '{' || desc[0] == '[')) {
    body = parse_schema(&desc, end);
    if (body == NULL) return WK_EINTERNAL;
    while (desc < end && *desc == ' ') desc++;
  } else if (code[0] >= '4') {
    body = error_schema(op->path);
    if (body == NULL) return WK_ENOMEM;
  }
  json_t *r = json_pack("{s:s%,s:{}}", "description", desc, (size_t)(end - desc), "content");
  if (r == NULL) {
    json_decref(body);
    return WK_ENOMEM;
  }
  json_t *content = json_object_get(r, "content");
  char *save = NULL;
  int rc = 0;
  for (char *type = strtok_r(media, ",", &save); rc == 0 && type; type = strtok_r(NULL, ",", &save)) {
    json_t *schema_of = strcmp(type, "application/json") != 0 ? json_object()
                        : body                                ? json_incref(body)
                                                              : json_pack("{s:s}", "type", "object");
    if (schema_of == NULL || json_object_set_new(content, type, json_pack("{s:o}", "schema", schema_of)) != 0)
      rc = WK_ENOMEM;
  }
  json_decref(body);
  if (rc == 0 && json_object_set_new(responses, code, r) != 0) rc = WK_ENOMEM;
  else if (rc != 0) json_decref(r);
  return rc;
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
  for (const char *p = op->responses; p && *p;) {
    size_t n = strcspn(p, "|");
    if (add_response(responses, op, p, n) != 0) goto fail;
    p += n + (p[n] == '|');
  }
  /* any route can fail inside the server */
  if (json_object_get(responses, "500") == NULL &&
      add_response(responses, op, "500:internal error", 18) != 0)
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

