/* Python worker templates: a list of (python, environment) -> template process, each
 * driven over a SOCK_SEQPACKET socketpair (one message per request and per answer). One
 * lock for the list and the exchanges: a fork takes milliseconds. */
#include "backend/forkserver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/spawn.h"

typedef struct template_s {
  char *python;
  char *key; /* python, then each of its environment's strings, '\n'-separated */
  size_t key_len;
  pid_t pid;
  int sock;     /* -1: none running */
  int disabled; /* it could not start or has threads: workers are spawned */
  struct template_s *next;
} template_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static template_t *g_list;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Workers share a template when they would have been started alike: same interpreter,
 * same environment (PYTHONPATH, thread counts... are read at import). */
static char *make_key(const char *python, char *const env[], size_t *len) {
  size_t n = strlen(python) + 1;
  for (size_t i = 0; env[i]; i++)
    n += strlen(env[i]) + 1;
  char *k = malloc(n), *p = k;
  if (k == NULL) return NULL;
  const char *part = python;
  for (size_t i = 0; part; part = env[i++]) {
    size_t l = strlen(part);
    memcpy(p, part, l);
    p[l] = '\n';
    p += l + 1;
  }
  *len = n;
  return k;
}

static template_t *find(const char *python, char *const env[]) {
  size_t len;
  char *key = make_key(python, env, &len);
  if (key == NULL) return NULL;
  for (template_t *t = g_list; t; t = t->next)
    if (t->key_len == len && memcmp(t->key, key, len) == 0) {
      free(key);
      return t;
    }
  template_t *t = calloc(1, sizeof *t);
  if (t == NULL || (t->python = strdup(python)) == NULL) {
    free(t);
    free(key);
    return NULL;
  }
  t->key = key;
  t->key_len = len;
  t->sock = -1;
  t->next = g_list;
  g_list = t;
  return t;
}

/* Waits up to ms for the template to end, then kills it; reaps it. */
static void end_process(template_t *t, int ms) {
  if (t->sock >= 0) close(t->sock);
  t->sock = -1;
  if (t->pid <= 0) return;
  int64_t end = now_ms() + ms;
  for (;;) {
    pid_t r = waitpid(t->pid, NULL, WNOHANG);
    if (r == t->pid || (r < 0 && errno == ECHILD)) break;
    if (now_ms() >= end) {
      kill(t->pid, SIGKILL);
      waitpid(t->pid, NULL, 0);
      break;
    }
    struct timespec d = {0, 10 * 1000000L};
    nanosleep(&d, NULL);
  }
  t->pid = 0;
}

/* Reads one message into buf (NUL-terminated) within the deadline: its length, 0 when the
 * template closed the socket (it ended), -1 when the deadline passed. */
static ssize_t recv_msg(int fd, char *buf, size_t cap, int64_t deadline) {
  for (;;) {
    int left = (int)(deadline - now_ms());
    if (left <= 0) return -1;
    struct pollfd pf = {fd, POLLIN, 0};
    int pr = poll(&pf, 1, left);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) return -1;
    ssize_t n = recv(fd, buf, cap - 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    buf[n] = '\0';
    return n;
  }
}

static int start(template_t *t, char *const env[], int timeout_ms, wk_err_t *err) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return wk_err(err, WK_EIO, "socketpair: %s", strerror(errno));
  int child = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
  close(sv[1]);
  char *argv[] = {t->python, (char *)"-m", (char *)"wick_worker.forkserver", NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, child, 3);
  posix_spawn_file_actions_addchdir_np(&fa, "/");
  posix_spawnattr_t at;
  wk_spawnattr_init(&at, 0);
  int rc = child < 0 ? EMFILE : posix_spawn(&t->pid, t->python, &fa, &at, argv, env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (child >= 0) close(child);
  if (rc != 0) {
    close(sv[0]);
    t->pid = 0;
    return wk_err(err, WK_EUNSUPPORTED, "cannot start %s: %s", t->python, strerror(rc));
  }
  t->sock = sv[0];
  char msg[1024];
  ssize_t n = recv_msg(t->sock, msg, sizeof msg, now_ms() + timeout_ms);
  int threads = 0;
  if (n > 0 && sscanf(msg, "ready %d", &threads) == 1 && threads == 1) {
    wk_log_info("python worker template started (pid %d, %s): workers are forked from it",
                (int)t->pid, t->python);
    return 0;
  }
  if (n > 0 && threads > 1)
    rc = wk_err(err, WK_EUNSUPPORTED, "it has %d threads after its imports, and a fork copies one",
                threads);
  else if (n > 0)
    rc = wk_err(err, WK_EUNSUPPORTED, "%.300s", msg);
  else if (n == 0)
    rc = wk_err(err, WK_EUNSUPPORTED, "it ended before it was ready (its messages are above)");
  else
    rc = wk_err(err, WK_EUNSUPPORTED, "it did not report ready within %d ms", timeout_ms);
  end_process(t, 1000);
  return rc;
}

