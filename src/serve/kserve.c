/* KServe's v1 and v2 protocols on top of the model's own handler.
 *
 * The tensor handler (WK__HF_ROWS) takes v1 `instances` (rows) and `inputs` itself: one
 * job, its output rows become `predictions`; v2 inputs go to its parse_v2. Every other
 * handler (images, Python) sees one request per instance, as TorchServe's own handlers
 * expect: each instance becomes a job of a group, whose sink is one slot of the group; the
 * jobs go through the queue and the batcher like any others (so a v1 request of 8
 * instances fills a batch of 8, and instances of several requests batch together), and the
 * last job to finish assembles the one answer for the request's own sink. Any failed
 * instance fails the request with its status and message. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/limits.h"
#include "serve/image.h"
#include "serve/model_internal.h"
#include "serve/v2_encode.h"
#include "tensor/oip.h"

typedef struct group_s group_t;

/* One instance's answer, and the sink its job answers to. */
typedef struct {
  wk_sink_t sink; /* first: the job's sink */
  group_t *g;
  int status;
  char *content_type;
  char *body; /* the answer, or the error message */
  size_t len;
} slot_t;

struct group_s {
  wk_sink_t *parent; /* the request's own sink */
  int explain;
  pthread_mutex_t lock;
  size_t n, left;
  slot_t *slots;
  /* v2: the answer is one BYTES output with an element per slot */
  int v2, binary;
  char *id, *model, *version;
};

