/* ustar + gzip (zlib's gz* functions): writer with pax headers for long names, reader
 * that understands ustar, pax ('x', 'g') and GNU long names ('L') and refuses links,
 * devices and fifos. Sizes are checked against core/limits.h. */
#include "archive/tar.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "core/buf.h"
#include "core/limits.h"

#define BLOCK 512
#define CHUNK (256u * 1024u)
#define META_MAX (1024 * 1024) /* pax and long-name headers */

/* ---------------------------------------------------------------- writer */

struct wk_tar_writer_s {
  gzFile gz;
  char *path;
  int failed;
  wk_err_t ferr;
  long long mtime;
};

static int wfail(wk_tar_writer_t *w, wk_err_t *err, int code, const char *what) {
  if (!w->failed) {
    w->failed = code;
    wk_err(&w->ferr, code, "%s: %s", w->path, what);
  }
  if (err) *err = w->ferr;
  return w->failed;
}

static int gzput(wk_tar_writer_t *w, const void *p, size_t n, wk_err_t *err) {
  while (n > 0) {
    unsigned k = n > CHUNK ? CHUNK : (unsigned)n;
    if (gzwrite(w->gz, p, k) != (int)k) return wfail(w, err, WK_EIO, "gzip write failed");
    p = (const char *)p + k;
    n -= k;
  }
  return 0;
}

static int pad_block(wk_tar_writer_t *w, uint64_t size, wk_err_t *err) {
  static const char zeros[BLOCK];
  size_t pad = (size_t)((BLOCK - size % BLOCK) % BLOCK);
  return gzput(w, zeros, pad, err);
}

int wk_tar_writer_open(const char *path, wk_tar_writer_t **out, wk_err_t *err) {
  wk_tar_writer_t *w = calloc(1, sizeof *w);
  if (w == NULL || (w->path = strdup(path)) == NULL) {
    free(w);
    return wk_err(err, WK_ENOMEM, "out of memory");
  }
  w->gz = gzopen(path, "wb6");
  if (w->gz == NULL) {
    int e = errno;
    free(w->path);
    free(w);
    return wk_err(err, WK_EIO, "cannot create %s: %s", path, strerror(e));
  }
  w->mtime = (long long)time(NULL);
  *out = w;
  return 0;
}

static void octal(char *field, size_t width, uint64_t v) {
  /* width-1 octal digits and a NUL, as ustar wants; v must fit (checked by callers). */
  field[width - 1] = '\0';
  for (size_t i = width - 1; i-- > 0;) {
    field[i] = (char)('0' + (v & 7));
    v >>= 3;
  }
}

static void size_field(char *field, uint64_t v) {
  if (v < (1ULL << 33)) {
    octal(field, 12, v);
    return;
  }
  /* GNU base-256 for 8 GiB and more */
  field[0] = (char)0x80;
  for (int i = 11; i > 0; i--) {
    field[i] = (char)(v & 0xff);
    v >>= 8;
  }
}

static void checksum(char *h) {
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < BLOCK; i++)
    sum += (unsigned char)h[i];
  octal(h + 148, 7, sum);
  h[155] = ' ';
}

/* Writes one header block; name must already fit (<= 100, or prefix/name split). */
static int raw_header(wk_tar_writer_t *w, const char *name, const char *prefix, char type,
                      unsigned mode, uint64_t size, wk_err_t *err) {
  char h[BLOCK];
  memset(h, 0, sizeof h);
  memcpy(h, name, strlen(name));
  octal(h + 100, 8, mode);
  octal(h + 108, 8, 0);
  octal(h + 116, 8, 0);
  size_field(h + 124, size);
  octal(h + 136, 12, (uint64_t)w->mtime);
  h[156] = type;
  memcpy(h + 257, "ustar", 6);
  memcpy(h + 263, "00", 2);
  memcpy(h + 265, "root", 4);
  memcpy(h + 297, "root", 4);
  if (prefix) memcpy(h + 345, prefix, strlen(prefix));
  checksum(h);
  return gzput(w, h, sizeof h, err);
}

