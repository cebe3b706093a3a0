/* Token authorization: key generation (getrandom), the key file in TorchServe's JSON
 * layout, constant-time checks of `Authorization: Bearer` and key replacement. Keys never
 * reach a log line or an error message. Routing and when to turn it on live elsewhere. */
#include "api/auth.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/buf.h"
#include "core/log.h"

/* 24 random bytes, base64url without padding: 32 characters, 192 bits. */
#define KEY_BYTES 24
#define KEY_CHARS 32

typedef struct key_s {
  char text[KEY_CHARS + 1];
  int64_t expires_us;      /* monotonic; 0: never (the API key) */
  struct timespec expires; /* wall clock, for the key file */
} key_t_;

struct wk_auth_s {
  pthread_rwlock_t lock; /* readers check keys; GET /token writes */
  key_t_ keys[3];        /* indexed by wk_auth_kind_t */
  int64_t lifetime_us;
  int compat;
  char path[PATH_MAX];
};

static const char *kind_name(wk_auth_kind_t k) {
  return k == WK_AUTH_INFERENCE ? "inference" : k == WK_AUTH_MANAGEMENT ? "management" : "API";
}

static int random_key(char out[KEY_CHARS + 1]) {
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char raw[KEY_BYTES];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return WK_EIO;
    }
    got += (size_t)n;
  }
  for (int i = 0, o = 0; i < KEY_BYTES; i += 3) {
    unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
    out[o++] = b64[(v >> 18) & 63];
    out[o++] = b64[(v >> 12) & 63];
    out[o++] = b64[(v >> 6) & 63];
    out[o++] = b64[v & 63];
  }
  out[KEY_CHARS] = '\0';
  memset(raw, 0, sizeof raw);
  return 0;
}

/* Gives k a fresh key that expires lifetime_us from now (never when lifetime_us is 0). */
static int renew(key_t_ *k, int64_t lifetime_us) {
  key_t_ n;
  memset(&n, 0, sizeof n);
  if (random_key(n.text) != 0) return WK_EIO;
  if (lifetime_us > 0) {
    n.expires_us = wk_now_us() + lifetime_us;
    clock_gettime(CLOCK_REALTIME, &n.expires);
    n.expires.tv_sec += lifetime_us / 1000000;
    n.expires.tv_nsec += (long)(lifetime_us % 1000000) * 1000;
    if (n.expires.tv_nsec >= 1000000000L) {
      n.expires.tv_sec++;
      n.expires.tv_nsec -= 1000000000L;
    }
  }
  *k = n;
  return 0;
}

/* ISO-8601 UTC, as Java's Instant prints it: 2024-02-16T21:12:24.801167Z. */
static void format_time(const struct timespec *t, char *out, size_t len) {
  struct tm tm;
  gmtime_r(&t->tv_sec, &tm);
  char day[32];
  strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, len, "%s.%06ldZ", day, t->tv_nsec / 1000);
}

static void put_key(wk_buf_t *b, const char *name, const key_t_ *k, const char *indent) {
  wk_buf_printf(b, "%s\"%s\": {\n%s  \"key\": ", indent, name, indent);
  wk_buf_json_str(b, k->text);
  if (k->expires_us) {
    char when[64];
    format_time(&k->expires, when, sizeof when);
    wk_buf_printf(b, ",\n%s  \"expiration time\": \"%s\"", indent, when);
  }
  wk_buf_printf(b, "\n%s}", indent);
}

/* Writes the key file (mode 0600) through a temporary file and rename, so that a reader
 * never sees half a file. Caller holds the lock. */
