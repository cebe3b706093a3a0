/* Spawn attributes shared by every child wick starts. */
#include "core/spawn.h"

#include <signal.h>

void wk_spawnattr_init(posix_spawnattr_t *at, short extra_flags) {
  posix_spawnattr_init(at);
  sigset_t def, none;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  sigaddset(&def, SIGTERM);
  sigaddset(&def, SIGINT);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(at, &def);
  posix_spawnattr_setsigmask(at, &none);
  posix_spawnattr_setflags(at,
                           (short)(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | extra_flags));
}
