/* `wick top`: reads GET /status.json from a server's management API (libcurl, http or
 * https, the management key as a Bearer token) every --interval seconds and draws the
 * frame top_format.c lays out, on the terminal's alternate screen, until q or Ctrl-C.
 * --once prints one frame and exits. It runs nothing of the server's and changes nothing. */
#include "cli/top.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/top_format.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/fs.h"
#include "serve/config.h"

#define TOP_MAX_BODY (64 << 20)  /* /status.json of a few hundred models is a few MB */
#define TOP_CONNECT_TIMEOUT_S 5
#define TOP_TIMEOUT_S 15
#define TOP_KEY_MAX 512

static void usage(FILE *f) {
  fprintf(f,
          "usage: wick top [--management-address URL] [--ts-config FILE] [--interval SECONDS]\n"
          "                [--key KEY | --key-file FILE] [--cacert FILE] [--once]\n"
          "\n"
          "Shows a running server's status (GET /status.json on its management API) as a\n"
          "table that refreshes like top: the server, then one row per model version, then\n"
          "the recent errors. q quits (so does Ctrl-C); r or space refreshes at once.\n"
          "\n"
          "  --management-address URL\n"
          "                      the management API, http[s]://host:port (default\n"
          "                      http://127.0.0.1:8081, or the management_address of the\n"
          "                      config file)\n"
          "  --ts-config FILE    read management_address from this config.properties (else\n"
          "                      from $TS_CONFIG_FILE when set)\n"
          "  --interval SECONDS  time between refreshes (default 2; at least 0.2)\n"
          "  --key KEY           the management key, sent as Authorization: Bearer KEY\n"
          "                      (when token authorization is on; also $WICK_MANAGEMENT_KEY)\n"
          "  --key-file FILE     TorchServe's key file (key_file.json, written where the\n"
          "                      server runs): its management key, read again at each refresh\n"
          "  --cacert FILE       PEM certificates to check an https:// server against\n"
          "  --once              print one frame without clearing the screen and exit: 0, or\n"
          "                      1 with the reason on stderr when the server cannot be read\n"
          "                      (width: the terminal's, else $COLUMNS, else 160 columns)\n");
}

typedef struct top_opts_s {
  char url[320];       /* .../status.json */
  char shown_url[300]; /* the address as the footer names it */
  double interval_s;
  const char *key;      /* --key or $WICK_MANAGEMENT_KEY */
  const char *key_file; /* --key-file */
  const char *cacert;
  int once;
} top_opts_t;

/* ---- signals: handlers only set flags; the loop acts on them ---- */

static volatile sig_atomic_t g_quit;    /* the signal that asks to quit (SIGINT, SIGTERM...) */
static volatile sig_atomic_t g_resize;  /* SIGWINCH */
static volatile sig_atomic_t g_suspend; /* SIGTSTP (Ctrl-Z) */

static void on_signal(int sig) {
  if (sig == SIGWINCH) g_resize = 1;
  else if (sig == SIGTSTP) g_suspend = 1;
  else g_quit = sig;
}

static void catch_signal(int sig) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

static void default_signal(int sig) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

/* ---- the terminal ---- */

static struct termios g_saved_tty;
static int g_tty_changed;

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void puts_fd(const char *s) {
  write_all(STDOUT_FILENO, s, strlen(s));
}

/* The terminal's size; $COLUMNS and $LINES when it has none; else dflt_w x dflt_h. */
static void screen_size(int *w, int *h, int dflt_w, int dflt_h) {
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
    *w = ws.ws_col;
    *h = ws.ws_row;
    return;
  }
  const char *c = getenv("COLUMNS"), *l = getenv("LINES");
  *w = c && atoi(c) > 0 ? atoi(c) : dflt_w;
  *h = l && atoi(l) > 0 ? atoi(l) : dflt_h;
}

/* Keys one at a time without echo (cbreak: Ctrl-C still signals), the alternate screen,
 * the cursor hidden. screen_leave undoes all three. */
static void screen_enter(void) {
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &g_saved_tty) == 0) {
    struct termios t = g_saved_tty;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) g_tty_changed = 1;
  }
  puts_fd("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J");
}

static void screen_leave(void) {
  puts_fd("\x1b[?25h\x1b[?1049l");
  if (g_tty_changed) tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_tty);
  g_tty_changed = 0;
}

