/* `wick inspect`: reads a .mar/.zip, .tar.gz or model directory and prints its manifest,
 * its file list, its config file, its handler kind and the tensors of its serialized file;
 * or reads a .pt file and prints its tensors, or a .pt2 AOTInductor package and prints its
 * specs (inspect_pt2.c). Text, or one JSON object (--json). It only
 * reads: no handler, model or pickle from the archive is run (weights/pt.h). */
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
#include "archive/model_config.h"
#include "archive/pt2.h"
#include "archive/zip.h"
#include "cli/inspect_pt2.h"
#include "core/buf.h"
#include "core/limits.h"
#include "weights/pt.h"

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
  fprintf(out, "usage: wick inspect [--json] ARCHIVE|FILE.pt\n"
               "\n"
               "Shows the manifest, the files, the config file, the handler kind and the\n"
               "tensors of a model archive (.mar, .tar.gz or directory), the train info of a\n"
               "torch_liberator deployment, or the tensors of a PyTorch weights file\n"
               "(torch.save or TorchScript). Nothing in them is run.\n"
               "\n"
               "  --json      print one JSON object: {manifest, files, config, handler,\n"
               "              weights} for an archive (plus liberator and train_info for a\n"
               "              deployment), {weights} for a .pt file\n"
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

static size_t manifest_fields(const wk_manifest_t *m, mfield_t f[13]) {
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
      {"compiledWithTorch", m->compiled_with_torch},
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

/* ---- weights ---- */

/* What inspect learned about a weights file: the reader, or why it could not read it. */
typedef struct weights_s {
  const char *name; /* the file, or the archive's serializedFile */
  wk_pt_t *pt;      /* NULL when it could not be read */
  char error[sizeof(((wk_err_t *)0)->msg)];
  char *bytes; /* the file read out of an archive: pt points into it */
  wk__pt2_view_t *pt2; /* an AOTInductor package instead of weights */
} weights_t;

static void weights_destroy(weights_t *w) {
  wk_pt_close(w->pt);
  wk__pt2_view_free(w->pt2);
  free(w->bytes);
}

static void human_size(unsigned long long n, char *out, size_t len) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)n;
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(out, len, "%llu B", n);
  else
    snprintf(out, len, "%.1f %s", v, units[u]);
}

static void totals(const wk_pt_t *pt, unsigned long long *params, unsigned long long *bytes) {
  *params = *bytes = 0;
  for (size_t i = 0; i < wk_pt_count(pt); i++) {
    *params += (unsigned long long)wk_pt_tensor(pt, i)->numel;
    *bytes += wk_pt_tensor(pt, i)->nbytes;
  }
}

