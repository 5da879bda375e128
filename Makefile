.PHONY: demo test test-fast lint setup

# The main job on the bundled sample: build the index, then show "Also Read" lists.
demo:
	bash scripts/demo.sh

# The whole test suite (CI runs it through .ci/run).
test:
	bash scripts/test.sh

# Unit, CLI and API tests with the fake embedder: no model, no server processes, no browser, none of the
# thorough equivalence and fuzz tests, spread over the cores (pytest-xdist): under a minute on 2 cores.
test-fast:
	bash scripts/test.sh -n auto --maxprocesses 4 -m "not slow and not integration and not ray and not process and not thorough"

# ruff (lint + format), mypy on the package, and the import graph (layers, no cycles).
lint:
	RECOMMENDER_EXTRAS=serve,dev bash scripts/setup.sh
	.venv/bin/ruff check recommender tests scripts
	.venv/bin/ruff format --check recommender tests scripts
	.venv/bin/mypy
	.venv/bin/lint-imports

setup:
	bash scripts/setup.sh
