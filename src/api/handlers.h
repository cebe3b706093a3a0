/* The functions the route table (routes.c) names: one per operation of the inference and
 * metrics ports (api.c) and the management port (management.c). Each answers req, now or
 * later; the router has matched the path and method and passed the gate. */
#ifndef WK_API_HANDLERS_H
#define WK_API_HANDLERS_H

#include "api/routes.h"

/* api.c: TorchServe's inference routes (arg: 1 for explanations) */
void wk_api_ping(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_api_predictions(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_api_invocations(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
/* 1 if the model (and version) a names is registered; else answers 404 and returns 0. */
int wk_api_model_exists(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
/* api.c: KServe v1 and v2 */
void wk_api_v1_list(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_api_v1_ready(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_api_v1_predict(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_api_v2_server(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_api_v2_live(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_api_v2_ready(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_api_v2_metadata(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_api_v2_model_ready(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_api_v2_infer(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_api_v2_config(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_api_v2_stats(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
/* api.c: the metrics port */
void wk_api_metrics_text(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);

/* management.c: TorchServe's management API. Register, scale and unregister block the
 * HTTP thread while they load, start or stop workers, as TorchServe's synchronous calls do. */
void wk_mgmt_list(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_mgmt_register(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_mgmt_describe(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_mgmt_scale(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_mgmt_unregister(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_mgmt_set_default(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
/* dashboard.c: the operator's view (GET /status.json) */
void wk_api_status_json(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
/* status_page.c: the status page (GET /status; GET / for a browser), static HTML that reads
 * /status.json; and whether req's Accept header asks for HTML (names text/html, q > 0). */
void wk_api_status_page(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
int wk_api_wants_html(wk_http_req_t *req);
/* Triton's model repository API on the inference port (management.c) */
void wk_mgmt_repo_index(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_mgmt_repo_load(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);
void wk_mgmt_repo_unload(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a);

#endif
