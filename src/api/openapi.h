/* The API description: an OpenAPI 3.0 document of each port's routes, built from one table
 * of operations (openapi.c) that tests/e2e/test_openapi.py checks against the routers. It
 * routes nothing itself; api.c calls it for OPTIONS / and GET /api-description. */
#ifndef WK_API_OPENAPI_H
#define WK_API_OPENAPI_H

#include "api/api.h"
#include "core/buf.h"

typedef enum { WK_PORT_INFERENCE = 1, WK_PORT_MANAGEMENT = 2, WK_PORT_METRICS = 4 } wk_port_t;

/* Writes the OpenAPI document of port's routes into b as JSON. Routes that the server's
 * settings turn off are left out: register and unregister without enable_model_api,
 * GET /token without token authorization. Returns 0, or WK_ENOMEM. Any thread; reads
 * api->config and api->auth only. */
int wk_openapi_describe(const wk_api_t *api, wk_port_t port, wk_buf_t *b);

/* Answers OPTIONS / (root: 1) or GET /api-description (root: 0) with the document; other
 * methods on those paths get 405. The caller has matched the path; no token is needed for it
 * (auth.c), as in TorchServe, which answers the description before its token check. HTTP thread. */
void wk_openapi_reply(const wk_api_t *api, wk_port_t port, int root, wk_http_req_t *req);

#endif
