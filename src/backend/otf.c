/* The OTF codec (docs/otf-protocol.md): big-endian int32 lengths, -1 list ends.
 * Encoders append to a wk_buf_t; the response decoder walks the bytes twice, once to
 * check and measure, once to copy into a single block. No I/O. */
#include "backend/otf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- encoding ---- */

static void put_i32(uint8_t *q, int32_t v) {
  uint32_t u = (uint32_t)v;
  q[0] = (uint8_t)(u >> 24);
  q[1] = (uint8_t)(u >> 16);
  q[2] = (uint8_t)(u >> 8);
  q[3] = (uint8_t)u;
}

static int enc_int(wk_buf_t *b, int32_t v) {
  uint8_t q[4];
  put_i32(q, v);
  return wk_buf_append(b, q, 4);
}

static int enc_bytes(wk_buf_t *b, const void *p, size_t n, long limit, const char *what,
                     wk_err_t *err) {
  if (n > (size_t)limit)
    return wk_err(err, WK_ETOOBIG, "%s is %zu bytes, over the limit of %ld", what, n, limit);
  if (enc_int(b, (int32_t)n) != 0) return wk_err(err, WK_ENOMEM, "out of memory");
  if (n > 0 && wk_buf_append(b, p, n) != 0) return wk_err(err, WK_ENOMEM, "out of memory");
  return 0;
}

static int enc_str(wk_buf_t *b, const char *s, const char *what, wk_err_t *err) {
  if (s == NULL) s = "";
  return enc_bytes(b, s, strlen(s), WK_OTF_MAX_STRING, what, err);
}

int wk_otf_encode_load(wk_buf_t *b, const wk_otf_load_t *l, wk_err_t *err) {
  if (l->model_name == NULL || l->model_name[0] == '\0' || l->model_path == NULL)
    return wk_err(err, WK_EINVAL, "a load frame needs a model name and a model path");
  if (l->batch_size < 1)
    return wk_err(err, WK_EINVAL, "batch size is %d, expected 1 or more", l->batch_size);
  size_t start = b->len;
  int rc;
  if ((rc = wk_buf_putc(b, 'L')) != 0) rc = wk_err(err, WK_ENOMEM, "out of memory");
  if (rc == 0) rc = enc_str(b, l->model_name, "model name", err);
  if (rc == 0) rc = enc_str(b, l->model_path, "model path", err);
  if (rc == 0 && enc_int(b, l->batch_size) != 0) rc = wk_err(err, WK_ENOMEM, "out of memory");
  if (rc == 0) rc = enc_str(b, l->handler, "handler", err);
  if (rc == 0 && enc_int(b, l->gpu_id) != 0) rc = wk_err(err, WK_ENOMEM, "out of memory");
  if (rc == 0) rc = enc_str(b, l->envelope, "envelope", err);
  if (rc == 0 && wk_buf_putc(b, l->limit_max_image_pixels ? 1 : 0) != 0)
    rc = wk_err(err, WK_ENOMEM, "out of memory");
  if (rc != 0 && b->data != NULL) {
    b->len = start;
    b->data[start] = '\0';
  }
  return rc;
}

static int enc_request(wk_buf_t *b, const wk_otf_request_t *r, size_t i, wk_err_t *err) {
  int rc;
  if (r->id == NULL || r->id[0] == '\0')
    return wk_err(err, WK_EINVAL, "request %zu has no id", i);
  if (r->n_headers > WK_OTF_MAX_HEADERS)
    return wk_err(err, WK_ETOOBIG, "request %zu has %zu headers, over the limit of %d", i,
                  r->n_headers, WK_OTF_MAX_HEADERS);
  if (r->n_params > WK_OTF_MAX_PARAMS)
    return wk_err(err, WK_ETOOBIG, "request %zu has %zu parameters, over the limit of %d", i,
                  r->n_params, WK_OTF_MAX_PARAMS);
  if ((rc = enc_str(b, r->id, "request id", err)) != 0) return rc;
  for (size_t h = 0; h < r->n_headers; h++) {
    if ((rc = enc_str(b, r->headers[h].name, "header name", err)) != 0) return rc;
    if ((rc = enc_str(b, r->headers[h].value, "header value", err)) != 0) return rc;
  }
  if (enc_int(b, -1) != 0) return wk_err(err, WK_ENOMEM, "out of memory");
  for (size_t k = 0; k < r->n_params; k++) {
    const wk_otf_param_t *p = &r->params[k];
    if ((rc = enc_str(b, p->name, "parameter name", err)) != 0) return rc;
    if ((rc = enc_str(b, p->content_type, "content type", err)) != 0) return rc;
    if (p->value_len > 0 && p->value == NULL)
      return wk_err(err, WK_EINVAL, "parameter %s of request %zu has no value", p->name, i);
    if ((rc = enc_bytes(b, p->value, p->value_len, WK_OTF_MAX_VALUE, "parameter value", err)) != 0)
      return rc;
  }
  if (enc_int(b, -1) != 0) return wk_err(err, WK_ENOMEM, "out of memory");
  return 0;
}

