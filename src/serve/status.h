/* What the operator's view shows (GET /status.json on the management port): each model
 * version's state, workers and queue, its traffic over the last minutes as a ring of
 * fixed-interval samples (requests/s, p50/p99 latency, mean batch, errors), the server's
 * process and GPU memory, and the most recent error answers of every model. Sampling is
 * done by each model's monitor thread (serve/pool.c); this module only keeps and prints. */
#ifndef WK_SERVE_STATUS_H
#define WK_SERVE_STATUS_H

#include <stdint.h>

#include "serve/model.h"

struct json_t;

/* Samples each model keeps: 90 of status_interval_ms (10 s: 15 minutes). */
#define WK_STATUS_SAMPLES 90
#define WK_STATUS_DEFAULT_INTERVAL_MS 10000
/* Error answers the server remembers, newest first; longer messages are cut. */
#define WK_STATUS_RECENT_ERRORS 100
#define WK_STATUS_MESSAGE_MAX 400

/* The object of one model version (a new reference): name, version, default, runtime,
 * handler, device, settings, workers, queue, totals, answers by status, samples and the
 * sample in progress (whether it is healthy is the caller's to add). Any thread; m must stay registered during the call. */
struct json_t *wk_status_model(wk_model_t *m, int is_default);

/* The server's process: pid, version, start time, uptime, resident memory, the host's
 * memory and each GPU's memory (empty without GPUs). A new reference. Any thread. */
struct json_t *wk_status_process(void);

/* The recent error answers, newest first (a new reference): time, model, version, status,
 * message. Any thread. */
struct json_t *wk_status_recent_errors(void);

/* Remembers an error that no model version answered itself (a registration that failed:
 * version may be NULL). Any thread. */
void wk_status_note_error(const char *model, const char *version, int status, const char *msg);

#endif
