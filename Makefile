PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_EVENTS ?= 300000
STAMP := $(VENV)/.installed
# The sample generator's source connection ids (read when the demo runs).
DEMO_CONNECTIONS = $$($(BIN)/python -c \
	'from eventpipe.sample.catalog import SOURCES; print(*(s.connection_id for s in SOURCES))')
# The BigQuery emulator of the tests pins duckdb 1.5.5 (the project uses 2.0): its own venv.
BQEMU_VENV := $(VENV)/bqemu
BQEMU_STAMP := $(BQEMU_VENV)/.installed

.PHONY: demo test lint bench mutate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(BQEMU_STAMP): tests/bigquery/emulator-requirements.txt
	$(PYTHON) -m venv $(BQEMU_VENV) || python3 -m venv $(BQEMU_VENV)
	$(BQEMU_VENV)/bin/pip install --quiet -r tests/bigquery/emulator-requirements.txt
	$(BQEMU_VENV)/bin/python tests/bigquery/install_spatial.py
	touch $(BQEMU_STAMP)

demo: $(STAMP)
	rm -rf demo-data lake
	$(BIN)/eventpipe generate --events $(DEMO_EVENTS) --out demo-data --seed 7
	$(BIN)/eventpipe import 'demo-data/*' --lake lake
	$(BIN)/eventpipe identity --lake lake
	$(BIN)/eventpipe compact --lake lake
	@echo "Workspace Demo, owning the sample's source connections (their ids are the events'"
	@echo "connectionId: eventpipe/sample/catalog.py), a read key and an event write key:"
	$(BIN)/eventpipe workspaces create --lake lake --name Demo --json
	for id in $(DEMO_CONNECTIONS); do \
	  $(BIN)/eventpipe connections create --lake lake --workspace demo --id $$id --json || exit 1; \
	done
	umask 077 && $(BIN)/eventpipe keys create --lake lake --workspace demo --scope read --json \
	  > lake/_demo_read_key.json && cat lake/_demo_read_key.json
	umask 077 && $(BIN)/eventpipe keys create --lake lake --workspace demo --json \
	  --connection $$(echo $(DEMO_CONNECTIONS) | cut -d' ' -f1) \
	  > lake/_demo_write_key.json && cat lake/_demo_write_key.json
	$(BIN)/python -m eventpipe.jobs.show --lake lake --api-hint
	@echo "The collector with continuous ingestion: an event from a curl POST to a GET:"
	sh scripts/demo_live.sh lake $(BIN)

test: $(STAMP) $(BQEMU_STAMP)
	$(BIN)/ruff check eventpipe tests benchmarks dataflow
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check eventpipe tests benchmarks dataflow
	$(BIN)/ruff format --check eventpipe tests benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_layering.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_import.py --events 500000

# Mutation testing of the rule modules ([tool.mutmut] in pyproject.toml), one module at a
# time (2 workers); results are kept in mutants/ and only changed functions re-run.
MUTATE_MODULES ?= transforms.validate transforms.json_leaves transforms.event_rules \
	core.json_audit transforms.normalise transforms.context_merge io.dedupe \
	io.failed_dedupe identity.rules identity.graph io.lake_transaction io.lake_lock \
	query.tree query.values query.sql query.duckdb_dialect query.bigquery_dialect api.filters \
	serving.index_lookup serving.index_pages
MUTATE_STAMP := $(VENV)/.mutate-installed

$(MUTATE_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,mutate]'
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP)
	@for m in $(MUTATE_MODULES); do \
	  start=$$(date +%s); \
	  $(BIN)/mutmut run --max-children 2 "eventpipe.$$m.*" > /dev/null 2>&1 || exit 1; \
	  echo "eventpipe.$$m: $$(( $$(date +%s) - start ))s"; \
	done
	@$(BIN)/mutmut results --all true 2>/dev/null | sed -E 's/^ *(eventpipe[^ǁ]*)\.x(ǁ|_).*: (.*)$$/\1 \3/' | \
	  awk '{n[$$1]++; k[$$1]+=($$2=="killed"||$$2=="timeout")} END {for (m in n) \
	  printf "%-36s %4d mutants %4d killed %5.1f%%\n", m, n[m], k[m], 100*k[m]/n[m]}' | sort

clean:
	rm -rf $(VENV) demo-data lake .pytest_cache mutants
