/* Archive kinds, safe unpacking, single-file reads and listings over zip (archive/zip),
 * tgz (archive/tar) and plain directories. Knows nothing of manifests or models: it only
 * guarantees that what it writes stays inside the destination and within the limits. */
#include "archive/archive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/tar.h"
#include "archive/zip.h"
#include "core/buf.h"
#include "core/fs.h"
#include "core/limits.h"
#include "core/text.h"

#define PATH_BUF 4096
#define DIR_DEPTH_MAX 32

/* A printable, bounded copy of a name for messages. */
static const char *show(const char *name, size_t len, char out[216]) {
  return wk_text_shown(name, len, out, 216);
}

int wk_archive_kind(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return errno == ENOENT ? WK_ENOTFOUND : WK_EIO;
  if (S_ISDIR(st.st_mode)) return WK_ARCHIVE_DIR;
  if (!S_ISREG(st.st_mode)) return WK_EFORMAT;
  unsigned char m[4] = {0};
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return WK_EIO;
  ssize_t n = read(fd, m, sizeof m);
  close(fd);
  if (n >= 4 && m[0] == 'P' && m[1] == 'K' &&
      ((m[2] == 3 && m[3] == 4) || (m[2] == 5 && m[3] == 6)))
    return WK_ARCHIVE_ZIP;
  if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) return WK_ARCHIVE_TGZ;
  return WK_EFORMAT;
}

static int kind_or_err(const char *path, wk_err_t *err) {
  int k = wk_archive_kind(path);
  if (k == WK_ENOTFOUND) return wk_err(err, k, "%s does not exist", path);
  if (k == WK_EIO) return wk_err(err, k, "cannot read %s: %s", path, strerror(errno));
  if (k < 0)
    return wk_err(err, k,
                  "%s is not a model archive (expected a .mar/.zip, a .tar.gz or a "
                  "directory)",
                  path);
  return k;
}

int wk_archive_check_name(const char *name, size_t len, wk_err_t *err) {
  char s[216];
  if (len == 0) return wk_err(err, WK_EUNSAFE, "an archive entry has an empty name");
  if (memchr(name, '\0', len) != NULL)
    return wk_err(err, WK_EUNSAFE, "archive entry '%s' has a NUL byte in its name",
                  show(name, len, s));
  if (memchr(name, '\\', len) != NULL)
    return wk_err(err, WK_EUNSAFE,
                  "archive entry '%s' uses '\\' in its path; only '/' separators are allowed",
                  show(name, len, s));
  if (name[0] == '/')
    return wk_err(err, WK_EUNSAFE, "archive entry '%s' leaves the model directory (absolute path)",
                  show(name, len, s));
  for (size_t i = 0; i < len;) {
    size_t j = i;
    while (j < len && name[j] != '/')
      j++;
    if (j - i == 2 && name[i] == '.' && name[i + 1] == '.')
      return wk_err(err, WK_EUNSAFE, "archive entry '%s' leaves the model directory",
                    show(name, len, s));
    i = j + 1;
  }
  return 0;
}

/* Writes the checked name without empty and "." components into out ("" when nothing
 * remains), dropping the first `strip` components. */
static int normalize(const char *name, int strip, char *out, size_t outlen) {
  size_t o = 0;
  for (const char *p = name; *p;) {
    const char *q = strchr(p, '/');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    if (n > 0 && !(n == 1 && p[0] == '.')) {
      if (strip > 0) {
        strip--;
      } else {
        if (o + n + 2 > outlen) return WK_ETOOBIG;
        if (o) out[o++] = '/';
        memcpy(out + o, p, n);
        o += n;
      }
    }
    p += n;
    if (*p == '/') p++;
  }
  out[o] = '\0';
  return 0;
}

/* Refuses rel when a component of dest/rel that already exists is a symbolic link, so
 * that unpacking into a directory that holds links (a model directory used in place)
 * cannot write through them. */
