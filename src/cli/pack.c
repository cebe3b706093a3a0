/* `wick pack`: torch-model-archiver's command line. Collects the named files (at the
 * archive root by basename; --extra-files directories by their content, recursively),
 * writes MAR-INF/MANIFEST.json and the archive. It never runs the files it packs. */
#include "cli/pack.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/liberator.h"
#include "archive/manifest.h"
#include "archive/tar.h"
#include "archive/zip.h"
#include "cli/pack_aot.h"
#include "core/buf.h"
#include "core/fs.h"
#include "core/limits.h"

#define MANIFEST_NAME "MAR-INF/MANIFEST.json"
#define PATH_BUF 4096
#define DEPTH_MAX 32

typedef struct opts_s {
  const char *model_name, *version, *serialized_file, *model_file, *handler, *extra_files;
  const char *requirements_file, *config_file, *export_path, *archive_format, *runtime;
  const char *v1_model_class, *liberator_zip, *example_inputs;
  bool force, help, v1_no_load, aot_compile;
} opts_t;

typedef struct pfile_s {
  char *arc; /* name inside the archive */
  char *src; /* path on disk */
  dev_t dev;
  ino_t ino;
} pfile_t;

typedef struct plist_s {
  pfile_t *f;
  size_t n, cap;
} plist_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: wick pack --model-name NAME [options]\n"
          "\n"
          "Builds a model archive, as torch-model-archiver does.\n"
          "\n"
          "  --model-name NAME         archive and model name ([A-Za-z0-9_.-]; required,\n"
          "                            except with --liberator-zip)\n"
          "  -v, --version VERSION     model version\n"
          "  --serialized-file PATH    weights or TorchScript file (.pt, .pth, ...), or an\n"
          "                            AOTInductor package (.pt2)\n"
          "  --aot-compile             the serialized file is a torch.export.save'd\n"
          "                            ExportedProgram: compile it into an AOTInductor\n"
          "                            package with the venv's torch (WICK_PYTHON overrides\n"
          "                            the interpreter), dimension 0 dynamic up to the\n"
          "                            config's batchSize, and pack that instead\n"
          "  --example-inputs PATH     with --aot-compile: a tensor or a tuple of tensors\n"
          "                            (torch.save) to export with; default: the program's\n"
          "                            saved sample inputs\n"
          "  --model-file PATH         Python file defining the model class\n"
          "  --handler NAME|PATH       built-in handler name, or a handler .py file\n"
          "                            (PATH:function keeps the function name)\n"
          "  --extra-files A,B,...     more files; directories are added with their content\n"
          "  -r, --requirements-file PATH\n"
          "  -c, --config-file PATH    model-config.yaml\n"
          "  --runtime RUNTIME         runtime written in the manifest (default python)\n"
          "  --v1-model-class MOD.CLS  a V1 adapter archive (handler v1_adapter): the\n"
          "                            serialized file is MODEL_PATH (*weights.pt|pth: a\n"
          "                            state_dict for MOD.CLS(); other .pt|.pth: a whole\n"
          "                            model), MOD.CLS is MODEL_CLASS; give its script with\n"
          "                            --model-file or --extra-files\n"
          "  --v1-no-load              MODEL_CLASS loads its own model (handler v1_noload;\n"
          "                            built with the serialized file's path if it takes one)\n"
          "  --liberator-zip ZIP       pack a torch_liberator deploy zip (deploy_snapshot.pt,\n"
          "                            the liberated model .py, train_info.json) to be served\n"
          "                            by the liberator handler; the model name defaults to\n"
          "                            the zip's folder\n"
          "  --export-path DIR         where the archive goes (default .)\n"
          "  --archive-format FORMAT   default (deflated <name>.mar), zip-store (stored\n"
          "                            <name>.mar), tgz (<name>.tar.gz), no-archive\n"
          "                            (directory <name>/)\n"
          "  -f, --force               overwrite an existing archive\n"
          "  -h, --help                this help\n");
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("wick pack: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 1;
}

