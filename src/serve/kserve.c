/* KServe's v1 protocol on top of the model's own handler.
 *
 * The tensor handler takes `instances` (rows) and `inputs` itself: one job, its output
 * rows become `predictions`. Every other handler (images, Python) sees one request per
 * instance, as TorchServe's own handlers expect: each instance becomes a job of a group,
 * the jobs go through the queue and the batcher like any others (so a v1 request of 8
 * instances fills a batch of 8, and instances of several v1 requests batch together),
 * and the last job to finish assembles the one reply. Any failed instance fails the
 * request with its status and {"error": "..."}. */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/limits.h"
#include "serve/model_internal.h"
#include "tensor/oip.h"

typedef struct {
  int status;
  char *content_type;
  char *body; /* the answer, or the error message */
  size_t len;
} slot_t;

struct wk__group_s {
  wk_http_req_t *req;
  int explain;
  pthread_mutex_t lock;
  size_t n, left;
  slot_t *slots;
  /* v2: the reply is one BYTES output with an element per slot */
  int v2, binary;
  char *id, *model, *version;
};

static wk__group_t *group_new(wk_http_req_t *req, int explain, size_t n) {
  wk__group_t *g = calloc(1, sizeof *g);
  if (g) g->slots = calloc(n, sizeof *g->slots);
  if (g == NULL || g->slots == NULL) {
    free(g);
    return NULL;
  }
  g->req = req;
  g->explain = explain;
  g->n = g->left = n;
  pthread_mutex_init(&g->lock, NULL);
  return g;
}

static void group_free(wk__group_t *g) {
  free(g->id);
  free(g->model);
  free(g->version);
  for (size_t i = 0; i < g->n; i++) {
    free(g->slots[i].body);
    free(g->slots[i].content_type);
  }
  free(g->slots);
  pthread_mutex_destroy(&g->lock);
  free(g);
}

static int is_json_type(const char *ct) {
  return ct != NULL && strncasecmp(ct, "application/json", 16) == 0;
}

/* Appends one answer as a JSON value: JSON bodies as they are, text as a string, other
 * bytes as {"b64": ...}. */
static void put_value(wk_buf_t *b, const slot_t *s) {
  if (is_json_type(s->content_type) && s->len > 0) {
    size_t n = s->len;
    while (n > 0 && (s->body[n - 1] == '\n' || s->body[n - 1] == ' ')) n--;
    wk_buf_append(b, s->body, n);
    return;
  }
  int text = s->content_type == NULL || strncasecmp(s->content_type, "text/", 5) == 0;
  for (size_t i = 0; text && i < s->len; i++)
    if (s->body[i] == '\0') text = 0;
  if (text) {
    char *copy = strndup(s->body ? s->body : "", s->len);
    wk_buf_json_str(b, copy ? copy : "");
    free(copy);
  } else {
    wk_buf_puts(b, "{\"b64\": \"");
    wk_base64_encode(b, s->body, s->len);
    wk_buf_puts(b, "\"}");
  }
}

static void reply_error(wk_http_req_t *req, int status, const char *msg) {
  wk_http_reply_kserve_error(req, status, "%s", msg);
}

static void send_v2(wk_http_req_t *req, wk_buf_t *b, size_t json_len) {
  size_t len;
  char *body = wk_buf_steal(b, &len);
  if (json_len < len) {
    char hdr[32];
    snprintf(hdr, sizeof hdr, "%zu", json_len);
    wk_http_reply_header(req, "Inference-Header-Content-Length", hdr);
    wk_http_reply(req, 200, "application/octet-stream", body, len);
  } else {
    wk_http_reply(req, 200, "application/json", body, len);
  }
}

