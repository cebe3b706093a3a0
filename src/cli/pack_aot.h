/* `wick pack --aot-compile`: a torch.export.save'd ExportedProgram compiled into an
 * AOTInductor package by the venv's Python (python -m wick_worker.aot_compile). */
#ifndef WK_CLI_PACK_AOT_H
#define WK_CLI_PACK_AOT_H

#include <stddef.h>

#include "core/error.h"

typedef struct wk__aot_s {
  char dir[4096];          /* the temporary folder the package is written in; "" when none */
  char package[4096];      /* dir/<the ExportedProgram's file name> */
  char torch_version[64];  /* the torch that compiled it ("2.14.1") */
  int max_batch;           /* the batch range's maximum: the config's batchSize */
} wk__aot_t;

/* Compiles exported (checked to be an ExportedProgram) with dimension 0 of every input
 * dynamic up to the batchSize of config_file (NULL or no batchSize: static), from the
 * example inputs in example_inputs (NULL: the program's saved sample inputs). The
 * compiler's messages go to stderr. 0, or WK_E* with err set; call wk__aot_done after
 * either. */
int wk__aot_compile(const char *exported, const char *example_inputs, const char *config_file,
                    wk__aot_t *out, wk_err_t *err);
/* Removes the temporary folder. */
void wk__aot_done(wk__aot_t *a);

#endif