static int parse_args(int argc, char **argv, opts_t *o) {
  static const struct {
    const char *lng, *shrt;
    size_t off;
  } table[] = {
      {"--model-name", NULL, offsetof(opts_t, model_name)},
      {"--version", "-v", offsetof(opts_t, version)},
      {"--serialized-file", NULL, offsetof(opts_t, serialized_file)},
      {"--model-file", NULL, offsetof(opts_t, model_file)},
      {"--handler", NULL, offsetof(opts_t, handler)},
      {"--extra-files", NULL, offsetof(opts_t, extra_files)},
      {"--requirements-file", "-r", offsetof(opts_t, requirements_file)},
      {"--config-file", "-c", offsetof(opts_t, config_file)},
      {"--export-path", NULL, offsetof(opts_t, export_path)},
      {"--archive-format", NULL, offsetof(opts_t, archive_format)},
      {"--runtime", NULL, offsetof(opts_t, runtime)},
      {"--v1-model-class", NULL, offsetof(opts_t, v1_model_class)},
      {"--liberator-zip", NULL, offsetof(opts_t, liberator_zip)},
      {"--example-inputs", NULL, offsetof(opts_t, example_inputs)},
  };
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-f") == 0 || strcmp(a, "--force") == 0) {
      o->force = true;
      continue;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      o->help = true;
      continue;
    }
    if (strcmp(a, "--v1-no-load") == 0) {
      o->v1_no_load = true;
      continue;
    }
    if (strcmp(a, "--aot-compile") == 0) {
      o->aot_compile = true;
      continue;
    }
    const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    size_t klen = eq ? (size_t)(eq - a) : strlen(a);
    size_t k = 0, nt = sizeof table / sizeof table[0];
    for (; k < nt; k++)
      if ((strlen(table[k].lng) == klen && strncmp(a, table[k].lng, klen) == 0) ||
          (!eq && table[k].shrt && strcmp(a, table[k].shrt) == 0))
        break;
    if (k == nt) return fail("unknown option '%s' (see wick pack --help)", a);
    const char *val;
    if (eq) {
      val = eq + 1;
    } else {
      if (i + 1 >= argc) return fail("option %s needs a value", a);
      val = argv[++i];
    }
    *(const char **)((char *)o + table[k].off) = val;
  }
  return 0;
}

static const char *base_name(const char *path) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/')
    n--;
  const char *s = path + n;
  while (s > path && s[-1] != '/')
    s--;
  return s;
}

static void plist_free(plist_t *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->f[i].arc);
    free(l->f[i].src);
  }
  free(l->f);
}

/* Adds src as arc; the same file twice under one name is kept once, two different files
 * under one name are an error. */
static int plist_add(plist_t *l, const char *arc, size_t arc_len, const char *src,
                     const struct stat *st) {
  char *a = strndup(arc, arc_len);
  if (a == NULL) return fail("out of memory");
  wk_err_t err;
  if (wk_archive_check_name(a, strlen(a), &err) != 0) {
    free(a);
    return fail("%s", err.msg);
  }
  if (strcmp(a, MANIFEST_NAME) == 0) {
    free(a);
    return fail("%s would replace the archive's own %s", src, MANIFEST_NAME);
  }
  for (size_t i = 0; i < l->n; i++) {
    if (strcmp(l->f[i].arc, a) != 0) continue;
    bool same = l->f[i].dev == st->st_dev && l->f[i].ino == st->st_ino;
    free(a);
    if (same) return 0;
    return fail("both %s and %s would be stored as '%s' in the archive", l->f[i].src, src,
                l->f[i].arc);
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    pfile_t *p = realloc(l->f, cap * sizeof *p);
    if (p == NULL) {
      free(a);
      return fail("out of memory");
    }
    l->f = p;
    l->cap = cap;
  }
  char *s = strdup(src);
  if (s == NULL) {
    free(a);
    return fail("out of memory");
  }
  l->f[l->n++] = (pfile_t){a, s, st->st_dev, st->st_ino};
  return 0;
}

