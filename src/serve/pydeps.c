/* `pip install -r ... --target ...` in a child process: posix_spawn with stdout and
 * stderr on one pipe, read with a deadline; the last WK_PIP_OUTPUT_TAIL bytes are kept
 * for the error message and every line goes to the log. */
#include "serve/pydeps.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/spawn.h"

extern char **environ;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keeps the last sizeof tail - 1 bytes of the output in tail (NUL-terminated). */
static void keep_tail(char *tail, size_t cap, size_t *len, const char *p, size_t n) {
  if (n >= cap - 1) {
    memcpy(tail, p + n - (cap - 1), cap - 1);
    *len = cap - 1;
  } else {
    size_t keep = *len + n > cap - 1 ? cap - 1 - n : *len;
    memmove(tail, tail + *len - keep, keep);
    memcpy(tail + keep, p, n);
    *len = keep + n;
  }
  tail[*len] = '\0';
}

int wk_pydeps_install(const char *python, const char *req_file, const char *target, const char *cwd,
                      int timeout_s, wk_err_t *err) {
  int rc = wk_fs_mkdirs(target, err);
  if (rc) return rc;
  int pp[2];
  if (pipe2(pp, O_CLOEXEC) != 0) return wk_err(err, WK_EIO, "pipe: %s", strerror(errno));
  char *argv[] = {(char *)python,
                  "-m",
                  "pip",
                  "install",
                  "--no-input",
                  "--disable-pip-version-check",
                  "--no-warn-script-location",
                  "-r",
                  (char *)req_file,
                  "--target",
                  (char *)target,
                  NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, pp[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pp[1], 2);
  if (cwd) posix_spawn_file_actions_addchdir_np(&fa, cwd);
  posix_spawnattr_t at;
  /* its own process group, so that a timeout kills pip's children too */
  wk_spawnattr_init(&at, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&at, 0);
  pid_t pid;
  int src = posix_spawn(&pid, python, &fa, &at, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(pp[1]);
  if (src != 0) {
    close(pp[0]);
    return wk_err(err, WK_EIO, "cannot start %s -m pip: %s", python, strerror(src));
  }
  wk_log_info("pip: installing %s into %s", req_file, target);
  char tail[WK_PIP_OUTPUT_TAIL + 1];
  size_t tail_len = 0;
  tail[0] = '\0';
  char line[1024];
  size_t line_len = 0;
  if (timeout_s <= 0) timeout_s = WK_PIP_TIMEOUT_S;
  int64_t deadline = mono_ms() + (int64_t)timeout_s * 1000;
  int timed_out = 0;
  for (;;) {
    int left = (int)(deadline - mono_ms());
    if (left <= 0) {
      timed_out = 1;
      break;
    }
    struct pollfd pf = {pp[0], POLLIN, 0};
    int pr = poll(&pf, 1, left);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    char buf[4096];
    ssize_t n = read(pp[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    keep_tail(tail, sizeof tail, &tail_len, buf, (size_t)n);
    for (ssize_t i = 0; i < n; i++) { /* log pip's output line by line */
      if (buf[i] == '\n' || line_len == sizeof line - 1) {
        line[line_len] = '\0';
        if (line_len) wk_log_info("pip: %s", line);
        line_len = 0;
        if (buf[i] == '\n') continue;
      }
      line[line_len++] = buf[i];
    }
  }
  if (line_len) wk_log_info("pip: %.*s", (int)line_len, line);
  close(pp[0]);
  if (timed_out) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  /* the message: pip's last lines, the most telling part of its output (err holds 512
   * bytes and the caller prefixes the model's name, so keep about 280) */
  size_t tl = tail_len;
  while (tl > 0 && (tail[tl - 1] == '\n' || tail[tl - 1] == ' ' || tail[tl - 1] == '\r'))
    tl--;
  tail[tl] = '\0';
  const char *t = tl > 280 ? tail + tl - 280 : tail;
  const char *nl = t != tail ? strchr(t, '\n') : NULL;
  if (nl != NULL && nl[1] != '\0') t = nl + 1; /* start at a line */
  if (timed_out)
    return wk_err(err, WK_ETIMEDOUT, "pip install -r %s did not finish within %d s: %s", req_file,
                  timeout_s, t);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    char how[48];
    if (WIFEXITED(st))
      snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(st));
    else
      snprintf(how, sizeof how, "was killed by signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return wk_err(err, WK_EMODEL, "pip install -r %s %s: %s", req_file, how, t);
  }
  return 0;
}
