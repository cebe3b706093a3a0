/* `wick inspect`: reads a .mar/.zip, .tar.gz or model directory and prints its manifest,
 * its file list and its config file, as text or as one JSON object (--json). It only
 * reads: no handler, model or pickle from the archive is run. */
#include "cli/inspect.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "archive/liberator.h"
#include "archive/manifest.h"
#include "core/buf.h"
#include "core/limits.h"

#define MANIFEST_NAME "MAR-INF/MANIFEST.json"

typedef struct item_s {
  char *name, *method;
  unsigned long long size, comp_size;
  bool is_dir;
} item_t;

typedef struct items_s {
  item_t *v;
  size_t n, cap;
} items_t;

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("wick inspect: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 1;
}

static void usage(FILE *out) {
  fprintf(out, "usage: wick inspect [--json] ARCHIVE\n"
               "\n"
               "Shows the manifest, the files and the config file of a model archive (.mar,\n"
               ".tar.gz or directory), and the train info of a torch_liberator deployment.\n"
               "Nothing in the archive is run.\n"
               "\n"
               "  --json      print one JSON object {manifest, files, config, liberator,\n"
               "              train_info}\n"
               "  -h, --help  this help\n");
}

static int collect(void *ctx, const wk_archive_item_t *it) {
  items_t *l = ctx;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 32;
    item_t *p = realloc(l->v, cap * sizeof *p);
    if (p == NULL) return WK_ENOMEM;
    l->v = p;
    l->cap = cap;
  }
  item_t *e = &l->v[l->n];
  e->name = strdup(it->name);
  e->method = strdup(it->method);
  if (e->name == NULL || e->method == NULL) {
    free(e->name);
    free(e->method);
    return WK_ENOMEM;
  }
  e->size = it->size;
  e->comp_size = it->comp_size;
  e->is_dir = it->is_dir;
  l->n++;
  return 0;
}

/* Text that came from the archive, made safe for a terminal and for JSON: control
 * characters other than newline and tab, and bytes that are not valid UTF-8, become '?'. */
static char *sanitize(const char *s, size_t len) {
  char *o = malloc(len + 1);
  if (o == NULL) return NULL;
  size_t j = 0;
  for (size_t i = 0; i < len;) {
    unsigned char c = (unsigned char)s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = n > 0 && i + n <= len;
    for (size_t k = 1; ok && k < n; k++)
      ok = ((unsigned char)s[i + k] >> 6) == 2;
    if (!ok || (n == 1 && ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f))) {
      o[j++] = '?';
      i++;
      continue;
    }
    memcpy(o + j, s + i, n);
    j += n;
    i += n;
  }
  o[j] = '\0';
  return o;
}

/* A torch_liberator deployment found in the archive, and its train_info.json. */
typedef struct lib_s {
  bool found;
  wk_liberator_t d;
  char *train_info; /* the file's text, or NULL */
  size_t train_info_len;
} lib_t;

typedef struct mfield_s {
  const char *key;
  const char *val;
} mfield_t;

static size_t manifest_fields(const wk_manifest_t *m, mfield_t f[12]) {
  const mfield_t all[] = {
      {"modelName", m->model_name},
      {"modelVersion", m->model_version},
      {"runtime", m->runtime},
      {"handler", m->handler},
      {"serializedFile", m->serialized_file},
      {"modelFile", m->model_file},
      {"extraFiles", m->extra_files},
      {"requirementsFile", m->requirements_file},
      {"configFile", m->config_file},
      {"modelClass", m->model_class},
      {"archiverVersion", m->archiver_version},
      {"createdOn", m->created_on},
  };
  size_t n = 0;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (all[i].val) f[n++] = all[i];
  return n;
}

static json_t *jstr(const char *s) {
  char *c = sanitize(s, strlen(s));
  json_t *j = c ? json_string(c) : NULL;
  free(c);
  return j ? j : json_null();
}

