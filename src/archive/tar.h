/* ustar archives inside a gzip stream (.tar.gz / .tgz): a streaming writer and a
 * streaming reader. The reader yields regular files and directories only and refuses
 * links and devices; it does not create files (see archive.h for unpacking). */
#ifndef WK_ARCHIVE_TAR_H
#define WK_ARCHIVE_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* ---- writer ---- */

typedef struct wk_tar_writer_s wk_tar_writer_t;

/* Creates (truncates) the gzip file path. End with wk_tar_writer_close or _discard. */
int wk_tar_writer_open(const char *path, wk_tar_writer_t **out, wk_err_t *err);
/* Adds a regular file (mode 0644) with len bytes of data. Names longer than ustar allows
 * get a pax header. A failed add leaves the writer failed (close removes the file). */
int wk_tar_writer_add(wk_tar_writer_t *w, const char *name, const void *data, size_t len,
                      wk_err_t *err);
/* Adds the content of the regular file src_path, streamed. */
int wk_tar_writer_add_file(wk_tar_writer_t *w, const char *name, const char *src_path,
                           wk_err_t *err);
/* Adds a directory entry (mode 0755); a '/' is appended to name when missing. */
int wk_tar_writer_add_dir(wk_tar_writer_t *w, const char *name, wk_err_t *err);
/* Writes the end-of-archive blocks, closes and frees w; removes the file on failure. */
int wk_tar_writer_close(wk_tar_writer_t *w, wk_err_t *err);
/* Closes and removes the partial file, frees w (NULL is fine). */
void wk_tar_writer_discard(wk_tar_writer_t *w);

/* ---- reader ---- */

typedef struct wk_tar_entry_s {
  const char *name; /* NUL-terminated; pax "path" and GNU long names applied */
  uint64_t size;    /* data bytes (0 for directories) */
  bool is_dir;
} wk_tar_entry_t;

typedef struct wk_tar_reader_s wk_tar_reader_t;

/* Opens a gzip-compressed tar (a plain tar is read too). Free with wk_tar_reader_close. */
int wk_tar_reader_open(const char *path, wk_tar_reader_t **out, wk_err_t *err);

/* Advances to the next entry, skipping unread data of the current one. Returns 1 and
 * sets *e (valid until the next call), 0 at the end-of-archive marker, or a negative
 * WK_E* code: WK_EUNSAFE for links, devices and fifos (the message names the entry),
 * WK_ETOOBIG past the size limits, WK_EFORMAT for damaged or truncated archives. */
int wk_tar_next(wk_tar_reader_t *r, const wk_tar_entry_t **e, wk_err_t *err);

/* Reads up to n bytes of the current entry's data into buf; *got is 0 at its end. */
int wk_tar_read(wk_tar_reader_t *r, void *buf, size_t n, size_t *got, wk_err_t *err);

void wk_tar_reader_close(wk_tar_reader_t *r);

#endif
