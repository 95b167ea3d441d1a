#!/usr/bin/env bash
# The deployability checks of infra/, on a fresh machine and without an AWS account:
#
#   cfn-lint             infra/template.yaml, no finding
#   sam validate --lint  the SAM transform and cfn-lint as SAM runs them (dummy Region and
#                        credentials, nothing is sent to AWS)
#   checkov              no failed check; every suppression sits in the template with its reason
#   asl-validator        every infra/statemachine/*.asl.json
#   cargo lambda build --release --arm64   every function, then the zipped size of each
#
# Installs what it needs on first run, pinned: .venv-infra/sam (aws-sam-cli, cargo-lambda with
# zig) and .venv-infra/lint (cfn-lint, checkov) from scripts/requirements-infra-*.txt, asl-validator
# into infra/node_modules from infra/package-lock.json (npm ci), and Rust's
# aarch64-unknown-linux-gnu standard library (rustup). Uses the workspace's target/ like
# scripts/test.sh. `scripts/infra-check.sh --no-build` skips the arm64 build.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build=1
[ "${1:-}" = "--no-build" ] && build=0

started=$(date +%s)
step() { echo "==> $* (+$(( $(date +%s) - started ))s)"; }

# Never reach AWS: fixed fake credentials and Region, no metadata service, no telemetry.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0 SAM_CLI_BETA_RUST_CARGO_LAMBDA=1
unset AWS_PROFILE AWS_SESSION_TOKEN || true

# A venv per requirements file, rebuilt when the file changes.
venv() {
  local dir="$1" req="$2"
  local stamp="$dir/.requirements.sha256"
  local want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    step "installing $req into $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --disable-pip-version-check -q -r "$req"
    echo "$want" >"$stamp"
  fi
}
venv .venv-infra/sam scripts/requirements-infra-sam.txt
venv .venv-infra/lint scripts/requirements-infra-lint.txt
if [ ! -x infra/node_modules/.bin/asl-validator ]; then
  step "installing asl-validator (npm ci)"
  npm ci --prefix infra --no-audit --no-fund --loglevel=error
fi

step "cfn-lint $(.venv-infra/lint/bin/cfn-lint --version)"
.venv-infra/lint/bin/cfn-lint infra/template.yaml

step "sam validate --lint ($(.venv-infra/sam/bin/sam --version))"
.venv-infra/sam/bin/sam validate --lint --template infra/template.yaml

step "checkov $(.venv-infra/lint/bin/checkov --version)"
checkov_out="$(mktemp)"
if ! .venv-infra/lint/bin/checkov -f infra/template.yaml --framework cloudformation \
  --skip-download --compact --quiet >"$checkov_out" 2>&1; then
  cat "$checkov_out"
  echo "checkov failed: fix the finding, or suppress it in the template with a reason" >&2
  exit 1
fi
grep -E "^(Passed checks|cloudformation scan)" "$checkov_out" || true
# List every suppression with its reason, so none hides.
.venv-infra/lint/bin/python - <<'PY'
import re, sys
text = open("infra/template.yaml").read()
skips = re.findall(r"- id: (CKV2?_AWS_\d+)\n\s+comment: (>-\n(?:\s{14,}.*\n)+|.*\n)", text)
seen = {}
for check, reason in skips:
    reason = " ".join(l.strip() for l in reason.replace(">-", "").splitlines() if l.strip())
    seen[(check, reason)] = seen.get((check, reason), 0) + 1
for (check, reason), n in seen.items():
    print(f"    suppressed {check} ({n}x): {reason[:140]}{'…' if len(reason) > 140 else ''}")
if not skips:
    sys.exit("no suppression found: the listing regex no longer matches the template")
PY
rm -f "$checkov_out"

step "asl-validator"
for f in infra/statemachine/*.asl.json; do
  infra/node_modules/.bin/asl-validator --json-path "$f"
done

# That infra/statemachine/ matches the saga definitions is a test (infra/tests/asl_drift.rs, run
# by scripts/test.sh); `cargo run -p onboard-cli -- export-asl --check` checks it by hand. Not
# run here: outside `cargo test --workspace` the CLI builds without the core's testkit feature,
# a second debug build of the workspace crates just for this.

if [ "$build" = 1 ]; then
  if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    step "rustup target add aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu
  fi
  # Every function crate: a folder of functions/ with a binary.
  names=()
  for dir in functions/*/; do
    [ -f "$dir/src/main.rs" ] || continue
    names+=("$(sed -n 's/^name = "\(.*\)"/\1/p' "$dir/Cargo.toml" | head -n1)")
  done
  step "cargo lambda build --release --arm64 (${names[*]})"
  args=()
  for n in "${names[@]}"; do args+=(-p "$n"); done
  PATH="$root/.venv-infra/sam/bin:$PATH" .venv-infra/sam/bin/cargo-lambda lambda build \
    --release --arm64 --locked "${args[@]}"
  echo "zipped arm64 size (bootstrap in a zip, deflate -9, as uploaded to Lambda):"
  .venv-infra/sam/bin/python - "${names[@]}" <<'PY'
import io, os, sys, zipfile
for name in sys.argv[1:]:
    boot = f"target/lambda/{name}/bootstrap"
    if not os.path.isfile(boot):
        sys.exit(f"missing {boot}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(boot, "bootstrap")
    mib = 1024 * 1024
    print(f"    {name:<20} {len(buf.getvalue()) / mib:5.1f} MiB zipped  ({os.path.getsize(boot) / mib:5.1f} MiB unzipped)")
PY
fi
step "infra checks passed"
