/* wick's zip reader and writer (zip64 included; stored and deflated entries only).
 * The reader maps the file and validates every central entry against the file size and
 * core/limits.h before anything is read; it never creates files (see archive.h). */
#ifndef WK_ARCHIVE_ZIP_H
#define WK_ARCHIVE_ZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

enum { WK_ZIP_STORED = 0, WK_ZIP_DEFLATED = 8 };

/* One central directory entry, validated by wk_zip_open. Owned by the wk_zip_t. */
typedef struct wk_zip_entry_s {
  char *name;         /* NUL-terminated copy of the stored name */
  size_t name_len;    /* stored length; strlen(name) != name_len when it holds a NUL */
  uint64_t size;      /* uncompressed size */
  uint64_t comp_size; /* compressed size */
  uint64_t data_off;  /* offset of the entry's data in the file (after the local header) */
  uint32_t crc32;
  uint16_t method;    /* WK_ZIP_STORED, WK_ZIP_DEFLATED, or another (unreadable) value */
  uint16_t flags;     /* general purpose bit flags */
  uint32_t unix_mode; /* st_mode from the external attributes, 0 unless made on unix */
  bool is_dir;        /* name ends with '/' or the DOS directory bit is set */
  bool is_symlink;    /* unix mode says S_IFLNK */
} wk_zip_entry_t;

typedef struct wk_zip_s wk_zip_t;

/* Maps path read-only and validates its central directory (EOCD, zip64 records and extra
 * fields, local headers, entry count, name length, sizes, deflate ratio, overlaps). On
 * success *out is a reader the caller frees with wk_zip_close. A reader may be used by
 * several threads at once: nothing in it changes after open. */
int wk_zip_open(const char *path, wk_zip_t **out, wk_err_t *err);

/* As wk_zip_open over a caller-owned buffer, which must outlive the reader. */
int wk_zip_open_mem(const void *data, size_t len, wk_zip_t **out, wk_err_t *err);

/* Unmaps and frees z (NULL is fine). Pointers from wk_zip_read/wk_zip_map die with it. */
void wk_zip_close(wk_zip_t *z);

size_t wk_zip_count(const wk_zip_t *z);
/* Entry i (i < count), or NULL when i is out of range. */
const wk_zip_entry_t *wk_zip_entry(const wk_zip_t *z, size_t i);
/* Index of the first entry with exactly this name, or -1. */
int wk_zip_find(const wk_zip_t *z, const char *name);

/* Reads entry i and checks its CRC. Stored entries: *data points into the mapping and
 * *to_free is NULL. Deflated entries: *data is a malloc'd buffer of exactly the declared
 * size, also returned in *to_free for the caller to free(). Streams that inflate to more
 * or fewer bytes than declared are refused. Other methods and encryption give
 * WK_EUNSUPPORTED. Outputs are unchanged on failure. */
int wk_zip_read(wk_zip_t *z, size_t i, const void **data, size_t *len, void **to_free,
                wk_err_t *err);

/* Writes entry i's uncompressed bytes to fd (stored or inflated in chunks, so large entries
 * need little memory) and checks size and CRC. On failure fd may hold part of the data. */
int wk_zip_extract_fd(wk_zip_t *z, size_t i, int fd, wk_err_t *err);

/* The whole mapping (or caller buffer) and its length. */
const void *wk_zip_map(const wk_zip_t *z, size_t *len);

/* File offset of a stored entry's data (so its bytes can be mapped directly), or a
 * negative WK_E* code for a deflated entry or a bad index. The CRC is not checked. */
int64_t wk_zip_data_offset(const wk_zip_t *z, size_t i);

/* ---- writer ---- */

typedef struct wk_zip_writer_s wk_zip_writer_t;

/* Creates (truncates) path. Stored entries' data start 64-byte aligned (padding goes into
 * a local extra field, as PyTorch's writer does); unix mode 0644 (dirs 0755), DOS time of
 * the moment of open. The caller ends with wk_zip_writer_close or wk_zip_writer_discard. */
int wk_zip_writer_open(const char *path, wk_zip_writer_t **out, wk_err_t *err);

/* Writes zip64 extra fields and end records even when nothing needs them (for tests and
 * for readers that want to see zip64). Call before the first add. */
void wk_zip_writer_force_zip64(wk_zip_writer_t *w);

/* Adds name with len bytes of data, method WK_ZIP_STORED or WK_ZIP_DEFLATED. A failed add
 * leaves the writer failed: close then returns the error and removes the file. */
int wk_zip_writer_add(wk_zip_writer_t *w, const char *name, const void *data, size_t len,
                      int method, wk_err_t *err);

/* Adds the content of the regular file src_path, streamed (any size). */
int wk_zip_writer_add_file(wk_zip_writer_t *w, const char *name, const char *src_path, int method,
                           wk_err_t *err);

/* Adds a directory entry; a '/' is appended to name when missing. */
int wk_zip_writer_add_dir(wk_zip_writer_t *w, const char *name, wk_err_t *err);

/* Writes the central directory (zip64 records when a size, an offset or the entry count
 * needs them), closes the file and frees w. On any failure the file is removed. */
int wk_zip_writer_close(wk_zip_writer_t *w, wk_err_t *err);

/* Closes and removes the partial file, frees w (NULL is fine). */
void wk_zip_writer_discard(wk_zip_writer_t *w);

#endif