static int check_no_links(const char *dest, const char *rel, wk_err_t *err) {
  char path[PATH_BUF];
  if (wk_fs_join(path, sizeof path, dest, rel) != 0)
    return wk_err(err, WK_ETOOBIG, "archive entry '%.200s': path too long", rel);
  size_t base = strlen(dest);
  for (char *p = path + base + 1;; p++) {
    char c = *p;
    if (c != '/' && c != '\0') continue;
    *p = '\0';
    struct stat st;
    int is_link = lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
    *p = c;
    if (is_link)
      return wk_err(err, WK_EUNSAFE,
                    "archive entry '%.200s' would be written through the symbolic link '%.*s' "
                    "in the destination; links are not followed",
                    rel, (int)(p - path - base - 1), path + base + 1);
    if (c == '\0') return 0;
  }
}

/* Creates dest/rel's parent directories and opens dest/rel for writing. */
static int create_file(const char *dest, const char *rel, int *fd, wk_err_t *err) {
  char path[PATH_BUF];
  if (wk_fs_join(path, sizeof path, dest, rel) != 0)
    return wk_err(err, WK_ETOOBIG, "archive entry '%.200s': path too long", rel);
  int lrc = check_no_links(dest, rel, err);
  if (lrc) return lrc;
  char *slash = strrchr(path, '/');
  *slash = '\0';
  int rc = wk_fs_mkdirs(path, err);
  *slash = '/';
  if (rc) return rc;
  *fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (*fd < 0) return wk_err(err, WK_EIO, "cannot create %s: %s", path, strerror(errno));
  return 0;
}

static int make_dir(const char *dest, const char *rel, wk_err_t *err) {
  char path[PATH_BUF];
  if (wk_fs_join(path, sizeof path, dest, rel) != 0)
    return wk_err(err, WK_ETOOBIG, "archive entry '%.200s': path too long", rel);
  int lrc = check_no_links(dest, rel, err);
  if (lrc) return lrc;
  return wk_fs_mkdirs(path, err);
}

/* ---------------------------------------------------------------- zip */

/* ---------------------------------------------------------------- one name, one entry */

/* The entries' names as they land on disk (normalized), to refuse an archive that names
 * one file twice: a reader that takes the first copy and an unpacker that keeps the last
 * would disagree on what the archive holds (the audit of [11] hid a second MANIFEST.json
 * that way). Both readers, zip and tar, and both uses, unpacking and reading one file,
 * go through it. */
typedef struct names_s {
  char **v;
  size_t n, cap;
} names_t;

static void names_free(names_t *s) {
  for (size_t i = 0; i < s->n; i++) free(s->v[i]);
  free(s->v);
  memset(s, 0, sizeof *s);
}

