/* Zip reader (mmap, zip64, limits from core/limits.h, CRC-checked reads) and writer
 * (stored entries 64-byte aligned for direct tensor mapping, zip64 when needed).
 * Only methods 0 (stored) and 8 (deflate); no encryption, no multi-disk archives. */
#include "archive/zip.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "core/buf.h"
#include "core/limits.h"
#include "core/text.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define LOCAL_SIZE 30
#define CENTRAL_SIZE 46
#define EOCD_SIZE 22
#define EOCD64_SIZE 56
#define LOC64_SIZE 20
#define U32_MAX_ 0xFFFFFFFFu
#define U16_MAX_ 0xFFFFu
#define ALIGN 64
#define CHUNK (256u * 1024u)
#define ZCHUNK_MAX (1u << 30) /* zlib counts in uInt */

typedef struct zent_s {
  wk_zip_entry_t pub;
  uint64_t lho; /* local header offset */
} zent_t;

struct wk_zip_s {
  const uint8_t *base;
  size_t len;
  bool mapped;
  size_t count;
  zent_t *ents;
};

static uint16_t rd16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t rd64(const uint8_t *p) {
  return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

/* A printable, bounded copy of an entry name for error messages. */
static const char *shown(const char *name, size_t len, char out[160]) {
  return wk_text_shown(name, len, out, 160);
}

static void free_entries(zent_t *e, size_t n) {
  if (e == NULL) return;
  for (size_t i = 0; i < n; i++)
    free(e[i].pub.name);
  free(e);
}

/* Finds the end of central directory record: the last signature from the end whose
 * comment fits in the file. */
static int find_eocd(const uint8_t *b, size_t len, size_t *pos, wk_err_t *err) {
  if (len < EOCD_SIZE)
    return wk_err(err, WK_EFORMAT, "not a zip file: %zu bytes is too short for one", len);
  size_t min = len > EOCD_SIZE + 65535 ? len - EOCD_SIZE - 65535 : 0;
  for (size_t i = len - EOCD_SIZE + 1; i-- > min;) {
    if (rd32(b + i) == SIG_EOCD && i + EOCD_SIZE + rd16(b + i + 20) <= len) {
      *pos = i;
      return 0;
    }
  }
  return wk_err(err, WK_EFORMAT, "not a zip file: no end of central directory record was found");
}

typedef struct cdinfo_s {
  uint64_t count, cd_size, cd_off, limit; /* limit: where the central directory must end */
} cdinfo_t;

static int read_end_records(const uint8_t *b, size_t len, cdinfo_t *ci, wk_err_t *err) {
  size_t pos = 0;
  int rc = find_eocd(b, len, &pos, err);
  if (rc) return rc;
  const uint8_t *e = b + pos;
  uint16_t disk = rd16(e + 4), cd_disk = rd16(e + 6);
  uint64_t n_disk = rd16(e + 8);
  ci->count = rd16(e + 10);
  ci->cd_size = rd32(e + 12);
  ci->cd_off = rd32(e + 16);
  ci->limit = pos;
  if (pos >= LOC64_SIZE && rd32(e - LOC64_SIZE) == SIG_LOC64) {
    const uint8_t *loc = e - LOC64_SIZE;
    uint64_t off64 = rd64(loc + 8);
    if (rd32(loc + 4) != 0 || rd32(loc + 16) > 1)
      return wk_err(err, WK_EUNSUPPORTED, "multi-disk zip archives are not supported");
    if (off64 > pos - LOC64_SIZE || pos - LOC64_SIZE - off64 < EOCD64_SIZE)
      return wk_err(err, WK_EFORMAT, "zip64 end record offset %llu is outside the file",
                    (unsigned long long)off64);
    const uint8_t *r = b + off64;
    if (rd32(r) != SIG_EOCD64)
      return wk_err(err, WK_EFORMAT, "zip64 end record not found where the locator points");
    if (rd64(r + 4) < EOCD64_SIZE - 12 || rd64(r + 4) > pos - LOC64_SIZE - off64 - 12)
      return wk_err(err, WK_EFORMAT, "zip64 end record has a bad size");
    disk = (uint16_t)(rd32(r + 16) != 0);
    cd_disk = (uint16_t)(rd32(r + 20) != 0);
    n_disk = rd64(r + 24);
    ci->count = rd64(r + 32);
    ci->cd_size = rd64(r + 40);
    ci->cd_off = rd64(r + 48);
    ci->limit = off64;
  }
  if (disk != 0 || cd_disk != 0 || n_disk != ci->count)
    return wk_err(err, WK_EUNSUPPORTED, "multi-disk zip archives are not supported");
  if (ci->count > WK_MAX_ZIP_ENTRIES)
    return wk_err(err, WK_ETOOBIG, "zip has %llu entries; the limit is %d",
                  (unsigned long long)ci->count, WK_MAX_ZIP_ENTRIES);
  if (ci->cd_off > ci->limit || ci->cd_size > ci->limit - ci->cd_off)
    return wk_err(err, WK_EFORMAT,
                  "zip central directory (offset %llu, %llu bytes) lies outside the file",
                  (unsigned long long)ci->cd_off, (unsigned long long)ci->cd_size);
  if (ci->count * CENTRAL_SIZE > ci->cd_size)
    return wk_err(err, WK_EFORMAT, "zip central directory is too small for %llu entries",
                  (unsigned long long)ci->count);
  return 0;
}

/* Applies a zip64 extended information extra field to the fields marked 0xFFFFFFFF. */
static int apply_zip64_extra(const uint8_t *x, size_t xlen, uint64_t *usize, uint64_t *csize,
                             uint64_t *lho, const char *nm, wk_err_t *err) {
  bool need = *usize == U32_MAX_ || *csize == U32_MAX_ || *lho == U32_MAX_;
  size_t i = 0;
  while (i + 4 <= xlen) {
    uint16_t id = rd16(x + i), sz = rd16(x + i + 2);
    if (sz > xlen - i - 4)
      return wk_err(err, WK_EFORMAT, "zip entry '%s' has a malformed extra field", nm);
    if (id == 0x0001 && need) {
      const uint8_t *f = x + i + 4;
      size_t q = 0;
      uint64_t *fields[3] = {usize, csize, lho};
      for (int k = 0; k < 3; k++) {
        if (*fields[k] != U32_MAX_) continue;
        if (q + 8 > sz)
          return wk_err(err, WK_EFORMAT, "zip entry '%s' has a short zip64 extra field", nm);
        *fields[k] = rd64(f + q);
        q += 8;
      }
      return 0;
    }
    i += 4 + (size_t)sz;
  }
  if (need)
    return wk_err(err, WK_EFORMAT, "zip entry '%s' needs a zip64 extra field and has none", nm);
  return 0;
}

static int cmp_lho(const void *a, const void *b) {
  const zent_t *x = *(const zent_t *const *)a, *y = *(const zent_t *const *)b;
  return x->lho < y->lho ? -1 : x->lho > y->lho;
}

/* Entries may not share or overlap their local header + data ranges (overlap zip bombs). */
static int check_overlaps(zent_t *ents, size_t n, wk_err_t *err) {
  if (n < 2) return 0;
  zent_t **order = malloc(n * sizeof *order);
  if (order == NULL) return wk_err(err, WK_ENOMEM, "out of memory reading zip directory");
  for (size_t i = 0; i < n; i++)
    order[i] = &ents[i];
  qsort(order, n, sizeof *order, cmp_lho);
  int rc = 0;
  for (size_t i = 1; i < n; i++) {
    const zent_t *a = order[i - 1], *b = order[i];
    if (a->pub.data_off + a->pub.comp_size > b->lho) {
      char s1[160], s2[160];
      rc = wk_err(err, WK_EFORMAT, "zip entries '%s' and '%s' overlap",
                  shown(a->pub.name, a->pub.name_len, s1), shown(b->pub.name, b->pub.name_len, s2));
      break;
    }
  }
  free(order);
  return rc;
}

static int parse_entry(const uint8_t *b, const cdinfo_t *ci, const uint8_t *c, size_t avail,
                       size_t idx, zent_t *ze, uint64_t *total, wk_err_t *err) {
  if (avail < CENTRAL_SIZE || rd32(c) != SIG_CENTRAL)
    return wk_err(err, WK_EFORMAT, "zip central directory entry %zu is malformed", idx);
  uint16_t made_by = rd16(c + 4), flags = rd16(c + 8), method = rd16(c + 10);
  uint32_t crc = rd32(c + 16), ext = rd32(c + 38);
  uint64_t csize = rd32(c + 20), usize = rd32(c + 24), lho = rd32(c + 42);
  size_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
  if (CENTRAL_SIZE + nlen + xlen + clen > avail)
    return wk_err(err, WK_EFORMAT, "zip central directory entry %zu runs past its end", idx);
  if (nlen == 0) return wk_err(err, WK_EFORMAT, "zip entry %zu has an empty name", idx);
  if (nlen > WK_MAX_ZIP_NAME)
    return wk_err(err, WK_ETOOBIG, "zip entry %zu has a %zu-byte name; the limit is %d", idx, nlen,
                  WK_MAX_ZIP_NAME);
  const char *rawname = (const char *)c + CENTRAL_SIZE;
  char nm[160];
  shown(rawname, nlen, nm);
  int rc = apply_zip64_extra(c + CENTRAL_SIZE + nlen, xlen, &usize, &csize, &lho, nm, err);
  if (rc) return rc;

  if (usize > (uint64_t)WK_MAX_ENTRY_SIZE)
    return wk_err(err, WK_ETOOBIG, "zip entry '%s' is %llu bytes uncompressed; the limit is %lld",
                  nm, (unsigned long long)usize, (long long)WK_MAX_ENTRY_SIZE);
  *total += usize;
  if (*total > (uint64_t)WK_MAX_ARCHIVE_UNPACKED)
    return wk_err(err, WK_ETOOBIG,
                  "zip entries add up to more than %lld bytes uncompressed (the limit)",
                  (long long)WK_MAX_ARCHIVE_UNPACKED);
  if (method == WK_ZIP_STORED && !(flags & 1) && csize != usize)
    return wk_err(err, WK_EFORMAT, "stored zip entry '%s' has compressed size %llu != size %llu",
                  nm, (unsigned long long)csize, (unsigned long long)usize);

  /* Local header: before the central directory, same name. */
  if (lho > ci->cd_off || ci->cd_off - lho < LOCAL_SIZE)
    return wk_err(err, WK_EFORMAT, "zip entry '%s' points past the end of its data area", nm);
  const uint8_t *l = b + lho;
  if (rd32(l) != SIG_LOCAL)
    return wk_err(err, WK_EFORMAT, "zip entry '%s' has no local header at offset %llu", nm,
                  (unsigned long long)lho);
  size_t lnlen = rd16(l + 26), lxlen = rd16(l + 28);
  if (lnlen != nlen)
    return wk_err(err, WK_EFORMAT,
                  "zip entry '%s': local header name length %zu differs from the central "
                  "directory's %zu",
                  nm, lnlen, nlen);
  uint64_t data_off = lho + LOCAL_SIZE + lnlen + lxlen;
  if (data_off > ci->cd_off || csize > ci->cd_off - data_off)
    return wk_err(err, WK_EFORMAT, "zip entry '%s' points past the end of its data area", nm);
  if (method == WK_ZIP_DEFLATED && usize > csize * WK_MAX_DEFLATE_RATIO)
    return wk_err(err, WK_ETOOBIG,
                  "zip entry '%s' claims %llu bytes from %llu compressed (ratio above %d): "
                  "refused as a zip bomb",
                  nm, (unsigned long long)usize, (unsigned long long)csize, WK_MAX_DEFLATE_RATIO);
  if (memcmp(l + LOCAL_SIZE, rawname, nlen) != 0)
    return wk_err(err, WK_EFORMAT,
                  "zip entry '%s': local header name differs from the central directory", nm);

  char *name = malloc(nlen + 1);
  if (name == NULL) return wk_err(err, WK_ENOMEM, "out of memory reading zip directory");
  memcpy(name, rawname, nlen);
  name[nlen] = '\0';
  wk_zip_entry_t *e = &ze->pub;
  e->name = name;
  e->name_len = nlen;
  e->size = usize;
  e->comp_size = csize;
  e->data_off = data_off;
  e->crc32 = crc;
  e->method = method;
  e->flags = flags;
  e->unix_mode = (made_by >> 8) == 3 ? (ext >> 16) : 0;
  e->is_dir = name[nlen - 1] == '/' || (ext & 0x10) != 0 || (e->unix_mode & S_IFMT) == S_IFDIR;
  e->is_symlink = (e->unix_mode & S_IFMT) == S_IFLNK;
  ze->lho = lho;
  return 0;
}

static int open_over(const uint8_t *b, size_t len, bool mapped, wk_zip_t **out, wk_err_t *err) {
  cdinfo_t ci;
  int rc = read_end_records(b, len, &ci, err);
  if (rc) return rc;
  size_t n = (size_t)ci.count;
  zent_t *ents = calloc(n ? n : 1, sizeof *ents);
  if (ents == NULL) return wk_err(err, WK_ENOMEM, "out of memory reading zip directory");
  uint64_t total = 0;
  size_t off = 0;
  const uint8_t *cd = b + ci.cd_off;
  for (size_t i = 0; i < n; i++) {
    rc = parse_entry(b, &ci, cd + off, (size_t)ci.cd_size - off, i, &ents[i], &total, err);
    if (rc) {
      free_entries(ents, i);
      return rc;
    }
    off += CENTRAL_SIZE + rd16(cd + off + 28) + rd16(cd + off + 30) + rd16(cd + off + 32);
  }
  rc = check_overlaps(ents, n, err);
  if (rc) {
    free_entries(ents, n);
    return rc;
  }
  wk_zip_t *z = calloc(1, sizeof *z);
  if (z == NULL) {
    free_entries(ents, n);
    return wk_err(err, WK_ENOMEM, "out of memory reading zip directory");
  }
  z->base = b;
  z->len = len;
  z->mapped = mapped;
  z->count = n;
  z->ents = ents;
  *out = z;
  return 0;
}

int wk_zip_open_mem(const void *data, size_t len, wk_zip_t **out, wk_err_t *err) {
  return open_over(data, len, false, out, err);
}

int wk_zip_open(const char *path, wk_zip_t **out, wk_err_t *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return wk_err(err, errno == ENOENT ? WK_ENOTFOUND : WK_EIO, "cannot open %s: %s", path,
                  strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return wk_err(err, WK_EFORMAT, "%s is not a regular file", path);
  }
  size_t len = (size_t)st.st_size;
  if (len < EOCD_SIZE) {
    close(fd);
    return wk_err(err, WK_EFORMAT, "%s is not a zip file (%zu bytes)", path, len);
  }
  void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  int saved = errno;
  close(fd);
  if (m == MAP_FAILED) return wk_err(err, WK_EIO, "cannot map %s: %s", path, strerror(saved));
  int rc = open_over(m, len, true, out, err);
  if (rc) {
    munmap(m, len);
    wk_err_prefix(err, "%s", path);
  }
  return rc;
}

void wk_zip_close(wk_zip_t *z) {
  if (z == NULL) return;
  free_entries(z->ents, z->count);
  if (z->mapped) munmap((void *)z->base, z->len);
  free(z);
}

size_t wk_zip_count(const wk_zip_t *z) {
  return z->count;
}

const wk_zip_entry_t *wk_zip_entry(const wk_zip_t *z, size_t i) {
  return i < z->count ? &z->ents[i].pub : NULL;
}

int wk_zip_find(const wk_zip_t *z, const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; i < z->count; i++)
    if (z->ents[i].pub.name_len == len && memcmp(z->ents[i].pub.name, name, len) == 0)
      return (int)i;
  return -1;
}