/* Draws a frame from the top left: each line cleared before it is written (so a line that
 * fills the width never meets an erase in the last column), and the rest of the screen
 * cleared when the frame is shorter. One write, so the terminal never shows half. */
static void draw(const wk_buf_t *frame, int rows) {
  wk_buf_t s = WK_BUF_INIT;
  wk_buf_puts(&s, "\x1b[H");
  const char *p = frame->data ? frame->data : "";
  int n = 0;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (n > 0) wk_buf_puts(&s, "\r\n");
    wk_buf_puts(&s, "\x1b[2K");
    wk_buf_append(&s, p, len);
    n++;
    p += len + (nl ? 1 : 0);
  }
  if (n < rows) wk_buf_puts(&s, n > 0 ? "\r\n\x1b[J" : "\x1b[J");
  if (write_all(STDOUT_FILENO, s.data, s.len) != 0 && !g_quit) g_quit = SIGHUP; /* terminal gone */
  wk_buf_destroy(&s);
}

/* ---- reading the server ---- */

typedef struct fetch_s {
  CURL *curl;
  wk_buf_t body;
  int too_big;
} fetch_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  fetch_t *f = ud;
  size_t n = size * nmemb;
  if (f->body.len + n > TOP_MAX_BODY) {
    f->too_big = 1;
    return 0;
  }
  return wk_buf_append(&f->body, data, n) == 0 ? n : 0;
}

/* Lets q's signal cousins (Ctrl-C, SIGTERM) end a request that waits on a slow server. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  (void)ud, (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
  return g_quit ? 1 : 0;
}

/* The management key of a key file ({"management": {"key": "..."}}) into key. */
static int read_key_file(const char *path, char *key, size_t cap, char *msg, size_t msgcap) {
  char *data = NULL;
  size_t len = 0;
  wk_err_t err = {{0}};
  if (wk_fs_read_file(path, 1 << 20, &data, &len, &err) != 0) {
    snprintf(msg, msgcap, "cannot read the key file %s: %s", path, err.msg);
    return -1;
  }
  json_t *root = json_loadb(data, len, 0, NULL);
  free(data);
  json_t *m = json_object_get(root, "management");
  const char *k = json_string_value(json_object_get(m, "key"));
  int rc = 0;
  if (k == NULL) {
    snprintf(msg, msgcap, "the key file %s has no management key (expected {\"management\": "
                          "{\"key\": ...}}, as wick serve and TorchServe write it)", path);
    rc = -1;
  } else if (strlen(k) >= cap) {
    snprintf(msg, msgcap, "the management key in %s is longer than %zu bytes", path, cap - 1);
    rc = -1;
  } else {
    snprintf(key, cap, "%s", k);
  }
  json_decref(root);
  return rc;
}

static int key_is_printable(const char *k) {
  for (; *k; k++)
    if ((unsigned char)*k <= 0x20 || (unsigned char)*k >= 0x7F) return 0;
  return 1;
}

/* The "message" of an error body (TorchServe's {"code", "type", "message"}), or its start. */
static void body_message(const wk_buf_t *b, char *out, size_t cap) {
  json_t *root = b->len ? json_loadb(b->data, b->len, 0, NULL) : NULL;
  json_t *m = json_object_get(root, "message");
  if (json_is_string(m)) wk_top_clean(json_string_value(m), json_string_length(m), 0, out, cap);
  else wk_top_clean(b->data ? b->data : "", b->len < 300 ? b->len : 300, 0, out, cap);
  json_decref(root);
}

/* One GET of the status. Returns 0 with the body in f->body, or -1 with what went wrong in
 * msg (a sentence for the screen or stderr). */