static int names_add(names_t *s, const char *name, wk_err_t *err) {
  char rel[PATH_BUF];
  if (normalize(name, 0, rel, sizeof rel) != 0)
    return wk_err(err, WK_ETOOBIG, "archive entry '%.200s': path too long", name);
  if (rel[0] == '\0') return 0;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    char **v = realloc(s->v, cap * sizeof *v);
    if (v == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
    s->v = v;
    s->cap = cap;
  }
  if ((s->v[s->n] = strdup(rel)) == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  s->n++;
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int names_check(names_t *s, wk_err_t *err) {
  qsort(s->v, s->n, sizeof *s->v, cmp_str);
  char shown[216];
  for (size_t i = 1; i < s->n; i++)
    if (strcmp(s->v[i - 1], s->v[i]) == 0)
      return wk_err(err, WK_EUNSAFE,
                    "the archive holds '%s' twice; an archive must name each file once",
                    wk_text_shown(s->v[i], strlen(s->v[i]), shown, sizeof shown));
  return 0;
}

/* Checks every entry of an open zip: names, kinds, and each name once. */
static int check_zip_entry(const wk_zip_entry_t *e, wk_err_t *err);

static int check_zip(wk_zip_t *z, wk_err_t *err) {
  names_t names = {0};
  size_t n = wk_zip_count(z);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const wk_zip_entry_t *e = wk_zip_entry(z, i);
    rc = check_zip_entry(e, err);
    if (rc == 0) rc = names_add(&names, e->name, err);
  }
  if (rc == 0) rc = names_check(&names, err);
  names_free(&names);
  return rc;
}

static int check_zip_entry(const wk_zip_entry_t *e, wk_err_t *err) {
  char s[216];
  int rc = wk_archive_check_name(e->name, e->name_len, err);
  if (rc) return rc;
  if (e->is_symlink)
    return wk_err(err, WK_EUNSAFE, "archive entry '%s' is a symbolic link; links are refused",
                  show(e->name, e->name_len, s));
  unsigned t = e->unix_mode & S_IFMT;
  if (t != 0 && t != S_IFREG && t != S_IFDIR)
    return wk_err(err, WK_EUNSAFE,
                  "archive entry '%s' is a device or fifo; only files and directories are "
                  "allowed",
                  show(e->name, e->name_len, s));
  if (!e->is_dir && (e->flags & 1))
    return wk_err(err, WK_EUNSUPPORTED, "archive entry '%s' is encrypted",
                  show(e->name, e->name_len, s));
  if (!e->is_dir && e->method != WK_ZIP_STORED && e->method != WK_ZIP_DEFLATED)
    return wk_err(err, WK_EUNSUPPORTED,
                  "archive entry '%s' uses compression method %u; only stored and deflate "
                  "are supported",
                  show(e->name, e->name_len, s), e->method);
  return 0;
}

static int over_limit(uint64_t total, uint64_t max, wk_err_t *err) {
  return wk_err(err, WK_ETOOBIG,
                "it unpacks to %s%llu bytes, more than the %llu bytes allowed", total > max ? "over " : "",
                (unsigned long long)total, (unsigned long long)max);
}

static int unpack_zip(const char *src, const char *dest, uint64_t max, uint64_t *total,
                      wk_err_t *err) {
  wk_zip_t *z;
  int rc = wk_zip_open(src, &z, err);
  if (rc) return rc;
  size_t n = wk_zip_count(z);
  rc = check_zip(z, err);
  /* the central directory's sizes hold (the reader checks each entry against its own):
   * refuse before writing anything */
  *total = 0;
  for (size_t i = 0; i < n; i++) *total += wk_zip_entry(z, i)->size;
  if (rc == 0 && *total > max) rc = over_limit(*total, max, err);
  if (rc == 0) rc = wk_fs_mkdirs(dest, err);
  char rel[PATH_BUF];
  for (size_t i = 0; i < n && rc == 0; i++) {
    const wk_zip_entry_t *e = wk_zip_entry(z, i);
    if (normalize(e->name, 0, rel, sizeof rel) != 0) {
      rc = wk_err(err, WK_ETOOBIG, "archive entry '%.200s': path too long", e->name);
      break;
    }
    if (rel[0] == '\0') continue;
    if (e->is_dir) {
      rc = make_dir(dest, rel, err);
      continue;
    }
    int fd;
    if ((rc = create_file(dest, rel, &fd, err)) != 0) break;
    rc = wk_zip_extract_fd(z, i, fd, err);
    if (close(fd) != 0 && rc == 0)
      rc = wk_err(err, WK_EIO, "writing '%.200s' failed: %s", rel, strerror(errno));
  }
  wk_zip_close(z);
  return rc;
}

/* ---------------------------------------------------------------- tgz */

/* Pass 1: checks every entry and finds whether all of them sit under one directory; stops
 * as soon as the files add up to more than max bytes. */
static int scan_tgz(const char *src, int *strip, uint64_t max, uint64_t *total, wk_err_t *err) {
  wk_tar_reader_t *r;
  int rc = wk_tar_reader_open(src, &r, err);
  if (rc) return rc;
  const wk_tar_entry_t *e;
  char rel[PATH_BUF], top[PATH_BUF] = "";
  bool same_top = true, any_below = false;
  names_t names = {0};
  *total = 0;
  while ((rc = wk_tar_next(r, &e, err)) == 1) {
    if ((rc = wk_archive_check_name(e->name, strlen(e->name), err)) != 0) break;
    if (!e->is_dir && (*total += e->size) > max) {
      rc = over_limit(*total, max, err);
      break;
    }
    if ((rc = names_add(&names, e->name, err)) != 0) break;
    if (normalize(e->name, 0, rel, sizeof rel) != 0) {
      rc = wk_err(err, WK_ETOOBIG, "archive entry '%.200s': path too long", e->name);
      break;
    }
    if (rel[0] == '\0') continue;
    char *slash = strchr(rel, '/');
    if (slash == NULL && !e->is_dir) same_top = false;
    if (slash) {
      *slash = '\0';
      any_below = true;
    }
    if (top[0] == '\0')
      memcpy(top, rel, strlen(rel) + 1);
    else if (strcmp(top, rel) != 0)
      same_top = false;
  }
  wk_tar_reader_close(r);
  if (rc >= 0) rc = names_check(&names, err);
  names_free(&names);
  *strip = (same_top && any_below) ? 1 : 0;
  return rc < 0 ? rc : 0;
}

/* keep_top: unpack every entry where its name says (no common directory dropped). */
static int unpack_tgz(const char *src, const char *dest, int keep_top, uint64_t max,
                      uint64_t *total, wk_err_t *err) {
  int strip;
  int rc = scan_tgz(src, &strip, max, total, err);
  if (rc) return rc;
  if (keep_top) strip = 0;
  if ((rc = wk_fs_mkdirs(dest, err)) != 0) return rc;
  wk_tar_reader_t *r;
  if ((rc = wk_tar_reader_open(src, &r, err)) != 0) return rc;
  char *buf = malloc(256 * 1024);
  if (buf == NULL) {
    wk_tar_reader_close(r);
    return wk_err(err, WK_ENOMEM, "out of memory");
  }
  const wk_tar_entry_t *e;
  char rel[PATH_BUF];
  while ((rc = wk_tar_next(r, &e, err)) == 1) {
    rc = 0;
    if (normalize(e->name, strip, rel, sizeof rel) != 0) {
      rc = wk_err(err, WK_ETOOBIG, "archive entry '%.200s': path too long", e->name);
      break;
    }
    if (rel[0] == '\0') continue;
    if (e->is_dir) {
      if ((rc = make_dir(dest, rel, err)) != 0) break;
      continue;
    }
    int fd;
    if ((rc = create_file(dest, rel, &fd, err)) != 0) break;
    size_t got;
    while ((rc = wk_tar_read(r, buf, 256 * 1024, &got, err)) == 0 && got > 0) {
      size_t off = 0;
      while (off < got) {
        ssize_t w = write(fd, buf + off, got - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          rc = wk_err(err, WK_EIO, "writing '%.200s' failed: %s", rel, strerror(errno));
          break;
        }
        off += (size_t)w;
      }
      if (rc) break;
    }
    if (close(fd) != 0 && rc == 0)
      rc = wk_err(err, WK_EIO, "writing '%.200s' failed: %s", rel, strerror(errno));
    if (rc) break;
  }
  free(buf);
  wk_tar_reader_close(r);
  return rc < 0 ? rc : 0;
}

int wk_archive_unpack_max(const char *src, const char *dest_dir, uint64_t max, uint64_t *unpacked,
                          wk_err_t *err) {
  uint64_t total = 0;
  if (unpacked) *unpacked = 0;
  int k = kind_or_err(src, err);
  if (k < 0) return k;
  if (k == WK_ARCHIVE_DIR) return 0;
  if (max > (uint64_t)WK_MAX_ARCHIVE_UNPACKED) max = (uint64_t)WK_MAX_ARCHIVE_UNPACKED;
  int rc = k == WK_ARCHIVE_ZIP ? unpack_zip(src, dest_dir, max, &total, err)
                               : unpack_tgz(src, dest_dir, 0, max, &total, err);
  if (rc) wk_err_prefix(err, "cannot unpack %s", src);
  else if (unpacked) *unpacked = total;
  return rc;
}

int wk_archive_unpack(const char *src, const char *dest_dir, wk_err_t *err) {
  return wk_archive_unpack_max(src, dest_dir, (uint64_t)WK_MAX_ARCHIVE_UNPACKED, NULL, err);
}

/* 1 when the first block of path is a ustar/GNU tar header ("ustar" at offset 257). */
static int is_plain_tar(const char *path) {
  char block[512];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, block, sizeof block);
  close(fd);
  return n == (ssize_t)sizeof block && memcmp(block + 257, "ustar", 5) == 0;
}

