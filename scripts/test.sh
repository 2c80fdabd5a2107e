#!/usr/bin/env bash
# Installs batchway with its test extras into .venv (created if missing) and runs lint + the test suite.
# Needs PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres); everything else comes from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip 2>/dev/null || true
.venv/bin/python -m pip install --quiet -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import batchway, temporalio, openai" # fail fast if the install did not work
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
