/* `wick top`'s frame: the text of GET /status.json laid out for a screen of a given size.
 * Pure: no terminal, no network, no clock but view->now. Every string the server sent goes
 * through wk_top_clean before it is measured or printed, so a model name or an error
 * message cannot move the cursor or clear the screen. */
#include "cli/top_format.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

/* ---- safe text ---- */

/* The length of the well-formed UTF-8 sequence that starts s (n bytes left), its code
 * point in *cp; 0 when it is not one (overlong, a surrogate, cut short). */
static int utf8_seq(const unsigned char *s, size_t n, unsigned *cp) {
  unsigned c = s[0], min;
  int len;
  if (c >= 0xC2 && c <= 0xDF) len = 2, *cp = c & 0x1F, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, *cp = c & 0x0F, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, *cp = c & 0x07, min = 0x10000;
  else return 0;
  if ((size_t)len > n) return 0;
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    *cp = (*cp << 6) | (s[i] & 0x3F);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return 0;
  return len;
}

/* Characters every terminal draws one column wide, whatever its locale's tables say:
 * Latin-1's letters and signs, Latin Extended-A/B, IPA, Greek and Cyrillic (without the
 * soft hyphen and Cyrillic's combining marks). All are two bytes in UTF-8. Wider scripts,
 * combining marks, format characters (bidi overrides) and emoji become '?', so a column
 * is one character and a frame keeps its width. */
static int narrow_letter(unsigned cp) {
  if (cp >= 0xA0 && cp <= 0x2FF) return cp != 0xAD;
  if (cp >= 0x370 && cp <= 0x52F) return cp < 0x483 || cp > 0x489;
  return 0;
}

size_t wk_top_clean(const char *text, size_t len, int utf8, char *out, size_t cap) {
  const unsigned char *s = (const unsigned char *)text;
  size_t o = 0, cols = 0;
  if (cap == 0) return 0;
  for (size_t i = 0; i < len;) {
    char one = '?';
    const char *put = &one;
    size_t n = 1, adv = 1;
    unsigned char c = s[i];
    if (c >= 0x20 && c < 0x7F) {
      one = (char)c;
    } else if (c == '\t' || c == '\n' || c == '\r') {
      one = ' ';
    } else if (c >= 0x80) {
      unsigned cp;
      int l = utf8_seq(s + i, len - i, &cp);
      if (l > 0) {
        adv = (size_t)l;
        if (utf8 && narrow_letter(cp)) put = text + i, n = (size_t)l;
      }
    }
    if (o + n + 1 > cap) break;
    memcpy(out + o, put, n);
    o += n;
    cols++;
    i += adv;
  }
  out[o] = '\0';
  return cols;
}

/* Columns of a cleaned text: every byte but UTF-8's continuation bytes. */
static int cells(const char *s) {
  int n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}

/* Bytes of the first n columns of a cleaned text. */
static size_t cells_prefix(const char *s, int n) {
  size_t i = 0;
  for (int k = 0; s[i] && k < n; k++) {
    i++;
    while (((unsigned char)s[i] & 0xC0) == 0x80) i++;
  }
  return i;
}

/* Appends cleaned text in exactly w columns: padded with spaces (before it when right),
 * or cut with a '+' in its last column when it is longer. */
static void put_cell(wk_buf_t *b, const char *s, int w, int right) {
  if (w <= 0) return;
  int n = cells(s);
  if (n > w) {
    wk_buf_append(b, s, cells_prefix(s, w - 1));
    wk_buf_putc(b, '+');
    return;
  }
  for (int i = 0; right && i < w - n; i++) wk_buf_putc(b, ' ');
  wk_buf_puts(b, s);
  for (int i = 0; !right && i < w - n; i++) wk_buf_putc(b, ' ');
}

/* A server string cleaned into out and cut to max columns (with '+'); "-" when NULL. */
static const char *shown(const char *s, size_t len, int max, int utf8, char *out, size_t cap) {
  if (s == NULL) {
    snprintf(out, cap, "-");
    return out;
  }
  wk_top_clean(s, len, utf8, out, cap);
  if (max > 0 && cells(out) > max) {
    size_t at = cells_prefix(out, max - 1);
    out[at] = '+';
    out[at + 1] = '\0';
  }
  return out;
}