static int print_json(const wk_manifest_t *m, bool has_manifest, const items_t *files,
                      const char *config, size_t config_len, const lib_t *lib) {
  json_t *root = json_object(), *jm = has_manifest ? json_object() : json_null();
  json_t *jf = json_array();
  mfield_t f[12];
  size_t nf = has_manifest ? manifest_fields(m, f) : 0;
  for (size_t i = 0; i < nf; i++)
    json_object_set_new(jm, f[i].key, jstr(f[i].val));
  for (size_t i = 0; i < files->n; i++) {
    const item_t *e = &files->v[i];
    json_t *o = json_object();
    json_object_set_new(o, "name", jstr(e->name));
    json_object_set_new(o, "size", json_integer((json_int_t)e->size));
    json_object_set_new(o, "compressed_size", json_integer((json_int_t)e->comp_size));
    json_object_set_new(o, "method", json_string(e->method));
    if (e->is_dir) json_object_set_new(o, "is_dir", json_true());
    json_array_append_new(jf, o);
  }
  json_t *jc = json_null();
  if (config) {
    char *c = sanitize(config, config_len);
    if (c) jc = json_string(c);
    free(c);
    if (jc == NULL) jc = json_null();
  }
  json_object_set_new(root, "manifest", jm);
  json_object_set_new(root, "files", jf);
  json_object_set_new(root, "config", jc);
  if (lib->found) {
    json_t *jl = json_object();
    json_object_set_new(jl, "folder", jstr(lib->d.folder));
    json_object_set_new(jl, "snapshot", jstr(lib->d.snapshot));
    json_object_set_new(jl, "model_file", jstr(lib->d.model_py));
    json_object_set_new(jl, "train_info_file",
                        lib->d.train_info[0] ? jstr(lib->d.train_info) : json_null());
    json_object_set_new(root, "liberator", jl);
    json_t *ti = json_null();
    if (lib->train_info) {
      /* the parsed object when it is JSON, else its (sanitized) text */
      json_t *parsed = json_loadb(lib->train_info, lib->train_info_len, 0, NULL);
      if (parsed) {
        ti = parsed;
      } else {
        char *c = sanitize(lib->train_info, lib->train_info_len);
        ti = c ? json_string(c) : NULL;
        free(c);
        if (ti == NULL) ti = json_null();
      }
    }
    json_object_set_new(root, "train_info", ti);
  }
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  if (text == NULL) return fail("out of memory");
  puts(text);
  free(text);
  return 0;
}

/* Prints text line by line, each indented by two spaces. */
static void print_indented(const char *text, size_t len) {
  char *c = sanitize(text, len);
  if (c == NULL) return;
  const char *p = c;
  while (*p) {
    const char *nl = strchr(p, '\n');
    int n = nl ? (int)(nl - p) : (int)strlen(p);
    printf("  %.*s\n", n, p);
    p += n + (nl != NULL);
  }
  free(c);
}

static void print_text(const char *path, const wk_manifest_t *m, bool has_manifest,
                       const items_t *files, const char *config, size_t config_len,
                       const lib_t *lib) {
  printf("archive: %s\n", path);
  if (has_manifest) {
    printf("manifest:\n");
    mfield_t f[12];
    size_t nf = manifest_fields(m, f);
    for (size_t i = 0; i < nf; i++) {
      char *v = sanitize(f[i].val, strlen(f[i].val));
      printf("  %-17s %s\n", f[i].key, v ? v : "?");
      free(v);
    }
    if (m->handler && strstr(m->handler, ".py"))
      printf("  note: the handler is Python code from this archive; it runs when the model\n"
             "        is served. inspect ran nothing.\n");
  } else {
    printf("manifest: none (no %s)\n", MANIFEST_NAME);
  }
  if (lib->found) {
    char *folder = sanitize(lib->d.folder, strlen(lib->d.folder));
    char *snap = sanitize(lib->d.snapshot, strlen(lib->d.snapshot));
    char *py = sanitize(lib->d.model_py, strlen(lib->d.model_py));
    printf("torch_liberator deployment%s%s%s:\n", lib->d.folder[0] ? " (folder " : "",
           folder ? folder : "?", lib->d.folder[0] ? ")" : "");
    printf("  %-17s %s\n  %-17s %s\n", "snapshot", snap ? snap : "?", "model file", py ? py : "?");
    free(folder);
    free(snap);
    free(py);
    if (!has_manifest)
      printf("  note: wick serves it as it is with the liberator handler; the model file is\n"
             "        Python code from this archive and runs when the model is served.\n");
  }
  printf("files: %zu\n", files->n);
  printf("  %12s %12s  %-8s %s\n", "size", "compressed", "method", "name");
  for (size_t i = 0; i < files->n; i++) {
    const item_t *e = &files->v[i];
    char *nm = sanitize(e->name, strlen(e->name));
    printf("  %12llu %12llu  %-8s %s\n", e->size, e->comp_size, e->method, nm ? nm : "?");
    free(nm);
  }
  if (config) {
    char *c = sanitize(config, config_len);
    printf("config (%s):\n", m->config_file);
    if (c) {
      const char *p = c;
      while (*p) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        printf("  %.*s\n", n, p);
        p += n + (nl != NULL);
      }
    }
    free(c);
  }
  if (lib->found && lib->train_info) {
    char *ti = sanitize(lib->d.train_info, strlen(lib->d.train_info));
    printf("train info (%s):\n", ti ? ti : "?");
    free(ti);
    json_t *parsed = json_loadb(lib->train_info, lib->train_info_len, 0, NULL);
    char *pretty = parsed ? json_dumps(parsed, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(parsed);
    if (pretty)
      print_indented(pretty, strlen(pretty));
    else
      print_indented(lib->train_info, lib->train_info_len);
    free(pretty);
  } else if (lib->found) {
    printf("train info: none (no %s beside the snapshot)\n", WK_LIBERATOR_TRAIN_INFO);
  }
}

