/* Server configuration: a Java .properties reader (the syntax of java.util.Properties.load)
 * and TorchServe's keys with their defaults and checks. It reads settings; it does not
 * open sockets or look at the model store. */
#include "serve/config.h"
#include "serve/status.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "backend/pyworker.h"
#include "core/buf.h"
#include "core/limits.h"

/* ---- properties ---- */

/* Keys in one properties file: TorchServe knows about a hundred. Keeps lookups cheap. */
#define WK_PROPS_MAX_KEYS 10000

void wk_props_init(wk_props_t *p) {
  memset(p, 0, sizeof *p);
}

void wk_props_destroy(wk_props_t *p) {
  for (size_t i = 0; i < p->count; i++) {
    free(p->keys[i]);
    free(p->values[i]);
  }
  free(p->keys);
  free(p->values);
  wk_props_init(p);
}

const char *wk_props_get(const wk_props_t *p, const char *key) {
  for (size_t i = p->count; i-- > 0;) {
    if (strcmp(p->keys[i], key) == 0) return p->values[i];
  }
  return NULL;
}

int wk_props_set(wk_props_t *p, const char *key, const char *value) {
  char *v = strdup(value);
  if (v == NULL) return WK_ENOMEM;
  for (size_t i = p->count; i-- > 0;) {
    if (strcmp(p->keys[i], key) == 0) {
      free(p->values[i]);
      p->values[i] = v;
      return 0;
    }
  }
  char *k = strdup(key);
  if (k == NULL) {
    free(v);
    return WK_ENOMEM;
  }
  if ((p->count & (p->count - 1)) == 0) { /* full at 0, 1, 2, 4, ...: grow */
    size_t cap = p->count ? p->count * 2 : 1;
    char **keys = realloc(p->keys, cap * sizeof *keys);
    if (keys != NULL) p->keys = keys;
    char **values = keys ? realloc(p->values, cap * sizeof *values) : NULL;
    if (values == NULL) {
      free(k);
      free(v);
      return WK_ENOMEM;
    }
    p->values = values;
  }
  p->keys[p->count] = k;
  p->values[p->count] = v;
  p->count++;
  return 0;
}

/* Called for each key/value pair with the line its logical line starts on. */
typedef int (*prop_cb)(void *ctx, const char *key, const char *value, size_t line, wk_err_t *err);

static int is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\f';
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int put_utf8(wk_buf_t *b, unsigned cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  return wk_buf_append(b, u, n);
}

