/* `wick serve`: reads config.properties and the command line (torchserve's flags, and any
 * config key as --key value), loads the models, serves the three APIs until SIGINT or
 * SIGTERM, then answers what is pending and stops. */
#include "cli/serve.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "archive/archive.h"
#include "core/fs.h"
#include "core/log.h"
#include "serve/config.h"
#include "serve/registry.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: wick serve [--model-store DIR] [--models MODEL ...] [--ts-config FILE]\n"
          "                  [--ncs] [--foreground] [--KEY VALUE ...]\n"
          "\n"
          "Serves models on the inference (8080), management (8081) and metrics (8082) APIs,\n"
          "in the foreground, until SIGINT or SIGTERM.\n"
          "\n"
          "  --model-store DIR   where model archives live (config key model_store)\n"
          "  --models MODEL ...  models to load at startup: NAME=FILE.mar, FILE.mar, or all\n"
          "                      (every archive in the model store); config key load_models\n"
          "  --ts-config FILE    a config.properties file; --KEY VALUE on the command line wins\n"
          "  --ncs               accepted for torchserve compatibility: wick keeps no config\n"
          "                      snapshots, so there is nothing to disable\n"
          "  --foreground        accepted: wick always runs in the foreground\n"
          "  --KEY VALUE         any config.properties key, e.g. --inference_address\n"
          "                      http://127.0.0.1:9080 --job_queue_size 10 --torch_threads 2\n"
          "  --quiet             no access log\n");
}

/* Loads one "NAME=URL" or "URL" entry; a failure is logged and the others still load. */
static void load_one(wk_registry_t *reg, const wk_config_t *cfg, const char *spec) {
  char name[256] = "";
  const char *url = spec;
  const char *eq = strchr(spec, '=');
  if (eq && (size_t)(eq - spec) < sizeof name) {
    memcpy(name, spec, (size_t)(eq - spec));
    name[eq - spec] = '\0';
    url = eq + 1;
  }
  char path[4096];
  if (url[0] == '/' || cfg->model_store == NULL) snprintf(path, sizeof path, "%s", url);
  else wk_fs_join(path, sizeof path, cfg->model_store, url);
  if (strstr(url, "..") != NULL && url[0] != '/') {
    wk_log_error("model %s: '%s' leaves the model store; not loaded", name[0] ? name : url, url);
    return;
  }
  wk_model_load_opts_t o;
  wk_model_load_opts_init(&o);
  o.archive = path;
  o.url = url;
  o.name = name[0] ? name : NULL;
  o.default_workers = cfg->default_workers_per_model;
  o.job_queue_size = cfg->job_queue_size;
  o.response_timeout_s = cfg->default_response_timeout;
  o.torch_threads = cfg->torch_threads;
  o.worker_spin_us = cfg->worker_spin_us;
  o.loaded_at_startup = 1;
  wk_model_t *m = NULL;
  wk_err_t err = {{0}};
  if (wk_model_load(&o, &m, &err) != 0) {
    wk_log_error("model %s not loaded: %s", name[0] ? name : url, err.msg);
    return;
  }
  if (wk_registry_add(reg, m, &err) != 0) {
    wk_log_error("model %s not loaded: %s", name[0] ? name : url, err.msg);
    wk_model_free(m);
    return;
  }
  wk_log_info("model %s version %s ready (%s)", wk_model_name(m), wk_model_version(m), url);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_all(wk_registry_t *reg, const wk_config_t *cfg) {
  if (cfg->model_store == NULL) {
    wk_log_error("--models all needs --model-store");
    return;
  }
  DIR *d = opendir(cfg->model_store);
  if (d == NULL) {
    wk_log_error("model store %s cannot be read", cfg->model_store);
    return;
  }
  char *names[1024];
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < 1024) {
    if (e->d_name[0] == '.') continue;
    char path[4096];
    wk_fs_join(path, sizeof path, cfg->model_store, e->d_name);
    if (wk_archive_kind(path) < 0) continue;
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof names[0], cmp_str);
  for (size_t i = 0; i < n; i++) {
    load_one(reg, cfg, names[i]);
    free(names[i]);
  }
}

static void load_models(wk_registry_t *reg, const wk_config_t *cfg) {
  if (cfg->load_models == NULL || *cfg->load_models == '\0') return;
  char *list = strdup(cfg->load_models);
  char *save = NULL;
  for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    if (strcmp(tok, "all") == 0) load_all(reg, cfg);
    else load_one(reg, cfg, tok);
  }
  free(list);
}

