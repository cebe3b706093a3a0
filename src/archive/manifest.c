/* MAR-INF/MANIFEST.json reader and writer (jansson). Checks sizes and types and says
 * which field or which line/column is wrong; it does not look at the files it names. */
#include "archive/manifest.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

/* Where one string field lives: "model" (NULL for top level), its key, its slot. */
typedef struct {
  const char *section;
  const char *key;
  size_t offset;
} field_t;

#define FIELD(sec, key, member)                                                                    \
  { sec, key, offsetof(wk_manifest_t, member) }

/* torch-model-archiver's order, which the writer keeps. */
static const field_t top_fields[] = {
    FIELD(NULL, "createdOn", created_on),
    FIELD(NULL, "runtime", runtime),
};
static const field_t model_fields[] = {
    FIELD("model", "modelName", model_name),
    FIELD("model", "serializedFile", serialized_file),
    FIELD("model", "handler", handler),
    FIELD("model", "modelVersion", model_version),
    FIELD("model", "modelFile", model_file),
    FIELD("model", "extraFiles", extra_files),
    FIELD("model", "requirementsFile", requirements_file),
    FIELD("model", "configFile", config_file),
    FIELD("model", "modelClass", model_class),
    FIELD("model", "compiledWithTorch", compiled_with_torch),
};
static const field_t tail_fields[] = {
    FIELD(NULL, "archiverVersion", archiver_version),
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static char **slot(wk_manifest_t *m, const field_t *f) {
  return (char **)(void *)((char *)m + f->offset);
}

static char *const *cslot(const wk_manifest_t *m, const field_t *f) {
  return (char *const *)(const void *)((const char *)m + f->offset);
}

void wk_manifest_init(wk_manifest_t *m) {
  memset(m, 0, sizeof *m);
}

void wk_manifest_destroy(wk_manifest_t *m) {
  free(m->runtime);
  free(m->model_name);
  free(m->model_version);
  free(m->serialized_file);
  free(m->handler);
  free(m->model_file);
  free(m->extra_files);
  free(m->requirements_file);
  free(m->config_file);
  free(m->model_class);
  free(m->compiled_with_torch);
  free(m->archiver_version);
  free(m->created_on);
  wk_manifest_init(m);
}

static const char *json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER:
  case JSON_REAL: return "a number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  }
  return "a value";
}

/* Copies the string fields of obj into m. JSON null counts as absent. */
static int read_fields(json_t *obj, const field_t *fields, size_t n, wk_manifest_t *m,
                       wk_err_t *err) {
  for (size_t i = 0; i < n; i++) {
    const field_t *f = &fields[i];
    json_t *v = json_object_get(obj, f->key);
    if (v == NULL || json_is_null(v)) continue;
    if (!json_is_string(v)) {
      return wk_err(err, WK_EINVAL, "%s%s%s: expected a string, got %s",
                    f->section ? f->section : "", f->section ? "." : "", f->key, json_type_name(v));
    }
    char *s = strdup(json_string_value(v));
    if (s == NULL) return wk_err(err, WK_ENOMEM, "out of memory reading the manifest");
    *slot(m, f) = s;
  }
  return 0;
}

int wk_manifest_parse(const char *json, size_t len, wk_manifest_t *m, wk_err_t *err) {
  if (len > WK_MAX_MANIFEST_SIZE) {
    return wk_err(err, WK_ETOOBIG, "manifest is %zu bytes, the limit is %d bytes", len,
                  WK_MAX_MANIFEST_SIZE);
  }
  if (json == NULL) json = "";
  json_error_t jerr;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL) {
    return wk_err(err, WK_EFORMAT, "manifest is not valid JSON: line %d, column %d: %s", jerr.line,
                  jerr.column, jerr.text);
  }
  wk_manifest_t tmp;
  wk_manifest_init(&tmp);
  int rc = 0;
  json_t *model = json_object_get(root, "model");
  if (!json_is_object(root)) {
    rc = wk_err(err, WK_EINVAL, "manifest: expected a JSON object, got %s", json_type_name(root));
  } else if (model == NULL || json_is_null(model)) {
    rc = wk_err(err, WK_EINVAL, "model: missing (expected an object with modelName)");
  } else if (!json_is_object(model)) {
    rc = wk_err(err, WK_EINVAL, "model: expected an object, got %s", json_type_name(model));
  } else if ((rc = read_fields(root, top_fields, NELEM(top_fields), &tmp, err)) == 0 &&
             (rc = read_fields(model, model_fields, NELEM(model_fields), &tmp, err)) == 0 &&
             (rc = read_fields(root, tail_fields, NELEM(tail_fields), &tmp, err)) == 0) {
    if (tmp.model_name == NULL || tmp.model_name[0] == '\0') {
      rc = wk_err(err, WK_EINVAL, "model.modelName: missing (expected a non-empty string)");
    }
  }
  json_decref(root);
  if (rc != 0) {
    wk_manifest_destroy(&tmp);
    return rc;
  }
  wk_manifest_destroy(m);
  *m = tmp;
  return 0;
}

static int put_fields(json_t *obj, const field_t *fields, size_t n, const wk_manifest_t *m) {
  for (size_t i = 0; i < n; i++) {
    const char *s = *cslot(m, &fields[i]);
    if (s == NULL) continue;
    json_t *v = json_string(s);
    if (v == NULL) return WK_EINVAL; /* not valid UTF-8 */
    if (json_object_set_new(obj, fields[i].key, v) != 0) return WK_ENOMEM;
  }
  return 0;
}

int wk_manifest_write(const wk_manifest_t *m, wk_buf_t *out) {
  json_t *root = json_object();
  json_t *model = json_object();
  int rc = WK_ENOMEM;
  if (root == NULL || model == NULL) goto done;
  if ((rc = put_fields(root, top_fields, NELEM(top_fields), m)) != 0) goto done;
  if ((rc = put_fields(model, model_fields, NELEM(model_fields), m)) != 0) goto done;
  if (json_object_set(root, "model", model) != 0) {
    rc = WK_ENOMEM;
    goto done;
  }
  if ((rc = put_fields(root, tail_fields, NELEM(tail_fields), m)) != 0) goto done;
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (text == NULL) {
    rc = WK_ENOMEM;
    goto done;
  }
  rc = wk_buf_puts(out, text);
  if (rc == 0) rc = wk_buf_putc(out, '\n');
  free(text);
done:
  json_decref(model);
  json_decref(root);
  return rc;
}
