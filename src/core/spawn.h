/* posix_spawn attributes for the processes wick starts (Python workers, their template,
 * pip): signals wick ignores or waits for (SIGPIPE, SIGTERM, SIGINT) back to their
 * defaults and nothing blocked, whatever wick's threads had. Any thread. */
#ifndef WK_CORE_SPAWN_H
#define WK_CORE_SPAWN_H

#include <spawn.h>

/* Initialises at as above, with extra_flags (POSIX_SPAWN_SETPGROUP, ...) also set. Destroy
 * it with posix_spawnattr_destroy. */
void wk_spawnattr_init(posix_spawnattr_t *at, short extra_flags);

#endif
