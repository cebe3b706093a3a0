/* The in-process server of the whole-server fuzz targets (fuzz_http, fuzz_grpc): wick's
 * API state with an empty model store, the model API on, a 64 KiB request limit and,
 * when asked, a Python echo model (2 workers, batches of 4) so that predictions reach a
 * real handler. Static functions: each target includes it once. */
#ifndef WK_FUZZ_ECHO_API_H
#define WK_FUZZ_ECHO_API_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/fs.h"
#include "core/log.h"
#include "serve/config.h"
#include "serve/model.h"
#include "serve/registry.h"

static void put(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) abort();
}

/* A model folder: a Python handler that echoes its input (2 workers, batches of 4). */
static void make_echo(const char *dir) {
  char mar[512];
  snprintf(mar, sizeof mar, "%s/MAR-INF", dir);
  if (wk_fs_mkdirs(mar, NULL) != 0) abort();
  put(dir, "MAR-INF/MANIFEST.json",
      "{\"runtime\": \"python\", \"model\": {\"modelName\": \"echo\", \"modelVersion\": \"1.0\","
      " \"serializedFile\": \"dummy.txt\", \"handler\": \"echo.py\", \"configFile\": \"c.yaml\"},"
      " \"archiverVersion\": \"0.12.0\"}\n");
  put(dir, "dummy.txt", "x\n");
  put(dir, "c.yaml", "minWorkers: 2\nmaxWorkers: 2\nbatchSize: 4\nmaxBatchDelay: 2\nresponseTimeout: 10\n");
  put(dir, "echo.py",
      "def handle(data, context):\n"
      "    if data is None:\n"
      "        return None\n"
      "    return [repr(sorted(row.keys()))[:200] for row in data]\n");
}

/* Fills api (which lives as long as the process: the fuzzer never returns); with_echo
 * loads the echo model as "echo". Aborts when the setup fails. */
static void fuzz_echo_api(wk_api_t *api, int with_echo) {
  wk_config_t *cfg = calloc(1, sizeof *cfg);
  wk_log_set_level(WK_LOG_ERROR);
  char tmpl[] = "/tmp/wick-fuzz-api-XXXXXX";
  char *root = mkdtemp(tmpl);
  if (cfg == NULL || root == NULL) abort();
  char store[256], model[256];
  snprintf(store, sizeof store, "%s/store", root);
  snprintf(model, sizeof model, "%s/echo", root);
  if (wk_fs_mkdirs(store, NULL) != 0) abort();
  wk_err_t err = {{0}};
  wk_config_init(cfg);
  if (wk_config_set(cfg, "model_store", store, &err) != 0 ||
      wk_config_set(cfg, "enable_model_api", "true", &err) != 0 ||
      wk_config_set(cfg, "max_request_size", "65536", &err) != 0)
    abort();
  wk_registry_t *reg = wk_registry_new();
  wk_api_init(api, reg);
  api->config = cfg;
  if (!with_echo) return;
  make_echo(model);
  wk_model_load_opts_t o;
  wk_model_load_opts_from_config(&o, cfg);
  o.archive = model;
  o.url = "echo";
  wk_model_t *m = NULL;
  if (wk_model_load(&o, &m, &err) != 0 || wk_registry_add(reg, m, &err) != 0) {
    fprintf(stderr, "fuzz: the echo model did not load: %s\n", err.msg);
    abort();
  }
}

#endif
