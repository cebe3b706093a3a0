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
};

static void group_free(wk__group_t *g) {
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

static void reply_error(wk_http_req_t *req, int status, const char *msg) {
  wk_buf_t b = WK_BUF_INIT;
  wk_buf_puts(&b, "{\"error\": ");
  wk_buf_json_str(&b, msg);
  wk_buf_puts(&b, "}\n");
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  wk_http_reply(req, status, "application/json", body, len);
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
  wk__group_t *g = calloc(1, sizeof *g);
  if (g) g->slots = calloc(n, sizeof *g->slots);
  if (g == NULL || g->slots == NULL) {
    free(g);
    json_decref(root);
    reply_error(req, 500, "out of memory");
    return;
  }
  g->req = req;
  g->explain = explain;
  g->n = g->left = n;
  pthread_mutex_init(&g->lock, NULL);
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
    rc = instance_bytes(inst, m->kind == WK__H_IMAGE, &bytes, &len, &err);
    if (m->kind == WK__H_IMAGE) {
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