static int header(wk_tar_writer_t *w, const char *name, char type, unsigned mode, uint64_t size,
                  wk_err_t *err) {
  size_t n = strlen(name);
  if (n == 0) return wfail(w, err, WK_EINVAL, "tar entry names cannot be empty");
  if (n > WK_MAX_ZIP_NAME) return wfail(w, err, WK_ETOOBIG, "tar entry name is too long");
  if (n <= 100) return raw_header(w, name, NULL, type, mode, size, err);
  /* ustar prefix/name split at a '/' */
  for (size_t i = n - 1; i > 0; i--) {
    if (name[i] != '/' || i > 155 || n - i - 1 > 100 || n - i - 1 == 0) continue;
    char prefix[156];
    memcpy(prefix, name, i);
    prefix[i] = '\0';
    return raw_header(w, name + i + 1, prefix, type, mode, size, err);
  }
  /* pax extended header with the path */
  char rec[WK_MAX_ZIP_NAME + 32];
  size_t body = n + strlen(" path=\n"), len = body + 1;
  while ((size_t)snprintf(NULL, 0, "%zu", len) + body != len)
    len++;
  int k = snprintf(rec, sizeof rec, "%zu path=%s\n", len, name);
  char shortname[101];
  snprintf(shortname, sizeof shortname, "PaxHeaders/%.80s", name + n - (n > 80 ? 80 : n));
  int rc = raw_header(w, shortname, NULL, 'x', 0644, (uint64_t)k, err);
  rc = rc ? rc : gzput(w, rec, (size_t)k, err);
  rc = rc ? rc : pad_block(w, (uint64_t)k, err);
  rc = rc ? rc : raw_header(w, shortname, NULL, type, mode, size, err);
  return rc;
}

int wk_tar_writer_add(wk_tar_writer_t *w, const char *name, const void *data, size_t len,
                      wk_err_t *err) {
  if (w->failed) return wfail(w, err, w->failed, "");
  int rc = header(w, name, '0', 0644, len, err);
  rc = rc ? rc : gzput(w, data, len, err);
  return rc ? rc : pad_block(w, len, err);
}

int wk_tar_writer_add_file(wk_tar_writer_t *w, const char *name, const char *src_path,
                           wk_err_t *err) {
  if (w->failed) return wfail(w, err, w->failed, "");
  int fd = open(src_path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    char msg[300];
    snprintf(msg, sizeof msg, "cannot read %s: %s", src_path,
             fd < 0 ? strerror(errno) : "not a regular file");
    if (fd >= 0) close(fd);
    return wfail(w, err, WK_EIO, msg);
  }
  uint64_t left = (uint64_t)st.st_size;
  char *buf = malloc(CHUNK);
  int rc = buf ? header(w, name, '0', 0644, left, err) : wfail(w, err, WK_ENOMEM, "out of memory");
  while (rc == 0) {
    ssize_t r = read(fd, buf, CHUNK);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      rc = wfail(w, err, WK_EIO, "reading a source file failed");
    else if ((uint64_t)r > left)
      rc = wfail(w, err, WK_EIO, "a source file grew while being added");
    else if (r == 0 && left > 0)
      rc = wfail(w, err, WK_EIO, "a source file shrank while being added");
    else if (r == 0)
      break;
    else {
      rc = gzput(w, buf, (size_t)r, err);
      left -= (uint64_t)r;
    }
  }
  free(buf);
  close(fd);
  return rc ? rc : pad_block(w, (uint64_t)st.st_size, err);
}

int wk_tar_writer_add_dir(wk_tar_writer_t *w, const char *name, wk_err_t *err) {
  if (w->failed) return wfail(w, err, w->failed, "");
  size_t n = strlen(name);
  if (n == 0) return wfail(w, err, WK_EINVAL, "tar entry names cannot be empty");
  char *dn = malloc(n + 2);
  if (dn == NULL) return wfail(w, err, WK_ENOMEM, "out of memory");
  memcpy(dn, name, n + 1);
  if (name[n - 1] != '/') memcpy(dn + n, "/", 2);
  int rc = header(w, dn, '5', 0755, 0, err);
  free(dn);
  return rc;
}

