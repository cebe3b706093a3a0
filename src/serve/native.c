/* The native runtime the native handler kinds share (see native.h). */
#include "serve/native.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/pt2.h"
#include "core/clock.h"
#include "core/fs.h"
#include "core/log.h"
#include "tensor/oip.h"
#include "tensor/tensor.h"
#include "weights/pt.h"
#include "weights/transfer.h"

/* Appends up to 5 names to b, with how many more there were. */
static void name_some(wk_buf_t *b, const char *what, const char *const *names, size_t n) {
  if (n == 0) return;
  wk_buf_printf(b, "; %s:", what);
  for (size_t i = 0; i < n && i < 5; i++)
    wk_buf_printf(b, " %s", names[i]);
  if (n > 5) wk_buf_printf(b, " (and %zu more)", n - 5);
}

/* wk_torch_prepare_fn for wick.weights: reads the checkpoint with the safe reader,
 * associates its keys with the module's parameters and buffers, and copies what fits.
 * arg is the model. At load (main thread), and again for the explanations' unfrozen copy
 * (an explanation's thread, under the backend's lock; the plan is the same, so only the
 * first call logs). */
static int load_weights(wk_torch_model_t *tm, void *arg, wk_err_t *err) {
  wk_model_t *m = arg;
  wk__native_t *nat = WK__NATIVE(m);
  const char *path = nat->weights_path;
  bool quiet = nat->weights_copied != 0;
  const wk_model_config_t *c = &m->config;
  const char *file = c->wick_weights_file;
  wk_assoc_t assoc = WK_ASSOC_ISOMORPHISM;
  bool mangle = c->wick_weights_mangle == 1, strict = c->wick_weights_strict == 1;
  int rc;
  if (c->wick_weights_association &&
      (rc = wk_assoc_parse(c->wick_weights_association, &assoc, err)))
    return rc;
  if (!wk_fs_exists(path))
    return wk_err(err, WK_ENOTFOUND,
                  "wick.weights.file: '%s' is not in the archive: expected a .pt checkpoint "
                  "beside the serialized file",
                  file);
  wk_pt_t *pt = NULL;
  wk_torch_state_t *st = NULL;
  size_t nst = 0;
  wk_xfer_key_t *ko = NULL, *ks = NULL;
  wk_xfer_t *x = NULL;
  if ((rc = wk_pt_open(path, 0, &pt, err)) != 0) {
    wk_err_prefix(err, "wick.weights.file '%s'", file);
    return rc;
  }
  if ((rc = wk_torch_state_list(tm, &st, &nst, err)) != 0) goto out;
  size_t no = wk_pt_count(pt);
  ko = calloc(no + 1, sizeof *ko);
  ks = calloc(nst + 1, sizeof *ks);
  if (!ko || !ks) {
    rc = wk_err(err, WK_ENOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < no; i++) {
    const wk_pt_tensor_t *t = wk_pt_tensor(pt, i);
    ko[i] = (wk_xfer_key_t){t->name, t->dtype, t->ndim, t->shape};
  }
  for (size_t i = 0; i < nst; i++)
    ks[i] = (wk_xfer_key_t){st[i].name, st[i].dtype, st[i].ndim, st[i].shape};
  if ((rc = wk_xfer_plan(ko, no, ks, nst, assoc, mangle, &x, err)) != 0) goto out;
  char sum[256];
  wk_xfer_summary(x, sum, sizeof sum);
  if (!wk_xfer_perfect(x) && !quiet) {
    /* the names that did not fit, for the log and for a strict failure */
    wk_buf_t b = WK_BUF_INIT;
    const char **unset = calloc(nst + 1, sizeof *unset);
    const char **unused = calloc(no + 1, sizeof *unused);
    size_t nu = 0, nx = 0;
    bool *used = calloc(no + 1, sizeof *used);
    if (!unset || !unused || !used) {
      free(unset), free(unused), free(used);
      rc = wk_err(err, WK_ENOMEM, "out of memory");
      goto out;
    }
    for (size_t i = 0; i < nst; i++) {
      long src;
      wk_xfer_action(x, i, &src);
      if (src < 0)
        unset[nu++] = st[i].name;
      else
        used[src] = true;
    }
    for (size_t i = 0; i < no; i++)
      if (!used[i]) unused[nx++] = ko[i].name;
    wk_buf_printf(&b, "%s", sum);
    name_some(&b, "model tensors not set", unset, nu);
    name_some(&b, "checkpoint tensors not used", unused, nx);
    char *report = wk_xfer_report_json(x, 0);
    if (strict) {
      wk_log_error("model %s %s: wick.weights %s: not a perfect fit (strict): %s", m->name,
                   m->version, file, report ? report : "");
      rc = wk_err(err, WK_EMODEL, "wick.weights.file '%s' does not fit the model (strict, %s): %s",
                  file, wk_assoc_name(assoc), b.data ? b.data : sum);
    } else {
      wk_log_warn("model %s %s: wick.weights %s is a partial fit (%s%s): %s", m->name, m->version,
                  file, wk_assoc_name(assoc), mangle ? ", mangle" : "", b.data ? b.data : sum);
    }
    free(report);
    free(unset);
    free(unused);
    free(used);
    wk_buf_destroy(&b);
    if (rc) goto out;
  }
  for (size_t i = 0; i < nst; i++) {
    long src;
    wk_xfer_action(x, i, &src);
    if (src < 0) continue;
    const wk_pt_tensor_t *t = wk_pt_tensor(pt, (size_t)src);
    if (t->numel == 0) continue; /* nothing to copy */
    if (!t->data && t->numel > 0) {
      rc = wk_err(err, WK_EUNSUPPORTED, "wick.weights.file '%s': tensor '%s' has no data", file,
                  t->name);
      goto out;
    }
    if ((rc = wk_torch_state_copy(tm, st[i].name, t->dtype, t->ndim, t->shape, t->strides, t->data,
                                  err)) != 0)
      goto out;
  }
  if (wk_xfer_perfect(x) && !quiet)
    wk_log_info("model %s %s: wick.weights %s: %s (%s%s)", m->name, m->version, file, sum,
                wk_assoc_name(assoc), mangle ? ", mangle" : "");
  nat->weights_copied = 1;
out:
  wk_xfer_free(x);
  free(ko);
  free(ks);
  wk_torch_state_free(st, nst);
  wk_pt_close(pt);
  return rc;
}

/* A package's batch range bounds the requests a batch gathers (each brings at least one
 * row); the backend splits a batch with more rows than its maximum and pads one with fewer
 * than its minimum. Logs the inputs it expects. */
static void bound_batch(wk_model_t *m, const wk_pt2_spec_t *spec) {
  for (size_t i = 0; i < spec->ninputs; i++) {
    char want[256];
    wk_pt2_input_describe(&spec->inputs[i], want, sizeof want);
    wk_log_info("model %s %s: INPUT__%zu is %s", m->name, m->version, i, want);
  }
  if (spec->ninputs == 0)
    wk_log_warn("model %s %s: the package keeps no generated source to read its input specs "
                "from; libtorch checks the inputs, and batches are not bounded by its shapes",
                m->name, m->version);
  if (spec->batch_max > 0 && m->batch_size > spec->batch_max) {
    wk_log_warn("model %s %s: batchSize %d is more than the package's batch dimension allows "
                "(%lld..%lld): batches gather at most %lld requests",
                m->name, m->version, m->batch_size, (long long)spec->batch_min,
                (long long)spec->batch_max, (long long)spec->batch_max);
    m->batch_size = (int)spec->batch_max;
  }
}

/* wick: {explain: {model: FILE}}: a TorchScript copy of a package's model in the archive,
 * which explanations differentiate (a package has no autograd). */
static int explain_copy(wk_model_t *m, const wk_yaml_t *wick, wk__native_t *n, wk_err_t *err) {
  const wk_yaml_t *e = wick ? wk_yaml_get(wick, "explain") : NULL;
  const wk_yaml_t *f = e ? wk_yaml_get(e, "model") : NULL;
  n->explain_path[0] = '\0';
  if (f == NULL) return 0;
  if (f->kind != WK_YAML_SCALAR || f->scalar == NULL || f->scalar[0] == '\0')
    return wk_err(err, WK_EINVAL, "model '%s': wick.explain.model: expected a file name", m->name);
  if (wk_archive_check_name(f->scalar, strlen(f->scalar), err) != 0) {
    wk_err_prefix(err, "model '%s': wick.explain.model", m->name);
    return WK_EUNSAFE;
  }
  if (wk_fs_join(n->explain_path, sizeof n->explain_path, m->model_dir, f->scalar) != 0)
    return wk_err(err, WK_ETOOBIG, "model '%s': wick.explain.model: path too long", m->name);
  if (!wk_fs_exists(n->explain_path))
    return wk_err(err, WK_ENOTFOUND,
                  "model '%s': wick.explain.model: the archive holds no file '%s' (add it with "
                  "wick pack --extra-files)", m->name, f->scalar);
  if (wk_pt2_check(n->explain_path, NULL) != 0)
    return wk_err(err, WK_EINVAL,
                  "model '%s': wick.explain.model: '%s' is an AOTInductor package; explanations "
                  "need a TorchScript copy of the model", m->name, f->scalar);
  wk_log_info("model %s %s: explanations differentiate %s, a TorchScript copy of the package's "
              "model", m->name, m->version, f->scalar);
  return 0;
}

int wk__native_load(wk_model_t *m, const wk_model_load_opts_t *o, wk__native_t *n,
                    wk_err_t *err) {
  const wk_model_config_t *c = &m->config;
  const wk_yaml_t *wick = c->root ? wk_yaml_get(c->root, "wick") : NULL;
  const wk_yaml_t *eb = wick ? wk_yaml_get(wick, "explain_batch") : NULL;
  long long v = 0;
  if (eb != NULL && (wk_yaml_as_int(eb, &v) != 0 || v < 0 || v > (1 << 20)))
    return wk_err(err, WK_EINVAL, "model '%s': wick.explain_batch: expected a non-negative integer",
                  m->name);
  n->explain_batch = (int)v;
  int threads = c->wick_threads > 0 ? c->wick_threads : o->torch_threads;
  if (threads <= 0) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int per = m->min_workers > 0 ? m->min_workers : 1;
    threads = ncpu / per > 0 ? (int)(ncpu / per) : 1;
  }
  wk_torch_set_threads(threads);
  char path[4096];
  if (wk_fs_join(path, sizeof path, m->model_dir, m->manifest.serialized_file) != 0)
    return wk_err(err, WK_ETOOBIG, "model '%s': serializedFile: path too long", m->name);
  int rc, pt2 = wk_pt2_check(path, err);
  if (pt2 < 0) {
    wk_err_prefix(err, "model '%s': %s", m->name, m->manifest.serialized_file);
    return pt2;
  }
  /* Freezing + optimize_for_inference at load: 1.4-2.8x faster forwards here
   * (MACHINE-NOTES); wick: {freeze: false} turns it off for modules that misbehave. An
   * AOTInductor package is compiled already; its runners (one per worker that may run at
   * once) share one set of constants. */
  wk_torch_opts_t topts = {.freeze = !pt2 && c->wick_freeze != 0, .device = -1, .aoti = pt2,
                           .runners = m->max_workers > 0 ? m->max_workers : 1};
  if (pt2) {
    if ((n->pt2 = calloc(1, sizeof *n->pt2)) == NULL) return wk_err(err, WK_ENOMEM, NULL);
    if ((rc = wk_pt2_read_spec(path, n->pt2, err)) != 0) {
      wk_err_prefix(err, "model '%s': %s", m->name, m->manifest.serialized_file);
      return rc;
    }
    char missing[64];
    if (strcmp(n->pt2->device, "cpu") == 0 &&
        wk_pt2_cpu_missing(n->pt2->cpu_isa, missing, sizeof missing) > 0)
      return wk_err(err, WK_EUNSUPPORTED,
                    "model '%s': %s was compiled for a CPU with %s (AOTI_CPU_ISA \"%s\"), which "
                    "this CPU lacks: its kernels would die of an illegal instruction; compile "
                    "it on (or for) a machine like this one",
                    m->name, m->manifest.serialized_file, missing, n->pt2->cpu_isa);
    if ((rc = explain_copy(m, wick, n, err)) != 0) return rc;
    if (n->explain_path[0]) topts.explain_path = n->explain_path;
    topts.aoti_inputs = (int)n->pt2->ninputs;
    topts.aoti_batch_min = n->pt2->batch_min;
    topts.aoti_batch_max = n->pt2->batch_max;
    bound_batch(m, n->pt2);
  }
  if (c->wick_weights_file) {
    if (wk_fs_join(n->weights_path, sizeof n->weights_path, m->model_dir, c->wick_weights_file))
      return wk_err(err, WK_ETOOBIG, "model '%s': wick.weights.file: path too long", m->name);
    topts.prepare = load_weights;
    topts.prepare_arg = m;
  }
  int64_t t0 = wk_now_us();
  const char *compiled_with = pt2 ? m->manifest.compiled_with_torch : NULL;
  int other_torch = compiled_with && strcmp(compiled_with, wk_torch_version()) != 0;
  if (other_torch)
    wk_log_warn("model %s %s: %s was compiled by torch %s; this wick has libtorch %s",
                m->name, m->version, m->manifest.serialized_file, compiled_with,
                wk_torch_version());
  if ((rc = wk__gpus_assign(m, &n->gpus, err)) != 0) return rc;
  for (int i = 0; rc == 0 && i < (n->gpus.n > 0 ? n->gpus.n : 1); i++) {
    int dev = n->gpus.n > 0 ? n->gpus.ids[i] : -1, same = -1;
    for (int k = 0; k < i && same < 0; k++)
      if (n->gpus.ids[k] == dev) same = k;
    if (same >= 0) {
      n->on_gpu[i] = n->on_gpu[same];
      continue;
    }
    topts.device = dev;
    rc = wk_torch_load(path, &topts, dev >= 0 ? &n->on_gpu[i] : &n->torch, err);
    if (rc != 0 && dev >= 0)
      wk_err_prefix(err, "on cuda:%d (deviceType gpu; deviceType: cpu runs it on the CPU)", dev);
  }
  if (n->gpus.n > 0) n->torch = n->on_gpu[0];
  if (rc != 0) {
    if (other_torch)
      wk_err_prefix(err, "model '%s': %s (compiled by torch %s; this wick has libtorch %s)",
                    m->name, m->manifest.serialized_file, compiled_with, wk_torch_version());
    else
      wk_err_prefix(err, "model '%s': %s", m->name, m->manifest.serialized_file);
    return rc;
  }
  if (n->gpus.n > 0) {
    char devs[160] = "";
    size_t used = 0;
    for (int i = 0; i < n->gpus.n && used < sizeof devs; i++)
      used += (size_t)snprintf(devs + used, sizeof devs - used, "%scuda:%d", i ? ", " : "",
                               n->gpus.ids[i]);
    wk_log_info("model %s %s: workers run round-robin on %s (one copy of the model per device)",
                m->name, m->version, devs);
  }
  if (pt2) {
    wk_log_info("model %s %s: AOTInductor package %s loaded in %lld ms (native code compiled "
                "by torch._inductor, %d workers sharing its constants, batch size %d, %d torch "
                "threads)",
                m->name, m->version, m->manifest.serialized_file,
                (long long)((wk_now_us() - t0) / 1000), topts.runners, m->batch_size, threads);
    return 0;
  }
  const char *why = NULL;
  int frozen = wk_torch_frozen(n->torch, &why);
  wk_log_info("model %s %s: TorchScript %s loaded in %lld ms (native, %s, %d workers, batch "
              "size %d, %d torch threads)",
              m->name, m->version, m->manifest.serialized_file,
              (long long)((wk_now_us() - t0) / 1000),
              frozen ? "frozen" : why ? "NOT frozen: freezing failed" : "not frozen (wick.freeze: false)",
              m->min_workers, m->batch_size, threads);
  if (why)
    wk_log_warn("model %s %s: torch.jit.freeze failed, so the module runs unfrozen (slower "
                "forwards; set wick: {freeze: false} to skip the attempt): %s",
                m->name, m->version, why);
  return 0;
}

