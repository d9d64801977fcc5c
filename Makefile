# Everyday targets. `make demo` and `make test` are the README's two quick-start commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Integer bounds in the schema come from the database backend: generate it on one, always.
SCHEMA_ENV := DATABASE_URL=sqlite:////tmp/meshline-schema.sqlite3

.PHONY: demo test check lint format schema fuzz migrate worker beat web bench-ingest clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Meshline needs Python 3.11+"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Install, migrate, seed the demo organization and serve it on http://127.0.0.1:8000/
demo: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo "Serving Meshline on http://127.0.0.1:8000/ (Ctrl-C to stop)"
	$(PY) manage.py runserver 127.0.0.1:8000

## Run the test suite (PostgreSQL and Redis are used when reachable on 127.0.0.1)
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## Static checks CI runs before the tests
check: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) manage.py check --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run
	$(SCHEMA_ENV) $(PY) manage.py spectacular --file /tmp/meshline-openapi.yaml --validate --fail-on-warn
	diff -u docs/openapi.yaml /tmp/meshline-openapi.yaml || \
		(echo "docs/openapi.yaml is out of date: run 'make schema' and commit it" && exit 1)

lint: $(STAMP)
	$(PY) -m ruff check .

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## Regenerate the committed OpenAPI schema
schema: $(STAMP)
	$(SCHEMA_ENV) $(PY) manage.py spectacular --file docs/openapi.yaml --validate --fail-on-warn

## Schema-driven fuzz run: Schemathesis vs gunicorn + PostgreSQL, ~2 minutes (see .ci/fuzz)
fuzz: $(STAMP)
	.ci/fuzz

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

web: $(STAMP)
	$(VENV)/bin/gunicorn meshline.wsgi --bind 127.0.0.1:8000 --workers 4

## One worker taking every queue (development, one machine)
worker: $(STAMP)
	$(VENV)/bin/celery -A meshline worker --loglevel INFO

# One pool per kind of work (meshline/queues.py; README, "Running for real"), e.g.
# `make worker-processing`. Queues are named after CELERY_TASK_DEFAULT_QUEUE (meshline);
# each pool has its own node name and heartbeat file; WORKER_ARGS adds options
# (e.g. WORKER_ARGS=--concurrency=2 for the CPU-bound heavy pool).
QUEUE := $(or $(CELERY_TASK_DEFAULT_QUEUE),meshline)
WORKER_KINDS := processing gates heavy notifications exports
.PHONY: worker-default $(addprefix worker-,$(WORKER_KINDS))
$(addprefix worker-,$(WORKER_KINDS)): worker-%: $(STAMP)
	MESHLINE_WORKER_HEARTBEAT_FILE=/tmp/meshline-worker-$*.heartbeat \
		$(VENV)/bin/celery -A meshline worker -Q $(QUEUE).$* -n $*@%h --loglevel INFO $(WORKER_ARGS)
worker-default: $(STAMP)
	MESHLINE_WORKER_HEARTBEAT_FILE=/tmp/meshline-worker-default.heartbeat \
		$(VENV)/bin/celery -A meshline worker -Q $(QUEUE) -n default@%h --loglevel INFO $(WORKER_ARGS)

beat: $(STAMP)
	$(VENV)/bin/celery -A meshline beat --loglevel INFO

bench-ingest: $(STAMP)
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache .ruff_cache
