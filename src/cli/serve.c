/* `wick serve`: reads config.properties, the command line (torchserve's flags, and any
 * config key as --key value) and TS_<KEY> variables, sets up token authorization and TLS,
 * loads the models, serves the three APIs until SIGINT or SIGTERM, then answers what is
 * pending and stops. --start/--stop (background) live in daemon.c. */
#include "cli/serve.h"

#include "backend/torch.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/api.h"
#include "api/grpc_api.h"
#include "api/grpc_v2.h"
#include "archive/archive.h"
#include "backend/forkserver.h"
#include "backend/torch.h"
#include "cli/daemon.h"
#include "core/clock.h"
#include "core/fs.h"
#include "core/limits.h"
#include "core/log.h"
#include "serve/config.h"
#include "serve/registry.h"
#include "serve/status.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: wick serve [--start | --stop] [--foreground] [--model-store DIR]\n"
          "                  [--models MODEL ...] [--ts-config FILE] [--disable-token-auth]\n"
          "                  [--enable-model-api] [--log-config FILE] [--ncs] [--quiet]\n"
          "                  [--KEY VALUE ...]\n"
          "\n"
          "Serves models on the inference (8080), management (8081) and metrics (8082) APIs,\n"
          "in the foreground until SIGINT or SIGTERM, or in the background with --start.\n"
          "\n"
          "  --start             run in the background; returns once the APIs answer (exit 0)\n"
          "                      or the server failed (exit 1, with the reason). Pid file\n"
          "                      $TMPDIR/.wick.pid (TMPDIR unset: /tmp), log\n"
          "                      $LOG_LOCATION/wick.log (LOG_LOCATION unset: ./logs)\n"
          "  --stop              stop the server --start started (SIGTERM; waits up to 60 s)\n"
          "  --foreground        stay in the foreground (the default; with --start too)\n"
          "  --model-store DIR   where model archives live (config key model_store)\n"
          "  --models MODEL ...  models to load at startup: NAME=FILE.mar, FILE.mar, or all\n"
          "                      (every archive in the model store); config key load_models\n"
          "  --ts-config FILE    a config.properties file; --KEY VALUE on the command line wins\n"
          "  --ncs               accepted for torchserve compatibility: wick keeps no config\n"
          "                      snapshots, so there is nothing to disable\n"
          "  --disable-token-auth, --dt\n"
          "                      no token authorization (disable_token_authorization=true);\n"
          "                      it is on when an API listens beyond loopback, or when\n"
          "                      disable_token_authorization=false; keys in ./key_file.json\n"
          "  --enable-model-api  allow registering and deleting models (enable_model_api=true)\n"
          "  --log-config FILE   accepted for torchserve compatibility; wick ignores log4j files\n"
          "  --inference_address, --management_address, --metrics_address ADDRESS\n"
          "                      where each API listens: http[s]://host:port (defaults\n"
          "                      http://127.0.0.1:8080, 8081, 8082)\n"
          "  --KEY VALUE         any config.properties key, e.g. --job_queue_size 10\n"
          "                      --torch_threads 2 (docs/config.md lists them)\n"
          "  --quiet             no access log\n"
          "\n"
          "TS_CONFIG_FILE, when set, replaces --ts-config. With enable_envvars_config=true,\n"
          "TS_<KEY> variables (TS_JOB_QUEUE_SIZE=5) override the file and the command line.\n"
          "HTTPS: an https:// address with certificate_file and private_key_file (PEM).\n");
}

