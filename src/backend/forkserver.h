/* Python worker templates (python/wick_worker/forkserver.py): one process per interpreter
 * and environment that has imported torch once and forks workers on request, so that a
 * worker starts in milliseconds and shares the imported pages with the others. The
 * workers become children of wick (it is a child subreaper while the template forks), so
 * they are waited for and killed like spawned ones. Any thread. */
#ifndef WK_BACKEND_FORKSERVER_H
#define WK_BACKEND_FORKSERVER_H

#include <sys/types.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Forks a worker from the template for (python, env), env being the worker's whole
 * environment, starting the template when there is none yet; waits up to timeout_ms for a new
 * template's imports. The worker starts in cwd with sock_fd as its fd 3 and out_fd as its
 * stdout and stderr, and runs `python -m wick_worker --sock-fd 3`. The caller keeps its
 * fds. Returns 0 and *pid (a child of this process), or WK_EUNSUPPORTED when no template
 * can serve (it failed to start or has threads: spawn the worker instead; err says why,
 * and the same pair is not tried again) or WK_EIO (the template died; the next call
 * starts another). */
int wk_forkserver_spawn(const char *python, char *const env[], const char *cwd, int sock_fd,
                        int out_fd, int timeout_ms, pid_t *pid, wk_err_t *err);

/* The running templates' pids: writes up to cap of them, returns how many there are. */
size_t wk_forkserver_pids(pid_t *out, size_t cap);

/* Ends every template (the workers they forked are not touched). At shutdown. */
void wk_forkserver_stop_all(void);

#ifdef __cplusplus
}
#endif

#endif