static json_t *weights_json(const weights_t *w) {
  json_t *o = json_object();
  json_object_set_new(o, "file", jstr(w->name));
  if (w->pt == NULL) {
    json_object_set_new(o, "error", jstr(w->error));
    return o;
  }
  const wk_pt_t *pt = w->pt;
  bool ts = wk_pt_kind(pt) == WK_PT_TORCHSCRIPT;
  json_object_set_new(o, "format", json_string(ts ? "torchscript" : "checkpoint"));
  json_object_set_new(o, "version", json_integer(wk_pt_version(pt)));
  const char *sd = wk_pt_state_dict_path(pt);
  json_object_set_new(o, "state_dict", sd ? jstr(sd) : json_null());
  json_t *arr = json_array();
  for (size_t i = 0; i < wk_pt_count(pt); i++) {
    const wk_pt_tensor_t *t = wk_pt_tensor(pt, i);
    json_t *jt = json_object(), *shape = json_array(), *strides = json_array();
    for (int d = 0; d < t->ndim; d++) {
      json_array_append_new(shape, json_integer(t->shape[d]));
      json_array_append_new(strides, json_integer(t->strides[d]));
    }
    json_object_set_new(jt, "name", jstr(t->name));
    json_object_set_new(jt, "dtype", json_string(wk_dtype_name(t->dtype)));
    json_object_set_new(jt, "shape", shape);
    json_object_set_new(jt, "strides", strides);
    json_object_set_new(jt, "offset", json_integer(t->offset));
    json_object_set_new(jt, "numel", json_integer(t->numel));
    json_object_set_new(jt, "nbytes", json_integer((json_int_t)t->nbytes));
    json_object_set_new(jt, "device", jstr(t->device));
    json_object_set_new(jt, "requires_grad", json_boolean(t->requires_grad));
    json_array_append_new(arr, jt);
  }
  json_object_set_new(o, "tensors", arr);
  unsigned long long params, bytes;
  totals(pt, &params, &bytes);
  json_object_set_new(o, "parameters", json_integer((json_int_t)params));
  json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
  json_object_set_new(o, "other_tensors",
                      json_integer((json_int_t)(wk_pt_all_count(pt) > wk_pt_count(pt)
                                                    ? wk_pt_all_count(pt) - wk_pt_count(pt)
                                                    : 0)));
  json_t *opq = json_array();
  for (size_t i = 0; i < wk_pt_opaque_count(pt); i++) {
    json_t *jo = json_object();
    json_object_set_new(jo, "path", jstr(wk_pt_opaque(pt, i)->path));
    json_object_set_new(jo, "global", jstr(wk_pt_opaque(pt, i)->global));
    json_array_append_new(opq, jo);
  }
  json_object_set_new(o, "opaque", opq);
  json_t *ent = json_array();
  for (size_t i = 0; i < wk_pt_entry_count(pt); i++) {
    json_t *je = json_object();
    json_object_set_new(je, "key", jstr(wk_pt_entry(pt, i)->key));
    json_object_set_new(je, "summary", jstr(wk_pt_entry(pt, i)->summary));
    json_array_append_new(ent, je);
  }
  json_object_set_new(o, "entries", ent);
  return o;
}

static void print_weights_text(const weights_t *w) {
  char *nm = sanitize(w->name, strlen(w->name));
  printf("weights: %s\n", nm ? nm : "?");
  free(nm);
  if (w->pt == NULL) {
    char *e = sanitize(w->error, strlen(w->error));
    printf("  not readable: %s\n", e ? e : "?");
    free(e);
    return;
  }
  const wk_pt_t *pt = w->pt;
  const char *sd = wk_pt_state_dict_path(pt);
  if (wk_pt_kind(pt) == WK_PT_TORCHSCRIPT)
    printf("format: TorchScript archive (torch.jit.save); its tensors by attribute path, "
           "constants as constants.<i>:\n");
  else
    printf("format: torch.save checkpoint (version %d); state_dict: %s\n", wk_pt_version(pt),
           sd == NULL ? "none (all tensors by path)"
           : sd[0]    ? sd
                      : "the whole file");
  size_t width = 4;
  for (size_t i = 0; i < wk_pt_count(pt); i++) {
    size_t n = strlen(wk_pt_tensor(pt, i)->name);
    if (n > width) width = n < 60 ? n : 60;
  }
  printf("  %-*s  %-8s  %-20s  %10s\n", (int)width, "name", "dtype", "shape", "size");
  for (size_t i = 0; i < wk_pt_count(pt); i++) {
    const wk_pt_tensor_t *t = wk_pt_tensor(pt, i);
    char shape[256], size[32];
    wk_shape_str(t->shape, t->ndim, shape, sizeof shape);
    human_size(t->nbytes, size, sizeof size);
    char *n = sanitize(t->name, strlen(t->name));
    printf("  %-*s  %-8s  %-20s  %10s\n", (int)width, n ? n : "?", wk_dtype_name(t->dtype), shape,
           size);
    free(n);
  }
  unsigned long long params, bytes;
  char size[32];
  totals(pt, &params, &bytes);
  human_size(bytes, size, sizeof size);
  printf("tensors: %zu, parameters: %llu, size: %s\n", wk_pt_count(pt), params, size);
  if (wk_pt_all_count(pt) > wk_pt_count(pt))
    printf("other tensors (outside the state_dict, e.g. optimizer state): %zu\n",
           wk_pt_all_count(pt) - wk_pt_count(pt));
  if (wk_pt_entry_count(pt) > 0) {
    printf("other entries of the checkpoint (read, not run):\n");
    for (size_t i = 0; i < wk_pt_entry_count(pt); i++) {
      const wk_pt_entry_t *e = wk_pt_entry(pt, i);
      char *k = sanitize(e->key, strlen(e->key));
      char *s = sanitize(e->summary, strlen(e->summary));
      printf("  %s: %s\n", k ? k : "?", s ? s : "?");
      free(k);
      free(s);
    }
  }
  if (wk_pt_opaque_count(pt) > 0) {
    printf("opaque entries (objects outside the weights-only allowlist; not built, not run):\n");
    for (size_t i = 0; i < wk_pt_opaque_count(pt); i++) {
      char *p = sanitize(wk_pt_opaque(pt, i)->path, strlen(wk_pt_opaque(pt, i)->path));
      char *g = sanitize(wk_pt_opaque(pt, i)->global, strlen(wk_pt_opaque(pt, i)->global));
      printf("  %s: %s\n", p && *p ? p : "(root)", g ? g : "?");
      free(p);
      free(g);
    }
  }
}