int wk_otf_encode_inference(wk_buf_t *b, const wk_otf_request_t *reqs, size_t n,
                            wk_err_t *err) {
  if (n == 0) return wk_err(err, WK_EINVAL, "an inference frame needs at least one request");
  if (n > WK_OTF_MAX_REQUESTS)
    return wk_err(err, WK_ETOOBIG, "a batch of %zu requests is over the limit of %d", n,
                  WK_OTF_MAX_REQUESTS);
  size_t start = b->len;
  int rc = wk_buf_putc(b, 'I') != 0 ? wk_err(err, WK_ENOMEM, "out of memory") : 0;
  for (size_t i = 0; rc == 0 && i < n; i++) rc = enc_request(b, &reqs[i], i, err);
  if (rc == 0 && enc_int(b, -1) != 0) rc = wk_err(err, WK_ENOMEM, "out of memory");
  if (rc != 0 && b->data != NULL) {
    b->len = start;
    b->data[start] = '\0';
  }
  return rc;
}

/* ---- decoding ---- */

typedef struct rd_s {
  const uint8_t *p;
  size_t len, pos;
  wk_err_t *err;
} rd_t;

/* Where pass 2 copies to; NULL in pass 1. */
typedef struct fill_s {
  wk_otf_prediction_t *preds;
  wk_otf_kv_t *headers;
  char *pool;
} fill_t;

typedef struct sizes_s {
  size_t preds, headers, pool;
} sizes_t;

/* Makes sure n more bytes are there: 0, WK_OTF_NEED_MORE or WK_ETOOBIG. */
static int rd_need(rd_t *r, size_t n, const char *what) {
  if (n > (size_t)WK_OTF_MAX_FRAME || r->pos + n > (size_t)WK_OTF_MAX_FRAME)
    return wk_err(r->err, WK_ETOOBIG,
                  "response frame is larger than the limit of %ld bytes (while reading %s)",
                  (long)WK_OTF_MAX_FRAME, what);
  if (r->len - r->pos < n) return WK_OTF_NEED_MORE;
  return 0;
}

