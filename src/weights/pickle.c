/* The restricted pickle machine: the opcodes of torch 1.13's weights-only unpickler plus
 * BINFLOAT (torch 2.x accepts it; optimizer states hold floats), its allowlisted globals,
 * and inert placeholders for anything else. No value is ever called or imported. */
#include "weights/pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"

struct wk_pickle_s {
  wk_pv_t *root;
  wk_pv_t **vals; /* every value made, for freeing */
  size_t nvals, capvals;
  wk_pv_t **tensors;
  size_t ntensors, captensors;
  unsigned walk;
};

typedef struct vm_s {
  wk_pickle_t *p;
  const unsigned char *d;
  size_t len, pos, op_pos;
  unsigned flags;
  wk_pv_t **stack;
  size_t sp, capstack;
  size_t marks[WK_MAX_PICKLE_DEPTH];
  size_t nmarks;
  wk_pv_t **memo;
  size_t capmemo;
  wk_err_t *err;
  int pv_rc; /* why the last pv_new failed */
} vm_t;

const char *wk_pv_kind_name(wk_pv_kind_t k) {
  static const char *names[] = {"None",   "bool",    "int",    "float",        "str",
                                "bytes",  "tuple",   "list",   "dict",         "set",
                                "global", "storage", "tensor", "opaque object"};
  return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static const char *op_name(unsigned char op) {
  switch (op) {
  case '(': return "MARK";
  case '.': return "STOP";
  case '0': return "POP";
  case '1': return "POP_MARK";
  case '2': return "DUP";
  case 'F': return "FLOAT";
  case 'I': return "INT";
  case 'J': return "BININT";
  case 'K': return "BININT1";
  case 'L': return "LONG";
  case 'M': return "BININT2";
  case 'N': return "NONE";
  case 'P': return "PERSID";
  case 'Q': return "BINPERSID";
  case 'R': return "REDUCE";
  case 'S': return "STRING";
  case 'T': return "BINSTRING";
  case 'U': return "SHORT_BINSTRING";
  case 'V': return "UNICODE";
  case 'X': return "BINUNICODE";
  case 'a': return "APPEND";
  case 'b': return "BUILD";
  case 'c': return "GLOBAL";
  case 'd': return "DICT";
  case '}': return "EMPTY_DICT";
  case 'e': return "APPENDS";
  case 'g': return "GET";
  case 'h': return "BINGET";
  case 'i': return "INST";
  case 'j': return "LONG_BINGET";
  case 'l': return "LIST";
  case ']': return "EMPTY_LIST";
  case 'o': return "OBJ";
  case 'p': return "PUT";
  case 'q': return "BINPUT";
  case 'r': return "LONG_BINPUT";
  case 's': return "SETITEM";
  case 't': return "TUPLE";
  case ')': return "EMPTY_TUPLE";
  case 'u': return "SETITEMS";
  case 'G': return "BINFLOAT";
  case 'B': return "BINBYTES";
  case 'C': return "SHORT_BINBYTES";
  case 0x80: return "PROTO";
  case 0x81: return "NEWOBJ";
  case 0x82: return "EXT1";
  case 0x83: return "EXT2";
  case 0x84: return "EXT4";
  case 0x85: return "TUPLE1";
  case 0x86: return "TUPLE2";
  case 0x87: return "TUPLE3";
  case 0x88: return "NEWTRUE";
  case 0x89: return "NEWFALSE";
  case 0x8a: return "LONG1";
  case 0x8b: return "LONG4";
  case 0x8c: return "SHORT_BINUNICODE";
  case 0x8d: return "BINUNICODE8";
  case 0x8e: return "BINBYTES8";
  case 0x8f: return "EMPTY_SET";
  case 0x90: return "ADDITEMS";
  case 0x91: return "FROZENSET";
  case 0x92: return "NEWOBJ_EX";
  case 0x93: return "STACK_GLOBAL";
  case 0x94: return "MEMOIZE";
  case 0x95: return "FRAME";
  case 0x96: return "BYTEARRAY8";
  case 0x97: return "NEXT_BUFFER";
  case 0x98: return "READONLY_BUFFER";
  default: return NULL;
  }
}

/* ---- the allowlist ---- */

typedef struct storage_dtype_s {
  const char *cls; /* class name without module */
  int dtype;       /* wk_dtype_t or -1 */
  const char *name;
} storage_dtype_t;

static const storage_dtype_t g_storages[] = {
    {"FloatStorage", WK_DT_FLOAT32, "float32"},
    {"DoubleStorage", WK_DT_FLOAT64, "float64"},
    {"HalfStorage", WK_DT_FLOAT16, "float16"},
    {"BFloat16Storage", WK_DT_BFLOAT16, "bfloat16"},
    {"CharStorage", WK_DT_INT8, "int8"},
    {"ShortStorage", WK_DT_INT16, "int16"},
    {"IntStorage", WK_DT_INT32, "int32"},
    {"LongStorage", WK_DT_INT64, "int64"},
    {"ByteStorage", WK_DT_UINT8, "uint8"},
    {"BoolStorage", WK_DT_BOOL, "bool"},
    {"ComplexFloatStorage", -1, "complex64"},
    {"ComplexDoubleStorage", -1, "complex128"},
    {"QInt8Storage", -1, "qint8"},
    {"QInt32Storage", -1, "qint32"},
    {"QUInt8Storage", -1, "quint8"},
    {"QUInt4x2Storage", -1, "quint4x2"},
    {"QUInt2x4Storage", -1, "quint2x4"},
};

static const char *const g_tensor_classes[] = {"BFloat16", "Bool", "Byte", "Char", "Double",
                                               "Float",    "Half", "Int",  "Long", "Short"};

static const struct {
  const char *name;
  int dtype;
} g_dtype_globals[] = {
    {"complex32", -1},          {"complex64", -1},          {"complex128", -1},
    {"float16", WK_DT_FLOAT16}, {"float32", WK_DT_FLOAT32}, {"float64", WK_DT_FLOAT64},
    {"int8", WK_DT_INT8},       {"int16", WK_DT_INT16},     {"int32", WK_DT_INT32},
    {"int64", WK_DT_INT64},
};

static const struct {
  const char *name;
  wk_pg_t g;
} g_named[] = {
    {"collections.OrderedDict", WK_PG_ORDERED_DICT},
    {"torch.nn.parameter.Parameter", WK_PG_PARAMETER},
    {"torch.serialization._get_layout", WK_PG_GET_LAYOUT},
    {"torch.Size", WK_PG_SIZE},
    {"torch.Tensor", WK_PG_TENSOR},
    {"torch._utils._rebuild_parameter", WK_PG_REBUILD_PARAMETER},
    {"torch._utils._rebuild_tensor", WK_PG_REBUILD_TENSOR},
    {"torch._utils._rebuild_tensor_v2", WK_PG_REBUILD_TENSOR_V2},
    {"torch._utils._rebuild_sparse_tensor", WK_PG_REBUILD_SPARSE},
    {"torch._utils._rebuild_meta_tensor_no_storage", WK_PG_REBUILD_META},
    {"torch._utils._rebuild_sparse_csr_tensor", WK_PG_REBUILD_SPARSE_CSR},
    {"torch.storage.TypedStorage", WK_PG_STORAGE_CLASS},
    {"torch.storage.UntypedStorage", WK_PG_STORAGE_CLASS},
};

/* Finds module.name in the allowlist. Returns 1 and fills g/dtype/dtype_name, or 0. */
static int allowed(const char *mod, const char *name, int *g, int *dtype, const char **dname) {
  char full[2 * WK_MAX_PICKLE_NAME + 2];
  snprintf(full, sizeof full, "%s.%s", mod, name);
  *dtype = -1;
  *dname = NULL;
  for (size_t i = 0; i < sizeof g_named / sizeof g_named[0]; i++) {
    if (strcmp(full, g_named[i].name) == 0) {
      *g = (int)g_named[i].g;
      if (g_named[i].g == WK_PG_STORAGE_CLASS) {
        bool untyped = strcmp(name, "UntypedStorage") == 0;
        *dtype = untyped ? WK_DT_UINT8 : -1; /* untyped storages are bytes */
        *dname = untyped ? "uint8" : "unknown (TypedStorage)";
      }
      return 1;
    }
  }
  if (strcmp(mod, "torch") == 0) {
    for (size_t i = 0; i < sizeof g_dtype_globals / sizeof g_dtype_globals[0]; i++) {
      if (strcmp(name, g_dtype_globals[i].name) == 0) {
        *g = WK_PG_DTYPE;
        *dtype = g_dtype_globals[i].dtype;
        *dname = g_dtype_globals[i].name;
        return 1;
      }
    }
  }
  bool cuda = strcmp(mod, "torch.cuda") == 0;
  if (strcmp(mod, "torch") == 0 || cuda) {
    for (size_t i = 0; i < sizeof g_storages / sizeof g_storages[0]; i++) {
      if (strcmp(name, g_storages[i].cls) == 0 && !(cuda && name[0] == 'Q')) {
        *g = WK_PG_STORAGE_CLASS;
        *dtype = g_storages[i].dtype;
        *dname = g_storages[i].name;
        return 1;
      }
    }
  }
  bool sparse = strcmp(mod, "torch.sparse") == 0 || strcmp(mod, "torch.cuda.sparse") == 0;
  if (strcmp(mod, "torch") == 0 || cuda || sparse) {
    for (size_t i = 0; i < sizeof g_tensor_classes / sizeof g_tensor_classes[0]; i++) {
      size_t n = strlen(g_tensor_classes[i]);
      if (strncmp(name, g_tensor_classes[i], n) == 0 && strcmp(name + n, "Tensor") == 0 &&
          !(sparse && strcmp(g_tensor_classes[i], "Bool") == 0)) {
        *g = WK_PG_TENSOR_CLASS;
        return 1;
      }
    }
  }
  return 0;
}

/* Modules whose globals run code or reach the system when called. Outside strict mode,
 * other unknown globals become opaque placeholders; these refuse the whole file, so that a
 * malicious checkpoint is named as such instead of being read around. */
static int denied(const char *mod) {
  /* clang-format off */
  static const char *const mods[] = {
      "builtins", "__builtin__", "os", "posix", "nt", "posixpath", "ntpath", "subprocess",
      "sys", "importlib", "imp", "runpy", "shutil", "socket", "pickle", "_pickle", "cPickle",
      "marshal", "types", "ctypes", "code", "codeop", "pty", "commands", "webbrowser",
      "operator", "_operator", "functools", "_functools", "io", "_io", "tempfile",
      "multiprocessing", "signal", "threading", "_thread", "asyncio", "pdb", "bdb", "timeit",
      "platform", "urllib", "http", "ftplib", "smtplib", "telnetlib", "requests", "glob",
      "zipimport", "inspect", "gc", "weakref", "copy",
      "torch.hub", "torch.jit", "torch._C", "torch.ops", "torch._ops", "torch.package",
      "torch.serialization", "torch.utils.cpp_extension", "torch.distributed",
      "numpy.testing", "numpy.f2py", "numpy.distutils", "numpy.lib.utils", "numpy.ctypeslib"};
  /* clang-format on */
  if (strcmp(mod, "torch.jit._pickle") == 0) return 0; /* TorchScript's list builders */
  for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
    size_t n = strlen(mods[i]);
    if (strncmp(mod, mods[i], n) == 0 && (mod[n] == '\0' || mod[n] == '.')) return 1;
  }
  /* torch.load / torch.save and friends live in module "torch" itself */
  return 0;
}

