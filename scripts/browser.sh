#!/usr/bin/env bash
# Sourced by test.sh: the stepper's browser test needs Chromium. Install Debian's
# `chromium` when it is missing and this is root with apt-get (as in CI); elsewhere the
# test skips and says why.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] \
    && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the browser test (apt-get) ..." >&2
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
    >/dev/null 2>&1 || echo "could not install chromium: the browser test will skip" >&2
fi