int wk_archive_unpack_into(const char *src, const char *dest_dir, wk_err_t *err) {
  return wk_archive_unpack_into_max(src, dest_dir, (uint64_t)WK_MAX_ARCHIVE_UNPACKED, NULL, err);
}

int wk_archive_unpack_into_max(const char *src, const char *dest_dir, uint64_t max,
                               uint64_t *unpacked, wk_err_t *err) {
  uint64_t total = 0;
  if (unpacked) *unpacked = 0;
  if (max > (uint64_t)WK_MAX_ARCHIVE_UNPACKED) max = (uint64_t)WK_MAX_ARCHIVE_UNPACKED;
  struct stat st;
  if (lstat(src, &st) != 0)
    return wk_err(err, errno == ENOENT ? WK_ENOTFOUND : WK_EIO, "%s: %s", src,
                  errno == ENOENT ? "no such file" : strerror(errno));
  if (!S_ISREG(st.st_mode))
    return wk_err(err, WK_EUNSAFE, "%s is not a regular file%s", src,
                  S_ISLNK(st.st_mode) ? " (a symbolic link)" : "");
  int k = wk_archive_kind(src);
  int rc;
  if (k == WK_ARCHIVE_ZIP)
    rc = unpack_zip(src, dest_dir, max, &total, err);
  else if (k == WK_ARCHIVE_TGZ || is_plain_tar(src))
    rc = unpack_tgz(src, dest_dir, 1, max, &total, err);
  else
    return wk_err(err, WK_EFORMAT, "%s is not a .zip, .tar, .tar.gz or .tgz archive", src);
  if (rc) wk_err_prefix(err, "cannot unpack %s", src);
  else if (unpacked) *unpacked = total;
  return rc;
}