void wk__native_unload(wk__native_t *n) {
  if (n->gpus.n == 0 && n->torch) wk_torch_free(n->torch);
  for (int i = 0; i < n->gpus.n; i++) {
    int shared = 0;
    for (int k = 0; k < i; k++) shared |= n->on_gpu[k] == n->on_gpu[i];
    if (!shared && n->on_gpu[i]) wk_torch_free(n->on_gpu[i]);
    n->on_gpu[i] = NULL;
  }
  n->torch = NULL;
  free(n->pt2);
  n->pt2 = NULL;
}

int wk__native_device(const wk_model_t *m, int index) {
  return m->hstate ? wk__gpus_of(&WK__NATIVE(m)->gpus, index) : -1;
}

/* The copy of the model worker index runs. */
static wk_torch_model_t *model_of(const wk__native_t *n, int index) {
  return n->gpus.n > 0 ? n->on_gpu[(index >= 0 ? index : 0) % n->gpus.n] : n->torch;
}

int wk__forward(wk_model_t *m, int index, const wk_tensor_t *tensors, size_t count,
                wk_value_t **out, wk_err_t *err) {
  wk_value_t storage[WK_MAX_NAMED_INPUTS];
  const wk_value_t *args[WK_MAX_NAMED_INPUTS];
  memset(storage, 0, sizeof storage);
  for (size_t i = 0; i < count; i++) {
    storage[i].kind = WK_V_TENSOR;
    storage[i].tensor = tensors[i];
    storage[i].tensor.owns_data = 0; /* the caller keeps it */
    args[i] = &storage[i];
  }
  return wk__forward_values(m, index, args, count, out, err);
}

