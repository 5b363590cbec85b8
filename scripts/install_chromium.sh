#!/usr/bin/env bash
# Install headless Chromium from Debian's packages for the HTML report's browser test
# (tests/test_html_browser.py). Idempotent: does nothing when `chromium` is already on PATH.
# Needs root or passwordless sudo; exits 0 without installing when neither is available, so
# the test then skips with a message saying so. Usage: scripts/install_chromium.sh
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
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
