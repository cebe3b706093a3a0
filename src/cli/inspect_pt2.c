/* `wick inspect` on AOTInductor packages (see inspect_pt2.h). */
#include "cli/inspect_pt2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/pt2.h"
#include "core/error.h"
#include "core/text.h"

struct wk__pt2_view_s {
  char name[256]; /* printable */
  wk_pt2_spec_t spec;
  char refused[sizeof(((wk_err_t *)0)->msg)]; /* "" when wick would load it */
  char cpu_missing[64];
};

wk__pt2_view_t *wk__pt2_view(const char *name, const void *data, size_t len) {
  wk_err_t err = {{0}};
  int rc = data ? wk_pt2_check_mem(name, data, len, &err) : wk_pt2_check(name, &err);
  if (rc == 0) return NULL;
  wk__pt2_view_t *v = calloc(1, sizeof *v);
  if (v == NULL) return NULL;
  wk_text_shown(name, strlen(name), v->name, sizeof v->name);
  if (rc < 0) snprintf(v->refused, sizeof v->refused, "%s", err.msg);
  wk_err_t serr = {{0}};
  int src = data ? wk_pt2_read_spec_mem(name, data, len, &v->spec, &serr)
                 : wk_pt2_read_spec(name, &v->spec, &serr);
  if (src != 0 && v->refused[0] == '\0') snprintf(v->refused, sizeof v->refused, "%s", serr.msg);
  if (strcmp(v->spec.device, "cpu") == 0 &&
      wk_pt2_cpu_missing(v->spec.cpu_isa, v->cpu_missing, sizeof v->cpu_missing) > 0 &&
      v->refused[0] == '\0')
    snprintf(v->refused, sizeof v->refused,
             "compiled for a CPU with %s, which this CPU lacks", v->cpu_missing);
  return v;
}

void wk__pt2_view_free(wk__pt2_view_t *v) { free(v); }

bool wk__pt2_refused(const wk__pt2_view_t *v) { return v->refused[0] != '\0'; }

static const char NATIVE_CODE[] =
    "a .pt2 is native code: a shared library compiled by torch._inductor from the model, "
    "which wick loads and runs in the server's process when the model is served (no "
    "sandbox). inspect ran nothing.";

void wk__pt2_print(const wk__pt2_view_t *v) {
  const wk_pt2_spec_t *s = &v->spec;
  printf("AOTInductor package: %s\n", v->name);
  printf("  warning: %s\n", NATIVE_CODE);
  if (s->library[0])
    printf("  %-14s %s (%llu bytes)\n", "library", s->library,
           (unsigned long long)s->library_size);
  printf("  %-14s %s\n", "models", s->models[0] ? s->models : "?");
  printf("  %-14s %s%s%s%s%s\n", "compiled for", s->device, s->platform[0] ? ", " : "",
         s->platform, s->cpu_isa[0] ? ", CPU features " : "", s->cpu_isa);
  if (s->ninputs == 0) {
    printf("  %-14s not recorded (the package keeps no generated source)\n", "inputs");
  } else {
    printf("  inputs (positional; the package records no names):\n");
    for (size_t i = 0; i < s->ninputs; i++) {
      char d[256];
      wk_pt2_input_describe(&s->inputs[i], d, sizeof d);
      printf("    INPUT__%-4zu %s\n", i, d);
    }
  }
  if (s->noutputs) printf("  %-14s %zu\n", "outputs", s->noutputs);
  if (s->batch_min > 0 && s->batch_max >= 0)
    printf("  %-14s dimension 0 of every input, %lld..%lld rows per run\n", "batch",
           (long long)s->batch_min, (long long)s->batch_max);
  else if (s->batch_min > 0)
    printf("  %-14s dimension 0 of every input, %lld.. rows per run\n", "batch",
           (long long)s->batch_min);
  printf("  %-14s not recorded in the package\n", "torch version");
  if (v->refused[0])
    printf("  refused: wick will not load it: %s\n", v->refused);
}

static json_t *dims(const wk_pt2_input_t *in, int which) {
  json_t *a = json_array();
  for (int d = 0; d < in->ndim; d++) {
    int64_t x = which == 0 ? (in->min[d] == in->max[d] ? in->min[d] : -1)
                : which == 1 ? in->min[d] : in->max[d];
    json_array_append_new(a, json_integer((json_int_t)x));
  }
  return a;
}

json_t *wk__pt2_json(const wk__pt2_view_t *v) {
  const wk_pt2_spec_t *s = &v->spec;
  json_t *o = json_object(), *ins = json_array();
  json_object_set_new(o, "file", json_string(v->name));
  json_object_set_new(o, "native_code", json_true());
  json_object_set_new(o, "warning", json_string(NATIVE_CODE));
  json_object_set_new(o, "library", s->library[0] ? json_string(s->library) : json_null());
  json_object_set_new(o, "library_size", json_integer((json_int_t)s->library_size));
  json_object_set_new(o, "models", json_string(s->models));
  json_object_set_new(o, "device", json_string(s->device));
  json_object_set_new(o, "platform", json_string(s->platform));
  json_object_set_new(o, "cpu_isa", json_string(s->cpu_isa));
  for (size_t i = 0; i < s->ninputs; i++) {
    const wk_pt2_input_t *in = &s->inputs[i];
    char name[32];
    snprintf(name, sizeof name, "INPUT__%zu", i);
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(name));
    json_object_set_new(j, "dtype", in->dtype[0] ? json_string(in->dtype) : json_null());
    json_object_set_new(j, "shape", dims(in, 0)); /* -1: dynamic */
    json_object_set_new(j, "min", dims(in, 1));
    json_object_set_new(j, "max", dims(in, 2)); /* -1: no upper bound */
    json_array_append_new(ins, j);
  }
  json_object_set_new(o, "inputs", ins);
  json_object_set_new(o, "outputs", json_integer((json_int_t)s->noutputs));
  json_t *b = json_null();
  if (s->batch_min > 0) {
    b = json_object();
    json_object_set_new(b, "min", json_integer((json_int_t)s->batch_min));
    json_object_set_new(b, "max", json_integer((json_int_t)s->batch_max));
  }
  json_object_set_new(o, "batch", b);
  json_object_set_new(o, "refused", v->refused[0] ? json_string(v->refused) : json_null());
  return o;
}

int wk__inspect_pt2_file(const char *path, bool as_json) {
  wk__pt2_view_t *v = wk__pt2_view(path, NULL, 0);
  if (v == NULL) {
    fprintf(stderr, "wick inspect: %s: cannot read it as an AOTInductor package\n", path);
    return 1;
  }
  if (as_json) {
    json_t *root = json_object();
    json_object_set_new(root, "aotinductor", wk__pt2_json(v));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (text) puts(text);
    free(text);
  } else {
    wk__pt2_print(v);
  }
  wk__pt2_view_free(v);
  return 0;
}
