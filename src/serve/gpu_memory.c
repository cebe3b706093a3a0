/* GPU memory through NVML (see gpu_memory.h), loaded with dlopen once; its few entry points
 * are declared here from NVML's documented C API rather than from its header, which the
 * build machine need not have. */
#include "serve/gpu_memory.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  unsigned long long total, free, used; /* nvmlMemory_t */
} nvml_memory_t;

static struct {
  int ok;
  int (*device_count)(unsigned int *);
  int (*handle_by_index)(unsigned int, void **);
  int (*memory_info)(void *, nvml_memory_t *);
  int (*name)(void *, char *, unsigned int);
} g_nvml;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void open_nvml(void) {
  void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) return;
  int (*init)(void) = (int (*)(void))dlsym(lib, "nvmlInit_v2");
  g_nvml.device_count = (int (*)(unsigned int *))dlsym(lib, "nvmlDeviceGetCount_v2");
  g_nvml.handle_by_index = (int (*)(unsigned int, void **))dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
  g_nvml.memory_info = (int (*)(void *, nvml_memory_t *))dlsym(lib, "nvmlDeviceGetMemoryInfo");
  g_nvml.name = (int (*)(void *, char *, unsigned int))dlsym(lib, "nvmlDeviceGetName");
  if (init == NULL || g_nvml.device_count == NULL || g_nvml.handle_by_index == NULL ||
      g_nvml.memory_info == NULL || init() != 0) {
    dlclose(lib);
    return;
  }
  g_nvml.ok = 1; /* kept open for the life of the process */
}

int wk_gpu_memory(wk_gpu_memory_t *out, int cap) {
  pthread_once(&g_once, open_nvml);
  if (!g_nvml.ok) return 0;
  unsigned int n = 0;
  if (g_nvml.device_count(&n) != 0) return 0;
  int k = 0;
  for (unsigned int i = 0; i < n && k < cap; i++) {
    void *dev = NULL;
    nvml_memory_t mem;
    if (g_nvml.handle_by_index(i, &dev) != 0 || g_nvml.memory_info(dev, &mem) != 0) continue;
    wk_gpu_memory_t *g = &out[k++];
    g->index = (int)i;
    g->used = mem.used;
    g->total = mem.total;
    if (g_nvml.name == NULL || g_nvml.name(dev, g->name, sizeof g->name) != 0)
      snprintf(g->name, sizeof g->name, "GPU %u", i);
    g->name[sizeof g->name - 1] = '\0';
  }
  return k;
}
