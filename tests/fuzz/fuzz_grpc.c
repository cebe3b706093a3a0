/* Fuzz target: gRPC calls through the real gRPC servers ([12] part 5). The first call
 * starts, in this process, the inference gRPC port (TorchServe's inference service, KServe
 * v2 and health) over wick's API with a Python echo model, and the management gRPC port
 * over an API with no model (so a fuzzed ScaleWorker or UnregisterModel cannot take the
 * echo model away or start hundreds of workers). Each input is one byte that picks the
 * method (of every method both ports serve) and whether the bytes after it are sent as one
 * length-prefixed message (the protobuf decoders and the methods) or as the request body
 * as it is (gRPC's framing: lengths that lie, several messages, compression flags); an
 * nghttp2 client sends the call on a fresh connection and reads until the stream closes.
 * A crash, a sanitizer report or a hang in any server thread is a finding. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "api/grpc_api.h"
#include "api/grpc_v2.h"
#include "echo_api.h"

typedef struct {
  const char *path;
  int port; /* 0 inference, 1 management */
} target_t;

static target_t *g_targets;
static size_t g_n;
static int g_ports[2];
static int g_show; /* FUZZ_GRPC_SHOW=1: each call's method, grpc-status and message on stderr */

static wk_grpc_server_t *start_port(wk_api_t *api, const wk_grpc_method_t *methods, size_t n) {
  wk_grpc_opts_t o = {.name = "gRPC fuzz", .host = "127.0.0.1", .port = 0, .max_request = 65536,
                      .methods = methods, .n_methods = n, .ud = api};
  wk_grpc_server_t *s = NULL;
  wk_err_t err = {{0}};
  if (wk_grpc_server_start(&o, &s, &err) != 0) {
    fprintf(stderr, "fuzz_grpc: %s\n", err.msg);
    abort();
  }
  return s;
}

static void start(void) {
  static wk_api_t echo_api, empty_api;
  g_show = getenv("FUZZ_GRPC_SHOW") != NULL;
  fuzz_echo_api(&echo_api, 1);
  fuzz_echo_api(&empty_api, 0);
  size_t ni = wk_grpc_inference_n_methods, nv = wk_grpc_v2_n_methods, nm = wk_grpc_management_n_methods;
  wk_grpc_method_t *inference = malloc((ni + nv) * sizeof *inference);
  g_targets = malloc((ni + nv + nm) * sizeof *g_targets);
  if (inference == NULL || g_targets == NULL) abort();
  memcpy(inference, wk_grpc_inference_methods, ni * sizeof *inference);
  memcpy(inference + ni, wk_grpc_v2_methods, nv * sizeof *inference);
  for (size_t i = 0; i < ni + nv; i++) g_targets[g_n++] = (target_t){inference[i].path, 0};
  for (size_t i = 0; i < nm; i++) g_targets[g_n++] = (target_t){wk_grpc_management_methods[i].path, 1};
  g_ports[0] = wk_grpc_server_port(start_port(&echo_api, inference, ni + nv));
  g_ports[1] = wk_grpc_server_port(start_port(&empty_api, wk_grpc_management_methods, nm));
  free(inference); /* the servers keep copies; they live as long as the process */
}

/* ---- a one-call HTTP/2 client ---- */

typedef struct {
  const uint8_t *body;
  size_t len, off;
  int closed;
  char status[8], message[200];
} client_t;

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
  (void)session, (void)frame, (void)flags;
  client_t *c = user_data;
  if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
    snprintf(c->status, sizeof c->status, "%.*s", (int)valuelen, (const char *)value);
  else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0)
    snprintf(c->message, sizeof c->message, "%.*s", (int)valuelen, (const char *)value);
  return 0;
}

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
  (void)session, (void)stream_id, (void)source;
  client_t *c = user_data;
  size_t n = c->len - c->off;
  if (n > length) n = length;
  memcpy(buf, c->body + c->off, n);
  c->off += n;
  if (c->off == c->len) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static int on_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
  (void)session, (void)stream_id, (void)error_code;
  ((client_t *)user_data)->closed = 1;
  return 0;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}

static void call(int port, const char *path, const uint8_t *body, size_t len) {
  /* a health Watch answers until its deadline: a short one, or each costs 5 s */
  size_t pl = strlen(path);
  int streaming = pl >= 6 && strcmp(path + pl - 6, "/Watch") == 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {.tv_sec = 2};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  /* as gRPC's own clients do: without it each call's second small write waits ~40 ms for
   * the server's delayed ACK (Nagle), and the fuzzer ran 20 calls a second */
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  client_t c = {.body = body, .len = len};
  nghttp2_session_callbacks *cb;
  nghttp2_session *s = NULL;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && nghttp2_session_client_new(&s, cb, &c) == 0;
  nghttp2_session_callbacks_del(cb);
  if (ok) {
    nghttp2_nv hdrs[] = {NV(":method", "POST"), NV(":scheme", "http"), NV(":path", path),
                         NV(":authority", "127.0.0.1"), NV("content-type", "application/grpc"),
                         NV("te", "trailers"), NV("grpc-timeout", streaming ? "20m" : "5S")};
    nghttp2_data_provider prd = {.read_callback = read_body};
    ok = nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0) == 0 &&
         nghttp2_submit_request(s, NULL, hdrs, sizeof hdrs / sizeof hdrs[0], &prd, NULL) > 0;
  }
  uint8_t in[1 << 14];
  for (int rounds = 0; ok && !c.closed && rounds < 1000; rounds++) {
    const uint8_t *out;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(s, &out)) > 0)
      if (send(fd, out, (size_t)n, MSG_NOSIGNAL) != n) ok = 0;
    if (!ok || n < 0 || c.closed) break; /* closed while sending: a reset stream */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 6000) != 1) break; /* the server's deadline answer comes within 5 s */
    ssize_t got = recv(fd, in, sizeof in, 0);
    if (got <= 0 || nghttp2_session_mem_recv(s, in, (size_t)got) < 0) break;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (g_show)
    fprintf(stderr, "fuzz_grpc: %s -> %s %s (%ld ms)\n", path, c.closed ? c.status : "(no answer)", c.message,
            (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
  if (s) nghttp2_session_del(s);
  close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int started;
  if (!started) {
    start();
    started = 1;
  }
  if (size < 1 || size > 70000) return 0;
  const target_t *t = &g_targets[(data[0] & 0x7f) % g_n];
  if (data[0] & 0x80) { /* the body as it is: the framing is fuzzed too */
    call(g_ports[t->port], t->path, data + 1, size - 1);
    return 0;
  }
  uint8_t *framed = malloc(size + 4);
  if (framed == NULL) return 0;
  uint32_t be = htonl((uint32_t)(size - 1));
  framed[0] = 0;
  memcpy(framed + 1, &be, 4);
  memcpy(framed + 5, data + 1, size - 1);
  call(g_ports[t->port], t->path, framed, size + 4);
  free(framed);
  return 0;
}
