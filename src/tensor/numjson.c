/* JSON for tensors: scans request bodies (nested numeric lists and the envelopes around
 * them) straight into tensor buffers, with no JSON tree, and prints tensors and value
 * trees as JSON. It is not a general JSON library: documents go through jansson. */
#include "tensor/numjson.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

/* Numbers are read with the C library's strtod/strtof on the slow path and printed with
 * snprintf: wick never calls setlocale(LC_NUMERIC), so the decimal point is '.'. */

typedef struct {
  const char *p; /* the body; not NUL-terminated */
  size_t len;
  size_t pos;
  wk_err_t *err;
} scan_t;

/* ---------------------------------------------------------------------------------------
 * Errors: line and column are computed only when something failed. */

static void line_col(const scan_t *sc, size_t pos, size_t *line, size_t *col) {
  size_t l = 1, c = 1;
  for (size_t i = 0; i < pos && i < sc->len; i++) {
    if (sc->p[i] == '\n') {
      l++;
      c = 1;
    } else {
      c++;
    }
  }
  *line = l;
  *col = c;
}

__attribute__((format(printf, 5, 6))) static int fail_at(scan_t *sc, int code, const char *kind,
                                                         size_t pos, const char *fmt, ...) {
  char what[320];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (pos > sc->len) pos = sc->len;
  size_t line, col;
  line_col(sc, pos, &line, &col);
  return wk_err(sc->err, code, "%s at line %zu, column %zu (offset %zu): %s", kind, line, col, pos,
                what);
}

/* "malformed JSON ...: <expected>, found <what is at pos>". */
static int expect_err(scan_t *sc, size_t pos, const char *expected) {
  char found[32];
  if (pos >= sc->len) {
    snprintf(found, sizeof found, "the end of the body");
  } else {
    unsigned char c = (unsigned char)sc->p[pos];
    if (c >= 0x20 && c < 0x7f)
      snprintf(found, sizeof found, "'%c'", c);
    else
      snprintf(found, sizeof found, "byte 0x%02x", c);
  }
  return fail_at(sc, WK_EINVAL, "malformed JSON", pos, "%s, found %s", expected, found);
}

static inline void skip_ws(scan_t *sc) {
  const char *p = sc->p;
  size_t i = sc->pos, n = sc->len;
  while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
    i++;
  sc->pos = i;
}

static inline int is_digit(char c) {
  return c >= '0' && c <= '9';
}

static int match_word(const scan_t *sc, size_t pos, const char *w) {
  size_t n = strlen(w);
  return sc->len - pos >= n && memcmp(sc->p + pos, w, n) == 0;
}

/* ---------------------------------------------------------------------------------------
 * Numbers. A token is scanned once into a decimal mantissa (first 19 significant digits)
 * and a power of ten; the conversions below turn it into the dtype. */

enum { NUM_FINITE, NUM_NAN, NUM_INF };

typedef struct {
  uint64_t mant; /* first 19 significant digits */
  int64_t exp10; /* value = mant * 10^exp10 (when !inexact) */
  int neg;
  int kind;    /* NUM_* */
  int is_int;  /* no fraction and no exponent in the text */
  int inexact; /* nonzero digits after the 19th: mant is truncated */
  size_t start, end;
} num_t;

/* Scans a JSON number (strict grammar) or NaN, Infinity, -Infinity at sc->pos. */
static int scan_num(scan_t *sc, num_t *nm) {
  const char *p = sc->p;
  size_t n = sc->len, i = sc->pos;
  memset(nm, 0, sizeof *nm);
  nm->start = i;
  nm->is_int = 1;
  if (i < n && p[i] == '-') {
    nm->neg = 1;
    i++;
  }
  if (i < n && (p[i] == 'I' || p[i] == 'N')) {
    if (match_word(sc, i, "Infinity")) {
      nm->kind = NUM_INF;
      i += 8;
    } else if (!nm->neg && match_word(sc, i, "NaN")) {
      nm->kind = NUM_NAN;
      i += 3;
    } else {
      return expect_err(sc, i, "expected a number");
    }
    nm->is_int = 0;
    nm->end = sc->pos = i;
    return 0;
  }
  if (i >= n || !is_digit(p[i]))
    return expect_err(sc, i, nm->neg ? "expected a digit after '-'" : "expected a number");
  uint64_t mant = 0;
  int64_t exp10 = 0;
  int sig = 0, inexact = 0;
  if (p[i] == '0') {
    i++;
    if (i < n && is_digit(p[i]))
      return fail_at(sc, WK_EINVAL, "malformed JSON", i,
                     "numbers cannot have leading zeros (JSON reads 0 then expects ',')");
  } else {
    for (; i < n && is_digit(p[i]); i++) {
      unsigned d = (unsigned)(p[i] - '0');
      if (sig < 19) {
        mant = mant * 10 + d;
        sig++;
      } else {
        exp10++;
        inexact |= d != 0;
      }
    }
  }
  if (i < n && p[i] == '.') {
    nm->is_int = 0;
    i++;
    if (i >= n || !is_digit(p[i])) return expect_err(sc, i, "expected a digit after '.'");
    for (; i < n && is_digit(p[i]); i++) {
      unsigned d = (unsigned)(p[i] - '0');
      if (mant == 0 && d == 0) {
        exp10--;
      } else if (sig < 19) {
        mant = mant * 10 + d;
        sig++;
        exp10--;
      } else {
        inexact |= d != 0;
      }
    }
  }
  if (i < n && (p[i] == 'e' || p[i] == 'E')) {
    nm->is_int = 0;
    i++;
    int eneg = 0;
    if (i < n && (p[i] == '+' || p[i] == '-')) eneg = p[i++] == '-';
    if (i >= n || !is_digit(p[i])) return expect_err(sc, i, "expected a digit in the exponent");
    int64_t e = 0;
    for (; i < n && is_digit(p[i]); i++)
      if (e < 100000000) e = e * 10 + (p[i] - '0');
    exp10 += eneg ? -e : e;
  }
  nm->mant = mant;
  nm->exp10 = exp10;
  nm->inexact = inexact;
  nm->end = sc->pos = i;
  return 0;
}

