/* Unit tests for archive/zip (reader and writer) and the zip side of archive/archive:
 * round trips, corruption, truncation, zip64, zip bombs, and unpack path escapes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "archive/archive.h"
#include "archive/zip.h"
#include "core/fs.h"

static char g_dir[1024];

static const char *tpath(const char *name) {
  static char p[4][1200];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
  return p[k];
}

static unsigned char *slurp(const char *path, size_t *len) {
  char *d;
  assert_int_equal(wk_fs_read_file(path, 1 << 30, &d, len, NULL), 0);
  return (unsigned char *)d;
}

static void spit(const char *path, const void *d, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(d, 1, len, f), len);
  fclose(f);
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (unsigned char)(seed >> 16);
  }
}

/* Offset of the central directory header of entry `name` in a zip image. */
static size_t central_of(const unsigned char *z, size_t len, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i + 46 + n <= len; i++)
    if (memcmp(z + i, "PK\1\2", 4) == 0 && z[i + 28] == (n & 0xff) && z[i + 29] == (n >> 8) &&
        memcmp(z + i + 46, name, n) == 0)
      return i;
  fail_msg("no central header for %s", name);
  return 0;
}

static size_t local_of(const unsigned char *z, size_t len, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i + 30 + n <= len; i++)
    if (memcmp(z + i, "PK\3\4", 4) == 0 && z[i + 26] == (n & 0xff) &&
        memcmp(z + i + 30, name, n) == 0)
      return i;
  fail_msg("no local header for %s", name);
  return 0;
}

