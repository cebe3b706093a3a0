/* The management API (port 8081) as TorchServe has it: register, scale, describe, list,
 * set-default and unregister model versions, with its parameters, status codes and
 * messages. Loading is serve/model.c's, downloading serve/download.c's. */
#ifndef WK_API_MANAGEMENT_H
#define WK_API_MANAGEMENT_H

#include "api/api.h"
#include "http/server.h"

/* Answers one request of the management port. Runs on that port's HTTP thread inside the
 * API gate; register, scale and unregister block it while they load, start or stop
 * workers, as TorchServe's synchronous calls do. */
void wk_management_handle(wk_api_t *api, wk_http_req_t *req);

#endif