static int fetch_status(fetch_t *f, const top_opts_t *o, char *msg, size_t cap) {
  char key[TOP_KEY_MAX] = "";
  if (o->key_file) {
    if (read_key_file(o->key_file, key, sizeof key, msg, cap) != 0) return -1;
  } else if (o->key) {
    snprintf(key, sizeof key, "%s", o->key);
  }
  if (key[0] && !key_is_printable(key)) {
    snprintf(msg, cap, "the management key holds a space or a control character: not sent");
    return -1;
  }
  f->body.len = 0;
  f->too_big = 0;
  char errbuf[CURL_ERROR_SIZE] = "";
  CURL *c = f->curl;
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, o->url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)TOP_CONNECT_TIMEOUT_S);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)TOP_TIMEOUT_S);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "wick-top/" WK_VERSION);
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  if (o->cacert) curl_easy_setopt(c, CURLOPT_CAINFO, o->cacert);
  struct curl_slist *headers = NULL;
  char auth[TOP_KEY_MAX + 32];
  if (key[0]) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    headers = curl_slist_append(headers, auth);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  }
  CURLcode rc = curl_easy_perform(c);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(headers);
  memset(auth, 0, sizeof auth);
  memset(key, 0, sizeof key);
  if (f->too_big) {
    snprintf(msg, cap, "%s answered more than %d MiB; not wick's /status.json", o->shown_url,
             TOP_MAX_BODY >> 20);
    return -1;
  }
  if (rc != CURLE_OK) {
    char why[CURL_ERROR_SIZE];
    const char *e = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    wk_top_clean(e, strlen(e), 0, why, sizeof why);
    snprintf(msg, cap, "cannot read %s: %s", o->shown_url, why);
    return -1;
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status == 200) return 0;
  char why[320];
  body_message(&f->body, why, sizeof why);
  if (status == 401 && !o->key && !o->key_file)
    snprintf(msg, cap,
             "401 from %s: the management key is needed (token authorization is on): "
             "--key-file key_file.json (written where wick serve runs), --key KEY or "
             "WICK_MANAGEMENT_KEY",
             o->shown_url);
  else if (status == 401)
    snprintf(msg, cap,
             "401 from %s: the management key was refused (%s); keys expire: a key file is read "
             "again at each refresh",
             o->shown_url, why);
  else if (status == 404)
    snprintf(msg, cap, "404 from %s: no /status.json there; is it wick's management address? (%s)",
             o->shown_url, why);
  else snprintf(msg, cap, "HTTP %ld from %s: %s", status, o->shown_url, why);
  return -1;
}

/* ---- options ---- */

/* The URL of /status.json at a management address: http[s]://host:port, host:port; an
 * address that listens on every interface (0.0.0.0, [::]) is read on loopback. */
static int status_url(const char *addr, top_opts_t *o) {
  char host[256];
  int port = 0, tls = 0;
  wk_err_t err = {{0}};
  if (wk_config_parse_address_tls(addr, host, sizeof host, &port, &tls, &err) != 0) {
    fprintf(stderr, "wick top: --management-address: %s\n", err.msg);
    return -1;
  }
  if (strcmp(host, "0.0.0.0") == 0) snprintf(host, sizeof host, "127.0.0.1");
  if (strcmp(host, "::") == 0) snprintf(host, sizeof host, "::1");
  int v6 = strchr(host, ':') != NULL;
  snprintf(o->shown_url, sizeof o->shown_url, "%s://%s%s%s:%d", tls ? "https" : "http",
           v6 ? "[" : "", host, v6 ? "]" : "", port);
  snprintf(o->url, sizeof o->url, "%s/status.json", o->shown_url);
  return 0;
}

/* 1 when a is flag ('_' and '-' alike), with *inline_value the text after "flag=" (or NULL). */
static int match_flag(const char *a, const char *flag, const char **inline_value) {
  size_t n = strlen(flag);
  for (size_t k = 0; k < n; k++)
    if ((a[k] == '_' ? '-' : a[k]) != flag[k]) return 0;
  if (a[n] != '\0' && a[n] != '=') return 0;
  *inline_value = a[n] == '=' ? a + n + 1 : NULL;
  return 1;
}

enum { F_ADDRESS, F_CONFIG, F_CONFIG_SHORT, F_INTERVAL, F_INTERVAL_SHORT, F_KEY, F_KEY_FILE,
       F_CACERT, F_N };
static const char *const FLAGS[F_N] = {"--management-address", "--ts-config", "-f", "--interval",
                                        "-d", "--key", "--key-file", "--cacert"};

