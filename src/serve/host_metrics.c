/* TorchServe's host-level gauges (see host_metrics.h), read from /proc and statvfs. */
#include "serve/host_metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

static _Atomic int64_t g_queue_us = 0, g_thread_us = 0;

void wk_host_metrics_queue_time(int64_t us) { atomic_store(&g_queue_us, us); }
void wk_host_metrics_worker_thread_time(int64_t us) { atomic_store(&g_thread_us, us); }

/* The busy share of all CPUs since the previous call, in percent; -1 when /proc/stat
 * cannot be read. */
static double cpu_percent(void) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static unsigned long long prev_total, prev_idle;
  unsigned long long v[10] = {0};
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL) return -1;
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                 &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
  fclose(f);
  if (n < 4) return -1;
  unsigned long long total = 0, idle = v[3] + v[4]; /* idle + iowait */
  for (int i = 0; i < 8; i++) total += v[i];           /* guest time is inside user already */
  pthread_mutex_lock(&lock);
  unsigned long long dt = total - prev_total, di = idle - prev_idle;
  prev_total = total;
  prev_idle = idle;
  pthread_mutex_unlock(&lock);
  return dt ? 100.0 * (double)(dt - di) / (double)dt : 0.0;
}

int wk_host_meminfo(unsigned long long *total_kb, unsigned long long *avail_kb) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (f == NULL) return -1;
  char line[256];
  *total_kb = *avail_kb = 0;
  while (fgets(line, sizeof line, f)) {
    sscanf(line, "MemTotal: %llu kB", total_kb);
    sscanf(line, "MemAvailable: %llu kB", avail_kb);
  }
  fclose(f);
  return *total_kb ? 0 : -1;
}

static void gauge(wk_buf_t *b, const char *name, const char *unit, const char *host, double v) {
  wk_buf_printf(b, "# HELP %s TorchServe's host gauge, unit: %s\n# TYPE %s gauge\n", name, unit,
                name);
  wk_buf_printf(b, "%s{Level=\"Host\",Hostname=", name);
  wk_buf_json_str(b, host);
  wk_buf_printf(b, "} %.6g\n", v);
}

void wk_host_metrics(wk_buf_t *b, const char *host) {
  gauge(b, "QueueTime", "Milliseconds", host, (double)atomic_load(&g_queue_us) / 1000.0);
  gauge(b, "WorkerThreadTime", "Milliseconds", host, (double)atomic_load(&g_thread_us) / 1000.0);
  double cpu = cpu_percent();
  if (cpu >= 0) gauge(b, "CPUUtilization", "Percent", host, cpu);
  unsigned long long total, avail;
  if (wk_host_meminfo(&total, &avail) == 0) {
    gauge(b, "MemoryUsed", "Megabytes", host, (double)(total - avail) / 1024.0);
    gauge(b, "MemoryAvailable", "Megabytes", host, (double)avail / 1024.0);
    gauge(b, "MemoryUtilization", "Percent", host, 100.0 * (double)(total - avail) / (double)total);
  }
  struct statvfs fs;
  if (statvfs("/", &fs) == 0 && fs.f_blocks > 0) {
    double unit = (double)fs.f_frsize, gb = 1024.0 * 1024.0 * 1024.0;
    double used = (double)(fs.f_blocks - fs.f_bfree) * unit, free_ = (double)fs.f_bavail * unit;
    gauge(b, "DiskUsage", "Gigabytes", host, used / gb);
    gauge(b, "DiskAvailable", "Gigabytes", host, free_ / gb);
    gauge(b, "DiskUtilization", "Percent", host, used + free_ > 0 ? 100.0 * used / (used + free_) : 0);
  }
}