/* The library's correctly rounded conversion on a NUL-terminated copy of the token. */
static int slow_convert(const scan_t *sc, const num_t *nm, double *d, float *f) {
  char small[64];
  size_t n = nm->end - nm->start;
  char *buf = small;
  if (n >= sizeof small) {
    buf = malloc(n + 1);
    if (buf == NULL) return wk_err(sc->err, WK_ENOMEM, "out of memory reading a number");
  }
  memcpy(buf, sc->p + nm->start, n);
  buf[n] = '\0';
  if (f)
    *f = strtof(buf, NULL);
  else
    *d = strtod(buf, NULL);
  if (buf != small) free(buf);
  return 0;
}

static const double k_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* x87 extended precision (64-bit mantissa) holds every 19-digit mantissa and 10^k for
 * k <= 27 exactly, so one multiply or divide gives the decimal rounded to 64 bits; rounding
 * that again to 53 (or 24) bits is exact unless it landed on a midpoint, which we detect. */
#if defined(__x86_64__) && LDBL_MANT_DIG == 64
#define WK_LD_PATH 1
static const long double k_lpow10[28] = {1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,
                                         1e7L,  1e8L,  1e9L,  1e10L, 1e11L, 1e12L, 1e13L,
                                         1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L,
                                         1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};

static uint64_t ld_mantissa(long double y) {
  uint64_t m;
  memcpy(&m, &y, sizeof m); /* x87 format: the explicit 64-bit significand comes first */
  return m;
}
#else
#define WK_LD_PATH 0
#endif

/* Decimal fast paths. Returns 1 when one applies: then either *d is the double correctly
 * rounded from the token's magnitude, or (*ld_used) *ldv is it rounded to 64 bits. Both
 * need a single correctly rounded operation on exact operands (FLT_EVAL_METHOD 0). */
static int fast_magnitude(const num_t *nm, double *d, int *ld_used, long double *ldv) {
  *ld_used = 0;
  (void)ldv;
  if (nm->inexact) return 0;
  if (nm->mant == 0) {
    *d = 0.0;
    return 1;
  }
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
  if (nm->mant <= (UINT64_C(1) << 53) && nm->exp10 >= -22 && nm->exp10 <= 22) {
    double m = (double)nm->mant;
    *d = nm->exp10 < 0 ? m / k_pow10[-nm->exp10] : m * k_pow10[nm->exp10];
    return 1;
  }
#endif
#if WK_LD_PATH
  if (nm->exp10 >= -27 && nm->exp10 <= 27) {
    long double m = (long double)nm->mant;
    *ldv = nm->exp10 < 0 ? m / k_lpow10[-nm->exp10] : m * k_lpow10[nm->exp10];
    *ld_used = 1;
    return 1;
  }
#endif
  return 0;
}

static int num_to_double(const scan_t *sc, const num_t *nm, double *out) {
  if (nm->kind == NUM_NAN) {
    *out = NAN;
    return 0;
  }
  if (nm->kind == NUM_INF) {
    *out = nm->neg ? -INFINITY : INFINITY;
    return 0;
  }
  double d;
  int ld_used;
  long double y = 0;
  if (fast_magnitude(nm, &d, &ld_used, &y)) {
#if WK_LD_PATH
    if (ld_used) {
      if ((ld_mantissa(y) & 0x7ff) == 0x400) return slow_convert(sc, nm, out, NULL);
      d = (double)y;
    }
#endif
    *out = nm->neg ? -d : d;
    return 0;
  }
  return slow_convert(sc, nm, out, NULL);
}

/* float32 is always the correctly rounded value of the decimal (as strtof gives): the
 * fast paths fall back to strtof in the rare case where rounding twice could differ. */
static int num_to_float(const scan_t *sc, const num_t *nm, float *out) {
  if (nm->kind == NUM_NAN) {
    *out = NAN;
    return 0;
  }
  if (nm->kind == NUM_INF) {
    *out = nm->neg ? -INFINITY : INFINITY;
    return 0;
  }
  double d;
  int ld_used;
  long double y = 0;
  if (fast_magnitude(nm, &d, &ld_used, &y)) {
#if WK_LD_PATH
    if (ld_used) {
      if ((ld_mantissa(y) & UINT64_C(0xffffffffff)) == UINT64_C(0x8000000000))
        return slow_convert(sc, nm, NULL, out);
      float f = (float)y;
      *out = nm->neg ? -f : f;
      return 0;
    }
#endif
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    if ((bits & UINT64_C(0x1fffffff)) == UINT64_C(0x10000000))
      return slow_convert(sc, nm, NULL, out);
    float f = (float)d;
    *out = nm->neg ? -f : f;
    return 0;
  }
  return slow_convert(sc, nm, NULL, out);
}

/* Rounds d to nearest-even in a binary format with mbits stored mantissa bits and ebits
 * exponent bits (float16: 10, 5; bfloat16: 7, 8). Returns the bit pattern. */
static uint32_t double_to_small(double d, int mbits, int ebits) {
  uint64_t b;
  memcpy(&b, &d, sizeof b);
  uint32_t sign = (uint32_t)(b >> 63) << (mbits + ebits);
  uint64_t a = b & ~(UINT64_C(1) << 63);
  uint32_t inf = ((1u << ebits) - 1) << mbits;
  if (a >= UINT64_C(0x7ff0000000000000)) {
    if (a > UINT64_C(0x7ff0000000000000)) return inf | (1u << (mbits - 1)); /* NaN */
    return sign | inf;
  }
  int bias = (1 << (ebits - 1)) - 1;
  int emin = 1 - bias;
  int e = (int)(a >> 52) - 1023;
  if (e > bias) return sign | inf;
  if (e < emin - mbits - 1 || (a >> 52) == 0) return sign; /* rounds to zero */
  uint64_t m = (a & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1) << 52);
  int shift = 52 - mbits + (e < emin ? emin - e : 0);
  uint64_t keep = m >> shift;
  uint64_t rest = m & ((UINT64_C(1) << shift) - 1);
  uint64_t half = UINT64_C(1) << (shift - 1);
  if (rest > half || (rest == half && (keep & 1))) keep++;
  uint32_t r;
  if (e >= emin)
    r = ((uint32_t)(e + bias - 1) << mbits) + (uint32_t)keep; /* carry ok */
  else
    r = (uint32_t)keep; /* subnormal; may round up to the smallest normal */
  if (r > inf) r = inf;
  return sign | r;
}