void wk__native_io(const wk_model_t *m, size_t i, wk__io_t *io) {
  const wk_pt2_spec_t *spec = WK__NATIVE(m)->pt2;
  if (spec == NULL || i >= spec->ninputs) return;
  const wk_pt2_input_t *in = &spec->inputs[i];
  wk_dtype_t dt;
  if (in->dtype[0] && wk_dtype_parse(in->dtype, &dt) == 0) io->datatype = wk_oip_datatype(dt);
  io->ndim = in->ndim < 8 ? in->ndim : 8;
  for (int d = 0; d < io->ndim; d++) io->shape[d] = in->min[d] == in->max[d] ? in->min[d] : -1;
}

/* Whether a request's tensor fits what a package's compiled code checks (its dimension 0
 * aside when the package has a batch range: the backend pads and splits that). NULL or
 * what does not fit. */
static const char *misfit(const wk_pt2_input_t *want, const wk_tensor_t *t, int batched,
                          char *buf, size_t cap) {
  if (want->dtype[0] && strcmp(want->dtype, wk_dtype_name(t->dtype)) != 0) return "its dtype";
  if (want->ndim == 0) return NULL;
  if (t->ndim != want->ndim) return "its number of dimensions";
  for (int d = batched ? 1 : 0; d < t->ndim; d++)
    if (t->shape[d] < want->min[d] || (want->max[d] >= 0 && t->shape[d] > want->max[d])) {
      snprintf(buf, cap, "dimension %d", d);
      return buf;
    }
  return NULL;
}

