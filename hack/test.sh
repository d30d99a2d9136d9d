#!/usr/bin/env bash
# Runs every check and test of certpair: formatting, lints, generated-file freshness, unit
# tests, a short fuzzing of every parser, then the end-to-end tests against a real
# kube-apiserver + etcd started for this run (and always stopped again). This is the README's
# test command; .ci/run calls it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"

ensure_packages
ensure_rust

say "control-plane binaries"
hack/control-plane.sh build

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

say "generated CRD is fresh"
crd=manifests/crd/certpair.dev.yaml
if ! cargo run --locked --quiet -- crd | diff -u "$crd" -; then
  echo "error: $crd is stale; regenerate it with: cargo run -- crd > $crd" >&2
  exit 1
fi

say "unit tests"
cargo test --locked --lib --bins

say "fuzzing, 30 s per target (hack/fuzz.sh 600 is the long run)"
# A regression in a parser fails here within minutes; under CI=true the instrumented build
# and the corpus are cached outside the clone, so only the first run builds from cold.
# A failure is reported at the end, after the end-to-end tests have run too.
fuzz_failed=0
hack/fuzz.sh 30 || fuzz_failed=1

say "end-to-end tests against a real control plane"
# A state dir of its own, so a developer's running quickstart cluster is left alone.
export CERTPAIR_CONTROL_PLANE_DIR="$root/target/control-plane-test"
cleanup() {
  local rc=$?
  if ((rc != 0)) && [[ -d "$CERTPAIR_CONTROL_PLANE_DIR/logs" ]]; then
    echo "--- last lines of kube-apiserver.log ---" >&2
    tail -n 30 "$CERTPAIR_CONTROL_PLANE_DIR/logs/kube-apiserver.log" >&2 || true
  fi
  hack/control-plane.sh down || true
  exit "$rc"
}
trap cleanup EXIT
eval "$(hack/control-plane.sh up)"
export PATH="$root/hack/bin:$PATH"
cargo test --locked --test '*' -- --show-output
if ((fuzz_failed)); then
  echo "error: fuzzing failed (its summary and the inputs are above, under 'fuzzing summary')" >&2
  exit 1
fi