static void put32le(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static void write_zip(const char *path, const char *const *names, int method, bool z64) {
  wk_zip_writer_t *w;
  wk_err_t err;
  assert_int_equal(wk_zip_writer_open(path, &w, &err), 0);
  if (z64) wk_zip_writer_force_zip64(w);
  for (int i = 0; names[i]; i++) {
    char body[64];
    snprintf(body, sizeof body, "content of %s\n", names[i]);
    assert_int_equal(wk_zip_writer_add(w, names[i], body, strlen(body), method, &err), 0);
  }
  assert_int_equal(wk_zip_writer_close(w, &err), 0);
}

static int setup(void **state) {
  (void)state;
  snprintf(g_dir, sizeof g_dir, "%s/zip", WK_TEST_DATA_DIR);
  wk_fs_rmtree(g_dir);
  return wk_fs_mkdirs(g_dir, NULL);
}

static void roundtrip(bool z64) {
  const char *path = tpath(z64 ? "rt64.zip" : "rt.zip");
  size_t big_n = 300000;
  unsigned char *big = malloc(big_n);
  fill(big, big_n, 7);
  char text[20000];
  for (size_t i = 0; i < sizeof text; i++)
    text[i] = "wick zip text "[i % 14];
  spit(tpath("src.bin"), big, big_n);

  wk_zip_writer_t *w;
  wk_err_t err;
  assert_int_equal(wk_zip_writer_open(path, &w, &err), 0);
  if (z64) wk_zip_writer_force_zip64(w);
  assert_int_equal(wk_zip_writer_add(w, "a.bin", big, 1000, WK_ZIP_STORED, &err), 0);
  assert_int_equal(wk_zip_writer_add(w, "b.txt", text, sizeof text, WK_ZIP_DEFLATED, &err), 0);
  assert_int_equal(wk_zip_writer_add_dir(w, "d", &err), 0);
  assert_int_equal(wk_zip_writer_add_file(w, "d/big.bin", tpath("src.bin"), WK_ZIP_STORED, &err),
                   0);
  assert_int_equal(wk_zip_writer_add_file(w, "d/bigz.bin", tpath("src.bin"), WK_ZIP_DEFLATED, &err),
                   0);
  assert_int_equal(wk_zip_writer_add(w, "empty", "", 0, WK_ZIP_DEFLATED, &err), 0);
  assert_int_equal(wk_zip_writer_add(w, "empty0", NULL, 0, WK_ZIP_STORED, &err), 0);
  assert_int_equal(wk_zip_writer_close(w, &err), 0);

  wk_zip_t *z;
  assert_int_equal(wk_zip_open(path, &z, &err), 0);
  assert_int_equal(wk_zip_count(z), 7);
  size_t maplen;
  const unsigned char *map = wk_zip_map(z, &maplen);

  int i = wk_zip_find(z, "a.bin");
  assert_int_equal(i, 0);
  const wk_zip_entry_t *e = wk_zip_entry(z, (size_t)i);
  assert_string_equal(e->name, "a.bin");
  assert_int_equal(e->size, 1000);
  assert_int_equal(e->method, WK_ZIP_STORED);
  assert_false(e->is_dir);
  assert_false(e->is_symlink);
  assert_int_equal(e->unix_mode & 0777, 0644);
  const void *data;
  size_t len;
  void *to_free = (void *)1;
  assert_int_equal(wk_zip_read(z, 0, &data, &len, &to_free, &err), 0);
  assert_null(to_free);
  assert_int_equal(len, 1000);
  assert_memory_equal(data, big, 1000);
  /* no copy: a pointer into the map, 64-byte aligned in the file */
  assert_true((const unsigned char *)data >= map &&
              (const unsigned char *)data + len <= map + maplen);
  assert_int_equal((const unsigned char *)data - map, wk_zip_data_offset(z, 0));
  assert_int_equal(wk_zip_data_offset(z, 0) % 64, 0);

  i = wk_zip_find(z, "b.txt");
  assert_int_equal(wk_zip_entry(z, (size_t)i)->method, WK_ZIP_DEFLATED);
  assert_true(wk_zip_entry(z, (size_t)i)->comp_size < sizeof text);
  assert_true(wk_zip_data_offset(z, (size_t)i) < 0);
  assert_int_equal(wk_zip_read(z, (size_t)i, &data, &len, &to_free, &err), 0);
  assert_non_null(to_free);
  assert_int_equal(len, sizeof text);
  assert_memory_equal(data, text, sizeof text);
  free(to_free);

  i = wk_zip_find(z, "d/");
  assert_true(i >= 0);
  assert_true(wk_zip_entry(z, (size_t)i)->is_dir);
  for (int k = 0; k < 2; k++) {
    i = wk_zip_find(z, k ? "d/bigz.bin" : "d/big.bin");
    assert_true(i >= 0);
    assert_int_equal(wk_zip_read(z, (size_t)i, &data, &len, &to_free, &err), 0);
    assert_int_equal(len, big_n);
    assert_memory_equal(data, big, big_n);
    if (k == 0) assert_int_equal(wk_zip_data_offset(z, (size_t)i) % 64, 0);
    free(to_free);
  }
  for (int k = 0; k < 2; k++) {
    i = wk_zip_find(z, k ? "empty0" : "empty");
    assert_int_equal(wk_zip_read(z, (size_t)i, &data, &len, &to_free, &err), 0);
    assert_int_equal(len, 0);
    free(to_free);
  }
  assert_int_equal(wk_zip_find(z, "nope"), -1);
  assert_null(wk_zip_entry(z, 99));
  assert_int_equal(wk_zip_read(z, 99, &data, &len, &to_free, &err), WK_ENOTFOUND);
  wk_zip_close(z);

  /* the same bytes through wk_zip_open_mem */
  size_t flen;
  unsigned char *img = slurp(path, &flen);
  assert_int_equal(wk_zip_open_mem(img, flen, &z, &err), 0);
  assert_int_equal(wk_zip_count(z), 7);
  wk_zip_close(z);
  if (z64) {
    assert_non_null(memmem(img, flen, "PK\6\6", 4)); /* zip64 end record */
    assert_non_null(memmem(img, flen, "PK\6\7", 4)); /* its locator */
  }
  free(img);
  free(big);
}

static void test_roundtrip(void **state) {
  (void)state;
  roundtrip(false);
}

static void test_roundtrip_zip64_forced(void **state) {
  (void)state;
  roundtrip(true);
}

static void test_many_entries_zip64(void **state) {
  (void)state;
  const char *path = tpath("many.zip");
  wk_zip_writer_t *w;
  wk_err_t err;
  assert_int_equal(wk_zip_writer_open(path, &w, &err), 0);
  char name[32];
  for (int i = 0; i < 65536; i++) {
    snprintf(name, sizeof name, "f%d", i);
    assert_int_equal(wk_zip_writer_add(w, name, name, strlen(name), WK_ZIP_STORED, &err), 0);
  }
  /* the limit: one more is refused, and the writer stays failed */
  assert_int_equal(wk_zip_writer_add(w, "x", "x", 1, WK_ZIP_STORED, &err), WK_ETOOBIG);
  assert_int_equal(wk_zip_writer_close(w, &err), WK_ETOOBIG);
  assert_false(wk_fs_exists(path));

  assert_int_equal(wk_zip_writer_open(path, &w, &err), 0);
  for (int i = 0; i < 65535; i++) {
    snprintf(name, sizeof name, "f%d", i);
    assert_int_equal(wk_zip_writer_add(w, name, name, strlen(name), WK_ZIP_STORED, &err), 0);
  }
  assert_int_equal(wk_zip_writer_close(w, &err), 0);
  wk_zip_t *z;
  assert_int_equal(wk_zip_open(path, &z, &err), 0);
  assert_int_equal(wk_zip_count(z), 65535);
  int i = wk_zip_find(z, "f65534");
  assert_int_equal(i, 65534);
  const void *data;
  size_t len;
  void *to_free;
  assert_int_equal(wk_zip_read(z, (size_t)i, &data, &len, &to_free, &err), 0);
  assert_memory_equal(data, "f65534", 6);
  wk_zip_close(z);
}

static void test_crc_corruption(void **state) {
  (void)state;
  const char *names[] = {"s.txt", NULL};
  for (int m = 0; m < 2; m++) {
    const char *path = tpath("crc.zip");
    write_zip(path, names, m ? WK_ZIP_DEFLATED : WK_ZIP_STORED, false);
    size_t len;
    unsigned char *img = slurp(path, &len);
    wk_zip_t *z;
    wk_err_t err;
    assert_int_equal(wk_zip_open_mem(img, len, &z, &err), 0);
    const wk_zip_entry_t *e = wk_zip_entry(z, 0);
    img[e->data_off + e->comp_size / 2] ^= 0x5a;
    const void *data = NULL;
    size_t n;
    void *to_free = NULL;
    int rc = wk_zip_read(z, 0, &data, &n, &to_free, &err);
    if (m == 0) {
      assert_int_equal(rc, WK_ECRC);
      assert_non_null(strstr(err.msg, "s.txt"));
    } else {
      assert_true(rc == WK_ECRC || rc == WK_EFORMAT || rc == WK_ETOOBIG);
    }
    assert_null(data);
    assert_null(to_free);
    wk_zip_close(z);
    free(img);
  }
}

static void test_truncated(void **state) {
  (void)state;
  const char *names[] = {"one.txt", "two.txt", NULL};
  const char *path = tpath("trunc.zip");
  write_zip(path, names, WK_ZIP_DEFLATED, false);
  size_t len;
  unsigned char *img = slurp(path, &len);
  wk_err_t err;
  wk_zip_t *z;
  for (size_t cut = 0; cut < len; cut++) {
    unsigned char *copy = malloc(cut ? cut : 1);
    memcpy(copy, img, cut);
    int rc = wk_zip_open_mem(copy, cut, &z, &err);
    assert_true(rc < 0); /* every proper prefix lacks a consistent directory */
    assert_true(err.msg[0] != '\0');
    free(copy);
  }
  spit(path, img, len / 2);
  assert_int_equal(wk_zip_open(path, &z, &err), WK_EFORMAT);
  assert_non_null(strstr(err.msg, path));
  spit(path, "", 0);
  assert_int_equal(wk_zip_open(path, &z, &err), WK_EFORMAT);
  assert_int_equal(wk_zip_open(tpath("missing.zip"), &z, &err), WK_ENOTFOUND);
  free(img);
}

static void test_entry_past_end(void **state) {
  (void)state;
  const char *names[] = {"x.bin", "y.bin", NULL};
  const char *path = tpath("past.zip");
  write_zip(path, names, WK_ZIP_STORED, false);
  size_t len;
  unsigned char *img = slurp(path, &len);
  wk_err_t err;
  wk_zip_t *z;

  unsigned char *c = malloc(len);
  memcpy(c, img, len);
  put32le(c + central_of(c, len, "y.bin") + 42, 0x7fffff00u); /* local header offset */
  assert_int_equal(wk_zip_open_mem(c, len, &z, &err), WK_EFORMAT);
  assert_non_null(strstr(err.msg, "y.bin"));

  memcpy(c, img, len);
  size_t ch = central_of(c, len, "x.bin");
  put32le(c + ch + 20, 0x10000000u); /* compressed and uncompressed sizes */
  put32le(c + ch + 24, 0x10000000u);
  assert_int_equal(wk_zip_open_mem(c, len, &z, &err), WK_EFORMAT);
  assert_non_null(strstr(err.msg, "x.bin"));

  /* two central entries for one local header: overlap */
  memcpy(c, img, len);
  size_t cy = central_of(c, len, "y.bin");
  memcpy(c + cy + 42, c + ch + 42, 4);
  assert_int_equal(wk_zip_open_mem(c, len, &z, &err), WK_EFORMAT);
  free(c);
  free(img);
}

/* A deflated entry whose declared size is smaller (or larger) than what it inflates to. */
static void test_zip_bomb(void **state) {
  (void)state;
  const char *path = tpath("bomb.zip");
  size_t n = 1 << 20;
  unsigned char *zeros = calloc(1, n);
  wk_zip_writer_t *w;
  wk_err_t err;
  assert_int_equal(wk_zip_writer_open(path, &w, &err), 0);
  assert_int_equal(wk_zip_writer_add(w, "zeros", zeros, n, WK_ZIP_DEFLATED, &err), 0);
  assert_int_equal(wk_zip_writer_close(w, &err), 0);
  size_t len;
  unsigned char *img = slurp(path, &len);
  size_t ch = central_of(img, len, "zeros"), lh = local_of(img, len, "zeros");
  wk_zip_t *z;
  const void *data = NULL;
  size_t dlen;
  void *to_free = NULL;

  /* claims 4096 bytes, inflates to 1 MiB: refused, never more than 4096 bytes written */
  put32le(img + ch + 24, 4096);
  put32le(img + lh + 22, 4096);
  assert_int_equal(wk_zip_open_mem(img, len, &z, &err), 0);
  assert_int_equal(wk_zip_read(z, 0, &data, &dlen, &to_free, &err), WK_ETOOBIG);
  assert_non_null(strstr(err.msg, "more than"));
  assert_null(data);
  wk_zip_close(z);

  /* claims a ratio far beyond what deflate can do: refused at open */
  uint32_t csize = img[ch + 20] | (img[ch + 21] << 8) | ((uint32_t)img[ch + 22] << 16);
  put32le(img + ch + 24, csize * 2000u);
  assert_int_equal(wk_zip_open_mem(img, len, &z, &err), WK_ETOOBIG);
  assert_non_null(strstr(err.msg, "zip bomb"));

  /* claims more than it inflates to */
  put32le(img + ch + 24, (uint32_t)n + 100);
  assert_int_equal(wk_zip_open_mem(img, len, &z, &err), 0);
  assert_int_equal(wk_zip_read(z, 0, &data, &dlen, &to_free, &err), WK_EFORMAT);
  wk_zip_close(z);
  free(img);
  free(zeros);
}

static void test_unsupported_method(void **state) {
  (void)state;
  const char *names[] = {"m.txt", NULL};
  const char *path = tpath("method.zip");
  write_zip(path, names, WK_ZIP_DEFLATED, false);
  size_t len;
  unsigned char *img = slurp(path, &len);
  img[central_of(img, len, "m.txt") + 10] = 12; /* bzip2 */
  wk_zip_t *z;
  wk_err_t err;
  assert_int_equal(wk_zip_open_mem(img, len, &z, &err), 0);
  const void *data;
  size_t dlen;
  void *to_free;
  assert_int_equal(wk_zip_read(z, 0, &data, &dlen, &to_free, &err), WK_EUNSUPPORTED);
  wk_zip_close(z);
  spit(path, img, len);
  assert_int_equal(wk_archive_unpack(path, tpath("method_out"), &err), WK_EUNSUPPORTED);
  free(img);
}

static bool dir_is_empty_or_missing(const char *path) {
  char probe[1200];
  snprintf(probe, sizeof probe, "%s/ok.txt", path);
  return !wk_fs_exists(probe);
}

static void expect_unpack_refused(const char *zip, const char *dest, const char *what) {
  wk_err_t err;
  assert_int_equal(wk_archive_unpack(zip, dest, &err), WK_EUNSAFE);
  if (strstr(err.msg, what) == NULL) fail_msg("message '%s' lacks '%s'", err.msg, what);
  assert_true(dir_is_empty_or_missing(dest)); /* nothing written before the check */
}

static void test_unpack_escapes(void **state) {
  (void)state;
  const char *n1[] = {"ok.txt", "../escaped.txt", NULL};
  write_zip(tpath("esc1.zip"), n1, WK_ZIP_DEFLATED, false);
  expect_unpack_refused(tpath("esc1.zip"), tpath("out1"),
                        "'../escaped.txt' leaves the model directory");
  assert_false(wk_fs_exists(tpath("escaped.txt")));

  const char *n2[] = {"ok.txt", "/tmp/wick-abs-escape.txt", NULL};
  write_zip(tpath("esc2.zip"), n2, WK_ZIP_STORED, false);
  expect_unpack_refused(tpath("esc2.zip"), tpath("out2"), "'/tmp/wick-abs-escape.txt'");

  const char *n3[] = {"ok.txt", "a/./../../b.txt", NULL};
  write_zip(tpath("esc3.zip"), n3, WK_ZIP_STORED, false);
  expect_unpack_refused(tpath("esc3.zip"), tpath("out3"), "leaves the model directory");

  const char *n4[] = {"ok.txt", "..\\win.txt", NULL};
  write_zip(tpath("esc4.zip"), n4, WK_ZIP_STORED, false);
  expect_unpack_refused(tpath("esc4.zip"), tpath("out4"), "'\\'");

  /* a symlink entry (unix mode S_IFLNK in the external attributes) */
  const char *n5[] = {"ok.txt", "link", NULL};
  write_zip(tpath("esc5.zip"), n5, WK_ZIP_STORED, false);
  size_t len;
  unsigned char *img = slurp(tpath("esc5.zip"), &len);
  put32le(img + central_of(img, len, "link") + 38, (uint32_t)(S_IFLNK | 0777) << 16);
  spit(tpath("esc5.zip"), img, len);
  free(img);
  expect_unpack_refused(tpath("esc5.zip"), tpath("out5"), "'link' is a symbolic link");

  /* a NUL byte inside a name */
  const char *n6[] = {"ok.txt", "evil.py.txt", NULL};
  write_zip(tpath("esc6.zip"), n6, WK_ZIP_STORED, false);
  img = slurp(tpath("esc6.zip"), &len);
  img[central_of(img, len, "evil.py.txt") + 46 + 7] = 0;
  img[local_of(img, len, "evil.py.txt") + 30 + 7] = 0;
  spit(tpath("esc6.zip"), img, len);
  free(img);
  expect_unpack_refused(tpath("esc6.zip"), tpath("out6"), "NUL");
}

static void test_unpack_and_read_file(void **state) {
  (void)state;
  const char *names[] = {"MAR-INF/MANIFEST.json", "model.pt", "sub/dir/x.txt", "./dot.txt", NULL};
  char path[1200], dest[1200];
  snprintf(path, sizeof path, "%s", tpath("good.mar"));
  snprintf(dest, sizeof dest, "%s", tpath("good_out"));
  write_zip(path, names, WK_ZIP_DEFLATED, false);
  wk_err_t err;
  assert_int_equal(wk_archive_kind(path), WK_ARCHIVE_ZIP);
  assert_int_equal(wk_archive_kind(g_dir), WK_ARCHIVE_DIR);
  assert_int_equal(wk_archive_kind(tpath("nothing-here")), WK_ENOTFOUND);
  spit(tpath("plain.txt"), "hello", 5);
  assert_int_equal(wk_archive_kind(tpath("plain.txt")), WK_EFORMAT);
  assert_int_equal(wk_archive_unpack(tpath("plain.txt"), tpath("o"), &err), WK_EFORMAT);

  assert_int_equal(wk_archive_unpack(path, dest, &err), 0);
  char *data;
  size_t len;
  char p[1300];
  snprintf(p, sizeof p, "%s/sub/dir/x.txt", dest);
  assert_int_equal(wk_fs_read_file(p, 1000, &data, &len, NULL), 0);
  assert_string_equal(data, "content of sub/dir/x.txt\n");
  free(data);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 0600, 0600);
  assert_int_equal(st.st_mode & 0111, 0);
  snprintf(p, sizeof p, "%s/dot.txt", dest);
  assert_true(wk_fs_exists(p));

  /* one entry without unpacking, from the zip and from the unpacked directory */
  assert_int_equal(wk_archive_read_file(path, "MAR-INF/MANIFEST.json", 1 << 20, &data, &len, &err), 0);
  assert_string_equal(data, "content of MAR-INF/MANIFEST.json\n");
  assert_int_equal(len, strlen(data));
  free(data);
  assert_int_equal(wk_archive_read_file(dest, "model.pt", 1 << 20, &data, &len, &err), 0);
  assert_string_equal(data, "content of model.pt\n");
  free(data);
  assert_int_equal(wk_archive_read_file(path, "absent", 1 << 20, &data, &len, &err), WK_ENOTFOUND);
  /* an entry larger than the caller reads is refused from its size, before it is read */
  assert_int_equal(wk_archive_read_file(path, "MAR-INF/MANIFEST.json", 10, &data, &len, &err),
                   WK_ETOOBIG);
  assert_non_null(strstr(err.msg, "at most 10 are read"));
  assert_int_equal(wk_archive_read_file(dest, "model.pt", 10, &data, &len, &err), WK_ETOOBIG);
  assert_int_equal(wk_archive_read_file(dest, "../good.mar", 1 << 20, &data, &len, &err), WK_EUNSAFE);
  /* a directory is used in place */
  assert_int_equal(wk_archive_unpack(dest, tpath("unused"), &err), 0);
  assert_false(wk_fs_exists(tpath("unused")));
}

