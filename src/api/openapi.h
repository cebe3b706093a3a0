/* The API description: an OpenAPI 3.0 document of a port's routes, built from the route
 * table (api/routes.h) that the routers dispatch with, so it lists exactly what is served.
 * routes.c answers OPTIONS / and GET /api-description with it. */
#ifndef WK_API_OPENAPI_H
#define WK_API_OPENAPI_H

#include <stddef.h>

#include "api/api.h"
#include "api/routes.h"
#include "core/buf.h"

/* Writes the OpenAPI document of the given routes (those of port that the settings
 * serve) into b as JSON; with token authorization on (api->auth), public routes say they
 * need no token. Returns 0, or WK_ENOMEM. Any thread; reads api->auth only. */
int wk_openapi_describe(const wk_api_t *api, wk_port_t port, const wk_route_t *const *routes,
                        size_t n, wk_buf_t *b);

#endif