/* Applies argv to cfg. Returns 0, 1 for --help (usage printed), or -1 on a bad flag. */
static int parse_args(int argc, char **argv, wk_config_t *cfg, int *quiet) {
  wk_err_t err = {{0}};
  /* The config file first, so that command-line keys override it. */
  for (int i = 1; i < argc; i++) {
    if ((strcmp(argv[i], "--ts-config") == 0 || strcmp(argv[i], "-f") == 0) && i + 1 < argc) {
      if (wk_config_load_file(cfg, argv[i + 1], &err) != 0) {
        fprintf(stderr, "wick serve: %s\n", err.msg);
        return -1;
      }
    }
  }
  wk_buf_t models = WK_BUF_INIT;
  int rc = 0;
  for (int i = 1; i < argc && rc == 0; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      rc = 1;
    } else if (strcmp(a, "--ts-config") == 0 || strcmp(a, "-f") == 0) {
      i++;
    } else if (strcmp(a, "--ncs") == 0 || strcmp(a, "--no-config-snapshots") == 0 ||
               strcmp(a, "--foreground") == 0 || strcmp(a, "--start") == 0) {
      /* accepted */
    } else if (strcmp(a, "--quiet") == 0) {
      *quiet = 1;
    } else if (strcmp(a, "--models") == 0 || strcmp(a, "-m") == 0) {
      while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
        if (models.len) wk_buf_putc(&models, ',');
        wk_buf_puts(&models, argv[++i]);
      }
    } else if (strcmp(a, "--model-store") == 0 || strcmp(a, "-s") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "wick serve: %s needs a directory\n", a);
        rc = -1;
      } else if (wk_config_set(cfg, "model_store", argv[++i], &err) != 0) {
        fprintf(stderr, "wick serve: %s\n", err.msg);
        rc = -1;
      }
    } else if (strncmp(a, "--", 2) == 0 && a[2]) {
      char key[256];
      const char *val;
      const char *eq = strchr(a, '=');
      if (eq) {
        snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
        val = eq + 1;
      } else if (i + 1 < argc) {
        snprintf(key, sizeof key, "%s", a + 2);
        val = argv[++i];
      } else {
        fprintf(stderr, "wick serve: %s needs a value (see wick serve --help)\n", a);
        rc = -1;
        break;
      }
      for (char *p = key; *p; p++)
        if (*p == '-') *p = '_';
      if (wk_config_set(cfg, key, val, &err) != 0) {
        fprintf(stderr, "wick serve: --%s: %s\n", key, err.msg);
        rc = -1;
      }
    } else {
      fprintf(stderr, "wick serve: unexpected argument '%s' (see wick serve --help)\n", a);
      rc = -1;
    }
  }
  if (rc == 0 && models.len && wk_config_set(cfg, "load_models", models.data, &err) != 0) {
    fprintf(stderr, "wick serve: --models: %s\n", err.msg);
    rc = -1;
  }
  wk_buf_destroy(&models);
  return rc;
}

int wk_cmd_serve(int argc, char **argv) {
  wk_config_t cfg;
  wk_config_init(&cfg);
  int quiet = 0;
  int rc = parse_args(argc, argv, &cfg, &quiet);
  if (rc != 0) {
    wk_config_destroy(&cfg);
    return rc > 0 ? 0 : 2;
  }

  /* Signals are taken by sigwait below; every thread started from here inherits the mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  wk_registry_t *reg = wk_registry_new();
  wk_api_t api;
  wk_api_init(&api, reg);
  load_models(reg, &cfg);

  static const char *names[3] = {"inference", "management", "metrics"};
  const char *addrs[3] = {cfg.inference_address, cfg.management_address, cfg.metrics_address};
  wk_http_handler_fn handlers[3] = {wk_api_inference, wk_api_management, wk_api_metrics};
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int exit_code = 0;
  for (int i = 0; i < 3; i++) {
    char host[256];
    int port;
    wk_err_t err = {{0}};
    if (wk_config_parse_address(addrs[i], host, sizeof host, &port, &err) != 0) {
      wk_log_error("%s_address: %s", names[i], err.msg);
      exit_code = 1;
      break;
    }
    wk_http_opts_t o = {
        .name = names[i],
        .host = host,
        .port = port,
        .max_body = cfg.max_request_size,
        .threads = i == 0 ? (int)(ncpu > 1 ? ncpu : 1) : 1,
        .access_log = !quiet,
        .handler = handlers[i],
        .ud = &api,
    };
    if (wk_http_server_start(&o, &api.servers[i], &err) != 0) {
      wk_log_error("%s", err.msg);
      exit_code = 1;
      break;
    }
    wk_log_info("%s API listening on %s", names[i], addrs[i]);
  }

  if (exit_code == 0) {
    wk_log_info("wick %s ready", WK_VERSION);
    int sig = 0;
    sigwait(&set, &sig);
    wk_log_info("received %s: answering pending requests and stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  }
  wk_api_shutdown(&api);
  wk_registry_free(reg); /* answers queued requests, joins workers */
  for (int i = 0; i < 3; i++) wk_http_server_stop(api.servers[i]);
  wk_api_destroy(&api);
  wk_config_destroy(&cfg);
  wk_log_info("stopped");
  return exit_code;
}
