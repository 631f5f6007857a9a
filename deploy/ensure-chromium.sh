#!/usr/bin/env bash
# Installs Debian's Chromium (packages chromium + chromium-driver: /usr/bin/chromium, /usr/bin/chromedriver)
# for the monitor dashboard's browser test (tests/monitor/test_dashboard.py), when it is missing.
# `make test` runs this first. It never downloads a browser build of its own: Debian's package only.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: /usr/bin/chromium is missing and this is not a Debian/Ubuntu machine;" >&2
    echo "install Chromium at /usr/bin/chromium, or the dashboard test will fail" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "ensure-chromium: installing Debian's chromium and chromium-driver"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq chromium chromium-driver >/dev/null
/usr/bin/chromium --version
