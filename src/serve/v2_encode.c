/* KServe v2 answers (see v2_encode.h). */
#include "serve/v2_encode.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/model_internal.h"

const char *wk__declared_name(const wk_model_t *m, const char *key, size_t k) {
  const wk_yaml_t *list = wk_yaml_get(wk_yaml_get(m->config.root, "wick"), key);
  if (list == NULL || list->kind != WK_YAML_SEQ || k >= list->count) return NULL;
  const wk_yaml_t *n = wk_yaml_get(list->items[k], "name");
  return n && n->kind == WK_YAML_SCALAR ? n->scalar : NULL;
}

/* One output of the model's answer: a tensor with its name. */
typedef struct {
  char name[128];
  const wk_tensor_t *t;
} named_t;

static int collect_outputs(const wk_model_t *m, const wk_value_t *v, named_t *out, size_t cap,
                           size_t *n, wk_err_t *err) {
  *n = 0;
  if (v && v->kind == WK_V_TENSOR) {
    const char *d = wk__declared_name(m, "outputs", 0);
    snprintf(out[0].name, sizeof out[0].name, "%s", d ? d : "OUTPUT__0");
    out[0].t = &v->tensor;
    *n = 1;
    return 0;
  }
  if (v && (v->kind == WK_V_LIST || v->kind == WK_V_DICT)) {
    for (size_t i = 0; i < v->count && i < cap; i++) {
      const wk_value_t *it = v->items[i];
      if (it == NULL || it->kind != WK_V_TENSOR)
        return wk_err(err, WK_EUNSUPPORTED,
                      "output %zu of the model is not a tensor; the v2 protocol carries tensors "
                      "only (use /predictions for other outputs)",
                      i);
      const char *d = wk__declared_name(m, "outputs", i);
      if (v->kind == WK_V_DICT) snprintf(out[i].name, sizeof out[i].name, "%s", v->keys[i]);
      else if (d) snprintf(out[i].name, sizeof out[i].name, "%s", d);
      else snprintf(out[i].name, sizeof out[i].name, "OUTPUT__%zu", i);
      out[i].t = &it->tensor;
      (*n)++;
    }
    return 0;
  }
  return wk_err(err, WK_EUNSUPPORTED,
                "the model's output is not a tensor, a list of tensors or a dict of tensors; the "
                "v2 protocol carries tensors only (use /predictions for other outputs)");
}

int wk__v2_encode_value(const wk_model_t *m, const wk_oip_request_t *r, const wk_value_t *v,
                        wk_buf_t *out, size_t *json_len, wk_err_t *err) {
  named_t outs[WK_OIP_MAX_TENSORS];
  size_t n;
  int rc = collect_outputs(m, v, outs, WK_OIP_MAX_TENSORS, &n, err);
  if (rc != 0) return rc;
  wk_oip_output_t sel[WK_OIP_MAX_TENSORS];
  size_t ns = 0;
  if (r->n_outputs == 0) {
    for (size_t i = 0; i < n; i++)
      sel[ns++] = (wk_oip_output_t){outs[i].name, outs[i].t, 0, NULL, NULL, r->binary_output};
  } else {
    for (size_t k = 0; k < r->n_outputs; k++) {
      size_t i = 0;
      while (i < n && strcmp(outs[i].name, r->outputs[k].name) != 0) i++;
      if (i == n) {
        char names[400];
        size_t off = 0;
        names[0] = '\0';
        for (size_t q = 0; q < n && off < sizeof names; q++)
          off += (size_t)snprintf(names + off, sizeof names - off, "%s'%s'", q ? ", " : "",
                                  outs[q].name);
        return wk_err(err, WK_EINVAL, "outputs[%zu]: the model has no output '%.60s'; its outputs are %s",
                      k, r->outputs[k].name, names);
      }
      int bin = r->outputs[k].binary >= 0 ? r->outputs[k].binary : r->binary_output;
      sel[ns++] = (wk_oip_output_t){outs[i].name, outs[i].t, 0, NULL, NULL, bin};
    }
  }
  if (wk_oip_write_response(out, m->name, m->version, r->id, sel, ns, json_len) != 0)
    return wk_err(err, WK_ENOMEM, "cannot encode the model's output");
  return 0;
}