/* A named input file: must exist and be a regular file; added by basename. */
static int add_named(plist_t *l, const char *what, const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return fail("%s %s does not exist", what, path);
  if (!S_ISREG(st.st_mode)) return fail("%s %s is not a regular file", what, path);
  const char *b = base_name(path);
  return plist_add(l, b, strlen(b), path, &st);
}

/* Adds the content of directory root/rel recursively, keeping the layout under root. */
static int add_tree(plist_t *l, const char *root, const char *rel, int depth) {
  char dir[PATH_BUF];
  int n = rel[0] ? snprintf(dir, sizeof dir, "%s/%s", root, rel)
                 : snprintf(dir, sizeof dir, "%s", root);
  if (n < 0 || (size_t)n >= sizeof dir) return fail("path too long under %s", root);
  if (depth > DEPTH_MAX) return fail("%s: directories nested deeper than %d", dir, DEPTH_MAX);
  DIR *d = opendir(dir);
  if (d == NULL) return fail("cannot list %s: %s", dir, strerror(errno));
  /* sorted, so that archives come out the same every time */
  char **names = NULL;
  size_t cnt = 0, cap = 0;
  struct dirent *de;
  int rc = 0;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (cnt == cap) {
      cap = cap ? cap * 2 : 16;
      char **p = realloc(names, cap * sizeof *p);
      if (p == NULL) {
        rc = fail("out of memory");
        break;
      }
      names = p;
    }
    if ((names[cnt] = strdup(de->d_name)) == NULL) {
      rc = fail("out of memory");
      break;
    }
    cnt++;
  }
  closedir(d);
  for (size_t i = 1; i < cnt; i++)
    for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      char *t = names[j];
      names[j] = names[j - 1];
      names[j - 1] = t;
    }
  for (size_t i = 0; i < cnt && rc == 0; i++) {
    char sub[PATH_BUF], full[PATH_BUF];
    int a = rel[0] ? snprintf(sub, sizeof sub, "%s/%s", rel, names[i])
                   : snprintf(sub, sizeof sub, "%s", names[i]);
    int b = snprintf(full, sizeof full, "%s/%s", root, sub);
    if (a < 0 || (size_t)a >= sizeof sub || b < 0 || (size_t)b >= sizeof full) {
      rc = fail("path too long under %s", root);
      break;
    }
    struct stat st;
    if (stat(full, &st) != 0) continue; /* dangling link */
    if (S_ISDIR(st.st_mode))
      rc = add_tree(l, root, sub, depth + 1);
    else if (S_ISREG(st.st_mode))
      rc = plist_add(l, sub, strlen(sub), full, &st);
  }
  for (size_t i = 0; i < cnt; i++)
    free(names[i]);
  free(names);
  return rc;
}

/* --extra-files: comma-separated files and directories. Records the names for the
 * manifest's extraFiles into names. */
static int add_extra(plist_t *l, const char *list, wk_buf_t *names) {
  const char *p = list;
  while (*p) {
    const char *q = strchr(p, ',');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    while (n > 0 && (*p == ' ' || *p == '\t'))
      p++, n--;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
      n--;
    if (n > 0) {
      char path[PATH_BUF];
      if (n >= sizeof path) return fail("extra file path too long");
      memcpy(path, p, n);
      path[n] = '\0';
      struct stat st;
      if (stat(path, &st) != 0) return fail("extra file %s does not exist", path);
      int rc = S_ISDIR(st.st_mode) ? add_tree(l, path, "", 0) : add_named(l, "extra file", path);
      if (rc) return rc;
      if ((names->len && wk_buf_putc(names, ',') != 0) || wk_buf_puts(names, base_name(path)) != 0)
        return fail("out of memory");
    }
    p += n;
    while (*p && *p != ',')
      p++;
    if (*p == ',') p++;
  }
  return 0;
}

/* The handler names a worker knows without a file: wick's native handlers and the Python
 * built-ins of python/wick_worker/loader.py (BUILTINS; keep the two lists in step). */
static const char *const builtin_handlers[] = {
    "tensor",          "base_handler",    "image_classifier", "object_detector", "image_segmenter",
    "text_classifier", "v1_adapter",      "v1_noload",        "liberator",
};

