/* AOTInductor package checks and specs (see pt2.h). */
#include "archive/pt2.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "archive/zip.h"

#define AOTI_DIR "/data/aotinductor/model/"

static int ends_with(const char *s, size_t n, const char *tail) {
  size_t k = strlen(tail);
  return n >= k && memcmp(s + n - k, tail, k) == 0;
}

/* wk_pt2_check on an open zip. */
static int check_zip(wk_zip_t *z, wk_err_t *err) {
  int model = 0, library = 0, rc = 0;
  for (size_t i = 0; i < wk_zip_count(z); i++) {
    const wk_zip_entry_t *e = wk_zip_entry(z, i);
    const char *slash = strchr(e->name, '/');
    if (slash && strncmp(slash, AOTI_DIR, strlen(AOTI_DIR)) == 0) {
      model = 1;
      if (ends_with(e->name, e->name_len, ".so")) library = 1;
    }
  }
  for (size_t i = 0; model && rc == 0 && i < wk_zip_count(z); i++) {
    const wk_zip_entry_t *e = wk_zip_entry(z, i);
    if (e->is_symlink)
      rc = wk_err(err, WK_EUNSAFE, "the AOTInductor package holds a link (%.100s): refused",
                  e->name);
    else if (wk_archive_check_name(e->name, e->name_len, err) != 0)
      rc = WK_EUNSAFE;
  }
  if (rc != 0) return rc;
  if (model && !library)
    return wk_err(err, WK_EUNSUPPORTED,
                  "the AOTInductor package holds no compiled library (.so) for its model, only "
                  "sources: wick does not run a compiler at load; package it with "
                  "aoti_compile_and_package on this platform");
  return model;
}

/* Opens path (or data, when given) as a zip. 0 when it is one; else 0 with *z NULL when it
 * is not one and is not named *.pt2 (name: the file's name), or WK_EFORMAT. */
static int open_zip(const char *name, const void *data, size_t len, wk_zip_t **z, wk_err_t *err) {
  wk_err_t why = {{0}};
  *z = NULL;
  int rc = data ? wk_zip_open_mem(data, len, z, &why) : wk_zip_open(name, z, &why);
  if (rc == 0) return 0;
  *z = NULL;
  /* Not a zip: not a package, unless its name says it should be one. */
  if (!ends_with(name, strlen(name), ".pt2")) return 0;
  return wk_err(err, WK_EFORMAT, "not an AOTInductor package: %s", why.msg);
}

int wk_pt2_check(const char *path, wk_err_t *err) {
  return wk_pt2_check_mem(path, NULL, 0, err);
}

int wk_pt2_check_mem(const char *name, const void *data, size_t len, wk_err_t *err) {
  wk_zip_t *z;
  int rc = open_zip(name, data, len, &z, err);
  if (rc != 0 || z == NULL) return rc;
  rc = check_zip(z, err);
  wk_zip_close(z);
  return rc;
}

/* torch's c10 ScalarType names as the generated checks print them ("(at::kFloat)"), and
 * the names wick (and torch's Python API) use for them. */
static const struct {
  const char *aten;
  const char *name;
} DTYPES[] = {
    {"Float", "float32"}, {"Double", "float64"}, {"Half", "float16"}, {"BFloat16", "bfloat16"},
    {"Char", "int8"},     {"Short", "int16"},    {"Int", "int32"},    {"Long", "int64"},
    {"Byte", "uint8"},    {"Bool", "bool"},
};

/* The integer after the first occurrence of key in [p, end), or -1. */
static int64_t number_after(const char *p, const char *end, const char *key) {
  size_t k = strlen(key);
  for (; p + k <= end; p++) {
    if (memcmp(p, key, k) != 0) continue;
    p += k;
    while (p < end && *p == ' ') p++;
    if (p >= end || *p < '0' || *p > '9') return -1;
    int64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9' && v < INT64_MAX / 10) v = v * 10 + (*p++ - '0');
    return v;
  }
  return -1;
}

/* Leaves of a serialized pytree spec (each leaf is {"type": null, ...}) in [p, end). */
static size_t spec_leaves(const char *p, const char *end) {
  static const char LEAF[] = "\"type\": null";
  size_t n = 0, k = sizeof LEAF - 1;
  for (; p + k <= end; p++)
    if (memcmp(p, LEAF, k) == 0) n++;
  return n;
}

