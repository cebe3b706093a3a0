/* The HTTP APIs: routes of the inference, management and metrics ports, with TorchServe's
 * paths, JSON shapes and status codes. Each handler runs on an HTTP thread and answers
 * directly or hands the request to a model (which answers later). */
#ifndef WK_API_API_H
#define WK_API_API_H

#include "api/auth.h"
#include "http/server.h"
#include "serve/config.h"
#include "serve/registry.h"

#include <pthread.h>

typedef struct wk_api_s {
  wk_registry_t *registry;
  pthread_rwlock_t lock; /* handlers hold it shared; shutdown takes it exclusively */
  int stopping;
  wk_http_server_t *servers[3]; /* inference, management, metrics: for /metrics */
  wk_auth_t *auth;              /* token authorization; NULL: off. Set before the servers start */
  /* The server's settings, for the management API: model_store, allowed_urls,
   * enable_model_api and the worker defaults of registered models. NULL: no model store and
   * the model API off. Set before the servers start; read-only afterwards. */
  const wk_config_t *config;
  /* registrations running on threads of their own (management.c) */
  pthread_mutex_t reg_lock;
  pthread_cond_t reg_cond;
  int registering;
} wk_api_t;

void wk_api_init(wk_api_t *api, wk_registry_t *registry);
/* After this returns no handler touches a model: new requests get 503, and registrations
 * still running (each bounded by its download and startup timeouts) have ended. Main
 * thread. */
void wk_api_shutdown(wk_api_t *api);
void wk_api_destroy(wk_api_t *api);
/* 1 when every model is healthy (TorchServe's /ping rule), 0 otherwise. Any thread. */
int wk_api_healthy(wk_api_t *api);
/* 1 when the server is ready (GET /v2/health/ready): healthy, and no load has failed
 * since its name was last registered or forgotten. Any thread. */
int wk_api_ready(wk_api_t *api);

/* Handlers for wk_http_opts_t.handler, with the wk_api_t as ud: the routers of the three
 * ports (routes.c). */
void wk_api_inference(wk_http_req_t *req, void *api);
void wk_api_management(wk_http_req_t *req, void *api);
void wk_api_metrics(wk_http_req_t *req, void *api);

#endif