/* ---- the JSON, read without trusting its shape ---- */

static json_t *obj(json_t *o, const char *key) {
  json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
  return json_is_object(v) ? v : NULL;
}

static json_t *arr(json_t *o, const char *key) {
  json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
  return json_is_array(v) ? v : NULL;
}

/* A string value and its length (it may hold NULs); NULL when absent or not a string. */
static const char *str(json_t *o, const char *key, size_t *len) {
  json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
  if (!json_is_string(v)) return NULL;
  *len = json_string_length(v);
  return json_string_value(v);
}

/* 1 and *v for a number; 0 otherwise. */
static int num(json_t *o, const char *key, double *v) {
  json_t *x = json_is_object(o) ? json_object_get(o, key) : NULL;
  if (!json_is_number(x)) return 0;
  *v = json_number_value(x);
  return 1;
}

/* 1 true, 0 false, -1 absent or not a boolean. */
static int boolean(json_t *o, const char *key) {
  json_t *x = json_is_object(o) ? json_object_get(o, key) : NULL;
  return json_is_true(x) ? 1 : json_is_false(x) ? 0 : -1;
}

/* ---- numbers as the screen shows them ---- */

static void fmt_bytes(json_t *o, const char *key, char *out, size_t cap) {
  double b;
  if (!num(o, key, &b) || !(b >= 0) || b > 1e30) {
    snprintf(out, cap, "-");
    return;
  }
  static const char units[] = "BKMGTPE";
  int u = 0;
  while (b >= 1024 && u < 6) b /= 1024, u++;
  if (u == 0) snprintf(out, cap, "%.0fB", b);
  else snprintf(out, cap, "%.1f%c", b, units[u]);
}

static void fmt_duration(json_t *o, const char *key, char *out, size_t cap) {
  double s;
  if (!num(o, key, &s) || !(s >= 0) || s > 1e12) {
    snprintf(out, cap, "-");
    return;
  }
  long long t = (long long)s;
  if (t < 60) snprintf(out, cap, "%llds", t);
  else if (t < 3600) snprintf(out, cap, "%lldm%02llds", t / 60, t % 60);
  else if (t < 86400) snprintf(out, cap, "%lldh%02lldm", t / 3600, t % 3600 / 60);
  else snprintf(out, cap, "%lldd%02lldh", t / 86400, t % 86400 / 3600);
}

/* A rate or a time: two decimals below 10, one below 1000, none above; "-" for null. */
static void fmt_real(json_t *o, const char *key, char *out, size_t cap) {
  double v;
  if (!num(o, key, &v) || v != v || v < 0 || v > 1e15) snprintf(out, cap, "-");
  else if (v < 10) snprintf(out, cap, "%.2f", v);
  else if (v < 1000) snprintf(out, cap, "%.1f", v);
  else snprintf(out, cap, "%.0f", v);
}

static void fmt_count(json_t *o, const char *key, char *out, size_t cap) {
  double v;
  if (!num(o, key, &v) || v != v || v < -1e15 || v > 1e15) snprintf(out, cap, "-");
  else snprintf(out, cap, "%.0f", v);
}

/* ---- lines ---- */

typedef struct frame_s {
  wk_buf_t *out;
  const wk_top_view_t *v;
  int width;
  int lines; /* written */
  int limit; /* lines the body may take (the footer has its own) */
} frame_t;

static void frame_init(frame_t *f, const wk_top_view_t *v, wk_buf_t *out) {
  out->len = 0;
  if (out->data) out->data[0] = '\0';
  f->out = out;
  f->v = v;
  f->width = v->width > 0 ? v->width : 1;
  f->lines = 0;
  f->limit = v->height > 0 ? v->height - (v->footer ? 1 : 0) : INT_MAX;
  if (f->limit < 0) f->limit = 0;
}

