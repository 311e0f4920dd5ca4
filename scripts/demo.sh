#!/usr/bin/env bash
# The main job: set up (first run only), then run the gradient-check report.
source "$(dirname "$0")/env.sh"
exec "$PY" -m tinygrad_attn gradcheck "$@"
