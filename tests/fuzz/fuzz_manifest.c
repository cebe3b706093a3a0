/* libFuzzer target: MAR-INF/MANIFEST.json parsing, and writing back what parsed (the
 * written text must parse again to the same model name). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wk_manifest_t m, back;
  wk_err_t err;
  wk_manifest_init(&m);
  wk_manifest_init(&back);
  if (wk_manifest_parse((const char *)data, size, &m, &err) == 0) {
    wk_buf_t out = WK_BUF_INIT;
    if (wk_manifest_write(&m, &out) == 0) {
      if (wk_manifest_parse(out.data, out.len, &back, &err) != 0 ||
          strcmp(back.model_name, m.model_name) != 0) {
        abort(); /* what we write must read back */
      }
    }
    wk_buf_destroy(&out);
  }
  wk_manifest_destroy(&back);
  wk_manifest_destroy(&m);
  return 0;
}