static int room(const frame_t *f) {
  return f->limit - f->lines;
}

/* Adds one line of cleaned text cut to the width; with reverse set (and view->ansi) padded
 * to the width in reverse video. Returns 0, or -1 when the frame is full. */
static int add_line_as(frame_t *f, const char *clean, int reverse) {
  if (room(f) <= 0) return -1;
  int n = cells(clean);
  if (reverse && f->v->ansi) {
    wk_buf_puts(f->out, "\x1b[7m");
    put_cell(f->out, clean, f->width, 0);
    wk_buf_puts(f->out, "\x1b[0m\n");
  } else {
    if (n > f->width) put_cell(f->out, clean, f->width, 0);
    else wk_buf_puts(f->out, clean);
    wk_buf_putc(f->out, '\n');
  }
  f->lines++;
  return 0;
}

static int add_line(frame_t *f, const char *clean) {
  return add_line_as(f, clean, 0);
}

/* The footer on the last line when the height is set, after the body otherwise. */
static void add_footer(frame_t *f) {
  if (f->v->footer == NULL) return;
  char clean[512];
  shown(f->v->footer, strlen(f->v->footer), 0, f->v->utf8, clean, sizeof clean);
  if (f->v->height > 0)
    while (f->lines < f->v->height - 1) wk_buf_putc(f->out, '\n'), f->lines++;
  f->limit = f->lines + 1;
  add_line(f, clean);
}

/* Packs pieces (cleaned) into as few lines as the width allows, two spaces apart. */
static void add_pieces(frame_t *f, char (*pieces)[400], int n) {
  wk_buf_t line = WK_BUF_INIT;
  int cols = 0;
  for (int i = 0; i < n; i++) {
    int w = cells(pieces[i]);
    if (w == 0) continue;
    if (cols > 0 && cols + 2 + w > f->width) {
      add_line(f, line.data);
      line.len = 0;
      cols = 0;
    }
    if (cols > 0) wk_buf_puts(&line, "  "), cols += 2;
    wk_buf_puts(&line, pieces[i]);
    cols += w;
  }
  if (cols > 0) add_line(f, line.data);
  wk_buf_destroy(&line);
}

/* Splits a cleaned message over lines of the width, at spaces where it can, up to max
 * lines (the last one cut with '+'). */
static void add_wrapped(frame_t *f, const char *s, int max) {
  wk_buf_t line = WK_BUF_INIT;
  while (*s && max-- > 0 && room(f) > 0) {
    while (*s == ' ') s++;
    int n = cells(s);
    if (n <= f->width || max == 0) {
      add_line(f, s);
      break;
    }
    size_t cut = cells_prefix(s, f->width);
    size_t at = cut;
    while (at > 0 && s[at] != ' ') at--;
    if (at == 0) at = cut;
    line.len = 0;
    wk_buf_append(&line, s, at);
    add_line(f, line.data);
    s += at;
  }
  wk_buf_destroy(&line);
}

/* ---- the header ---- */

static void clock_piece(const wk_top_view_t *v, char *out, size_t cap) {
  out[0] = '\0';
  if (v->now == 0) return;
  struct tm tm;
  if (localtime_r(&v->now, &tm) != NULL) strftime(out, cap, "%H:%M:%S", &tm);
}