static void group_reply(wk__group_t *g) {
  wk_buf_t b = WK_BUF_INIT;
  const slot_t *failed = NULL;
  for (size_t i = 0; i < g->n && failed == NULL; i++)
    if (g->slots[i].status >= 400) failed = &g->slots[i];
  int status = 200;
  if (failed) {
    status = failed->status;
    char *msg = strndup(failed->body ? failed->body : "failed", failed->body ? failed->len : 6);
    wk_buf_puts(&b, "{\"error\": ");
    wk_buf_json_str(&b, msg ? msg : "failed");
    wk_buf_puts(&b, "}\n");
    free(msg);
  } else if (g->v2) {
    const char **elems = calloc(g->n, sizeof *elems);
    size_t *lens = calloc(g->n, sizeof *lens);
    if (elems == NULL || lens == NULL) {
      free(elems);
      free(lens);
      wk_buf_destroy(&b);
      reply_error(g->req, 500, "out of memory");
      return;
    }
    for (size_t i = 0; i < g->n; i++) {
      elems[i] = g->slots[i].body ? g->slots[i].body : "";
      lens[i] = g->slots[i].len;
    }
    wk_oip_output_t o = {"OUTPUT__0", NULL, g->n, elems, lens, g->binary};
    size_t json_len;
    wk_oip_write_response(&b, g->model, g->version, g->id, &o, 1, &json_len);
    free(elems);
    free(lens);
    send_v2(g->req, &b, json_len);
    return;
  } else {
    wk_buf_puts(&b, g->explain ? "{\"explanations\": [" : "{\"predictions\": [");
    for (size_t i = 0; i < g->n; i++) {
      if (i) wk_buf_puts(&b, ", ");
      put_value(&b, &g->slots[i]);
    }
    wk_buf_puts(&b, "]}\n");
  }
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  wk_http_reply(g->req, status, "application/json", body, len);
}

void wk__group_put(wk__group_t *g, size_t slot, int status, const char *content_type, char *body,
                   size_t len, const char *msg) {
  slot_t *s = &g->slots[slot];
  pthread_mutex_lock(&g->lock);
  s->status = status;
  if (msg != NULL) {
    free(body);
    s->body = strdup(msg);
    s->len = s->body ? strlen(s->body) : 0;
  } else {
    s->body = body;
    s->len = body ? len : 0;
    s->content_type = content_type ? strdup(content_type) : NULL;
  }
  int last = --g->left == 0;
  pthread_mutex_unlock(&g->lock);
  if (!last) return;
  group_reply(g);
  group_free(g);
}

/* The bytes of a binary instance: {"b64": "..."}, or {"data"|"body": "<base64>" or
 * {"b64": ...}}, or a plain base64 string. 1 and *out (malloc'd) when inst is one, 0 when
 * it is not binary, WK_EINVAL for bad base64. */
static int instance_bytes(json_t *inst, int strings_are_b64, unsigned char **out, size_t *len,
                          wk_err_t *err) {
  json_t *v = inst;
  if (json_is_object(inst)) {
    v = json_object_get(inst, "b64");
    if (v == NULL && json_object_size(inst) == 1) {
      json_t *d = json_object_get(inst, "data");
      if (d == NULL) d = json_object_get(inst, "body");
      if (json_is_object(d)) v = json_object_get(d, "b64");
      else if (strings_are_b64) v = d;
    }
    if (!json_is_string(v)) return 0;
  } else if (!(strings_are_b64 && json_is_string(inst))) {
    return 0;
  }
  int rc = wk_base64_decode(json_string_value(v), json_string_length(v), out, len, err);
  return rc == 0 ? 1 : rc;
}

