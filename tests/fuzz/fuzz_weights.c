/* Fuzz target for the safe .pt reader (weights/pickle.c, weights/pt.c). An input that
 * starts with "PK" is a whole checkpoint file; any other input is a data.pkl, wrapped here
 * into a checkpoint with two storages (archive/data/0: 256 bytes, archive/data/1: empty),
 * so that the pickle machine, storage bounds and naming are all reached. Every tensor read
 * is copied through its strides: nothing may read outside its storage. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "weights/pt.h"

static unsigned char *g_buf;
static size_t g_len, g_cap;

static void put(const void *p, size_t n) {
  if (g_len + n > g_cap) {
    g_cap = (g_len + n) * 2;
    g_buf = realloc(g_buf, g_cap);
    if (g_buf == NULL) abort();
  }
  memcpy(g_buf + g_len, p, n);
  g_len += n;
}

static void u16(unsigned v) {
  unsigned char b[2] = {v & 0xff, (v >> 8) & 0xff};
  put(b, 2);
}

static void u32(uint32_t v) {
  unsigned char b[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24};
  put(b, 4);
}

typedef struct ent_s {
  const char *name;
  const void *data;
  size_t len;
  uint32_t crc, off;
} ent_t;

/* A stored zip of the entries, in g_buf. */
static void make_zip(ent_t *e, int n) {
  g_len = 0;
  for (int i = 0; i < n; i++) {
    e[i].crc = (uint32_t)crc32(0, e[i].data, (uInt)e[i].len);
    e[i].off = (uint32_t)g_len;
    u32(0x04034b50), u16(20), u16(0), u16(0), u16(0), u16(0x21);
    u32(e[i].crc), u32((uint32_t)e[i].len), u32((uint32_t)e[i].len);
    u16((unsigned)strlen(e[i].name)), u16(0);
    put(e[i].name, strlen(e[i].name));
    put(e[i].data, e[i].len);
  }
  uint32_t cd = (uint32_t)g_len;
  for (int i = 0; i < n; i++) {
    u32(0x02014b50), u16(0x031e), u16(20), u16(0), u16(0), u16(0), u16(0x21);
    u32(e[i].crc), u32((uint32_t)e[i].len), u32((uint32_t)e[i].len);
    u16((unsigned)strlen(e[i].name)), u16(0), u16(0), u16(0), u16(0);
    u32(0100644u << 16), u32(e[i].off);
    put(e[i].name, strlen(e[i].name));
  }
  uint32_t cd_len = (uint32_t)g_len - cd;
  u32(0x06054b50), u16(0), u16(0), u16((unsigned)n), u16((unsigned)n);
  u32(cd_len), u32(cd), u16(0);
}

static void check(const wk_pt_tensor_t *t) {
  if (t->data == NULL || t->nbytes > (1u << 20)) return;
  void *tmp = malloc(t->nbytes ? t->nbytes : 1);
  if (tmp == NULL) abort();
  wk_pt_tensor_copy(t, tmp);
  free(tmp);
  if (t->name == NULL || wk_dtype_size(t->dtype) == 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static unsigned char storage[256];
  const void *file = data;
  size_t len = size;
  if (size < 2 || data[0] != 'P' || data[1] != 'K') {
    for (size_t i = 0; i < sizeof storage; i++)
      storage[i] = (unsigned char)i;
    ent_t e[] = {{"archive/data.pkl", data, size, 0, 0},
                 {"archive/data/0", storage, sizeof storage, 0, 0},
                 {"archive/data/1", storage, 0, 0, 0},
                 {"archive/version", "3\n", 2, 0, 0}};
    make_zip(e, 4);
    file = g_buf;
    len = g_len;
  }
  for (unsigned flags = 0; flags <= WK_PT_STRICT; flags += WK_PT_STRICT) {
    wk_pt_t *pt;
    wk_err_t err;
    err.msg[0] = '\0';
    if (wk_pt_open_mem(file, len, flags, &pt, &err) != 0) {
      if (err.msg[0] == '\0') abort(); /* every refusal says why */
      continue;
    }
    for (size_t i = 0; i < wk_pt_count(pt); i++)
      check(wk_pt_tensor(pt, i));
    for (size_t i = 0; i < wk_pt_all_count(pt); i++)
      check(wk_pt_all_tensor(pt, i));
    for (size_t i = 0; i < wk_pt_opaque_count(pt); i++)
      if (wk_pt_opaque(pt, i)->global == NULL) abort();
    (void)wk_pt_find(pt, "weight");
    wk_pt_close(pt);
  }
  return 0;
}
