/* libFuzzer target for tensor/oip with the binary tensor data extension: the first two
 * bytes give the JSON header's length (Inference-Header-Content-Length), the rest is the
 * body: JSON, then binary tensor data. Same checks as fuzz_oip_json. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_oip_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t json_len = (size_t)data[0] | (size_t)data[1] << 8;
  wk_fuzz_oip_check((const char *)data + 2, size - 2, json_len);
  return 0;
}
