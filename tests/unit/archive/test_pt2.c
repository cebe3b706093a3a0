/* Unit tests for archive/pt2: which zips are AOTInductor packages wick accepts, and the
 * input specs read from a package's generated wrapper source. The wrapper excerpts below
 * follow the form of the checks torch 2.14's AOTInductor writes (written here, not copied
 * from a package). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "archive/pt2.h"
#include "archive/zip.h"
#include "core/fs.h"

static char g_dir[1024];

static const char *tpath(const char *name) {
  static char p[4][1200];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
  return p[k];
}

/* One input's checks, as the generated check_input_N functions print them. */
#define DTYPE(i, aten)                                                                             \
  "ss << \"input_handles[" #i "]: unmatched dtype, \" << \"expected: \" << e << \"(at::k" aten     \
  "), \" << \"but got: \" << d << \"\\n\";\n"
#define SMALL(i, d, v)                                                                             \
  "ss << \"input_handles[" #i "]: dim value is too small at " #d ", \" << \"expected it to be >= " \
  #v ", \" << \"but got: \" << s[" #d "] << \"\\n\";\n"
#define LARGE(i, d, v)                                                                             \
  "ss << \"input_handles[" #i "]: dim value is too large at " #d ", \" << \"expected to be <= " #v \
  ", \" << \"but got: \" << s[" #d "] << \"\\n\";\n"
#define FIXED(i, d, v)                                                                             \
  "ss << \"input_handles[" #i "]: unmatched dim value at " #d ", \" << \"expected: " #v            \
  ", \" << \"but got: \" << s[" #d "] << \"\\n\";\n"
#define STRIDE(i, d)                                                                               \
  "ss << \"input_handles[" #i "]: unmatched stride value at " #d ", \" << \"expected: 1\";\n"
#define LEAF "{\"type\": null, \"context\": null, \"children_spec\": []}"

static const char mlp_wrapper[] =
    "in_spec_ = R\"([1, {\"type\": \"builtins.tuple\", \"context\": \"null\", \"children_spec\": "
    "[{\"type\": \"builtins.tuple\", \"context\": \"null\", \"children_spec\": [" LEAF "]}, "
    "{\"type\": \"builtins.dict\", \"context\": \"[]\", \"children_spec\": []}]}])\";\n"
    "out_spec_ = R\"([1, " LEAF "])\";\n" DTYPE(0, "Float") SMALL(0, 0, 2) LARGE(0, 0, 8)
        FIXED(0, 1, 16) STRIDE(0, 0) STRIDE(0, 1);

static void test_parse_dynamic_batch(void **state) {
  (void)state;
  wk_pt2_spec_t spec;
  memset(&spec, 0, sizeof spec);
  assert_int_equal(wk_pt2_parse_wrapper(mlp_wrapper, strlen(mlp_wrapper), &spec), 1);
  assert_int_equal(spec.ninputs, 1);
  assert_int_equal(spec.noutputs, 1);
  const wk_pt2_input_t *in = &spec.inputs[0];
  assert_string_equal(in->dtype, "float32");
  assert_int_equal(in->ndim, 2);
  assert_int_equal(in->min[0], 2);
  assert_int_equal(in->max[0], 8);
  assert_int_equal(in->min[1], 16);
  assert_int_equal(in->max[1], 16);
  assert_int_equal(spec.batch_min, 2);
  assert_int_equal(spec.batch_max, 8);
  char buf[128];
  wk_pt2_input_describe(in, buf, sizeof buf);
  assert_string_equal(buf, "float32 [2..8, 16]");
}

static void test_two_inputs_share_the_narrower_batch_range(void **state) {
  (void)state;
  static const char text[] = DTYPE(0, "Long") SMALL(0, 0, 2) LARGE(0, 0, 32) FIXED(0, 1, 6)
      DTYPE(1, "Half") SMALL(1, 0, 3) LARGE(1, 0, 16) SMALL(1, 1, 2) FIXED(1, 2, 4);
  wk_pt2_spec_t spec;
  memset(&spec, 0, sizeof spec);
  assert_int_equal(wk_pt2_parse_wrapper(text, strlen(text), &spec), 2);
  assert_string_equal(spec.inputs[0].dtype, "int64");
  assert_string_equal(spec.inputs[1].dtype, "float16");
  assert_int_equal(spec.inputs[1].ndim, 3);
  assert_int_equal(spec.batch_min, 3);
  assert_int_equal(spec.batch_max, 16);
  char buf[128];
  wk_pt2_input_describe(&spec.inputs[1], buf, sizeof buf);
  assert_string_equal(buf, "float16 [3..16, 2.., 4]"); /* no upper bound on dimension 1 */
}

static void test_static_batch_and_no_shared_batch(void **state) {
  (void)state;
  static const char fixed[] = DTYPE(0, "Float") FIXED(0, 0, 1) FIXED(0, 1, 16);
  wk_pt2_spec_t spec;
  memset(&spec, 0, sizeof spec);
  assert_int_equal(wk_pt2_parse_wrapper(fixed, strlen(fixed), &spec), 1);
  assert_int_equal(spec.batch_min, 1);
  assert_int_equal(spec.batch_max, 1);
  /* The second input is a scalar (no dimension checked): the inputs share no batch. */
  static const char scalar[] = DTYPE(0, "Float") FIXED(0, 0, 4) DTYPE(1, "Bool");
  memset(&spec, 0, sizeof spec);
  assert_int_equal(wk_pt2_parse_wrapper(scalar, strlen(scalar), &spec), 2);
  assert_int_equal(spec.batch_min, 0);
  assert_int_equal(spec.batch_max, 0);
  char buf[64];
  wk_pt2_input_describe(&spec.inputs[1], buf, sizeof buf);
  assert_string_equal(buf, "bool");
}