static void add_header(frame_t *f, json_t *root) {
  const int utf8 = f->v->utf8;
  json_t *srv = obj(root, "server");
  char pieces[32][400];
  int n = 0;
  char a[96], b[96], c[96];
  size_t len = 0;
  const char *s;

  clock_piece(f->v, pieces[n], sizeof pieces[n]);
  n++;
  s = str(srv, "server", &len);
  shown(s ? s : "wick", s ? len : 4, 16, utf8, a, sizeof a);
  s = str(srv, "version", &len);
  shown(s, len, 24, utf8, b, sizeof b);
  s = str(srv, "hostname", &len);
  if (s) shown(s, len, 40, utf8, c, sizeof c);
  snprintf(pieces[n++], sizeof pieces[0], "%s %s%s%s", a, b, s ? " on " : "", s ? c : "");
  fmt_duration(srv, "uptime_s", a, sizeof a);
  snprintf(pieces[n++], sizeof pieces[0], "up %s", a);
  int h = boolean(root, "healthy");
  snprintf(pieces[n++], sizeof pieces[0], "%s",
           h == 1 ? "healthy" : h == 0 ? "UNHEALTHY" : "health -");
  int r = boolean(root, "ready");
  snprintf(pieces[n++], sizeof pieces[0], "%s",
           r == 1 ? "ready" : r == 0 ? "NOT READY" : "ready -");
  fmt_count(srv, "registrations_running", a, sizeof a);
  snprintf(pieces[n++], sizeof pieces[0], "registering %s", a);
  fmt_count(srv, "pid", a, sizeof a);
  snprintf(pieces[n++], sizeof pieces[0], "pid %s", a);
  fmt_bytes(srv, "rss_bytes", a, sizeof a);
  snprintf(pieces[n++], sizeof pieces[0], "rss %s", a);
  fmt_bytes(srv, "host_memory_available_bytes", a, sizeof a);
  fmt_bytes(srv, "host_memory_bytes", b, sizeof b);
  snprintf(pieces[n++], sizeof pieces[0], "host mem %s free of %s", a, b);
  if (boolean(srv, "token_authorization") == 1)
    snprintf(pieces[n++], sizeof pieces[0], "tokens on");
  json_t *gpus = arr(srv, "gpus");
  if (gpus == NULL) {
    snprintf(pieces[n++], sizeof pieces[0], "gpus -");
  } else if (json_array_size(gpus) == 0) {
    snprintf(pieces[n++], sizeof pieces[0], "no GPU");
  } else {
    size_t i;
    json_t *g;
    json_array_foreach(gpus, i, g) {
      if (n >= 31) break;
      char idx[32];
      fmt_count(g, "index", idx, sizeof idx);
      s = str(g, "name", &len);
      shown(s, len, 24, utf8, c, sizeof c);
      fmt_bytes(g, "memory_used_bytes", a, sizeof a);
      fmt_bytes(g, "memory_total_bytes", b, sizeof b);
      snprintf(pieces[n++], sizeof pieces[0], "gpu%s %s %s/%s", idx, c, a, b);
    }
  }
  add_pieces(f, pieces, n);
}

/* ---- the table ---- */

enum { C_VERSION, C_RUNTIME, C_DEVICE, C_STATE, C_WORKERS, C_QUEUE, C_RPS, C_P50, C_P99, C_BATCH,
       C_4XX, C_5XX, C_N };

typedef struct col_s {
  const char *title;
  int width;
  int drop; /* the order columns are dropped in on a narrow screen, first 1; 0: never */
  int right;
} col_t;

static const col_t COLS[C_N] = {
    [C_VERSION] = {"VERSION", 8, 4, 0}, [C_RUNTIME] = {"RUNTIME", 7, 1, 0},
    [C_DEVICE] = {"DEVICE", 7, 2, 0},   [C_STATE] = {"STATE", 9, 0, 0},
    [C_WORKERS] = {"WORKERS", 7, 0, 1}, [C_QUEUE] = {"QUEUE", 8, 9, 1},
    [C_RPS] = {"RPS", 6, 0, 1},         [C_P50] = {"P50 ms", 6, 5, 1},
    [C_P99] = {"P99 ms", 6, 8, 1},      [C_BATCH] = {"BATCH", 5, 3, 1},
    [C_4XX] = {"4XX", 4, 6, 1},         [C_5XX] = {"5XX", 4, 7, 1},
};

#define NAME_MAX_COLS 40
#define NAME_MIN_COLS 12

typedef struct table_s {
  int on[C_N];
  int name_w;
} table_t;

static int name_cols(json_t *list, int utf8, int longest) {
  size_t i, len;
  json_t *m;
  char buf[4 * NAME_MAX_COLS + 8];
  json_array_foreach(list, i, m) {
    const char *s = str(m, "name", &len);
    int w = s ? (int)wk_top_clean(s, len, utf8, buf, sizeof buf) : 1;
    if (w > longest) longest = w;
  }
  return longest;
}

