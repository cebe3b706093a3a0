/* MAR-INF/MANIFEST.json: TorchServe's archive manifest, parsed and written.
 * Parsing validates types and reports the field at fault; it never trusts sizes. */
#ifndef WK_ARCHIVE_MANIFEST_H
#define WK_ARCHIVE_MANIFEST_H

#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

/* Every string is heap-owned (freed by wk_manifest_destroy) and NULL when absent. */
typedef struct wk_manifest_s {
  char *runtime;          /* "python" for every torch-model-archiver archive */
  char *model_name;       /* model.modelName (required) */
  char *model_version;    /* model.modelVersion */
  char *serialized_file;  /* model.serializedFile */
  char *handler;          /* model.handler */
  char *model_file;       /* model.modelFile */
  char *extra_files;      /* model.extraFiles: comma-separated, as torch-model-archiver writes */
  char *requirements_file;/* model.requirementsFile */
  char *config_file;      /* model.configFile */
  char *model_class;      /* model.modelClass: MODEL_CLASS of the V1 adapter handlers (wick's
                           * own field; TorchServe ignores it) */
  char *compiled_with_torch; /* model.compiledWithTorch (wick's): the torch version that
                               compiled serializedFile, an AOTInductor package, when wick pack
                               --aot-compile made it (a package records none) */
  char *archiver_version; /* archiverVersion */
  char *created_on;       /* createdOn, "dd/mm/YYYY HH:MM:SS" */
} wk_manifest_t;

void wk_manifest_init(wk_manifest_t *m);
void wk_manifest_destroy(wk_manifest_t *m);

/* Parses JSON bytes. On failure m is left empty and err says which field or which
 * line/column was wrong. */
int wk_manifest_parse(const char *json, size_t len, wk_manifest_t *m, wk_err_t *err);

/* Writes m as pretty JSON in torch-model-archiver's layout (absent fields omitted). */
int wk_manifest_write(const wk_manifest_t *m, wk_buf_t *out);

#endif