typedef struct serve_flags_s {
  int quiet;
  int start;      /* --start */
  int foreground; /* --foreground */
} serve_flags_t;

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
    char load_name[256];
    if (name[0]) snprintf(load_name, sizeof load_name, "%s", name);
    else wk_registry_name_of_url(url, load_name, sizeof load_name);
    wk_registry_load_end(reg, wk_registry_load_begin(reg, load_name, url),
                         "its url leaves the model store");
    return;
  }
  /* `--models machin-lern`, as torchserve takes it: the archive of that name in the store */
  char with_ext[4096];
  if (!wk_fs_exists(path) && strchr(url, '/') == NULL) {
    static const char *const exts[] = {".mar", ".tar.gz"};
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
      char cand[sizeof path];
      int n = snprintf(cand, sizeof cand, "%s%s", path, exts[i]);
      int m = snprintf(with_ext, sizeof with_ext, "%s%s", url, exts[i]);
      if (n < 0 || (size_t)n >= sizeof cand || m < 0 || (size_t)m >= sizeof with_ext) continue;
      if (wk_fs_exists(cand)) {
        wk_log_info("model %s: no %s in the model store; loading %s", name[0] ? name : url, url,
                    with_ext);
        memcpy(path, cand, (size_t)n + 1);
        url = with_ext;
        break;
      }
    }
  }
  wk_model_load_opts_t o;
  wk_model_load_opts_from_config(&o, cfg);
  o.archive = path;
  o.url = url;
  o.name = name[0] ? name : NULL;
  o.loaded_at_startup = 1;
  wk_model_t *m = NULL;
  wk_err_t err = {{0}};
  char load_name[256];
  if (name[0]) snprintf(load_name, sizeof load_name, "%s", name);
  else wk_registry_name_of_url(url, load_name, sizeof load_name);
  long ticket = wk_registry_load_begin(reg, load_name, url);
  if (wk_model_load(&o, &m, &err) != 0) {
    wk_log_error("model %s not loaded: %s", name[0] ? name : url, err.msg);
    wk_status_note_error(load_name, NULL, 500, err.msg);
    wk_registry_load_end(reg, ticket, err.msg);
    return;
  }
  if (wk_registry_add(reg, m, &err) != 0) {
    wk_log_error("model %s not loaded: %s", name[0] ? name : url, err.msg);
    wk_registry_load_end(reg, ticket, err.msg);
    wk_model_free(m);
    return;
  }
  wk_registry_load_end(reg, ticket, NULL);
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
    /* an archive's name that holds no archive is loaded all the same, to fail loudly (a
     * failed load that readiness reports), not skipped in silence */
    size_t len = strlen(e->d_name);
    int named = (len > 4 && strcmp(e->d_name + len - 4, ".mar") == 0) ||
                (len > 7 && strcmp(e->d_name + len - 7, ".tar.gz") == 0) ||
                (len > 4 && strcmp(e->d_name + len - 4, ".tgz") == 0);
    if (!named && wk_archive_kind(path) < 0) continue;
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

/* Applies argv, then TS_<KEY> variables, to cfg, as torchserve does: environment over
 * command line over config file. Returns 0, 1 for --help (usage printed), or -1 on a bad
 * flag or value (the reason printed). */
static int parse_args(int argc, char **argv, wk_config_t *cfg, serve_flags_t *fl) {
  wk_err_t err = {{0}};
  /* The config file first, so that command-line keys override it. TS_CONFIG_FILE wins over
   * --ts-config, as in torchserve. */
  const char *env_file = getenv("TS_CONFIG_FILE");
  for (int i = 1; i < argc; i++) {
    if ((strcmp(argv[i], "--ts-config") == 0 || strcmp(argv[i], "-f") == 0) && i + 1 < argc) {
      if (env_file == NULL && wk_config_load_file(cfg, argv[i + 1], &err) != 0) {
        fprintf(stderr, "wick serve: --ts-config: %s\n", err.msg);
        return -1;
      }
    }
  }
  if (env_file != NULL && *env_file != '\0' && wk_config_load_file(cfg, env_file, &err) != 0) {
    fprintf(stderr, "wick serve: TS_CONFIG_FILE: %s\n", err.msg);
    return -1;
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
    } else if (strcmp(a, "--ncs") == 0 || strcmp(a, "--no-config-snapshots") == 0) {
      /* accepted */
    } else if (strcmp(a, "--start") == 0) {
      fl->start = 1;
    } else if (strcmp(a, "--foreground") == 0) {
      fl->foreground = 1;
    } else if (strcmp(a, "--disable-token-auth") == 0 || strcmp(a, "--dt") == 0) {
      wk_config_set(cfg, "disable_token_authorization", "true", &err);
    } else if (strcmp(a, "--enable-model-api") == 0) {
      wk_config_set(cfg, "enable_model_api", "true", &err);
    } else if (strcmp(a, "--log-config") == 0) {
      if (i + 1 >= argc || access(argv[i + 1], R_OK) != 0) {
        fprintf(stderr, "wick serve: --log-config file not found: %s\n",
                i + 1 < argc ? argv[i + 1] : "");
        rc = -1;
      } else {
        fprintf(stderr,
                "wick serve: warning: --log-config %s ignored: wick does not read log4j "
                "configurations; it logs to stderr (--quiet drops the access log)\n",
                argv[++i]);
      }
    } else if (strcmp(a, "--quiet") == 0) {
      fl->quiet = 1;
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
  if (rc == 0 && wk_config_apply_env(cfg, getenv, &err) != 0) {
    fprintf(stderr, "wick serve: %s\n", err.msg);
    rc = -1;
  }
  return rc;
}

/* 1 for the loopback addresses: 127.0.0.0/8, ::1, ::ffff:127.x.x.x and "localhost". */
static int is_loopback(const char *host) {
  unsigned char a[16];
  if (strcmp(host, "localhost") == 0) return 1;
  if (inet_pton(AF_INET, host, a) == 1) return a[0] == 127;
  if (inet_pton(AF_INET6, host, a) != 1) return 0;
  static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(a, v4mapped, 12) == 0) return a[12] == 127;
  for (int i = 0; i < 15; i++)
    if (a[i]) return 0;
  return a[15] == 1;
}

