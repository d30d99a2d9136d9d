#!/usr/bin/env bash
# Fuzzes what certpair reads from anyone: CSRs (and certpair's fast CSR path against
# OpenSSL's general one), AdmissionReview bodies, the connector's REST bodies and GraphQL
# requests, CRLs and trust bundles. Each target in fuzz/fuzz_targets runs for SECONDS
# (default 30), one after the other on one core, seeded from fuzz/seeds/<target> and the
# corpus earlier runs kept; then one line per target. Any crash or mismatch fails the run,
# with the input's path and the commands to reproduce and minimise it.
#
#   hack/fuzz.sh [SECONDS]
#
# Under CI=true the fuzz build and the corpus live in ${CERTPAIR_CACHE_DIR:-~/.cache/certpair}
# (outside the clone), so the next run starts warm and keeps what this one found.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root/fuzz"

seconds=${1:-30}
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: hack/fuzz.sh [SECONDS]   (seconds per target, default 30)" >&2
  exit 2
fi

ensure_packages
command -v rustup >/dev/null || { echo "error: rustup is needed to fuzz (cargo fuzz runs on nightly)" >&2; exit 1; }
# The rolling nightly channel (a dated nightly alone does not answer to +nightly).
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  say "installing the nightly toolchain (libFuzzer's instrumentation needs it)"
  if ! rustup toolchain install nightly --profile minimal; then
    echo "error: could not install the nightly Rust toolchain, which cargo fuzz needs;" \
      "install it with: rustup toolchain install nightly --profile minimal" >&2
    exit 1
  fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz (into ~/.cargo/bin, once)"
  cargo install cargo-fuzz --locked
fi

if [[ "${CI:-}" == "true" ]]; then
  cache="${CERTPAIR_CACHE_DIR:-$HOME/.cache/certpair}/fuzz"
  target_dir="$cache/target"
  corpus_root="$cache/corpus"
else
  target_dir="$root/fuzz/target"
  corpus_root="$root/fuzz/corpus"
fi
# The same flags for build and run, or `cargo fuzz run` builds again. Many codegen units: the
# build (all of certpair and its dependencies, instrumented) takes minutes on two cores; the
# targets lose little speed.
build=(--codegen-units 16 --target-dir "$target_dir")
targets=(csr_parse csr_differential admission_review connector_rest graphql crl_bundle)

say "building ${#targets[@]} fuzz targets (nightly, AddressSanitizer)"
cargo +nightly fuzz build "${build[@]}"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
rows=()
failed=()
for t in "${targets[@]}"; do
  corpus="$corpus_root/$t"
  artifacts="$root/fuzz/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  before=$(find "$artifacts" -type f | sort)
  say "fuzzing $t for ${seconds}s"
  rc=0
  # One process, one job: the machine is shared. The persistent corpus comes first, so new
  # inputs go there; the committed seeds are only read. A CSR takes milliseconds; an input
  # still running after 10 s is reported as a timeout.
  cargo +nightly fuzz run "${build[@]}" "$t" "$corpus" "$root/fuzz/seeds/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$logs/$t.log" 2>&1 || rc=$?
  stats=$(grep -E '^#[0-9]+.*cov: ' "$logs/$t.log" | tail -n 1 || true)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -n 1)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$stats")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$stats")
  files=$(find "$corpus" -type f | wc -l)
  new=$(comm -13 <(echo "$before") <(find "$artifacts" -type f | sort) | sed '/^$/d')
  crashes=$(sed '/^$/d' <<<"$new" | wc -l)
  shown=$crashes
  if ((rc != 0)) && ((crashes == 0)); then
    shown=error # failed without leaving an input (a build or libFuzzer error): the log says
  fi
  rows+=("$(printf '%-18s %12s %8s %7s %7s %8s' "$t" "${runs:-?}" "$files" "${cov:-?}" "${ft:-?}" "$shown")")
  if ((rc != 0 || crashes > 0)); then
    failed+=("$t")
    echo "--- $t failed (exit $rc); the end of its log: ---" >&2
    grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse)' "$logs/$t.log" | tail -n 40 >&2
    while read -r input; do
      [[ -n "$input" ]] || continue
      echo "input: $input" >&2
      echo "  reproduce: (cd fuzz && cargo +nightly fuzz run ${build[*]} $t $input)" >&2
      echo "  minimise:  (cd fuzz && cargo +nightly fuzz tmin ${build[*]} $t $input)" >&2
    done <<<"$new"
  fi
done

say "fuzzing summary (${seconds}s per target)"
printf '%-18s %12s %8s %7s %7s %8s\n' target runs corpus cov ft crashes
printf '%s\n' "${rows[@]}"
echo "(runs: inputs executed; corpus: files in $corpus_root/<target>; cov/ft: libFuzzer's coverage edges and features at the end; crashes: inputs that crashed, leaked or disagreed, or 'error' when libFuzzer failed without one)"
if ((${#failed[@]} > 0)); then
  echo "error: fuzzing found crashes or mismatches in: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
