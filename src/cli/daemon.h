/* `wick serve --start` and `--stop`, as torchserve's: a pid file, a background server that
 * logs to a file, and a start that returns only once the server is up or has failed. It
 * knows nothing of what the server does. Main thread, before any other thread starts. */
#ifndef WK_CLI_DAEMON_H
#define WK_CLI_DAEMON_H

#include <stddef.h>

/* "$TMPDIR/.wick.pid" (TMPDIR unset: /tmp). */
void wk_daemon_pid_path(char *out, size_t len);

/* Refuses to start when the pid file names a running wick. Otherwise, with background set,
 * forks: the parent waits until the child calls wk_daemon_ready (exit 0) or exits (exit 1,
 * with the ERROR lines of its log printed), and returns 0 with *exit_code set; the child
 * (in a new session, stdout and stderr appended to $LOG_LOCATION/wick.log, LOG_LOCATION
 * unset: logs) writes the pid file and returns 1. Without background it writes the pid file
 * and returns 1. Returns 0 with *exit_code 1 when it cannot start. */
int wk_daemon_begin(int background, int *exit_code);
/* Tells the waiting parent that the APIs answer. Harmless when nothing waits. */
void wk_daemon_ready(void);
/* Removes the pid file if it still names this process. */
void wk_daemon_end(void);
/* `--stop`: SIGTERM to the wick the pid file names, waits for it to exit (60 s at most),
 * removes the pid file. Returns the exit code: 0 stopped, 1 none running or still running. */
int wk_daemon_stop(void);

#endif