static bool is_builtin_handler(const char *h, size_t n) {
  for (size_t i = 0; i < sizeof builtin_handlers / sizeof *builtin_handlers; i++)
    if (strlen(builtin_handlers[i]) == n && strncmp(builtin_handlers[i], h, n) == 0) return true;
  return false;
}

/* 1 if one of the comma-separated extra files is called name (a handler module shipped
 * among them). */
static bool among_extras(const char *extras, const char *name) {
  for (const char *p = extras; p && *p;) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char one[PATH_BUF];
    if (n < sizeof one) {
      memcpy(one, p, n);
      one[n] = '\0';
      if (strcmp(base_name(one), name) == 0) return true;
    }
    p = e ? e + 1 : p + n;
  }
  return false;
}

/* --handler, resolved as torch-model-archiver does: a file ("path/h.py", optionally with
 * ":function"), or a name that is a file once ".py" is added ("handler" -> ./handler.py),
 * is packed and stored by basename; a built-in handler name, or a module shipped in
 * --extra-files, is stored as is. Anything else fails here rather than at load. *stored is
 * malloc'd. */
static int add_handler(plist_t *l, const char *h, const char *extras, char **stored) {
  struct stat st;
  const char *colon = strrchr(h, ':');
  size_t n = colon && colon > h ? (size_t)(colon - h) : strlen(h); /* the module part */
  const char *fn = colon && colon > h ? colon + 1 : NULL;
  char file[PATH_BUF];
  file[0] = '\0';
  if (stat(h, &st) == 0 && S_ISREG(st.st_mode)) {
    snprintf(file, sizeof file, "%s", h);
    fn = NULL;
  } else if (n + 4 < sizeof file) {
    memcpy(file, h, n);
    file[n] = '\0';
    if (stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
      /* "handler" or "handler:fn" -> handler.py */
      bool has_py = n > 3 && strncmp(h + n - 3, ".py", 3) == 0;
      if (!has_py) memcpy(file + n, ".py", 4);
      if (has_py || stat(file, &st) != 0 || !S_ISREG(st.st_mode)) file[0] = '\0';
    }
  }
  if (file[0] == '\0') {
    char module_py[PATH_BUF];
    snprintf(module_py, sizeof module_py, "%.*s.py", (int)n, h);
    if (strchr(h, '/') || (n > 3 && strncmp(h + n - 3, ".py", 3) == 0))
      return fail("handler file %.*s does not exist", (int)n, h);
    if (!is_builtin_handler(h, n) && !among_extras(extras, module_py)) {
      wk_buf_t names = WK_BUF_INIT;
      for (size_t i = 0; i < sizeof builtin_handlers / sizeof *builtin_handlers; i++)
        wk_buf_printf(&names, "%s%s", i ? ", " : "", builtin_handlers[i]);
      int rc = fail("--handler %s: no file %.*s or %s here, no %s among --extra-files, and "
                    "not a built-in handler (%s)",
                    h, (int)n, h, module_py, module_py, names.data ? names.data : "");
      wk_buf_destroy(&names);
      return rc;
    }
    *stored = strdup(h);
    return *stored ? 0 : fail("out of memory");
  }
  int rc = add_named(l, "handler", file);
  if (rc) return rc;
  wk_buf_t b = WK_BUF_INIT;
  if (wk_buf_puts(&b, base_name(file)) != 0 || (fn && wk_buf_printf(&b, ":%s", fn) != 0)) {
    wk_buf_destroy(&b);
    return fail("out of memory");
  }
  *stored = wk_buf_steal(&b, NULL);
  return 0;
}

static bool valid_model_name(const char *s) {
  if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
    return false;
  for (; *s; s++)
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
          *s == '_' || *s == '.' || *s == '-'))
      return false;
  return true;
}