const void *wk_zip_map(const wk_zip_t *z, size_t *len) {
  if (len) *len = z->len;
  return z->base;
}

int64_t wk_zip_data_offset(const wk_zip_t *z, size_t i) {
  if (i >= z->count) return WK_ENOTFOUND;
  const wk_zip_entry_t *e = &z->ents[i].pub;
  if (e->method != WK_ZIP_STORED || (e->flags & 1)) return WK_EUNSUPPORTED;
  return (int64_t)e->data_off;
}

static int check_readable(const wk_zip_entry_t *e, wk_err_t *err) {
  char nm[160];
  if (e->flags & 1)
    return wk_err(err, WK_EUNSUPPORTED, "zip entry '%s' is encrypted; wick cannot read it",
                  shown(e->name, e->name_len, nm));
  if (e->method != WK_ZIP_STORED && e->method != WK_ZIP_DEFLATED)
    return wk_err(err, WK_EUNSUPPORTED,
                  "zip entry '%s' uses compression method %u; wick reads stored (0) and "
                  "deflate (8) only",
                  shown(e->name, e->name_len, nm), e->method);
  return 0;
}

static uint32_t crc_of(uint32_t crc, const uint8_t *p, uint64_t n) {
  while (n > 0) {
    uInt k = n > ZCHUNK_MAX ? ZCHUNK_MAX : (uInt)n;
    crc = (uint32_t)crc32(crc, p, k);
    p += k;
    n -= k;
  }
  return crc;
}

