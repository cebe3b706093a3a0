/* Unit tests for cli/top_format: `wick top`'s frame from a /status.json text, within the
 * width and height it is given, and the cleaning of what the server sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cli/top_format.h"
#include "core/buf.h"
#include "core/error.h"

/* What a server with two versions of mlp, a Python model, a failed load and three recent
 * errors answers (the shape of `curl /status.json` from wick 0.1.0, trimmed). */
static const char STATUS[] =
    "{\"server\": {\"server\": \"wick\", \"version\": \"0.1.0\", \"pid\": 4242,"
    " \"uptime_s\": 3725.5, \"rss_bytes\": 139177984, \"host_memory_bytes\": 25276203008,"
    " \"host_memory_available_bytes\": 24162291712, \"cpus\": 2, \"hostname\": \"box\","
    " \"gpus\": [{\"index\": 0, \"name\": \"NVIDIA H200\", \"memory_used_bytes\": 1073741824,"
    " \"memory_total_bytes\": 150323855360}],"
    " \"registrations_running\": 1, \"model_api_enabled\": true, \"token_authorization\": true},"
    " \"healthy\": true, \"ready\": false,"
    " \"models\": ["
    "  {\"name\": \"mlp\", \"version\": \"1.0\", \"default\": true, \"runtime\": \"native\","
    "   \"device\": \"cpu\", \"state\": \"ready\", \"workers_live\": 2, \"workers_min\": 2,"
    "   \"workers_abandoned\": 0, \"queue\": {\"depth\": 3, \"capacity\": 100},"
    "   \"sample_interval_ms\": 10000,"
    "   \"samples\": [{\"t\": 1, \"seconds\": 10.0, \"requests\": 50, \"rps\": 5.0, \"ok\": 48,"
    "     \"client_errors\": 2, \"server_errors\": 0, \"p50_ms\": 0.25, \"p99_ms\": 20.5,"
    "     \"batch_mean\": 1.0}],"
    "   \"current\": {\"t\": 2, \"seconds\": 4.0, \"requests\": 492, \"rps\": 123.0, \"ok\": 490,"
    "     \"client_errors\": 1, \"server_errors\": 1, \"p50_ms\": 1.234, \"p99_ms\": 1234.5,"
    "     \"batch_mean\": 3.5}},"
    "  {\"name\": \"mlp\", \"version\": \"2.0\", \"default\": false, \"runtime\": \"native\","
    "   \"device\": \"cuda:0\", \"state\": \"unhealthy\", \"workers_live\": 1, \"workers_min\": 2,"
    "   \"workers_abandoned\": 3, \"queue\": {\"depth\": 0, \"capacity\": 10},"
    "   \"sample_interval_ms\": 10000,"
    "   \"samples\": [{\"t\": 1, \"seconds\": 10.0, \"requests\": 7, \"rps\": 0.7, \"ok\": 0,"
    "     \"client_errors\": 0, \"server_errors\": 7, \"p50_ms\": 150.0, \"p99_ms\": 999.0,"
    "     \"batch_mean\": 2.0}],"
    "   \"current\": {\"t\": 2, \"seconds\": 4.0, \"requests\": 0, \"rps\": 0.0, \"ok\": 0,"
    "     \"client_errors\": 0, \"server_errors\": 0, \"p50_ms\": null, \"p99_ms\": null,"
    "     \"batch_mean\": null}},"
    "  {\"name\": \"echo\", \"version\": \"1\", \"default\": true, \"runtime\": \"python\","
    "   \"device\": \"cpu\", \"state\": \"ready\", \"workers_live\": 1, \"workers_min\": 1,"
    "   \"queue\": {\"depth\": 0, \"capacity\": 100}, \"samples\": [],"
    "   \"current\": {\"seconds\": 0.5, \"requests\": 0, \"rps\": 0.0, \"p50_ms\": null}}],"
    " \"loads\": [{\"name\": \"junk\", \"url\": \"junk.mar\", \"state\": \"failed\","
    "   \"reason\": \"junk.mar is not a model archive\", \"since\": 5}],"
    " \"recent_errors\": ["
    "  {\"t\": 1796357225000, \"time\": \"2026-12-04T04:07:05Z\", \"model\": \"junk.mar\","
    "   \"version\": \"\", \"status\": 400, \"message\": \"junk.mar is not a model archive\"},"
    "  {\"t\": 1796357224000, \"time\": \"2026-12-04T04:07:04Z\", \"model\": \"echo\","
    "   \"version\": \"1\", \"status\": null, \"message\": \"worker 9000 died: signal 9\"},"
    "  {\"t\": 1796357221000, \"time\": \"2026-12-04T04:07:01Z\", \"model\": \"mlp\","
    "   \"version\": \"1.0\", \"status\": 400, \"message\": \"input 0 has shape [1,2]\\nexpected"
    " [N,16]\"}]}";