/* Builtin types whose construction runs no code: pickled nn.Modules hold sets
 * (_non_persistent_buffers_set), hyper-parameters hold sets, slices, ranges. */
static int harmless_builtin(const char *mod, const char *name) {
  static const char *const names[] = {"set",   "frozenset", "bytearray", "bytes", "complex",
                                      "slice", "range",     "int",       "float", "str",
                                      "list",  "dict",      "tuple",     "bool",  "object"};
  if (strcmp(mod, "builtins") != 0 && strcmp(mod, "__builtin__") != 0) return 0;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(name, names[i]) == 0) return 1;
  return 0;
}

static int denied_name(const char *mod, const char *name) {
  if (harmless_builtin(mod, name)) return 0;
  if (denied(mod)) return 1;
  if (strcmp(mod, "torch") == 0 && (strcmp(name, "load") == 0 || strcmp(name, "save") == 0))
    return 1;
  return 0;
}

/* ---- values ---- */

static int verr(vm_t *vm, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int verr(vm_t *vm, int code, const char *fmt, ...) {
  if (vm->err == NULL) return code;
  char msg[sizeof vm->err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return wk_err(vm->err, code, "pickle byte %zu (%s): %s", vm->op_pos,
                op_name(vm->d[vm->op_pos]) ? op_name(vm->d[vm->op_pos]) : "?", msg);
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 8;
  while (n < need)
    n *= 2;
  void *p = realloc(*arr, n * elem);
  if (p == NULL) return WK_ENOMEM;
  *arr = p;
  *cap = n;
  return 0;
}

static wk_pv_t *pv_new(vm_t *vm, wk_pv_kind_t kind) {
  wk_pickle_t *p = vm->p;
  if (p->nvals >= (size_t)WK_MAX_PICKLE_VALUES) {
    vm->pv_rc = verr(vm, WK_ETOOBIG, "more than %ld values; the limit is WK_MAX_PICKLE_VALUES",
                     (long)WK_MAX_PICKLE_VALUES);
    return NULL;
  }
  if (grow((void **)&p->vals, &p->capvals, p->nvals + 1, sizeof *p->vals) != 0) {
    vm->pv_rc = verr(vm, WK_ENOMEM, "out of memory");
    return NULL;
  }
  wk_pv_t *v = calloc(1, sizeof *v);
  if (v == NULL) {
    vm->pv_rc = verr(vm, WK_ENOMEM, "out of memory");
    return NULL;
  }
  v->kind = kind;
  v->dtype = -1;
  p->vals[p->nvals++] = v;
  return v;
}

static int pv_add(vm_t *vm, wk_pv_t *c, wk_pv_t *item) {
  if (grow((void **)&c->items, &c->cap, c->len + 1, sizeof *c->items) != 0)
    return verr(vm, WK_ENOMEM, "out of memory");
  c->items[c->len++] = item;
  c->count = c->kind == WK_PV_DICT ? c->len / 2 : c->len;
  return 0;
}

static int push(vm_t *vm, wk_pv_t *v) {
  if (v == NULL) return vm->pv_rc;
  if (vm->sp >= WK_MAX_PICKLE_STACK)
    return verr(vm, WK_ETOOBIG, "more than %d values on the stack", WK_MAX_PICKLE_STACK);
  if (grow((void **)&vm->stack, &vm->capstack, vm->sp + 1, sizeof *vm->stack) != 0)
    return verr(vm, WK_ENOMEM, "out of memory");
  vm->stack[vm->sp++] = v;
  return 0;
}

/* The stack floor: values below the innermost MARK are not reachable by plain pops. */
static size_t floor_(const vm_t *vm) {
  return vm->nmarks ? vm->marks[vm->nmarks - 1] : 0;
}

static int need(vm_t *vm, size_t n) {
  if (vm->sp - floor_(vm) < n)
    return verr(vm, WK_EFORMAT, "needs %zu value%s on the stack, found %zu", n, n == 1 ? "" : "s",
                vm->sp - floor_(vm));
  return 0;
}

static int read_bytes(vm_t *vm, size_t n, const unsigned char **out) {
  if (vm->len - vm->pos < n)
    return verr(vm, WK_EFORMAT, "truncated: needs %zu more bytes, %zu left", n, vm->len - vm->pos);
  *out = vm->d + vm->pos;
  vm->pos += n;
  return 0;
}

static int read_line(vm_t *vm, char *out, size_t outlen) {
  const unsigned char *s = vm->d + vm->pos;
  size_t left = vm->len - vm->pos;
  const unsigned char *nl = memchr(s, '\n', left < outlen ? left : outlen);
  if (nl == NULL)
    return verr(vm, left < outlen ? WK_EFORMAT : WK_ETOOBIG,
                left < outlen ? "truncated global name" : "global name longer than %zu bytes",
                outlen - 1);
  size_t n = (size_t)(nl - s);
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x20 || s[i] == 0x7f)
      return verr(vm, WK_EFORMAT, "control byte 0x%02x in a global name", s[i]);
  memcpy(out, s, n);
  out[n] = '\0';
  vm->pos += n + 1;
  return 0;
}

static char *dup_n(const unsigned char *s, size_t n) {
  char *o = malloc(n + 1);
  if (o == NULL) return NULL;
  memcpy(o, s, n);
  o[n] = '\0';
  return o;
}

static int push_str(vm_t *vm, wk_pv_kind_t kind, const unsigned char *s, size_t n) {
  wk_pv_t *v = pv_new(vm, kind);
  if (v == NULL) return vm->pv_rc;
  v->s = dup_n(s, n);
  if (v->s == NULL) return verr(vm, WK_ENOMEM, "out of memory");
  v->len = n;
  return push(vm, v);
}

static int push_int(vm_t *vm, wk_pv_kind_t kind, int64_t i) {
  wk_pv_t *v = pv_new(vm, kind);
  if (v == NULL) return vm->pv_rc;
  v->i = i;
  return push(vm, v);
}

/* Pops the values above the innermost MARK into a new container of kind. */
static int pop_mark(vm_t *vm, wk_pv_t ***items, size_t *n) {
  if (vm->nmarks == 0) return verr(vm, WK_EFORMAT, "no MARK to pop to");
  size_t m = vm->marks[--vm->nmarks];
  *items = vm->stack ? vm->stack + m : NULL; /* a MARK on a stack never grown: no items */
  *n = vm->sp - m;
  vm->sp = m;
  return 0;
}

static int make_tuple(vm_t *vm, wk_pv_t **items, size_t n, wk_pv_t **out) {
  wk_pv_t *t = pv_new(vm, WK_PV_TUPLE);
  if (t == NULL) return vm->pv_rc;
  for (size_t i = 0; i < n; i++) {
    int rc = pv_add(vm, t, items[i]);
    if (rc != 0) return rc;
  }
  *out = t;
  return 0;
}

/* ---- tensors ---- */

static int add_tensor(vm_t *vm, wk_pv_t *v) {
  wk_pickle_t *p = vm->p;
  if (p->ntensors >= WK_MAX_PT_TENSORS)
    return verr(vm, WK_ETOOBIG, "more than %d tensors; the limit is WK_MAX_PT_TENSORS",
                WK_MAX_PT_TENSORS);
  if (grow((void **)&p->tensors, &p->captensors, p->ntensors + 1, sizeof *p->tensors) != 0)
    return verr(vm, WK_ENOMEM, "out of memory");
  v->tensor->index = p->ntensors;
  p->tensors[p->ntensors++] = v;
  return 0;
}

static int int_tuple(vm_t *vm, const wk_pv_t *t, const char *what, int64_t *out, int *n) {
  if (t->kind != WK_PV_TUPLE)
    return verr(vm, WK_EFORMAT, "tensor %s is a %s, expected a tuple of ints", what,
                wk_pv_kind_name(t->kind));
  if (t->count > WK_MAX_PT_DIMS)
    return verr(vm, WK_ETOOBIG, "tensor has %zu dimensions; the limit is %d", t->count,
                WK_MAX_PT_DIMS);
  for (size_t i = 0; i < t->count; i++) {
    if (t->items[i]->kind != WK_PV_INT || t->items[i]->i < 0)
      return verr(vm, WK_EFORMAT, "tensor %s[%zu] is %s, expected an int >= 0", what, i,
                  t->items[i]->kind == WK_PV_INT ? "negative" : wk_pv_kind_name(t->items[i]->kind));
    out[i] = t->items[i]->i;
  }
  *n = (int)t->count;
  return 0;
}

/* _rebuild_tensor(storage, offset, size, stride) and _rebuild_tensor_v2(..., requires_grad,
 * backward_hooks[, metadata]); meta: _rebuild_meta_tensor_no_storage(dtype, size, stride,
 * requires_grad). The bounds against the storage's bytes are checked by pt.c. */
static int rebuild_tensor(vm_t *vm, int g, const wk_pv_t *a, wk_pv_t **out) {
  bool meta = g == WK_PG_REBUILD_META;
  size_t min = g == WK_PG_REBUILD_TENSOR ? 4 : meta ? 4 : 6;
  size_t max = g == WK_PG_REBUILD_TENSOR ? 4 : meta ? 4 : 7;
  if (a->count < min || a->count > max)
    return verr(vm, WK_EFORMAT, "a tensor rebuild call with %zu arguments, expected %zu%s",
                a->count, min, max > min ? " or 7" : "");
  wk_pv_t *v = pv_new(vm, WK_PV_TENSOR);
  if (v == NULL) return vm->pv_rc;
  wk_pv_tensor_t *t = calloc(1, sizeof *t);
  if (t == NULL) return verr(vm, WK_ENOMEM, "out of memory");
  v->tensor = t;
  int nstride = 0, rc;
  size_t k = 0;
  if (meta) {
    const wk_pv_t *dt = a->items[k++];
    if (dt->kind != WK_PV_GLOBAL || dt->global != WK_PG_DTYPE)
      return verr(vm, WK_EFORMAT, "meta tensor dtype is a %s, expected a torch dtype",
                  wk_pv_kind_name(dt->kind));
    t->dtype = dt->dtype;
    t->dtype_name = dt->dtype_name;
  } else {
    const wk_pv_t *st = a->items[k++];
    if (st->kind != WK_PV_STORAGE)
      return verr(vm, WK_EFORMAT, "tensor storage is a %s, expected a persistent storage id",
                  wk_pv_kind_name(st->kind));
    t->storage = st;
    t->dtype = st->dtype;
    t->dtype_name = st->dtype_name;
    const wk_pv_t *off = a->items[k++];
    if (off->kind != WK_PV_INT || off->i < 0)
      return verr(vm, WK_EFORMAT, "tensor storage offset is %s, expected an int >= 0",
                  off->kind == WK_PV_INT ? "negative" : wk_pv_kind_name(off->kind));
    t->offset = off->i;
  }
  if ((rc = int_tuple(vm, a->items[k++], "size", t->shape, &t->ndim)) != 0) return rc;
  if ((rc = int_tuple(vm, a->items[k++], "stride", t->strides, &nstride)) != 0) return rc;
  if (nstride != t->ndim)
    return verr(vm, WK_EFORMAT, "tensor has %d sizes and %d strides, expected as many", t->ndim,
                nstride);
  if (k < a->count) {
    const wk_pv_t *rg = a->items[k++];
    if (rg->kind != WK_PV_BOOL)
      return verr(vm, WK_EFORMAT, "tensor requires_grad is a %s, expected a bool",
                  wk_pv_kind_name(rg->kind));
    t->requires_grad = rg->i != 0;
  }
  if (k < a->count) {
    const wk_pv_t *hooks = a->items[k++];
    if (hooks->kind != WK_PV_DICT && hooks->kind != WK_PV_NONE)
      return verr(vm, WK_EFORMAT, "tensor backward hooks are a %s, expected a dict",
                  wk_pv_kind_name(hooks->kind));
  }
  if ((rc = add_tensor(vm, v)) != 0) return rc;
  *out = v;
  return 0;
}

/* torch.nn.Parameter(data[, requires_grad]) and _rebuild_parameter(data, requires_grad,
 * hooks): a copy of the tensor value marked as a parameter. */
static int make_parameter(vm_t *vm, const wk_pv_t *a, bool rebuild, wk_pv_t **out) {
  if (a->count < 1 || a->count > 3 || (rebuild && a->count != 3))
    return verr(vm, WK_EFORMAT, "a Parameter call with %zu arguments, expected %s", a->count,
                rebuild ? "3" : "1 or 2");
  const wk_pv_t *src = a->items[0];
  if (src->kind != WK_PV_TENSOR)
    return verr(vm, WK_EFORMAT, "Parameter data is a %s, expected a tensor",
                wk_pv_kind_name(src->kind));
  bool rg = true;
  if (a->count >= 2) {
    if (a->items[1]->kind != WK_PV_BOOL)
      return verr(vm, WK_EFORMAT, "Parameter requires_grad is a %s, expected a bool",
                  wk_pv_kind_name(a->items[1]->kind));
    rg = a->items[1]->i != 0;
  }
  wk_pv_t *v = pv_new(vm, WK_PV_TENSOR);
  if (v == NULL) return vm->pv_rc;
  v->tensor = malloc(sizeof *v->tensor);
  if (v->tensor == NULL) return verr(vm, WK_ENOMEM, "out of memory");
  *v->tensor = *src->tensor;
  v->tensor->requires_grad = rg;
  v->tensor->is_parameter = true;
  int rc = add_tensor(vm, v);
  if (rc != 0) return rc;
  *out = v;
  return 0;
}

/* ---- opcodes ---- */

static int op_global(vm_t *vm) {
  char mod[WK_MAX_PICKLE_NAME + 1], name[WK_MAX_PICKLE_NAME + 1];
  int rc;
  if ((rc = read_line(vm, mod, sizeof mod)) != 0) return rc;
  if ((rc = read_line(vm, name, sizeof name)) != 0) return rc;
  int g, dtype;
  const char *dname;
  if (allowed(mod, name, &g, &dtype, &dname)) {
    wk_pv_t *v = pv_new(vm, WK_PV_GLOBAL);
    if (v == NULL) return vm->pv_rc;
    v->global = g;
    v->dtype = dtype;
    v->dtype_name = dname;
    v->s = malloc(strlen(mod) + strlen(name) + 2);
    if (v->s == NULL) return verr(vm, WK_ENOMEM, "out of memory");
    v->len = (size_t)sprintf(v->s, "%s.%s", mod, name);
    return push(vm, v);
  }
  if (denied_name(mod, name))
    return verr(vm, WK_EUNSAFE,
                "refused global '%s.%s': it can run code. A checkpoint may only hold tensors, "
                "storages, dtypes, torch.Size, OrderedDict and plain values",
                mod, name);
  if (vm->flags & WK_PICKLE_STRICT)
    return verr(vm, WK_EUNSAFE,
                "refused global '%s.%s': not in the weights-only allowlist (tensors, storages, "
                "dtypes, torch.Size, OrderedDict, Parameter and plain values)",
                mod, name);
  wk_pv_t *v = pv_new(vm, WK_PV_OPAQUE);
  if (v == NULL) return vm->pv_rc;
  v->opaque_is_class = true;
  v->s = malloc(strlen(mod) + strlen(name) + 2);
  if (v->s == NULL) return verr(vm, WK_ENOMEM, "out of memory");
  v->len = (size_t)sprintf(v->s, "%s.%s", mod, name);
  return push(vm, v);
}

/* REDUCE (func(*args)) and NEWOBJ (cls.__new__(cls, *args)): only the allowlisted builders
 * run; an opaque global gives an opaque object that remembers its arguments. */
static int op_call(vm_t *vm, bool newobj) {
  int rc;
  if ((rc = need(vm, 2)) != 0) return rc;
  wk_pv_t *args = vm->stack[vm->sp - 1], *fn = vm->stack[vm->sp - 2];
  if (args->kind != WK_PV_TUPLE)
    return verr(vm, WK_EFORMAT, "arguments are a %s, expected a tuple",
                wk_pv_kind_name(args->kind));
  wk_pv_t *res = NULL;
  if (fn->kind == WK_PV_OPAQUE) {
    res = pv_new(vm, WK_PV_OPAQUE);
    if (res == NULL) return vm->pv_rc;
    res->s = strdup(fn->s);
    if (res->s == NULL) return verr(vm, WK_ENOMEM, "out of memory");
    res->len = fn->len;
    res->args = args;
  } else if (fn->kind != WK_PV_GLOBAL) {
    return verr(vm, WK_EFORMAT, "calls a %s, expected an allowlisted global",
                wk_pv_kind_name(fn->kind));
  } else if (newobj && fn->global != WK_PG_PARAMETER) {
    return verr(vm, WK_EUNSAFE, "refused to instantiate '%s': only torch.nn.Parameter may be",
                fn->s);
  } else {
    switch ((wk_pg_t)fn->global) {
    case WK_PG_ORDERED_DICT:
      if (args->count != 0)
        return verr(vm, WK_EUNSUPPORTED, "OrderedDict called with %zu arguments, expected none",
                    args->count);
      res = pv_new(vm, WK_PV_DICT);
      if (res == NULL) return vm->pv_rc;
      res->ordered = true;
      break;
    case WK_PG_PARAMETER:
    case WK_PG_REBUILD_PARAMETER:
      rc = make_parameter(vm, args, fn->global == WK_PG_REBUILD_PARAMETER, &res);
      if (rc != 0) return rc;
      break;
    case WK_PG_SIZE: {
      if (args->count != 1 || args->items[0]->kind != WK_PV_TUPLE)
        return verr(vm, WK_EFORMAT, "torch.Size takes one tuple");
      res = args->items[0];
      break;
    }
    case WK_PG_GET_LAYOUT:
      if (args->count != 1 || args->items[0]->kind != WK_PV_STR)
        return verr(vm, WK_EFORMAT, "_get_layout takes one string");
      res = args->items[0];
      break;
    case WK_PG_REBUILD_TENSOR:
    case WK_PG_REBUILD_TENSOR_V2:
    case WK_PG_REBUILD_META:
      rc = rebuild_tensor(vm, fn->global, args, &res);
      if (rc != 0) return rc;
      break;
    case WK_PG_REBUILD_SPARSE:
    case WK_PG_REBUILD_SPARSE_CSR:
      return verr(vm, WK_EUNSUPPORTED, "'%s': wick reads dense (strided) tensors only", fn->s);
    default: return verr(vm, WK_EUNSUPPORTED, "calling '%s' is not supported", fn->s);
    }
  }
  vm->sp -= 2;
  return push(vm, res);
}

static int op_build(vm_t *vm) {
  int rc;
  if ((rc = need(vm, 2)) != 0) return rc;
  wk_pv_t *state = vm->stack[vm->sp - 1], *inst = vm->stack[vm->sp - 2];
  bool empty = state->kind == WK_PV_NONE ||
               ((state->kind == WK_PV_DICT || state->kind == WK_PV_TUPLE) && state->count == 0);
  if (inst->kind == WK_PV_OPAQUE) {
    inst->state = state;
  } else if (inst->kind == WK_PV_DICT && inst->ordered) {
    /* OrderedDict attributes, as state_dict._metadata: kept out of the tree */
  } else if (inst->kind == WK_PV_TENSOR && empty) {
  } else {
    return verr(vm, WK_EUNSUPPORTED,
                "BUILD on a %s with a %s state; only OrderedDict (and tensors without state) "
                "may be built",
                wk_pv_kind_name(inst->kind), wk_pv_kind_name(state->kind));
  }
  vm->sp--;
  return 0;
}

/* The container APPEND/SETITEM target: a list/dict, or an opaque object's contents. */
static int target(vm_t *vm, wk_pv_t *t, wk_pv_kind_t want, wk_pv_t **out) {
  if (t->kind == want) {
    *out = t;
    return 0;
  }
  if (t->kind == WK_PV_OPAQUE && !t->opaque_is_class) {
    if (t->contents == NULL) {
      t->contents = pv_new(vm, want);
      if (t->contents == NULL) return vm->pv_rc;
    }
    if (t->contents->kind != want)
      return verr(vm, WK_EUNSUPPORTED, "'%s' object gets both list and dict items", t->s);
    *out = t->contents;
    return 0;
  }
  return verr(vm, WK_EFORMAT, "%s into a %s, expected a %s",
              want == WK_PV_LIST ? "appends" : "sets items", wk_pv_kind_name(t->kind),
              wk_pv_kind_name(want));
}

static int op_persid(vm_t *vm) {
  int rc;
  if ((rc = need(vm, 1)) != 0) return rc;
  wk_pv_t *pid = vm->stack[vm->sp - 1];
  if (pid->kind != WK_PV_TUPLE || pid->count < 1)
    return verr(vm, WK_EFORMAT, "persistent id is a %s, expected a tuple ('storage', ...)",
                wk_pv_kind_name(pid->kind));
  const wk_pv_t *tag = pid->items[0];
  if ((tag->kind != WK_PV_STR && tag->kind != WK_PV_BYTES) || strcmp(tag->s, "storage") != 0)
    return verr(vm, WK_EUNSAFE, "only persistent ids of storages are allowed, got '%.64s'",
                tag->kind == WK_PV_STR || tag->kind == WK_PV_BYTES ? tag->s
                                                                   : wk_pv_kind_name(tag->kind));
  if (pid->count != 5)
    return verr(vm, WK_EFORMAT,
                "storage id has %zu fields, expected 5 ('storage', type, key, location, numel)",
                pid->count);
  const wk_pv_t *cls = pid->items[1], *key = pid->items[2], *loc = pid->items[3],
                *numel = pid->items[4];
  if (cls->kind != WK_PV_GLOBAL || cls->global != WK_PG_STORAGE_CLASS)
    return verr(vm, WK_EFORMAT, "storage type is %s, expected a torch storage class",
                cls->kind == WK_PV_GLOBAL ? cls->s : wk_pv_kind_name(cls->kind));
  if (key->kind != WK_PV_STR || loc->kind != WK_PV_STR || numel->kind != WK_PV_INT || numel->i < 0)
    return verr(vm, WK_EFORMAT, "storage id fields are (%s, %s, %s), expected (str, str, int >= 0)",
                wk_pv_kind_name(key->kind), wk_pv_kind_name(loc->kind),
                wk_pv_kind_name(numel->kind));
  wk_pv_t *v = pv_new(vm, WK_PV_STORAGE);
  if (v == NULL) return vm->pv_rc;
  v->s = strdup(key->s);
  v->location = strdup(loc->s);
  if (v->s == NULL || v->location == NULL) return verr(vm, WK_ENOMEM, "out of memory");
  v->len = key->len;
  v->dtype = cls->dtype;
  v->dtype_name = cls->dtype_name;
  v->numel = numel->i;
  vm->sp--;
  return push(vm, v);
}

static int memo_put(vm_t *vm, size_t idx) {
  int rc;
  if ((rc = need(vm, 1)) != 0) return rc;
  if (idx > WK_MAX_PICKLE_MEMO)
    return verr(vm, WK_ETOOBIG, "memo index %zu; the limit is %d", idx, WK_MAX_PICKLE_MEMO);
  if (idx >= vm->capmemo) {
    size_t old = vm->capmemo;
    if (grow((void **)&vm->memo, &vm->capmemo, idx + 1, sizeof *vm->memo) != 0)
      return verr(vm, WK_ENOMEM, "out of memory");
    memset(vm->memo + old, 0, (vm->capmemo - old) * sizeof *vm->memo);
  }
  vm->memo[idx] = vm->stack[vm->sp - 1];
  return 0;
}

static int memo_get(vm_t *vm, size_t idx) {
  if (idx >= vm->capmemo || vm->memo[idx] == NULL)
    return verr(vm, WK_EFORMAT, "memo %zu was never set", idx);
  return push(vm, vm->memo[idx]);
}

static uint32_t le32(const unsigned char *b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int step(vm_t *vm, bool *stop) {
  const unsigned char *b = NULL;
  int rc;
  vm->op_pos = vm->pos;
  unsigned char op = vm->d[vm->pos++];
  switch (op) {
  case 0x80: /* PROTO */
    if ((rc = read_bytes(vm, 1, &b)) != 0) return rc;
    if (b[0] > 5) return verr(vm, WK_EFORMAT, "protocol %d; pickle knows 0 to 5", b[0]);
    return 0;
  case '.': /* STOP */
    if ((rc = need(vm, 1)) != 0) return rc;
    vm->p->root = vm->stack[--vm->sp];
    *stop = true;
    return 0;
  case 'c': return op_global(vm);
  case 'R': return op_call(vm, false);
  case 0x81: return op_call(vm, true);
  case 'b': return op_build(vm);
  case 'Q': return op_persid(vm);
  case '(':
    if (vm->nmarks >= WK_MAX_PICKLE_DEPTH)
      return verr(vm, WK_ETOOBIG, "more than %d nested MARKs", WK_MAX_PICKLE_DEPTH);
    vm->marks[vm->nmarks++] = vm->sp;
    return 0;
  case 'N': return push(vm, pv_new(vm, WK_PV_NONE));
  case 0x88: return push_int(vm, WK_PV_BOOL, 1);
  case 0x89: return push_int(vm, WK_PV_BOOL, 0);
  case ')': return push(vm, pv_new(vm, WK_PV_TUPLE));
  case ']': return push(vm, pv_new(vm, WK_PV_LIST));
  case '}': return push(vm, pv_new(vm, WK_PV_DICT));
  case 0x8f: return push(vm, pv_new(vm, WK_PV_SET));
  case 'J':
    if ((rc = read_bytes(vm, 4, &b)) != 0) return rc;
    return push_int(vm, WK_PV_INT, (int32_t)le32(b));
  case 'K':
    if ((rc = read_bytes(vm, 1, &b)) != 0) return rc;
    return push_int(vm, WK_PV_INT, b[0]);
  case 'M':
    if ((rc = read_bytes(vm, 2, &b)) != 0) return rc;
    return push_int(vm, WK_PV_INT, b[0] | b[1] << 8);
  case 0x8a: { /* LONG1: little-endian two's complement */
    if ((rc = read_bytes(vm, 1, &b)) != 0) return rc;
    size_t n = b[0];
    if ((rc = read_bytes(vm, n, &b)) != 0) return rc;
    if (n > 8) return verr(vm, WK_EUNSUPPORTED, "a %zu-byte integer; wick reads up to 64 bits", n);
    uint64_t u = 0;
    for (size_t i = 0; i < n; i++)
      u |= (uint64_t)b[i] << (8 * i);
    if (n > 0 && n < 8 && (b[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n);
    return push_int(vm, WK_PV_INT, (int64_t)u);
  }
  case 'G': { /* BINFLOAT: big-endian IEEE double */
    if ((rc = read_bytes(vm, 8, &b)) != 0) return rc;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
      u = u << 8 | b[i];
    wk_pv_t *v = pv_new(vm, WK_PV_FLOAT);
    if (v == NULL) return vm->pv_rc;
    memcpy(&v->f, &u, sizeof v->f);
    return push(vm, v);
  }
  case 'X': {
    if ((rc = read_bytes(vm, 4, &b)) != 0) return rc;
    size_t n = le32(b);
    if ((rc = read_bytes(vm, n, &b)) != 0) return rc;
    return push_str(vm, WK_PV_STR, b, n);
  }
  case 'U': {
    if ((rc = read_bytes(vm, 1, &b)) != 0) return rc;
    size_t n = b[0];
    if ((rc = read_bytes(vm, n, &b)) != 0) return rc;
    return push_str(vm, WK_PV_BYTES, b, n);
  }
  case 'q':
    if ((rc = read_bytes(vm, 1, &b)) != 0) return rc;
    return memo_put(vm, b[0]);
  case 'r':
    if ((rc = read_bytes(vm, 4, &b)) != 0) return rc;
    return memo_put(vm, le32(b));
  case 'h':
    if ((rc = read_bytes(vm, 1, &b)) != 0) return rc;
    return memo_get(vm, b[0]);
  case 'j':
    if ((rc = read_bytes(vm, 4, &b)) != 0) return rc;
    return memo_get(vm, le32(b));
  case 't': {
    wk_pv_t **items = NULL, *t = NULL;
    size_t n = 0;
    if ((rc = pop_mark(vm, &items, &n)) != 0) return rc;
    if ((rc = make_tuple(vm, items, n, &t)) != 0) return rc;
    return push(vm, t);
  }
  case 0x85:
  case 0x86:
  case 0x87: {
    size_t n = (size_t)(op - 0x84);
    wk_pv_t *t = NULL;
    if ((rc = need(vm, n)) != 0) return rc;
    if ((rc = make_tuple(vm, vm->stack + vm->sp - n, n, &t)) != 0) return rc;
    vm->sp -= n;
    return push(vm, t);
  }
  case 'a': {
    wk_pv_t *l;
    if ((rc = need(vm, 2)) != 0) return rc;
    if ((rc = target(vm, vm->stack[vm->sp - 2], WK_PV_LIST, &l)) != 0) return rc;
    if ((rc = pv_add(vm, l, vm->stack[vm->sp - 1])) != 0) return rc;
    vm->sp--;
    return 0;
  }
  case 'e': {
    wk_pv_t **items = NULL, *l = NULL;
    size_t n = 0;
    if ((rc = pop_mark(vm, &items, &n)) != 0) return rc;
    if ((rc = need(vm, 1)) != 0) return rc;
    if ((rc = target(vm, vm->stack[vm->sp - 1], WK_PV_LIST, &l)) != 0) return rc;
    for (size_t i = 0; i < n; i++)
      if ((rc = pv_add(vm, l, items[i])) != 0) return rc;
    return 0;
  }
  case 's': {
    wk_pv_t *d;
    if ((rc = need(vm, 3)) != 0) return rc;
    if ((rc = target(vm, vm->stack[vm->sp - 3], WK_PV_DICT, &d)) != 0) return rc;
    if ((rc = pv_add(vm, d, vm->stack[vm->sp - 2])) != 0) return rc;
    if ((rc = pv_add(vm, d, vm->stack[vm->sp - 1])) != 0) return rc;
    vm->sp -= 2;
    return 0;
  }
  case 'u': {
    wk_pv_t **items = NULL, *d = NULL;
    size_t n = 0;
    if ((rc = pop_mark(vm, &items, &n)) != 0) return rc;
    if (n % 2)
      return verr(vm, WK_EFORMAT, "%zu values for key/value pairs, expected an even count", n);
    if ((rc = need(vm, 1)) != 0) return rc;
    if ((rc = target(vm, vm->stack[vm->sp - 1], WK_PV_DICT, &d)) != 0) return rc;
    for (size_t i = 0; i < n; i++)
      if ((rc = pv_add(vm, d, items[i])) != 0) return rc;
    return 0;
  }
  default: {
    const char *n = op_name(op);
    return verr(vm, WK_EUNSAFE,
                "opcode 0x%02x%s%s%s is not allowed: torch.load(weights_only=True) accepts "
                "only the opcodes that rebuild tensors and plain containers",
                op, n ? " (" : "", n ? n : "", n ? ")" : "");
  }
  }
}

int wk_pickle_load(const void *data, size_t len, unsigned flags, wk_pickle_t **out, wk_err_t *err) {
  if (len > (size_t)WK_MAX_PICKLE_SIZE)
    return wk_err(err, WK_ETOOBIG, "pickle of %zu bytes; the limit is %ld", len,
                  (long)WK_MAX_PICKLE_SIZE);
  wk_pickle_t *p = calloc(1, sizeof *p);
  if (p == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  vm_t vm = {.p = p, .d = data, .len = len, .flags = flags, .err = err};
  int rc = 0;
  bool stop = false;
  while (rc == 0 && !stop) {
    if (vm.pos >= vm.len) {
      rc = wk_err(err, WK_EFORMAT, "pickle ends at byte %zu without STOP (truncated?)", vm.len);
      break;
    }
    rc = step(&vm, &stop);
  }
  free(vm.stack);
  free(vm.memo);
  if (rc != 0) {
    wk_pickle_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

void wk_pickle_free(wk_pickle_t *p) {
  if (p == NULL) return;
  for (size_t i = 0; i < p->nvals; i++) {
    wk_pv_t *v = p->vals[i];
    free(v->items);
    free(v->s);
    free(v->location);
    free(v->tensor);
    free(v);
  }
  free(p->vals);
  free(p->tensors);
  free(p);
}

wk_pv_t *wk_pickle_root(wk_pickle_t *p) {
  return p->root;
}

size_t wk_pickle_tensor_count(const wk_pickle_t *p) {
  return p->ntensors;
}

const wk_pv_t *wk_pickle_tensor(const wk_pickle_t *p, size_t i) {
  return i < p->ntensors ? p->tensors[i] : NULL;
}

unsigned wk_pickle_new_walk(wk_pickle_t *p) {
  return ++p->walk;
}
