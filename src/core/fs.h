/* Small file-system helpers: read a whole file with a size limit, make and remove trees. */
#ifndef WK_CORE_FS_H
#define WK_CORE_FS_H

#include <stddef.h>

#include "core/error.h"

/* Reads path into a malloc'd, NUL-terminated buffer (caller frees). Files larger than
 * limit fail with WK_ETOOBIG. */
int wk_fs_read_file(const char *path, size_t limit, char **data, size_t *len, wk_err_t *err);
/* mkdir -p with mode 0755. */
int wk_fs_mkdirs(const char *path, wk_err_t *err);
/* rm -rf that never follows symlinks. */
int wk_fs_rmtree(const char *path);
/* 1 if path is a directory, 0 otherwise. */
int wk_fs_is_dir(const char *path);
/* 1 if path exists. */
int wk_fs_exists(const char *path);
/* Joins a and b with one '/' into out. Fails with WK_ETOOBIG if it does not fit. */
int wk_fs_join(char *out, size_t outlen, const char *a, const char *b);
/* Creates a fresh private directory "<TMPDIR or /tmp>/wick-<pid>-<prefix>-XXXXXX". */
int wk_fs_mkdtemp(const char *prefix, char *out, size_t outlen, wk_err_t *err);
/* Removes the folders wk_fs_mkdtemp made for processes that are gone (a server killed
 * with SIGKILL cannot remove its unpacked models): wick-<pid>-* of this user in $TMPDIR
 * whose pid no longer exists. Returns how many. [11] part 11. */
int wk_fs_clean_stale_tmp(void);

#endif