static int setup_tz(void **state) {
  (void)state;
  setenv("TZ", "UTC", 1);
  tzset();
  return 0;
}

/* Columns of one line: UTF-8 continuation bytes and CSI sequences take none. */
static int line_cols(const char *s, size_t n) {
  int c = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\x1b' && i + 1 < n && s[i + 1] == '[') {
      for (i += 2; i < n && !(s[i] >= 0x40 && s[i] <= 0x7e); i++) {
      }
      continue;
    }
    if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
  }
  return c;
}

/* Checks the frame's bounds; returns its line count. */
static int check_bounds(const wk_buf_t *b, int width, int height) {
  int lines = 0;
  const char *p = b->data;
  assert_non_null(p);
  while (*p) {
    const char *nl = strchr(p, '\n');
    assert_non_null(nl); /* every line ends in '\n' */
    int cols = line_cols(p, (size_t)(nl - p));
    if (cols > width) fail_msg("line %d is %d columns wide (width %d): %.*s", lines, cols, width,
                               (int)(nl - p), p);
    lines++;
    p = nl + 1;
  }
  if (height > 0) assert_true(lines <= height);
  return lines;
}

/* Splits a line into its space-separated fields (in place). */
static int fields(char *line, char **out, int max) {
  int n = 0;
  for (char *t = strtok(line, " "); t && n < max; t = strtok(NULL, " ")) out[n++] = t;
  return n;
}

/* The line of the frame whose first fields are first (and second, when not NULL), copied
 * into out; 0 when there is none. */
static int find_row(const wk_buf_t *b, const char *first, const char *second, char *out,
                    size_t cap) {
  const char *p = b->data;
  while (p && *p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    char copy[1024], *f[4];
    snprintf(copy, sizeof copy, "%.*s", (int)len, p);
    int n = fields(copy, f, 4);
    if (n >= 1 && strcmp(f[0], first) == 0 &&
        (second == NULL || (n >= 2 && strcmp(f[1], second) == 0))) {
      snprintf(out, cap, "%.*s", (int)len, p);
      return 1;
    }
    p += len + (nl ? 1 : 0);
  }
  return 0;
}

static void test_clean_strips_control_characters(void **state) {
  (void)state;
  char out[64];
  const char evil[] = "ev\x1b[2Jil\a\x7f\x9b" "1m";
  size_t cols = wk_top_clean(evil, sizeof evil - 1, 1, out, sizeof out);
  assert_string_equal(out, "ev?[2Jil???1m");
  assert_int_equal(cols, 13);
  /* C1 controls spelled in UTF-8 (U+009B, CSI) and bidi overrides are not letters */
  const char c1[] = "a\xc2\x9b" "2Jb\xe2\x80\xae" "c";
  wk_top_clean(c1, sizeof c1 - 1, 1, out, sizeof out);
  assert_string_equal(out, "a?2Jb?c");
  /* tab, CR and LF become spaces; a NUL inside the text is shown, not an end */
  const char nl[] = "line1\nline2\r\tx\0y";
  wk_top_clean(nl, sizeof nl - 1, 1, out, sizeof out);
  assert_string_equal(out, "line1 line2  x?y");
}

