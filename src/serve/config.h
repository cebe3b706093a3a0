/* Server configuration: config.properties (Java properties syntax) plus `--key value`
 * command-line overrides, with TorchServe's key names and defaults. */
#ifndef WK_SERVE_CONFIG_H
#define WK_SERVE_CONFIG_H

#include <stddef.h>

#include "core/error.h"

/* A parsed properties file: ordered key/value pairs, later keys win on lookup. */
typedef struct wk_props_s {
  char **keys;
  char **values;
  size_t count;
} wk_props_t;

void wk_props_init(wk_props_t *p);
void wk_props_destroy(wk_props_t *p);
/* Parses Java .properties text: `key=value`, `key: value`, `key value`, `#`/`!` comments,
 * backslash line continuation, \t \n \uXXXX escapes. Errors name the line. */
int wk_props_parse(const char *text, size_t len, wk_props_t *p, wk_err_t *err);
/* Sets (or replaces) key. */
int wk_props_set(wk_props_t *p, const char *key, const char *value);
const char *wk_props_get(const wk_props_t *p, const char *key);

typedef struct wk_config_s {
  char *inference_address;       /* "http://127.0.0.1:8080" */
  char *management_address;      /* "http://127.0.0.1:8081" */
  char *metrics_address;         /* "http://127.0.0.1:8082" */
  char *model_store;             /* NULL: none */
  char *load_models;             /* NULL, "all", or comma-separated "name=file.mar" / "file.mar" */
  int default_workers_per_model; /* 0: one per... see wk_config_default_workers */
  int job_queue_size;            /* 100 */
  int default_response_timeout;  /* seconds, 120 */
  long max_request_size;         /* bytes, 6553500 */
  long max_response_size;        /* bytes, 6553500 */
  int torch_threads;             /* wick: intra-op threads per native worker; 0 = auto */
  int worker_spin_us;            /* wick: how long an idle native worker polls its queue
                                    before it sleeps (one worker per model at a time) */
  char *python;                  /* wick: worker interpreter, WK_PYWORKER_DEFAULT_PYTHON (the venv's) */
  int idle_timeout;              /* wick: seconds a connection may stay idle, 60 */
  int status_interval_ms;        /* wick: one /status.json sample per interval, 10000 */
  int max_connections;           /* wick: per API; 0 = from the open-file limit */
  int max_connections_per_client;/* wick: per API and client address; 0 = no cap */
  int request_timeout;           /* wick: seconds to send one request (header and body), 60 */
  long max_unpacked_archive_size;/* wick: bytes one archive may unpack to, 8 GiB */
  long max_unpacked_total_size;  /* wick: bytes all unpacked models may hold together, 32 GiB */
  wk_props_t props;              /* every key seen, known or not */
} wk_config_t;

/* Fills defaults. */
void wk_config_init(wk_config_t *c);
void wk_config_destroy(wk_config_t *c);
/* Applies one key (from the file or the command line). Unknown keys are kept in props and
 * are not an error; a known key with a bad value is ("job_queue_size: expected a positive
 * integer, got 'x'"). */
int wk_config_set(wk_config_t *c, const char *key, const char *value, wk_err_t *err);
/* Reads a config.properties file and applies every key. */
int wk_config_load_file(wk_config_t *c, const char *path, wk_err_t *err);
/* Splits "http://host:port" (or "https://", or "host:port") into host and port. */
int wk_config_parse_address(const char *addr, char *host, size_t hostlen, int *port, wk_err_t *err);
/* The same, and *tls (if non-NULL) is 1 for https://. Without a port, http:// means 80 and
 * https:// 443; "host" alone is an error. IPv6 hosts are written in brackets ("[::1]:8080")
 * and come back without them. host is written only on success. */
int wk_config_parse_address_tls(const char *addr, char *host, size_t hostlen, int *port, int *tls,
                                wk_err_t *err);
/* Workers per model when neither the model nor the request says: default_workers_per_model
 * if set, else n_gpus if > 0, else the number of online CPUs (at most WK_MAX_WORKERS). */
int wk_config_default_workers(const wk_config_t *c, int n_gpus);
/* A boolean key as Java reads one: "true" in any case is 1, anything else 0, absent dflt. */
int wk_config_bool(const wk_config_t *c, const char *key, int dflt);
/* When enable_envvars_config is true (in the file or on the command line), applies the
 * TS_<KEY> variables TorchServe knows (TS_JOB_QUEUE_SIZE=5 -> job_queue_size), plus wick's
 * own (TS_TORCH_THREADS...). They win over the file and the command line, as in TorchServe;
 * TS_ALLOWED_URLS only with use_env_allowed_urls=true. getenv_fn is getenv (or a test's). */
int wk_config_apply_env(wk_config_t *c, char *(*getenv_fn)(const char *name), wk_err_t *err);

#endif