static int copy_file(const char *src, const char *dst) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) return fail("cannot read %s: %s", src, strerror(errno));
  int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    close(in);
    return fail("cannot create %s: %s", dst, strerror(errno));
  }
  char buf[64 * 1024];
  int rc = 0;
  for (;;) {
    ssize_t r = read(in, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      rc = fail("reading %s failed: %s", src, strerror(errno));
      break;
    }
    if (r == 0) break;
    for (ssize_t off = 0; off < r;) {
      ssize_t w = write(out, buf + off, (size_t)(r - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        rc = fail("writing %s failed: %s", dst, strerror(errno));
        break;
      }
      off += w;
    }
    if (rc) break;
  }
  close(in);
  if (close(out) != 0 && rc == 0) rc = fail("writing %s failed: %s", dst, strerror(errno));
  return rc;
}

static int write_dir(const char *out, const plist_t *l, const wk_buf_t *manifest) {
  wk_err_t err;
  if (wk_fs_mkdirs(out, &err) != 0) return fail("%s", err.msg);
  char path[PATH_BUF];
  for (size_t i = 0; i <= l->n; i++) {
    const char *arc = i < l->n ? l->f[i].arc : MANIFEST_NAME;
    if (wk_fs_join(path, sizeof path, out, arc) != 0) return fail("path too long: %s", arc);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    if (wk_fs_mkdirs(path, &err) != 0) return fail("%s", err.msg);
    *slash = '/';
    if (i < l->n) {
      if (copy_file(l->f[i].src, path) != 0) return 1;
      continue;
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(manifest->data, 1, manifest->len, f) != manifest->len) {
      if (f) fclose(f);
      return fail("cannot write %s", path);
    }
    if (fclose(f) != 0) return fail("cannot write %s", path);
  }
  return 0;
}

static int write_zip(const char *tmp, const plist_t *l, const wk_buf_t *manifest, int method) {
  wk_zip_writer_t *w;
  wk_err_t err;
  if (wk_zip_writer_open(tmp, &w, &err) != 0) return fail("%s", err.msg);
  int rc = wk_zip_writer_add(w, MANIFEST_NAME, manifest->data, manifest->len, method, &err);
  for (size_t i = 0; i < l->n && rc == 0; i++)
    rc = wk_zip_writer_add_file(w, l->f[i].arc, l->f[i].src, method, &err);
  if (rc) {
    wk_zip_writer_discard(w);
    return fail("%s", err.msg);
  }
  return wk_zip_writer_close(w, &err) == 0 ? 0 : fail("%s", err.msg);
}

/* Adds "<top>/<parents of arc>/" directory entries not added yet (dirs holds the added
 * ones, each as "\n<dir>\n"). */
static int tgz_parents(wk_tar_writer_t *w, const char *top, const char *arc, wk_buf_t *dirs,
                       wk_err_t *err) {
  for (const char *s = strchr(arc, '/'); s; s = strchr(s + 1, '/')) {
    char d[PATH_BUF];
    int n = snprintf(d, sizeof d, "%s/%.*s/", top, (int)(s - arc), arc);
    if (n < 0 || (size_t)n >= sizeof d) return wk_err(err, WK_ETOOBIG, "path too long");
    char key[PATH_BUF + 2];
    snprintf(key, sizeof key, "\n%s\n", d);
    if (dirs->data && strstr(dirs->data, key)) continue;
    if (wk_buf_puts(dirs, key) != 0) return wk_err(err, WK_ENOMEM, "out of memory");
    int rc = wk_tar_writer_add_dir(w, d, err);
    if (rc) return rc;
  }
  return 0;
}