static double half_to_double(uint16_t h) {
  uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v;
  if (e == 0x1f)
    v = m ? NAN : INFINITY;
  else if (e == 0)
    v = ldexp((double)m, -24);
  else
    v = ldexp((double)(m | 0x400), (int)e - 25);
  return (h & 0x8000) ? -v : v;
}

static float bf16_to_float(uint16_t h) {
  uint32_t b = (uint32_t)h << 16;
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

/* ---------------------------------------------------------------------------------------
 * Nested lists. The first descent fixes the rank (the depth of the first number, or of
 * the first empty list); the first list closed at each depth fixes that dimension, and
 * every later list at that depth must have as many elements. */

typedef struct {
  scan_t *sc;
  wk_dtype_t dt;
  size_t esize;
  unsigned char *data;
  size_t n, cap; /* elements */
  size_t max;
  int ndim; /* -1 until known */
  int64_t shape[WK_MAX_DIMS];
  unsigned char known[WK_MAX_DIMS];
} nest_t;

static int grow(nest_t *ns) {
  if (ns->n >= ns->max)
    return fail_at(ns->sc, WK_ETOOBIG, "tensor too large", ns->sc->pos,
                   "more than %zu elements (the limit)", ns->max);
  size_t ncap = ns->cap ? ns->cap * 2 : 256;
  if (ncap > ns->max) ncap = ns->max;
  unsigned char *p = realloc(ns->data, ncap * ns->esize);
  if (p == NULL) return wk_err(ns->sc->err, WK_ENOMEM, "out of memory reading a tensor");
  ns->data = p;
  ns->cap = ncap;
  return 0;
}

static int int_range(wk_dtype_t dt, int64_t *lo, int64_t *hi) {
  switch (dt) {
  case WK_DT_INT8: *lo = INT8_MIN, *hi = INT8_MAX; return 1;
  case WK_DT_INT16: *lo = INT16_MIN, *hi = INT16_MAX; return 1;
  case WK_DT_INT32: *lo = INT32_MIN, *hi = INT32_MAX; return 1;
  case WK_DT_INT64: *lo = INT64_MIN, *hi = INT64_MAX; return 1;
  case WK_DT_UINT8: *lo = 0, *hi = UINT8_MAX; return 1;
  case WK_DT_BOOL: *lo = 0, *hi = 1; return 1;
  default: return 0;
  }
}

/* Reads the number token nm as an exact integer for an integer or bool dtype. */
static int num_to_int(scan_t *sc, const num_t *nm, wk_dtype_t dt, int64_t *out) {
  int64_t lo = 0, hi = 0;
  int_range(dt, &lo, &hi);
  int len = (int)(nm->end - nm->start > 40 ? 40 : nm->end - nm->start);
  const char *tok = sc->p + nm->start;
  if (nm->kind != NUM_FINITE)
    return fail_at(sc, WK_EINVAL, "invalid number", nm->start, "%.*s is not an integer (dtype %s)",
                   len, tok, wk_dtype_name(dt));
  int64_t v;
  if (nm->is_int && !nm->inexact) {
    uint64_t mag = nm->mant;
    int over = 0;
    for (int64_t e = 0; e < nm->exp10 && !over; e++) {
      if (mag > UINT64_MAX / 10)
        over = 1;
      else
        mag *= 10;
    }
    uint64_t limit = nm->neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (over || mag > limit) goto range;
    v = nm->neg ? (int64_t)(0 - mag) : (int64_t)mag;
  } else if (nm->is_int) {
    goto range; /* 20+ digits with nonzero digits past the 19th */
  } else {
    double d;
    int rc = num_to_double(sc, nm, &d);
    if (rc != 0) return rc;
    if (d != trunc(d))
      return fail_at(sc, WK_EINVAL, "invalid number", nm->start,
                     "%.*s is not an integer (dtype %s)", len, tok, wk_dtype_name(dt));
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) goto range;
    v = (int64_t)d;
  }
  if (v < lo || v > hi) goto range;
  *out = v;
  return 0;
range:
  return fail_at(sc, WK_EINVAL, "invalid number", nm->start,
                 "%.*s is out of range for %s (%lld to %lld)", len, tok, wk_dtype_name(dt),
                 (long long)lo, (long long)hi);
}

/* The common case, in one pass: [-]digits[.digits][e[+-]digits] with a mantissa below 2^53
 * and a power of ten within 10^+-22, so that one correctly rounded multiply or divide gives
 * the double. Returns 0 (consuming nothing) for anything else, errors included. */
static inline int quick_decimal(const char *p, size_t n, size_t *pos, double *out) {
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
  size_t i = *pos;
  int neg = 0, e = 0;
  uint64_t m = 0;
  if (i < n && p[i] == '-') {
    neg = 1;
    i++;
  }
  if (i >= n) return 0;
  if (p[i] == '0') {
    i++;
    if (i < n && is_digit(p[i])) return 0;
  } else if (is_digit(p[i])) {
    for (; i < n && is_digit(p[i]); i++) {
      if (m >= (UINT64_C(1) << 53)) return 0;
      m = m * 10 + (uint64_t)(p[i] - '0');
    }
  } else {
    return 0;
  }
  if (i < n && p[i] == '.') {
    i++;
    if (i >= n || !is_digit(p[i])) return 0;
    for (; i < n && is_digit(p[i]); i++) {
      if (m >= (UINT64_C(1) << 53)) return 0;
      m = m * 10 + (uint64_t)(p[i] - '0');
      e--;
    }
  }
  if (i < n && (p[i] == 'e' || p[i] == 'E')) {
    i++;
    int eneg = 0, x = 0, nd = 0;
    if (i < n && (p[i] == '+' || p[i] == '-')) eneg = p[i++] == '-';
    for (; i < n && is_digit(p[i]) && nd < 4; i++, nd++)
      x = x * 10 + (p[i] - '0');
    if (nd == 0 || nd == 4) return 0;
    e += eneg ? -x : x;
  }
  if (m > (UINT64_C(1) << 53) || e < -22 || e > 22) return 0;
  double d = (double)m;
  d = e < 0 ? d / k_pow10[-e] : d * k_pow10[e];
  *out = neg ? -d : d;
  *pos = i;
  return 1;
#else
  (void)p, (void)n, (void)pos, (void)out;
  return 0;
#endif
}