/* Reads the 4 hex digits after "\u" at s[0..n). Returns the code unit or -1. */
static long read_u4(const char *s, size_t n) {
  if (n < 4) return -1;
  long v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hex_value(s[i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

/* Java's loadConvert: resolves escapes of s[0..n) into out (UTF-8). */
static int unescape(const char *s, size_t n, wk_buf_t *out, size_t line, wk_err_t *err) {
  out->len = 0;
  if (wk_buf_reserve(out, n) != 0) return wk_err(err, WK_ENOMEM, "out of memory");
  out->data[0] = '\0';
  for (size_t i = 0; i < n;) {
    char c = s[i++];
    int rc = 0;
    if (c != '\\' || i == n) { /* a lone trailing backslash cannot reach here; keep it */
      rc = wk_buf_putc(out, c);
    } else {
      c = s[i++];
      switch (c) {
      case 't': rc = wk_buf_putc(out, '\t'); break;
      case 'n': rc = wk_buf_putc(out, '\n'); break;
      case 'r': rc = wk_buf_putc(out, '\r'); break;
      case 'f': rc = wk_buf_putc(out, '\f'); break;
      case 'u': {
        long cu = read_u4(s + i, n - i);
        if (cu < 0) {
          return wk_err(err, WK_EINVAL,
                        "line %zu: malformed \\uXXXX escape (expected 4 hex digits)", line);
        }
        i += 4;
        unsigned cp = (unsigned)cu;
        if (cp == 0) return wk_err(err, WK_EINVAL, "line %zu: \\u0000 is not allowed", line);
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u') {
          long lo = read_u4(s + i + 2, n - i - 2);
          if (lo >= 0xDC00 && lo <= 0xDFFF) { /* a UTF-16 surrogate pair */
            cp = 0x10000 + ((cp - 0xD800) << 10) + (unsigned)(lo - 0xDC00);
            i += 6;
          }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD; /* a lone surrogate */
        rc = put_utf8(out, cp);
        break;
      }
      default: rc = wk_buf_putc(out, c); /* "\=" is "=", "\\" is "\", "\q" is "q" */
      }
    }
    if (rc != 0) return wk_err(err, WK_ENOMEM, "out of memory");
  }
  return 0;
}

/* Splits one logical line into key and value as Properties.load does, unescapes both and
 * hands them to cb. */
static int split_line(const char *s, size_t n, size_t line, prop_cb cb, void *ctx, wk_buf_t *key,
                      wk_buf_t *value, wk_err_t *err) {
  size_t key_len = 0, value_start = n;
  int has_sep = 0, backslash = 0;
  for (; key_len < n; key_len++) {
    char c = s[key_len];
    if ((c == '=' || c == ':') && !backslash) {
      value_start = key_len + 1;
      has_sep = 1;
      break;
    }
    if (is_blank(c) && !backslash) {
      value_start = key_len + 1;
      break;
    }
    backslash = c == '\\' ? !backslash : 0;
  }
  for (; value_start < n; value_start++) {
    char c = s[value_start];
    if (!is_blank(c)) {
      if (has_sep || (c != '=' && c != ':')) break;
      has_sep = 1;
    }
  }
  int rc = unescape(s, key_len, key, line, err);
  if (rc == 0) rc = unescape(s + value_start, n - value_start, value, line, err);
  if (rc == 0) rc = cb(ctx, key->data, value->data, line, err);
  return rc;
}

/* Consumes a line terminator (\n, \r or \r\n) at *pos if there is one. */
static int eat_newline(const char *text, size_t len, size_t *pos) {
  if (*pos >= len) return 0;
  if (text[*pos] == '\r') {
    (*pos)++;
    if (*pos < len && text[*pos] == '\n') (*pos)++;
    return 1;
  }
  if (text[*pos] == '\n') {
    (*pos)++;
    return 1;
  }
  return 0;
}

/* Java's LineReader: walks logical lines (comments and blank lines skipped, continuation
 * lines joined) and calls split_line on each. */
static int props_scan(const char *text, size_t len, prop_cb cb, void *ctx, wk_err_t *err) {
  if (len > WK_MAX_CONFIG_FILE_SIZE) {
    return wk_err(err, WK_ETOOBIG, "properties text is %zu bytes, the limit is %d bytes", len,
                  WK_MAX_CONFIG_FILE_SIZE);
  }
  if (text == NULL) text = "";
  const char *nul = memchr(text, '\0', len);
  if (nul != NULL) {
    size_t line = 1;
    for (const char *q = text; q < nul; q++)
      line += *q == '\n';
    return wk_err(err, WK_EINVAL, "line %zu: NUL byte in a properties file", line);
  }
  wk_buf_t logical = WK_BUF_INIT, key = WK_BUF_INIT, value = WK_BUF_INIT;
  size_t pos = 0, line = 1, pairs = 0;
  int rc = 0;
  while (rc == 0 && pos < len) {
    while (pos < len && is_blank(text[pos]))
      pos++;
    if (eat_newline(text, len, &pos)) { /* blank line */
      line++;
      continue;
    }
    if (pos >= len) break;
    size_t start_line = line;
    if (text[pos] == '#' || text[pos] == '!') { /* comment: no continuation */
      while (pos < len && text[pos] != '\n' && text[pos] != '\r')
        pos++;
      line += eat_newline(text, len, &pos);
      continue;
    }
    if (++pairs > WK_PROPS_MAX_KEYS) {
      rc = wk_err(err, WK_ETOOBIG, "line %zu: more than %d keys in a properties file", line,
                  WK_PROPS_MAX_KEYS);
      break;
    }
    logical.len = 0;
    for (;;) {
      size_t s = pos;
      while (pos < len && text[pos] != '\n' && text[pos] != '\r')
        pos++;
      size_t e = pos, slashes = 0;
      while (e - slashes > s && text[e - slashes - 1] == '\\')
        slashes++;
      int more = slashes % 2 == 1;
      if (wk_buf_append(&logical, text + s, e - s - (more ? 1 : 0)) != 0) {
        rc = wk_err(err, WK_ENOMEM, "out of memory");
        break;
      }
      if (!eat_newline(text, len, &pos)) break; /* end of text (a final "\" is dropped) */
      line++;
      if (!more) break;
      while (pos < len && is_blank(text[pos]))
        pos++; /* continuation: indent ignored */
    }
    if (rc == 0) {
      rc = split_line(logical.data ? logical.data : "", logical.len, start_line, cb, ctx, &key,
                      &value, err);
    }
  }
  wk_buf_destroy(&logical);
  wk_buf_destroy(&key);
  wk_buf_destroy(&value);
  return rc;
}

static int props_collect(void *ctx, const char *key, const char *value, size_t line,
                         wk_err_t *err) {
  (void)line;
  if (wk_props_set(ctx, key, value) != 0) return wk_err(err, WK_ENOMEM, "out of memory");
  return 0;
}

/* Moves every pair of src into dst (later ones win); src is emptied. */
static int props_merge(wk_props_t *dst, wk_props_t *src) {
  int rc = 0;
  if (dst->count == 0) {
    wk_props_destroy(dst);
    *dst = *src;
    wk_props_init(src);
    return 0;
  }
  for (size_t i = 0; i < src->count && rc == 0; i++) {
    rc = wk_props_set(dst, src->keys[i], src->values[i]);
  }
  wk_props_destroy(src);
  return rc;
}

int wk_props_parse(const char *text, size_t len, wk_props_t *p, wk_err_t *err) {
  wk_props_t tmp;
  wk_props_init(&tmp);
  int rc = props_scan(text, len, props_collect, &tmp, err);
  if (rc == 0 && (rc = props_merge(p, &tmp)) != 0) rc = wk_err(err, rc, "out of memory");
  wk_props_destroy(&tmp);
  return rc;
}

/* ---- addresses ---- */

int wk_config_parse_address_tls(const char *addr, char *host, size_t hostlen, int *port, int *tls,
                                wk_err_t *err) {
  const char *p = addr;
  int is_tls = 0, default_port = -1;
  if (strncasecmp(p, "http://", 7) == 0) {
    p += 7;
    default_port = 80;
  } else if (strncasecmp(p, "https://", 8) == 0) {
    p += 8;
    is_tls = 1;
    default_port = 443;
  } else if (strncasecmp(p, "unix:", 5) == 0) {
    return wk_err(err, WK_EUNSUPPORTED, "address '%s': unix sockets are not supported", addr);
  } else if (strstr(p, "://") != NULL) {
    return wk_err(err, WK_EINVAL, "address '%s': expected http:// or https://", addr);
  }
  const char *h = p, *h_end;
  if (*p == '[') { /* [IPv6] */
    h = ++p;
    h_end = strchr(p, ']');
    if (h_end == NULL) {
      return wk_err(err, WK_EINVAL, "address '%s': '[' without ']' around an IPv6 address", addr);
    }
    if (h_end == h || strspn(h, "0123456789abcdefABCDEF:.") < (size_t)(h_end - h)) {
      return wk_err(err, WK_EINVAL, "address '%s': '%.*s' is not an IPv6 address", addr,
                    (int)(h_end - h), h);
    }
    p = h_end + 1;
  } else {
    p += strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_");
    h_end = p;
    if (*p == ':' && strchr(p + 1, ':') != NULL) {
      return wk_err(err, WK_EINVAL, "address '%s': write IPv6 addresses in brackets, as [::1]:8080",
                    addr);
    }
    if (h_end == h) {
      return wk_err(err, WK_EINVAL, "address '%s': expected a host name or address", addr);
    }
  }
  long port_value = default_port;
  if (*p == ':') {
    p++;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || digits > 5 || (p[digits] != '\0' && strcmp(p + digits, "/") != 0) ||
        (port_value = atol(p)) > 65535) {
      return wk_err(err, WK_EINVAL, "address '%s': expected a port number from 0 to 65535", addr);
    }
    p += digits;
  } else if (*p != '\0' && strcmp(p, "/") != 0) {
    return wk_err(err, WK_EINVAL,
                  "address '%s': unexpected '%s' after the host (expected "
                  "http://host:port)",
                  addr, p);
  }
  if (port_value < 0) {
    return wk_err(err, WK_EINVAL, "address '%s': expected a port (host:port)", addr);
  }
  size_t n = (size_t)(h_end - h);
  if (n >= hostlen) {
    return wk_err(err, WK_ETOOBIG, "address '%s': the host name is longer than %zu characters",
                  addr, hostlen ? hostlen - 1 : 0);
  }
  memcpy(host, h, n);
  host[n] = '\0';
  *port = (int)port_value;
  if (tls != NULL) *tls = is_tls;
  return 0;
}

int wk_config_parse_address(const char *addr, char *host, size_t hostlen, int *port,
                            wk_err_t *err) {
  return wk_config_parse_address_tls(addr, host, hostlen, port, NULL, err);
}

/* ---- server configuration ---- */

typedef enum { K_ADDRESS, K_PATH, K_STRING, K_INT_NONNEG, K_INT_POS, K_LONG_POS } kind_t;

typedef struct {
  const char *name;
  kind_t kind;
  size_t offset;
} known_key_t;

#define KEY(name, kind)                                                                            \
  { #name, kind, offsetof(wk_config_t, name) }

static const known_key_t known_keys[] = {
    KEY(inference_address, K_ADDRESS), KEY(management_address, K_ADDRESS),
    KEY(metrics_address, K_ADDRESS),   KEY(model_store, K_PATH),
    KEY(load_models, K_PATH),          KEY(default_workers_per_model, K_INT_NONNEG),
    KEY(job_queue_size, K_INT_POS),    KEY(default_response_timeout, K_INT_POS),
    KEY(max_request_size, K_LONG_POS), KEY(max_response_size, K_LONG_POS),
    KEY(torch_threads, K_INT_NONNEG),  KEY(python, K_STRING),
    KEY(worker_spin_us, K_INT_NONNEG), KEY(idle_timeout, K_INT_POS),
    KEY(max_connections, K_INT_NONNEG), KEY(max_connections_per_client, K_INT_NONNEG),
    KEY(request_timeout, K_INT_POS), KEY(max_unpacked_archive_size, K_LONG_POS),
    KEY(max_unpacked_total_size, K_LONG_POS), KEY(status_interval_ms, K_INT_POS),
};

static void *field(wk_config_t *c, const known_key_t *k) {
  return (char *)c + k->offset;
}

void wk_config_init(wk_config_t *c) {
  memset(c, 0, sizeof *c);
  c->inference_address = strdup("http://127.0.0.1:8080");
  c->management_address = strdup("http://127.0.0.1:8081");
  c->metrics_address = strdup("http://127.0.0.1:8082");
  c->default_workers_per_model = 0;
  c->job_queue_size = WK_DEFAULT_JOB_QUEUE_SIZE;
  c->default_response_timeout = WK_DEFAULT_RESPONSE_TIMEOUT_S;
  c->max_request_size = WK_DEFAULT_MAX_REQUEST_SIZE;
  c->max_response_size = WK_DEFAULT_MAX_RESPONSE_SIZE;
  c->torch_threads = 0;
  c->worker_spin_us = WK_DEFAULT_WORKER_SPIN_US;
  c->idle_timeout = WK_DEFAULT_IDLE_TIMEOUT_S;
  c->status_interval_ms = WK_STATUS_DEFAULT_INTERVAL_MS;
  c->request_timeout = WK_DEFAULT_REQUEST_TIMEOUT_S;
  c->max_unpacked_archive_size = WK_DEFAULT_MAX_UNPACKED_ARCHIVE;
  c->max_unpacked_total_size = WK_DEFAULT_MAX_UNPACKED_TOTAL;
  c->python = strdup(WK_PYWORKER_DEFAULT_PYTHON);
  wk_props_init(&c->props);
}

void wk_config_destroy(wk_config_t *c) {
  free(c->inference_address);
  free(c->management_address);
  free(c->metrics_address);
  free(c->model_store);
  free(c->load_models);
  free(c->python);
  wk_props_destroy(&c->props);
  memset(c, 0, sizeof *c);
}

static const known_key_t *find_key(const char *key) {
  for (size_t i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++) {
    if (strcmp(known_keys[i].name, key) == 0) return &known_keys[i];
  }
  return NULL;
}

/* The value of a known key, checked; *str gets a malloc'd string for string kinds (NULL for
 * an empty path) and *num the number for numeric kinds. Surrounding blanks are ignored. */
static int check_value(const known_key_t *k, const char *value, char **str, long *num,
                       wk_err_t *err) {
  while (is_blank(*value))
    value++;
  size_t n = strlen(value);
  while (n > 0 && (is_blank(value[n - 1]) || value[n - 1] == '\r' || value[n - 1] == '\n'))
    n--;
  char *v = strndup(value, n);
  if (v == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  *str = NULL;
  *num = 0;
  switch (k->kind) {
  case K_ADDRESS: {
    char host[256];
    int port;
    int rc = wk_config_parse_address(v, host, sizeof host, &port, err);
    if (rc != 0) {
      free(v);
      wk_err_prefix(err, "%s", k->name);
      return rc;
    }
    *str = v;
    return 0;
  }
  case K_PATH:
    if (n == 0)
      free(v);
    else
      *str = v;
    return 0;
  case K_STRING:
    if (n == 0) {
      free(v);
      return wk_err(err, WK_EINVAL, "%s: expected a non-empty value", k->name);
    }
    *str = v;
    return 0;
  default: break;
  }
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  long max = k->kind == K_LONG_POS ? LONG_MAX : INT_MAX;
  long min = k->kind == K_INT_NONNEG ? 0 : 1;
  int ok = ((v[0] >= '0' && v[0] <= '9') || v[0] == '+') && *end == '\0' && errno == 0 &&
           x >= min && x <= max;
  if (!ok) {
    wk_err(err, WK_EINVAL, "%s: expected a %s integer, got '%.64s'", k->name,
           min == 0 ? "non-negative" : "positive", v);
    free(v);
    return WK_EINVAL;
  }
  free(v);
  *num = (long)x;
  return 0;
}

int wk_config_set(wk_config_t *c, const char *key, const char *value, wk_err_t *err) {
  const known_key_t *k = find_key(key);
  char *str = NULL;
  long num = 0;
  if (k != NULL) {
    int rc = check_value(k, value, &str, &num, err);
    if (rc != 0) return rc;
  }
  if (wk_props_set(&c->props, key, value) != 0) {
    free(str);
    return wk_err(err, WK_ENOMEM, "out of memory");
  }
  if (k == NULL) return 0;
  switch (k->kind) {
  case K_ADDRESS:
  case K_PATH:
  case K_STRING: {
    char **slot = field(c, k);
    free(*slot);
    *slot = str;
    break;
  }
  case K_INT_NONNEG:
  case K_INT_POS: *(int *)field(c, k) = (int)num; break;
  case K_LONG_POS: *(long *)field(c, k) = num; break;
  }
  return 0;
}

/* Checks each known key of a file as it is read, so that errors can name the line. */
static int config_check(void *ctx, const char *key, const char *value, size_t line, wk_err_t *err) {
  const known_key_t *k = find_key(key);
  if (k != NULL) {
    char *str;
    long num;
    int rc = check_value(k, value, &str, &num, err);
    if (rc != 0) {
      wk_err_prefix(err, "line %zu", line);
      return rc;
    }
    free(str);
  }
  if (wk_props_set(ctx, key, value) != 0) return wk_err(err, WK_ENOMEM, "out of memory");
  return 0;
}

int wk_config_load_file(wk_config_t *c, const char *path, wk_err_t *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    int e = errno;
    return wk_err(err, e == ENOENT ? WK_ENOTFOUND : WK_EIO, "%s: %s", path, strerror(e));
  }
  wk_buf_t text = WK_BUF_INIT;
  char chunk[8192];
  size_t got;
  int rc = 0;
  while (rc == 0 && (got = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (text.len + got > WK_MAX_CONFIG_FILE_SIZE) {
      rc = wk_err(err, WK_ETOOBIG, "%s: larger than the limit of %d bytes", path,
                  WK_MAX_CONFIG_FILE_SIZE);
    } else if (wk_buf_append(&text, chunk, got) != 0) {
      rc = wk_err(err, WK_ENOMEM, "%s: out of memory", path);
    }
  }
  if (rc == 0 && ferror(f)) rc = wk_err(err, WK_EIO, "%s: read error", path);
  fclose(f);
  wk_props_t tmp;
  wk_props_init(&tmp);
  if (rc == 0) {
    rc = props_scan(text.data ? text.data : "", text.len, config_check, &tmp, err);
    if (rc != 0) wk_err_prefix(err, "%s", path);
  }
  /* Every known key was checked: applying them can only run out of memory. */
  for (size_t i = 0; rc == 0 && i < tmp.count; i++) {
    rc = wk_config_set(c, tmp.keys[i], tmp.values[i], err);
    if (rc != 0) wk_err_prefix(err, "%s", path);
  }
  wk_props_destroy(&tmp);
  wk_buf_destroy(&text);
  return rc;
}

int wk_config_default_workers(const wk_config_t *c, int n_gpus) {
  if (c->default_workers_per_model > 0) return c->default_workers_per_model;
  long n = n_gpus > 0 ? n_gpus : sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  if (n > WK_MAX_WORKERS) n = WK_MAX_WORKERS;
  return (int)n;
}

/* ---- TS_<KEY> environment variables ---- */

/* The keys TorchServe reads from the environment (its ConfigManager's TS_* fields), and
 * wick's own. The variable is TS_ + the key in capitals unless env says otherwise. */
static const struct {
  const char *key;
  const char *env;
} env_keys[] = {
    {"debug", NULL},
    {"inference_address", NULL},
    {"management_address", NULL},
    {"metrics_address", NULL},
    {"load_models", NULL},
    {"blacklist_env_vars", NULL},
    {"default_workers_per_model", NULL},
    {"default_response_timeout", NULL},
    {"default_startup_timeout", NULL},
    {"unregister_model_timeout", NULL},
    {"number_of_netty_threads", NULL},
    {"netty_client_threads", NULL},
    {"job_queue_size", NULL},
    {"number_of_gpu", NULL},
    {"metrics_config", NULL},
    {"metrics_mode", NULL},
    {"model_metrics_auto_detect", NULL},
    {"disable_system_metrics", NULL},
    {"ipex_enable", NULL},
    {"cpu_launcher_enable", NULL},
    {"cpu_launcher_args", NULL},
    {"ipex_gpu_enable", NULL},
    {"async_logging", NULL},
    {"cors_allowed_origin", NULL},
    {"cors_allowed_methods", NULL},
    {"cors_allowed_headers", NULL},
    {"decode_input_request", NULL},
    {"keystore", NULL},
    {"keystore_pass", NULL},
    {"keystore_type", NULL},
    {"certificate_file", NULL},
    {"private_key_file", NULL},
    {"max_request_size", NULL},
    {"max_response_size", NULL},
    {"limit_max_image_pixels", NULL},
    {"default_service_handler", NULL},
    {"service_envelope", NULL},
    {"model_server_home", NULL},
    {"model_store", NULL},
    {"prefer_direct_buffer", NULL},
    {"allowed_urls", NULL},
    {"install_py_dep_per_model", NULL},
    {"enable_metrics_api", NULL},
    {"grpc_inference_address", NULL},
    {"grpc_management_address", NULL},
    {"grpc_inference_port", NULL},
    {"grpc_management_port", NULL},
    {"grpc_inference_max_connection_age_ms", NULL},
    {"grpc_management_max_connection_age_ms", NULL},
    {"grpc_inference_max_connection_age_grace_ms", NULL},
    {"grpc_management_max_connection_age_grace_ms", NULL},
    {"enable_grpc_ssl", NULL},
    {"initial_worker_port", NULL},
    {"initial_distribution_port", NULL},
    {"workflow_store", NULL},
    {"cpp_log_config", NULL},
    {"ts_open_inference_protocol", "TS_OPEN_INFERENCE_PROTOCOL"},
    {"token_expiration_min", "TS_TOKEN_EXPIRATION_TIME_MIN"},
    {"ts_header_key_sequence_id", "TS_HEADER_KEY_SEQUENCE_ID"},
    {"ts_header_key_sequence_start", "TS_HEADER_KEY_SEQUENCE_START"},
    {"ts_header_key_sequence_end", "TS_HEADER_KEY_SEQUENCE_END"},
    {"disable_token_authorization", NULL},
    {"enable_model_api", NULL},
    /* wick's */
    {"torch_threads", NULL},
    {"worker_spin_us", NULL},
    {"status_interval_ms", NULL},
    {"idle_timeout", NULL},
    {"max_connections", NULL},
    {"max_connections_per_client", NULL},
    {"request_timeout", NULL},
    {"download_timeout", NULL},
    {"max_unpacked_archive_size", NULL},
    {"max_unpacked_total_size", NULL},
    {"python", NULL},
    {"python_fork_server", NULL},
    {"ts_compat_status_codes", "TS_TS_COMPAT_STATUS_CODES"},
};

int wk_config_bool(const wk_config_t *c, const char *key, int dflt) {
  const char *v = wk_props_get(&c->props, key);
  if (v == NULL) return dflt;
  while (is_blank(*v))
    v++;
  size_t n = strlen(v);
  while (n > 0 && (is_blank(v[n - 1]) || v[n - 1] == '\r' || v[n - 1] == '\n'))
    n--;
  return n == 4 && strncasecmp(v, "true", 4) == 0;
}

int wk_config_apply_env(wk_config_t *c, char *(*getenv_fn)(const char *name), wk_err_t *err) {
  if (!wk_config_bool(c, "enable_envvars_config", 0)) return 0;
  int allow_urls = wk_config_bool(c, "use_env_allowed_urls", 0);
  for (size_t i = 0; i < sizeof env_keys / sizeof env_keys[0]; i++) {
    char name[128];
    if (env_keys[i].env) {
      snprintf(name, sizeof name, "%s", env_keys[i].env);
    } else {
      int n = snprintf(name, sizeof name, "TS_%s", env_keys[i].key);
      for (int j = 3; j < n && j < (int)sizeof name; j++)
        if (name[j] >= 'a' && name[j] <= 'z') name[j] = (char)(name[j] - 'a' + 'A');
    }
    if (strcmp(env_keys[i].key, "allowed_urls") == 0 && !allow_urls) continue;
    const char *v = getenv_fn(name);
    if (v == NULL) continue;
    int rc = wk_config_set(c, env_keys[i].key, v, err);
    if (rc != 0) {
      wk_err_prefix(err, "environment variable %s", name);
      return rc;
    }
  }
  return 0;
}
