/* Server reflection (see reflection.h). The embedded FileDescriptorSet is indexed once: each
 * file's name, imports and the fully qualified names it declares (services, their methods,
 * messages with their nested ones, enums), read with a small protobuf walker of its own
 * (descriptor.proto is not compiled in: only these few fields are needed). */
#include "grpc/reflection.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"

/* the FileDescriptorSet protoc wrote for proto/ (gen/descriptor_set.c) */
extern const unsigned char wk_grpc_descriptor_set[];
extern const size_t wk_grpc_descriptor_set_len;

const char *const wk_grpc_reflection_paths[2] = {
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
};

#define MAX_FILES 32
#define MAX_DEPS 16
#define MAX_SYMBOLS 1024

typedef struct {
  char name[128];
  const uint8_t *bytes; /* the serialized FileDescriptorProto */
  size_t len;
  char deps[MAX_DEPS][128];
  int n_deps;
} file_t;

typedef struct {
  char name[160];
  int file;
} symbol_t;

static file_t files[MAX_FILES];
static int n_files;
static symbol_t symbols[MAX_SYMBOLS];
static int n_symbols;
static pthread_once_t indexed = PTHREAD_ONCE_INIT;

/* ---- a protobuf walker: the fields of one message, one at a time ---- */

typedef struct {
  const uint8_t *p, *end;
} walk_t;

