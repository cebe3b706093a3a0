/* libFuzzer target for tensor/oip: arbitrary bytes as a KServe v2 JSON request body. What
 * parses must be consistent (sizes match shapes) and must write back as a response whose
 * JSON part parses; every failure must say why. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_oip_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wk_fuzz_oip_check((const char *)data, size, size);
  return 0;
}