static int write_tgz(const char *tmp, const char *top, const plist_t *l, const wk_buf_t *manifest) {
  wk_tar_writer_t *w;
  wk_err_t err;
  if (wk_tar_writer_open(tmp, &w, &err) != 0) return fail("%s", err.msg);
  wk_buf_t dirs = WK_BUF_INIT;
  char name[PATH_BUF];
  int rc = wk_tar_writer_add_dir(w, top, &err);
  rc = rc ? rc : tgz_parents(w, top, MANIFEST_NAME, &dirs, &err);
  snprintf(name, sizeof name, "%s/%s", top, MANIFEST_NAME);
  rc = rc ? rc : wk_tar_writer_add(w, name, manifest->data, manifest->len, &err);
  for (size_t i = 0; i < l->n && rc == 0; i++) {
    rc = tgz_parents(w, top, l->f[i].arc, &dirs, &err);
    if (rc == 0 && (size_t)snprintf(name, sizeof name, "%s/%s", top, l->f[i].arc) >= sizeof name)
      rc = wk_err(&err, WK_ETOOBIG, "path too long: %s", l->f[i].arc);
    rc = rc ? rc : wk_tar_writer_add_file(w, name, l->f[i].src, &err);
  }
  wk_buf_destroy(&dirs);
  if (rc) {
    wk_tar_writer_discard(w);
    return fail("%s", err.msg);
  }
  return wk_tar_writer_close(w, &err) == 0 ? 0 : fail("%s", err.msg);
}

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

static bool is_weights_name(const char *path) {
  const char *b = base_name(path);
  size_t n = strlen(b);
  return (n >= 10 && strcasecmp(b + n - 10, "weights.pt") == 0) ||
         (n >= 11 && strcasecmp(b + n - 11, "weights.pth") == 0);
}

/* The V1 adapter flags: checks them against each other and picks the handler (unless
 * --handler names one). */
static int v1_options(const opts_t *o, const char **handler) {
  const char *mc = o->v1_model_class;
  if (o->v1_no_load && mc == NULL)
    return fail("--v1-no-load needs --v1-model-class (the wrapper class that loads the model)");
  if (mc) {
    const char *dot = strrchr(mc, '.');
    if (dot == NULL || dot == mc || dot[1] == '\0')
      return fail("--v1-model-class '%s': expected module.Class (e.g. autoencoder.AutoEncoder)",
                  mc);
    if (*handler == NULL) *handler = o->v1_no_load ? "v1_noload" : "v1_adapter";
  }
  if (*handler && strcmp(*handler, "v1_adapter") == 0) {
    if (o->serialized_file == NULL)
      return fail("the v1_adapter handler needs --serialized-file (MODEL_PATH, a .pt or .pth)");
    if (is_weights_name(o->serialized_file) && mc == NULL)
      return fail("%s holds weights (it ends in weights.pt/.pth): give the class to load them "
                  "into with --v1-model-class module.Class",
                  o->serialized_file);
  }
  return 0;
}

/* --liberator-zip: unpacks the deployment into tmp and adds its folder's files at the
 * archive root. Sets *ser and *model_py (entry names, malloc'd) and adds train_info.json
 * to the extra files' names. *name_out gets the folder name (malloc'd) for a default
 * model name. */
static int add_liberator(plist_t *l, const char *zip, char *tmp, size_t tmplen, char **ser,
                         char **model_py, char **name_out, wk_buf_t *extra) {
  wk_err_t err;
  wk_liberator_t d;
  int rc = wk_liberator_find(zip, &d, &err);
  if (rc) return fail("--liberator-zip %s", err.msg);
  if (wk_fs_mkdtemp("pack", tmp, tmplen, &err) != 0) return fail("%s", err.msg);
  if (wk_archive_unpack(zip, tmp, &err) != 0) return fail("%s", err.msg);
  char dir[PATH_BUF];
  if (d.folder[0] ? wk_fs_join(dir, sizeof dir, tmp, d.folder) != 0
                  : (size_t)snprintf(dir, sizeof dir, "%s", tmp) >= sizeof dir)
    return fail("path too long under %s", tmp);
  if (!wk_fs_is_dir(dir)) snprintf(dir, sizeof dir, "%s", tmp); /* a tgz loses its top folder */
  if ((rc = add_tree(l, dir, "", 0)) != 0) return rc;
  *ser = strdup(base_name(d.snapshot));
  *model_py = strdup(base_name(d.model_py));
  *name_out = strdup(d.folder[0] ? d.folder : "");
  if (*ser == NULL || *model_py == NULL || *name_out == NULL) return fail("out of memory");
  if (d.train_info[0] && ((extra->len && wk_buf_putc(extra, ',') != 0) ||
                          wk_buf_puts(extra, WK_LIBERATOR_TRAIN_INFO) != 0))
    return fail("out of memory");
  return 0;
}