static int rd_int(rd_t *r, int32_t *v, const char *what) {
  int rc = rd_need(r, 4, what);
  if (rc != 0) return rc;
  const uint8_t *q = r->p + r->pos;
  *v = (int32_t)(((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) |
                 (uint32_t)q[3]);
  r->pos += 4;
  return 0;
}

/* Reads a length-prefixed value; *end = 1 for -1 where allow_end. The bytes are at
 * r->p + *at, *n long. */
static int rd_blob(rd_t *r, size_t *at, size_t *n, long limit, int allow_end, int *end,
                   const char *what) {
  int32_t v;
  int rc = rd_int(r, &v, what);
  if (rc != 0) return rc;
  if (end != NULL) *end = 0;
  if (v == -1 && allow_end) {
    *end = 1;
    return 0;
  }
  if (v < 0) return wk_err(r->err, WK_EFORMAT, "%s length is %d, expected 0..%ld", what, (int)v, limit);
  if ((long)v > limit)
    return wk_err(r->err, WK_ETOOBIG, "%s is %d bytes, over the limit of %ld", what, (int)v, limit);
  if ((rc = rd_need(r, (size_t)v, what)) != 0) return rc;
  *at = r->pos;
  *n = (size_t)v;
  r->pos += (size_t)v;
  return 0;
}

/* Reads a string; in pass 2 copies it (NUL-terminated) into the pool. */
static int rd_str(rd_t *r, fill_t *f, sizes_t *s, const char **out, size_t *out_len, long limit,
                  int allow_end, int *end, const char *what) {
  size_t at = 0, n = 0;
  int rc = rd_blob(r, &at, &n, limit, allow_end, end, what);
  if (rc != 0 || (end != NULL && *end)) return rc;
  if (f != NULL) {
    char *d = f->pool;
    if (n > 0) memcpy(d, r->p + at, n);
    d[n] = '\0';
    f->pool += n + 1;
    *out = d;
    if (out_len != NULL) *out_len = n;
  } else {
    s->pool += n + 1;
  }
  return 0;
}

static int walk(rd_t *r, fill_t *f, sizes_t *s, int *code, const char **message) {
  int32_t v;
  int rc, end;
  const char *dummy;
  if ((rc = rd_int(r, &v, "response code")) != 0) return rc;
  *code = v;
  if ((rc = rd_str(r, f, s, message, NULL, WK_OTF_MAX_STRING, 0, NULL, "response message")) != 0)
    return rc;
  size_t np = 0;
  for (;;) {
    wk_otf_prediction_t *p = f != NULL ? &f->preds[np] : NULL;
    const char **dst = p != NULL ? &p->id : &dummy;
    if ((rc = rd_str(r, f, s, dst, NULL, WK_OTF_MAX_STRING, 1, &end, "request id")) != 0)
      return rc;
    if (end) break;
    if (np == WK_OTF_MAX_REQUESTS)
      return wk_err(r->err, WK_ETOOBIG, "more than %d predictions in one response",
                    WK_OTF_MAX_REQUESTS);
    if ((rc = rd_str(r, f, s, p ? &p->content_type : &dummy, NULL, WK_OTF_MAX_STRING, 0, NULL,
                     "content type")) != 0)
      return rc;
    if ((rc = rd_int(r, &v, "status code")) != 0) return rc;
    if (p != NULL) p->status = v;
    if ((rc = rd_str(r, f, s, p ? &p->reason : &dummy, NULL, WK_OTF_MAX_STRING, 0, NULL,
                     "reason phrase")) != 0)
      return rc;
    int32_t nh;
    if ((rc = rd_int(r, &nh, "response header count")) != 0) return rc;
    if (nh < 0) return wk_err(r->err, WK_EFORMAT, "response header count is %d, expected 0..%d",
                              (int)nh, WK_OTF_MAX_HEADERS);
    if (nh > WK_OTF_MAX_HEADERS)
      return wk_err(r->err, WK_ETOOBIG, "response header count is %d, over the limit of %d",
                    (int)nh, WK_OTF_MAX_HEADERS);
    if (p != NULL) {
      p->headers = nh > 0 ? f->headers : NULL;
      p->n_headers = (size_t)nh;
    }
    for (int32_t h = 0; h < nh; h++) {
      wk_otf_kv_t *kv = p != NULL ? f->headers++ : NULL;
      if ((rc = rd_str(r, f, s, kv ? &kv->name : &dummy, NULL, WK_OTF_MAX_STRING, 0, NULL,
                       "response header name")) != 0)
        return rc;
      if ((rc = rd_str(r, f, s, kv ? &kv->value : &dummy, NULL, WK_OTF_MAX_STRING, 0, NULL,
                       "response header value")) != 0)
        return rc;
    }
    if (f == NULL) s->headers += (size_t)nh;
    size_t blen = 0;
    if ((rc = rd_str(r, f, s, p ? (const char **)&p->body : &dummy, &blen, WK_OTF_MAX_VALUE, 0,
                     NULL, "response body")) != 0)
      return rc;
    if (p != NULL) p->body_len = blen;
    np++;
  }
  if (f == NULL) s->preds = np;
  return 0;
}

int wk_otf_parse_response(const void *buf, size_t len, wk_otf_response_t *out,
                          size_t *consumed, wk_err_t *err) {
  rd_t r = {(const uint8_t *)buf, len, 0, err};
  sizes_t s = {0, 0, 0};
  int code = 0;
  const char *message = NULL;
  int rc = walk(&r, NULL, &s, &code, &message);
  if (rc != 0) return rc;
  size_t frame_len = r.pos;
  size_t preds_bytes = s.preds * sizeof(wk_otf_prediction_t);
  size_t hdr_bytes = s.headers * sizeof(wk_otf_kv_t);
  char *mem = calloc(1, preds_bytes + hdr_bytes + s.pool + 1);
  if (mem == NULL) return wk_err(err, WK_ENOMEM, "out of memory for a %zu-byte response", frame_len);
  fill_t f = {(wk_otf_prediction_t *)(void *)mem, (wk_otf_kv_t *)(void *)(mem + preds_bytes),
              mem + preds_bytes + hdr_bytes};
  rd_t r2 = {(const uint8_t *)buf, len, 0, err};
  sizes_t unused = {0, 0, 0};
  rc = walk(&r2, &f, &unused, &code, &message);
  if (rc != 0 || r2.pos != frame_len) { /* cannot happen: the same bytes were checked */
    free(mem);
    return wk_err(err, WK_EINTERNAL, "response decoder disagrees with itself");
  }
  out->code = code;
  out->message = message;
  out->preds = s.preds > 0 ? (wk_otf_prediction_t *)(void *)mem : NULL;
  out->n_preds = s.preds;
  out->mem_ = mem;
  *consumed = frame_len;
  return 0;
}

void wk_otf_response_destroy(wk_otf_response_t *r) {
  if (r == NULL) return;
  free(r->mem_);
  memset(r, 0, sizeof *r);
}

const char *wk_otf_prediction_header(const wk_otf_prediction_t *p, const char *name) {
  for (size_t i = 0; i < p->n_headers; i++)
    if (strcasecmp(p->headers[i].name, name) == 0) return p->headers[i].value;
  return NULL;
}

int wk_otf_response_streams(const wk_otf_response_t *r) {
  for (size_t i = 0; i < r->n_preds; i++) {
    const char *v = wk_otf_prediction_header(&r->preds[i], "ts_stream_next");
    if (v != NULL && strcasecmp(v, "true") == 0) return 1;
  }
  return 0;
}