/* Which columns fit: the name gets up to its longest (at most NAME_MAX_COLS); columns go,
 * in COLS' drop order, while the name would get fewer than min(longest, NAME_MIN_COLS). */
static void table_layout(table_t *t, int width, json_t *models, json_t *loads, int utf8) {
  int longest = 4; /* "NAME" */
  if (models) longest = name_cols(models, utf8, longest);
  if (loads) longest = name_cols(loads, utf8, longest);
  if (longest > NAME_MAX_COLS) longest = NAME_MAX_COLS;
  int want = longest < NAME_MIN_COLS ? longest : NAME_MIN_COLS;
  int fixed = 0;
  for (int c = 0; c < C_N; c++) t->on[c] = 1, fixed += 1 + COLS[c].width;
  for (int k = 1; width - fixed < want; k++) {
    int dropped = 0;
    for (int c = 0; c < C_N; c++)
      if (COLS[c].drop == k) t->on[c] = 0, fixed -= 1 + COLS[c].width, dropped = 1;
    if (!dropped) break;
  }
  t->name_w = width - fixed;
  if (t->name_w > longest) t->name_w = longest;
  if (t->name_w < 1) t->name_w = 1;
}

static void table_titles(frame_t *f, const table_t *t) {
  wk_buf_t line = WK_BUF_INIT;
  put_cell(&line, "NAME", t->name_w, 0);
  for (int c = 0; c < C_N; c++) {
    if (!t->on[c]) continue;
    wk_buf_putc(&line, ' ');
    put_cell(&line, COLS[c].title, COLS[c].width, COLS[c].right);
  }
  add_line_as(f, line.data, 1);
  wk_buf_destroy(&line);
}

/* The sample the row shows: `current` (the one in progress) when it holds answers and has
 * run for at least a second (half the interval when that is shorter), so that a sample
 * just begun does not show one request as a rate; else the last completed sample; else
 * `current`, whatever it holds. NULL when there is neither. */
static json_t *row_sample(json_t *m) {
  json_t *cur = obj(m, "current");
  json_t *samples = arr(m, "samples");
  json_t *last = samples && json_array_size(samples) > 0
                     ? json_array_get(samples, json_array_size(samples) - 1)
                     : NULL;
  if (!json_is_object(last)) last = NULL;
  double req = 0, secs = 0, interval_ms = 0, need = 1.0;
  if (num(m, "sample_interval_ms", &interval_ms) && interval_ms > 0 && interval_ms < 2000)
    need = interval_ms / 2000.0;
  if (cur && num(cur, "requests", &req) && req > 0 && num(cur, "seconds", &secs) && secs >= need)
    return cur;
  return last ? last : cur;
}