void wk_model_predict_v1(wk_model_t *m, wk_http_req_t *req, int explain) {
  if (m->kind == WK__H_TENSOR) {
    wk__submit(m, req, explain, WK__ENV_V1); /* rows in, rows out */
    return;
  }
  size_t blen;
  const char *btext = wk_http_req_body(req, &blen);
  json_error_t je;
  json_t *root = json_loadb(btext, blen, 0, &je);
  if (!json_is_object(root)) {
    char msg[300];
    if (root == NULL)
      snprintf(msg, sizeof msg, "malformed JSON at line %d, column %d: %s", je.line, je.column, je.text);
    else
      snprintf(msg, sizeof msg, "expected a JSON object with \"instances\" (a list) or \"inputs\"");
    json_decref(root);
    reply_error(req, 400, msg);
    return;
  }
  json_t *list = json_object_get(root, "instances");
  const char *field = "instances";
  if (list == NULL) {
    list = json_object_get(root, "inputs");
    field = "inputs";
  }
  if (list == NULL || (strcmp(field, "instances") == 0 && !json_is_array(list))) {
    json_decref(root);
    reply_error(req, 400, list == NULL ? "expected \"instances\" (a list) or \"inputs\" in the body"
                                       : "\"instances\" must be a list, one element per instance");
    return;
  }
  size_t n = json_is_array(list) ? json_array_size(list) : 1;
  if (n == 0 || n > WK_MAX_V1_INSTANCES) {
    char msg[160];
    snprintf(msg, sizeof msg, "\"%s\" has %zu elements; expected 1 to %d", field, n, WK_MAX_V1_INSTANCES);
    json_decref(root);
    reply_error(req, 400, msg);
    return;
  }
  wk__group_t *g = group_new(req, explain, n);
  if (g == NULL) {
    json_decref(root);
    reply_error(req, 500, "out of memory");
    return;
  }
  for (size_t k = 0; k < n; k++) {
    json_t *inst = json_is_array(list) ? json_array_get(list, k) : list;
    wk_err_t err = {{0}};
    wk__job_t *j = NULL;
    int rc = wk__job_new(m, req, explain, &j, &err);
    if (rc != 0) {
      wk__group_put(g, k, rc == WK_ENOMEM ? 500 : 400, NULL, NULL, 0, err.msg);
      continue;
    }
    j->group = g;
    j->slot = k;
    j->envelope = WK__ENV_V1;
    unsigned char *bytes = NULL;
    size_t len = 0;
    rc = instance_bytes(inst, WK__TAKES_IMAGES(m->kind), &bytes, &len, &err);
    if (WK__TAKES_IMAGES(m->kind)) {
      if (rc == 0)
        rc = wk_err(&err, WK_EINVAL,
                    "expected an image as {\"b64\": \"<base64 of a JPEG or PNG>\"} (or a base64 "
                    "string, or {\"data\": ...})");
      else if (rc == 1) {
        j->image = bytes;
        j->image_len = len;
        rc = 0;
      }
    } else if (rc == 1) {
      rc = wk__python_job_set_body(j, req, bytes, len, "application/octet-stream", &err);
      free(bytes);
    } else if (rc == 0) {
      char *text = json_dumps(inst, JSON_COMPACT | JSON_ENCODE_ANY);
      rc = text ? wk__python_job_set_body(j, req, text, strlen(text), "application/json", &err)
                : wk_err(&err, WK_ENOMEM, "out of memory");
      free(text);
    }
    if (rc != 0) {
      if (rc != WK_ENOMEM) wk_err_prefix(&err, "instance %zu", k);
      wk__job_reply_error(m, j, rc == WK_ENOMEM ? 500 : 400, "BadRequestException", err.msg);
      wk__job_free(j);
      continue;
    }
    wk__job_enqueue(m, j);
  }
  json_decref(root);
}

/* ==== KServe v2 (Open Inference Protocol) ==== */

static void v2_error(wk_http_req_t *req, int status, const char *msg) { reply_error(req, status, msg); }

/* The name of item k of wick.<key> (inputs/outputs declared in the model config), or NULL. */
static const char *declared_name(const wk_model_t *m, const char *key, size_t k) {
  const wk_yaml_t *list = wk_yaml_get(wk_yaml_get(m->config.root, "wick"), key);
  if (list == NULL || list->kind != WK_YAML_SEQ || k >= list->count) return NULL;
  const wk_yaml_t *n = wk_yaml_get(list->items[k], "name");
  return n && n->kind == WK_YAML_SCALAR ? n->scalar : NULL;
}

/* forward()'s argument index for an input name: the TorchScript argument name, a name
 * declared in wick.inputs, or INPUT__k. -1 if none. */
static int arg_index(const wk_model_t *m, const char *name) {
  size_t nargs = wk_torch_arg_count(m->torch);
  for (size_t a = 0; a < nargs; a++) {
    const char *d = declared_name(m, "inputs", a);
    if (strcmp(wk_torch_arg_name(m->torch, a), name) == 0 || (d && strcmp(d, name) == 0)) return (int)a;
  }
  unsigned k;
  char tail;
  if (sscanf(name, "INPUT__%u%c", &k, &tail) == 1 && k < nargs) return (int)k;
  return -1;
}

static void arg_names(const wk_model_t *m, char *out, size_t cap) {
  size_t n = 0;
  out[0] = '\0';
  for (size_t a = 0; a < wk_torch_arg_count(m->torch) && n < cap; a++)
    n += (size_t)snprintf(out + n, cap - n, "%s'%s' (INPUT__%zu)", a ? ", " : "", wk_torch_arg_name(m->torch, a), a);
}