/* One request, one answer: 0 and *pid, WK_EIO when the template is gone or could not fork,
 * WK_EUNSUPPORTED (and disabled) when it may not fork any more. */
static int ask(template_t *t, const char *cwd, int sock_fd, int out_fd, int timeout_ms, pid_t *pid,
               wk_err_t *err) {
  struct iovec iov = {(void *)cwd, strlen(cwd)};
  union {
    char buf[CMSG_SPACE(2 * sizeof(int))];
    struct cmsghdr align;
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct msghdr mh = {0};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctl.buf;
  mh.msg_controllen = sizeof ctl.buf;
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(2 * sizeof(int));
  int fds[2] = {sock_fd, out_fd};
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  /* the worker must become ours when the middle process exits: wick is a child subreaper
   * for as long as the fork takes (the template answers after the middle one is gone), and
   * only then, so that what a handler leaves behind when its worker dies goes to init as
   * before, not to wick, which would never reap it */
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    t->disabled = 1;
    return wk_err(err, WK_EUNSUPPORTED, "cannot become a child subreaper: %s", strerror(errno));
  }
  ssize_t s;
  do
    s = sendmsg(t->sock, &mh, MSG_NOSIGNAL);
  while (s < 0 && errno == EINTR);
  char msg[1100];
  ssize_t n = s < 0 ? -1 : recv_msg(t->sock, msg, sizeof msg, now_ms() + timeout_ms);
  prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
  if (s < 0) return wk_err(err, WK_EIO, "the python worker template is gone: %s", strerror(errno));
  if (n < (ssize_t)sizeof(int32_t))
    return wk_err(err, WK_EIO, "the python worker template did not answer");
  int32_t v;
  memcpy(&v, msg, sizeof v);
  if (v == -2) { /* a later import started a thread */
    t->disabled = 1;
    return wk_err(err, WK_EUNSUPPORTED, "the python worker template cannot fork any more: %s",
                  msg + 4);
  }
  if (v <= 0) return wk_err(err, WK_EIO, "the python worker template could not fork: %s", msg + 4);
  *pid = (pid_t)v;
  return 0;
}

int wk_forkserver_spawn(const char *python, char *const env[], const char *cwd, int sock_fd,
                        int out_fd, int timeout_ms, pid_t *pid, wk_err_t *err) {
  pthread_mutex_lock(&g_mu);
  template_t *t = find(python, env);
  int rc;
  if (t == NULL) {
    rc = wk_err(err, WK_ENOMEM, "out of memory");
  } else if (t->disabled) {
    rc = wk_err(err, WK_EUNSUPPORTED, "the python worker template could not be used");
  } else {
    rc = 0;
    if (t->sock < 0) {
      rc = start(t, env, timeout_ms, err);
      if (rc != 0) {
        t->disabled = 1;
        wk_log_warn("python worker template for %s: %s; workers are started one by one instead",
                    python, err->msg);
      }
    }
    if (rc == 0 && (rc = ask(t, cwd ? cwd : "/", sock_fd, out_fd, timeout_ms, pid, err)) != 0) {
      if (rc == WK_EUNSUPPORTED)
        wk_log_warn("%s; workers are started one by one instead", err->msg);
      end_process(t, 1000); /* EIO: the next call starts another */
    }
  }
  pthread_mutex_unlock(&g_mu);
  return rc;
}

size_t wk_forkserver_pids(pid_t *out, size_t cap) {
  pthread_mutex_lock(&g_mu);
  size_t n = 0;
  for (template_t *t = g_list; t; t = t->next)
    if (t->sock >= 0) {
      if (n < cap) out[n] = t->pid;
      n++;
    }
  pthread_mutex_unlock(&g_mu);
  return n;
}

void wk_forkserver_stop_all(void) {
  pthread_mutex_lock(&g_mu);
  while (g_list) {
    template_t *t = g_list;
    g_list = t->next;
    end_process(t, 2000);
    free(t->python);
    free(t->key);
    free(t);
  }
  pthread_mutex_unlock(&g_mu);
}