static void writer_free(wk_tar_writer_t *w, bool remove_file) {
  if (w->gz) gzclose(w->gz);
  if (remove_file) unlink(w->path);
  free(w->path);
  free(w);
}

int wk_tar_writer_close(wk_tar_writer_t *w, wk_err_t *err) {
  static const char zeros[2 * BLOCK];
  int rc = w->failed ? wfail(w, err, w->failed, "") : gzput(w, zeros, sizeof zeros, err);
  if (rc == 0) {
    int cr = gzclose(w->gz);
    w->gz = NULL;
    if (cr != Z_OK) rc = wfail(w, err, WK_EIO, "closing the gzip stream failed");
  }
  writer_free(w, rc != 0);
  return rc;
}

void wk_tar_writer_discard(wk_tar_writer_t *w) {
  if (w) writer_free(w, true);
}

/* ---------------------------------------------------------------- reader */

struct wk_tar_reader_s {
  gzFile gz;
  char *path;
  uint64_t left;    /* unread data bytes of the current entry */
  uint64_t padding; /* bytes after the data up to the block boundary */
  uint64_t total;   /* regular-file bytes so far */
  wk_buf_t name;
  wk_tar_entry_t cur;
  bool done;
};

int wk_tar_reader_open(const char *path, wk_tar_reader_t **out, wk_err_t *err) {
  wk_tar_reader_t *r = calloc(1, sizeof *r);
  if (r == NULL || (r->path = strdup(path)) == NULL) {
    free(r);
    return wk_err(err, WK_ENOMEM, "out of memory");
  }
  r->gz = gzopen(path, "rb");
  if (r->gz == NULL) {
    int e = errno;
    free(r->path);
    free(r);
    return wk_err(err, e == ENOENT ? WK_ENOTFOUND : WK_EIO, "cannot open %s: %s", path,
                  strerror(e));
  }
  gzbuffer(r->gz, 128 * 1024);
  *out = r;
  return 0;
}

void wk_tar_reader_close(wk_tar_reader_t *r) {
  if (r == NULL) return;
  gzclose(r->gz);
  wk_buf_destroy(&r->name);
  free(r->path);
  free(r);
}

/* Reads exactly n bytes (n may be 0); a short read is a truncated or damaged archive. */
static int gzget(wk_tar_reader_t *r, void *p, size_t n, wk_err_t *err) {
  while (n > 0) {
    unsigned k = n > CHUNK ? CHUNK : (unsigned)n;
    int got = gzread(r->gz, p, k);
    if (got <= 0) {
      int zerr = 0;
      const char *m = gzerror(r->gz, &zerr);
      if (got < 0 || (zerr != Z_OK && zerr != Z_STREAM_END))
        return wk_err(err, WK_EFORMAT, "%s: damaged gzip data (%s)", r->path, m ? m : "?");
      return wk_err(err, WK_EFORMAT, "%s: the archive is truncated", r->path);
    }
    p = (char *)p + got;
    n -= (size_t)got;
  }
  return 0;
}

static int skip(wk_tar_reader_t *r, uint64_t n, wk_err_t *err) {
  char buf[4096];
  while (n > 0) {
    size_t k = n > sizeof buf ? sizeof buf : (size_t)n;
    int rc = gzget(r, buf, k, err);
    if (rc) return rc;
    n -= k;
  }
  return 0;
}

static int parse_num(const char *f, size_t width, uint64_t *out) {
  const unsigned char *u = (const unsigned char *)f;
  uint64_t v = 0;
  if (u[0] & 0x80) { /* base-256 */
    if (u[0] != 0x80) return -1;
    for (size_t i = 1; i < width; i++) {
      if (v >> 56) return -1;
      v = (v << 8) | u[i];
    }
    *out = v;
    return 0;
  }
  size_t i = 0;
  while (i < width && f[i] == ' ')
    i++;
  size_t digits = 0;
  for (; i < width && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
    if (v >> 60) return -1;
    v = (v << 3) | (uint64_t)(f[i] - '0');
  }
  for (; i < width; i++)
    if (f[i] != ' ' && f[i] != '\0') return -1;
  *out = v;
  return digits ? 0 : -1;
}

