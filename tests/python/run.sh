#!/usr/bin/env bash
# kafka-python and confluent-kafka tests against a live Sluice broker (conftest.py starts one from
# $SLUICE_BIN, else target/debug/sluice). Creates tests/python/.venv on first use, installs
# requirements.txt into it (again whenever that file changes) and runs pytest; the last line
# is pytest's summary, e.g. "13 passed in 15.02s". Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
export PYTHONDONTWRITEBYTECODE=1

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || { echo "python3 -m venv failed (is python3-venv installed?)"; rm -rf .venv; exit 1; }
fi
stamp=.venv/requirements.installed
if [ ! -f "$stamp" ] || ! cmp -s requirements.txt "$stamp"; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt "$stamp"
fi

exec .venv/bin/python -m pytest -q "$@" test_kafka_python.py test_confluent_kafka.py test_security.py
