/* Model archive downloads with libcurl: http and https only, redirects followed by hand so
 * that each target is checked, a byte limit enforced while the body streams in, and the
 * file published with link() so that it appears whole or not at all. */
#include "serve/download.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void) {
  curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int is_http_url(const char *url) {
  return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

typedef struct sink_s {
  int fd;
  long long written;
  long long max_bytes;
  int too_big;
  int write_failed;
  int64_t deadline_us; /* the whole download, redirects included; 0: none */
  int timeout_s;
} sink_t;

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud) {
  sink_t *s = ud;
  size_t n = size * nmemb;
  if (s->written + (long long)n > s->max_bytes) {
    s->too_big = 1;
    return 0; /* aborts the transfer */
  }
  for (size_t off = 0; off < n;) {
    ssize_t w = write(s->fd, data + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      s->write_failed = errno ? errno : EIO;
      return 0;
    }
    off += (size_t)w;
  }
  s->written += (long long)n;
  return n;
}

/* Empties the temporary file before another hop writes into it. */
static int sink_reset(sink_t *s) {
  s->written = 0;
  return ftruncate(s->fd, 0) == 0 && lseek(s->fd, 0, SEEK_SET) == 0 ? 0 : -1;
}

/* One GET of url into s. On a redirect, *next gets a malloc'd copy of the target. */
static int fetch_once(CURL *c, const char *url, sink_t *s, long *status, char **next,
                      wk_err_t *err) {
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)WK_DOWNLOAD_CONNECT_TIMEOUT_S);
  if (s->deadline_us) {
    int64_t left_ms = (s->deadline_us - wk_now_us()) / 1000;
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(left_ms > 1 ? left_ms : 1));
  }
  /* a trickle is a stall: less than 1 KB/s over the stall time gives up */
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)WK_DOWNLOAD_STALL_TIMEOUT_S);
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s->max_bytes);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "wick/" WK_VERSION);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = curl_easy_perform(c);
  if (s->too_big || rc == CURLE_FILESIZE_EXCEEDED)
    return wk_err(err, WK_ETOOBIG, "%s is larger than the limit of %lld bytes", url, s->max_bytes);
  if (s->write_failed)
    return wk_err(err, WK_EIO, "writing the download failed: %s", strerror(s->write_failed));
  if (rc == CURLE_OPERATION_TIMEDOUT && s->deadline_us && wk_now_us() + 100000 >= s->deadline_us)
    return wk_err(err, WK_ETIMEDOUT, "downloading %s took longer than download_timeout (%d s)", url,
                  s->timeout_s);
  if (rc != CURLE_OK) return wk_err(err, WK_EIO, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  *next = NULL;
  if (*status >= 300 && *status < 400) {
    char *target = NULL;
    curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &target);
    if (target == NULL)
      return wk_err(err, WK_EIO, "the server answered %ld without a Location", *status);
    *next = strdup(target);
    if (*next == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  }
  return 0;
}

int wk_download(const char *url, const char *dest, long long max_bytes, int timeout_s,
                wk_download_allow_fn allow, void *ud, wk_err_t *err) {
  if (!is_http_url(url))
    return wk_err(err, WK_EUNSAFE, "only http:// and https:// URLs can be downloaded");
  pthread_once(&curl_once, curl_init);
  if (curl_init_rc != CURLE_OK)
    return wk_err(err, WK_EINTERNAL, "libcurl failed to start: %s",
                  curl_easy_strerror(curl_init_rc));
  if (access(dest, F_OK) == 0) return wk_err(err, WK_EEXIST, "%s already exists", dest);

  /* A hidden name beside dest: `--models all` skips dot files, and link() stays on one
   * file system. */
  char tmp[PATH_MAX];
  const char *slash = strrchr(dest, '/');
  int dirlen = slash ? (int)(slash - dest + 1) : 0;
  if (snprintf(tmp, sizeof tmp, "%.*s.%s.download-XXXXXX", dirlen, dest,
               slash ? slash + 1 : dest) >= (int)sizeof tmp)
    return wk_err(err, WK_ETOOBIG, "the path %s is too long", dest);
  int fd = mkstemp(tmp);
  if (fd < 0)
    return wk_err(err, WK_EIO, "cannot create a file beside %s: %s", dest, strerror(errno));

  CURL *c = curl_easy_init();
  sink_t s = {.fd = fd, .max_bytes = max_bytes, .timeout_s = timeout_s,
              .deadline_us = timeout_s > 0 ? wk_now_us() + (int64_t)timeout_s * 1000000 : 0};
  char *current = strdup(url);
  int rc = c && current ? 0 : wk_err(err, WK_ENOMEM, "out of memory");
  for (int hop = 0; rc == 0; hop++) {
    long status = 0;
    char *next = NULL;
    if (sink_reset(&s) != 0) {
      rc = wk_err(err, WK_EIO, "cannot write %s: %s", tmp, strerror(errno));
      break;
    }
    rc = fetch_once(c, current, &s, &status, &next, err);
    if (rc != 0) break;
    if (next == NULL) {
      if (status < 200 || status >= 300)
        rc = wk_err(err, WK_EIO, "the server answered HTTP %ld for %s", status, current);
      break;
    }
    if (hop == WK_MAX_DOWNLOAD_REDIRECTS)
      rc = wk_err(err, WK_EIO, "more than %d redirects", WK_MAX_DOWNLOAD_REDIRECTS);
    else if (!is_http_url(next))
      rc = wk_err(err, WK_EUNSAFE, "a redirect to %s was refused: only http and https are followed",
                  next);
    else if (allow == NULL || !allow(next, ud))
      rc = wk_err(err, WK_EUNSAFE,
                  "a redirect to %s was refused: it does not match any allowed URL(s)", next);
    free(current);
    current = next;
  }
  free(current);
  if (c) curl_easy_cleanup(c);

  if (rc == 0 && (fchmod(fd, 0644) != 0 || fsync(fd) != 0))
    rc = wk_err(err, WK_EIO, "cannot write %s: %s", tmp, strerror(errno));
  close(fd);
  if (rc == 0 && link(tmp, dest) != 0) {
    rc = errno == EEXIST ? wk_err(err, WK_EEXIST, "%s already exists", dest)
                         : wk_err(err, WK_EIO, "cannot create %s: %s", dest, strerror(errno));
  }
  unlink(tmp);
  return rc;
}
