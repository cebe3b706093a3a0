/* Model archives as a whole: tells a .mar/.zip, a .tar.gz and a plain directory apart by
 * content, unpacks safely (nothing lands outside the destination, no links, size limits),
 * reads one file out of any of them, and lists their content. */
#ifndef WK_ARCHIVE_ARCHIVE_H
#define WK_ARCHIVE_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

enum { WK_ARCHIVE_ZIP = 1, WK_ARCHIVE_TGZ = 2, WK_ARCHIVE_DIR = 3 };

/* What path is, by content (zip or gzip magic) or stat (directory): WK_ARCHIVE_ZIP, _TGZ,
 * _DIR, or a negative WK_E* code (WK_ENOTFOUND, WK_EFORMAT for anything else). */
int wk_archive_kind(const char *path);

/* Checks that an entry name stays inside the directory it is unpacked into: refuses NUL
 * bytes (len is the stored length), absolute paths, '\' and '..' components. The message
 * names the entry ("archive entry '../evil.py' leaves the model directory"). */
int wk_archive_check_name(const char *name, size_t len, wk_err_t *err);

/* Unpacks src into dest_dir (created 0755 if missing; files 0644, subdirectories 0755).
 * Every entry is checked before anything is written; one bad entry fails the archive.
 * A tgz whose entries all sit under one top-level directory (torch-model-archiver's tgz
 * layout) is unpacked without that directory. For a directory src nothing is done and
 * WK_OK is returned: the caller uses it in place. On failure dest_dir may hold part of
 * the archive; the caller removes it. */
int wk_archive_unpack(const char *src, const char *dest_dir, wk_err_t *err);
/* The same, refusing (WK_ETOOBIG, before writing anything for a zip; after reading at most
 * max bytes for a tgz, before writing) an archive whose files add up to more than max
 * bytes (at most WK_MAX_ARCHIVE_UNPACKED); *unpacked (may be NULL) gets the bytes written. */
int wk_archive_unpack_max(const char *src, const char *dest_dir, uint64_t max, uint64_t *unpacked,
                          wk_err_t *err);

/* Unpacks the .zip, .tar, .tar.gz or .tgz file src into the existing directory dest_dir,
 * keeping every entry where its name says (no common top directory is dropped) and
 * overwriting files of the same name. Checked as wk_archive_unpack does, and besides:
 * src must be a regular file (not a link), and nothing is written through a symbolic
 * link that already exists in dest_dir (WK_EUNSAFE names the entry and the link). */
int wk_archive_unpack_into(const char *src, const char *dest_dir, wk_err_t *err);
/* With a limit, as wk_archive_unpack_max. */
int wk_archive_unpack_into_max(const char *src, const char *dest_dir, uint64_t max,
                               uint64_t *unpacked, wk_err_t *err);

/* Reads entry name (e.g. "MAR-INF/MANIFEST.json") of a zip, tgz or directory into a
 * malloc'd NUL-terminated buffer (the caller frees it) without unpacking the rest. In a
 * tgz, "<top>/name" matches too. WK_ENOTFOUND when absent; WK_ETOOBIG, before anything is
 * read, when the entry says it holds more than max bytes (and while reading, when it
 * holds more than it said). */
int wk_archive_read_file(const char *archive_or_dir, const char *name, size_t max, char **data,
                         size_t *len, wk_err_t *err);

/* One listed entry; valid during the callback only. */
typedef struct wk_archive_item_s {
  const char *name;
  uint64_t size;      /* uncompressed */
  uint64_t comp_size; /* compressed size in a zip; equals size for tgz and directories */
  const char *method; /* "stored", "deflate", "method N" (zip), "tgz", "file" (directory) */
  bool is_dir;
} wk_archive_item_t;

/* Calls fn for every entry, in archive order (directories: sorted by path, files only).
 * A non-zero return from fn stops the listing and is returned. */
typedef int (*wk_archive_list_fn)(void *ctx, const wk_archive_item_t *item);
int wk_archive_list(const char *path, wk_archive_list_fn fn, void *ctx, wk_err_t *err);

#endif
