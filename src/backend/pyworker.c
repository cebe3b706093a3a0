/* A Python worker process: posix_spawn of `python3 -m wick_worker --sock-fd 3` with one
 * end of a socketpair as fd 3 and a pipe as stdout/stderr, a reader thread that logs
 * the pipe, and blocking frame I/O with poll() deadlines. */
#include "backend/pyworker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/forkserver.h"
#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/spawn.h"

extern char **environ;

struct wk_pyworker_s {
  pid_t pid;
  int sock;
  int out_fd; /* read end of the stdout/stderr pipe; owned by the reader thread */
  pthread_t reader;
  int reader_started;
  pthread_mutex_t mu; /* guards tail, reader_done */
  pthread_cond_t cv;
  char tail[WK_PYWORKER_TAIL_BYTES];
  size_t tail_len;
  int reader_done;
  int reaped, status, broken;
  char tag[160];
  void (*on_metric)(void *ud, const char *json, size_t len);
  void *metric_ud;
  wk_buf_t rbuf; /* bytes read from the socket and not parsed yet */
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the log reader thread ---- */

static void tail_add(wk_pyworker_t *w, const char *p, size_t n) {
  pthread_mutex_lock(&w->mu);
  if (n >= sizeof w->tail) {
    memcpy(w->tail, p + n - sizeof w->tail, sizeof w->tail);
    w->tail_len = sizeof w->tail;
  } else {
    size_t keep = w->tail_len + n > sizeof w->tail ? sizeof w->tail - n : w->tail_len;
    memmove(w->tail, w->tail + w->tail_len - keep, keep);
    memcpy(w->tail + keep, p, n);
    w->tail_len = keep + n;
  }
  pthread_mutex_unlock(&w->mu);
}

static void log_line(wk_pyworker_t *w, const char *line, size_t n) {
  if (n > 0 && line[n - 1] == '\r') n--;
  int metric = n > 10 && strncmp(line, "[METRICS] ", 10) == 0;
  if (metric && w->on_metric) w->on_metric(w->metric_ud, line + 10, n - 10);
  wk_log(metric ? WK_LOG_DEBUG : WK_LOG_INFO, "[%s] %.*s", w->tag, (int)n, line);
}

static void *reader_main(void *arg) {
  wk_pyworker_t *w = arg;
  char buf[8192];
  size_t have = 0;
  for (;;) {
    ssize_t r = read(w->out_fd, buf + have, sizeof buf - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    tail_add(w, buf + have, (size_t)r);
    have += (size_t)r;
    size_t start = 0;
    for (size_t i = 0; i < have; i++) {
      if (buf[i] == '\n') {
        log_line(w, buf + start, i - start);
        start = i + 1;
      }
    }
    if (start == 0 && have == sizeof buf) { /* a very long line: log it in pieces */
      log_line(w, buf, have);
      start = have;
    }
    memmove(buf, buf + start, have - start);
    have -= start;
  }
  if (have > 0) log_line(w, buf, have);
  pthread_mutex_lock(&w->mu);
  w->reader_done = 1;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* Waits up to ms for the reader to reach EOF, so that the tail is complete. */
static void wait_reader(wk_pyworker_t *w, int ms) {
  struct timespec ts;
  wk_realtime_in((int64_t)ms * 1000, &ts);
  pthread_mutex_lock(&w->mu);
  while (!w->reader_done)
    if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0) break;
  pthread_mutex_unlock(&w->mu);
}

int wk_pyworker_log_tail(wk_pyworker_t *w, wk_buf_t *b) {
  pthread_mutex_lock(&w->mu);
  int rc = wk_buf_append(b, w->tail, w->tail_len);
  pthread_mutex_unlock(&w->mu);
  return rc;
}

/* ---- process ---- */

/* Waits up to ms for the process to exit; 1 when it is reaped. */
static int reap(wk_pyworker_t *w, int ms) {
  int64_t end = now_ms() + ms;
  while (!w->reaped) {
    int st;
    pid_t r = waitpid(w->pid, &st, WNOHANG);
    if (r == w->pid || (r < 0 && errno == ECHILD)) {
      w->reaped = 1;
      w->status = r == w->pid ? st : -1;
      break;
    }
    if (now_ms() >= end) break;
    struct timespec d = {0, 10 * 1000000L};
    nanosleep(&d, NULL);
  }
  return w->reaped;
}

static void describe_status(int st, char *out, size_t n) {
  if (st == -1) snprintf(out, n, "exited");
  else if (WIFEXITED(st)) snprintf(out, n, "exited with status %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st)) snprintf(out, n, "was killed by signal %d", WTERMSIG(st));
  else snprintf(out, n, "stopped");
}

static char **build_env(const wk_pyworker_opts_t *o) {
  size_t ne = 0, nx = 0;
  while (environ[ne]) ne++;
  if (o->env)
    while (o->env[nx]) nx++;
  char **env = calloc(ne + nx + 5, sizeof *env);
  if (env == NULL) return NULL;
  size_t k = 0;
  /* ours first: getenv-style lookups take the first match */
  for (size_t i = 0; i < nx; i++) env[k++] = (char *)o->env[i];
  if (o->pythonpath != NULL) {
    size_t n = strlen(o->pythonpath) + 12;
    char *pp = malloc(n);
    if (pp == NULL) {
      free(env);
      return NULL;
    }
    snprintf(pp, n, "PYTHONPATH=%s", o->pythonpath);
    env[k++] = pp;
  }
  env[k++] = (char *)"PYTHONUNBUFFERED=1";
  /* an isolated import path ([11] part 7): `python -m` would put the working directory
   * first on sys.path, and the user's site-packages are not the model's; what a worker
   * imports is the model folder (the loader puts it first), wick's runtime, the model's
   * own requirements (PYTHONPATH above) and the interpreter's site-packages */
  env[k++] = (char *)"PYTHONSAFEPATH=1";
  env[k++] = (char *)"PYTHONNOUSERSITE=1";
  for (size_t i = 0; i < ne; i++) {
    const char *eq = strchr(environ[i], '=');
    size_t kl = eq ? (size_t)(eq - environ[i]) + 1 : strlen(environ[i]);
    int dup = 0;
    for (size_t j = 0; j < k && !dup; j++) dup = strncmp(env[j], environ[i], kl) == 0;
    if (!dup) env[k++] = environ[i];
  }
  env[k] = NULL;
  return env;
}

static void free_env(char **env, const wk_pyworker_opts_t *o) {
  if (env == NULL) return;
  if (o->pythonpath != NULL) {
    size_t nx = 0;
    if (o->env)
      while (o->env[nx]) nx++;
    free(env[nx]);
  }
  free(env);
}

/* An fd >= 10 with FD_CLOEXEC, so that dup2 onto 1/2/3 in the child always clears it. */
static int high_fd(int fd) {
  int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  return h;
}

/* Forks the worker from its template; 0, or an error after which it is spawned instead. */
static int fork_from_template(wk_pyworker_t *w, const wk_pyworker_opts_t *o, const char *python,
                              char **env, int child_sock, int child_out, int timeout_ms) {
  wk_err_t ferr = {{0}};
  int rc = wk_forkserver_spawn(python, env, o->model_dir, child_sock, child_out, timeout_ms,
                               &w->pid, &ferr);
  if (rc != 0 && rc != WK_EUNSUPPORTED) /* unsupported was logged once by the template's start */
    wk_log_warn("[%s] %s; starting the worker on its own", w->tag, ferr.msg);
  return rc;
}

static int spawn(wk_pyworker_t *w, const wk_pyworker_opts_t *o, int timeout_ms, wk_err_t *err) {
  int sv[2], pp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return wk_err(err, WK_EIO, "socketpair: %s", strerror(errno));
  if (pipe2(pp, O_CLOEXEC) != 0) {
    close(sv[0]);
    close(sv[1]);
    return wk_err(err, WK_EIO, "pipe: %s", strerror(errno));
  }
  int child_sock = high_fd(sv[1]), child_out = high_fd(pp[1]);
  const char *python = o->python && o->python[0] ? o->python : WK_PYWORKER_DEFAULT_PYTHON;
  char *argv[] = {(char *)python, (char *)"-m", (char *)"wick_worker", (char *)"--sock-fd",
                  (char *)"3", NULL};
  char **env = build_env(o);
  if (o->fork_server && env != NULL && child_sock >= 0 && child_out >= 0 &&
      fork_from_template(w, o, python, env, child_sock, child_out, timeout_ms) == 0) {
    free_env(env, o);
    close(child_sock);
    close(child_out);
    w->sock = sv[0];
    w->out_fd = pp[0];
    return 0;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, child_out, 1);
  posix_spawn_file_actions_adddup2(&fa, child_out, 2);
  posix_spawn_file_actions_adddup2(&fa, child_sock, 3);
  /* it starts in the model folder, never in the server's working directory */
  if (o->model_dir) posix_spawn_file_actions_addchdir_np(&fa, o->model_dir);
  posix_spawnattr_t at;
  wk_spawnattr_init(&at, 0);
  int rc = env == NULL || child_sock < 0 || child_out < 0
               ? ENOMEM
               : posix_spawn(&w->pid, python, &fa, &at, argv, env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  free_env(env, o);
  if (child_sock >= 0) close(child_sock);
  if (child_out >= 0) close(child_out);
  if (rc != 0) {
    close(sv[0]);
    close(pp[0]);
    return wk_err(err, WK_EIO, "cannot start %s: %s", python, strerror(rc));
  }
  w->sock = sv[0];
  w->out_fd = pp[0];
  return 0;
}

/* ---- frame I/O ---- */

static int fail_dead(wk_pyworker_t *w, const char *doing, wk_err_t *err) {
  w->broken = 1;
  reap(w, 2000);
  char how[64];
  if (w->reaped) describe_status(w->status, how, sizeof how);
  else snprintf(how, sizeof how, "closed its socket");
  return wk_err(err, WK_EIO, "worker %s %s while %s", w->tag, how, doing);
}

static int send_all(wk_pyworker_t *w, const void *p, size_t n, int64_t deadline,
                    const char *doing, wk_err_t *err) {
  const char *q = p;
  while (n > 0) {
    ssize_t s = send(w->sock, q, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (s > 0) {
      q += s;
      n -= (size_t)s;
      continue;
    }
    if (s < 0 && errno == EINTR) continue;
    if (s < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return fail_dead(w, doing, err);
    int left = deadline < 0 ? -1 : (int)(deadline - now_ms());
    if (deadline >= 0 && left <= 0) {
      w->broken = 1;
      return wk_err(err, WK_ETIMEDOUT, "worker %s did not take the frame in time", w->tag);
    }
    struct pollfd pf = {w->sock, POLLOUT, 0};
    poll(&pf, 1, left);
  }
  return 0;
}

static int read_frame(wk_pyworker_t *w, wk_otf_response_t *resp, int64_t deadline,
                      const char *doing, wk_err_t *err) {
  for (;;) {
    size_t used = 0;
    int rc = wk_otf_parse_response(w->rbuf.data ? w->rbuf.data : "", w->rbuf.len, resp, &used,
                                   err);
    if (rc == 0) {
      memmove(w->rbuf.data, w->rbuf.data + used, w->rbuf.len - used);
      w->rbuf.len -= used;
      return 0;
    }
    if (rc != WK_OTF_NEED_MORE) {
      w->broken = 1;
      wk_err_prefix(err, "worker %s sent a bad frame", w->tag);
      return rc;
    }
    int left = deadline < 0 ? -1 : (int)(deadline - now_ms());
    if (deadline >= 0 && left <= 0) {
      w->broken = 1;
      return wk_err(err, WK_ETIMEDOUT, "worker %s did not answer in time while %s", w->tag, doing);
    }
    struct pollfd pf = {w->sock, POLLIN, 0};
    int pr = poll(&pf, 1, left);
    if (pr < 0 && errno != EINTR) return fail_dead(w, doing, err);
    if (pr <= 0) continue;
    if (wk_buf_reserve(&w->rbuf, 65536) != 0) {
      w->broken = 1;
      return wk_err(err, WK_ENOMEM, "out of memory reading from worker %s", w->tag);
    }
    ssize_t r = recv(w->sock, w->rbuf.data + w->rbuf.len, w->rbuf.cap - w->rbuf.len - 1, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) return fail_dead(w, doing, err);
    w->rbuf.len += (size_t)r;
    w->rbuf.data[w->rbuf.len] = '\0';
  }
}

static int64_t deadline_of(int timeout_ms) { return timeout_ms > 0 ? now_ms() + timeout_ms : -1; }

/* ---- API ---- */

static void destroy(wk_pyworker_t *w) {
  if (w->sock >= 0) close(w->sock);
  w->sock = -1;
  if (!reap(w, 2000)) {
    kill(w->pid, SIGKILL);
    reap(w, 5000);
  }
  if (w->reader_started) {
    wait_reader(w, 2000);
    if (!w->reader_done) pthread_cancel(w->reader); /* a grandchild holds the pipe */
    pthread_join(w->reader, NULL);
  }
  if (w->out_fd >= 0) close(w->out_fd);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  wk_buf_destroy(&w->rbuf);
  free(w);
}

int wk_pyworker_start(const wk_pyworker_opts_t *o, wk_pyworker_t **out, wk_err_t *err) {
  if (o->model_name == NULL || o->model_dir == NULL)
    return wk_err(err, WK_EINVAL, "a Python worker needs a model name and a model directory");
  wk_buf_t frame = WK_BUF_INIT;
  wk_otf_load_t load = {o->model_name, o->model_dir, o->batch_size, o->handler, o->gpu_id,
                        o->envelope, 1};
  int rc = wk_otf_encode_load(&frame, &load, err);
  if (rc != 0) return rc;
  wk_pyworker_t *w = calloc(1, sizeof *w);
  if (w == NULL) {
    wk_buf_destroy(&frame);
    return wk_err(err, WK_ENOMEM, "out of memory");
  }
  w->sock = w->out_fd = -1;
  w->reaped = 1; /* nothing to reap until spawned */
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  snprintf(w->tag, sizeof w->tag, "%s/worker %d", o->model_name, o->worker_index);
  w->on_metric = o->on_metric;
  w->metric_ud = o->metric_ud;
  int timeout = o->startup_timeout_ms > 0 ? o->startup_timeout_ms
                                          : WK_DEFAULT_STARTUP_TIMEOUT_S * 1000;
  int64_t deadline = now_ms() + timeout;
  if ((rc = spawn(w, o, timeout, err)) != 0) {
    wk_buf_destroy(&frame);
    destroy(w);
    return rc;
  }
  w->reaped = 0;
  if (pthread_create(&w->reader, NULL, reader_main, w) != 0) {
    wk_buf_destroy(&frame);
    destroy(w);
    return wk_err(err, WK_EINTERNAL, "cannot start the log reader thread");
  }
  w->reader_started = 1;
  wk_otf_response_t resp = {0};
  rc = send_all(w, frame.data, frame.len, deadline, "loading the model", err);
  if (rc == 0) rc = read_frame(w, &resp, deadline, "loading the model", err);
  wk_buf_destroy(&frame);
  if (rc == 0 && resp.code != 200) {
    reap(w, 2000); /* a failed load exits 1: let the log reach EOF */
    wait_reader(w, 1000);
  } else if (rc != 0) {
    wait_reader(w, 1000);
  }
  if (rc == 0 && resp.code == 200) {
    wk_otf_response_destroy(&resp);
    *out = w;
    return 0;
  }
  wk_buf_t tail = WK_BUF_INIT;
  wk_pyworker_log_tail(w, &tail);
  const char *t = tail.data ? tail.data : "";
  if (rc == 0) {
    const char *m = resp.message;
    const char *nl = strchr(m, '\n');
    int first = nl ? (int)(nl - m) : (int)strlen(m);
    size_t tl = strlen(t);
    const char *tt = tl > 300 ? t + tl - 300 : t;
    /* 507: the handler ran out of memory loading (MemoryError, CUDA OOM), TorchServe's 507 */
    rc = wk_err(err, resp.code == 507 ? WK_ENOMEM : WK_EMODEL,
                "model %s failed to load (%d): %.*s; worker log tail: %s", o->model_name, resp.code,
                first, m, tt);
    if (o->failure_log)
      wk_buf_printf(o->failure_log, "%s\n--- worker log tail ---\n%s", m, t);
  } else {
    char first[512];
    snprintf(first, sizeof first, "%s", err ? err->msg : "");
    size_t tl = strlen(t);
    size_t room = sizeof first > strlen(first) + 40 ? sizeof first - strlen(first) - 40 : 0;
    const char *tt = tl > room ? t + tl - room : t;
    rc = wk_err(err, rc, "%s; worker log tail: %s", first, tt);
    if (o->failure_log) wk_buf_printf(o->failure_log, "%s\n--- worker log tail ---\n%s", first, t);
  }
  wk_buf_destroy(&tail);
  wk_otf_response_destroy(&resp);
  destroy(w);
  return rc;
}

int wk_pyworker_read_response(wk_pyworker_t *w, wk_otf_response_t *resp, int timeout_ms,
                              wk_err_t *err) {
  if (w->broken) return wk_err(err, WK_EIO, "worker %s is not usable after an error", w->tag);
  return read_frame(w, resp, deadline_of(timeout_ms), "running a batch", err);
}

int wk_pyworker_infer(wk_pyworker_t *w, const wk_otf_request_t *reqs, size_t n,
                      wk_otf_response_t *resp, int timeout_ms, wk_err_t *err) {
  if (w->broken) return wk_err(err, WK_EIO, "worker %s is not usable after an error", w->tag);
  int64_t deadline = deadline_of(timeout_ms);
  wk_buf_t frame = WK_BUF_INIT;
  int rc = wk_otf_encode_inference(&frame, reqs, n, err);
  if (rc == 0) rc = send_all(w, frame.data, frame.len, deadline, "running a batch", err);
  wk_buf_destroy(&frame);
  if (rc == 0) rc = read_frame(w, resp, deadline, "running a batch", err);
  return rc;
}

int wk_pyworker_pid(const wk_pyworker_t *w) { return (int)w->pid; }
int wk_pyworker_alive(const wk_pyworker_t *w) { return !w->broken; }

int wk_pyworker_exited(wk_pyworker_t *w, char *why, size_t whylen) {
  if (!reap(w, 0)) return 0;
  describe_status(w->status, why, whylen);
  return 1;
}

int wk_pyworker_stop(wk_pyworker_t *w) {
  if (w == NULL) return -1;
  if (w->sock >= 0) close(w->sock);
  w->sock = -1;
  if (!reap(w, 2000)) {
    kill(w->pid, SIGKILL);
    reap(w, 5000);
  }
  int st = w->reaped ? w->status : -1;
  destroy(w);
  return st;
}
