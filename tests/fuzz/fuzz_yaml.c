/* libFuzzer target: model-config.yaml parsing (libyaml events to tree, typed keys, alias
 * limits) and the tree's conversion to JSON. */
#include <stdint.h>
#include <stdlib.h>

#include "archive/model_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wk_model_config_t c;
  wk_err_t err;
  wk_model_config_init(&c);
  if (wk_model_config_parse((const char *)data, size, &c, &err) == 0) {
    free(wk_yaml_to_json(c.root));
  }
  wk_model_config_destroy(&c);
  wk_yaml_t *y = NULL;
  if (wk_yaml_parse((const char *)data, size, &y, &err) == 0) {
    free(wk_yaml_to_json(y));
    wk_yaml_free(y);
  }
  return 0;
}