/* Returns 0, 1 for --help (printed), 2 on a bad flag (the reason printed). */
static int parse_args(int argc, char **argv, top_opts_t *o) {
  const char *address = NULL, *config = NULL;
  o->interval_s = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 1;
    }
    if (strcmp(a, "--once") == 0) {
      o->once = 1;
      continue;
    }
    int which = -1;
    for (int k = 0; k < F_N && which < 0; k++)
      if (match_flag(a, FLAGS[k], &v)) which = k;
    if (which < 0) {
      fprintf(stderr, "wick top: unexpected argument '%s' (see wick top --help)\n", a);
      return 2;
    }
    if (v == NULL && i + 1 < argc) v = argv[++i];
    if (v == NULL) {
      fprintf(stderr, "wick top: %s needs a value (see wick top --help)\n", a);
      return 2;
    }
    switch (which) {
    case F_ADDRESS: address = v; break;
    case F_CONFIG:
    case F_CONFIG_SHORT: config = v; break;
    case F_KEY: o->key = v; break;
    case F_KEY_FILE: o->key_file = v; break;
    case F_CACERT: o->cacert = v; break;
    default: { /* --interval, -d */
      char *end;
      double s = strtod(v, &end);
      if (end == v || *end != '\0' || !(s >= 0.2) || s > 86400) {
        fprintf(stderr, "wick top: %s: expected seconds between 0.2 and 86400, got '%s'\n", a, v);
        return 2;
      }
      o->interval_s = s;
    }
    }
  }
  if (o->key && o->key_file) {
    fprintf(stderr, "wick top: --key and --key-file both name the key; give one\n");
    return 2;
  }
  if (o->key == NULL && o->key_file == NULL) {
    const char *k = getenv("WICK_MANAGEMENT_KEY");
    if (k && *k) o->key = k;
  }
  if (config == NULL) {
    const char *env = getenv("TS_CONFIG_FILE");
    if (env && *env) config = env;
  }
  int rc = 0;
  wk_config_t cfg;
  wk_config_init(&cfg);
  if (address == NULL && config != NULL) {
    wk_err_t err = {{0}};
    if (wk_config_load_file(&cfg, config, &err) != 0) {
      fprintf(stderr, "wick top: %s: %s\n", config, err.msg);
      rc = 2;
    }
  }
  if (rc == 0 && status_url(address ? address : cfg.management_address, o) != 0) rc = 2;
  wk_config_destroy(&cfg);
  return rc;
}

/* ---- the two modes ---- */

/* 1 when the locale's characters are UTF-8 (setlocale(LC_CTYPE, "") called first). */
static int locale_is_utf8(void) {
  const char *cs = nl_langinfo(CODESET);
  return cs && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0);
}

static int run_once(fetch_t *f, const top_opts_t *o) {
  char msg[2048];
  if (fetch_status(f, o, msg, sizeof msg) != 0) {
    fprintf(stderr, "wick top: %s\n", msg);
    return 1;
  }
  wk_top_view_t v = {.now = time(NULL), .source = o->shown_url, .utf8 = locale_is_utf8()};
  int tty = isatty(STDOUT_FILENO);
  screen_size(&v.width, &v.height, 160, 0);
  if (tty && v.height > 1) v.height -= 1; /* the prompt's line */
  wk_buf_t frame = WK_BUF_INIT;
  int rc = wk_top_format(f->body.data, f->body.len, &v, &frame);
  if (rc != 0) {
    char why[1024];
    wk_top_clean(frame.data, frame.len, 0, why, sizeof why);
    fprintf(stderr, "wick top: %s: %s\n", o->shown_url, why);
  } else {
    fwrite(frame.data, 1, frame.len, stdout);
    fflush(stdout);
  }
  wk_buf_destroy(&frame);
  return rc == 0 ? 0 : 1;
}

/* The frame for what the last read brought (the body, or ok == 0 and msg). */
static void render(const fetch_t *f, int ok, const char *msg, const top_opts_t *o,
                   wk_buf_t *frame, int *rows) {
  char footer[800];
  snprintf(footer, sizeof footer, "q quit  r refresh  every %gs  %s", o->interval_s, o->shown_url);
  wk_top_view_t v = {.now = time(NULL), .source = o->shown_url, .footer = footer, .ansi = 1};
  screen_size(&v.width, &v.height, 80, 24);
  v.utf8 = locale_is_utf8();
  *rows = v.height;
  if (ok) wk_top_format(f->body.data, f->body.len, &v, frame);
  else {
    char line[2200];
    snprintf(line, sizeof line, "%s; trying again every %gs", msg, o->interval_s);
    wk_top_format_error(line, &v, frame);
  }
}

