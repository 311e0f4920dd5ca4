#!/usr/bin/env bash
# The main job: set up (first run only), then train the demo encoder and write its
# report, checkpoint, metrics and pictures (options: --out DIR, --seed N, --fast).
source "$(dirname "$0")/env.sh"
exec "$PY" -m tinygrad_attn demo "$@"