/* Token authorization and TLS from cfg: *auth (NULL when off) and the PEM texts (NULL when
 * no address is https:// and enable_grpc_ssl is off). Fails, with the reason logged, on a
 * bad setting or file. */
static int setup_security(const wk_config_t *cfg, wk_auth_t **auth, char **cert, char **key) {
  static const char *names[3] = {"inference", "management", "metrics"};
  const char *addrs[3] = {cfg->inference_address, cfg->management_address, cfg->metrics_address};
  int https = -1, exposed = -1;
  for (int i = 0; i < 3; i++) {
    char host[256];
    int port, tls = 0;
    if (wk_config_parse_address_tls(addrs[i], host, sizeof host, &port, &tls, NULL) != 0) continue;
    if (tls && https < 0) https = i;
    if (i < 2 && !is_loopback(host) && exposed < 0) exposed = i; /* metrics needs no token */
  }
  /* the gRPC services ([12]) take the same keys: an exposed gRPC port counts too */
  const char *grpc_keys[2] = {"grpc_inference_address", "grpc_management_address"};
  const char *grpc_exposed = NULL;
  for (int i = 0; i < 2; i++) {
    const char *g = wk_props_get(&cfg->props, grpc_keys[i]);
    if (g && strncmp(g, "http://", 7) == 0) g += 7;
    if (g && *g && !is_loopback(g) && exposed < 0 && grpc_exposed == NULL) grpc_exposed = grpc_keys[i];
  }
  const char *cert_file = wk_props_get(&cfg->props, "certificate_file");
  const char *key_file = wk_props_get(&cfg->props, "private_key_file");
  int grpc_ssl = wk_config_bool(cfg, "enable_grpc_ssl", 0);
  if (https >= 0 || grpc_ssl) {
    if (cert_file == NULL || key_file == NULL || !*cert_file || !*key_file) {
      if (https >= 0)
        wk_log_error("%s_address %s is https://, which needs certificate_file and private_key_file "
                     "(PEM files; wick does not read Java keystores)",
                     names[https], addrs[https]);
      else
        wk_log_error("enable_grpc_ssl=true needs certificate_file and private_key_file (PEM files; "
                     "wick does not read Java keystores)");
      return WK_EINVAL;
    }
    wk_err_t err = {{0}};
    size_t len;
    if (wk_fs_read_file(cert_file, 1 << 20, cert, &len, &err) != 0) {
      wk_log_error("certificate_file: %s", err.msg);
      return WK_EIO;
    }
    if (wk_fs_read_file(key_file, 1 << 20, key, &len, &err) != 0) {
      wk_log_error("private_key_file: %s", err.msg);
      return WK_EIO;
    }
    if (strstr(*cert, "-----BEGIN CERTIFICATE-----") == NULL) {
      wk_log_error(
          "certificate_file %s is not a PEM certificate (expected -----BEGIN CERTIFICATE-----)",
          cert_file);
      return WK_EFORMAT;
    }
    if (strstr(*key, "PRIVATE KEY-----") == NULL || strstr(*key, "ENCRYPTED") != NULL) {
      wk_log_error("private_key_file %s is not an unencrypted PEM private key (expected -----BEGIN "
                   "PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)",
                   key_file);
      return WK_EFORMAT;
    }
  } else if (cert_file != NULL || key_file != NULL) {
    wk_log_warn("certificate_file/private_key_file are set but no address is https:// and "
                "enable_grpc_ssl is off: serving plain HTTP");
  }

  const char *disable = wk_props_get(&cfg->props, "disable_token_authorization");
  int on = disable ? !wk_config_bool(cfg, "disable_token_authorization", 0)
                   : exposed >= 0 || grpc_exposed != NULL;
  if (!on) {
    if (grpc_exposed)
      wk_log_warn("token authorization is off (disable_token_authorization=true) although %s "
                  "is beyond loopback: anyone who reaches that gRPC port can use it",
                  grpc_exposed);
    if (exposed >= 0)
      wk_log_warn("token authorization is off (disable_token_authorization=true) although the %s "
                  "API listens on %s: anyone who reaches it can use it",
                  names[exposed], addrs[exposed]);
    return 0;
  }
  double minutes = 60;
  const char *exp = wk_props_get(&cfg->props, "token_expiration_min");
  if (exp != NULL) {
    char *end;
    minutes = strtod(exp, &end);
    while (*end == ' ' || *end == '\t')
      end++;
    if (end == exp || *end != '\0' || !(minutes > 0)) {
      wk_log_error("token_expiration_min: expected a positive number of minutes, got '%s'", exp);
      return WK_EINVAL;
    }
  }
  wk_auth_opts_t o = {
      .key_file = "key_file.json",
      .expiration_min = minutes,
      .compat_status_codes = wk_config_bool(cfg, "ts_compat_status_codes", 0),
  };
  wk_err_t err = {{0}};
  int rc = wk_auth_new(&o, auth, &err);
  if (rc != 0) {
    wk_log_error("token authorization: %s", err.msg);
    return rc;
  }
  wk_log_info("token authorization is on (%s): keys are in %s; the inference key for the inference "
              "API, the management key for the management API (both expire after %g minutes), "
              "the API key for GET /token",
              disable ? "disable_token_authorization=false" : "an API listens beyond loopback",
              wk_auth_key_file(*auth), minutes);
  return 0;
}

