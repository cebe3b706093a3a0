/* TorchServe's host-level gauges, in its Prometheus names and labels ({Level="Host",
 * Hostname=...}): CPUUtilization, MemoryUsed/Available/Utilization, DiskUsage/Available/
 * Utilization (of the file system holding /), and the last QueueTime and WorkerThreadTime
 * any model recorded. Dashboards built on TorchServe's metrics read them unchanged. */
#ifndef WK_SERVE_HOST_METRICS_H
#define WK_SERVE_HOST_METRICS_H

#include <stdint.h>

#include "core/buf.h"

/* Appends the gauges, labelled with host (a hostname). CPUUtilization is the busy share of
 * all CPUs since the previous call (since boot at the first). Any thread. */
void wk_host_metrics(wk_buf_t *b, const char *host);

/* The host's MemTotal and MemAvailable in kB (/proc/meminfo); -1 when unreadable. */
int wk_host_meminfo(unsigned long long *total_kb, unsigned long long *avail_kb);

/* The last values, in microseconds, set by the workers of every model. */
void wk_host_metrics_queue_time(int64_t us);
void wk_host_metrics_worker_thread_time(int64_t us);

#endif
