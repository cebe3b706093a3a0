/* AOTInductor packages (.pt2, from torch._inductor.aoti_compile_and_package), checked with
 * wick's zip reader before libtorch's loader unpacks one: a package is native code (a
 * compiled shared library per model) that wick will load and run. */
#ifndef WK_ARCHIVE_PT2_H
#define WK_ARCHIVE_PT2_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if path is a zip holding an AOTInductor model (<folder>/data/aotinductor/model/), 0 if it
 * is not one (TorchScript, a state_dict, a torch.export.save'd ExportedProgram, anything
 * else), or a negative WK_E* code with err set when it is one that wick refuses: an unsafe
 * entry name (absolute, "..", NUL), a link, or no compiled library (.so) for the model (a
 * package of C++ sources would make libtorch run a compiler: wick does not), or a file
 * named *.pt2 that is no readable zip (truncated, corrupt). Any thread. */
int wk_pt2_check(const char *path, wk_err_t *err);
/* The same for a package in memory (read out of an archive); name is its file name. */
int wk_pt2_check_mem(const char *name, const void *data, size_t len, wk_err_t *err);

/* 1 if path is a torch.export.save'd ExportedProgram (a zip with <folder>/models/<name>.json and
 * no compiled model): a graph that runs in Python, natively once compiled (wick pack
 * --aot-compile). Any thread. */
int wk_pt2_is_exported(const char *path);

enum { WK_PT2_MAX_DIMS = 8, WK_PT2_MAX_INPUTS = 32 };

/* What the package's model accepts for one input, as its compiled code checks it. */
typedef struct wk_pt2_input_s {
  char dtype[16];                /* torch's name ("float32", "int64"); "" when not recorded */
  int ndim;                      /* 0 when no dimension is recorded */
  int64_t min[WK_PT2_MAX_DIMS];  /* a fixed dimension has min == max */
  int64_t max[WK_PT2_MAX_DIMS];  /* -1: no upper bound */
} wk_pt2_input_t;

/* A package's metadata and input specs. The package records no input names (inputs are
 * positional: INPUT__0, INPUT__1, ...) and no torch version. */
typedef struct wk_pt2_spec_s {
  char device[16];   /* "cpu" or "cuda" (AOTI_DEVICE_KEY) */
  char platform[16]; /* "linux" */
  char cpu_isa[64];  /* the CPU features it was compiled for ("AVX512 AVX512_VNNI"); "" */
  char models[128];  /* the models the package holds, space-separated; wick runs "model" */
  char library[256]; /* the model's compiled library (entry name) and its size */
  uint64_t library_size;
  size_t ninputs;    /* 0 when the package's generated sources are not in it (or not read) */
  size_t noutputs;   /* leaves of its output spec; 0 when unknown */
  wk_pt2_input_t inputs[WK_PT2_MAX_INPUTS];
  int64_t batch_min; /* the range dimension 0 of every input shares: rows per forward; */
  int64_t batch_max; /* batch_max -1: unbounded; both 0 when the inputs share none */
} wk_pt2_spec_t;

/* Reads the spec of a package (strings from it made printable): the metadata JSON and, from the
 * generated wrapper source the package keeps beside its library, the checks its compiled
 * code makes of each input (dtype, sizes, the dynamic dimensions' range). Fields it cannot
 * find stay empty (see above). 0 or WK_E* with err set (not a package, unreadable). */
int wk_pt2_read_spec(const char *path, wk_pt2_spec_t *spec, wk_err_t *err);
int wk_pt2_read_spec_mem(const char *name, const void *data, size_t len, wk_pt2_spec_t *spec,
                         wk_err_t *err);

/* The CPU features named in isa (a package's AOTI_CPU_ISA, "AVX512 AVX512_VNNI") that this
 * CPU lacks, space-separated into out; returns how many. Names wick does not know count as
 * present. A package's kernels use the features it was compiled for: run on a CPU without
 * them, they die of an illegal instruction. */
size_t wk_pt2_cpu_missing(const char *isa, char *out, size_t cap);

/* Writes "float32 [2..8, 16]" (a dimension with no upper bound is "2.."; an input with no
 * recorded dimensions is just its dtype, or "tensor") into out. */
void wk_pt2_input_describe(const wk_pt2_input_t *in, char *out, size_t cap);

/* Parses the generated wrapper's source text (wk_pt2_read_spec does this): exposed for the
 * unit tests. Returns the number of inputs found. */
size_t wk_pt2_parse_wrapper(const char *text, size_t len, wk_pt2_spec_t *spec);

#ifdef __cplusplus
}
#endif

#endif