static void test_writer_errors(void **state) {
  (void)state;
  wk_zip_writer_t *w;
  wk_err_t err;
  assert_int_equal(wk_zip_writer_open(tpath("no/such/dir/x.zip"), &w, &err), WK_EIO);
  assert_int_equal(wk_zip_writer_open(tpath("werr.zip"), &w, &err), 0);
  assert_int_equal(wk_zip_writer_add_file(w, "x", tpath("missing-src"), WK_ZIP_STORED, &err),
                   WK_EIO);
  assert_non_null(strstr(err.msg, "missing-src"));
  assert_int_equal(wk_zip_writer_close(w, &err), WK_EIO);
  assert_false(wk_fs_exists(tpath("werr.zip")));
  assert_int_equal(wk_zip_writer_open(tpath("werr.zip"), &w, &err), 0);
  assert_int_equal(wk_zip_writer_add(w, "", "x", 1, WK_ZIP_STORED, &err), WK_EINVAL);
  wk_zip_writer_discard(w);
  assert_false(wk_fs_exists(tpath("werr.zip")));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),          cmocka_unit_test(test_roundtrip_zip64_forced),
      cmocka_unit_test(test_many_entries_zip64), cmocka_unit_test(test_crc_corruption),
      cmocka_unit_test(test_truncated),          cmocka_unit_test(test_entry_past_end),
      cmocka_unit_test(test_zip_bomb),           cmocka_unit_test(test_unsupported_method),
      cmocka_unit_test(test_unpack_escapes),     cmocka_unit_test(test_unpack_and_read_file),
      cmocka_unit_test(test_writer_errors),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