/* Checks a package's inputs before its compiled code does, to say in the input's terms
 * what it expects. */
static int check_pt2_inputs(const wk_pt2_spec_t *spec, const wk_value_t *const *args,
                            size_t count, wk_err_t *err) {
  if (spec->ninputs > 0 && count != spec->ninputs)
    return wk_err(err, WK_EMODEL, "the package takes %zu input(s) (INPUT__0...), got %zu",
                  spec->ninputs, count);
  for (size_t i = 0; i < count && i < spec->ninputs; i++) {
    if (args[i]->kind != WK_V_TENSOR)
      return wk_err(err, WK_EMODEL, "INPUT__%zu: the package takes tensors only", i);
    char dim[32], want[256], got[256];
    const wk_tensor_t *t = &args[i]->tensor;
    const char *bad = misfit(&spec->inputs[i], t, spec->batch_min > 0, dim, sizeof dim);
    if (bad == NULL) continue;
    wk_pt2_input_describe(&spec->inputs[i], want, sizeof want);
    size_t o = (size_t)snprintf(got, sizeof got, "%s [", wk_dtype_name(t->dtype));
    for (int d = 0; d < t->ndim && o < sizeof got; d++)
      o += (size_t)snprintf(got + o, sizeof got - o, "%s%lld", d ? ", " : "",
                            (long long)t->shape[d]);
    if (o < sizeof got) snprintf(got + o, sizeof got - o, "]");
    return wk_err(err, WK_EMODEL, "INPUT__%zu: the package expects %s, got %s (%s does not fit)",
                  i, want, got, bad);
  }
  return 0;
}

