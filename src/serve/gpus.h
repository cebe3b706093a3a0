/* Which device each worker of a model runs on, from model-config.yaml's deviceType and
 * deviceIds, as TorchServe assigns them: deviceType gpu (or none, on a machine with GPUs)
 * spreads the workers round-robin over deviceIds (default: every GPU the driver lists);
 * deviceType cpu, or no GPU and no deviceIds, keeps them all on the CPU. Shared by the
 * native and the Python handler kinds. */
#ifndef WK_SERVE_GPUS_H
#define WK_SERVE_GPUS_H

#include "core/error.h"
#include "serve/model.h"

#define WK__MAX_GPUS 16

typedef struct wk__gpus_s {
  int ids[WK__MAX_GPUS]; /* worker i runs on ids[i % n] */
  int n;                 /* 0: every worker on the CPU */
} wk__gpus_t;

/* Fills g for m's config; WK_EINVAL with err set for a deviceType other than cpu/gpu or a
 * deviceId the machine does not have. Logs when gpu is asked for and none is found. */
int wk__gpus_assign(const wk_model_t *m, wk__gpus_t *g, wk_err_t *err);

/* The CUDA device of worker index, or -1 for the CPU. */
int wk__gpus_of(const wk__gpus_t *g, int index);

/* GPUs the NVIDIA driver lists (/proc/driver/nvidia/gpus/<bus id>/); 0 without one. */
int wk__gpus_count(void);

#endif
