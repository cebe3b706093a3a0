/* model-config.yaml: TorchServe's per-model settings plus wick's own `wick:` section.
 * The whole document is also kept as a generic tree for handlers that read other keys. */
#ifndef WK_ARCHIVE_MODEL_CONFIG_H
#define WK_ARCHIVE_MODEL_CONFIG_H

#include <stddef.h>

#include "core/error.h"

/* A YAML node: scalar, sequence or mapping. Heap tree owned by its root. */
typedef enum { WK_YAML_SCALAR, WK_YAML_SEQ, WK_YAML_MAP } wk_yaml_kind_t;

typedef struct wk_yaml_s {
  wk_yaml_kind_t kind;
  char *scalar;             /* WK_YAML_SCALAR: the text, as written */
  char **keys;              /* WK_YAML_MAP */
  struct wk_yaml_s **items; /* WK_YAML_SEQ items, WK_YAML_MAP values */
  size_t count;
  int plain;   /* WK_YAML_SCALAR: 1 when unquoted and untagged (or tagged !!int, !!float,
                * !!bool, !!null), so that it may read as a number, bool or null; 0 when
                * quoted, block (| >) or tagged !!str */
  size_t line; /* 1-based line where the node starts (for a copy of an anchored node
                * made by an alias: the alias's line) */
} wk_yaml_t;

/* Parses a YAML document (one document; anchors/aliases resolved as copies are refused
 * beyond a size limit). Empty input gives an empty map. Caller frees with wk_yaml_free. */
int wk_yaml_parse(const char *text, size_t len, wk_yaml_t **out, wk_err_t *err);
void wk_yaml_free(wk_yaml_t *y);
/* Value of key in a map, or NULL. */
const wk_yaml_t *wk_yaml_get(const wk_yaml_t *map, const char *key);
/* YAML 1.1 reading of a plain scalar, as PyYAML's safe_load does it. Quoted scalars are
 * strings: these fail with WK_EINVAL for them, for lists and maps. */
/* 1 for a missing node (NULL) or a plain ~, null, Null, NULL or empty scalar. */
int wk_yaml_is_null(const wk_yaml_t *n);
/* true/false, yes/no, on/off (in lower, Capitalized or UPPER case). */
int wk_yaml_as_bool(const wk_yaml_t *n, int *out);
/* Decimal, 0x hex, 0 octal, 0b binary, with _ separators, and sexagesimal (1:30). Returns
 * WK_ETOOBIG for an integer beyond long long. */
int wk_yaml_as_int(const wk_yaml_t *n, long long *out);
/* An int or a YAML 1.1 float (1.5, 1.0e+3, .inf, .nan; note that 1e3 is a string). */
int wk_yaml_as_double(const wk_yaml_t *n, double *out);
/* Writes the tree as JSON (scalars that read as YAML 1.1 ints/floats/bools/null become
 * JSON numbers/bools/null, the rest strings). Returns a malloc'd string or NULL. */
char *wk_yaml_to_json(const wk_yaml_t *y);

/* The settings wick acts on. -1 (or NULL) means "not set in the file": the server's
 * defaults apply. */
typedef struct wk_model_config_s {
  int min_workers;
  int max_workers;
  int batch_size;
  int max_batch_delay_ms;
  int response_timeout_s;
  int startup_timeout_s;
  int job_queue_size;
  char *device_type; /* "cpu", "gpu", ... */
  int device_ids[16];
  int n_device_ids;
  /* wick: section */
  char *wick_runtime; /* "native" or "python" */
  int wick_threads;   /* intra-op threads for native workers */
  int wick_freeze;    /* freeze + optimize_for_inference at load: 1, 0, or -1 = default */
  /* wick.weights: a checkpoint in the archive copied into the native module at load */
  char *wick_weights_file;        /* relative to the model directory; NULL: none */
  char *wick_weights_association; /* weights/transfer.h's names; NULL: isomorphism */
  int wick_weights_mangle;        /* 1, 0, or -1 = default (no) */
  int wick_weights_strict;        /* fail the load unless a perfect fit: 1, 0, -1 = no */
  /* system: section (the model-servers handler_factory convention) */
  char **extra_files; /* system.extraFiles: archive names in the model directory */
  size_t n_extra_files;
  double max_gpu_memory_mb; /* system.maxGPUMemory in MB; -1 = not set */
  wk_yaml_t *root;          /* the whole document (owned) */
} wk_model_config_t;

void wk_model_config_init(wk_model_config_t *c);
void wk_model_config_destroy(wk_model_config_t *c);
/* Parses model-config.yaml bytes. A known key of the wrong type is an error naming the
 * key and the expected type ("batchSize: expected an integer, got 'big'"). */
int wk_model_config_parse(const char *text, size_t len, wk_model_config_t *c, wk_err_t *err);

#endif
