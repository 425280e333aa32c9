# The two commands of the README:
#   make run   - set up and run the whole service on the embedded default (SQLite + embedded broker)
#   make test  - set up and run every test (needs Redis and PostgreSQL: started if not running)

.PHONY: run test bench venv

run:
	scripts/venv.sh
	.venv/bin/convlab up

test:
	scripts/venv.sh test
	scripts/services.sh
	.venv/bin/python -m pytest -q

bench:
	scripts/venv.sh test
	.venv/bin/python benchmarks/bench_engine.py
