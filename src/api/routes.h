/* The route table: every operation of every port (method, path template, who may call
 * it, which function answers it, and what the API description says about it). The
 * routers match requests against it, the gate reads each route's auth class from it, and
 * openapi.c describes it: one list, so what is served is what is described. */
#ifndef WK_API_ROUTES_H
#define WK_API_ROUTES_H

#include <stddef.h>

#include "api/api.h"
#include "http/server.h"

typedef enum { WK_PORT_INFERENCE = 1, WK_PORT_MANAGEMENT = 2, WK_PORT_METRICS = 4 } wk_port_t;

enum {
  WK_ROUTE_MODEL_API = 1, /* only with enable_model_api=true (the handler says so otherwise) */
  WK_ROUTE_AUTH = 2,      /* exists only with token authorization on */
  WK_ROUTE_PUBLIC = 4,    /* needs no token even with token authorization on */
  WK_ROUTE_MGMT_KEY = 8,  /* on the inference port, asks for the management key (Triton's
                             repository API changes what is loaded) */
};

/* What a route's path captured, and the route's own argument. */
typedef struct wk_route_args_s {
  const char *model_name;    /* {model_name}, or NULL */
  const char *model_version; /* {model_version}, or NULL */
  int arg;                   /* wk_route_t.arg: which variant (explain or predict, ...) */
  wk_port_t port;
  int public_path;           /* no route for the method, but every route of the path is
                                public: its 405 needs no token either */
} wk_route_args_t;

/* Answers req (now or later). Runs on the port's HTTP thread inside the API gate. */
typedef void (*wk_route_fn)(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);

typedef struct wk_route_s {
  unsigned ports;        /* wk_port_t bits */
  const char *method;    /* lower case, as OpenAPI names operations */
  const char *path;      /* template: literal segments, {model_name}, {model_version}; a
                            capture may be followed by a literal suffix ({model_name}:predict).
                            A capture never contains '/' or ':'. */
  unsigned flags;        /* WK_ROUTE_* */
  wk_route_fn fn;
  int arg;
  /* the API description */
  const char *id;        /* operationId */
  const char *summary;   /* one line */
  const char *query;     /* "name:type|..." of query parameters (string, integer, boolean);
                            "name:type=value" gives the value the route uses without it */
  const char *body;      /* "type|..." of accepted request content types, or NULL */
  const char *responses; /* "code:[<type,...>][schema ]description|...", see below */
} wk_route_t;

/* A reply of the table: its status code; "<type,...>" when it is not only JSON (the one sent
 * depends on the request's Accept or on the handler); then, for JSON, the body's schema:
 *   {key:schema,key?:schema}  an object; every key wick sends is listed, '?' marks one not
 *                             always sent, each may be followed by "(its description)"
 *   [schema]                  an array of them
 *   string integer number boolean, object (any object), any (any JSON value),
 *   =A/B/C                    a string, one of those
 * and a space before the prose. An error reply without a schema is TorchServe's {code, type,
 * message} (with "error" on KServe's paths); a JSON reply without one is an object. */

/* The table. */
const wk_route_t *wk_routes(size_t *n);

/* 1 if route r is served with api's settings (/token needs token authorization on). Routes
 * behind enable_model_api are served (to say that they are off) but not described. */
int wk_route_enabled(const wk_api_t *api, const wk_route_t *r, int for_description);

#define WK_ROUTE_MAX_ALLOW 64

/* Finds the route of port for method and path (no query). Returns it with the captures in
 * args (pointing into buf, which the caller provides, at least as long as path), or NULL:
 * then allow holds the methods that path does have ("GET, PUT"), or "" when no route has
 * that path. Any thread. */
const wk_route_t *wk_route_find(const wk_api_t *api, wk_port_t port, const char *method,
                                const char *path, char *buf, size_t buflen, wk_route_args_t *args,
                                char allow[WK_ROUTE_MAX_ALLOW]);

#endif