int wk_cmd_inspect(int argc, char **argv) {
  bool as_json = false;
  const char *path = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) {
      as_json = true;
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      return fail("unknown option '%s' (see wick inspect --help)", argv[i]);
    } else if (path) {
      return fail("one archive at a time ('%s' and '%s' given)", path, argv[i]);
    } else {
      path = argv[i];
    }
  }
  if (path == NULL) {
    usage(stderr);
    return 1;
  }
  wk_err_t err;
  items_t files = {NULL, 0, 0};
  int rc = wk_archive_list(path, collect, &files, &err);
  if (rc != 0) {
    for (size_t i = 0; i < files.n; i++) {
      free(files.v[i].name);
      free(files.v[i].method);
    }
    free(files.v);
    return fail("%s", rc == WK_ENOMEM && err.msg[0] == '\0' ? "out of memory" : err.msg);
  }
  wk_manifest_t m;
  wk_manifest_init(&m);
  bool has_manifest = false;
  char *text = NULL, *config = NULL;
  size_t len = 0, config_len = 0;
  int status = 0;
  rc = wk_archive_read_file(path, MANIFEST_NAME, &text, &len, &err);
  if (rc == 0) {
    if (len > WK_MAX_MANIFEST_SIZE) {
      status = fail("%s: %s is %zu bytes; the limit is %d", path, MANIFEST_NAME, len,
                    WK_MAX_MANIFEST_SIZE);
    } else if (wk_manifest_parse(text, len, &m, &err) != 0) {
      status = fail("%s: %s: %s", path, MANIFEST_NAME, err.msg);
    } else {
      has_manifest = true;
    }
  } else if (rc != WK_ENOTFOUND) {
    status = fail("%s", err.msg);
  }
  if (status == 0 && has_manifest && m.config_file) {
    rc = wk_archive_read_file(path, m.config_file, &config, &config_len, &err);
    if (rc == 0 && config_len > WK_MAX_CONFIG_FILE_SIZE) {
      free(config);
      config = NULL;
      status = fail("%s: config file %s is larger than %d bytes", path, m.config_file,
                    WK_MAX_CONFIG_FILE_SIZE);
    } else if (rc != 0) {
      status = fail("%s: config file: %s", path, err.msg);
    }
  }
  lib_t lib;
  memset(&lib, 0, sizeof lib);
  if (status == 0 && wk_liberator_find(path, &lib.d, &err) == 0) {
    lib.found = true;
    if (lib.d.train_info[0]) {
      rc = wk_archive_read_file(path, lib.d.train_info, &lib.train_info, &lib.train_info_len, &err);
      if (rc == 0 && lib.train_info_len > WK_MAX_LIBERATOR_FILE_SIZE) {
        free(lib.train_info);
        lib.train_info = NULL;
        status = fail("%s: %s is larger than %d bytes", path, lib.d.train_info,
                      WK_MAX_LIBERATOR_FILE_SIZE);
      } else if (rc != 0) {
        status = fail("%s: %s", path, err.msg);
      }
    }
  }
  if (status == 0) {
    if (as_json)
      status = print_json(&m, has_manifest, &files, config, config_len, &lib);
    else
      print_text(path, &m, has_manifest, &files, config, config_len, &lib);
  }
  free(lib.train_info);
  free(text);
  free(config);
  wk_manifest_destroy(&m);
  for (size_t i = 0; i < files.n; i++) {
    free(files.v[i].name);
    free(files.v[i].method);
  }
  free(files.v);
  return status;
}
