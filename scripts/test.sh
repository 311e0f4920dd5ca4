#!/usr/bin/env bash
# Set up (first run only), then run the test suite.
source "$(dirname "$0")/env.sh"
source "$(dirname "$0")/browser.sh"
exec "$PY" -m pytest -q "$@"
