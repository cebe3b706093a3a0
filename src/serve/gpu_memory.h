/* Each GPU's memory as the NVIDIA driver counts it (every process's use, Python workers'
 * included), read through NVML (libnvidia-ml.so.1, part of the driver), opened at run time:
 * wick needs no CUDA to build, and a machine without the driver has no GPUs to show. */
#ifndef WK_SERVE_GPU_MEMORY_H
#define WK_SERVE_GPU_MEMORY_H

#include <stdint.h>

#define WK_GPU_MEMORY_MAX 16

typedef struct wk_gpu_memory_s {
  int index;      /* NVML's index (CUDA's too unless CUDA_DEVICE_ORDER or
                     CUDA_VISIBLE_DEVICES reorder them) */
  char name[96];
  uint64_t used, total; /* bytes */
} wk_gpu_memory_t;

/* Fills up to cap entries; returns how many (0 without a driver or a GPU). Any thread. */
int wk_gpu_memory(wk_gpu_memory_t *out, int cap);

#endif
