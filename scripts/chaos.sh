#!/usr/bin/env bash
# The seeded chaos campaign (tests/src/chaos): real sagas of every kind against the in-process
# sandbox and the saga stores, under random faults; prints one line per violation and ends with
#   chaos: <K> sagas, <F> faults, <V> violations (seed <S>)
#
#   scripts/chaos.sh --seed 7 --faults 10000          # redb and DynamoDB on moto, alternating
#   scripts/chaos.sh --seed 7 --episode 12 --store redb -v   # replay one episode, one line per trial
#
# Arguments go to the `chaos` binary (`--help` lists them). Builds it in release mode; starts
# moto from the project's virtualenv (scripts/test.sh creates it) unless --store redb is given.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release --locked -q -p onboard-integration-tests --bin chaos
if [[ " $* " != *" redb "* && -x .venv/bin/moto_server && -z "${MOTO_ENDPOINT:-}" ]]; then
  port="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
  mkdir -p target
  .venv/bin/moto_server -H 127.0.0.1 -p "$port" >target/chaos-moto.log 2>&1 &
  moto_pid=$!
  trap 'kill "$moto_pid" 2>/dev/null || true' EXIT INT TERM
  for _ in $(seq 1 100); do
    .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null && break
    sleep 0.2
  done
  export MOTO_ENDPOINT="http://127.0.0.1:$port"
fi
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
exec target/release/chaos "$@"