static int write_key_file(wk_auth_t *a, wk_err_t *err) {
  wk_buf_t b = WK_BUF_INIT;
  wk_buf_puts(&b, "{\n");
  put_key(&b, "management", &a->keys[WK_AUTH_MANAGEMENT], "  ");
  wk_buf_puts(&b, ",\n");
  put_key(&b, "inference", &a->keys[WK_AUTH_INFERENCE], "  ");
  wk_buf_puts(&b, ",\n");
  put_key(&b, "API", &a->keys[WK_AUTH_TOKEN_API], "  ");
  wk_buf_puts(&b, "\n}\n");
  char tmp[PATH_MAX + 16];
  snprintf(tmp, sizeof tmp, "%s.XXXXXX", a->path);
  int fd = mkstemp(tmp); /* mode 0600 */
  if (fd < 0) {
    int e = errno;
    memset(b.data, 0, b.len);
    wk_buf_destroy(&b);
    return wk_err(err, WK_EIO, "cannot write the key file %s: %s", a->path, strerror(e));
  }
  int rc = fchmod(fd, 0600);
  size_t off = 0;
  while (rc == 0 && off < b.len) {
    ssize_t n = write(fd, b.data + off, b.len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      rc = -1;
    else
      off += (size_t)n;
  }
  int e = errno;
  if (close(fd) != 0 && rc == 0) rc = -1, e = errno;
  if (rc == 0 && rename(tmp, a->path) != 0) rc = -1, e = errno;
  memset(b.data, 0, b.len);
  wk_buf_destroy(&b);
  if (rc != 0) {
    unlink(tmp);
    return wk_err(err, WK_EIO, "cannot write the key file %s: %s", a->path, strerror(e));
  }
  return 0;
}

int wk_auth_new(const wk_auth_opts_t *o, wk_auth_t **out, wk_err_t *err) {
  if (!(o->expiration_min > 0) || o->expiration_min > 1e9)
    return wk_err(err, WK_EINVAL,
                  "token_expiration_min: expected a positive number of minutes, got %g",
                  o->expiration_min);
  wk_auth_t *a = calloc(1, sizeof *a);
  if (a == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  const char *file = o->key_file ? o->key_file : "key_file.json";
  if (file[0] == '/') {
    snprintf(a->path, sizeof a->path, "%s", file);
  } else {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL ||
        (size_t)snprintf(a->path, sizeof a->path, "%s/%s", cwd, file) >= sizeof a->path) {
      free(a);
      return wk_err(err, WK_EIO,
                    "cannot name the key file %s: the current directory is unknown or too long",
                    file);
    }
  }
  a->lifetime_us = (int64_t)(o->expiration_min * 60e6);
  if (a->lifetime_us < 1) a->lifetime_us = 1;
  a->compat = o->compat_status_codes;
  if (renew(&a->keys[WK_AUTH_MANAGEMENT], a->lifetime_us) != 0 ||
      renew(&a->keys[WK_AUTH_INFERENCE], a->lifetime_us) != 0 ||
      renew(&a->keys[WK_AUTH_TOKEN_API], 0) != 0) {
    free(a);
    return wk_err(err, WK_EIO, "cannot make token keys: getrandom failed: %s", strerror(errno));
  }
  int rc = write_key_file(a, err);
  if (rc != 0) {
    memset(a, 0, sizeof *a);
    free(a);
    return rc;
  }
  pthread_rwlock_init(&a->lock, NULL);
  *out = a;
  return 0;
}

void wk_auth_free(wk_auth_t *a) {
  if (a == NULL) return;
  if (unlink(a->path) != 0 && errno != ENOENT)
    wk_log_warn("cannot remove the key file %s: %s", a->path, strerror(errno));
  pthread_rwlock_destroy(&a->lock);
  memset(a->keys, 0, sizeof a->keys);
  free(a);
}

const char *wk_auth_key_file(const wk_auth_t *a) {
  return a->path;
}

/* Equal contents, in a time that depends on the lengths only. */
static int same_key(const char *tok, size_t toklen, const char *key, size_t keylen) {
  volatile unsigned diff = (unsigned)(toklen ^ keylen);
  for (size_t i = 0; i < keylen; i++)
    diff |= (unsigned char)key[i] ^ (unsigned char)(i < toklen ? tok[i] : 0);
  return diff == 0;
}

int wk_auth_verify(wk_auth_t *a, const char *header, wk_auth_kind_t kind, int64_t now_us,
                   wk_err_t *err) {
  const char *what = kind_name(kind);
  if (header == NULL)
    return wk_err(err, WK_EUNSAFE,
                  "Token Authorization failed: no Authorization header; send 'Authorization: "
                  "Bearer <%s key>' with the %s key from key_file.json",
                  what, what);
  const char *p = header;
  while (*p == ' ' || *p == '\t')
    p++;
  const char *tok = p + 6;
  if (strncasecmp(p, "Bearer", 6) != 0 || (*tok != ' ' && *tok != '\t'))
    return wk_err(err, WK_EUNSAFE,
                  "Token Authorization failed: the Authorization header must be 'Bearer <%s key>'",
                  what);
  while (*tok == ' ' || *tok == '\t')
    tok++;
  size_t len = strcspn(tok, " \t");
  const char *rest = tok + len;
  while (*rest == ' ' || *rest == '\t')
    rest++;
  if (len == 0 || *rest != '\0')
    return wk_err(err, WK_EUNSAFE,
                  "Token Authorization failed: the Authorization header must be 'Bearer <%s key>'",
                  what);
  pthread_rwlock_rdlock(&a->lock);
  const key_t_ *k = &a->keys[kind];
  int match = same_key(tok, len, k->text, KEY_CHARS);
  int expired = match && k->expires_us && now_us >= k->expires_us;
  char when[64] = "";
  if (expired) format_time(&k->expires, when, sizeof when);
  pthread_rwlock_unlock(&a->lock);
  if (!match)
    return wk_err(err, WK_EUNSAFE,
                  "Token Authorization failed: the token is not the current %s key (see "
                  "key_file.json)",
                  what);
  if (expired)
    return wk_err(err, WK_ETIMEDOUT,
                  "Token Authorization failed: the %s key expired at %s; get a new one with "
                  "GET /token?type=%s on the management API, with the API key",
                  what, when, what);
  return 0;
}

static void deny(wk_auth_t *a, wk_http_req_t *req, const char *msg, int invalid) {
  if (a->compat) {
    wk_http_reply_error(req, 400, "InvalidKeyException", "%s", msg);
    return;
  }
  wk_http_reply_header(req, "WWW-Authenticate",
                       invalid ? "Bearer realm=\"wick\", error=\"invalid_token\""
                               : "Bearer realm=\"wick\"");
  wk_http_reply_error(req, 401, "InvalidKeyException", "%s", msg);
}

int wk_auth_check(wk_auth_t *a, wk_http_req_t *req, wk_auth_kind_t kind) {
  const char *header = wk_http_req_header(req, "Authorization");
  wk_err_t err = {{0}};
  if (wk_auth_verify(a, header, kind, wk_now_us(), &err) == 0) return 1;
  deny(a, req, err.msg, header != NULL);
  return 0;
}

void wk_auth_token_request(wk_auth_t *a, wk_http_req_t *req) {
  const char *method = wk_http_req_method(req);
  if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
    wk_http_reply_header(req, "Allow", "GET");
    wk_http_reply_error(req, 405, "MethodNotAllowedException",
                        "%s /token is not supported; use GET", method);
    return;
  }
  if (!wk_auth_check(a, req, WK_AUTH_TOKEN_API)) return;
  const char *type = wk_http_req_arg(req, "type");
  wk_auth_kind_t kind;
  if (type && strcmp(type, "management") == 0)
    kind = WK_AUTH_MANAGEMENT;
  else if (type && strcmp(type, "inference") == 0)
    kind = WK_AUTH_INFERENCE;
  else {
    wk_http_reply_error(req, 400, "BadRequestException",
                        "type must be 'management' or 'inference', got '%s'", type ? type : "");
    return;
  }
  wk_err_t err = {{0}};
  wk_buf_t b = WK_BUF_INIT;
  pthread_rwlock_wrlock(&a->lock);
  key_t_ old = a->keys[kind];
  int rc = renew(&a->keys[kind], a->lifetime_us);
  if (rc != 0)
    wk_err(&err, WK_EIO, "cannot make a new key: getrandom failed");
  else
    rc = write_key_file(a, &err);
  if (rc != 0)
    a->keys[kind] = old;
  else {
    wk_buf_puts(&b, "{\n");
    put_key(&b, kind_name(kind), &a->keys[kind], "  ");
    wk_buf_puts(&b, "\n}\n");
  }
  pthread_rwlock_unlock(&a->lock);
  memset(&old, 0, sizeof old);
  if (rc != 0) {
    wk_buf_destroy(&b);
    wk_log_error("GET /token: %s", err.msg);
    wk_http_reply_error(req, 500, "InternalServerException", "%s", err.msg);
    return;
  }
  wk_log_info("token authorization: the %s key was replaced (GET /token); %s has the new one",
              kind_name(kind), a->path);
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  wk_http_reply(req, 200, "application/json", body, len);
}