static void test_clean_keeps_narrow_letters_in_utf8_only(void **state) {
  (void)state;
  char out[64];
  const char text[] = "mod\xc3\xa8le-\xce\xb1\xd0\x96-\xe4\xb8\xad-\xf0\x9f\x99\x82";
  /* è, α and Ж are one column each; 中 (two columns) and an emoji become '?' */
  size_t cols = wk_top_clean(text, sizeof text - 1, 1, out, sizeof out);
  assert_string_equal(out, "mod\xc3\xa8le-\xce\xb1\xd0\x96-?-?");
  assert_int_equal(cols, 13);
  cols = wk_top_clean(text, sizeof text - 1, 0, out, sizeof out);
  assert_string_equal(out, "mod?le-?" "?-?-?"); /* split: no trigraph */
  assert_int_equal(cols, 13);
  /* bytes that are not UTF-8: each one a '?' (a lone continuation, an overlong '/', a cut
   * sequence at the end) */
  const char bad[] = "\x80x\xc0\xafy\xe4\xb8";
  wk_top_clean(bad, sizeof bad - 1, 1, out, sizeof out);
  assert_string_equal(out, "?x??y??");
}

static void test_clean_never_overflows_nor_cuts_a_character(void **state) {
  (void)state;
  char out[6];
  const char text[] = "ab\xc3\xa8\xc3\xa8z";
  size_t cols = wk_top_clean(text, sizeof text - 1, 1, out, sizeof out);
  assert_string_equal(out, "ab\xc3\xa8"); /* a second è would need 7 bytes with the NUL */
  assert_int_equal(cols, 3);
  char one[1];
  assert_int_equal(wk_top_clean("abc", 3, 1, one, sizeof one), 0);
  assert_int_equal(one[0], '\0');
}

static void test_frame_shows_the_server_and_each_version(void **state) {
  (void)state;
  wk_buf_t b = WK_BUF_INIT;
  wk_top_view_t v = {.width = 140, .height = 40, .now = 1796357226};
  assert_int_equal(wk_top_format(STATUS, sizeof STATUS - 1, &v, &b), 0);
  check_bounds(&b, 140, 40);
  assert_null(strchr(b.data, '\x1b'));
  /* the header: clock, version, uptime, health, registrations, memory, GPUs, tokens */
  assert_non_null(strstr(b.data, "04:07:06  wick 0.1.0 on box  up 1h02m  healthy  NOT READY"));
  assert_non_null(strstr(b.data, "registering 1"));
  assert_non_null(strstr(b.data, "pid 4242"));
  assert_non_null(strstr(b.data, "rss 132.7M"));
  assert_non_null(strstr(b.data, "host mem 22.5G free of 23.5G"));
  assert_non_null(strstr(b.data, "gpu0 NVIDIA H200 1.0G/140.0G"));
  assert_non_null(strstr(b.data, "tokens on"));

  char line[512], *f[20];
  assert_true(find_row(&b, "NAME", NULL, line, sizeof line));
  const char *titles[] = {"NAME", "VERSION", "RUNTIME", "DEVICE", "STATE", "WORKERS", "QUEUE",
                          "RPS", "P50", "ms", "P99", "ms", "BATCH", "4XX", "5XX"};
  assert_int_equal(fields(line, f, 20), 15);
  for (int i = 0; i < 15; i++) assert_string_equal(f[i], titles[i]);

  /* mlp 1.0: the current sample has run 4 s with answers, so it is the one shown */
  assert_true(find_row(&b, "mlp", "1.0*", line, sizeof line));
  const char *v1[] = {"mlp", "1.0*", "native", "cpu", "ready", "2/2", "3/100",
                      "123.0", "1.23", "1234", "3.5", "1", "1"};
  assert_int_equal(fields(line, f, 20), 13);
  for (int i = 0; i < 13; i++) assert_string_equal(f[i], v1[i]);
  /* mlp 2.0: nothing in the current sample: the last completed one; 3 abandoned workers */
  assert_true(find_row(&b, "mlp", "2.0", line, sizeof line));
  const char *v2[] = {"mlp", "2.0", "native", "cuda:0", "unhealthy", "1/2+3", "0/10",
                      "0.70", "150.0", "999.0", "2.0", "0", "7"};
  assert_int_equal(fields(line, f, 20), 13);
  for (int i = 0; i < 13; i++) assert_string_equal(f[i], v2[i]);
  /* echo: no sample completed yet: the current one; missing figures are "-" */
  assert_true(find_row(&b, "echo", NULL, line, sizeof line));
  const char *v3[] = {"echo", "1*", "python", "cpu", "ready", "1/1", "0/100",
                      "0.00", "-", "-", "-", "-", "-"};
  assert_int_equal(fields(line, f, 20), 13);
  for (int i = 0; i < 13; i++) assert_string_equal(f[i], v3[i]);
  /* a failed load: its state, then why */
  assert_true(find_row(&b, "junk", NULL, line, sizeof line));
  assert_non_null(strstr(line, "failed    junk.mar is not a model archive"));

  /* the recent errors, newest first, one line each; a dead worker's null status */
  assert_non_null(strstr(b.data,
                         "RECENT ERRORS, newest first (3)\n"
                         "04:07:05  400   junk.mar  junk.mar is not a model archive\n"
                         "04:07:04  died  echo 1  worker 9000 died: signal 9\n"
                         "04:07:01  400   mlp 1.0  input 0 has shape [1,2] expected [N,16]\n"));
  wk_buf_destroy(&b);
}

