/* Fuzz target: whole HTTP requests through the real server ([11] part 12). The first call
 * starts wick's three APIs in this process (libmicrohttpd on loopback ports, the routers,
 * the management API with the model API on and an empty model store, and a Python echo
 * model, so predictions, KServe v1/v2 bodies and forms reach a real handler). Each input is
 * one byte that picks the port, then the raw bytes sent on a fresh connection, and the first
 * reply is read (see exchange). A crash, a sanitizer report or a hang in any server thread
 * is a finding. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "echo_api.h"

static int g_ports[3];
static int g_show; /* FUZZ_HTTP_SHOW=1: each reply's status line on stderr */

static void start(void) {
  static wk_api_t api;
  g_show = getenv("FUZZ_HTTP_SHOW") != NULL;
  fuzz_echo_api(&api, 1);
  wk_err_t err = {{0}};
  wk_http_handler_fn handlers[3] = {wk_api_inference, wk_api_management, wk_api_metrics};
  static const char *names[3] = {"inference", "management", "metrics"};
  for (int i = 0; i < 3; i++) {
    wk_http_opts_t h = {.name = names[i], .host = "127.0.0.1", .port = 0, .max_body = 65536,
                        .threads = 2, .idle_timeout_s = 5, .request_timeout_s = 5,
                        .handler = handlers[i], .ud = &api};
    wk_http_server_t *srv;
    if (wk_http_server_start(&h, &srv, &err) != 0) {
      fprintf(stderr, "fuzz_http: %s\n", err.msg);
      abort();
    }
    api.servers[i] = srv;
    g_ports[i] = wk_http_server_port(srv);
  }
  /* the servers live as long as the process: the fuzzer never returns */
}

/* Reads one reply: its head, then Content-Length bytes, a chunked body up to its last
 * chunk, or (neither) until the server closes. Gives up at the socket's timeout. */
static void read_reply(int fd) {
  static char buf[1 << 16];
  size_t len = 0;
  char *body = NULL;
  for (;;) {
    if (len == sizeof buf) return;
    ssize_t n = recv(fd, buf + len, sizeof buf - len, 0);
    if (n <= 0) return;
    len += (size_t)n;
    if (body == NULL) {
      char *end = memmem(buf, len, "\r\n\r\n", 4);
      if (end == NULL) continue;
      body = end + 4;
      if (g_show) fprintf(stderr, "fuzz_http: %.*s\n", (int)strcspn(buf, "\r"), buf);
    }
    size_t head = (size_t)(body - buf), have = len - head;
    const char *cl = memmem(buf, head, "Content-Length: ", 16);
    if (cl != NULL) {
      if (have >= strtoul(cl + 16, NULL, 10)) return;
    } else if (memmem(buf, head, "chunked", 7) != NULL) {
      if (memmem(body, have, "0\r\n\r\n", 5) != NULL) return;
    }
  }
}

/* Sends the input on a fresh connection. A complete request is answered within
 * milliseconds (the echo model included) and its reply is read; when nothing comes within
 * 10 ms the request is taken as incomplete and the client half-closes, so that the server
 * sees the end of the stream (a half-closed client has gone: a queued prediction of its
 * would be dropped, as nginx does). */
static void exchange(int port, const uint8_t *data, size_t size) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {.tv_sec = 2};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    size_t off = 0;
    while (off < size) {
      ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += (size_t)n;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10) != 1) shutdown(fd, SHUT_WR);
    read_reply(fd);
  }
  close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int started;
  if (!started) {
    start();
    started = 1;
  }
  if (size < 1) return 0;
  exchange(g_ports[data[0] % 3], data + 1, size - 1);
  return 0;
}
