/* Per-model Python requirements: runs `python -m pip install -r FILE --target DIR` as a
 * child process (no shell) with a time limit, so that a model's packages land in a
 * folder of that model only. Does not decide when to install; model.c does. */
#ifndef WK_SERVE_PYDEPS_H
#define WK_SERVE_PYDEPS_H

#include "core/error.h"

/* Installs the requirements file req_file into target (created if missing) with
 * `python -m pip install --no-input --disable-pip-version-check --no-warn-script-location
 * -r req_file --target target`, run in cwd with wick's environment (so PIP_NO_INDEX,
 * PIP_FIND_LINKS, PIP_INDEX_URL... apply). Returns 0, WK_EMODEL when pip fails (err
 * holds its exit status and the tail of its output), WK_ETIMEDOUT after timeout_s
 * (pip is killed), or WK_EIO when it cannot be started. Blocks; any thread. */
int wk_pydeps_install(const char *python, const char *req_file, const char *target, const char *cwd,
                      int timeout_s, wk_err_t *err);

#endif