static int write_all(int fd, const uint8_t *p, size_t n, wk_err_t *err) {
  while (n > 0) {
    ssize_t w = write(fd, p, n > ZCHUNK_MAX ? ZCHUNK_MAX : n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return wk_err(err, WK_EIO, "write failed: %s", strerror(errno));
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Inflates entry e into mem (exactly e->size bytes) or, when mem is NULL, to fd. */
static int inflate_entry(const wk_zip_t *z, const wk_zip_entry_t *e, uint8_t *mem, int fd,
                         wk_err_t *err) {
  char nm[160];
  shown(e->name, e->name_len, nm);
  uint8_t *scratch = NULL;
  if (mem == NULL && (scratch = malloc(CHUNK)) == NULL)
    return wk_err(err, WK_ENOMEM, "out of memory inflating '%s'", nm);
  z_stream s;
  memset(&s, 0, sizeof s);
  if (inflateInit2(&s, -MAX_WBITS) != Z_OK) {
    free(scratch);
    return wk_err(err, WK_ENOMEM, "cannot start zlib inflate for '%s'", nm);
  }
  const uint8_t *in = z->base + e->data_off;
  uint64_t in_left = e->comp_size, produced = 0;
  uint32_t crc = 0;
  int rc = 0;
  for (;;) {
    if (s.avail_in == 0 && in_left > 0) {
      uInt k = in_left > ZCHUNK_MAX ? ZCHUNK_MAX : (uInt)in_left;
      s.next_in = (Bytef *)(uintptr_t)in;
      s.avail_in = k;
      in += k;
      in_left -= k;
    }
    uint64_t want = e->size - produced;
    uint8_t probe, *outp;
    uInt room;
    if (want == 0) {
      outp = &probe; /* must see the end of the stream and nothing more */
      room = 1;
    } else if (mem != NULL) {
      outp = mem + produced;
      room = want > ZCHUNK_MAX ? ZCHUNK_MAX : (uInt)want;
    } else {
      outp = scratch;
      room = want > CHUNK ? CHUNK : (uInt)want;
    }
    s.next_out = outp;
    s.avail_out = room;
    int zr = inflate(&s, Z_NO_FLUSH);
    size_t got = room - s.avail_out;
    if (want == 0 && got > 0) {
      rc = wk_err(err, WK_ETOOBIG, "zip entry '%s' inflates to more than its declared %llu bytes",
                  nm, (unsigned long long)e->size);
      break;
    }
    if (got > 0) {
      crc = crc_of(crc, outp, got);
      if (mem == NULL && (rc = write_all(fd, outp, got, err)) != 0) break;
      produced += got;
    }
    if (zr == Z_STREAM_END) break;
    if (zr == Z_BUF_ERROR && s.avail_in == 0 && in_left == 0) {
      rc = wk_err(err, WK_EFORMAT, "zip entry '%s': deflate data is truncated", nm);
      break;
    }
    if (zr != Z_OK) {
      rc = wk_err(err, WK_EFORMAT, "zip entry '%s': corrupt deflate data (%s)", nm,
                  s.msg ? s.msg : "zlib error");
      break;
    }
  }
  inflateEnd(&s);
  free(scratch);
  if (rc) return rc;
  if (produced != e->size)
    return wk_err(err, WK_EFORMAT, "zip entry '%s' inflates to %llu bytes, not the declared %llu",
                  nm, (unsigned long long)produced, (unsigned long long)e->size);
  if (crc != e->crc32)
    return wk_err(err, WK_ECRC, "zip entry '%s' is corrupt: CRC-32 %08x, expected %08x", nm, crc,
                  e->crc32);
  return 0;
}

int wk_zip_read(wk_zip_t *z, size_t i, const void **data, size_t *len, void **to_free,
                wk_err_t *err) {
  if (i >= z->count) return wk_err(err, WK_ENOTFOUND, "zip has no entry %zu", i);
  const wk_zip_entry_t *e = &z->ents[i].pub;
  int rc = check_readable(e, err);
  if (rc) return rc;
  if (e->size > SIZE_MAX - 1)
    return wk_err(err, WK_ETOOBIG, "zip entry is too large for this machine");
  if (e->method == WK_ZIP_STORED) {
    const uint8_t *p = z->base + e->data_off;
    uint32_t crc = crc_of(0, p, e->size);
    if (crc != e->crc32) {
      char nm[160];
      return wk_err(err, WK_ECRC, "zip entry '%s' is corrupt: CRC-32 %08x, expected %08x",
                    shown(e->name, e->name_len, nm), crc, e->crc32);
    }
    *data = p;
    *len = (size_t)e->size;
    *to_free = NULL;
    return 0;
  }
  uint8_t *buf = malloc((size_t)e->size + 1);
  if (buf == NULL)
    return wk_err(err, WK_ENOMEM, "out of memory for a %llu-byte zip entry",
                  (unsigned long long)e->size);
  rc = inflate_entry(z, e, buf, -1, err);
  if (rc) {
    free(buf);
    return rc;
  }
  buf[e->size] = '\0';
  *data = buf;
  *len = (size_t)e->size;
  *to_free = buf;
  return 0;
}

int wk_zip_extract_fd(wk_zip_t *z, size_t i, int fd, wk_err_t *err) {
  if (i >= z->count) return wk_err(err, WK_ENOTFOUND, "zip has no entry %zu", i);
  const wk_zip_entry_t *e = &z->ents[i].pub;
  int rc = check_readable(e, err);
  if (rc) return rc;
  if (e->method == WK_ZIP_DEFLATED) return inflate_entry(z, e, NULL, fd, err);
  const uint8_t *p = z->base + e->data_off;
  if (crc_of(0, p, e->size) != e->crc32) {
    char nm[160];
    return wk_err(err, WK_ECRC, "zip entry '%s' is corrupt: CRC-32 mismatch",
                  shown(e->name, e->name_len, nm));
  }
  return write_all(fd, p, (size_t)e->size, err);
}

/* ---------------------------------------------------------------- writer */

typedef struct went_s {
  char *name;
  uint16_t nlen, method, flags;
  uint32_t crc, ext;
  uint64_t usize, csize, lho;
  bool local64;
} went_t;

struct wk_zip_writer_s {
  FILE *f;
  char *path;
  uint64_t off;
  went_t *ents;
  size_t n, cap;
  bool force64;
  int failed;
  wk_err_t ferr;
  uint16_t dtime, ddate;
};

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v) {
  put16(p, (uint16_t)v);
  put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}

static int wfail(wk_zip_writer_t *w, wk_err_t *err, int code, const char *what) {
  if (!w->failed) {
    w->failed = code;
    wk_err(&w->ferr, code, "%s: %s", w->path, what);
  }
  if (err) *err = w->ferr;
  return w->failed;
}

static int wwrite(wk_zip_writer_t *w, const void *p, size_t n, wk_err_t *err) {
  if (n && fwrite(p, 1, n, w->f) != n) {
    char msg[200];
    snprintf(msg, sizeof msg, "write failed: %s", strerror(errno));
    return wfail(w, err, WK_EIO, msg);
  }
  w->off += n;
  return 0;
}

int wk_zip_writer_open(const char *path, wk_zip_writer_t **out, wk_err_t *err) {
  wk_zip_writer_t *w = calloc(1, sizeof *w);
  if (w == NULL || (w->path = strdup(path)) == NULL) {
    free(w);
    return wk_err(err, WK_ENOMEM, "out of memory");
  }
  w->f = fopen(path, "wb");
  if (w->f == NULL) {
    int e = errno;
    free(w->path);
    free(w);
    return wk_err(err, WK_EIO, "cannot create %s: %s", path, strerror(e));
  }
  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  if (tm.tm_year < 80) tm.tm_year = 80;
  w->dtime = (uint16_t)((tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2));
  w->ddate = (uint16_t)(((tm.tm_year - 80) << 9) | ((tm.tm_mon + 1) << 5) | tm.tm_mday);
  *out = w;
  return 0;
}

void wk_zip_writer_force_zip64(wk_zip_writer_t *w) {
  w->force64 = true;
}

/* Builds the local header of e into b; for stored entries pads (extra field "FB", as
 * PyTorch does) so that the data start 64-byte aligned. */
static int local_header(const wk_zip_writer_t *w, const went_t *e, wk_buf_t *b) {
  size_t x64 = e->local64 ? 20 : 0;
  size_t pad_hdr = 0, pad = 0;
  if (e->method == WK_ZIP_STORED) {
    uint64_t start = e->lho + LOCAL_SIZE + e->nlen + x64 + 4;
    pad_hdr = 4;
    pad = (size_t)((ALIGN - start % ALIGN) % ALIGN);
  }
  uint8_t h[LOCAL_SIZE];
  put32(h, SIG_LOCAL);
  put16(h + 4, e->local64 ? 45 : 20);
  put16(h + 6, e->flags);
  put16(h + 8, e->method);
  put16(h + 10, w->dtime);
  put16(h + 12, w->ddate);
  put32(h + 14, e->crc);
  put32(h + 18, e->local64 ? U32_MAX_ : (uint32_t)e->csize);
  put32(h + 22, e->local64 ? U32_MAX_ : (uint32_t)e->usize);
  put16(h + 26, e->nlen);
  put16(h + 28, (uint16_t)(x64 + pad_hdr + pad));
  b->len = 0;
  int rc = wk_buf_append(b, h, sizeof h);
  rc = rc ? rc : wk_buf_append(b, e->name, e->nlen);
  if (e->local64) {
    uint8_t x[20];
    put16(x, 1);
    put16(x + 2, 16);
    put64(x + 4, e->usize);
    put64(x + 12, e->csize);
    rc = rc ? rc : wk_buf_append(b, x, sizeof x);
  }
  if (pad_hdr) {
    uint8_t x[4 + ALIGN];
    memset(x, 'Z', sizeof x);
    x[0] = 'F';
    x[1] = 'B';
    put16(x + 2, (uint16_t)pad);
    rc = rc ? rc : wk_buf_append(b, x, 4 + pad);
  }
  return rc;
}

typedef struct src_s {
  const uint8_t *mem; /* memory source, or NULL for fd */
  int fd;
  uint64_t left;
  uint8_t *scratch;
} src_t;

/* Next chunk of the source: *n == 0 at the end; negative on read error. */
static int src_next(src_t *s, const uint8_t **p, size_t *n) {
  size_t want = s->left > CHUNK ? CHUNK : (size_t)s->left;
  if (s->mem) {
    *p = s->mem;
    s->mem += want;
    *n = want;
    s->left -= want;
    return 0;
  }
  if (want == 0) want = 1; /* probe: the file must not have grown */
  for (;;) {
    ssize_t r = read(s->fd, s->scratch, want);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return WK_EIO;
    *p = s->scratch;
    *n = (size_t)r;
    if ((uint64_t)r > s->left) return WK_EFORMAT;
    s->left -= (uint64_t)r;
    return 0;
  }
}

static int name_ok(wk_zip_writer_t *w, const char *name, wk_err_t *err) {
  size_t n = strlen(name);
  if (n == 0) return wfail(w, err, WK_EINVAL, "zip entry names cannot be empty");
  if (n > WK_MAX_ZIP_NAME) return wfail(w, err, WK_ETOOBIG, "zip entry name is too long");
  if (w->n >= WK_MAX_ZIP_ENTRIES) return wfail(w, err, WK_ETOOBIG, "too many zip entries");
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 16;
    went_t *p = realloc(w->ents, cap * sizeof *p);
    if (p == NULL) return wfail(w, err, WK_ENOMEM, "out of memory");
    w->ents = p;
    w->cap = cap;
  }
  return 0;
}

static int add_entry(wk_zip_writer_t *w, const char *name, bool dir, int method, src_t *src,
                     uint64_t usize, wk_err_t *err) {
  if (w->failed) return wfail(w, err, w->failed, "");
  if (method != WK_ZIP_STORED && method != WK_ZIP_DEFLATED)
    return wfail(w, err, WK_EINVAL, "zip method must be stored (0) or deflate (8)");
  int rc = name_ok(w, name, err);
  if (rc) return rc;
  went_t e;
  memset(&e, 0, sizeof e);
  e.name = strdup(name);
  if (e.name == NULL) return wfail(w, err, WK_ENOMEM, "out of memory");
  e.nlen = (uint16_t)strlen(name);
  e.method = (uint16_t)method;
  for (size_t i = 0; i < e.nlen; i++)
    if ((unsigned char)name[i] >= 0x80) e.flags |= 0x0800; /* UTF-8 name */
  e.ext = dir ? ((uint32_t)(S_IFDIR | 0755) << 16) | 0x10 : (uint32_t)(S_IFREG | 0644) << 16;
  e.usize = usize;
  e.lho = w->off;
  e.local64 = w->force64 || usize >= 0xF0000000u;

  wk_buf_t hdr = WK_BUF_INIT;
  z_stream zs;
  bool zinit = false;
  uint8_t *zout = NULL;
  if (local_header(w, &e, &hdr) != 0) {
    rc = wfail(w, err, WK_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = wwrite(w, hdr.data, hdr.len, err)) != 0) goto done;
  uint64_t data_start = w->off;
  if (method == WK_ZIP_DEFLATED && !dir) {
    memset(&zs, 0, sizeof zs);
    zout = malloc(CHUNK);
    if (zout == NULL ||
        deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      rc = wfail(w, err, WK_ENOMEM, "cannot start zlib deflate");
      goto done;
    }
    zinit = true;
  }
  if (!dir) {
    uint32_t crc = 0;
    for (;;) {
      const uint8_t *p;
      size_t n;
      int sr = src_next(src, &p, &n);
      if (sr == WK_EFORMAT) {
        rc = wfail(w, err, WK_EIO, "a source file grew while it was being added");
        goto done;
      }
      if (sr != 0) {
        rc = wfail(w, err, WK_EIO, "reading a source file failed");
        goto done;
      }
      if (n > 0) crc = (uint32_t)crc32(crc, p, (uInt)n);
      if (zinit) {
        zs.next_in = (Bytef *)(uintptr_t)p;
        zs.avail_in = (uInt)n;
        int flush = n == 0 ? Z_FINISH : Z_NO_FLUSH;
        int zr;
        do {
          zs.next_out = zout;
          zs.avail_out = CHUNK;
          zr = deflate(&zs, flush);
          if (zr == Z_STREAM_ERROR) {
            rc = wfail(w, err, WK_EINTERNAL, "zlib deflate failed");
            goto done;
          }
          if ((rc = wwrite(w, zout, CHUNK - zs.avail_out, err)) != 0) goto done;
        } while (zs.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
      } else if ((rc = wwrite(w, p, n, err)) != 0) {
        goto done;
      }
      if (n == 0) break;
    }
    if (src->left != 0) {
      rc = wfail(w, err, WK_EIO, "a source file shrank while it was being added");
      goto done;
    }
    e.crc = crc;
  }
  e.csize = w->off - data_start;
  if (!e.local64 && e.csize >= U32_MAX_) {
    rc = wfail(w, err, WK_ETOOBIG, "an entry grew past 4 GiB while compressing");
    goto done;
  }
  /* Rewrite the local header now that CRC and sizes are known. */
  if (local_header(w, &e, &hdr) != 0) {
    rc = wfail(w, err, WK_ENOMEM, "out of memory");
    goto done;
  }
  if (fseeko(w->f, (off_t)e.lho, SEEK_SET) != 0 || fwrite(hdr.data, 1, hdr.len, w->f) != hdr.len ||
      fseeko(w->f, (off_t)w->off, SEEK_SET) != 0) {
    rc = wfail(w, err, WK_EIO, "cannot rewrite a local header (output must be seekable)");
    goto done;
  }
  w->ents[w->n++] = e;
  e.name = NULL;
done:
  if (zinit) deflateEnd(&zs);
  free(zout);
  free(e.name);
  wk_buf_destroy(&hdr);
  return rc;
}

int wk_zip_writer_add(wk_zip_writer_t *w, const char *name, const void *data, size_t len,
                      int method, wk_err_t *err) {
  src_t s = {data ? data : (const uint8_t *)"", -1, len, NULL};
  return add_entry(w, name, false, method, &s, len, err);
}

int wk_zip_writer_add_file(wk_zip_writer_t *w, const char *name, const char *src_path, int method,
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
  src_t s = {NULL, fd, (uint64_t)st.st_size, malloc(CHUNK)};
  int rc = s.scratch ? add_entry(w, name, false, method, &s, (uint64_t)st.st_size, err)
                     : wfail(w, err, WK_ENOMEM, "out of memory");
  free(s.scratch);
  close(fd);
  return rc;
}

int wk_zip_writer_add_dir(wk_zip_writer_t *w, const char *name, wk_err_t *err) {
  size_t n = strlen(name);
  if (n == 0) return wfail(w, err, WK_EINVAL, "zip entry names cannot be empty");
  char *dn = malloc(n + 2);
  if (dn == NULL) return wfail(w, err, WK_ENOMEM, "out of memory");
  memcpy(dn, name, n + 1);
  if (n == 0 || name[n - 1] != '/') memcpy(dn + n, "/", 2);
  src_t s = {(const uint8_t *)"", -1, 0, NULL};
  int rc = add_entry(w, dn, true, WK_ZIP_STORED, &s, 0, err);
  free(dn);
  return rc;
}

static void writer_free(wk_zip_writer_t *w, bool remove_file) {
  if (w->f) fclose(w->f);
  if (remove_file) unlink(w->path);
  for (size_t i = 0; i < w->n; i++)
    free(w->ents[i].name);
  free(w->ents);
  free(w->path);
  free(w);
}

void wk_zip_writer_discard(wk_zip_writer_t *w) {
  if (w) writer_free(w, true);
}

static int central_entry(const wk_zip_writer_t *w, const went_t *e, wk_buf_t *b) {
  bool u64 = w->force64 || e->usize >= U32_MAX_, c64 = w->force64 || e->csize >= U32_MAX_,
       o64 = w->force64 || e->lho >= U32_MAX_;
  uint8_t x[4 + 24];
  size_t xn = 4;
  uint64_t vals[3] = {e->usize, e->csize, e->lho};
  bool use[3] = {u64, c64, o64};
  for (int k = 0; k < 3; k++) {
    if (!use[k]) continue;
    put64(x + xn, vals[k]);
    xn += 8;
  }
  bool any64 = xn > 4;
  put16(x, 1);
  put16(x + 2, (uint16_t)(xn - 4));
  uint8_t h[CENTRAL_SIZE];
  uint16_t ver = any64 || e->local64 ? 45 : 20;
  put32(h, SIG_CENTRAL);
  put16(h + 4, (uint16_t)((3 << 8) | ver)); /* made by unix */
  put16(h + 6, ver);
  put16(h + 8, e->flags);
  put16(h + 10, e->method);
  put16(h + 12, w->dtime);
  put16(h + 14, w->ddate);
  put32(h + 16, e->crc);
  put32(h + 20, c64 ? U32_MAX_ : (uint32_t)e->csize);
  put32(h + 24, u64 ? U32_MAX_ : (uint32_t)e->usize);
  put16(h + 28, e->nlen);
  put16(h + 30, any64 ? (uint16_t)xn : 0);
  put16(h + 32, 0);
  put16(h + 34, 0);
  put16(h + 36, 0);
  put32(h + 38, e->ext);
  put32(h + 42, o64 ? U32_MAX_ : (uint32_t)e->lho);
  int rc = wk_buf_append(b, h, sizeof h);
  rc = rc ? rc : wk_buf_append(b, e->name, e->nlen);
  if (any64) rc = rc ? rc : wk_buf_append(b, x, xn);
  return rc;
}

int wk_zip_writer_close(wk_zip_writer_t *w, wk_err_t *err) {
  int rc = w->failed;
  if (rc) {
    if (err) *err = w->ferr;
    writer_free(w, true);
    return rc;
  }
  uint64_t cd_off = w->off;
  wk_buf_t b = WK_BUF_INIT;
  for (size_t i = 0; i < w->n && rc == 0; i++) {
    b.len = 0;
    if (central_entry(w, &w->ents[i], &b) != 0)
      rc = wfail(w, err, WK_ENOMEM, "out of memory");
    else
      rc = wwrite(w, b.data, b.len, err);
  }
  wk_buf_destroy(&b);
  uint64_t cd_size = w->off - cd_off, n = w->n;
  bool z64 = w->force64 || n >= U16_MAX_ || cd_off >= U32_MAX_ || cd_size >= U32_MAX_;
  if (rc == 0 && z64) {
    uint8_t r[EOCD64_SIZE + LOC64_SIZE];
    uint64_t rec_off = w->off;
    put32(r, SIG_EOCD64);
    put64(r + 4, EOCD64_SIZE - 12);
    put16(r + 12, (3 << 8) | 45);
    put16(r + 14, 45);
    put32(r + 16, 0);
    put32(r + 20, 0);
    put64(r + 24, n);
    put64(r + 32, n);
    put64(r + 40, cd_size);
    put64(r + 48, cd_off);
    uint8_t *l = r + EOCD64_SIZE;
    put32(l, SIG_LOC64);
    put32(l + 4, 0);
    put64(l + 8, rec_off);
    put32(l + 16, 1);
    rc = wwrite(w, r, sizeof r, err);
  }
  if (rc == 0) {
    uint8_t e[EOCD_SIZE];
    put32(e, SIG_EOCD);
    put16(e + 4, 0);
    put16(e + 6, 0);
    uint16_t n16 = (w->force64 || n >= U16_MAX_) ? U16_MAX_ : (uint16_t)n;
    put16(e + 8, n16);
    put16(e + 10, n16);
    put32(e + 12, (w->force64 || cd_size >= U32_MAX_) ? U32_MAX_ : (uint32_t)cd_size);
    put32(e + 16, (w->force64 || cd_off >= U32_MAX_) ? U32_MAX_ : (uint32_t)cd_off);
    put16(e + 20, 0);
    rc = wwrite(w, e, sizeof e, err);
  }
  if (rc == 0) {
    int cr = fclose(w->f);
    w->f = NULL;
    if (cr != 0) rc = wfail(w, err, WK_EIO, "closing the file failed");
  }
  writer_free(w, rc != 0);
  return rc;
}