static void group_free(group_t *g) {
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

static void group_reply(group_t *g) {
  wk_sink_t *parent = g->parent;
  for (size_t i = 0; i < g->n; i++) {
    const slot_t *s = &g->slots[i];
    if (s->status < 400) continue;
    char *msg = strndup(s->body ? s->body : "failed", s->body ? s->len : 6);
    parent->ops->error(parent, s->status, "PredictionException", msg ? msg : "failed");
    free(msg);
    return;
  }
  wk_buf_t b = WK_BUF_INIT;
  if (g->v2) {
    const char **elems = calloc(g->n, sizeof *elems);
    size_t *lens = calloc(g->n, sizeof *lens);
    size_t json_len = 0;
    int rc = elems && lens ? 0 : WK_ENOMEM;
    for (size_t i = 0; rc == 0 && i < g->n; i++) {
      elems[i] = g->slots[i].body ? g->slots[i].body : "";
      lens[i] = g->slots[i].len;
    }
    wk_oip_output_t o = {"OUTPUT__0", NULL, g->n, elems, lens, g->binary};
    if (rc == 0) rc = wk_oip_write_response(&b, g->model, g->version, g->id, &o, 1, &json_len);
    free(elems);
    free(lens);
    if (rc != 0) {
      wk_buf_destroy(&b);
      parent->ops->error(parent, 500, "InternalServerException", "out of memory");
      return;
    }
    wk__sink_reply_v2(parent, &b, json_len);
    return;
  }
  wk_buf_puts(&b, g->explain ? "{\"explanations\": [" : "{\"predictions\": [");
  for (size_t i = 0; i < g->n; i++) {
    if (i) wk_buf_puts(&b, ", ");
    put_value(&b, &g->slots[i]);
  }
  wk_buf_puts(&b, "]}\n");
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  parent->ops->reply(parent, 200, "application/json", body, len);
}

/* Records slot s's answer (body taken, may be NULL; msg for errors); the last one answers
 * the request and frees the group. */
static void slot_put(slot_t *s, int status, const char *content_type, char *body, size_t len,
                     const char *msg) {
  group_t *g = s->g;
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

static void slot_reply(wk_sink_t *sink, int status, const char *content_type, char *body,
                       size_t len) {
  slot_put((slot_t *)sink, status, content_type, body, len, NULL);
}

static void slot_error(wk_sink_t *sink, int status, const char *type, const char *msg) {
  (void)type;
  slot_put((slot_t *)sink, status, NULL, NULL, 0, msg ? msg : "failed");
}

/* An unanswered slot keeps its group, and so the parent, alive. */
static int slot_gone(wk_sink_t *sink) {
  wk_sink_t *parent = ((slot_t *)sink)->g->parent;
  return parent->ops->gone != NULL && parent->ops->gone(parent);
}

/* An instance's answer is a part of one reply: no headers of its own, no streams. */
static const wk_sink_ops_t slot_ops = {.reply = slot_reply, .error = slot_error, .gone = slot_gone};

static group_t *group_new(wk_sink_t *parent, int explain, size_t n) {
  group_t *g = calloc(1, sizeof *g);
  if (g) g->slots = calloc(n, sizeof *g->slots);
  if (g == NULL || g->slots == NULL) {
    free(g);
    return NULL;
  }
  g->parent = parent;
  g->explain = explain;
  g->n = g->left = n;
  for (size_t i = 0; i < n; i++) {
    g->slots[i].sink.ops = &slot_ops;
    g->slots[i].g = g;
  }
  pthread_mutex_init(&g->lock, NULL);
  return g;
}

/* A job for instance k of g, or NULL when it could not be made (the slot is answered). */
static wk__job_t *instance_job(wk_model_t *m, group_t *g, size_t k, const wk_request_t *r,
                               int explain) {
  wk_err_t err = {{0}};
  wk__job_t *j = NULL;
  int rc = wk__job_new(m, &g->slots[k].sink, r, explain, WK__ENV_TS, &j, &err);
  if (rc != 0) {
    slot_put(&g->slots[k], wk__error_status(rc, NULL), NULL, NULL, 0, err.msg);
    return NULL;
  }
  return j;
}

/* The same request with another body (an instance's), for the handler's parse. */
static wk_request_t sub_request(const wk_request_t *r, const void *body, size_t len,
                                const char *content_type) {
  wk_request_t s = *r;
  s.v2 = NULL; /* the body is the request now */
  s.body = body;
  s.body_len = len;
  s.content_type = content_type;
  return s;
}

/* ==== KServe v1 ==== */

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

/* A Python model with TorchServe's service_envelope speaks the protocol itself: the body
 * goes to it as it came and its answer back as it is, as in TorchServe. */
static int enveloped(const wk_model_t *m) {
  return m->service_envelope != NULL && strcmp(m->h->platform, "python") == 0;
}

void wk_model_predict_v1(wk_model_t *m, const wk_request_t *r, wk_sink_t *sink, int explain) {
  if (enveloped(m)) {
    wk__submit(m, r, sink, explain, WK__ENV_TS);
    return;
  }
  if (m->h->flags & WK__HF_ROWS) {
    wk__submit(m, r, sink, explain, WK__ENV_V1); /* rows in, rows out */
    return;
  }
  int images = (m->h->flags & WK__HF_IMAGES) != 0;
  json_error_t je;
  json_t *root = json_loadb(r->body, r->body_len, 0, &je);
  if (!json_is_object(root)) {
    char msg[300];
    if (root == NULL)
      snprintf(msg, sizeof msg, "malformed JSON at line %d, column %d: %s", je.line, je.column, je.text);
    else
      snprintf(msg, sizeof msg, "expected a JSON object with \"instances\" (a list) or \"inputs\"");
    json_decref(root);
    sink->ops->error(sink, 400, "BadRequestException", msg);
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
    sink->ops->error(sink, 400, "BadRequestException",
                     list == NULL ? "expected \"instances\" (a list) or \"inputs\" in the body"
                                  : "\"instances\" must be a list, one element per instance");
    return;
  }
  size_t n = json_is_array(list) ? json_array_size(list) : 1;
  if (n == 0 || n > WK_MAX_V1_INSTANCES) {
    char msg[160];
    snprintf(msg, sizeof msg, "\"%s\" has %zu elements; expected 1 to %d", field, n, WK_MAX_V1_INSTANCES);
    json_decref(root);
    sink->ops->error(sink, 400, "BadRequestException", msg);
    return;
  }
  group_t *g = group_new(sink, explain, n);
  if (g == NULL) {
    json_decref(root);
    sink->ops->error(sink, 500, "InternalServerException", "out of memory");
    return;
  }
  for (size_t k = 0; k < n; k++) {
    json_t *inst = json_is_array(list) ? json_array_get(list, k) : list;
    wk__job_t *j = instance_job(m, g, k, r, explain);
    if (j == NULL) continue;
    wk_err_t err = {{0}};
    unsigned char *bytes = NULL;
    size_t len = 0;
    int rc = instance_bytes(inst, images, &bytes, &len, &err);
    if (images) {
      if (rc == 0)
        rc = wk_err(&err, WK_EINVAL,
                    "expected an image as {\"b64\": \"<base64 of a JPEG or PNG>\"} (or a base64 "
                    "string, or {\"data\": ...})");
      else if (rc == 1) {
        j->data = bytes;
        j->data_len = len;
        rc = wk__image_admit(m, j, &err);
      }
    } else if (rc == 1) {
      wk_request_t sub = sub_request(r, bytes, len, "application/octet-stream");
      rc = m->h->parse(m, j, &sub, &err);
      free(bytes);
    } else if (rc == 0) {
      char *text = json_dumps(inst, JSON_COMPACT | JSON_ENCODE_ANY);
      wk_request_t sub = sub_request(r, text ? text : "", text ? strlen(text) : 0, "application/json");
      rc = text ? m->h->parse(m, j, &sub, &err) : wk_err(&err, WK_ENOMEM, "out of memory");
      free(text);
    }
    if (rc != 0) {
      if (rc != WK_ENOMEM) wk_err_prefix(&err, "instance %zu", k);
      wk__job_fail(m, j, rc, err.msg);
      wk__job_free(j);
      continue;
    }
    wk__job_enqueue(m, j);
  }
  json_decref(root);
}

/* ==== KServe v2 (Open Inference Protocol) ==== */

/* Image handlers: one job per BYTES element (base64 text in JSON, raw bytes in binary). */
static void v2_images(wk_model_t *m, const wk_request_t *req, wk_sink_t *sink, wk_oip_request_t *r) {
  if (r->n_inputs != 1 || !r->inputs[0].is_bytes) {
    sink->ops->error(sink, 400, "BadRequestException",
                     "the image handler takes one BYTES input whose elements are JPEG or PNG images");
    return;
  }
  wk_oip_input_t *in = &r->inputs[0];
  size_t n = in->n_elems;
  if (n == 0 || n > WK_MAX_V1_INSTANCES) {
    char msg[160];
    snprintf(msg, sizeof msg, "inputs[0] '%.60s': %zu images; expected 1 to %d", in->name, n, WK_MAX_V1_INSTANCES);
    sink->ops->error(sink, 400, "BadRequestException", msg);
    return;
  }
  group_t *g = group_new(sink, 0, n);
  if (g == NULL) {
    sink->ops->error(sink, 500, "InternalServerException", "out of memory");
    return;
  }
  g->v2 = 1;
  g->id = r->id ? strdup(r->id) : NULL;
  g->model = strdup(m->name);
  g->version = strdup(m->version);
  g->binary = r->n_outputs && r->outputs[0].binary >= 0 ? r->outputs[0].binary : r->binary_output;
  for (size_t k = 0; k < n; k++) {
    wk__job_t *j = instance_job(m, g, k, req, 0);
    if (j == NULL) continue;
    wk_err_t err = {{0}};
    int rc = 0;
    if (in->binary) {
      j->data = in->elems[k];
      j->data_len = in->elem_lens[k];
      in->elems[k] = NULL;
    } else {
      rc = wk_base64_decode((const char *)in->elems[k], in->elem_lens[k], &j->data, &j->data_len, &err);
      if (rc != 0)
        wk_err_prefix(&err, "inputs[0] '%.60s' element %zu (base64 of an image in JSON)", in->name, k);
    }
    if (rc == 0 && (rc = wk__image_admit(m, j, &err)) != 0)
      wk_err_prefix(&err, "inputs[0] '%.60s' element %zu", in->name, k);
    if (rc != 0) {
      wk__job_fail(m, j, rc, err.msg);
      wk__job_free(j);
      continue;
    }
    wk__job_enqueue(m, j);
  }
}

/* A request its transport decoded (req->v2), for what reads the body: the same request as
 * JSON, binary data in "data". */
static void submit_decoded_as_json(wk_model_t *m, const wk_request_t *req, wk_sink_t *sink, int explain) {
  wk_buf_t jb = WK_BUF_INIT;
  if (wk_oip_request_json(req->v2, &jb) != 0) {
    wk_buf_destroy(&jb);
    sink->ops->error(sink, 507, "InternalServerException", "out of memory");
    return;
  }
  wk_request_t sub = sub_request(req, jb.data, jb.len, "application/json");
  wk__submit(m, &sub, sink, explain, WK__ENV_TS);
  wk_buf_destroy(&jb);
}

void wk_model_infer_v2(wk_model_t *m, const wk_request_t *req, wk_sink_t *sink, int explain) {
  if (enveloped(m)) {
    if (req->v2) submit_decoded_as_json(m, req, sink, explain);
    else wk__submit(m, req, sink, explain, WK__ENV_TS);
    return;
  }
  size_t len = req->body_len;
  const char *body = req->body;
  size_t json_len = len;
  const char *h = wk_request_header(req, "Inference-Header-Content-Length");
  if (h != NULL) {
    char *end;
    unsigned long long v = strtoull(h, &end, 10);
    if (*h == '\0' || *end != '\0' || *h == '-') {
      sink->ops->error(sink, 400, "BadRequestException", "Inference-Header-Content-Length must be a byte count");
      return;
    }
    if (v > len) {
      char msg[200];
      snprintf(msg, sizeof msg, "Inference-Header-Content-Length is %llu, larger than the body's %zu bytes", v, len);
      sink->ops->error(sink, 400, "BadRequestException", msg);
      return;
    }
    json_len = (size_t)v;
  }
  wk_oip_request_t *r = calloc(1, sizeof *r);
  wk_err_t err = {{0}};
  int rc;
  if (r && req->v2) { /* decoded already: take its contents */
    *r = *req->v2;
    memset(req->v2, 0, sizeof *req->v2);
    rc = 0;
  } else {
    rc = r ? wk_oip_parse_request(body, len, json_len, r, &err) : wk_err(&err, WK_ENOMEM, "out of memory");
  }
  if (rc != 0) {
    free(r);
    const char *type;
    int status = wk__error_status(rc, &type);
    sink->ops->error(sink, status, type, err.msg);
    return;
  }
  if (m->h->parse_v2 == NULL && (m->h->flags & WK__HF_IMAGES)) {
    v2_images(m, req, sink, r);
    wk_oip_request_destroy(r);
    free(r);
    return;
  }
  wk__job_t *j = NULL;
  if ((rc = wk__job_new(m, sink, req, explain, WK__ENV_V2, &j, &err)) != 0) {
    wk_oip_request_destroy(r);
    free(r);
    sink->ops->error(sink, 500, "InternalServerException", err.msg);
    return;
  }
  j->v2 = r;
  if (m->h->parse_v2) {
    rc = m->h->parse_v2(m, j, r, &err);
  } else if (json_len != len || req->v2) {
    /* binary tensor data (or a decoded request) for a handler that reads JSON: the same
     * request, data in JSON */
    wk_buf_t jb = WK_BUF_INIT;
    rc = wk_oip_request_json(r, &jb);
    if (rc == 0) {
      wk_request_t sub = sub_request(req, jb.data, jb.len, "application/json");
      rc = m->h->parse(m, j, &sub, &err);
    } else {
      wk_err(&err, rc, "out of memory");
    }
    wk_buf_destroy(&jb);
  } else {
    wk_request_t sub = sub_request(req, body, json_len, "application/json");
    rc = m->h->parse(m, j, &sub, &err);
  }
  if (rc != 0) {
    wk__job_fail(m, j, rc, err.msg);
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

static json_t *tensor_meta(const wk__io_t *io) {
  json_t *o = json_object(), *shape = json_array();
  json_object_set_new(o, "name", json_string(io->name));
  json_object_set_new(o, "datatype", json_string(io->datatype));
  for (int d = 0; d < io->ndim; d++) json_array_append_new(shape, json_integer(io->shape[d]));
  if (io->ndim == 0) json_array_append_new(shape, json_integer(-1));
  json_object_set_new(o, "shape", shape);
  return o;
}

/* The model's inputs and outputs as v2 metadata lists them ({name, datatype, shape}): from
 * wick: {inputs, outputs} in the model config, else what the handler knows. */
static void io_lists(const wk_model_t *m, json_t **ins_out, json_t **outs_out) {
  json_t *ins = declared(m, "inputs"), *outs = declared(m, "outputs");
  if (ins == NULL) {
    ins = json_array();
    wk__io_t io[WK_MAX_NAMED_INPUTS];
    size_t n = m->h->inputs ? m->h->inputs(m, io, WK_MAX_NAMED_INPUTS) : 0;
    if (m->h->inputs == NULL) io[n++] = (wk__io_t){.name = "INPUT__0", .datatype = "BYTES"};
    for (size_t i = 0; i < n; i++) json_array_append_new(ins, tensor_meta(&io[i]));
  }
  if (outs == NULL) {
    outs = json_array();
    wk__io_t o = {.name = "OUTPUT__0", .datatype = m->h->output_datatype};
    json_array_append_new(outs, tensor_meta(&o));
  }
  *ins_out = ins;
  *outs_out = outs;
}

static void put_json(wk_buf_t *out, json_t *root) {
  char *text = json_dumps(root, JSON_COMPACT);
  if (text) wk_buf_puts(out, text);
  free(text);
  json_decref(root);
}

void wk_model_v2_metadata(const wk_model_t *m, wk_buf_t *out) {
  json_t *root = json_object();
  json_object_set_new(root, "name", json_string(m->name));
  json_object_set_new(root, "versions", json_pack("[s]", m->version));
  json_object_set_new(root, "platform", json_string(m->h->platform));
  json_t *ins, *outs;
  io_lists(m, &ins, &outs);
  json_object_set_new(root, "inputs", ins);
  json_object_set_new(root, "outputs", outs);
  put_json(out, root);
}

/* One tensor of a Triton model configuration: v2's datatype as TYPE_*, and the dims
 * without the batch dimension (wick batches along dimension 0). */
static json_t *config_tensor(json_t *meta, int is_input) {
  const char *dt = json_string_value(json_object_get(meta, "datatype"));
  char type[32];
  snprintf(type, sizeof type, "TYPE_%s", dt == NULL || strcmp(dt, "BYTES") == 0 ? "STRING" : dt);
  json_t *shape = json_object_get(meta, "shape"), *dims = json_array();
  size_t n = json_array_size(shape);
  for (size_t d = 1; d < n; d++) json_array_append(dims, json_array_get(shape, d));
  if (n <= 1) json_array_append_new(dims, json_integer(-1));
  json_t *t = json_pack("{s:O,s:s,s:o}", "name", json_object_get(meta, "name"), "data_type", type,
                        "dims", dims);
  if (is_input) {
    json_object_set_new(t, "format", json_string("FORMAT_NONE"));
    json_object_set_new(t, "optional", json_false());
  }
  return t;
}

void wk_model_v2_config(wk_model_t *m, wk_buf_t *out) {
  int python = strcmp(m->h->platform, "python") == 0;
  pthread_mutex_lock(&m->lock);
  int workers = m->min_workers;
  pthread_mutex_unlock(&m->lock);
  json_t *root = json_pack("{s:s,s:s,s:s,s:{s:{s:i}},s:i,s:[{s:s,s:s,s:i,s:[]}]}", "name", m->name,
                           "platform", m->h->platform, "backend", python ? "python" : "pytorch",
                           "version_policy", "latest", "num_versions", 1, "max_batch_size",
                           m->batch_size, "instance_group", "name", m->name, "kind",
                           m->h->device && m->h->device(m, 0) >= 0 ? "KIND_GPU" : "KIND_CPU", "count", workers,
                           "gpus");
  json_t *ins, *outs, *cin = json_array(), *cout = json_array();
  io_lists(m, &ins, &outs);
  size_t i;
  json_t *t;
  json_array_foreach(ins, i, t) json_array_append_new(cin, config_tensor(t, 1));
  json_array_foreach(outs, i, t) json_array_append_new(cout, config_tensor(t, 0));
  json_decref(ins);
  json_decref(outs);
  json_object_set_new(root, "input", cin);
  json_object_set_new(root, "output", cout);
  if (m->batch_size > 1)
    json_object_set_new(root, "dynamic_batching",
                        json_pack("{s:[],s:I}", "preferred_batch_size", "max_queue_delay_microseconds",
                                  (json_int_t)m->max_batch_delay_ms * 1000));
  json_object_set_new(root, "parameters",
                      json_pack("{s:{s:s},s:{s:i}}", "handler", "string_value", m->handler,
                                "response_timeout", "string_value_int", m->response_timeout_s));
  put_json(out, root);
}

/* {"count": n, "ns": us * 1000} */
static json_t *stat(uint64_t n, uint64_t us) {
  return json_pack("{s:I,s:I}", "count", (json_int_t)n, "ns", (json_int_t)(us * 1000));
}

void wk_model_v2_stats(wk_model_t *m, json_t *list) {
  uint64_t ok = atomic_load(&m->req_ok), failed = atomic_load(&m->req_client_err) + atomic_load(&m->req_server_err);
  uint64_t queue_us = atomic_load(&m->queue_us_total), infer_us = atomic_load(&m->inference_us_total);
  uint64_t queued = atomic_load(&m->queue_hist.n), ran = atomic_load(&m->inference_hist.n);
  uint64_t batches = atomic_load(&m->batch_hist.n);
  json_t *by_size = json_array();
  for (int b = 1; m->batch_runs && b <= m->batch_size; b++) {
    uint64_t n = atomic_load(&m->batch_runs[b]), us = atomic_load(&m->batch_run_us[b]);
    if (n == 0) continue;
    json_array_append_new(by_size, json_pack("{s:i,s:o,s:o,s:o}", "batch_size", b, "compute_input",
                                             stat(n, 0), "compute_infer", stat(n, us), "compute_output",
                                             stat(n, 0)));
  }
  json_t *s = json_pack(
      "{s:s,s:s,s:I,s:I,s:I,s:{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o},s:o,s:[]}", "name", m->name,
      "version", m->version, "last_inference", (json_int_t)atomic_load(&m->last_inference_ms),
      "inference_count", (json_int_t)ran, "execution_count", (json_int_t)batches, "inference_stats",
      "success", stat(ok, queue_us + infer_us), "fail", stat(failed, 0), "queue", stat(queued, queue_us),
      "compute_input", stat(ran, 0), "compute_infer", stat(ran, infer_us), "compute_output", stat(ran, 0),
      "cache_hit", stat(0, 0), "cache_miss", stat(0, 0), "batch_stats", by_size, "memory_usage");
  json_array_append_new(list, s);
}