/* Reads one element at sc->pos (a number, NaN, Infinity, true or false) and appends it. */
static int parse_leaf(nest_t *ns, const char *expected) {
  scan_t *sc = ns->sc;
  if (ns->n == ns->cap) {
    int rc = grow(ns);
    if (rc != 0) return rc;
  }
  size_t pos = sc->pos;
  double qd;
  if ((ns->dt == WK_DT_FLOAT32 || ns->dt == WK_DT_FLOAT64) &&
      quick_decimal(sc->p, sc->len, &pos, &qd)) {
    if (ns->dt == WK_DT_FLOAT64) {
      ((double *)ns->data)[ns->n++] = qd;
      sc->pos = pos;
      return 0;
    }
    uint64_t bits;
    memcpy(&bits, &qd, sizeof bits);
    if ((bits & UINT64_C(0x1fffffff)) != UINT64_C(0x10000000)) { /* not a float midpoint */
      ((float *)ns->data)[ns->n++] = (float)qd;
      sc->pos = pos;
      return 0;
    }
    pos = sc->pos; /* let strtof round it */
  }
  char c = pos < sc->len ? sc->p[pos] : '\0';
  num_t nm;
  int is_bool = 0, bval = 0;
  if (c == 't' || c == 'f') {
    bval = c == 't';
    if (!match_word(sc, pos, bval ? "true" : "false")) return expect_err(sc, pos, expected);
    sc->pos += bval ? 4 : 5;
    is_bool = 1;
  } else if (c == '-' || is_digit(c) || c == 'N' || c == 'I') {
    int rc = scan_num(sc, &nm);
    if (rc != 0) return rc;
  } else {
    return expect_err(sc, pos, expected);
  }
  void *dst = ns->data + ns->n * ns->esize;
  int rc = 0;
  switch (ns->dt) {
  case WK_DT_FLOAT32: {
    float f = (float)bval;
    if (!is_bool) rc = num_to_float(sc, &nm, &f);
    *(float *)dst = f;
    break;
  }
  case WK_DT_FLOAT64:
  case WK_DT_FLOAT16:
  case WK_DT_BFLOAT16: {
    double d = (double)bval;
    if (!is_bool) rc = num_to_double(sc, &nm, &d);
    if (ns->dt == WK_DT_FLOAT64)
      *(double *)dst = d;
    else if (ns->dt == WK_DT_FLOAT16)
      *(uint16_t *)dst = (uint16_t)double_to_small(d, 10, 5);
    else
      *(uint16_t *)dst = (uint16_t)double_to_small(d, 7, 8);
    break;
  }
  default: {
    int64_t v = bval;
    if (!is_bool) rc = num_to_int(sc, &nm, ns->dt, &v);
    switch (ns->dt) {
    case WK_DT_INT8: *(int8_t *)dst = (int8_t)v; break;
    case WK_DT_INT16: *(int16_t *)dst = (int16_t)v; break;
    case WK_DT_INT32: *(int32_t *)dst = (int32_t)v; break;
    case WK_DT_INT64: *(int64_t *)dst = v; break;
    default: *(uint8_t *)dst = (uint8_t)v; break; /* uint8, bool */
    }
  }
  }
  if (rc != 0) return rc;
  ns->n++;
  return 0;
}

/* Reads the list that opens at sc->pos, at depth d (0 for the outermost list). */
static int parse_list(nest_t *ns, int d) {
  scan_t *sc = ns->sc;
  size_t open = sc->pos;
  if (d >= WK_MAX_DIMS)
    return fail_at(sc, WK_EINVAL, "nested list too deep", open,
                   "a tensor has at most %d dimensions", WK_MAX_DIMS);
  if (ns->ndim >= 0 && d >= ns->ndim)
    return fail_at(sc, WK_EINVAL, "ragged nested list", open,
                   "expected a number at depth %d, found a list", d + 1);
  sc->pos++;
  skip_ws(sc);
  int64_t count = 0;
  if (sc->pos < sc->len && sc->p[sc->pos] == ']') {
    sc->pos++;
    if (ns->ndim < 0) ns->ndim = d + 1;
  } else {
    for (;;) {
      if (sc->pos < sc->len && sc->p[sc->pos] == '[') {
        int rc = parse_list(ns, d + 1);
        if (rc != 0) return rc;
      } else {
        const char *expected = "expected a number";
        if (ns->ndim < 0) {
          ns->ndim = d + 1;
          expected = "expected a number or '['";
        }
        if (ns->ndim != d + 1) {
          char c = sc->pos < sc->len ? sc->p[sc->pos] : '\0';
          if (!(is_digit(c) || c == '-' || c == 'N' || c == 'I' || c == 't' || c == 'f'))
            return expect_err(sc, sc->pos, "expected '['");
          return fail_at(sc, WK_EINVAL, "ragged nested list", sc->pos,
                         "expected a list at depth %d, found a number", d + 2);
        }
        int rc = parse_leaf(ns, expected);
        if (rc != 0) return rc;
      }
      count++;
      skip_ws(sc);
      if (sc->pos >= sc->len) return expect_err(sc, sc->pos, "expected ',' or ']'");
      char c = sc->p[sc->pos];
      if (c == ',') {
        sc->pos++;
        skip_ws(sc);
        continue;
      }
      if (c == ']') {
        sc->pos++;
        break;
      }
      return expect_err(sc, sc->pos, "expected ',' or ']'");
    }
  }
  if (!ns->known[d]) {
    ns->known[d] = 1;
    ns->shape[d] = count;
  } else if (ns->shape[d] != count) {
    return fail_at(sc, WK_EINVAL, "ragged nested list", open,
                   "expected %lld elements at depth %d, found %lld", (long long)ns->shape[d], d + 1,
                   (long long)count);
  }
  return 0;
}

/* Reads one tensor (a nested list or a bare number) at sc->pos into t; sc->pos ends after
 * it. On failure t is untouched. */