/* Waits until deadline_us, a key or a signal. Returns 0 to refresh, 1 to quit. */
static int wait_input(int64_t deadline_us, int tty_in, const fetch_t *f, int ok, const char *msg,
                      const top_opts_t *o, wk_buf_t *frame) {
  sigset_t sigs, old;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  sigaddset(&sigs, SIGWINCH);
  sigaddset(&sigs, SIGTSTP);
  for (;;) {
    if (g_suspend) { /* Ctrl-Z: give the shell its terminal back, stop, then come back */
      g_suspend = 0;
      screen_leave();
      default_signal(SIGTSTP);
      raise(SIGTSTP);
      catch_signal(SIGTSTP);
      screen_enter();
      g_resize = 1;
    }
    if (g_resize) {
      g_resize = 0;
      int rows;
      render(f, ok, msg, o, frame, &rows);
      draw(frame, rows);
    }
    /* signals blocked between the check and ppoll, which unblocks them while it waits */
    sigprocmask(SIG_BLOCK, &sigs, &old);
    if (g_quit || g_suspend || g_resize) {
      sigprocmask(SIG_SETMASK, &old, NULL);
      if (g_quit) return 1;
      continue;
    }
    int64_t left = deadline_us - wk_now_us();
    if (left <= 0) {
      sigprocmask(SIG_SETMASK, &old, NULL);
      return 0;
    }
    struct timespec ts = {(time_t)(left / 1000000), (long)(left % 1000000) * 1000};
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
    int rc = ppoll(&p, tty_in ? 1 : 0, &ts, &old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rc <= 0) continue; /* a signal (EINTR) or the time: both checked above */
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return 1;
    char keys[64];
    ssize_t n = read(STDIN_FILENO, keys, sizeof keys);
    for (ssize_t k = 0; k < n; k++) {
      if (keys[k] == 'q' || keys[k] == 'Q') return 1;
      if (keys[k] == 'r' || keys[k] == 'R' || keys[k] == ' ') return 0;
    }
  }
}

static int run_live(fetch_t *f, const top_opts_t *o) {
  int tty_in = isatty(STDIN_FILENO);
  catch_signal(SIGINT);
  catch_signal(SIGTERM);
  catch_signal(SIGHUP);
  catch_signal(SIGWINCH);
  if (tty_in) catch_signal(SIGTSTP);
  signal(SIGPIPE, SIG_IGN);
  screen_enter();
  wk_buf_t frame = WK_BUF_INIT;
  char msg[2048] = "";
  while (!g_quit) {
    int64_t started = wk_now_us();
    int ok = fetch_status(f, o, msg, sizeof msg) == 0;
    if (g_quit) break;
    int rows;
    render(f, ok, msg, o, &frame, &rows);
    draw(&frame, rows);
    if (wait_input(started + (int64_t)(o->interval_s * 1e6), tty_in, f, ok, msg, o, &frame)) break;
  }
  screen_leave();
  wk_buf_destroy(&frame);
  int sig = g_quit;
  if (sig == SIGTERM || sig == SIGHUP) return -sig; /* the caller ends by that signal */
  return 0;
}

int wk_cmd_top(int argc, char **argv) {
  top_opts_t o;
  memset(&o, 0, sizeof o);
  int rc = parse_args(argc, argv, &o);
  if (rc != 0) return rc == 1 ? 0 : rc;
  if (!o.once && !isatty(STDOUT_FILENO)) {
    fprintf(stderr, "wick top: standard output is not a terminal; --once prints one frame\n");
    return 2;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "wick top: libcurl failed to start\n");
    return 1;
  }
  fetch_t f = {.curl = curl_easy_init(), .body = WK_BUF_INIT};
  if (f.curl == NULL) {
    fprintf(stderr, "wick top: libcurl failed to start\n");
    curl_global_cleanup();
    return 1;
  }
  setlocale(LC_CTYPE, ""); /* only to know whether the terminal takes UTF-8 */
  rc = o.once ? run_once(&f, &o) : run_live(&f, &o);
  curl_easy_cleanup(f.curl);
  wk_buf_destroy(&f.body);
  curl_global_cleanup();
  if (rc < 0) { /* SIGTERM or SIGHUP: the terminal is restored; end as that signal says */
    default_signal(-rc);
    raise(-rc);
    return 128 - rc;
  }
  return rc;
}