/* TorchServe's gRPC ports ([12]): grpc_<which>_address (loopback) and grpc_<which>_port
 * (7070, 7071). Unlike the HTTP ports a port that is taken is not fatal: the error names it
 * and the key that moves it, and HTTP is served without that gRPC service. */
static wk_grpc_server_t *start_grpc(const wk_config_t *cfg, wk_api_t *api, const char *which,
                                    int dflt_port, const wk_grpc_method_t *methods, size_t n,
                                    const char *tls_cert, const char *tls_key) {
  char key[64], name[64];
  snprintf(key, sizeof key, "grpc_%s_port", which);
  const char *v = wk_props_get(&cfg->props, key);
  char *end = NULL;
  long port = v ? strtol(v, &end, 10) : dflt_port;
  if (v && (end == v || *end != '\0' || port < 0 || port > 65535)) {
    wk_log_error("%s: expected a port number, got '%s'; gRPC %s is off", key, v, which);
    return NULL;
  }
  snprintf(key, sizeof key, "grpc_%s_address", which);
  const char *host = wk_props_get(&cfg->props, key);
  if (host == NULL || *host == '\0') host = "127.0.0.1";
  if (strncmp(host, "http://", 7) == 0) host += 7;
  snprintf(name, sizeof name, "gRPC %s API", which);
  wk_grpc_opts_t o = {.name = name, .host = host, .port = (int)port,
                      .max_request = (size_t)cfg->max_request_size, .methods = methods,
                      .n_methods = n, .ud = api, .tls_cert_pem = tls_cert, .tls_key_pem = tls_key};
  wk_grpc_server_t *srv = NULL;
  wk_err_t err = {{0}};
  if (wk_grpc_server_start(&o, &srv, &err) != 0) {
    wk_log_error("%s (set grpc_%s_port to move it); serving without it", err.msg, which);
    return NULL;
  }
  wk_log_info("%s listening on %s:%d%s", name, host, wk_grpc_server_port(srv), tls_cert ? " (TLS)" : "");
  return srv;
}