/* ---------------------------------------------------------------- read one file */

static int too_big(const char *src, const char *name, unsigned long long size, size_t max,
                   wk_err_t *err) {
  return wk_err(err, WK_ETOOBIG, "%s: '%.200s' is %llu bytes; at most %zu are read", src, name,
                size, max);
}

static int read_zip_file(const char *src, const char *name, size_t max, char **data, size_t *len,
                         wk_err_t *err) {
  wk_zip_t *z;
  int rc = wk_zip_open(src, &z, err);
  if (rc) return rc;
  if ((rc = check_zip(z, err)) != 0) {
    wk_zip_close(z);
    return rc;
  }
  int i = wk_zip_find(z, name);
  if (i < 0 || wk_zip_entry(z, (size_t)i)->is_dir) {
    wk_zip_close(z);
    return wk_err(err, WK_ENOTFOUND, "%s has no file '%.200s'", src, name);
  }
  if (wk_zip_entry(z, (size_t)i)->size > max) { /* the zip reader holds it to that size */
    rc = too_big(src, name, (unsigned long long)wk_zip_entry(z, (size_t)i)->size, max, err);
    wk_zip_close(z);
    return rc;
  }
  const void *p;
  size_t n;
  void *to_free;
  rc = wk_zip_read(z, (size_t)i, &p, &n, &to_free, err);
  if (rc == 0 && to_free == NULL) {
    if ((to_free = malloc(n + 1)) == NULL) {
      rc = wk_err(err, WK_ENOMEM, "out of memory");
    } else {
      memcpy(to_free, p, n);
      ((char *)to_free)[n] = '\0';
    }
  }
  wk_zip_close(z);
  if (rc) return rc;
  *data = to_free; /* wk_zip_read NUL-terminates inflated data */
  *len = n;
  return 0;
}