static void test_narrow_screens_drop_columns_and_cut_lines(void **state) {
  (void)state;
  wk_buf_t b = WK_BUF_INIT;
  wk_top_view_t v = {.width = 80, .height = 24};
  assert_int_equal(wk_top_format(STATUS, sizeof STATUS - 1, &v, &b), 0);
  check_bounds(&b, 80, 24);
  char line[512], *f[20];
  assert_true(find_row(&b, "NAME", NULL, line, sizeof line));
  const char *titles[] = {"NAME", "VERSION", "STATE", "WORKERS", "QUEUE", "RPS", "P50", "ms",
                          "P99", "ms", "BATCH", "4XX", "5XX"};
  assert_int_equal(fields(line, f, 20), 13); /* RUNTIME and DEVICE went first */
  for (int i = 0; i < 13; i++) assert_string_equal(f[i], titles[i]);
  v.width = 60; /* then BATCH, VERSION, P50 */
  assert_int_equal(wk_top_format(STATUS, sizeof STATUS - 1, &v, &b), 0);
  check_bounds(&b, 60, 24);
  assert_true(find_row(&b, "NAME", NULL, line, sizeof line));
  const char *titles60[] = {"NAME", "STATE", "WORKERS", "QUEUE", "RPS", "P99", "ms", "4XX", "5XX"};
  assert_int_equal(fields(line, f, 20), 9);
  for (int i = 0; i < 9; i++) assert_string_equal(f[i], titles60[i]);
  /* the long error message is cut at the width with a '+' */
  assert_non_null(strstr(b.data, "04:07:01  400   mlp 1.0  input 0 has shape [1,2] expected [+\n"));
  for (int w = 1; w <= 140; w++) {
    for (int h = 0; h <= 30; h += 3) {
      wk_top_view_t vv = {.width = w, .height = h, .now = 1, .footer = "q quit  r refresh"};
      assert_int_equal(wk_top_format(STATUS, sizeof STATUS - 1, &vv, &b), 0);
      int lines = check_bounds(&b, w, h);
      if (h > 0) {
        assert_int_equal(lines, h); /* the footer sits on the last line */
        const char *end = b.data + b.len - 1, *start = end;
        while (start > b.data && start[-1] != '\n') start--;
        assert_int_equal(*start, w > 1 ? 'q' : '+'); /* cut to one column: its '+' */
      }
    }
  }
  wk_buf_destroy(&b);
}