static void row_model(frame_t *f, const table_t *t, json_t *m) {
  const int utf8 = f->v->utf8;
  char cell[C_N][96], name[4 * NAME_MAX_COLS + 8];
  size_t len = 0;
  const char *s = str(m, "name", &len);
  shown(s, len, 0, utf8, name, sizeof name);
  s = str(m, "version", &len);
  shown(s, len, 0, utf8, cell[C_VERSION], sizeof cell[0] - 1);
  if (boolean(m, "default") == 1) strcat(cell[C_VERSION], "*");
  s = str(m, "runtime", &len);
  shown(s, len, 0, utf8, cell[C_RUNTIME], sizeof cell[0]);
  s = str(m, "device", &len);
  shown(s, len, 0, utf8, cell[C_DEVICE], sizeof cell[0]);
  s = str(m, "state", &len);
  shown(s, len, 0, utf8, cell[C_STATE], sizeof cell[0]);
  double live, min, gone;
  if (num(m, "workers_live", &live) && num(m, "workers_min", &min))
    snprintf(cell[C_WORKERS], sizeof cell[0], "%.0f/%.0f", live, min);
  else if (num(m, "workers_live", &live))
    snprintf(cell[C_WORKERS], sizeof cell[0], "%.0f/-", live);
  else snprintf(cell[C_WORKERS], sizeof cell[0], "-");
  if (num(m, "workers_abandoned", &gone) && gone > 0 && gone < 1e9) {
    size_t at = strlen(cell[C_WORKERS]);
    snprintf(cell[C_WORKERS] + at, sizeof cell[0] - at, "+%.0f", gone);
  }
  json_t *q = obj(m, "queue");
  char depth[32], capacity[32];
  fmt_count(q, "depth", depth, sizeof depth);
  fmt_count(q, "capacity", capacity, sizeof capacity);
  snprintf(cell[C_QUEUE], sizeof cell[0], "%s/%s", depth, capacity);
  json_t *x = row_sample(m);
  fmt_real(x, "rps", cell[C_RPS], sizeof cell[0]);
  fmt_real(x, "p50_ms", cell[C_P50], sizeof cell[0]);
  fmt_real(x, "p99_ms", cell[C_P99], sizeof cell[0]);
  double bm;
  if (num(x, "batch_mean", &bm) && bm >= 0 && bm < 1e9)
    snprintf(cell[C_BATCH], sizeof cell[0], "%.1f", bm);
  else snprintf(cell[C_BATCH], sizeof cell[0], "-");
  fmt_count(x, "client_errors", cell[C_4XX], sizeof cell[0]);
  fmt_count(x, "server_errors", cell[C_5XX], sizeof cell[0]);

  wk_buf_t line = WK_BUF_INIT;
  put_cell(&line, name, t->name_w, 0);
  for (int c = 0; c < C_N; c++) {
    if (!t->on[c]) continue;
    wk_buf_putc(&line, ' ');
    put_cell(&line, cell[c], COLS[c].width, COLS[c].right);
  }
  add_line(f, line.data);
  wk_buf_destroy(&line);
}

/* A registration still loading, or one that failed: its name, its state, and the reason
 * in the rest of the line. */
static void row_load(frame_t *f, const table_t *t, json_t *l) {
  const int utf8 = f->v->utf8;
  char name[4 * NAME_MAX_COLS + 8], state[64], reason[1024];
  size_t len = 0;
  const char *s = str(l, "name", &len);
  shown(s, len, 0, utf8, name, sizeof name);
  s = str(l, "state", &len);
  shown(s, len, 0, utf8, state, sizeof state);
  s = str(l, "reason", &len);
  shown(s && len ? s : NULL, len, 0, utf8, reason, sizeof reason);
  wk_buf_t line = WK_BUF_INIT;
  put_cell(&line, name, t->name_w, 0);
  for (int c = 0; c <= C_STATE; c++) {
    if (!t->on[c]) continue;
    wk_buf_putc(&line, ' ');
    put_cell(&line, c == C_STATE ? state : "-", COLS[c].width, COLS[c].right);
  }
  if (strcmp(reason, "-") != 0) wk_buf_printf(&line, " %s", reason);
  add_line(f, line.data);
  wk_buf_destroy(&line);
}

/* ---- the recent errors ---- */

static void error_line(frame_t *f, json_t *e) {
  const int utf8 = f->v->utf8;
  char when[32] = "-", status[16], model[4 * 24 + 8], version[4 * 12 + 8], msg[2048];
  double t;
  size_t len = 0;
  const char *s;
  if (num(e, "t", &t) && t > 0 && t < 1e15) {
    time_t secs = (time_t)(t / 1000);
    struct tm tm;
    if (localtime_r(&secs, &tm) != NULL) strftime(when, sizeof when, "%H:%M:%S", &tm);
  } else if ((s = str(e, "time", &len)) != NULL && len >= 19) {
    shown(s + 11, 8, 0, utf8, when, sizeof when); /* 2026-12-04T04:07:01Z */
  }
  json_t *st = json_is_object(e) ? json_object_get(e, "status") : NULL;
  if (json_is_null(st)) snprintf(status, sizeof status, "died"); /* a worker process died */
  else fmt_count(e, "status", status, sizeof status);
  s = str(e, "model", &len);
  shown(s, len, 24, utf8, model, sizeof model);
  s = str(e, "version", &len);
  shown(s, len, 12, utf8, version, sizeof version);
  s = str(e, "message", &len);
  shown(s, len, 0, utf8, msg, sizeof msg);
  wk_buf_t line = WK_BUF_INIT;
  wk_buf_printf(&line, "%s  ", when);
  put_cell(&line, status, 4, 0);
  wk_buf_printf(&line, "  %s%s%s  %s", model, version[0] && strcmp(version, "-") ? " " : "",
                strcmp(version, "-") ? version : "", msg);
  add_line(f, line.data);
  wk_buf_destroy(&line);
}