static bool checksum_ok(const unsigned char *h) {
  uint64_t want;
  if (parse_num((const char *)h + 148, 8, &want) != 0) return false;
  unsigned usum = 0;
  int ssum = 0;
  for (int i = 0; i < BLOCK; i++) {
    unsigned char c = (i >= 148 && i < 156) ? ' ' : h[i];
    usum += c;
    ssum += (signed char)c;
  }
  return want == usum || (int64_t)want == ssum;
}

/* Reads a pax or long-name body of size n into a NUL-terminated malloc'd string. */
static int read_meta(wk_tar_reader_t *r, uint64_t n, char **out, wk_err_t *err) {
  if (n > META_MAX)
    return wk_err(err, WK_ETOOBIG, "%s: a tar extended header is larger than %d bytes", r->path,
                  META_MAX);
  char *s = malloc((size_t)n + 1);
  if (s == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  int rc = gzget(r, s, (size_t)n, err);
  rc = rc ? rc : skip(r, (BLOCK - n % BLOCK) % BLOCK, err);
  if (rc) {
    free(s);
    return rc;
  }
  s[n] = '\0';
  *out = s;
  return 0;
}

/* Applies pax records "LEN key=value\n": path and size. *path gets a malloc'd copy. */
static int apply_pax(wk_tar_reader_t *r, const char *s, size_t n, char **path, uint64_t *size,
                     bool *has_size, wk_err_t *err) {
  size_t i = 0;
  while (i < n) {
    size_t len = 0, j = i;
    while (j < n && s[j] >= '0' && s[j] <= '9' && len < 100000000)
      len = len * 10 + (size_t)(s[j++] - '0');
    if (j == i || j >= n || s[j] != ' ' || len < 5 || len > n - i || s[i + len - 1] != '\n')
      return wk_err(err, WK_EFORMAT, "%s: malformed pax header", r->path);
    const char *kv = s + j + 1, *end = s + i + len - 1;
    const char *eq = memchr(kv, '=', (size_t)(end - kv));
    if (eq == NULL) return wk_err(err, WK_EFORMAT, "%s: malformed pax record", r->path);
    size_t klen = (size_t)(eq - kv), vlen = (size_t)(end - eq - 1);
    if (klen == 4 && memcmp(kv, "path", 4) == 0) {
      if (memchr(eq + 1, '\0', vlen) != NULL)
        return wk_err(err, WK_EUNSAFE, "%s: a tar entry has a NUL byte in its name", r->path);
      free(*path);
      *path = strndup(eq + 1, vlen);
      if (*path == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
    } else if (klen == 4 && memcmp(kv, "size", 4) == 0) {
      uint64_t v = 0;
      if (vlen == 0 || vlen > 19) return wk_err(err, WK_EFORMAT, "%s: bad pax size", r->path);
      for (size_t q = 0; q < vlen; q++) {
        char c = eq[1 + q];
        if (c < '0' || c > '9') return wk_err(err, WK_EFORMAT, "%s: bad pax size", r->path);
        v = v * 10 + (uint64_t)(c - '0');
      }
      *size = v;
      *has_size = true;
    }
    i += len;
  }
  return 0;
}

static int all_zero(const unsigned char *h) {
  for (int i = 0; i < BLOCK; i++)
    if (h[i]) return 0;
  return 1;
}

int wk_tar_next(wk_tar_reader_t *r, const wk_tar_entry_t **e, wk_err_t *err) {
  if (r->done) return 0;
  int rc = skip(r, r->left + r->padding, err);
  if (rc) return rc;
  r->left = r->padding = 0;
  char *long_name = NULL, *pax_path = NULL;
  uint64_t pax_size = 0;
  bool has_pax_size = false;
  unsigned char h[BLOCK];
  for (;;) {
    rc = gzget(r, h, BLOCK, err);
    if (rc) break;
    if (all_zero(h)) {
      r->done = true;
      rc = 0;
      break;
    }
    if (!checksum_ok(h)) {
      rc = wk_err(err, WK_EFORMAT, "%s: bad tar header checksum (not a tar archive, or damaged)",
                  r->path);
      break;
    }
    uint64_t size;
    if (parse_num((const char *)h + 124, 12, &size) != 0) {
      rc = wk_err(err, WK_EFORMAT, "%s: bad size field in a tar header", r->path);
      break;
    }
    char type = (char)h[156];
    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
      char *meta = NULL;
      if ((rc = read_meta(r, size, &meta, err)) != 0) break;
      if (type == 'x') {
        rc = apply_pax(r, meta, (size_t)size, &pax_path, &pax_size, &has_pax_size, err);
      } else if (type == 'L') {
        free(long_name);
        long_name = meta;
        meta = NULL;
      }
      free(meta);
      if (rc) break;
      continue;
    }
    if (has_pax_size) size = pax_size;
    /* name */
    r->name.len = 0;
    if (pax_path) {
      rc = wk_buf_puts(&r->name, pax_path);
    } else if (long_name) {
      rc = wk_buf_puts(&r->name, long_name);
    } else {
      if (memcmp(h + 257, "ustar", 5) == 0 && h[345] != '\0') {
        rc = wk_buf_append(&r->name, h + 345, strnlen((const char *)h + 345, 155));
        rc = rc ? rc : wk_buf_putc(&r->name, '/');
      }
      rc = rc ? rc : wk_buf_append(&r->name, h, strnlen((const char *)h, 100));
    }
    if (rc) {
      rc = wk_err(err, WK_ENOMEM, "out of memory");
      break;
    }
    const char *nm = r->name.data ? r->name.data : "";
    if (r->name.len == 0) {
      rc = wk_err(err, WK_EFORMAT, "%s: a tar entry has an empty name", r->path);
      break;
    }
    if (r->name.len > WK_MAX_ZIP_NAME) {
      rc = wk_err(err, WK_ETOOBIG, "%s: a tar entry name is longer than %d bytes", r->path,
                  WK_MAX_ZIP_NAME);
      break;
    }
    if (type == '1' || type == '2') {
      rc = wk_err(err, WK_EUNSAFE, "archive entry '%.200s' is a %s link; links are refused", nm,
                  type == '1' ? "hard" : "symbolic");
      break;
    }
    if (type == '3' || type == '4' || type == '6') {
      rc = wk_err(err, WK_EUNSAFE,
                  "archive entry '%.200s' is a device or fifo; only files and directories "
                  "are allowed",
                  nm);
      break;
    }
    bool is_dir = type == '5' || ((type == '0' || type == '\0') && nm[r->name.len - 1] == '/');
    if (!is_dir && type != '0' && type != '\0' && type != '7') {
      rc = wk_err(err, WK_EUNSUPPORTED, "archive entry '%.200s' has unsupported tar type '%c'", nm,
                  type >= 0x20 && type < 0x7f ? type : '?');
      break;
    }
    if (size > (uint64_t)WK_MAX_ENTRY_SIZE) {
      rc = wk_err(err, WK_ETOOBIG, "archive entry '%.200s' is %llu bytes; the limit is %lld", nm,
                  (unsigned long long)size, (long long)WK_MAX_ENTRY_SIZE);
      break;
    }
    r->total += size;
    if (r->total > (uint64_t)WK_MAX_ARCHIVE_UNPACKED) {
      rc = wk_err(err, WK_ETOOBIG, "%s: entries add up to more than %lld bytes (the limit)",
                  r->path, (long long)WK_MAX_ARCHIVE_UNPACKED);
      break;
    }
    r->cur.name = nm;
    r->cur.is_dir = is_dir;
    r->cur.size = is_dir ? 0 : size;
    r->left = size; /* a directory's data (normally none) is skipped */
    r->padding = (BLOCK - size % BLOCK) % BLOCK;
    *e = &r->cur;
    rc = 1;
    break;
  }
  free(long_name);
  free(pax_path);
  return rc;
}

int wk_tar_read(wk_tar_reader_t *r, void *buf, size_t n, size_t *got, wk_err_t *err) {
  size_t k = r->left < n ? (size_t)r->left : n;
  if (r->cur.is_dir) k = 0;
  int rc = gzget(r, buf, k, err);
  if (rc) return rc;
  r->left -= k;
  *got = k;
  return 0;
}
