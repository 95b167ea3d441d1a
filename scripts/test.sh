#!/usr/bin/env bash
# The whole test suite, on a fresh machine: creates the project-local virtualenv if missing,
# installs the pinned moto, starts moto_server on a free loopback port, runs format and lint
# checks and every test, then the portal's browser journeys (scripts/browser.sh: Chromium from
# apt-get and Playwright into the virtualenv on first run), and stops moto however the tests end.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p onboard-core   # extra arguments go to `cargo test`
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"

if [ ! -x "$venv/bin/moto_server" ]; then
  echo "==> creating $venv and installing moto (first run only)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check -q -r scripts/requirements-test.txt
fi

port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
mkdir -p target
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >target/moto.log 2>&1 &
moto_pid=$!
cleanup() { kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "moto_server exited early; its log:" >&2; cat target/moto.log >&2; exit 1
  fi
  sleep 0.2
done

export MOTO_ENDPOINT="http://127.0.0.1:$port"
# Tests set explicit endpoints and fake credentials; these make sure nothing falls back to AWS.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN || true
echo "==> moto on $MOTO_ENDPOINT"

phase_start=$(date +%s)
phase() { echo "==> $1 took $(( $(date +%s) - phase_start ))s"; phase_start=$(date +%s); }

echo "==> cargo fmt --check"
cargo fmt --all -- --check
phase "cargo fmt"
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
phase "cargo clippy"
echo "==> cargo test"
if [ "$#" -gt 0 ]; then
  # e.g. `scripts/test.sh -p onboard-core`: only what was asked for.
  cargo test --all-features --locked "$@"
  phase "cargo test"
else
  cargo test --workspace --all-features --locked
  phase "cargo test"
  # The portal in a real Chromium against `onboard serve --sandbox`, with the binary the tests
  # above just built.
  scripts/browser.sh
fi
