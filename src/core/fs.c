/* File-system helpers used by the archive, config and serve modules. */
#include "core/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int wk_fs_read_file(const char *path, size_t limit, char **data, size_t *len, wk_err_t *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return wk_err(err, errno == ENOENT ? WK_ENOTFOUND : WK_EIO, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return wk_err(err, WK_EIO, "%s: not a regular file", path);
  }
  if ((unsigned long long)st.st_size > limit) {
    close(fd);
    return wk_err(err, WK_ETOOBIG, "%s: %lld bytes, the limit is %zu", path, (long long)st.st_size, limit);
  }
  char *buf = malloc((size_t)st.st_size + 1);
  if (buf == NULL) {
    close(fd);
    return wk_err(err, WK_ENOMEM, "%s: out of memory", path);
  }
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  buf[got] = '\0';
  *data = buf;
  if (len) *len = got;
  return 0;
}

int wk_fs_mkdirs(const char *path, wk_err_t *err) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
    return wk_err(err, WK_ETOOBIG, "path too long: %s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return wk_err(err, WK_EIO, "mkdir %s: %s", tmp, strerror(errno));
    *p = '/';
  }
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return wk_err(err, WK_EIO, "mkdir %s: %s", tmp, strerror(errno));
  return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path) == 0 ? 0 : 0; /* keep going */
}

int wk_fs_rmtree(const char *path) {
  return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : WK_EIO;
}

int wk_fs_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int wk_fs_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

int wk_fs_join(char *out, size_t outlen, const char *a, const char *b) {
  size_t la = strlen(a);
  int n = snprintf(out, outlen, "%s%s%s", a, (la && a[la - 1] == '/') ? "" : "/", b);
  return n < 0 || (size_t)n >= outlen ? WK_ETOOBIG : 0;
}

int wk_fs_clean_stale_tmp(void) {
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || *tmp == '\0') tmp = "/tmp";
  DIR *d = opendir(tmp);
  if (d == NULL) return 0;
  int removed = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    /* wick-<pid>-<what>-XXXXXX, made by wk_fs_mkdtemp */
    const char *p = e->d_name;
    if (strncmp(p, "wick-", 5) != 0) continue;
    char *end;
    long pid = strtol(p + 5, &end, 10);
    if (end == p + 5 || *end != '-' || pid <= 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
    char path[4096];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", tmp, p) >= (int)sizeof path) continue;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) continue;
    if (wk_fs_rmtree(path) == 0) removed++;
  }
  closedir(d);
  return removed;
}

int wk_fs_mkdtemp(const char *prefix, char *out, size_t outlen, wk_err_t *err) {
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || *tmp == '\0') tmp = "/tmp";
  int n = snprintf(out, outlen, "%s/wick-%d-%s-XXXXXX", tmp, (int)getpid(), prefix);
  if (n < 0 || (size_t)n >= outlen) return wk_err(err, WK_ETOOBIG, "temporary path too long");
  if (mkdtemp(out) == NULL) return wk_err(err, WK_EIO, "mkdtemp %s: %s", out, strerror(errno));
  return 0;
}