/* One output of the model's answer: a tensor with its name. */
typedef struct {
  char name[128];
  const wk_tensor_t *t;
} named_t;

static int collect_outputs(const wk_model_t *m, const wk_value_t *v, named_t *out, size_t cap, size_t *n,
                           wk_err_t *err) {
  *n = 0;
  if (v && v->kind == WK_V_TENSOR) {
    const char *d = declared_name(m, "outputs", 0);
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
                      "output %zu of the model is not a tensor; the v2 protocol carries tensors only "
                      "(use /predictions for other outputs)",
                      i);
      const char *d = declared_name(m, "outputs", i);
      if (v->kind == WK_V_DICT) snprintf(out[i].name, sizeof out[i].name, "%s", v->keys[i]);
      else if (d) snprintf(out[i].name, sizeof out[i].name, "%s", d);
      else snprintf(out[i].name, sizeof out[i].name, "OUTPUT__%zu", i);
      out[i].t = &it->tensor;
      (*n)++;
    }
    return 0;
  }
  return wk_err(err, WK_EUNSUPPORTED,
                "the model's output is not a tensor, a list of tensors or a dict of tensors; the v2 "
                "protocol carries tensors only (use /predictions for other outputs)");
}

void wk__v2_reply_value(wk_model_t *m, wk__job_t *j, const wk_value_t *v) {
  named_t outs[WK_OIP_MAX_TENSORS];
  size_t n;
  wk_err_t err = {{0}};
  if (collect_outputs(m, v, outs, WK_OIP_MAX_TENSORS, &n, &err) != 0) {
    wk__job_reply_error(m, j, 500, "InternalServerException", err.msg);
    return;
  }
  const wk_oip_request_t *r = j->v2;
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
        char names[512];
        size_t off = 0;
        names[0] = '\0';
        for (size_t q = 0; q < n && off < sizeof names; q++)
          off += (size_t)snprintf(names + off, sizeof names - off, "%s'%s'", q ? ", " : "", outs[q].name);
        char msg[800];
        snprintf(msg, sizeof msg, "outputs[%zu]: the model has no output '%.100s'; its outputs are %s", k,
                 r->outputs[k].name, names);
        wk__job_reply_error(m, j, 400, "BadRequestException", msg);
        return;
      }
      int bin = r->outputs[k].binary >= 0 ? r->outputs[k].binary : r->binary_output;
      sel[ns++] = (wk_oip_output_t){outs[i].name, outs[i].t, 0, NULL, NULL, bin};
    }
  }
  wk_buf_t b = WK_BUF_INIT;
  size_t json_len;
  if (wk_oip_write_response(&b, m->name, m->version, r->id, sel, ns, &json_len) != 0) {
    wk_buf_destroy(&b);
    wk__job_reply_error(m, j, 500, "InternalServerException", "cannot encode the model's output");
    return;
  }
  int expected = 0;
  if (!atomic_compare_exchange_strong(&j->answered, &expected, 1)) {
    wk_buf_destroy(&b);
    return;
  }
  atomic_fetch_add(&m->req_ok, 1);
  send_v2(j->req, &b, json_len);
}

void wk__v2_reply_python(wk_model_t *m, wk__job_t *j, int status, char *body, size_t len) {
  (void)status;
  json_t *root = json_loadb(body ? body : "", body ? len : 0, 0, NULL);
  wk_buf_t b = WK_BUF_INIT;
  if (json_is_object(root) && json_is_array(json_object_get(root, "outputs"))) {
    json_object_set_new(root, "model_name", json_string(m->name));
    json_object_set_new(root, "model_version", json_string(m->version));
    if (j->v2 && j->v2->id) json_object_set_new(root, "id", json_string(j->v2->id));
    char *text = json_dumps(root, JSON_COMPACT);
    if (text) wk_buf_puts(&b, text);
    free(text);
  } else {
    const char *elems[1] = {body ? body : ""};
    size_t lens[1] = {body ? len : 0};
    wk_oip_output_t o = {"OUTPUT__0", NULL, 1, elems, lens, j->v2 ? j->v2->binary_output : 0};
    size_t json_len;
    wk_oip_write_response(&b, m->name, m->version, j->v2 ? j->v2->id : NULL, &o, 1, &json_len);
    json_decref(root);
    free(body);
    send_v2(j->req, &b, json_len);
    return;
  }
  json_decref(root);
  free(body);
  send_v2(j->req, &b, b.len);
}