/* The rest of wk_cmd_pack, once the V1 and liberator options are settled: the named
 * files, the manifest and the archive. lib_ser/lib_py name the liberator files already in
 * l (NULL otherwise). */
static int pack_rest(const opts_t *po, const char *handler_opt, plist_t *pl, wk_buf_t *pextra,
                     wk_buf_t *pjson, const char *lib_ser, const char *lib_py,
                     const char *compiled_with) {
  const opts_t o = *po;
  plist_t l = *pl;
  wk_buf_t extra = *pextra, json = *pjson;
  if (o.model_name == NULL) return fail("--model-name is required (see wick pack --help)");
  if (!valid_model_name(o.model_name))
    return fail("model name '%s' is not valid: use letters, digits, '_', '.' and '-', "
                "starting with a letter or digit",
                o.model_name);
  const char *fmt = o.archive_format;
  bool is_zip = strcmp(fmt, "default") == 0 || strcmp(fmt, "zip-store") == 0;
  if (!is_zip && strcmp(fmt, "tgz") != 0 && strcmp(fmt, "no-archive") != 0)
    return fail("--archive-format '%s' is not one of default, zip-store, tgz, no-archive", fmt);
  if (!wk_fs_is_dir(o.export_path)) {
    wk_err_t err;
    if (wk_fs_exists(o.export_path))
      return fail("export path %s is not a directory", o.export_path);
    if (wk_fs_mkdirs(o.export_path, &err) != 0) return fail("%s", err.msg);
  }
  char out[PATH_BUF], tmp[PATH_BUF + 32];
  const char *ext = is_zip ? ".mar" : strcmp(fmt, "tgz") == 0 ? ".tar.gz" : "";
  int n = snprintf(out, sizeof out, "%s/%s%s", o.export_path, o.model_name, ext);
  if (n < 0 || (size_t)n >= sizeof out) return fail("export path too long");
  snprintf(tmp, sizeof tmp, "%s.tmp-%d", out, (int)getpid());

  char *handler = NULL;
  int rc = 0;
  if (o.serialized_file) rc = add_named(&l, "serialized file", o.serialized_file);
  if (rc == 0 && o.model_file) rc = add_named(&l, "model file", o.model_file);
  if (rc == 0 && handler_opt) rc = add_handler(&l, handler_opt, o.extra_files, &handler);
  if (rc == 0 && o.requirements_file) rc = add_named(&l, "requirements file", o.requirements_file);
  if (rc == 0 && o.config_file) rc = add_named(&l, "config file", o.config_file);
  if (rc == 0 && o.extra_files) rc = add_extra(&l, o.extra_files, &extra);
  if (rc == 0 && wk_fs_exists(out) && !o.force)
    rc = fail("%s already exists; use -f to overwrite it", out);

  if (rc == 0) {
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(created, sizeof created, "%d/%m/%Y %H:%M:%S", &tm);
    wk_manifest_t m;
    wk_manifest_init(&m);
    m.runtime = dup_or_null(o.runtime);
    m.model_name = dup_or_null(o.model_name);
    m.model_version = dup_or_null(o.version);
    m.serialized_file = dup_or_null(lib_ser             ? lib_ser
                                    : o.serialized_file ? base_name(o.serialized_file)
                                                        : NULL);
    m.handler = handler;
    handler = NULL;
    m.model_file = dup_or_null(lib_py ? lib_py : o.model_file ? base_name(o.model_file) : NULL);
    m.model_class = dup_or_null(o.v1_model_class);
    m.compiled_with_torch = dup_or_null(compiled_with);
    m.extra_files = dup_or_null(extra.len ? extra.data : NULL);
    m.requirements_file = dup_or_null(o.requirements_file ? base_name(o.requirements_file) : NULL);
    m.config_file = dup_or_null(o.config_file ? base_name(o.config_file) : NULL);
    m.archiver_version = strdup("wick-" WK_VERSION);
    m.created_on = strdup(created);
    if (m.runtime == NULL || m.model_name == NULL || m.archiver_version == NULL ||
        m.created_on == NULL || wk_manifest_write(&m, &json) != 0)
      rc = fail("out of memory writing the manifest");
    wk_manifest_destroy(&m);
  }

  if (rc == 0) {
    if (strcmp(fmt, "no-archive") == 0) {
      if (wk_fs_exists(out)) wk_fs_rmtree(out);
      if (wk_fs_exists(out)) rc = fail("cannot remove the existing %s", out);
      rc = rc ? rc : write_dir(out, &l, &json);
    } else {
      rc = strcmp(fmt, "tgz") == 0
               ? write_tgz(tmp, o.model_name, &l, &json)
               : write_zip(tmp, &l, &json,
                           strcmp(fmt, "zip-store") == 0 ? WK_ZIP_STORED : WK_ZIP_DEFLATED);
      if (rc == 0 && rename(tmp, out) != 0) {
        rc = fail("cannot move the archive to %s: %s", out, strerror(errno));
        unlink(tmp);
      }
    }
  }
  free(handler);
  /* the caller frees the list and buffers (they may have grown) */
  *pl = l;
  *pextra = extra;
  *pjson = json;
  return rc ? 1 : 0;
}

