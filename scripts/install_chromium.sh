#!/usr/bin/env bash
# Install headless Chromium from Debian's packages for the HTML report's browser test
# (tests/test_html_browser.py, which only looks for a browser and never installs one).
# CI's script (.ci/run) runs this before `make test`; on a workstation run it yourself.
# Idempotent: does nothing when a browser the test finds is there ($LABELGATE_CHROMIUM, or
# chromium, chromium-browser, google-chrome on PATH). Needs root or passwordless sudo and
# apt-get; exits 0 without installing when they are missing (the browser tests then skip and
# say why). Usage: bash scripts/install_chromium.sh
set -euo pipefail

for name in "${LABELGATE_CHROMIUM:-chromium}" chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null 2>&1; then
    echo "install_chromium: $(command -v "$name") is already there" >&2
    exit 0
  fi
done
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "install_chromium: not root and no passwordless sudo; skipping" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium: no apt-get on this machine; skipping" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "install_chromium: apt-get install chromium (a few minutes on first run)" >&2
# The package lists may be missing or stale on a fresh machine: update once, then install.
if ! $SUDO apt-get install -y -qq chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium
fi
command -v chromium
