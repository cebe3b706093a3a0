/* Background start and stop for `wick serve`: the pid file, the fork into a new session,
 * a pipe on which the child says "ready", and the reason for a failed start read back
 * from the child's log. */
#include "cli/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"

/* How long --start waits for the server (models load before the APIs listen), and how
 * long --stop waits for it to drain and exit. */
#define START_TIMEOUT_S 600
#define STOP_TIMEOUT_S 60

static int g_ready_fd = -1;
static int g_own_pid_file;

void wk_daemon_pid_path(char *out, size_t len) {
  const char *tmp = getenv("TMPDIR");
  if (tmp == NULL || *tmp == '\0') tmp = "/tmp";
  snprintf(out, len, "%s/.wick.pid", tmp);
}

static pid_t read_pid(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  long pid = 0;
  if (fscanf(f, "%ld", &pid) != 1 || pid <= 1 || pid > INT_MAX) pid = 0;
  fclose(f);
  return (pid_t)pid;
}

/* 1 when pid is a live (not zombie) `wick serve` process. */
static int is_wick(pid_t pid) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *close_paren = strrchr(buf, ')');
  if (close_paren == NULL || close_paren[1] != ' ' || close_paren[2] == 'Z' ||
      close_paren[2] == 'X')
    return 0;
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
  f = fopen(path, "r");
  if (f == NULL) return 0;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* argv[0] ends in "wick", argv[1] is "serve" */
  size_t a0 = strlen(buf);
  if (a0 + 1 >= n) return 0;
  const char *base = strrchr(buf, '/');
  base = base ? base + 1 : buf;
  return strncmp(base, "wick", 4) == 0 && strcmp(buf + a0 + 1, "serve") == 0;
}

static int write_pid_file(const char *path) {
  char tmp[PATH_MAX + 16];
  snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) return -1;
  char line[32];
  int n = snprintf(line, sizeof line, "%d\n", (int)getpid());
  int ok = fchmod(fd, 0644) == 0 && write(fd, line, (size_t)n) == n;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return -1;
  }
  g_own_pid_file = 1;
  return 0;
}

/* Prints the ERROR lines the log gained after offset (or its last lines if none). */
static void print_failure(const char *log_path, off_t offset) {
  FILE *f = fopen(log_path, "r");
  if (f == NULL || fseeko(f, offset, SEEK_SET) != 0) {
    if (f) fclose(f);
    fprintf(stderr, "wick serve: the server failed to start; see %s\n", log_path);
    return;
  }
  char line[2048];
  char tail[5][2048];
  int errors = 0, lines = 0;
  while (fgets(line, sizeof line, f)) {
    const char *e = strstr(line, " ERROR ");
    if (e) {
      fprintf(stderr, "wick serve: %s", e + 7 + strspn(e + 7, " "));
      errors++;
    }
    snprintf(tail[lines++ % 5], sizeof tail[0], "%s", line);
  }
  fclose(f);
  if (errors == 0) {
    for (int i = lines > 5 ? lines - 5 : 0; i < lines; i++)
      fprintf(stderr, "  %s", tail[i % 5]);
  }
  fprintf(stderr, "wick serve: the server failed to start (its log: %s)\n", log_path);
}