/* ---- frames ---- */

int wk_top_format(const char *text, size_t len, const wk_top_view_t *v, wk_buf_t *out) {
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
  if (!json_is_object(root)) {
    char msg[400];
    if (root == NULL)
      snprintf(msg, sizeof msg, "the answer is not JSON (line %d: %s)", jerr.line, jerr.text);
    else snprintf(msg, sizeof msg, "the answer is JSON but not an object: not wick's /status.json");
    json_decref(root);
    wk_top_format_error(msg, v, out);
    return WK_EFORMAT;
  }
  frame_t f;
  frame_init(&f, v, out);
  add_header(&f, root);

  json_t *models = arr(root, "models"), *loads = arr(root, "loads");
  json_t *errors = arr(root, "recent_errors");
  int rows = 0;
  size_t i;
  json_t *m;
  json_array_foreach(models, i, m) rows += json_is_object(m);
  json_array_foreach(loads, i, m) rows += json_is_object(m);

  table_t t;
  table_layout(&t, f.width, models, loads, v->utf8);
  add_line(&f, "");
  table_titles(&f, &t);
  if (rows == 0) {
    add_line(&f, models ? "(no model registered)" : "(the answer has no model list)");
  } else {
    int fit = room(&f) >= rows ? rows : room(&f) - 1;
    int shown_rows = 0;
    json_array_foreach(models, i, m) {
      if (!json_is_object(m) || shown_rows >= fit) continue;
      row_model(&f, &t, m);
      shown_rows++;
    }
    json_array_foreach(loads, i, m) {
      if (!json_is_object(m) || shown_rows >= fit) continue;
      row_load(&f, &t, m);
      shown_rows++;
    }
    if (shown_rows < rows) {
      char more[96];
      snprintf(more, sizeof more, "... and %d more (a taller window shows them)",
               rows - shown_rows);
      add_line(&f, more);
    }
  }

  size_t n_err = errors ? json_array_size(errors) : 0;
  if (room(&f) >= 3 && n_err > 0) {
    add_line(&f, "");
    char title[96];
    snprintf(title, sizeof title, "RECENT ERRORS, newest first (%zu)", n_err);
    add_line(&f, title);
    json_array_foreach(errors, i, m) {
      if (room(&f) <= 0) break;
      if (json_is_object(m)) error_line(&f, m);
    }
  } else if (room(&f) >= 2 && errors) {
    add_line(&f, "");
    add_line(&f, "no recent errors");
  }
  add_footer(&f);
  json_decref(root);
  return 0;
}

void wk_top_format_error(const char *message, const wk_top_view_t *v, wk_buf_t *out) {
  frame_t f;
  frame_init(&f, v, out);
  char when[32], src[512], line[640], msg[2048];
  clock_piece(v, when, sizeof when);
  shown(v->source, v->source ? strlen(v->source) : 0, 0, v->utf8, src, sizeof src);
  snprintf(line, sizeof line, "%s%swick top  %s", when, when[0] ? "  " : "", v->source ? src : "");
  add_line(&f, line);
  add_line(&f, "");
  shown(message, strlen(message), 0, v->utf8, msg, sizeof msg);
  add_wrapped(&f, msg, 8);
  add_footer(&f);
}