/* Image handler: one job per BYTES element (base64 text in JSON, raw bytes in binary). */
static void v2_images(wk_model_t *m, wk_http_req_t *req, wk_oip_request_t *r) {
  if (r->n_inputs != 1 || !r->inputs[0].is_bytes) {
    v2_error(req, 400, "the image handler takes one BYTES input whose elements are JPEG or PNG images");
    return;
  }
  wk_oip_input_t *in = &r->inputs[0];
  size_t n = in->n_elems;
  if (n == 0 || n > WK_MAX_V1_INSTANCES) {
    char msg[160];
    snprintf(msg, sizeof msg, "inputs[0] '%.60s': %zu images; expected 1 to %d", in->name, n, WK_MAX_V1_INSTANCES);
    v2_error(req, 400, msg);
    return;
  }
  wk__group_t *g = group_new(req, 0, n);
  if (g == NULL) {
    v2_error(req, 500, "out of memory");
    return;
  }
  g->v2 = 1;
  g->id = r->id ? strdup(r->id) : NULL;
  g->model = strdup(m->name);
  g->version = strdup(m->version);
  g->binary = r->n_outputs && r->outputs[0].binary >= 0 ? r->outputs[0].binary : r->binary_output;
  for (size_t k = 0; k < n; k++) {
    wk_err_t err = {{0}};
    wk__job_t *j = NULL;
    int rc = wk__job_new(m, req, 0, &j, &err);
    if (rc != 0) {
      wk__group_put(g, k, rc == WK_ENOMEM ? 500 : 400, NULL, NULL, 0, err.msg);
      continue;
    }
    j->group = g;
    j->slot = k;
    j->envelope = WK__ENV_V2;
    if (in->binary) {
      j->image = in->elems[k];
      j->image_len = in->elem_lens[k];
      in->elems[k] = NULL;
    } else {
      rc = wk_base64_decode((const char *)in->elems[k], in->elem_lens[k], &j->image, &j->image_len, &err);
      if (rc != 0) {
        wk_err_prefix(&err, "inputs[0] '%.60s' element %zu (base64 of an image in JSON)", in->name, k);
        wk__job_reply_error(m, j, 400, "BadRequestException", err.msg);
        wk__job_free(j);
        continue;
      }
    }
    wk__job_enqueue(m, j);
  }
}