static void test_a_short_screen_says_how_many_rows_it_hides(void **state) {
  (void)state;
  wk_buf_t b = WK_BUF_INIT;
  /* header 2 lines at width 100 + blank + titles leave 2 lines: one row and the notice */
  wk_top_view_t v = {.width = 100, .height = 6};
  assert_int_equal(wk_top_format(STATUS, sizeof STATUS - 1, &v, &b), 0);
  assert_int_equal(check_bounds(&b, 100, 6), 6);
  assert_non_null(strstr(b.data, "... and 3 more (a taller window shows them)\n"));
  assert_null(strstr(b.data, "RECENT ERRORS"));
  /* tall enough for the rows and two of the errors */
  v.height = 12;
  assert_int_equal(wk_top_format(STATUS, sizeof STATUS - 1, &v, &b), 0);
  assert_int_equal(check_bounds(&b, 100, 12), 12);
  assert_non_null(strstr(b.data, "junk.mar is not a model archive\n"));
  assert_non_null(strstr(b.data, "worker 9000 died"));
  assert_null(strstr(b.data, "[N,16]"));
  wk_buf_destroy(&b);
}

static void test_escape_sequences_from_the_server_are_not_written(void **state) {
  (void)state;
  const char text[] =
      "{\"server\": {\"version\": \"0.1\\u001b]0;owned\\u0007\", \"hostname\": \"h\\u001bc\","
      " \"gpus\": [{\"index\": 0, \"name\": \"G\\u009b2J\"}]},"
      " \"models\": [{\"name\": \"x\\u001b[1;1HOWNED\", \"version\": \"1\\u001b[2J\","
      "  \"state\": \"\\u001b[31mready\", \"runtime\": \"\\r\", \"device\": \"\\b\"}],"
      " \"loads\": [{\"name\": \"\\u001b[2Jbad\", \"state\": \"failed\","
      "  \"reason\": \"\\u001b[2K\"}],"
      " \"recent_errors\": [{\"model\": \"\\u001b[H\", \"version\": \"\\u001b\","
      "  \"message\": \"Model not found at: \\u001b[2Jnope.mar\\u0000\\u001b[2J\"}]}";
  wk_buf_t b = WK_BUF_INIT;
  for (int ansi = 0; ansi <= 1; ansi++) {
    wk_top_view_t v = {.width = 200, .height = 0, .utf8 = 1, .ansi = ansi};
    assert_int_equal(wk_top_format(text, sizeof text - 1, &v, &b), 0);
    for (size_t i = 0; i < b.len; i++) {
      unsigned char c = (unsigned char)b.data[i];
      if (ansi && c == 0x1b) { /* only the reverse video of the titles */
        assert_true(memcmp(b.data + i, "\x1b[7m", 4) == 0 || memcmp(b.data + i, "\x1b[0m", 4) == 0);
        continue;
      }
      assert_true(c == '\n' || (c >= 0x20 && c < 0x7f));
    }
    assert_non_null(strstr(b.data, "x?[1;1HOWNED"));
    assert_non_null(strstr(b.data, "Model not found at: ?[2Jnope.mar??[2J"));
    assert_non_null(strstr(b.data, "wick 0.1?]0;owned? on h?c"));
    assert_non_null(strstr(b.data, "gpu0 G?2J"));
  }
  wk_buf_destroy(&b);
}

