/* Fuzz target for the tgz reader: the input is handed to wk_tar_reader through a memfd
 * and every entry's data is read. Nothing may crash, leak or loop. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "archive/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = memfd_create("fuzz_tar", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (write(fd, data, size) != (ssize_t)size) {
    close(fd);
    return 0;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  wk_tar_reader_t *r;
  wk_err_t err;
  if (wk_tar_reader_open(path, &r, &err) == 0) {
    const wk_tar_entry_t *e;
    char buf[4096];
    int entries = 0;
    while (entries++ < 1000 && wk_tar_next(r, &e, &err) == 1) {
      size_t got, total = 0;
      while (total < (1u << 20) && wk_tar_read(r, buf, sizeof buf, &got, &err) == 0 && got > 0)
        total += got;
    }
    wk_tar_reader_close(r);
  }
  close(fd);
  return 0;
}