static void test_text_without_checks_gives_nothing(void **state) {
  (void)state;
  static const char *texts[] = {
      "",
      "int main() { return 0; }",
      "\"input_handles[", /* cut short */
      "\"input_handles[99999999999]: unmatched dim value at 0, expected: 3;",
      "\"input_handles[0]: unmatched dim value at 999, \" << \"expected: 3\";",
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    wk_pt2_spec_t spec;
    memset(&spec, 0, sizeof spec);
    size_t n = wk_pt2_parse_wrapper(texts[i], strlen(texts[i]), &spec);
    assert_true(n <= 1);
    assert_int_equal(spec.inputs[0].ndim, 0);
  }
}

/* A zip with the given entries (NULL-terminated name/content pairs). */
static void write_zip(const char *path, const char *const *entries) {
  wk_zip_writer_t *w = NULL;
  wk_err_t err;
  assert_int_equal(wk_zip_writer_open(path, &w, &err), 0);
  for (size_t i = 0; entries[i]; i += 2)
    assert_int_equal(wk_zip_writer_add(w, entries[i], entries[i + 1], strlen(entries[i + 1]),
                                       WK_ZIP_DEFLATED, &err),
                     0);
  assert_int_equal(wk_zip_writer_close(w, &err), 0);
}

#define MODEL "m/data/aotinductor/model/"

static void test_check_packages(void **state) {
  (void)state;
  wk_err_t err;
  const char *good[] = {MODEL "abc.wrapper.cpp", mlp_wrapper,
                        MODEL "abc.wrapper.so", "\x7f" "ELF",
                        MODEL "abc.wrapper_metadata.json",
                        "{\"AOTI_DEVICE_KEY\": \"cpu\", \"AOTI_PLATFORM\": \"linux\", "
                        "\"AOTI_CPU_ISA\": \"AVX2\"}",
                        "m/archive_format", "pt2", NULL};
  write_zip(tpath("good.pt2"), good);
  assert_int_equal(wk_pt2_check(tpath("good.pt2"), &err), 1);
  wk_pt2_spec_t spec;
  assert_int_equal(wk_pt2_read_spec(tpath("good.pt2"), &spec, &err), 0);
  assert_string_equal(spec.device, "cpu");
  assert_string_equal(spec.platform, "linux");
  assert_string_equal(spec.cpu_isa, "AVX2");
  assert_int_equal(spec.ninputs, 1);
  assert_int_equal(spec.batch_max, 8);

  const char *sources[] = {MODEL "abc.wrapper.cpp", mlp_wrapper, "m/archive_format", "pt2", NULL};
  write_zip(tpath("sources.pt2"), sources);
  assert_int_equal(wk_pt2_check(tpath("sources.pt2"), &err), WK_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "no compiled library"));

  const char *escape[] = {MODEL "abc.wrapper.so", "x", MODEL "../../../../../etc/x", "x", NULL};
  write_zip(tpath("escape.pt2"), escape);
  assert_int_equal(wk_pt2_check(tpath("escape.pt2"), &err), WK_EUNSAFE);

  /* An ExportedProgram (torch.export.save) is a zip with no compiled model: not a package. */
  const char *exported[] = {"m/models/model.json", "{}", "m/archive_format", "pt2", NULL};
  write_zip(tpath("exported.pt2"), exported);
  assert_int_equal(wk_pt2_check(tpath("exported.pt2"), &err), 0);

  FILE *f = fopen(tpath("junk.pt2"), "wb");
  assert_non_null(f);
  fputs("not a zip at all\n", f);
  fclose(f);
  assert_int_equal(wk_pt2_check(tpath("junk.pt2"), &err), WK_EFORMAT);
  assert_non_null(strstr(err.msg, "not an AOTInductor package"));
  f = fopen(tpath("junk.pt"), "wb");
  assert_non_null(f);
  fputs("not a zip at all\n", f);
  fclose(f);
  assert_int_equal(wk_pt2_check(tpath("junk.pt"), &err), 0); /* not named as a package */
}

static void test_cpu_features(void **state) {
  (void)state;
  char missing[64];
  assert_int_equal(wk_pt2_cpu_missing("", missing, sizeof missing), 0);
  assert_int_equal(wk_pt2_cpu_missing("SOMETHING_NEW", missing, sizeof missing), 0);
#if defined(__x86_64__)
  /* another architecture's vector ISA is never here */
  assert_int_equal(wk_pt2_cpu_missing("NEON SVE256", missing, sizeof missing), 2);
  assert_string_equal(missing, "NEON SVE256");
  __builtin_cpu_init();
  size_t want = !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
  assert_int_equal(wk_pt2_cpu_missing("AVX2", missing, sizeof missing), want);
#endif
}

static int setup(void **state) {
  (void)state;
  snprintf(g_dir, sizeof g_dir, "%s/pt2", WK_TEST_DATA_DIR);
  wk_fs_rmtree(g_dir);
  return wk_fs_mkdirs(g_dir, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_dynamic_batch),
      cmocka_unit_test(test_two_inputs_share_the_narrower_batch_range),
      cmocka_unit_test(test_static_batch_and_no_shared_batch),
      cmocka_unit_test(test_text_without_checks_gives_nothing),
      cmocka_unit_test(test_check_packages),
      cmocka_unit_test(test_cpu_features),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
