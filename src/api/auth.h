/* Token authorization as TorchServe 0.11+ does it: random management, inference and API
 * keys written to key_file.json (mode 0600), checked against `Authorization: Bearer`,
 * with expiry, and replaced through GET /token. It decides nothing about when it is on. */
#ifndef WK_API_AUTH_H
#define WK_API_AUTH_H

#include <stdint.h>

#include "core/error.h"
#include "http/server.h"

typedef struct wk_auth_s wk_auth_t;

/* Which key a request needs. The API key only replaces the other two (GET /token). */
typedef enum {
  WK_AUTH_INFERENCE = 0,
  WK_AUTH_MANAGEMENT = 1,
  WK_AUTH_TOKEN_API = 2
} wk_auth_kind_t;

typedef struct wk_auth_opts_s {
  const char *key_file;    /* where the keys are written: "key_file.json" */
  double expiration_min;   /* lifetime of the management and inference keys; > 0 */
  int compat_status_codes; /* 1: failures are TorchServe's 400 instead of 401 */
} wk_auth_opts_t;

/* Generates the three keys (getrandom) and writes the key file with mode 0600, replacing
 * any old one. The caller frees the result with wk_auth_free. Main thread. */
int wk_auth_new(const wk_auth_opts_t *o, wk_auth_t **out, wk_err_t *err);
/* Removes the key file and frees a (NULL is fine). No request may be using a. */
void wk_auth_free(wk_auth_t *a);
const char *wk_auth_key_file(const wk_auth_t *a);

/* Checks an Authorization header value (NULL: none) against kind's key at monotonic time
 * now_us. Returns 0 when it matches and has not expired; otherwise a negative WK_E* code
 * with err saying why (the message never contains a key). Any thread. */
int wk_auth_verify(wk_auth_t *a, const char *header, wk_auth_kind_t kind, int64_t now_us,
                   wk_err_t *err);

/* Checks req for kind's key. Returns 1 when allowed; otherwise replies 401 (with
 * WWW-Authenticate: Bearer) or, with compat_status_codes, 400, and returns 0. HTTP thread. */
int wk_auth_check(wk_auth_t *a, wk_http_req_t *req, wk_auth_kind_t kind);

/* Serves GET /token?type=management|inference on the management API: needs the API key,
 * replaces that key (new expiry), rewrites the key file and replies with the new key as
 * {"<type>": {"key": ..., "expiration time": ...}}. HTTP thread. */
void wk_auth_token_request(wk_auth_t *a, wk_http_req_t *req);

#endif
