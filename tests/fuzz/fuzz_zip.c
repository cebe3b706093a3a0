/* Fuzz target for the zip reader: opens the input with wk_zip_open_mem and reads every
 * entry (CRC, inflate, limits). Nothing may crash, leak or read outside the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive/zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wk_zip_t *z;
  wk_err_t err;
  if (wk_zip_open_mem(data, size, &z, &err) != 0) return 0;
  size_t map_len;
  const uint8_t *map = wk_zip_map(z, &map_len);
  for (size_t i = 0; i < wk_zip_count(z); i++) {
    const wk_zip_entry_t *e = wk_zip_entry(z, i);
    if (e == NULL || strlen(e->name) > e->name_len) abort();
    if (e->size > 64u * 1024 * 1024) continue; /* keep each run small */
    const void *p;
    size_t len;
    void *to_free;
    if (wk_zip_read(z, i, &p, &len, &to_free, &err) == 0) {
      if (len != e->size) abort();
      if (to_free == NULL && ((const uint8_t *)p < map || (const uint8_t *)p + len > map + map_len))
        abort();
      volatile uint8_t sink = 0;
      for (size_t k = 0; k < len; k += 4096)
        sink ^= ((const uint8_t *)p)[k];
      (void)sink;
      free(to_free);
    }
    (void)wk_zip_data_offset(z, i);
  }
  (void)wk_zip_find(z, "MAR-INF/MANIFEST.json");
  wk_zip_close(z);
  return 0;
}