static void drain_visit(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  (void)is_default;
  int64_t deadline = *(const int64_t *)ud;
  for (size_t i = 0; i < n; i++) {
    int left = wk_model_drain(models[i], deadline);
    if (left > 0)
      wk_log_warn("model %s %s: %d queued requests not run before drain_timeout; they get 503",
                  wk_model_name(models[i]), wk_model_version(models[i]), left);
  }
}

/* Lets queued requests finish, up to drain_timeout seconds (wick's key, default 30). */
static void drain_models(wk_registry_t *reg, const wk_config_t *cfg) {
  const char *v = wk_props_get(&cfg->props, "drain_timeout");
  long secs = v ? strtol(v, NULL, 10) : WK_DEFAULT_DRAIN_TIMEOUT_S;
  if (secs < 0) secs = 0;
  int64_t deadline = wk_now_us() + (int64_t)secs * 1000000;
  wk_registry_visit(reg, drain_visit, &deadline);
}

/* OpenBLAS starts busy-waiting threads of its own that fight torch's (MACHINE-NOTES: 60 ms
 * p99 stalls on a small CNN). Unless the user chose a count, keep it to one. The library
 * read its environment when it was loaded, so set it through its API. */
/* An idle connection should cost only memory ([11] part 2): the open-file limit is raised
 * to its hard limit, and each API may hold that many connections less a reserve (unless
 * max_connections says otherwise). Past the limit a connection is closed at once. */
static int connection_limit(const wk_config_t *cfg) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
      wk_log_info("open-file limit raised from %llu to %llu", (unsigned long long)was,
                  (unsigned long long)rl.rlim_max);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  long files = rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
  long fit = files - WK_FD_RESERVE;
  if (fit < 64) fit = 64;
  if (fit > 1L << 20) fit = 1L << 20;
  if (cfg->max_connections > 0) {
    if (cfg->max_connections > fit)
      wk_log_warn("max_connections=%d is more than the open-file limit allows (%ld); clients past "
                  "it will be refused when the server runs out of files",
                  cfg->max_connections, fit);
    return cfg->max_connections;
  }
  return (int)fit;
}

static void cap_openblas_threads(void) {
  if (getenv("OPENBLAS_NUM_THREADS") != NULL) return;
  void (*set)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
  if (set != NULL) set(1);
  setenv("OPENBLAS_NUM_THREADS", "1", 0); /* and for any process wick starts */
}

