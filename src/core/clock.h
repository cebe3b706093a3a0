/* A monotonic clock in microseconds, for deadlines, timeouts and latencies. Nothing else. */
#ifndef WK_CORE_CLOCK_H
#define WK_CORE_CLOCK_H

#include <stdint.h>

/* Microseconds since an arbitrary point (CLOCK_MONOTONIC). Any thread. */
int64_t wk_now_us(void);

#endif
