/* A monotonic clock in microseconds, for deadlines, timeouts and latencies; and the
 * wall-clock instants that condition-variable waits take. */
#ifndef WK_CORE_CLOCK_H
#define WK_CORE_CLOCK_H

#include <stdint.h>

/* Microseconds since an arbitrary point (CLOCK_MONOTONIC). Any thread. */
int64_t wk_now_us(void);

struct timespec;
/* The wall-clock time (CLOCK_REALTIME, what pthread_cond_timedwait takes by default)
 * delta_us from now, in *out. Any thread. */
void wk_realtime_in(int64_t delta_us, struct timespec *out);

#endif