int wk_cmd_serve(int argc, char **argv) {
  cap_openblas_threads();
  wk_config_t cfg;
  wk_config_init(&cfg);
  int starting = 0; /* torchserve --start fails with 1, where wick's usage errors are 2 */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--stop") == 0) {
      wk_config_destroy(&cfg);
      return wk_daemon_stop();
    }
    if (strcmp(argv[i], "--start") == 0) starting = 1;
  }
  serve_flags_t fl = {0};
  int rc = parse_args(argc, argv, &cfg, &fl);
  if (rc != 0) {
    wk_config_destroy(&cfg);
    return rc > 0 ? 0 : starting ? 1 : 2;
  }
  int quiet = fl.quiet;
  if (fl.start) {
    int code = 0;
    if (!wk_daemon_begin(!fl.foreground, &code)) {
      wk_config_destroy(&cfg);
      return code; /* the parent of a background server, or a refusal */
    }
  }
  wk_auth_t *auth = NULL;
  char *tls_cert = NULL, *tls_key = NULL;
  if (setup_security(&cfg, &auth, &tls_cert, &tls_key) != 0) {
    free(tls_cert);
    free(tls_key);
    wk_config_destroy(&cfg);
    wk_daemon_end();
    return 1;
  }

  /* Signals are taken by sigwait below; every thread started from here inherits the mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  wk_log_info("wick %s, libtorch %s (torchvision operators: %s)", WK_VERSION, wk_torch_version(),
              wk_torch_builtin_ops());
  int max_conns = connection_limit(&cfg);
  wk_log_info("each API takes up to %d connections, closes them after %d s idle%s", max_conns,
              cfg.idle_timeout, cfg.max_connections_per_client > 0 ? "" : "; no cap per client");
  int stale = wk_fs_clean_stale_tmp();
  if (stale > 0)
    wk_log_info("removed %d temporary folder(s) left by wick processes that are gone", stale);
  wk_registry_t *reg = wk_registry_new();
  wk_api_t api;
  wk_api_init(&api, reg);
  api.config = &cfg; /* model store, allowed_urls, enable_model_api for the management API */
  load_models(reg, &cfg);

  static const char *names[3] = {"inference", "management", "metrics"};
  const char *addrs[3] = {cfg.inference_address, cfg.management_address, cfg.metrics_address};
  wk_http_handler_fn handlers[3] = {wk_api_inference, wk_api_management, wk_api_metrics};
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int exit_code = 0;
  api.auth = auth;
  /* Metrics and management first, inference last: once /ping answers, every API listens
   * (clients and probes wait for /ping). */
  for (int i = 2; i >= 0; i--) {
    char host[256];
    int port, tls = 0;
    wk_err_t err = {{0}};
    if (wk_config_parse_address_tls(addrs[i], host, sizeof host, &port, &tls, &err) != 0) {
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
        .idle_timeout_s = cfg.idle_timeout,
        .max_connections = max_conns,
        .max_per_client = cfg.max_connections_per_client,
        .request_timeout_s = cfg.request_timeout,
        .handler = handlers[i],
        .ud = &api,
        .tls_cert_pem = tls ? tls_cert : NULL,
        .tls_key_pem = tls ? tls_key : NULL,
    };
    wk_http_server_t *srv = NULL;
    if (wk_http_server_start(&o, &srv, &err) != 0) {
      wk_log_error("%s", err.msg);
      exit_code = 1;
      break;
    }
    /* the ports already listening read api.servers (metrics): publish under the lock
     * (ThreadSanitizer found the unguarded write) */
    pthread_rwlock_wrlock(&api.lock);
    api.servers[i] = srv;
    pthread_rwlock_unlock(&api.lock);
    wk_log_info("%s API listening on %s", names[i], addrs[i]);
  }

  wk_grpc_server_t *grpc[2] = {NULL, NULL};
  if (exit_code == 0) {
    /* enable_grpc_ssl: both gRPC ports over TLS, with the HTTP ports' certificate and key */
    int grpc_ssl = wk_config_bool(&cfg, "enable_grpc_ssl", 0);
    const char *grpc_cert = grpc_ssl ? tls_cert : NULL, *grpc_key = grpc_ssl ? tls_key : NULL;
    /* the inference port serves TorchServe's service, KServe v2 and gRPC health */
    size_t n = wk_grpc_inference_n_methods + wk_grpc_v2_n_methods;
    wk_grpc_method_t *inference = malloc(n * sizeof *inference);
    if (inference) {
      memcpy(inference, wk_grpc_inference_methods, sizeof *inference * wk_grpc_inference_n_methods);
      memcpy(inference + wk_grpc_inference_n_methods, wk_grpc_v2_methods, sizeof *inference * wk_grpc_v2_n_methods);
      grpc[0] = start_grpc(&cfg, &api, "inference", 7070, inference, n, grpc_cert, grpc_key);
      free(inference); /* the server keeps a copy */
    }
    grpc[1] = start_grpc(&cfg, &api, "management", 7071, wk_grpc_management_methods,
                         wk_grpc_management_n_methods, grpc_cert, grpc_key);
  }

  if (exit_code == 0) {
    wk_log_info("wick %s ready", WK_VERSION);
    wk_daemon_ready();
    int sig = 0;
    sigwait(&set, &sig);
    wk_log_info("received %s: answering pending requests and stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  }
  wk_api_shutdown(&api); /* from here new requests get 503 (gRPC: UNAVAILABLE) */
  wk_grpc_v2_shutdown();  /* health watches end before the registry they read goes */
  wk_grpc_management_shutdown(60); /* as do gRPC management calls (a synchronous scale) */
  if (exit_code == 0) drain_models(reg, &cfg);
  wk_registry_free(reg); /* answers what is still queued with 503, joins workers */
  wk_forkserver_stop_all(); /* after the workers: a restart may still have asked for one */
  for (int i = 0; i < 3; i++) wk_http_server_stop(api.servers[i]);
  for (int i = 0; i < 2; i++) wk_grpc_server_stop(grpc[i]);
  wk_api_destroy(&api);
  wk_auth_free(auth); /* removes key_file.json */
  if (tls_key) memset(tls_key, 0, strlen(tls_key));
  free(tls_key);
  free(tls_cert);
  wk_config_destroy(&cfg);
  wk_daemon_end();
  wk_log_info("stopped");
  return exit_code;
}
