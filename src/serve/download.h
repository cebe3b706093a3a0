/* Downloads one model archive over http or https (libcurl) into a file, with a size limit
 * and with every redirect checked by the caller. It decides nothing about which URLs are
 * allowed and knows nothing of archives. */
#ifndef WK_SERVE_DOWNLOAD_H
#define WK_SERVE_DOWNLOAD_H

#include "core/error.h"

/* Largest archive that POST /models?url=http... downloads. */
#define WK_MAX_DOWNLOAD_SIZE (16LL * 1024 * 1024 * 1024)
#define WK_MAX_DOWNLOAD_REDIRECTS 5
#define WK_DOWNLOAD_CONNECT_TIMEOUT_S 30
#define WK_DOWNLOAD_STALL_TIMEOUT_S 60 /* under 1 KB/s for this long: give up */
#define WK_DEFAULT_DOWNLOAD_TIMEOUT_S 600 /* the whole download (download_timeout) */

/* Returns 1 if the download may go to url (a redirect target), 0 if not. */
typedef int (*wk_download_allow_fn)(const char *url, void *ud);

/* Downloads url (http:// or https:// only) into dest, which must not exist yet. The body
 * goes to a hidden temporary file beside dest that is linked into place only when it is
 * complete, so dest never holds a partial archive. A redirect is followed only to http(s)
 * and only if allow(target, ud) says so (allow NULL: no redirect is followed). Bodies over
 * max_bytes fail with WK_ETOOBIG; one that takes longer than timeout_s in all (> 0) with
 * WK_ETIMEDOUT; an existing dest with WK_EEXIST; network and HTTP
 * errors with WK_EIO; refused redirects with WK_EUNSAFE. err says which. Blocks the
 * calling thread; any thread. */
int wk_download(const char *url, const char *dest, long long max_bytes, int timeout_s,
                wk_download_allow_fn allow, void *ud, wk_err_t *err);

#endif
