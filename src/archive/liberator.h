/* torch_liberator deployments: finds, inside a zip, tgz or directory, the folder that
 * holds deploy_snapshot.pt and the liberated model .py (the one defining get_model_cls),
 * and its optional train_info.json. It reads names and the .py text only; it runs nothing
 * and unpacks nothing. */
#ifndef WK_ARCHIVE_LIBERATOR_H
#define WK_ARCHIVE_LIBERATOR_H

#include "core/error.h"

#define WK_LIBERATOR_SNAPSHOT "deploy_snapshot.pt"
#define WK_LIBERATOR_TRAIN_INFO "train_info.json"

/* Entry names inside the archive ("" when absent). folder is "" for a deployment at the
 * archive's root (as `wick pack --liberator-zip` writes it), else the top-level folder's
 * name (as torch_liberator writes its zip), without a trailing '/'. */
typedef struct wk_liberator_s {
  char folder[256];
  char snapshot[1024];
  char model_py[1024];
  char train_info[1024];
} wk_liberator_t;

/* Looks for a deployment in path (a .zip/.mar, .tar.gz or directory): deploy_snapshot.pt
 * at the root or in one top-level folder, beside exactly one .py that defines
 * get_model_cls (or, with no such file, exactly one .py: exports before 0.2 define only
 * make()). Returns 0 and fills *out, WK_ENOTFOUND when path is not a deployment (err says
 * what is missing), or another negative WK_E* code (unreadable, ambiguous, too big). On
 * failure *out is unchanged. Any thread. */
int wk_liberator_find(const char *path, wk_liberator_t *out, wk_err_t *err);

#endif
