# Every target sets up its own environment on a fresh clone: .venv is created and
# the pinned dependencies installed the first time (and again when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: e2e test test-fast demo bench conformance report clean chromium compare matrix

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## e2e: the live acceptance run (demo portfolio unless HF_HOME is set); one shard of it with
## make e2e REPORTS=reports-1 ARGS="-D shard=1/2" (each run's reports in their own folder)
## JOBS=N: N shards side by side, merged into $(REPORTS) (auto: 2 on the demo portfolio, else 1; support/parallel.py)
REPORTS ?= reports
ARGS    ?=
JOBS    ?= auto
e2e: $(STAMP)
	$(BIN)/python -m support.parallel --jobs $(JOBS) --reports $(REPORTS) $(ARGS)

## compare: the live suite against two releases (each a PyPI version, a wheel or an mlxk path), each in its
## own cached venv (.cache/sut-venvs): reports/compare.md + compare.json; exit 1 on a regression.
## ARGS go to behave, e.g. ARGS="-D include=mlx-e2e-demo/phi3-style,mlx-e2e-demo/gemma-style"
BASE      ?= 2.0.7
CANDIDATE ?= 2.0.8
ARGS      ?=
compare: $(STAMP)
	$(BIN)/python -m support.gate compare $(BASE) $(CANDIDATE) -- $(ARGS)

## matrix: the live suite against every release of VERSIONS on a slice of the demo portfolio (MATRIX_ARGS):
## reports/matrix.md + matrix.json (scenarios x releases, the registry's ranges checked)
VERSIONS    ?= 2.0.0 2.0.1 2.0.2 2.0.3 2.0.4 2.0.5 2.0.6 2.0.7 2.0.8
# The slice of the recorded matrix (tests/data/releases): 93-735 s per release on 2 shared cores
MATRIX_ARGS ?= -D include=mlx-e2e-demo/phi3-style,mlx-e2e-demo/gemma-style,mlx-e2e-demo/base-style features/server features/cli.feature
matrix: $(STAMP)
	$(BIN)/python -m support.gate matrix $(VERSIONS) -- $(MATRIX_ARGS)

## test: the suite's own tests (the HTML report test needs Debian's chromium: installed if missing)
test: $(STAMP) chromium
	$(BIN)/pytest

## test-fast: the suite's own tests that load no model and run no SUT (under a minute)
test-fast: $(STAMP) chromium
	$(BIN)/pytest -m "not live"

chromium:  # any of the names tests/test_report_html.py looks for (CI on macOS: Google Chrome, see .github/workflows)
	@for n in chromium chromium-browser google-chrome google-chrome-stable; do command -v $$n >/dev/null && exit 0; done; \
	apt-get update && apt-get install -y chromium

## report: the HTML report of the last live run, reports/allure-report (Allure 3 on Node.js, no Java);
## make report RESULTS="reports-1 reports-2": first merges those runs' reports into $(MERGED)
## (support/merge.py), reports its matrix and fails when a run has failures that are not registered
RESULTS ?=
MERGED  ?= reports-merged
REPORT_FROM    := $(if $(strip $(RESULTS)),$(MERGED),reports)
ALLURE_RESULTS ?= $(REPORT_FROM)/allure-results
ALLURE_REPORT  ?= $(REPORT_FROM)/allure-report
ALLURE_CONFIG  ?= $(REPORT_FROM)/allurerc.json
report: $(STAMP) node_modules/.package-lock.json
	@status=0; \
	if [ -n "$(strip $(RESULTS))" ]; then $(BIN)/python -m support.merge $(MERGED) $(RESULTS) || status=$$?; fi; \
	[ $$status -le 1 ] || exit $$status; \
	$(BIN)/python -m support.allure_results $(ALLURE_RESULTS) $(ALLURE_CONFIG) && rm -rf $(ALLURE_REPORT) && \
	node_modules/.bin/allure generate --config $(ALLURE_CONFIG) -o $(ALLURE_REPORT) $(ALLURE_RESULTS) || exit 1; \
	echo "mlx-e2e: HTML report $(ALLURE_REPORT)/index.html (view: node_modules/.bin/allure open $(ALLURE_REPORT))"; \
	exit $$status

# The pinned report tool (package.json, package-lock.json), installed when node_modules is missing or stale.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

## demo: build the demo portfolio (a no-op when it is up to date)
demo: $(STAMP)
	$(BIN)/python -m support.demo_portfolio build

## bench: the live suite twice (server reuse on and off): wall time vs SUT work, reports/bench.json
bench: $(STAMP)
	$(BIN)/python -m bench.run

## conformance: the live suite on every target (mlxk, mlx_lm 0.31.3, the newest mlx-lm), each column run as
## make e2e runs it; reports/conformance.md, conformance.html and conformance/allure-report.
## CONFORMANCE="--no-newest --mlx-lm-version 0.30.0": its options; ARGS: behave's, e.g. ARGS="-D include=..."
CONFORMANCE ?=
conformance: $(STAMP) node_modules/.package-lock.json
	$(BIN)/python -m bench.conformance $(CONFORMANCE) $(if $(strip $(ARGS)),-- $(ARGS))

clean:
	rm -rf reports reports-merged reports-shard-* .cache/demo-portfolio
