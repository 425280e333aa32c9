# The two commands of the README:
#   make run   - set up and run the whole service on the embedded default (SQLite + embedded broker)
#   make test  - set up, lint, and run every test (needs Redis and PostgreSQL: started if not running)
# and for the inner loop (docs/testing.md):
#   make test-fast - the tests that start no process and train briefly, in well under a minute
#   make lint      - ruff over the whole tree

.PHONY: run test test-fast lint bench venv

run:
	scripts/venv.sh
	.venv/bin/convlab up

test:
	scripts/venv.sh test
	scripts/services.sh
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/python -m pytest -q

# One BLAS thread: the fast tests multiply small matrices, where more threads only spin and contend.
test-fast: .venv/bin/pytest
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		.venv/bin/python -m pytest -q -m "not slow and not processes"

lint: .venv/bin/ruff
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

# Only when missing: the inner-loop targets do not reinstall on every run (`make test` does).
.venv/bin/pytest .venv/bin/ruff:
	scripts/venv.sh test

bench:
	scripts/venv.sh test
	.venv/bin/python benchmarks/bench_engine.py