/* Whether the client asked for output `name` in binary: its own parameters.binary_data,
 * else the request's binary_data_output. */
static int wants_binary(const wk_oip_request_t *r, const char *name) {
  if (r == NULL) return 0;
  for (size_t k = 0; k < r->n_outputs; k++)
    if (strcmp(r->outputs[k].name, name) == 0 && r->outputs[k].binary >= 0) return r->outputs[k].binary;
  return r->binary_output;
}

/* The handler's outputs picked and ordered as the request lists them (all of them when it
 * lists none), each asked-for binary one's data moved after the JSON. */
static int shape_outputs(const wk_oip_request_t *r, json_t *root, wk_buf_t *tail, wk_err_t *err) {
  json_t *outs = json_object_get(root, "outputs");
  if (r && r->n_outputs) {
    json_t *picked = json_array();
    for (size_t k = 0; k < r->n_outputs; k++) {
      size_t i;
      json_t *o, *hit = NULL;
      json_array_foreach(outs, i, o) {
        if (json_is_string(json_object_get(o, "name")) &&
            strcmp(json_string_value(json_object_get(o, "name")), r->outputs[k].name) == 0)
          hit = o;
      }
      if (hit == NULL) {
        json_decref(picked);
        return wk_err(err, WK_EINVAL, "outputs[%zu]: the handler's answer has no output '%.60s'", k,
                      r->outputs[k].name);
      }
      json_array_append(picked, hit);
    }
    json_object_set_new(root, "outputs", picked);
    outs = picked;
  }
  size_t i;
  json_t *o;
  json_array_foreach(outs, i, o) {
    json_t *name = json_object_get(o, "name");
    if (!json_is_string(name) || !wants_binary(r, json_string_value(name))) continue;
    size_t before = tail->len;
    int rc = wk_oip_output_binary(o, i, tail, err);
    if (rc != 0 && rc != WK_ENOMEM) { /* the handler's fault, not the client's */
      wk_err_prefix(err, "the handler's answer cannot be sent as binary data");
      rc = WK_EMODEL;
    }
    if (rc != 0) return rc;
    json_t *params = json_object_get(o, "parameters");
    if (!json_is_object(params)) {
      params = json_object();
      json_object_set_new(o, "parameters", params);
    }
    json_object_set_new(params, "binary_data_size", json_integer((json_int_t)(tail->len - before)));
    json_object_del(o, "data");
  }
  return 0;
}

int wk__v2_encode_body(const wk_model_t *m, const wk_oip_request_t *r, const char *body,
                       size_t len, wk_buf_t *out, size_t *json_len, wk_err_t *err) {
  json_t *root = json_loadb(body ? body : "", body ? len : 0, 0, NULL);
  if (json_is_object(root) && json_is_array(json_object_get(root, "outputs"))) {
    json_object_set_new(root, "model_name", json_string(m->name));
    json_object_set_new(root, "model_version", json_string(m->version));
    if (r && r->id) json_object_set_new(root, "id", json_string(r->id));
    wk_buf_t tail = WK_BUF_INIT;
    int rc = shape_outputs(r, root, &tail, err);
    char *text = rc == 0 ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (rc == 0 && text == NULL) rc = wk_err(err, WK_ENOMEM, "out of memory");
    if (rc == 0 && wk_buf_puts(out, text) != 0) rc = wk_err(err, WK_ENOMEM, "out of memory");
    free(text);
    *json_len = out->len;
    if (rc == 0 && wk_buf_append(out, tail.data, tail.len) != 0) rc = wk_err(err, WK_ENOMEM, "out of memory");
    wk_buf_destroy(&tail);
    return rc;
  }
  json_decref(root);
  const char *elems[1] = {body ? body : ""};
  size_t lens[1] = {body ? len : 0};
  int bin = r && r->n_outputs ? wants_binary(r, r->outputs[0].name) : wants_binary(r, "OUTPUT__0");
  wk_oip_output_t o = {"OUTPUT__0", NULL, 1, elems, lens, bin};
  if (wk_oip_write_response(out, m->name, m->version, r ? r->id : NULL, &o, 1, json_len) != 0)
    return wk_err(err, WK_ENOMEM, "out of memory");
  return 0;
}
