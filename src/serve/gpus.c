/* Workers' devices (see gpus.h). */
#include "serve/gpus.h"

#include <dirent.h>
#include <string.h>

#include "core/log.h"
#include "serve/model_internal.h"

int wk__gpus_count(void) {
  DIR *d = opendir("/proc/driver/nvidia/gpus");
  if (d == NULL) return 0;
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

int wk__gpus_of(const wk__gpus_t *g, int index) {
  return g->n > 0 && index >= 0 ? g->ids[index % g->n] : -1;
}

int wk__gpus_assign(const wk_model_t *m, wk__gpus_t *g, wk_err_t *err) {
  const char *dt = m->config.device_type;
  g->n = 0;
  if (dt != NULL && strcmp(dt, "cpu") != 0 && strcmp(dt, "gpu") != 0)
    return wk_err(err, WK_EINVAL, "model '%s': deviceType: expected cpu or gpu, got '%s'", m->name,
                  dt);
  int ngpu = wk__gpus_count();
  if (dt != NULL ? strcmp(dt, "gpu") != 0 : ngpu == 0) return 0;
  if (m->config.n_device_ids > WK__MAX_GPUS)
    return wk_err(err, WK_EINVAL, "model '%s': deviceIds: at most %d", m->name, WK__MAX_GPUS);
  if (m->config.n_device_ids > 0) {
    for (int i = 0; i < m->config.n_device_ids; i++) {
      int id = m->config.device_ids[i];
      if (ngpu > 0 && id >= ngpu)
        return wk_err(err, WK_EINVAL,
                      "model '%s': deviceIds[%d] is %d, but this machine has %d GPU(s) (ids 0 "
                      "to %d)",
                      m->name, i, id, ngpu, ngpu - 1);
      g->ids[i] = id;
    }
    g->n = m->config.n_device_ids;
  } else if (ngpu > 0) {
    for (int i = 0; i < ngpu && i < WK__MAX_GPUS; i++) g->ids[i] = i;
    g->n = ngpu < WK__MAX_GPUS ? ngpu : WK__MAX_GPUS;
  } else {
    wk_log_warn("model %s: deviceType is gpu, but no GPU was found (no /proc/driver/nvidia/gpus) "
                "and no deviceIds are given; its workers run on the CPU",
                m->name);
  }
  return 0;
}
