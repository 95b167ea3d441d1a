#!/usr/bin/env bash
# Real-browser journeys through the portal page of `onboard serve --sandbox` (tests/browser/).
#
#   scripts/browser.sh                      # every journey
#   scripts/browser.sh rollback day_two     # some of them
#   ONBOARD_BIN=path/to/onboard scripts/browser.sh
#
# Builds nothing: it takes the onboard binary from ${ONBOARD_BIN:-target/debug/onboard}
# (scripts/test.sh's `cargo test` builds it). It needs Chromium: the system one
# (`command -v chromium`), installed with apt-get when missing and running as root; without
# one it prints `==> browser journeys SKIPPED: <reason>` and exits 0. Playwright for Python
# (pinned in scripts/requirements-browser.txt) goes into the project-local .venv; it drives
# that Chromium, so `playwright install` (a browser download) is never run.
# Screenshots and server logs land in target/browser/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
out="$root/target/browser"
mkdir -p "$out"
started=$(date +%s)

skip() {
  echo "==> browser journeys SKIPPED: $1"
  exit 0
}

# (a) Chromium.
chromium="$(command -v chromium || true)"
if [ -z "$chromium" ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing chromium with apt-get (first run only; log in target/browser/apt.log)"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { apt-get install -y -qq --no-install-recommends chromium >>"$out/apt.log" 2>&1; }
    : >"$out/apt.log"
    if ! apt_install; then
      # The package lists may be missing or stale: refresh them once and try again.
      apt-get update -qq >>"$out/apt.log" 2>&1 && apt_install || true
    fi
    chromium="$(command -v chromium || true)"
    [ -n "$chromium" ] || skip "chromium is not installed and \`apt-get install chromium\` failed (see target/browser/apt.log)"
  elif [ "$(id -u)" -ne 0 ]; then
    skip "chromium is not installed and this is not root (install it: apt-get install chromium)"
  else
    skip "chromium is not installed and apt-get is not available"
  fi
fi

# (b) Playwright in the project-local virtualenv.
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv"
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import playwright' 2>/dev/null; then
  echo "==> installing Playwright into $venv (first run only; no browser download)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$venv/bin/pip" install --disable-pip-version-check -q \
    -r scripts/requirements-browser.txt
fi

# (c) The onboard binary, built elsewhere.
bin="${ONBOARD_BIN:-target/debug/onboard}"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "error: the onboard binary $bin is missing; build it first (\`cargo build -p onboard-cli\`, or" \
    "scripts/test.sh's cargo test), or point ONBOARD_BIN at one" >&2
  exit 1
fi

# (d) The journeys.
echo "==> browser journeys ($("$chromium" --version 2>/dev/null | head -n1 || echo "$chromium"); $bin)"
status=0
PYTHONDONTWRITEBYTECODE=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$venv/bin/python" tests/browser/journeys.py \
  --chromium "$chromium" --onboard "$bin" --out "$out" "$@" || status=$?
echo "==> browser journeys took $(( $(date +%s) - started ))s (screenshots in target/browser/)"
exit "$status"
