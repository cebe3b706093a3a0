/* The status page on the management port ([13]): status_page.html, compiled in
 * (wk_status_page_html), served as it is with a strict Content-Security-Policy that allows
 * its own inline style and script (by their SHA-256) and fetches to the page's origin. The
 * page holds no data, so it needs no key: its script reads /status.json and calls the
 * management API with the key the operator types in. */
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/handlers.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/error.h"

extern const unsigned char wk_status_page_html[];
extern const size_t wk_status_page_html_len;

static pthread_once_t csp_once = PTHREAD_ONCE_INIT;
static char csp[1024];

/* Appends " 'sha256-<base64>'" for each <tag>...</tag> element of the page (the page
 * writes them without attributes). Returns 0 or WK_ENOMEM. */
static int hash_elements(wk_buf_t *b, const char *tag) {
  int rc = 0;
  char open[16], close[16];
  snprintf(open, sizeof open, "<%s>", tag);
  snprintf(close, sizeof close, "</%s>", tag);
  const char *page = (const char *)wk_status_page_html, *end = page + wk_status_page_html_len;
  for (const char *p = page; p < end;) {
    const char *start = memmem(p, (size_t)(end - p), open, strlen(open));
    if (start == NULL) break;
    start += strlen(open);
    const char *stop = memmem(start, (size_t)(end - start), close, strlen(close));
    if (stop == NULL) break;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)start, (size_t)(stop - start), digest);
    rc |= wk_buf_puts(b, " 'sha256-");
    rc |= wk_base64_encode(b, digest, sizeof digest);
    rc |= wk_buf_puts(b, "'");
    p = stop + strlen(close);
  }
  return rc ? WK_ENOMEM : 0;
}

/* Builds the policy once. Nothing but the page's own style and script runs or applies;
 * it may fetch from its origin only (/status.json, the management API), load no frame,
 * be framed by no one, and submit no form anywhere. */
static void build_csp(void) {
  wk_buf_t b = WK_BUF_INIT;
  int rc = wk_buf_puts(&b, "default-src 'none'; script-src");
  rc |= hash_elements(&b, "script");
  rc |= wk_buf_puts(&b, "; style-src");
  rc |= hash_elements(&b, "style");
  rc |= wk_buf_puts(&b, "; connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                        "form-action 'none'; frame-ancestors 'none'");
  /* out of memory or too long: a policy that allows nothing (the page shows, inert) */
  snprintf(csp, sizeof csp, "%s",
           rc == 0 && b.len < sizeof csp ? b.data : "default-src 'none'; frame-ancestors 'none'");
  wk_buf_destroy(&b);
}

int wk_api_wants_html(wk_http_req_t *req) {
  const char *accept = wk_http_req_header(req, "Accept");
  for (const char *p = accept; p != NULL && *p;) {
    size_t n = strcspn(p, ",");
    char item[128];
    if (n < sizeof item) {
      /* "text/html;q=0.9": the media range, then parameters; q=0 means "not this" */
      memcpy(item, p, n);
      item[n] = '\0';
      char *range = item + strspn(item, " \t");
      char *params = strchr(range, ';');
      if (params) *params++ = '\0';
      size_t r = strcspn(range, " \t");
      range[r] = '\0';
      if (strcasecmp(range, "text/html") == 0) {
        int refused = 0;
        for (char *q = params; q != NULL && *q; q = strchr(q, ';') ? strchr(q, ';') + 1 : NULL) {
          q += strspn(q, " \t");
          if ((q[0] == 'q' || q[0] == 'Q') && q[1] == '=') refused = strtod(q + 2, NULL) <= 0.0;
        }
        if (!refused) return 1;
      }
    }
    p += n;
    if (*p == ',') p++;
  }
  return 0;
}

void wk_api_status_page(wk_api_t *api, wk_http_req_t *req, const wk_route_args_t *a) {
  (void)api;
  (void)a;
  pthread_once(&csp_once, build_csp);
  char *body = malloc(wk_status_page_html_len);
  if (body == NULL) {
    wk_http_reply_error(req, 507, "InsufficientStorageException", "out of memory");
    return;
  }
  memcpy(body, wk_status_page_html, wk_status_page_html_len);
  wk_http_reply_header(req, "Content-Security-Policy", csp);
  wk_http_reply_header(req, "Cache-Control", "no-store");
  wk_http_reply_header(req, "X-Content-Type-Options", "nosniff");
  wk_http_reply_header(req, "X-Frame-Options", "DENY");
  wk_http_reply_header(req, "Referrer-Policy", "no-referrer");
  wk_http_reply_header(req, "Cross-Origin-Opener-Policy", "same-origin");
  wk_http_reply_header(req, "Cross-Origin-Resource-Policy", "same-origin");
  wk_http_reply(req, 200, "text/html; charset=utf-8", body, wk_status_page_html_len);
}
