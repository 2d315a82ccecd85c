#!/usr/bin/env sh
# The console's browser tests (tests/e2e/test_console.py) drive Debian's headless Chromium
# through chromedriver. Install both with apt-get when either is missing; a no-op otherwise.
set -eu
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing chromium and chromium-driver for the console's browser tests" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver
