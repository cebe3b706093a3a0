/* Unit tests for archive/tar and the tgz side of archive/archive: round trips (short,
 * prefixed and pax names), unpacking with the top folder stripped, refused escapes,
 * links and devices, truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include <unistd.h>

#include "archive/archive.h"
#include "archive/tar.h"
#include "archive/zip.h"
#include "core/fs.h"

static char g_dir[1024];

static void tp(char *out, const char *name) {
  snprintf(out, 1300, "%s/%s", g_dir, name);
}

static int setup(void **state) {
  (void)state;
  snprintf(g_dir, sizeof g_dir, "%s/tar", WK_TEST_DATA_DIR);
  wk_fs_rmtree(g_dir);
  return wk_fs_mkdirs(g_dir, NULL);
}

static void test_roundtrip(void **state) {
  (void)state;
  char path[1300], src[1300], long1[300], long2[700];
  tp(path, "rt.tar.gz");
  tp(src, "src.bin");
  size_t big_n = 200000;
  unsigned char *big = malloc(big_n);
  for (size_t i = 0; i < big_n; i++)
    big[i] = (unsigned char)(i * 7 + i / 251);
  FILE *f = fopen(src, "wb");
  fwrite(big, 1, big_n, f);
  fclose(f);
  /* 150 chars: needs the ustar prefix; 602 chars: needs a pax header */
  snprintf(long1, sizeof long1, "m/%0120d/%025d.txt", 1, 2);
  memset(long2, 'q', 600);
  for (int i = 59; i < 590; i += 60)
    long2[i] = '/'; /* components stay under NAME_MAX */
  long2[600] = '\0';

  wk_tar_writer_t *w;
  wk_err_t err;
  assert_int_equal(wk_tar_writer_open(path, &w, &err), 0);
  assert_int_equal(wk_tar_writer_add_dir(w, "m", &err), 0);
  assert_int_equal(wk_tar_writer_add(w, "m/a.txt", "hello", 5, &err), 0);
  assert_int_equal(wk_tar_writer_add_file(w, "m/big.bin", src, &err), 0);
  assert_int_equal(wk_tar_writer_add(w, long1, "L1", 2, &err), 0);
  assert_int_equal(wk_tar_writer_add(w, "m/empty", "", 0, &err), 0);
  char n2[800];
  snprintf(n2, sizeof n2, "m/%s", long2);
  assert_int_equal(wk_tar_writer_add(w, n2, "L2", 2, &err), 0);
  assert_int_equal(wk_tar_writer_close(w, &err), 0);
  assert_int_equal(wk_archive_kind(path), WK_ARCHIVE_TGZ);

  wk_tar_reader_t *r;
  assert_int_equal(wk_tar_reader_open(path, &r, &err), 0);
  const wk_tar_entry_t *e;
  const char *want[] = {"m/", "m/a.txt", "m/big.bin", long1, "m/empty", n2};
  unsigned char *buf = malloc(big_n + 10);
  for (int k = 0; k < 6; k++) {
    assert_int_equal(wk_tar_next(r, &e, &err), 1);
    assert_string_equal(e->name, want[k]);
    assert_int_equal(e->is_dir, k == 0);
    if (k == 2 || k == 1) {
      size_t off = 0, got;
      while (wk_tar_read(r, buf + off, 4096, &got, &err) == 0 && got > 0)
        off += got;
      assert_int_equal(off, k == 2 ? big_n : 5);
      assert_memory_equal(buf, k == 2 ? big : (const unsigned char *)"hello", off);
    }
  }
  assert_int_equal(wk_tar_next(r, &e, &err), 0);
  wk_tar_reader_close(r);

  /* unpack strips the single top folder; read_file finds names with or without it */
  char dest[1300], p[2100];
  tp(dest, "rt_out");
  assert_int_equal(wk_archive_unpack(path, dest, &err), 0);
  char *data;
  size_t len;
  snprintf(p, sizeof p, "%s/big.bin", dest);
  assert_int_equal(wk_fs_read_file(p, big_n, &data, &len, NULL), 0);
  assert_int_equal(len, big_n);
  assert_memory_equal(data, big, big_n);
  free(data);
  snprintf(p, sizeof p, "%s/%s", dest, long2);
  assert_true(wk_fs_exists(p));
  assert_int_equal(wk_archive_read_file(path, "a.txt", 1 << 20, &data, &len, &err), 0);
  assert_string_equal(data, "hello");
  free(data);
  assert_int_equal(wk_archive_read_file(path, "m/a.txt", 1 << 20, &data, &len, &err), 0);
  free(data);
  assert_int_equal(wk_archive_read_file(path, "nope", 1 << 20, &data, &len, &err), WK_ENOTFOUND);
  free(buf);
  free(big);
}