/* The raw string literal R"(...)" assigned to name (in_spec_ / out_spec_), as [*b, *e). */
static int raw_spec(const char *text, const char *end, const char *name, const char **b,
                    const char **e) {
  const char *p = memmem(text, (size_t)(end - text), name, strlen(name));
  if (p == NULL) return 0;
  const char *open = memmem(p, (size_t)(end - p), "R\"(", 3);
  if (open == NULL || open - p > 16) return 0;
  open += 3;
  const char *close = memmem(open, (size_t)(end - open), ")\"", 2);
  if (close == NULL) return 0;
  *b = open;
  *e = close;
  return 1;
}

/* The generated code checks each input when AOTI_RUNTIME_CHECK_INPUTS is set, with messages
 * such as
 *   "input_handles[0]: unmatched dtype, " << "expected: " << 6 << "(at::kFloat), "
 *   "input_handles[0]: dim value is too small at 0, " << "expected it to be >= 2, "
 *   "input_handles[0]: dim value is too large at 0, " << "expected to be <= 8, "
 *   "input_handles[0]: unmatched dim value at 1, " << "expected: 16, "
 *   "input_handles[0]: unmatched stride value at 1, "
 * Those literals are the only record of the input specs a package keeps. */
size_t wk_pt2_parse_wrapper(const char *text, size_t len, wk_pt2_spec_t *spec) {
  static const char KEY[] = "\"input_handles[";
  const char *end = text + len, *b, *e;
  size_t n = 0;
  for (size_t i = 0; i < WK_PT2_MAX_INPUTS; i++) {
    wk_pt2_input_t *in = &spec->inputs[i];
    memset(in, 0, sizeof *in);
    for (int d = 0; d < WK_PT2_MAX_DIMS; d++) in->max[d] = -1;
  }
  for (const char *p = text; (p = memmem(p, (size_t)(end - p), KEY, sizeof KEY - 1)) != NULL;) {
    p += sizeof KEY - 1;
    char *after;
    unsigned long idx = strtoul(p, &after, 10);
    if (after == p || idx >= WK_PT2_MAX_INPUTS || strncmp(after, "]: ", 3) != 0) continue;
    const char *msg = after + 3;
    const char *stop = memchr(msg, ';', (size_t)(end - msg)); /* the end of this statement */
    if (stop == NULL) stop = end;
    wk_pt2_input_t *in = &spec->inputs[idx];
    if (idx + 1 > n) n = idx + 1;
    int64_t dim = -1;
    if (strncmp(msg, "unmatched dtype", 15) == 0) {
      const char *a = memmem(msg, (size_t)(stop - msg), "(at::k", 6);
      for (size_t k = 0; a && k < sizeof DTYPES / sizeof DTYPES[0]; k++) {
        size_t l = strlen(DTYPES[k].aten);
        if (strncmp(a + 6, DTYPES[k].aten, l) == 0 && a[6 + l] == ')')
          snprintf(in->dtype, sizeof in->dtype, "%s", DTYPES[k].name);
      }
    } else if ((dim = number_after(msg, stop, "too small at ")) >= 0 && dim < WK_PT2_MAX_DIMS) {
      int64_t v = number_after(msg, stop, "expected it to be >= ");
      if (v >= 0) in->min[dim] = v;
    } else if ((dim = number_after(msg, stop, "too large at ")) >= 0 && dim < WK_PT2_MAX_DIMS) {
      int64_t v = number_after(msg, stop, "expected to be <= ");
      if (v >= 0) in->max[dim] = v;
    } else if ((dim = number_after(msg, stop, "unmatched dim value at ")) >= 0 &&
               dim < WK_PT2_MAX_DIMS) {
      int64_t v = number_after(msg, stop, "expected: ");
      if (v >= 0) in->min[dim] = in->max[dim] = v;
    } else {
      dim = number_after(msg, stop, "unmatched stride value at ");
    }
    if (dim >= 0 && dim < WK_PT2_MAX_DIMS && dim + 1 > in->ndim) in->ndim = (int)dim + 1;
    p = stop;
  }
  if (raw_spec(text, end, "in_spec_", &b, &e)) {
    size_t leaves = spec_leaves(b, e);
    if (leaves > n && leaves <= WK_PT2_MAX_INPUTS) n = leaves;
  }
  if (raw_spec(text, end, "out_spec_", &b, &e)) spec->noutputs = spec_leaves(b, e);
  spec->ninputs = n;
  /* The batch: dimension 0 of every input, when each has one. */
  spec->batch_min = spec->batch_max = 0;
  int shared = n > 0;
  int64_t lo = 0, hi = -1;
  for (size_t i = 0; i < n && shared; i++) {
    const wk_pt2_input_t *in = &spec->inputs[i];
    if (in->ndim < 1) {
      shared = 0;
      break;
    }
    if (in->min[0] > lo) lo = in->min[0];
    if (in->max[0] >= 0 && (hi < 0 || in->max[0] < hi)) hi = in->max[0];
  }
  if (shared) {
    spec->batch_min = lo > 0 ? lo : 1;
    spec->batch_max = hi;
  }
  return n;
}

