/* `wick pack --aot-compile` (see pack_aot.h). */
#include "cli/pack_aot.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "archive/model_config.h"
#include "archive/pt2.h"
#include "core/fs.h"
#include "core/limits.h"

extern char **environ;

/* The config's batchSize, 1 when it has none. */
static int config_batch(const char *config_file, int *out, wk_err_t *err) {
  *out = 1;
  if (config_file == NULL) return 0;
  char *text = NULL;
  size_t len = 0;
  int rc = wk_fs_read_file(config_file, WK_MAX_CONFIG_FILE_SIZE, &text, &len, err);
  if (rc != 0) return rc;
  wk_model_config_t c;
  wk_model_config_init(&c);
  rc = wk_model_config_parse(text, len, &c, err);
  if (rc == 0 && c.batch_size > 1) *out = c.batch_size;
  wk_model_config_destroy(&c);
  free(text);
  if (rc != 0) wk_err_prefix(err, "%s", config_file);
  return rc;
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

int wk__aot_compile(const char *exported, const char *example_inputs, const char *config_file,
                    wk__aot_t *a, wk_err_t *err) {
  memset(a, 0, sizeof *a);
  if (!wk_fs_exists(exported))
    return wk_err(err, WK_ENOTFOUND, "--serialized-file %s: no such file", exported);
  if (!wk_pt2_is_exported(exported))
    return wk_err(err, WK_EINVAL,
                  "--aot-compile: %s is not a torch.export.save'd ExportedProgram (a .pt2 "
                  "holding models/*.json and no compiled model)", exported);
  if (example_inputs && !wk_fs_exists(example_inputs))
    return wk_err(err, WK_ENOTFOUND, "--example-inputs %s: no such file", example_inputs);
  int rc = config_batch(config_file, &a->max_batch, err);
  if (rc != 0) return rc;
  if ((rc = wk_fs_mkdtemp("aot", a->dir, sizeof a->dir, err)) != 0) return rc;
  if (wk_fs_join(a->package, sizeof a->package, a->dir, base_name(exported)) != 0)
    return wk_err(err, WK_ETOOBIG, "path too long");

  char batch[16], pythonpath[4200];
  snprintf(batch, sizeof batch, "%d", a->max_batch);
  const char *old = getenv("PYTHONPATH");
  snprintf(pythonpath, sizeof pythonpath, "PYTHONPATH=%s%s%s", WK_PYTHON_DIR,
           old && *old ? ":" : "", old ? old : "");
  const char *python = getenv("WICK_PYTHON") ? getenv("WICK_PYTHON") : WK_DEFAULT_PYTHON;
  const char *argv[12] = {python, "-m", "wick_worker.aot_compile", "--exported", exported,
                          "--out", a->package, "--max-batch", batch};
  if (example_inputs) {
    argv[9] = "--example-inputs";
    argv[10] = example_inputs;
  }
  /* the environment with PYTHONPATH replaced */
  size_t n = 0;
  while (environ[n]) n++;
  char **env = calloc(n + 2, sizeof *env);
  if (env == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "PYTHONPATH=", 11) != 0) env[k++] = environ[i];
  env[k++] = pythonpath;
  int out[2];
  if (pipe(out) != 0) {
    free(env);
    return wk_err(err, WK_EIO, "pipe: %s", strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  fprintf(stderr, "wick pack: compiling %s with %s (batch 1..%d); this takes a while\n", exported,
          python, a->max_batch);
  pid_t pid;
  int sp = posix_spawn(&pid, python, &fa, NULL, (char *const *)argv, env);
  posix_spawn_file_actions_destroy(&fa);
  free(env);
  close(out[1]);
  if (sp != 0) {
    close(out[0]);
    return wk_err(err, WK_EIO, "cannot run %s: %s", python, strerror(sp));
  }
  /* The compiler's stdout: keep its last line ("torch X"). */
  char line[256] = "", buf[4096];
  size_t used = 0;
  ssize_t got;
  while ((got = read(out[0], buf, sizeof buf)) > 0 || (got < 0 && errno == EINTR)) {
    for (ssize_t i = 0; i < got; i++) {
      if (buf[i] == '\n') {
        if (used) line[used] = '\0';
        used = 0;
      } else if (used + 1 < sizeof line) {
        line[used++] = buf[i];
      }
    }
  }
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return wk_err(err, WK_EMODEL,
                  "--aot-compile: compiling %s failed (%s %d; its messages are above)", exported,
                  WIFEXITED(status) ? "python exited with" : "python died of signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  if (strncmp(line, "torch ", 6) != 0 || !wk_fs_exists(a->package))
    return wk_err(err, WK_EMODEL, "--aot-compile: the compiler wrote no package");
  snprintf(a->torch_version, sizeof a->torch_version, "%.60s", line + 6);
  return 0;
}

void wk__aot_done(wk__aot_t *a) {
  if (a->dir[0]) wk_fs_rmtree(a->dir);
  a->dir[0] = '\0';
}
