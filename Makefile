# TriggerDesk: `make demo` runs everything locally with no server; `make test` runs the whole suite
# against PostgreSQL and Redis.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR := .demo
WEB_PORT ?= 8000
SANDBOX_PORT ?= 8100
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/triggerdesk
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=
# The suite runs in two pytest-xdist workers (one per core), a test file per worker at a time:
# much of its time is spent waiting on live workers, browsers and vendors' answers. Each worker
# has its own test database (pytest-django) and Redis database (test_settings.py).
TEST_WORKERS ?= 2

# A Python >= 3.12 (Django 6 needs it): on PATH first, then under pyenv.
define find_python
for candidate in python3.13 python3.12 python3 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -Vr); do \
  if command -v $$candidate >/dev/null 2>&1 && $$candidate -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then \
    command -v $$candidate; exit 0; fi; \
done; exit 1
endef

.PHONY: help
help:
	@echo "make demo   - install into .venv, migrate, load the demo tenant, start web, worker, beat and sandboxes"
	@echo "make test   - install, make sure PostgreSQL and Redis run, run the whole test suite"
	@echo "make lint   - ruff check and format check, import-linter contracts"
	@echo "make bench  - run the benchmarks in bench/"
	@echo "make proofs - the full fault schedule (PROOFS_MINUTES, default 20) and its figures"
	@echo "make messages - collect the strings to translate into locale/ru/LC_MESSAGES/*.po"
	@echo "make screenshots - run the journeys' browser tests, keeping their screenshots in docs/screenshots"

$(STAMP): pyproject.toml
	@python=$$($(find_python)) || { echo "ERROR: TriggerDesk needs Python 3.12 or newer (Django 6). None found on PATH or under pyenv; install one (e.g. 'pyenv install 3.12')." >&2; exit 1; }; \
	if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; then rm -rf $(VENV); fi; \
	[ -x $(PY) ] || { echo "Creating $(VENV) with $$python"; $$python -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

# The translations (locale/*/LC_MESSAGES/*.po) compiled to the .mo files Django reads; the .mo
# files are built, never committed. msgfmt comes with Debian's gettext.
.PHONY: gettext
gettext:
	@if ! command -v msgfmt >/dev/null 2>&1; then \
	  echo "Installing Debian's gettext for the translations (msgfmt)"; \
	  if [ "$$(id -u)" = 0 ]; then APT=""; else APT="sudo"; fi; \
	  $$APT apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$APT apt-get install -y -qq gettext >/dev/null \
	    || { echo "ERROR: could not install gettext (apt-get install gettext), which compiles the translations." >&2; exit 1; }; fi

# The message commands only need the settings to import: throwaway keys, never used.
I18N_ENV := SECRET_KEY=messages-only CREDENTIALS_KEYS=MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=
.PHONY: compilemessages
compilemessages: $(STAMP) gettext
	$(I18N_ENV) $(PY) manage.py compilemessages --ignore .venv -v0

.PHONY: install
install: $(STAMP) compilemessages

# Collect every translatable string of the project into locale/ru/LC_MESSAGES/ (django.po for
# Python and templates, djangojs.po for static/js); fill in the new msgstr, then `make install`.
MESSAGES_IGNORE := --ignore .venv --ignore tests --ignore bench --ignore staticfiles --ignore .demo
.PHONY: messages
messages: $(STAMP) gettext
	$(I18N_ENV) $(PY) manage.py makemessages -l ru --no-obsolete $(MESSAGES_IGNORE) --add-location file
	$(I18N_ENV) $(PY) manage.py makemessages -d djangojs -l ru --no-obsolete $(MESSAGES_IGNORE) --ignore static/vendor --add-location file

.PHONY: services
services:
	@if ! command -v pg_isready >/dev/null 2>&1; then echo "ERROR: PostgreSQL is not installed (no pg_isready). Install it (apt-get install postgresql) or set TEST_DATABASE_URL to a reachable server." >&2; exit 1; fi
	@if ! pg_isready -q -h 127.0.0.1 -p 5432; then \
	  echo "PostgreSQL is stopped; starting it"; \
	  command -v pg_ctlcluster >/dev/null 2>&1 || { echo "ERROR: PostgreSQL is installed but cannot be started here (no pg_ctlcluster)." >&2; exit 1; }; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | sort -V | tail -1) main start; \
	  for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	  pg_isready -q -h 127.0.0.1 -p 5432 || { echo "ERROR: PostgreSQL did not come up." >&2; exit 1; }; fi
	@if ! command -v redis-server >/dev/null 2>&1; then echo "ERROR: Redis is not installed (no redis-server). Install it (apt-get install redis-server)." >&2; exit 1; fi
	@if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then \
	  echo "Redis is stopped; starting it"; \
	  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true; \
	  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log; \
	  for i in $$(seq 1 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done; \
	  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { echo "ERROR: Redis did not come up." >&2; exit 1; }; fi

# The browser tests drive Debian's chromium through Playwright (its own download does not work here).
.PHONY: chromium
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  echo "Installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then APT=""; else APT="sudo"; fi; \
	  $$APT apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$APT apt-get install -y -qq chromium >/dev/null \
	    || { echo "ERROR: could not install chromium (apt-get install chromium)." >&2; exit 1; }; fi

.PHONY: test
test: install services chromium lint
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# ruff for style and format; import-linter for the layers (pyproject.toml's contracts).
.PHONY: lint
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

# The README's screenshots are taken by the journeys' browser tests (tests/e2e/test_journeys.py).
.PHONY: screenshots
screenshots: install services chromium
	TRIGGERDESK_SCREENSHOTS=$(CURDIR)/docs/screenshots DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	  $(PY) -m pytest tests/e2e/test_journeys.py $(PYTEST_ARGS)

.PHONY: bench
bench: install services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) bench/run_all.py