/* Text from the package, kept printable: control and non-ASCII bytes become '?'. */
static void copy_printable(char *out, size_t cap, const char *s, size_t n) {
  size_t j = 0;
  for (size_t i = 0; i < n && j + 1 < cap; i++)
    out[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
  if (cap) out[j] = '\0';
}

/* A top-level string of the package's metadata JSON, copied into out. */
static void meta_string(json_t *root, const char *key, char *out, size_t cap) {
  const char *s = json_string_value(json_object_get(root, key));
  if (s) copy_printable(out, cap, s, strlen(s));
}

/* Adds the model folder of an entry "<dir>/data/aotinductor/<model>/..." to spec->models. */
static void note_model(wk_pt2_spec_t *spec, const char *name) {
  static const char DIR[] = "/data/aotinductor/";
  const char *slash = strchr(name, '/');
  if (slash == NULL || strncmp(slash, DIR, sizeof DIR - 1) != 0) return;
  const char *m = slash + sizeof DIR - 1, *end = strchr(m, '/');
  if (end == NULL || end == m) return;
  char one[64];
  copy_printable(one, sizeof one, m, (size_t)(end - m));
  size_t have = strlen(spec->models), k = strlen(one);
  for (const char *p = spec->models; (p = strstr(p, one)) != NULL; p += k)
    if ((p == spec->models || p[-1] == ' ') && (p[k] == ' ' || p[k] == '\0')) return;
  if (have + k + 2 < sizeof spec->models)
    snprintf(spec->models + have, sizeof spec->models - have, "%s%s", have ? " " : "", one);
}

int wk_pt2_read_spec(const char *path, wk_pt2_spec_t *spec, wk_err_t *err) {
  return wk_pt2_read_spec_mem(path, NULL, 0, spec, err);
}

int wk_pt2_read_spec_mem(const char *name, const void *bytes, size_t size, wk_pt2_spec_t *spec,
                         wk_err_t *err) {
  memset(spec, 0, sizeof *spec);
  wk_zip_t *z = NULL;
  int rc = open_zip(name, bytes, size, &z, err);
  if (rc != 0) return rc;
  if (z == NULL) return wk_err(err, WK_EFORMAT, "%s is not an AOTInductor package", name);
  size_t wrapper = (size_t)-1, meta = (size_t)-1;
  for (size_t i = 0; i < wk_zip_count(z); i++) {
    const wk_zip_entry_t *e = wk_zip_entry(z, i);
    note_model(spec, e->name);
    const char *slash = strchr(e->name, '/');
    if (!slash || strncmp(slash, AOTI_DIR, strlen(AOTI_DIR)) != 0) continue;
    if (ends_with(e->name, e->name_len, ".so") && spec->library[0] == '\0') {
      copy_printable(spec->library, sizeof spec->library, e->name, strlen(e->name));
      spec->library_size = e->size;
    }
    if (ends_with(e->name, e->name_len, ".wrapper.cpp") ||
        (wrapper == (size_t)-1 && ends_with(e->name, e->name_len, ".cpp") &&
         !ends_with(e->name, e->name_len, ".kernel.cpp")))
      wrapper = i;
    if (ends_with(e->name, e->name_len, ".wrapper_metadata.json") ||
        (meta == (size_t)-1 && ends_with(e->name, e->name_len, "_metadata.json")))
      meta = i;
  }
  const void *data;
  size_t len;
  void *to_free = NULL;
  if (meta != (size_t)-1 && wk_zip_entry(z, meta)->size < 65536 &&
      wk_zip_read(z, meta, &data, &len, &to_free, NULL) == 0) {
    json_t *root = json_loadb(data, len, 0, NULL);
    meta_string(root, "AOTI_DEVICE_KEY", spec->device, sizeof spec->device);
    meta_string(root, "AOTI_PLATFORM", spec->platform, sizeof spec->platform);
    meta_string(root, "AOTI_CPU_ISA", spec->cpu_isa, sizeof spec->cpu_isa);
    json_decref(root);
    free(to_free);
    to_free = NULL;
  }
  if (spec->device[0] == '\0') snprintf(spec->device, sizeof spec->device, "cpu");
  /* The wrapper is a few hundred KB for large models; 64 MB bounds a hostile one. */
  if (wrapper != (size_t)-1 && wk_zip_entry(z, wrapper)->size < (64u << 20) &&
      wk_zip_read(z, wrapper, &data, &len, &to_free, NULL) == 0) {
    wk_pt2_parse_wrapper(data, len, spec);
    free(to_free);
  }
  wk_zip_close(z);
  return 0;
}

void wk_pt2_input_describe(const wk_pt2_input_t *in, char *out, size_t cap) {
  size_t o = (size_t)snprintf(out, cap, "%s", in->dtype[0] ? in->dtype : "tensor");
  for (int d = 0; d < in->ndim && o < cap; d++) {
    const char *sep = d == 0 ? " [" : ", ";
    if (in->min[d] == in->max[d])
      o += (size_t)snprintf(out + o, cap - o, "%s%lld", sep, (long long)in->min[d]);
    else if (in->max[d] < 0)
      o += (size_t)snprintf(out + o, cap - o, "%s%lld..", sep, (long long)in->min[d]);
    else
      o += (size_t)snprintf(out + o, cap - o, "%s%lld..%lld", sep, (long long)in->min[d],
                            (long long)in->max[d]);
  }
  if (in->ndim > 0 && o < cap) snprintf(out + o, cap - o, "]");
}

/* CPU features of this machine, for the ISA names AOTInductor records (AOTI_CPU_ISA). Only
 * the vector ISA the kernels are compiled for (-mavx2 / -mavx512f...) is checked; an
 * extension it lists beside it (AVX512_VNNI) or a name wick does not know counts as
 * present: wick refuses only what it knows this CPU lacks. */
static int cpu_has(const char *isa, size_t n) {
#define IS(s) (n == sizeof(s) - 1 && memcmp(isa, s, n) == 0)
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (IS("AVX2")) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (IS("AVX512"))
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (IS("NEON") || IS("ASIMD") || IS("SVE") || IS("SVE256") || IS("VSX") || IS("ZVECTOR"))
    return 0; /* another architecture's */
#elif defined(__aarch64__)
  if (IS("AVX2") || IS("AVX512") || IS("VSX") || IS("ZVECTOR")) return 0;
#endif
#undef IS
  (void)isa;
  (void)n;
  return 1;
}

size_t wk_pt2_cpu_missing(const char *isa, char *out, size_t cap) {
  size_t missing = 0, o = 0;
  if (cap) out[0] = '\0';
  for (const char *p = isa; *p;) {
    while (*p == ' ' || *p == ',') p++;
    size_t n = strcspn(p, " ,");
    if (n > 0 && !cpu_has(p, n)) {
      missing++;
      if (o < cap) o += (size_t)snprintf(out + o, cap - o, "%s%.*s", o ? " " : "", (int)n, p);
    }
    p += n;
  }
  return missing;
}

int wk_pt2_is_exported(const char *path) {
  wk_zip_t *z = NULL;
  if (wk_zip_open(path, &z, NULL) != 0) return 0;
  int exported = 0, compiled = 0;
  for (size_t i = 0; i < wk_zip_count(z); i++) {
    const wk_zip_entry_t *e = wk_zip_entry(z, i);
    const char *slash = strchr(e->name, '/');
    if (slash == NULL) continue;
    if (strncmp(slash, "/models/", 8) == 0 && ends_with(e->name, e->name_len, ".json"))
      exported = 1;
    if (strncmp(slash, "/data/aotinductor/", 18) == 0) compiled = 1;
  }
  wk_zip_close(z);
  return exported && !compiled;
}