static int read_tgz_file(const char *src, const char *name, size_t max, char **data, size_t *len,
                         wk_err_t *err) {
  int strip;
  uint64_t total;
  /* the same checks as unpacking: one copy of each name */
  int rc = scan_tgz(src, &strip, (uint64_t)WK_MAX_ARCHIVE_UNPACKED, &total, err);
  if (rc) return rc;
  wk_tar_reader_t *r;
  if ((rc = wk_tar_reader_open(src, &r, err)) != 0) return rc;
  const wk_tar_entry_t *e;
  char rel[PATH_BUF], want[PATH_BUF];
  if (normalize(name, 0, want, sizeof want) != 0) want[0] = '\0';
  while ((rc = wk_tar_next(r, &e, err)) == 1) {
    if (e->is_dir || wk_archive_check_name(e->name, strlen(e->name), NULL) != 0) continue;
    bool match = normalize(e->name, 0, rel, sizeof rel) == 0 && strcmp(rel, want) == 0;
    if (!match) match = normalize(e->name, 1, rel, sizeof rel) == 0 && strcmp(rel, want) == 0;
    if (!match) continue;
    if (e->size > max) {
      rc = too_big(src, name, (unsigned long long)e->size, max, err);
      break;
    }
    char *buf = malloc((size_t)e->size + 1);
    if (buf == NULL) {
      rc = wk_err(err, WK_ENOMEM, "out of memory");
      break;
    }
    size_t off = 0, got;
    while ((rc = wk_tar_read(r, buf + off, (size_t)e->size - off, &got, err)) == 0 && got > 0)
      off += got;
    if (rc) {
      free(buf);
      break;
    }
    buf[off] = '\0';
    *data = buf;
    *len = off;
    wk_tar_reader_close(r);
    return 0;
  }
  wk_tar_reader_close(r);
  if (rc < 0) return rc;
  return wk_err(err, WK_ENOTFOUND, "%s has no file '%.200s'", src, name);
}

int wk_archive_read_file(const char *archive_or_dir, const char *name, size_t max, char **data,
                         size_t *len, wk_err_t *err) {
  int k = kind_or_err(archive_or_dir, err);
  if (k < 0) return k;
  if (k == WK_ARCHIVE_ZIP) return read_zip_file(archive_or_dir, name, max, data, len, err);
  if (k == WK_ARCHIVE_TGZ) return read_tgz_file(archive_or_dir, name, max, data, len, err);
  int rc = wk_archive_check_name(name, strlen(name), err);
  if (rc) return rc;
  char path[PATH_BUF];
  if (wk_fs_join(path, sizeof path, archive_or_dir, name) != 0)
    return wk_err(err, WK_ETOOBIG, "path too long: %s/%s", archive_or_dir, name);
  if (!wk_fs_exists(path))
    return wk_err(err, WK_ENOTFOUND, "%s has no file '%.200s'", archive_or_dir, name);
  size_t n;
  rc = wk_fs_read_file(path, max, data, &n, err);
  if (rc == 0) *len = n;
  return rc;
}

/* ---------------------------------------------------------------- listing */

typedef struct ditem_s {
  char *name;
  uint64_t size;
} ditem_t;

typedef struct dirlist_s {
  ditem_t *items;
  size_t n, cap;
} dirlist_t;

static int dirlist_add(dirlist_t *l, const char *rel, uint64_t size) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 32;
    ditem_t *p = realloc(l->items, cap * sizeof *p);
    if (p == NULL) return WK_ENOMEM;
    l->items = p;
    l->cap = cap;
  }
  if ((l->items[l->n].name = strdup(rel)) == NULL) return WK_ENOMEM;
  l->items[l->n++].size = size;
  return 0;
}