# The proofs under faults (tests/chaos): the short variant runs in `make test`; this is the full
# schedule, whose figures the README's Reliability section quotes.
PROOFS_MINUTES ?= 20
.PHONY: proofs
proofs: install services
	PROOFS_MINUTES=$(PROOFS_MINUTES) DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	  $(PY) -m pytest tests/chaos -k full_fault_schedule -s -p no:cacheprovider

# The demo needs no server: SQLite and kombu's filesystem broker under .demo/. `run_demo` starts
# sandboxes, demo data, worker, beat and web, and stops every one of them on Ctrl-C or SIGTERM
# (`exec`, so that a SIGTERM make forwards to its recipe reaches the launcher itself).
.PHONY: demo
demo: install
	@mkdir -p $(DEMO_DIR)/broker/out $(DEMO_DIR)/broker/processed $(DEMO_DIR)/broker/control
	@[ -s $(DEMO_DIR)/credentials.key ] || $(PY) -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())" > $(DEMO_DIR)/credentials.key
	@[ -s $(DEMO_DIR)/secret.key ] || $(PY) -c "import secrets; print(secrets.token_urlsafe(50))" > $(DEMO_DIR)/secret.key
	@chmod 600 $(DEMO_DIR)/credentials.key $(DEMO_DIR)/secret.key
	@export DEMO_DIR=$(abspath $(DEMO_DIR)) CREDENTIALS_KEYS_FILE=$(DEMO_DIR)/credentials.key SECRET_KEY_FILE=$(DEMO_DIR)/secret.key \
	  SANDBOX_BASE_URL=http://127.0.0.1:$(SANDBOX_PORT) VENDOR_HOST_ALLOWLIST=127.0.0.1:$(SANDBOX_PORT) \
	  EMAIL_BACKEND=django.core.mail.backends.console.EmailBackend DJANGO_SETTINGS_MODULE=dashboard.project.settings; \
	  unset DATABASE_URL REDIS_URL; \
	  $(PY) manage.py migrate --no-input -v0 && $(PY) manage.py collectstatic --no-input -v0 || exit 1; \
	  exec $(PY) manage.py run_demo --web-port $(WEB_PORT) --sandbox-port $(SANDBOX_PORT) --demo-dir $(DEMO_DIR)