/* Writes a one-entry tgz by hand: the writer refuses nothing but links are not made. */
static void raw_tgz(const char *path, const char *name, char type, const char *link) {
  char h[512];
  memset(h, 0, sizeof h);
  memcpy(h, name, strlen(name));
  memcpy(h + 100, "0000644", 7);
  memcpy(h + 108, "0000000", 7);
  memcpy(h + 116, "0000000", 7);
  memcpy(h + 124, "00000000000", 11);
  memcpy(h + 136, "00000000000", 11);
  h[156] = type;
  if (link) memcpy(h + 157, link, strlen(link));
  memcpy(h + 257, "ustar", 6);
  memcpy(h + 263, "00", 2);
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++)
    sum += (unsigned char)h[i];
  snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  gzFile gz = gzopen(path, "wb");
  char ok[1024];
  memset(ok, 0, sizeof ok);
  gzwrite(gz, h, sizeof h);
  gzwrite(gz, ok, sizeof ok);
  gzclose(gz);
}

static void expect_refused(const char *tgz, const char *what) {
  char dest[1300];
  tp(dest, "refused_out");
  wk_err_t err;
  assert_int_equal(wk_archive_unpack(tgz, dest, &err), WK_EUNSAFE);
  if (strstr(err.msg, what) == NULL) fail_msg("message '%s' lacks '%s'", err.msg, what);
  assert_false(wk_fs_exists(dest)); /* checked before anything is written */
}

static void test_escapes_refused(void **state) {
  (void)state;
  char path[1300], outside[1300];
  tp(path, "esc.tar.gz");
  wk_tar_writer_t *w;
  wk_err_t err;
  assert_int_equal(wk_tar_writer_open(path, &w, &err), 0);
  assert_int_equal(wk_tar_writer_add(w, "ok.txt", "x", 1, &err), 0);
  assert_int_equal(wk_tar_writer_add(w, "../evil.py", "x", 1, &err), 0);
  assert_int_equal(wk_tar_writer_close(w, &err), 0);
  expect_refused(path, "'../evil.py' leaves the model directory");
  tp(outside, "evil.py");
  assert_false(wk_fs_exists(outside));

  raw_tgz(path, "/etc/passwd-wick", '0', NULL);
  expect_refused(path, "'/etc/passwd-wick'");
  raw_tgz(path, "link", '2', "/etc/passwd");
  expect_refused(path, "'link' is a symbolic link");
  raw_tgz(path, "hard", '1', "x");
  expect_refused(path, "'hard' is a hard link");
  raw_tgz(path, "dev", '3', NULL);
  expect_refused(path, "'dev' is a device");
  raw_tgz(path, "a\\b", '0', NULL);
  expect_refused(path, "'\\'");
}

/* wk_archive_unpack_into (system.extraFiles): keeps the top folder, reads plain tar,
 * refuses links in the destination and sources that are not regular archives. */
static void test_unpack_into(void **state) {
  (void)state;
  char tgz[1300], tar[1300], dest[1300], path[1300], outside[1300];
  tp(tgz, "extra.tgz");
  tp(tar, "extra.tar");
  tp(dest, "extra_out");
  tp(outside, "extra_outside");
  wk_fs_rmtree(dest);
  wk_fs_rmtree(outside);
  assert_int_equal(wk_fs_mkdirs(dest, NULL), 0);
  wk_tar_writer_t *w;
  wk_err_t err;
  assert_int_equal(wk_tar_writer_open(tgz, &w, &err), 0);
  assert_int_equal(wk_tar_writer_add(w, "pkg/mod.py", "X = 1\n", 6, &err), 0);
  assert_int_equal(wk_tar_writer_close(w, &err), 0);
  assert_int_equal(wk_archive_unpack_into(tgz, dest, &err), 0);
  tp(path, "extra_out/pkg/mod.py");
  assert_true(wk_fs_exists(path)); /* the one top folder is kept */

  /* the same archive, not compressed */
  gzFile gz = gzopen(tgz, "rb");
  char buf[8192];
  int n = gzread(gz, buf, sizeof buf);
  gzclose(gz);
  assert_true(n > 512);
  FILE *f = fopen(tar, "wb");
  fwrite(buf, 1, (size_t)n, f);
  fclose(f);
  wk_fs_rmtree(dest);
  assert_int_equal(wk_fs_mkdirs(dest, NULL), 0);
  assert_int_equal(wk_archive_unpack_into(tar, dest, &err), 0);
  assert_true(wk_fs_exists(path));

  /* a link already in the destination is not written through */
  wk_fs_rmtree(dest);
  assert_int_equal(wk_fs_mkdirs(dest, NULL), 0);
  assert_int_equal(wk_fs_mkdirs(outside, NULL), 0);
  tp(path, "extra_out/pkg");
  assert_int_equal(symlink(outside, path), 0);
  assert_int_equal(wk_archive_unpack_into(tgz, dest, &err), WK_EUNSAFE);
  if (strstr(err.msg, "symbolic link 'pkg'") == NULL) fail_msg("message: %s", err.msg);
  tp(path, "extra_outside/mod.py");
  assert_false(wk_fs_exists(path));

  /* the source must be a regular archive file */
  tp(path, "extra_link.tgz");
  unlink(path);
  assert_int_equal(symlink(tgz, path), 0);
  assert_int_equal(wk_archive_unpack_into(path, dest, &err), WK_EUNSAFE);
  assert_non_null(strstr(err.msg, "symbolic link"));
  tp(path, "no_such.tgz");
  assert_int_equal(wk_archive_unpack_into(path, dest, &err), WK_ENOTFOUND);
  tp(path, "plain.txt");
  f = fopen(path, "wb");
  fputs("hello", f);
  fclose(f);
  assert_int_equal(wk_archive_unpack_into(path, dest, &err), WK_EFORMAT);
  assert_non_null(strstr(err.msg, "is not a .zip, .tar, .tar.gz or .tgz archive"));

  /* entries that escape are refused as in wk_archive_unpack */
  raw_tgz(tgz, "../evil.py", '0', NULL);
  assert_int_equal(wk_archive_unpack_into(tgz, dest, &err), WK_EUNSAFE);
  assert_non_null(strstr(err.msg, "leaves the model directory"));
}