static int walk(const char *root, const char *rel, int depth, dirlist_t *l, wk_err_t *err) {
  char path[PATH_BUF];
  if (rel[0] ? wk_fs_join(path, sizeof path, root, rel) != 0
             : (size_t)snprintf(path, sizeof path, "%s", root) >= sizeof path)
    return wk_err(err, WK_ETOOBIG, "path too long under %s", root);
  if (depth > DIR_DEPTH_MAX)
    return wk_err(err, WK_ETOOBIG, "%s: directories nested deeper than %d", path, DIR_DEPTH_MAX);
  DIR *d = opendir(path);
  if (d == NULL) return wk_err(err, WK_EIO, "cannot list %s: %s", path, strerror(errno));
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    char sub[PATH_BUF], full[PATH_BUF];
    if ((rel[0] ? wk_fs_join(sub, sizeof sub, rel, de->d_name)
                : ((size_t)snprintf(sub, sizeof sub, "%s", de->d_name) >= sizeof sub)) ||
        wk_fs_join(full, sizeof full, root, sub) != 0) {
      rc = wk_err(err, WK_ETOOBIG, "path too long under %s", root);
      break;
    }
    struct stat st;
    if (stat(full, &st) != 0) continue;
    if (S_ISDIR(st.st_mode))
      rc = walk(root, sub, depth + 1, l, err);
    else if (S_ISREG(st.st_mode) && dirlist_add(l, sub, (uint64_t)st.st_size) != 0)
      rc = wk_err(err, WK_ENOMEM, "out of memory");
  }
  closedir(d);
  return rc;
}

static int cmp_item(const void *a, const void *b) {
  return strcmp(((const ditem_t *)a)->name, ((const ditem_t *)b)->name);
}

static int list_dir(const char *path, wk_archive_list_fn fn, void *ctx, wk_err_t *err) {
  dirlist_t l = {NULL, 0, 0};
  int rc = walk(path, "", 0, &l, err);
  if (rc == 0 && l.n > 1) qsort(l.items, l.n, sizeof *l.items, cmp_item);
  for (size_t i = 0; i < l.n && rc == 0; i++) {
    wk_archive_item_t it = {l.items[i].name, l.items[i].size, l.items[i].size, "file", false};
    rc = fn(ctx, &it);
  }
  for (size_t i = 0; i < l.n; i++)
    free(l.items[i].name);
  free(l.items);
  return rc;
}

int wk_archive_list(const char *path, wk_archive_list_fn fn, void *ctx, wk_err_t *err) {
  int k = kind_or_err(path, err);
  if (k < 0) return k;
  if (k == WK_ARCHIVE_DIR) return list_dir(path, fn, ctx, err);
  if (k == WK_ARCHIVE_ZIP) {
    wk_zip_t *z;
    int rc = wk_zip_open(path, &z, err);
    if (rc) return rc;
    for (size_t i = 0; i < wk_zip_count(z) && rc == 0; i++) {
      const wk_zip_entry_t *e = wk_zip_entry(z, i);
      char method[32];
      if (e->method == WK_ZIP_STORED)
        snprintf(method, sizeof method, "stored");
      else if (e->method == WK_ZIP_DEFLATED)
        snprintf(method, sizeof method, "deflate");
      else
        snprintf(method, sizeof method, "method %u", e->method);
      wk_archive_item_t it = {e->name, e->size, e->comp_size, method, e->is_dir};
      rc = fn(ctx, &it);
    }
    wk_zip_close(z);
    return rc;
  }
  wk_tar_reader_t *r;
  int rc = wk_tar_reader_open(path, &r, err);
  if (rc) return rc;
  const wk_tar_entry_t *e;
  while ((rc = wk_tar_next(r, &e, err)) == 1) {
    wk_archive_item_t it = {e->name, e->size, e->size, "tgz", e->is_dir};
    if ((rc = fn(ctx, &it)) != 0) break;
  }
  wk_tar_reader_close(r);
  return rc;
}