int wk_daemon_begin(int background, int *exit_code) {
  *exit_code = 1;
  char pid_path[PATH_MAX];
  wk_daemon_pid_path(pid_path, sizeof pid_path);
  pid_t old = read_pid(pid_path);
  if (old > 0 && old != getpid() && is_wick(old)) {
    fprintf(stderr,
            "wick is already running (pid %d, pid file %s); stop it with wick serve --stop\n",
            (int)old, pid_path);
    return 0;
  }
  if (access(pid_path, F_OK) == 0) {
    printf("Removing orphan pid file %s.\n", pid_path);
    unlink(pid_path);
  }
  if (!background) {
    if (write_pid_file(pid_path) != 0) {
      fprintf(stderr, "wick serve: cannot write the pid file %s: %s\n", pid_path, strerror(errno));
      return 0;
    }
    return 1;
  }

  const char *dir = getenv("LOG_LOCATION");
  if (dir == NULL || *dir == '\0') dir = "logs";
  wk_err_t err = {{0}};
  if (wk_fs_mkdirs(dir, &err) != 0) {
    fprintf(stderr, "wick serve: cannot create the log directory %s: %s\n", dir, err.msg);
    return 0;
  }
  char log_path[PATH_MAX];
  if (wk_fs_join(log_path, sizeof log_path, dir, "wick.log") != 0) {
    fprintf(stderr, "wick serve: the log directory name %s is too long\n", dir);
    return 0;
  }
  int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    fprintf(stderr, "wick serve: cannot open the log file %s: %s\n", log_path, strerror(errno));
    return 0;
  }
  off_t offset = lseek(log_fd, 0, SEEK_END);
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  int fds[2];
  if (null_fd < 0 || pipe2(fds, O_CLOEXEC) != 0) {
    fprintf(stderr, "wick serve: cannot start: %s\n", strerror(errno));
    close(log_fd);
    if (null_fd >= 0) close(null_fd);
    return 0;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "wick serve: cannot start: fork: %s\n", strerror(errno));
    close(log_fd);
    close(null_fd);
    close(fds[0]);
    close(fds[1]);
    return 0;
  }
  if (pid == 0) {
    close(fds[0]);
    setsid();
    if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
        dup2(log_fd, STDERR_FILENO) < 0)
      _exit(1);
    close(null_fd);
    close(log_fd);
    g_ready_fd = fds[1];
    if (write_pid_file(pid_path) != 0) {
      fprintf(stderr, "wick serve: ERROR cannot write the pid file %s: %s\n", pid_path,
              strerror(errno));
      _exit(1);
    }
    return 1;
  }

  close(fds[1]);
  close(null_fd);
  close(log_fd);
  char c = 0;
  struct pollfd p = {.fd = fds[0], .events = POLLIN};
  int64_t deadline = (int64_t)time(NULL) + START_TIMEOUT_S;
  int rc;
  for (;;) {
    int64_t left = deadline - (int64_t)time(NULL);
    rc = left > 0 ? poll(&p, 1, (int)(left * 1000)) : 0;
    if (rc < 0 && errno == EINTR) continue;
    break;
  }
  ssize_t got = rc > 0 ? read(fds[0], &c, 1) : -1;
  close(fds[0]);
  if (got == 1 && c == 'R') {
    printf("wick started in the background (pid %d); log: %s; stop it with wick serve --stop\n",
           (int)pid, log_path);
    *exit_code = 0;
    return 0;
  }
  if (rc == 0) {
    fprintf(stderr,
            "wick serve: the server (pid %d) did not answer within %d s; it is still starting, "
            "see %s\n",
            (int)pid, START_TIMEOUT_S, log_path);
    return 0;
  }
  /* the child closed the pipe without saying ready: it has exited */
  int status = 0;
  waitpid(pid, &status, 0);
  if (read_pid(pid_path) == pid) unlink(pid_path);
  print_failure(log_path, offset);
  return 0;
}

void wk_daemon_ready(void) {
  if (g_ready_fd < 0) return;
  ssize_t w = write(g_ready_fd, "R", 1);
  (void)w;
  close(g_ready_fd);
  g_ready_fd = -1;
}

void wk_daemon_end(void) {
  if (!g_own_pid_file) return;
  char pid_path[PATH_MAX];
  wk_daemon_pid_path(pid_path, sizeof pid_path);
  if (read_pid(pid_path) == getpid()) unlink(pid_path);
  g_own_pid_file = 0;
}

int wk_daemon_stop(void) {
  char pid_path[PATH_MAX];
  wk_daemon_pid_path(pid_path, sizeof pid_path);
  pid_t pid = read_pid(pid_path);
  if (pid <= 0 || !is_wick(pid)) {
    if (access(pid_path, F_OK) == 0) unlink(pid_path);
    fprintf(stderr, "wick is not currently running (no live server in %s).\n", pid_path);
    return 1;
  }
  if (kill(pid, SIGTERM) != 0) {
    fprintf(stderr, "wick serve --stop: cannot signal pid %d: %s\n", (int)pid, strerror(errno));
    return 1;
  }
  struct timespec step = {0, 50 * 1000 * 1000};
  for (int i = 0; i < STOP_TIMEOUT_S * 20; i++) {
    if (!is_wick(pid)) {
      if (read_pid(pid_path) == pid) unlink(pid_path);
      printf("wick has stopped.\n");
      return 0;
    }
    nanosleep(&step, NULL);
  }
  fprintf(stderr, "wick (pid %d) did not stop within %d s after SIGTERM; it is still running.\n",
          (int)pid, STOP_TIMEOUT_S);
  return 1;
}
