/* Fuzz target for the OTF response decoder: parses frames back to back from the input
 * until it is used up or bad. Nothing may crash, leak or read outside the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "backend/otf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  while (off < size) {
    wk_otf_response_t r;
    size_t used = 0;
    wk_err_t err;
    int rc = wk_otf_parse_response(data + off, size - off, &r, &used, &err);
    if (rc != 0) break;
    if (used == 0 || used > size - off) abort();
    for (size_t i = 0; i < r.n_preds; i++) {
      volatile uint8_t sink = 0;
      if (r.preds[i].body_len > 0) sink ^= r.preds[i].body[r.preds[i].body_len - 1];
      (void)sink;
      (void)wk_otf_prediction_header(&r.preds[i], "content-type");
    }
    (void)wk_otf_response_streams(&r);
    wk_otf_response_destroy(&r);
    off += used;
  }
  return 0;
}