int wk_cmd_pack(int argc, char **argv) {
  opts_t o = {0};
  o.export_path = ".";
  o.archive_format = "default";
  o.runtime = "python";
  if (parse_args(argc, argv, &o) != 0) return 1;
  if (o.help) {
    usage(stdout);
    return 0;
  }
  if (o.liberator_zip && (o.serialized_file || o.model_file))
    return fail("--liberator-zip gives the serialized file and the model file; drop "
                "--serialized-file and --model-file");
  if (o.liberator_zip && o.v1_model_class)
    return fail("--liberator-zip and --v1-model-class are two different kinds of archive");
  const char *v1_handler = o.handler;
  if (v1_options(&o, &v1_handler) != 0) return 1;
  char lib_tmp[PATH_BUF] = "";
  char *lib_ser = NULL, *lib_py = NULL, *lib_name = NULL;
  plist_t l = {NULL, 0, 0};
  wk_buf_t extra = WK_BUF_INIT, json = WK_BUF_INIT;
  wk__aot_t aot = {0};
  int rc = 0;
  if (o.liberator_zip) {
    if (v1_handler == NULL) v1_handler = "liberator";
    rc = add_liberator(&l, o.liberator_zip, lib_tmp, sizeof lib_tmp, &lib_ser, &lib_py, &lib_name,
                       &extra);
    if (rc == 0 && o.model_name == NULL) {
      if (lib_name[0] == '\0' || !valid_model_name(lib_name))
        rc = fail("the deployment's folder '%s' is not a valid model name; give --model-name",
                  lib_name);
      else
        o.model_name = lib_name;
    }
    if (rc) goto done;
  }
  if (o.example_inputs && !o.aot_compile) {
    rc = fail("--example-inputs goes with --aot-compile");
    goto done;
  }
  if (o.aot_compile) {
    wk_err_t err;
    if (o.serialized_file == NULL || o.liberator_zip || o.model_file) {
      rc = fail("--aot-compile needs --serialized-file (a torch.export.save'd program) and no "
                "--model-file or --liberator-zip");
      goto done;
    }
    if (wk__aot_compile(o.serialized_file, o.example_inputs, o.config_file, &aot, &err) != 0) {
      rc = fail("%s", err.msg);
      goto done;
    }
    o.serialized_file = aot.package;
  }
  rc = pack_rest(&o, v1_handler, &l, &extra, &json, lib_ser, lib_py,
                 aot.torch_version[0] ? aot.torch_version : NULL);
done:
  wk__aot_done(&aot);
  if (lib_tmp[0]) wk_fs_rmtree(lib_tmp);
  free(lib_ser);
  free(lib_py);
  free(lib_name);
  plist_free(&l);
  wk_buf_destroy(&extra);
  wk_buf_destroy(&json);
  return rc ? 1 : 0;
}
