#!/usr/bin/env bash
# Lambda cold start, per-event overhead, peak memory and binary size, in one
# command: builds the four function binaries in release mode for this host, creates the
# project-local virtualenv with the pinned moto if missing, starts moto_server on a free
# loopback port, runs the `lambda_runtime` bench (which points every AWS endpoint of the
# functions at that moto) and stops moto however the bench ends.
#
#   scripts/bench-lambda.sh
#   LAMBDA_BENCH_COLD_STARTS=20 LAMBDA_BENCH_EVENTS=500 scripts/bench-lambda.sh
#
# Honours CARGO_TARGET_DIR (the bench finds the binaries next to itself).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"

echo "==> cargo build --release (the function binaries)"
cargo build --release --locked -p onboard-api -p onboard-worker -p onboard-reconciler -p onboard-step

if [ ! -x "$venv/bin/moto_server" ]; then
  echo "==> creating $venv and installing moto (first run only)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check -q -r scripts/requirements-test.txt
fi

port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
log="$(mktemp -t onboard-bench-moto.XXXXXX.log)"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
cleanup() {
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT INT TERM

for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "moto_server exited early; its log:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 0.2
done

export MOTO_ENDPOINT="http://127.0.0.1:$port"
# The bench gives the functions fake credentials and moto endpoints; these keep the bench's own
# setup calls off AWS too.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN || true
echo "==> moto on $MOTO_ENDPOINT"

echo "==> cargo bench --bench lambda_runtime"
cargo bench --locked -p onboard-integration-tests --bench lambda_runtime