/* Whether path is a PyTorch weights file rather than a model archive: a zip whose first
 * entry sits in a record folder holding data.pkl (and no MAR-INF), or bytes that start
 * like a pickle (legacy torch.save; wk_pt_open explains). */
static bool is_weights_file(const char *path) {
  wk_zip_t *z;
  if (wk_zip_open(path, &z, NULL) == 0) {
    bool yes = false;
    const wk_zip_entry_t *e = wk_zip_entry(z, 0);
    const char *slash = e ? strchr(e->name, '/') : NULL;
    if (slash && wk_zip_find(z, MANIFEST_NAME) < 0) {
      char name[WK_MAX_ZIP_NAME + 16];
      snprintf(name, sizeof name, "%.*s/data.pkl", (int)(slash - e->name), e->name);
      yes = wk_zip_find(z, name) >= 0;
    }
    wk_zip_close(z);
    return yes;
  }
  FILE *f = fopen(path, "rb");
  if (f == NULL) return false;
  int c = fgetc(f);
  fclose(f);
  return c == 0x80;
}

/* Opens the archive's serialized file with the safe reader (never fails: an unreadable
 * file is reported in w->error). */
static void load_serialized(const char *path, const char *ser, weights_t *w) {
  wk_err_t err;
  size_t len;
  w->name = ser;
  int rc = wk_archive_read_file(path, ser, (size_t)WK_MAX_ENTRY_SIZE, &w->bytes, &len, &err);
  if (rc == 0 && (w->pt2 = wk__pt2_view(ser, w->bytes, len)) != NULL) return;
  if (rc == 0) rc = wk_pt_open_mem(w->bytes, len, 0, &w->pt, &err);
  if (rc != 0) snprintf(w->error, sizeof w->error, "%s", err.msg);
}

/* Native or Python, as wk_model_load decides (serve/model.c). */
static bool handler_is_native(const wk_manifest_t *m, const char *runtime, const weights_t *w) {
  const char *h = m->handler;
  bool builtin = h == NULL || *h == '\0' || strcmp(h, "tensor") == 0 ||
                 strcmp(h, "base_handler") == 0 || strcmp(h, "image_classifier") == 0;
  if (runtime && strcmp(runtime, "python") == 0) return false;
  if (!builtin || m->serialized_file == NULL) return false;
  if (runtime && strcmp(runtime, "native") == 0) return true;
  return m->model_file == NULL &&
         (w->pt2 != NULL || (w->pt && wk_pt_kind(w->pt) == WK_PT_TORCHSCRIPT));
}

static const char *handler_warning(const wk_manifest_t *m) {
  return m->handler && strstr(m->handler, ".py")
             ? "the handler is Python code from this archive: it runs, with the server's "
               "rights, when the model is served. inspect ran nothing."
             : "the model runs in Python worker processes (wick's built-in Python handler "
               "and any code the archive ships): it runs when the model is served. inspect "
               "ran nothing.";
}

