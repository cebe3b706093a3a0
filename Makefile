# wick's two commands: `make serve` and `make test`. Everything else is a step of them.
# Each target installs what is missing first (scripts/install-deps.sh is idempotent).

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc)
PYTHON     ?= $(CURDIR)/.venv/bin/python
DEMO       := $(BUILD)/demo
# See MACHINE-NOTES: OpenBLAS threads busy-wait against torch's (for a TORCH_DIR libtorch
# on OpenBLAS; the pinned wheel uses MKL). oneDNN's ISA is left alone: with torch 2.14 its
# AVX-512 kernels are faster here (docs/architecture.md).
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: all deps build build-asan build-tsan fuzz demo serve test test-unit test-asan test-tsan \
        test-e2e test-compat bench \
        bench-torchserve bench-grpc bench-pt2 compat soak fuzz-long screenshot clean format

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DWK_ASAN=ON -DWK_UBSAN=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)

fuzz: deps
	@cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DWK_FUZZ=ON -DWK_ASAN=ON -DWK_UBSAN=ON -DWK_TORCH=OFF >/dev/null
	@cmake --build $(BUILD_FUZZ) -j $(JOBS)
	@echo "fuzz targets are in $(BUILD_FUZZ)/: e.g. $(BUILD_FUZZ)/fuzz_zip tests/fuzz/corpus/zip"

# The demo model: trained once, cached in the build folder, packed with wick itself.
$(DEMO)/fashion.pt:
	@mkdir -p $(DEMO)
	$(PYTHON) examples/fashion/train.py --out $(DEMO)

# fashion.mar takes images (image_classifier); fashion_tensor.mar takes JSON tensors.
$(DEMO)/model_store/fashion.mar: $(DEMO)/fashion.pt examples/fashion/model-config.yaml build
	@mkdir -p $(DEMO)/model_store
	$(BUILD)/wick pack --model-name fashion --version 1.0 --serialized-file $(DEMO)/fashion.pt \
	  --handler image_classifier --extra-files examples/fashion/index_to_name.json \
	  --config-file examples/fashion/model-config.yaml --export-path $(DEMO)/model_store -f
	$(BUILD)/wick pack --model-name fashion_tensor --version 1.0 \
	  --serialized-file $(DEMO)/fashion.pt --handler tensor \
	  --extra-files examples/fashion/index_to_name.json \
	  --config-file examples/fashion/model-config.yaml --export-path $(DEMO)/model_store -f

demo: build $(DEMO)/model_store/fashion.mar

serve: demo
	$(BUILD)/wick serve --model-store $(DEMO)/model_store --models fashion=fashion.mar

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

# ThreadSanitizer (not in make test): the unit tests, then the end-to-end tests whose
# models are Python handlers (this build has no libtorch, which is not instrumented),
# test_threads.py among them (scaling, unregistering, timeouts and the drain under load);
# a race report makes the server exit 66, which fails the test.
build-tsan: deps
	@cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Debug -DWK_TSAN=ON -DWK_TORCH=OFF >/dev/null
	@cmake --build $(BUILD_TSAN) -j $(JOBS)

test-tsan: build-tsan
	cd $(BUILD_TSAN) && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -L unit
	WICK_BIN=$(CURDIR)/$(BUILD_TSAN)/wick WICK_SANITIZED=1 TSAN_OPTIONS=halt_on_error=0 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e/test_torchserve_compat.py \
	  tests/e2e/test_envelopes.py tests/e2e/test_python_handlers.py tests/e2e/test_threads.py \
	  tests/e2e/test_cancellation.py tests/e2e/test_grpc.py tests/e2e/test_grpc_reflection.py \
	  tests/e2e/test_lifecycle.py tests/e2e/test_python_template.py \
	  -k "not eager_cnn and not equal_the_http and not torchserve_status_codes and not hangs \
	      and not at_startup and not max_response_size and not health_watch"

test-asan: build-asan
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L unit

test-e2e: demo
	bash tests/e2e/run.sh $(BUILD) $(BUILD_ASAN)

# The compat harness's sequences against wick alone, compared with TorchServe's answers
# recorded by `make compat` (no TorchServe needed; archives made by wick pack when
# build/ts-venv is absent).
test-compat: build
	$(PYTHON) tests/compat/harness.py compare --wick $(BUILD)/wick tests/compat/torchserve-0.12.0.json

test: build build-asan demo
	$(MAKE) --no-print-directory test-unit test-asan test-e2e test-compat

bench: demo
	bash bench/run.sh $(BUILD)
	$(MAKE) --no-print-directory bench-pt2 bench-torchserve bench-grpc

# The differential harness against a live TorchServe: records its answers
# (tests/compat/torchserve-0.12.0.json) and compares wick's (tests/compat/RESULTS.md).
# TS_SNAPSHOT=<a checkout or bare git folder of github.com/pytorch/serve, fetched
# beforehand> adds the sequences on TorchServe's own test archives, read from it at run
# time (never committed: they hold TorchServe's code).
compat: build
	bash scripts/install-torchserve.sh
	@[ -n "$(TS_SNAPSHOT)" ] || echo "compat: no TS_SNAPSHOT: the sequences on TorchServe's own archives are skipped"
	$(PYTHON) tests/compat/harness.py record $(if $(TS_SNAPSHOT),--ts-snapshot $(TS_SNAPSHOT)) \
	  tests/compat/torchserve-0.12.0.json
	$(PYTHON) tests/compat/harness.py compare --wick $(BUILD)/wick $(if $(TS_SNAPSHOT),--ts-snapshot $(TS_SNAPSHOT)) \
	  --results tests/compat/RESULTS.md tests/compat/torchserve-0.12.0.json

# AOTInductor .pt2 packages vs frozen TorchScript (bench/RESULTS-pt2.md).
bench-pt2: demo
	$(PYTHON) bench/run_pt2.py $(BUILD)

# TorchServe 0.12 itself, in build/ts-venv (never .venv), against wick on the same models.
bench-torchserve: build
	bash scripts/install-torchserve.sh
	$(PYTHON) bench/run_torchserve.py $(BUILD)

# gRPC ([12]): v2 ModelInfer over gRPC vs v2 HTTP binary on wick, and TorchServe's own gRPC
# Predictions vs wick's (h2load), into bench/RESULTS-grpc.md.
bench-grpc: build
	bash scripts/install-torchserve.sh
	$(PYTHON) bench/run_grpc.py $(BUILD)

# Every fuzz target for 10 M executions or an hour ([11] part 12; hours, never in CI):
# tests/fuzz/RESULTS-long.md, minimized corpora back into tests/fuzz/corpus/.
fuzz-long: fuzz
	bash scripts/fuzz-long.sh

# Soak and chaos ([11] part 16; not in make test): 30 minutes of mixed load with Python
# workers killed and stopped; bench/RESULTS-soak.md and the soak section of RESULTS.md.
# SOAK_SECONDS=120 for a short run.
SOAK_SECONDS ?= 1800
soak: demo
	$(PYTHON) bench/soak.py --wick $(BUILD)/wick --demo $(DEMO) --seconds $(SOAK_SECONDS)

# docs/status-page.png: the status page ([13]) of the demo under about 75 s of traffic,
# photographed by Debian's headless chromium (scripts/screenshot.py; under two minutes).
screenshot: demo
	$(PYTHON) scripts/screenshot.py --wick $(BUILD)/wick --store $(DEMO)/model_store \
	  --out docs/status-page.png

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cc')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_FUZZ)