static int varint(walk_t *w, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64 && w->p < w->end; shift += 7) {
    uint8_t b = *w->p++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

/* The next field: its number, and for a length-delimited one its bytes; other wire types
 * are skipped over (*data NULL). 1 for a field, 0 at the end, -1 when malformed. */
static int next_field(walk_t *w, uint32_t *number, const uint8_t **data, size_t *len) {
  if (w->p >= w->end) return 0;
  uint64_t key, v;
  if (varint(w, &key) != 0) return -1;
  *number = (uint32_t)(key >> 3);
  *data = NULL;
  *len = 0;
  switch (key & 7) {
  case 0: return varint(w, &v) == 0 ? 1 : -1;
  case 1: if (w->end - w->p < 8) return -1; w->p += 8; return 1;
  case 5: if (w->end - w->p < 4) return -1; w->p += 4; return 1;
  case 2:
    if (varint(w, &v) != 0 || v > (uint64_t)(w->end - w->p)) return -1;
    *data = w->p;
    *len = (size_t)v;
    w->p += v;
    return 1;
  default: return -1;
  }
}

static void copy_str(char *out, size_t size, const uint8_t *data, size_t len) {
  snprintf(out, size, "%.*s", (int)len, (const char *)data);
}

static void add_symbol(const char *prefix, const uint8_t *name, size_t len, int file, char *full, size_t size) {
  snprintf(full, size, "%s%s%.*s", prefix, prefix[0] ? "." : "", (int)len, (const char *)name);
  if (n_symbols < MAX_SYMBOLS) {
    snprintf(symbols[n_symbols].name, sizeof symbols[n_symbols].name, "%s", full);
    symbols[n_symbols++].file = file;
  }
}

/* The name of a message/enum/service (field 1) and the names inside it: nested messages
 * (3) and enums (4) of a message, methods (2) of a service. */
static void index_decl(const uint8_t *data, size_t len, const char *prefix, int file, int kind) {
  walk_t w = {data, data + len};
  uint32_t n;
  const uint8_t *d, *name = NULL;
  size_t l, name_len = 0;
  while (next_field(&w, &n, &d, &l) == 1)
    if (n == 1 && d) name = d, name_len = l;
  if (name == NULL) return;
  char full[160];
  add_symbol(prefix, name, name_len, file, full, sizeof full);
  w = (walk_t){data, data + len};
  while (next_field(&w, &n, &d, &l) == 1) {
    if (d == NULL) continue;
    if (kind == 'm' && n == 3) index_decl(d, l, full, file, 'm');
    else if (kind == 'm' && n == 4) index_decl(d, l, full, file, 'e');
    else if (kind == 's' && n == 2) index_decl(d, l, full, file, 'x'); /* a method */
  }
}

static void index_files(void) {
  walk_t set = {wk_grpc_descriptor_set, wk_grpc_descriptor_set + wk_grpc_descriptor_set_len};
  uint32_t n;
  const uint8_t *d;
  size_t l;
  while (next_field(&set, &n, &d, &l) == 1 && n_files < MAX_FILES) {
    if (n != 1 || d == NULL) continue;
    file_t *f = &files[n_files];
    f->bytes = d;
    f->len = l;
    char package[128] = "";
    walk_t w = {d, d + l};
    const uint8_t *fd;
    size_t fl;
    while (next_field(&w, &n, &fd, &fl) == 1) {
      if (fd == NULL) continue;
      if (n == 1) copy_str(f->name, sizeof f->name, fd, fl);
      else if (n == 2) copy_str(package, sizeof package, fd, fl);
      else if (n == 3 && f->n_deps < MAX_DEPS) copy_str(f->deps[f->n_deps++], sizeof f->deps[0], fd, fl);
    }
    w = (walk_t){d, d + l};
    while (next_field(&w, &n, &fd, &fl) == 1) {
      if (fd == NULL) continue;
      if (n == 4) index_decl(fd, fl, package, n_files, 'm');
      else if (n == 5) index_decl(fd, fl, package, n_files, 'e');
      else if (n == 6) index_decl(fd, fl, package, n_files, 's');
    }
    n_files++;
  }
}

static int file_named(const char *name) {
  for (int i = 0; i < n_files; i++)
    if (strcmp(files[i].name, name) == 0) return i;
  return -1;
}

/* f and every file it imports, each once, into list (which holds *n already). */
static void with_imports(int f, int *list, int *n) {
  for (int i = 0; i < *n; i++)
    if (list[i] == f) return;
  list[(*n)++] = f;
  for (int d = 0; d < files[f].n_deps; d++) {
    int k = file_named(files[f].deps[d]);
    if (k >= 0) with_imports(k, list, n);
  }
}

int wk_grpc_reflection_answer(const char *const *services, size_t n_services, const uint8_t *req, size_t len,
                              uint8_t **out, size_t *out_len) {
  pthread_once(&indexed, index_files);
  Grpc__Reflection__V1alpha__ServerReflectionRequest *in =
      grpc__reflection__v1alpha__server_reflection_request__unpack(NULL, len, req);
  if (in == NULL) return WK_EINVAL;
  Grpc__Reflection__V1alpha__ServerReflectionResponse r = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ListServiceResponse list = GRPC__REFLECTION__V1ALPHA__LIST_SERVICE_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__FileDescriptorResponse fds = GRPC__REFLECTION__V1ALPHA__FILE_DESCRIPTOR_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ExtensionNumberResponse ext = GRPC__REFLECTION__V1ALPHA__EXTENSION_NUMBER_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ErrorResponse error = GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ServiceResponse svc[64];
  Grpc__Reflection__V1alpha__ServiceResponse *svcp[64];
  ProtobufCBinaryData blobs[MAX_FILES];
  int chosen[MAX_FILES], n_chosen = 0, found = -1;
  char message[300];
  r.valid_host = in->host;
  r.original_request = in;
  switch (in->message_request_case) {
  case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
    for (size_t i = 0; i < n_services && i < 64; i++) {
      grpc__reflection__v1alpha__service_response__init(&svc[i]);
      svc[i].name = (char *)services[i];
      svcp[list.n_service++] = &svc[i];
    }
    list.service = svcp;
    r.message_response_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    r.list_services_response = &list;
    break;
  case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
    found = file_named(in->file_by_filename);
    snprintf(message, sizeof message, "no file named %.200s", in->file_by_filename);
    break;
  case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
    const char *sym = in->file_containing_symbol[0] == '.' ? in->file_containing_symbol + 1 : in->file_containing_symbol;
    for (int i = 0; i < n_symbols && found < 0; i++)
      if (strcmp(symbols[i].name, sym) == 0) found = symbols[i].file;
    snprintf(message, sizeof message, "no symbol %.200s", sym);
    break;
  }
  case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
    const char *t = in->all_extension_numbers_of_type;
    int known = 0;
    for (int i = 0; i < n_symbols && !known; i++) known = strcmp(symbols[i].name, t[0] == '.' ? t + 1 : t) == 0;
    if (known) { /* wick's messages have no extensions */
      ext.base_type_name = (char *)t;
      r.message_response_case =
          GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
      r.all_extension_numbers_response = &ext;
    }
    snprintf(message, sizeof message, "no type %.200s", t);
    break;
  }
  default:
    snprintf(message, sizeof message, "wick's messages declare no extensions");
    break;
  }
  if (found >= 0) {
    with_imports(found, chosen, &n_chosen);
    for (int i = 0; i < n_chosen; i++) {
      blobs[i].data = (uint8_t *)files[chosen[i]].bytes;
      blobs[i].len = files[chosen[i]].len;
    }
    fds.n_file_descriptor_proto = (size_t)n_chosen;
    fds.file_descriptor_proto = blobs;
    r.message_response_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    r.file_descriptor_response = &fds;
  } else if (r.message_response_case == GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE__NOT_SET) {
    error.error_code = 5; /* NOT_FOUND */
    error.error_message = message;
    r.message_response_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    r.error_response = &error;
  }
  size_t n = grpc__reflection__v1alpha__server_reflection_response__get_packed_size(&r);
  *out = malloc(n ? n : 1);
  if (*out == NULL) {
    grpc__reflection__v1alpha__server_reflection_request__free_unpacked(in, NULL);
    return WK_ENOMEM;
  }
  *out_len = grpc__reflection__v1alpha__server_reflection_response__pack(&r, *out);
  grpc__reflection__v1alpha__server_reflection_request__free_unpacked(in, NULL);
  return 0;
}