static void test_damaged(void **state) {
  (void)state;
  char path[1300], dest[1300];
  tp(path, "dmg.tar.gz");
  tp(dest, "dmg_out");
  wk_tar_writer_t *w;
  wk_err_t err;
  assert_int_equal(wk_tar_writer_open(path, &w, &err), 0);
  char body[5000];
  memset(body, 'z', sizeof body);
  assert_int_equal(wk_tar_writer_add(w, "f.bin", body, sizeof body, &err), 0);
  assert_int_equal(wk_tar_writer_close(w, &err), 0);
  char *img;
  size_t len;
  assert_int_equal(wk_fs_read_file(path, 1 << 20, &img, &len, NULL), 0);
  FILE *f = fopen(path, "wb");
  fwrite(img, 1, len / 2, f);
  fclose(f);
  int rc = wk_archive_unpack(path, dest, &err);
  assert_int_equal(rc, WK_EFORMAT);
  free(img);

  /* not a tar inside the gzip */
  gzFile gz = gzopen(path, "wb");
  gzwrite(gz, body, sizeof body);
  gzclose(gz);
  assert_int_equal(wk_archive_unpack(path, dest, &err), WK_EFORMAT);
  assert_non_null(strstr(err.msg, "checksum"));
}

/* wk_archive_unpack_max / _into_max ([11] part 6): over the limit nothing is written; at or
 * under it, *unpacked counts the files' bytes. The same for a zip. */
static void test_unpack_limit(void **state) {
  (void)state;
  char tgz[1300], zip[1300], dest[1300], file[1400];
  tp(tgz, "lim.tar.gz");
  tp(zip, "lim.zip");
  char body[3000];
  memset(body, 'q', sizeof body);
  wk_err_t err;
  wk_tar_writer_t *w;
  assert_int_equal(wk_tar_writer_open(tgz, &w, &err), 0);
  assert_int_equal(wk_tar_writer_add(w, "a.bin", body, 1000, &err), 0);
  assert_int_equal(wk_tar_writer_add(w, "b.bin", body, 2000, &err), 0);
  assert_int_equal(wk_tar_writer_close(w, &err), 0);
  wk_zip_writer_t *z;
  assert_int_equal(wk_zip_writer_open(zip, &z, &err), 0);
  assert_int_equal(wk_zip_writer_add(z, "a.bin", body, 1000, WK_ZIP_DEFLATED, &err), 0);
  assert_int_equal(wk_zip_writer_add(z, "b.bin", body, 2000, WK_ZIP_DEFLATED, &err), 0);
  assert_int_equal(wk_zip_writer_close(z, &err), 0);
  const char *srcs[] = {tgz, zip};
  for (int k = 0; k < 2; k++) {
    uint64_t n = 7;
    tp(dest, k ? "lim_zip_out" : "lim_tgz_out");
    assert_int_equal(wk_archive_unpack_max(srcs[k], dest, 2999, &n, &err), WK_ETOOBIG);
    assert_non_null(strstr(err.msg, "more than the 2999 bytes allowed"));
    assert_int_equal(n, 0);
    snprintf(file, sizeof file, "%s/a.bin", dest);
    assert_false(wk_fs_exists(file)); /* refused before anything was written */
    assert_int_equal(wk_archive_unpack_max(srcs[k], dest, 3000, &n, &err), 0);
    assert_int_equal(n, 3000);
    assert_true(wk_fs_exists(file));
    assert_int_equal(wk_archive_unpack_into_max(srcs[k], dest, 100, &n, &err), WK_ETOOBIG);
    assert_int_equal(wk_archive_unpack_into_max(srcs[k], dest, 5000, &n, &err), 0);
    assert_int_equal(n, 3000);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_escapes_refused),
      cmocka_unit_test(test_unpack_into),
      cmocka_unit_test(test_damaged),
      cmocka_unit_test(test_unpack_limit),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
