/* The monotonic microsecond clock (see clock.h). */
#include "core/clock.h"

#include <time.h>

int64_t wk_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void wk_realtime_in(int64_t delta_us, struct timespec *out) {
  clock_gettime(CLOCK_REALTIME, out);
  int64_t ns = out->tv_nsec + (delta_us % 1000000) * 1000;
  out->tv_sec += (time_t)(delta_us / 1000000 + ns / 1000000000);
  out->tv_nsec = (long)(ns % 1000000000);
}