static int parse_nested(scan_t *sc, wk_dtype_t dt, size_t max, wk_tensor_t *t) {
  nest_t ns;
  memset(&ns, 0, sizeof ns);
  ns.sc = sc;
  ns.dt = dt;
  ns.esize = wk_dtype_size(dt);
  ns.max = max;
  ns.ndim = -1;
  skip_ws(sc);
  int rc;
  if (sc->pos < sc->len && sc->p[sc->pos] == '[') {
    rc = parse_list(&ns, 0);
  } else {
    ns.ndim = 0;
    rc = parse_leaf(&ns, "expected a number or '['");
  }
  if (rc != 0) {
    free(ns.data);
    return rc;
  }
  if (ns.n == 0 || ns.n < ns.cap) {
    unsigned char *p = realloc(ns.data, ns.n ? ns.n * ns.esize : 1);
    if (p == NULL) {
      free(ns.data);
      return wk_err(sc->err, WK_ENOMEM, "out of memory reading a tensor");
    }
    ns.data = p;
  }
  memset(t, 0, sizeof *t);
  t->dtype = dt;
  t->ndim = ns.ndim;
  memcpy(t->shape, ns.shape, sizeof(int64_t) * (size_t)ns.ndim);
  t->data = ns.data;
  t->nbytes = ns.n * ns.esize;
  t->owns_data = 1;
  if (wk_tensor_numel(t) != (int64_t)ns.n) { /* cannot happen: every dimension was checked */
    wk_tensor_destroy(t);
    return wk_err(sc->err, WK_EINTERNAL, "tensor shape does not match its element count");
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * Generic JSON: strings and a validating value skipper for the parts we do not read. */

static int hex4(const scan_t *sc, size_t pos, unsigned *out) {
  if (sc->len - pos < 4) return -1;
  unsigned v = 0;
  for (int k = 0; k < 4; k++) {
    char c = sc->p[pos + (size_t)k];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else
      return -1;
  }
  *out = v;
  return 0;
}

static void put_byte(char *dst, size_t cap, size_t *n, unsigned char b) {
  if (dst && *n < cap) dst[*n] = (char)b;
  (*n)++;
}

/* Scans the string literal at sc->pos, decoding it as UTF-8 into dst (up to cap bytes,
 * not NUL-terminated; dst may be NULL). *outlen receives the full decoded length. */
static int scan_string(scan_t *sc, char *dst, size_t cap, size_t *outlen) {
  const char *p = sc->p;
  size_t i = sc->pos + 1, n = 0;
  for (;;) {
    if (i >= sc->len) return expect_err(sc, i, "expected '\"' to end the string");
    unsigned char c = (unsigned char)p[i];
    if (c == '"') break;
    if (c < 0x20) return expect_err(sc, i, "expected a character (control bytes must be escaped)");
    if (c != '\\') {
      put_byte(dst, cap, &n, c);
      i++;
      continue;
    }
    if (i + 1 >= sc->len) return expect_err(sc, i + 1, "expected an escape character");
    char e = p[i + 1];
    unsigned cp;
    switch (e) {
    case '"': cp = '"'; break;
    case '\\': cp = '\\'; break;
    case '/': cp = '/'; break;
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'n': cp = '\n'; break;
    case 'r': cp = '\r'; break;
    case 't': cp = '\t'; break;
    case 'u':
      if (hex4(sc, i + 2, &cp) != 0) return expect_err(sc, i + 2, "expected 4 hex digits");
      if (cp >= 0xdc00 && cp <= 0xdfff)
        return fail_at(sc, WK_EINVAL, "malformed JSON", i, "unpaired surrogate in \\u escape");
      if (cp >= 0xd800 && cp <= 0xdbff) {
        unsigned lo;
        if (sc->len - (i + 6) < 2 || p[i + 6] != '\\' || p[i + 7] != 'u' ||
            hex4(sc, i + 8, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
          return fail_at(sc, WK_EINVAL, "malformed JSON", i, "unpaired surrogate in \\u escape");
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i += 6;
      }
      i += 4;
      break;
    default:
      return expect_err(sc, i + 1,
                        "expected a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
    }
    i += 2;
    if (cp < 0x80) {
      put_byte(dst, cap, &n, (unsigned char)cp);
    } else if (cp < 0x800) {
      put_byte(dst, cap, &n, (unsigned char)(0xc0 | (cp >> 6)));
      put_byte(dst, cap, &n, (unsigned char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      put_byte(dst, cap, &n, (unsigned char)(0xe0 | (cp >> 12)));
      put_byte(dst, cap, &n, (unsigned char)(0x80 | ((cp >> 6) & 0x3f)));
      put_byte(dst, cap, &n, (unsigned char)(0x80 | (cp & 0x3f)));
    } else {
      put_byte(dst, cap, &n, (unsigned char)(0xf0 | (cp >> 18)));
      put_byte(dst, cap, &n, (unsigned char)(0x80 | ((cp >> 12) & 0x3f)));
      put_byte(dst, cap, &n, (unsigned char)(0x80 | ((cp >> 6) & 0x3f)));
      put_byte(dst, cap, &n, (unsigned char)(0x80 | (cp & 0x3f)));
    }
  }
  sc->pos = i + 1;
  if (outlen) *outlen = n;
  return 0;
}

/* Skips (and validates) any JSON value at sc->pos. */
static int skip_value(scan_t *sc, int depth) {
  skip_ws(sc);
  if (sc->pos >= sc->len) return expect_err(sc, sc->pos, "expected a JSON value");
  char c = sc->p[sc->pos];
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    if (depth >= WK_MAX_JSON_DEPTH)
      return fail_at(sc, WK_EINVAL, "JSON too deep", sc->pos, "nesting is limited to %d levels",
                     WK_MAX_JSON_DEPTH);
    sc->pos++;
    skip_ws(sc);
    if (sc->pos < sc->len && sc->p[sc->pos] == close) {
      sc->pos++;
      return 0;
    }
    for (;;) {
      int rc;
      if (close == '}') {
        skip_ws(sc);
        if (sc->pos >= sc->len || sc->p[sc->pos] != '"')
          return expect_err(sc, sc->pos, "expected a string key");
        if ((rc = scan_string(sc, NULL, 0, NULL)) != 0) return rc;
        skip_ws(sc);
        if (sc->pos >= sc->len || sc->p[sc->pos] != ':')
          return expect_err(sc, sc->pos, "expected ':'");
        sc->pos++;
      }
      if ((rc = skip_value(sc, depth + 1)) != 0) return rc;
      skip_ws(sc);
      if (sc->pos < sc->len && sc->p[sc->pos] == ',') {
        sc->pos++;
        continue;
      }
      if (sc->pos < sc->len && sc->p[sc->pos] == close) {
        sc->pos++;
        return 0;
      }
      return expect_err(sc, sc->pos, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
  if (c == '"') return scan_string(sc, NULL, 0, NULL);
  if (c == 't' || c == 'f' || c == 'n') {
    const char *w = c == 't' ? "true" : c == 'f' ? "false" : "null";
    if (!match_word(sc, sc->pos, w)) return expect_err(sc, sc->pos, "expected a JSON value");
    sc->pos += strlen(w);
    return 0;
  }
  if (c == '-' || is_digit(c) || c == 'N' || c == 'I') {
    num_t nm;
    return scan_num(sc, &nm);
  }
  return expect_err(sc, sc->pos, "expected a JSON value");
}

/* ---------------------------------------------------------------------------------------
 * Envelopes. */

void wk_json_inputs_destroy(wk_json_inputs_t *in) {
  for (size_t i = 0; i < in->count && i < WK_MAX_NAMED_INPUTS; i++) {
    wk_tensor_destroy(&in->tensors[i]);
    free(in->names[i]);
  }
  memset(in, 0, sizeof *in);
}

enum { KEY_OTHER, KEY_DTYPE, KEY_DATA, KEY_BODY, KEY_INSTANCES, KEY_INPUTS };

static int key_kind(const char *k, size_t n) {
  static const struct {
    const char *name;
    int kind;
  } keys[] = {{"dtype", KEY_DTYPE},
              {"data", KEY_DATA},
              {"body", KEY_BODY},
              {"instances", KEY_INSTANCES},
              {"inputs", KEY_INPUTS}};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (strlen(keys[i].name) == n && memcmp(keys[i].name, k, n) == 0) return keys[i].kind;
  return KEY_OTHER;
}

/* {"a": X, "b": Y} at sc->pos: named tensors. */
static int parse_named(scan_t *sc, wk_dtype_t dt, wk_json_inputs_t *res) {
  sc->pos++;
  skip_ws(sc);
  if (sc->pos < sc->len && sc->p[sc->pos] == '}')
    return fail_at(sc, WK_EINVAL, "invalid inputs", sc->pos,
                   "\"inputs\" is an empty object: expected tensors by name");
  for (;;) {
    skip_ws(sc);
    if (sc->pos >= sc->len || sc->p[sc->pos] != '"')
      return expect_err(sc, sc->pos, "expected a string key");
    size_t key_pos = sc->pos, n;
    int rc = scan_string(sc, NULL, 0, &n);
    if (rc != 0) return rc;
    if (res->count >= WK_MAX_NAMED_INPUTS)
      return fail_at(sc, WK_ETOOBIG, "too many inputs", key_pos, "at most %d named inputs",
                     WK_MAX_NAMED_INPUTS);
    char *name = malloc(n + 1);
    if (name == NULL) return wk_err(sc->err, WK_ENOMEM, "out of memory");
    sc->pos = key_pos;
    scan_string(sc, name, n, NULL);
    name[n] = '\0';
    if (strlen(name) != n) {
      free(name);
      return fail_at(sc, WK_EINVAL, "invalid inputs", key_pos, "input name contains \\u0000");
    }
    for (size_t k = 0; k < res->count; k++) {
      if (strcmp(res->names[k], name) == 0) {
        free(name);
        return fail_at(sc, WK_EINVAL, "invalid inputs", key_pos, "input \"%.64s\" given twice",
                       res->names[k]);
      }
    }
    skip_ws(sc);
    if (sc->pos >= sc->len || sc->p[sc->pos] != ':') {
      free(name);
      return expect_err(sc, sc->pos, "expected ':'");
    }
    sc->pos++;
    rc = parse_nested(sc, dt, WK_MAX_TENSOR_ELEMS, &res->tensors[res->count]);
    if (rc != 0) {
      free(name);
      return rc;
    }
    res->names[res->count++] = name;
    skip_ws(sc);
    if (sc->pos < sc->len && sc->p[sc->pos] == ',') {
      sc->pos++;
      continue;
    }
    if (sc->pos < sc->len && sc->p[sc->pos] == '}') {
      sc->pos++;
      return 0;
    }
    return expect_err(sc, sc->pos, "expected ',' or '}'");
  }
}

static int parse_data(scan_t *sc, int kind, wk_dtype_t dt, wk_json_inputs_t *res) {
  skip_ws(sc);
  char c = sc->pos < sc->len ? sc->p[sc->pos] : '\0';
  if (kind == KEY_INPUTS && c == '{') return parse_named(sc, dt, res);
  if (kind == KEY_INSTANCES && c != '[')
    return expect_err(sc, sc->pos, "expected '[' (\"instances\" is a list of rows)");
  int rc = parse_nested(sc, dt, WK_MAX_TENSOR_ELEMS, &res->tensors[0]);
  if (rc == 0) res->count = 1;
  return rc;
}

static int parse_envelope(scan_t *sc, wk_json_inputs_t *res) {
  wk_dtype_t dt = WK_DT_FLOAT32, parsed_dt = WK_DT_FLOAT32;
  int data_kind = KEY_OTHER;
  size_t data_pos = 0;
  sc->pos++;
  skip_ws(sc);
  if (sc->pos < sc->len && sc->p[sc->pos] == '}') {
    sc->pos++;
  } else {
    for (;;) {
      skip_ws(sc);
      if (sc->pos >= sc->len || sc->p[sc->pos] != '"')
        return expect_err(sc, sc->pos, "expected a string key");
      char key[16];
      size_t klen;
      int rc = scan_string(sc, key, sizeof key, &klen);
      if (rc != 0) return rc;
      int kind = klen <= sizeof key ? key_kind(key, klen) : KEY_OTHER;
      skip_ws(sc);
      if (sc->pos >= sc->len || sc->p[sc->pos] != ':')
        return expect_err(sc, sc->pos, "expected ':'");
      sc->pos++;
      skip_ws(sc);
      if (kind == KEY_DTYPE) {
        size_t vpos = sc->pos;
        if (sc->pos >= sc->len || sc->p[sc->pos] != '"')
          return expect_err(sc, sc->pos, "expected a string such as \"float32\" for \"dtype\"");
        char name[32];
        size_t n;
        if ((rc = scan_string(sc, name, sizeof name - 1, &n)) != 0) return rc;
        name[n < sizeof name ? n : sizeof name - 1] = '\0';
        if (n >= sizeof name || strlen(name) != n || wk_dtype_parse(name, &dt) != 0) {
          char what[64];
          snprintf(what, sizeof what, "unknown dtype \"%.24s%s\"", name,
                   n >= sizeof name - 8 ? "..." : "");
          return fail_at(sc, WK_EINVAL, what, vpos,
                         "expected one of float32, float64, float16, bfloat16, int64, int32, "
                         "int16, int8, uint8, bool");
        }
      } else if (kind != KEY_OTHER) {
        if (data_kind != KEY_OTHER)
          return fail_at(sc, WK_EINVAL, "ambiguous body", sc->pos,
                         "expected only one of \"data\", \"body\", \"instances\", \"inputs\"");
        data_kind = kind;
        data_pos = sc->pos;
        parsed_dt = dt;
        if ((rc = parse_data(sc, kind, dt, res)) != 0) return rc;
      } else if ((rc = skip_value(sc, 1)) != 0) {
        return rc;
      }
      skip_ws(sc);
      if (sc->pos < sc->len && sc->p[sc->pos] == ',') {
        sc->pos++;
        continue;
      }
      if (sc->pos < sc->len && sc->p[sc->pos] == '}') {
        sc->pos++;
        break;
      }
      return expect_err(sc, sc->pos, "expected ',' or '}'");
    }
  }
  if (data_kind == KEY_OTHER)
    return wk_err(sc->err, WK_EINVAL,
                  "expected a JSON tensor: a list, or an object with \"data\", \"body\", "
                  "\"instances\" or \"inputs\"");
  if (parsed_dt != dt) { /* "dtype" came after the data: read it again */
    size_t end = sc->pos;
    wk_json_inputs_destroy(res);
    sc->pos = data_pos;
    int rc = parse_data(sc, data_kind, dt, res);
    if (rc != 0) return rc;
    sc->pos = end;
  }
  return 0;
}

int wk_json_parse_inputs(const char *body, size_t len, wk_json_inputs_t *out, wk_err_t *err) {
  scan_t sc = {body, len, 0, err};
  wk_json_inputs_t res;
  memset(&res, 0, sizeof res);
  skip_ws(&sc);
  if (sc.pos >= len) return wk_err(err, WK_EINVAL, "empty body: expected a JSON tensor");
  int rc;
  if (body[sc.pos] == '{') {
    rc = parse_envelope(&sc, &res);
  } else {
    rc = parse_nested(&sc, WK_DT_FLOAT32, WK_MAX_TENSOR_ELEMS, &res.tensors[0]);
    if (rc == 0) res.count = 1;
  }
  if (rc == 0) {
    skip_ws(&sc);
    if (sc.pos < len) rc = expect_err(&sc, sc.pos, "expected the end of the body");
  }
  if (rc != 0) {
    wk_json_inputs_destroy(&res);
    return rc;
  }
  *out = res;
  return 0;
}

int wk_json_parse_tensor_max(const char *body, size_t len, wk_dtype_t dt, size_t max_elems,
                             wk_tensor_t *t, wk_err_t *err) {
  if ((unsigned)dt >= WK_DT_COUNT) return wk_err(err, WK_EINVAL, "unknown dtype %d", (int)dt);
  if (max_elems > (size_t)WK_MAX_TENSOR_ELEMS) max_elems = (size_t)WK_MAX_TENSOR_ELEMS;
  scan_t sc = {body, len, 0, err};
  skip_ws(&sc);
  if (sc.pos >= len) return wk_err(err, WK_EINVAL, "empty body: expected a JSON tensor");
  wk_tensor_t res;
  int rc = parse_nested(&sc, dt, max_elems, &res);
  if (rc != 0) return rc;
  skip_ws(&sc);
  if (sc.pos < len) {
    wk_tensor_destroy(&res);
    return expect_err(&sc, sc.pos, "expected the end of the body");
  }
  *t = res;
  return 0;
}

int wk_json_parse_tensor(const char *body, size_t len, wk_dtype_t dt, wk_tensor_t *t,
                         wk_err_t *err) {
  return wk_json_parse_tensor_max(body, len, dt, (size_t)WK_MAX_TENSOR_ELEMS, t, err);
}

/* ---------------------------------------------------------------------------------------
 * Printer. */

/* Makes a %g result read as a float in Python ("1" -> "1.0"). */
static size_t floatify(char *buf, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (buf[i] == '.' || buf[i] == 'e' || buf[i] == 'n' || buf[i] == 'N' || buf[i] == 'I') return n;
  buf[n++] = '.';
  buf[n++] = '0';
  buf[n] = '\0';
  return n;
}

static size_t fmt_special(char *buf, double d) {
  const char *s = isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity";
  size_t n = strlen(s);
  memcpy(buf, s, n + 1);
  return n;
}

static size_t fmt_zero(char *buf, int neg) {
  const char *s = neg ? "-0.0" : "0.0";
  size_t n = strlen(s);
  memcpy(buf, s, n + 1);
  return n;
}

/* Writes the shortest %g text (6 to 9 significant digits) that strtof reads back to f. */
static size_t fmt_f32(char *buf, float f) {
  if (isnan(f) || isinf(f)) return fmt_special(buf, f);
  if (f == 0) return fmt_zero(buf, signbit(f));
  /* Round-tripping is monotonic in the number of digits: two tries find the shortest. */
  int n = snprintf(buf, 32, "%.*g", 7, (double)f);
  if (strtof(buf, NULL) == f) {
    char alt[32];
    int m = snprintf(alt, sizeof alt, "%.*g", 6, (double)f);
    if (strtof(alt, NULL) == f) {
      memcpy(buf, alt, (size_t)m + 1);
      n = m;
    }
  } else {
    n = snprintf(buf, 32, "%.*g", 8, (double)f);
    if (strtof(buf, NULL) != f) n = snprintf(buf, 32, "%.*g", 9, (double)f);
  }
  return floatify(buf, (size_t)n);
}

/* Writes the shortest of 15, 16 or 17 significant digits that strtod reads back to d. */
static size_t fmt_f64(char *buf, double d) {
  if (isnan(d) || isinf(d)) return fmt_special(buf, d);
  if (d == 0) return fmt_zero(buf, signbit(d));
  int n = snprintf(buf, 40, "%.*g", 15, d);
  if (strtod(buf, NULL) != d) {
    n = snprintf(buf, 40, "%.*g", 16, d);
    if (strtod(buf, NULL) != d) n = snprintf(buf, 40, "%.*g", 17, d);
  }
  return floatify(buf, (size_t)n);
}

static size_t fmt_i64(char *buf, int64_t v) {
  char tmp[24];
  size_t n = 0, k = 0;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[k++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) buf[n++] = '-';
  while (k)
    buf[n++] = tmp[--k];
  buf[n] = '\0';
  return n;
}

static size_t fmt_elem(char *buf, wk_dtype_t dt, const unsigned char *p) {
  switch (dt) {
  case WK_DT_FLOAT32: {
    float f;
    memcpy(&f, p, sizeof f);
    return fmt_f32(buf, f);
  }
  case WK_DT_FLOAT64: {
    double d;
    memcpy(&d, p, sizeof d);
    return fmt_f64(buf, d);
  }
  case WK_DT_FLOAT16: {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return fmt_f32(buf, (float)half_to_double(h));
  }
  case WK_DT_BFLOAT16: {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return fmt_f32(buf, bf16_to_float(h));
  }
  case WK_DT_INT8: return fmt_i64(buf, *(const int8_t *)p);
  case WK_DT_INT16: {
    int16_t v;
    memcpy(&v, p, sizeof v);
    return fmt_i64(buf, v);
  }
  case WK_DT_INT32: {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return fmt_i64(buf, v);
  }
  case WK_DT_INT64: {
    int64_t v;
    memcpy(&v, p, sizeof v);
    return fmt_i64(buf, v);
  }
  case WK_DT_UINT8: return fmt_i64(buf, *p);
  case WK_DT_BOOL: {
    const char *s = *p ? "true" : "false";
    size_t n = strlen(s);
    memcpy(buf, s, n + 1);
    return n;
  }
  default: buf[0] = '\0'; return 0;
  }
}

static int print_dim(wk_buf_t *out, const wk_tensor_t *t, int d, size_t esize, size_t *elem) {
  char buf[48];
  if (d == t->ndim) {
    size_t n = fmt_elem(buf, t->dtype, (const unsigned char *)t->data + *elem * esize);
    (*elem)++;
    return wk_buf_append(out, buf, n);
  }
  int rc = wk_buf_putc(out, '[');
  for (int64_t i = 0; i < t->shape[d] && rc == 0; i++) {
    if (i) rc = wk_buf_putc(out, ',');
    if (rc == 0) rc = print_dim(out, t, d + 1, esize, elem);
  }
  return rc ? rc : wk_buf_putc(out, ']');
}

int wk_json_print_tensor(wk_buf_t *out, const wk_tensor_t *t) {
  if ((unsigned)t->dtype >= WK_DT_COUNT || t->ndim < 0 || t->ndim > WK_MAX_DIMS) return WK_EINVAL;
  int64_t numel = 1, lists = 1; /* lists: how many '[' an empty tensor still prints */
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] < 0) return WK_EINVAL;
    if (t->shape[i] && numel > INT64_MAX / t->shape[i]) return WK_EINVAL;
    numel *= t->shape[i];
    if (t->shape[i] && lists <= WK_MAX_TENSOR_ELEMS) lists *= t->shape[i];
  }
  if (lists > WK_MAX_TENSOR_ELEMS) return WK_ETOOBIG;
  size_t esize = wk_dtype_size(t->dtype);
  if ((uint64_t)numel > SIZE_MAX / esize || (size_t)numel * esize > t->nbytes ||
      (numel > 0 && t->data == NULL))
    return WK_EINVAL;
  size_t elem = 0;
  return print_dim(out, t, 0, esize, &elem);
}

static int print_value(wk_buf_t *out, const wk_value_t *v, int depth) {
  char buf[48];
  if (depth > WK_MAX_JSON_DEPTH) return WK_EINVAL;
  if (v == NULL) return wk_buf_puts(out, "null");
  switch (v->kind) {
  case WK_V_NONE: return wk_buf_puts(out, "null");
  case WK_V_TENSOR: return wk_json_print_tensor(out, &v->tensor);
  case WK_V_INT: return wk_buf_append(out, buf, fmt_i64(buf, v->i));
  case WK_V_DOUBLE: return wk_buf_append(out, buf, fmt_f64(buf, v->d));
  case WK_V_BOOL: return wk_buf_puts(out, v->i ? "true" : "false");
  case WK_V_STRING: return wk_buf_json_str(out, v->s ? v->s : "");
  case WK_V_LIST:
  case WK_V_DICT: {
    int dict = v->kind == WK_V_DICT;
    int rc = wk_buf_putc(out, dict ? '{' : '[');
    for (size_t i = 0; i < v->count && rc == 0; i++) {
      if (i) rc = wk_buf_putc(out, ',');
      if (rc == 0 && dict) {
        rc = wk_buf_json_str(out, v->keys && v->keys[i] ? v->keys[i] : "");
        if (rc == 0) rc = wk_buf_putc(out, ':');
      }
      if (rc == 0) rc = print_value(out, v->items[i], depth + 1);
    }
    return rc ? rc : wk_buf_putc(out, dict ? '}' : ']');
  }
  }
  return WK_EINVAL;
}

int wk_json_print_value(wk_buf_t *out, const wk_value_t *v) {
  return print_value(out, v, 0);
}
