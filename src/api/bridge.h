/* Between the HTTP layer and serve/: an HTTP request seen as serve/'s plain request
 * (serve/sink.h), and a sink that sends a model's answer as the HTTP reply. */
#ifndef WK_API_BRIDGE_H
#define WK_API_BRIDGE_H

#include "core/limits.h"
#include "http/server.h"
#include "serve/sink.h"

#define WK_API_MAX_ARGS 32

typedef struct wk_api_request_s {
  wk_request_t r;
  wk_kv_t headers[WK_MAX_FORWARDED_HEADERS]; /* the first ones; the rest are dropped */
  wk_kv_t args[WK_API_MAX_ARGS];
} wk_api_request_t;

/* Fills out from req: pointers into req, valid until req is answered. HTTP thread. */
void wk_api_request_from_http(wk_http_req_t *req, wk_api_request_t *out);

/* Error bodies: TorchServe's {"code", "type", "message"}, or KServe's {"error": ...}. */
typedef enum { WK_API_ERRORS_TS = 0, WK_API_ERRORS_KSERVE } wk_api_errors_t;

/* A sink answering req (it frees itself after the final call). NULL when out of memory:
 * then the caller answers req itself. HTTP thread. */
wk_sink_t *wk_api_sink_new(wk_http_req_t *req, wk_api_errors_t errors);

#endif