static int print_json(const wk_manifest_t *m, bool has_manifest, const items_t *files,
                      const char *config, size_t config_len, int native, const weights_t *w,
                      const lib_t *lib) {
  json_t *root = json_object(), *jm = has_manifest ? json_object() : json_null();
  json_t *jf = json_array();
  mfield_t f[13];
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
  if (native >= 0) {
    json_t *jh = json_object();
    json_object_set_new(jh, "name", jstr(m->handler ? m->handler : ""));
    json_object_set_new(jh, "kind", json_string(native ? "native" : "python"));
    if (!native) json_object_set_new(jh, "warning", json_string(handler_warning(m)));
    json_object_set_new(root, "handler", jh);
  }
  json_object_set_new(root, "weights",
                      w && w->name && !w->pt2 ? weights_json(w) : json_null());
  if (w && w->pt2) json_object_set_new(root, "aotinductor", wk__pt2_json(w->pt2));
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
                       const items_t *files, const char *config, size_t config_len, int native,
                       const weights_t *w, const lib_t *lib) {
  printf("archive: %s\n", path);
  if (has_manifest) {
    printf("manifest:\n");
    mfield_t f[13];
    size_t nf = manifest_fields(m, f);
    for (size_t i = 0; i < nf; i++) {
      char *v = sanitize(f[i].val, strlen(f[i].val));
      printf("  %-17s %s\n", f[i].key, v ? v : "?");
      free(v);
    }
    if (native == 1 && w && w->pt2)
      printf("handler kind: native (runs in C and libtorch, and the package's compiled "
             "library; no Python)\n");
    else if (native == 1)
      printf("handler kind: native (runs in C and libtorch; no Python)\n");
    else if (native == 0)
      printf("handler kind: Python\n  warning: %s\n", handler_warning(m));
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
    printf("config (%s):\n", m->config_file);
    print_indented(config, config_len);
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
  if (w && w->pt2)
    wk__pt2_print(w->pt2);
  else if (w && w->name)
    print_weights_text(w);
}

static int inspect_weights(const char *path, bool as_json) {
  weights_t w = {.name = path};
  wk_err_t err;
  if (wk_pt_open(path, 0, &w.pt, &err) != 0) return fail("%s", err.msg);
  int status = 0;
  if (as_json) {
    json_t *root = json_object();
    json_object_set_new(root, "weights", weights_json(&w));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (text == NULL)
      status = fail("out of memory");
    else
      puts(text);
    free(text);
  } else {
    print_weights_text(&w);
  }
  weights_destroy(&w);
  return status;
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
  if (wk_pt2_check(path, NULL) != 0) return wk__inspect_pt2_file(path, as_json);
  if (is_weights_file(path)) return inspect_weights(path, as_json);
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
  rc = wk_archive_read_file(path, MANIFEST_NAME, WK_MAX_MANIFEST_SIZE, &text, &len, &err);
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
    rc = wk_archive_read_file(path, m.config_file, WK_MAX_CONFIG_FILE_SIZE, &config, &config_len, &err);
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
      rc = wk_archive_read_file(path, lib.d.train_info, WK_MAX_CONFIG_FILE_SIZE, &lib.train_info,
                                &lib.train_info_len, &err);
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
  weights_t w = {0};
  int native = -1;
  if (status == 0 && has_manifest) {
    wk_model_config_t mc;
    wk_model_config_init(&mc);
    if (config) (void)wk_model_config_parse(config, config_len, &mc, NULL);
    if (m.serialized_file) load_serialized(path, m.serialized_file, &w);
    native = handler_is_native(&m, mc.wick_runtime, &w);
    wk_model_config_destroy(&mc);
  }
  if (status == 0) {
    if (as_json)
      status = print_json(&m, has_manifest, &files, config, config_len, native, &w, &lib);
    else
      print_text(path, &m, has_manifest, &files, config, config_len, native, &w, &lib);
  }
  weights_destroy(&w);
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