static void test_unexpected_json_never_crashes(void **state) {
  (void)state;
  static const char *const texts[] = {
      "{}",
      "{\"server\": 1, \"models\": {}, \"loads\": 5, \"recent_errors\": \"x\", \"healthy\": 1}",
      "{\"models\": [1, \"x\", null, [], {\"name\": 5, \"version\": [], \"default\": \"yes\","
      " \"queue\": [], \"samples\": {}, \"current\": [], \"workers_live\": \"2\"}]}",
      "{\"models\": [{\"samples\": [1, null], \"current\": {\"requests\": 1e308, \"seconds\": -1,"
      " \"rps\": 1e300, \"p50_ms\": -5, \"p99_ms\": \"fast\", \"batch_mean\": 1e99}}],"
      " \"server\": {\"uptime_s\": -3, \"rss_bytes\": 1e300, \"gpus\": [1, {\"index\": \"a\"}]},"
      " \"recent_errors\": [1, {\"t\": -1, \"time\": \"short\"}, {\"t\": 1e300}]}",
  };
  wk_buf_t b = WK_BUF_INIT;
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
    wk_top_view_t v = {.width = 100, .height = 30};
    assert_int_equal(wk_top_format(texts[i], strlen(texts[i]), &v, &b), 0);
    check_bounds(&b, 100, 30);
  }
  /* {}: every figure a "-" */
  wk_top_view_t v = {.width = 120};
  wk_top_format("{}", 2, &v, &b);
  assert_non_null(strstr(b.data, "wick - "));
  assert_non_null(strstr(b.data, "up -  health -  ready -  registering -  pid -  rss -"));
  assert_non_null(strstr(b.data, "(the answer has no model list)"));
  /* not an object: an error frame and WK_EFORMAT */
  static const char *const bad[] = {"", "not json", "[1,2]", "\"x\"", "{\"models\": [", "null"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    wk_top_view_t vv = {.width = 60, .height = 5, .source = "http://127.0.0.1:8081"};
    assert_int_equal(wk_top_format(bad[i], strlen(bad[i]), &vv, &b), WK_EFORMAT);
    check_bounds(&b, 60, 5);
    assert_non_null(strstr(b.data, "wick top  http://127.0.0.1:8081"));
  }
  /* every prefix of a real answer: an error frame or a frame, within bounds */
  for (size_t n = 0; n < sizeof STATUS - 1; n++) {
    wk_top_view_t vv = {.width = 90, .height = 20};
    int rc = wk_top_format(STATUS, n, &vv, &b);
    assert_true(rc == 0 || rc == WK_EFORMAT);
    check_bounds(&b, 90, 20);
  }
  wk_buf_destroy(&b);
}

static void test_error_frames_wrap_within_the_screen(void **state) {
  (void)state;
  wk_buf_t b = WK_BUF_INIT;
  const char *msg = "401 from http://127.0.0.1:8081: the management key is needed (token "
                    "authorization is on): --key-file key_file.json (written where wick serve "
                    "runs), --key KEY or WICK_MANAGEMENT_KEY; trying again every 2s";
  wk_top_view_t v = {.width = 50, .height = 10, .source = "http://127.0.0.1:8081",
                     .footer = "q quit"};
  wk_top_format_error(msg, &v, &b);
  assert_int_equal(check_bounds(&b, 50, 10), 10);
  assert_non_null(strstr(b.data, "401 from http://127.0.0.1:8081: the management key\nis needed"));
  assert_non_null(strstr(b.data, "\nq quit\n"));
  /* an escape in the message is shown, not sent */
  wk_top_format_error("refused \x1b[2J", &v, &b);
  assert_null(strchr(b.data, '\x1b'));
  assert_non_null(strstr(b.data, "refused ?[2J"));
  wk_buf_destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_clean_strips_control_characters),
      cmocka_unit_test(test_clean_keeps_narrow_letters_in_utf8_only),
      cmocka_unit_test(test_clean_never_overflows_nor_cuts_a_character),
      cmocka_unit_test(test_frame_shows_the_server_and_each_version),
      cmocka_unit_test(test_narrow_screens_drop_columns_and_cut_lines),
      cmocka_unit_test(test_a_short_screen_says_how_many_rows_it_hides),
      cmocka_unit_test(test_escape_sequences_from_the_server_are_not_written),
      cmocka_unit_test(test_unexpected_json_never_crashes),
      cmocka_unit_test(test_error_frames_wrap_within_the_screen),
  };
  return cmocka_run_group_tests(tests, setup_tz, NULL);
}