void wk_model_infer_v2(wk_model_t *m, wk_http_req_t *req) {
  size_t len;
  const char *body = wk_http_req_body(req, &len);
  size_t json_len = len;
  const char *h = wk_http_req_header(req, "Inference-Header-Content-Length");
  if (h != NULL) {
    char *end;
    unsigned long long v = strtoull(h, &end, 10);
    if (*h == '\0' || *end != '\0' || *h == '-') {
      v2_error(req, 400, "Inference-Header-Content-Length must be a byte count");
      return;
    }
    if (v > len) {
      char msg[200];
      snprintf(msg, sizeof msg, "Inference-Header-Content-Length is %llu, larger than the body's %zu bytes", v, len);
      v2_error(req, 400, msg);
      return;
    }
    json_len = (size_t)v;
  }
  wk_oip_request_t *r = calloc(1, sizeof *r);
  wk_err_t err = {{0}};
  int rc = r ? wk_oip_parse_request(body, len, json_len, r, &err) : wk_err(&err, WK_ENOMEM, "out of memory");
  if (rc != 0) {
    free(r);
    v2_error(req, rc == WK_ENOMEM ? 500 : rc == WK_ETOOBIG ? 413 : 400, err.msg);
    return;
  }
  if (WK__TAKES_IMAGES(m->kind)) {
    v2_images(m, req, r);
    wk_oip_request_destroy(r);
    free(r);
    return;
  }
  wk__job_t *j = NULL;
  if ((rc = wk__job_new(m, req, 0, &j, &err)) != 0) {
    wk_oip_request_destroy(r);
    free(r);
    v2_error(req, 500, err.msg);
    return;
  }
  j->envelope = WK__ENV_V2;
  j->v2 = r;
  if (m->kind == WK__H_PYTHON) {
    if (json_len != len)
      rc = wk_err(&err, WK_EUNSUPPORTED,
                  "binary tensor data is not passed to Python handlers; send the tensors as JSON \"data\"");
    else
      rc = wk__python_job_set_body(j, req, body, json_len, "application/json", &err);
  } else {
    size_t nargs = wk_torch_arg_count(m->torch);
    char given[WK_MAX_NAMED_INPUTS] = {0};
    if (nargs > WK_MAX_NAMED_INPUTS)
      rc = wk_err(&err, WK_EUNSUPPORTED, "forward() takes %zu tensors; wick passes at most %d", nargs,
                  WK_MAX_NAMED_INPUTS);
    for (size_t i = 0; i < r->n_inputs && rc == 0; i++) {
      wk_oip_input_t *in = &r->inputs[i];
      int a = arg_index(m, in->name);
      char names[600];
      if (a < 0) {
        arg_names(m, names, sizeof names);
        rc = wk_err(&err, WK_EINVAL, "inputs[%zu] '%.100s': the model has no such input; its inputs are %s", i,
                    in->name, names);
      } else if (in->is_bytes) {
        rc = wk_err(&err, WK_EINVAL, "inputs[%zu] '%.100s': BYTES inputs need the image or a Python handler; "
                    "this model takes tensors", i, in->name);
      } else if (given[a]) {
        rc = wk_err(&err, WK_EINVAL, "inputs[%zu] '%.100s': forward() argument %d is given twice", i, in->name, a);
      } else {
        j->inputs.tensors[a] = in->tensor;
        memset(&in->tensor, 0, sizeof in->tensor);
        given[a] = 1;
      }
    }
    for (size_t a = 0; a < nargs && rc == 0; a++)
      if (!given[a])
        rc = wk_err(&err, WK_EINVAL, "no input for forward() argument '%s' (INPUT__%zu)",
                    wk_torch_arg_name(m->torch, a), a);
    j->inputs.count = nargs <= WK_MAX_NAMED_INPUTS ? nargs : 0; /* freed with the job */
  }
  if (rc != 0) {
    wk__job_reply_error(m, j, rc == WK_ENOMEM ? 500 : rc == WK_EUNSUPPORTED ? 501 : 400, "BadRequestException",
                        err.msg);
    wk__job_free(j);
    return;
  }
  wk__job_enqueue(m, j);
}

/* The tensors of wick.<key> in the model config as a JSON list, or NULL. */
static json_t *declared(const wk_model_t *m, const char *key) {
  const wk_yaml_t *list = wk_yaml_get(wk_yaml_get(m->config.root, "wick"), key);
  if (list == NULL) return NULL;
  char *text = wk_yaml_to_json(list);
  json_t *j = text ? json_loads(text, 0, NULL) : NULL;
  free(text);
  if (!json_is_array(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

static json_t *tensor_meta(const char *name, const char *datatype) {
  json_t *o = json_object();
  json_object_set_new(o, "name", json_string(name));
  json_object_set_new(o, "datatype", json_string(datatype));
  json_object_set_new(o, "shape", json_pack("[i]", -1));
  return o;
}

void wk_model_v2_metadata(const wk_model_t *m, wk_buf_t *out) {
  json_t *root = json_object();
  json_object_set_new(root, "name", json_string(m->name));
  json_object_set_new(root, "versions", json_pack("[s]", m->version));
  json_object_set_new(root, "platform", json_string(m->kind == WK__H_PYTHON ? "python" : "pytorch_libtorch"));
  json_t *ins = declared(m, "inputs"), *outs = declared(m, "outputs");
  if (ins == NULL) {
    ins = json_array();
    if (m->kind == WK__H_TENSOR) {
      for (size_t a = 0; a < wk_torch_arg_count(m->torch); a++)
        json_array_append_new(ins, tensor_meta(wk_torch_arg_name(m->torch, a), "FP32"));
    } else {
      json_array_append_new(ins, tensor_meta("INPUT__0", "BYTES"));
    }
  }
  if (outs == NULL) {
    outs = json_array();
    json_array_append_new(outs, tensor_meta("OUTPUT__0", m->kind == WK__H_TENSOR ? "FP32" : "BYTES"));
  }
  json_object_set_new(root, "inputs", ins);
  json_object_set_new(root, "outputs", outs);
  char *text = json_dumps(root, JSON_COMPACT);
  if (text) wk_buf_puts(out, text);
  free(text);
  json_decref(root);
}
