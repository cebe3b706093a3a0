/* libFuzzer target: Java .properties parsing, and applying every key to a server config
 * (which checks known keys, addresses included). */
#include <stdint.h>
#include <stdlib.h>

#include "serve/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wk_props_t p;
  wk_err_t err;
  wk_props_init(&p);
  if (wk_props_parse((const char *)data, size, &p, &err) == 0) {
    wk_config_t c;
    wk_config_init(&c);
    for (size_t i = 0; i < p.count; i++)
      wk_config_set(&c, p.keys[i], p.values[i], &err);
    wk_config_destroy(&c);
  }
  wk_props_destroy(&p);
  return 0;
}