int wk__forward_values(wk_model_t *m, int index, const wk_value_t *const *args, size_t count,
                       wk_value_t **out, wk_err_t *err) {
  wk__native_t *n = WK__NATIVE(m);
  int rc = n->pt2 != NULL ? check_pt2_inputs(n->pt2, args, count, err) : 0;
  if (rc != 0) return rc;
  return wk_torch_forward(model_of(n, index), args, count, out, err);
}

void wk__native_explain(wk_model_t *m, int index, wk__job_t *j, const wk_tensor_t *x) {
  wk_tensor_t attr;
  int64_t target = -1;
  double f_x = 0, f_base = 0;
  wk_err_t err = {{0}};
  int64_t start = wk_now_us();
  wk__native_t *nat = WK__NATIVE(m);
  int rc = wk_torch_integrated_gradients(model_of(nat, index), x, j->target, j->n_steps, nat->explain_batch,
                                         &attr, &target, &f_x, &f_base, &err);
  int64_t took = wk_now_us() - start;
  if (rc != 0) {
    wk__job_fail(m, j, rc, err.msg);
    return;
  }
  wk_log_info("model %s: integrated gradients for class %lld, %d steps, in %lld ms", m->name,
              (long long)target, j->n_steps, (long long)(took / 1000));
  /* drop the batch dimension of one */
  memmove(attr.shape, attr.shape + 1, sizeof(int64_t) * (size_t)(attr.ndim - 1));
  attr.ndim--;
  wk_buf_t b = WK_BUF_INIT;
  int prc = wk_json_print_tensor(&b, &attr);
  wk_tensor_destroy(&attr);
  if (prc != 0) {
    wk_buf_destroy(&b);
    wk__job_reply_error(m, j, 500, "InternalServerException", "cannot encode the attributions");
    return;
  }
  char hdr[64];
  snprintf(hdr, sizeof hdr, "%lld", (long long)target);
  wk__job_header(j, "X-Wick-Target", hdr);
  snprintf(hdr, sizeof hdr, "%.9g", f_x - f_base);
  wk__job_header(j, "X-Wick-Output-Delta", hdr);
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  wk__job_reply(m, j, 200, body, len);
}

