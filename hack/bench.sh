#!/usr/bin/env bash
# Benchmarks that print figures (never pass/fail on time).
#   hack/bench.sh webhook [S]  the webhook over TLS on kept-alive connections, S seconds per row:
#                           latency percentiles at 1,000 and 5,000 requests/s offered (open loop,
#                           from each request's due time), then throughput at saturation with
#                           wrk at 1..64 connections.
#   hack/bench.sh csr [N]   N CSRs (default 1000) created concurrently against the local control
#                           plane; prints throughput, create-to-issued percentiles, single-CSR
#                           latency and the controller's RSS; then the controller's peak RSS
#                           when it restarts among 1,000 CSRs with 200 KB annotations each.
#   hack/bench.sh connector [N] [C]  N pairings through Kyma's REST API and N through Compass's
#                           GraphQL API (default 200 each; RSA-2048 CSRs) from C concurrent
#                           clients (default 16), in alternating halves, with their ratio;
#                           single pairings of each; N renewals over mTLS; CPU per pairing
#                           and the connector's RSS.
#   hack/bench.sh peers [N] N certificates (default 1000) per row, one control plane, one run:
#                           a raw writer (the apiserver's ceiling), kube-controller-manager's
#                           CSR controllers at default and raised client limits, certpair;
#                           certificates/s, p50/p99, CPU per 1,000, peak RSS, API calls and
#                           409s per certificate, ratios; JSON under target/bench/.
#   hack/bench.sh signing [SECONDS]  certpair's certificate signing (CA keys P-256, RSA-2048,
#                           RSA-4096) and CSR parse + verify per second, beside `openssl speed`
#                           for the same algorithms, as percentages (in process, one thread).
#   hack/bench.sh admission [N]  N server-side dry runs of a CSR (kubectl apply, and an API
#                           client) with the webhook off, then on: p50/p99 and what it adds.
#   hack/bench.sh cache     bytes and allocations the controller's CSR cache holds per issued CSR
#                           (a counting allocator, in process; no control plane).
#   hack/bench.sh flood     500 clients sending slow 1 MiB bodies to the webhook for 45 s
#                           (tests/floods.rs, which also asserts the bound); prints the
#                           controller's peak RSS and how long a kubectl create took meanwhile.
#   hack/bench.sh soak [MINUTES] [RATE]  (also hack/soak.sh) RATE CSRs a second (default 10) for
#                           MINUTES (default 30), each deleted after 2 minutes; the controller's
#                           RSS, open fds and CPU printed each minute, and their trend.
# Uses the control plane named by KUBECONFIG, or starts one in target/control-plane-bench/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"

# The control plane named by KUBECONFIG, or one of the benchmarks' own (stopped on exit).
control_plane() {
  ensure_packages
  ensure_rust
  hack/control-plane.sh build
  if [[ -z "${KUBECONFIG:-}" ]]; then
    export CERTPAIR_CONTROL_PLANE_DIR="$root/target/control-plane-bench"
    trap 'hack/control-plane.sh down' EXIT
    eval "$(hack/control-plane.sh up)"
  fi
  export PATH="$root/hack/bin:$PATH"
}

case "${1:-}" in
  csr)
    control_plane
    cargo bench --locked --bench csr -- "${2:-1000}"
    ;;
  webhook)
    # The webhook alone, in process, over TLS on loopback; wrk drives the saturation rows.
    ensure_packages
    ensure_rust
    if ! command -v wrk >/dev/null; then
      sudo=(); ((EUID == 0)) || sudo=(sudo)
      "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq wrk
    fi
    cargo bench --locked --bench webhook -- "${2:-10}"
    ;;
  connector)
    control_plane
    cargo bench --locked --bench connector -- "${2:-200}" "${3:-16}"
    ;;
  admission)
    control_plane
    cargo bench --locked --bench admission -- "${2:-200}"
    ;;
  signing)
    # In process: no control plane.
    ensure_packages
    ensure_rust
    cargo bench --locked --bench signing -- "${2:-3}"
    ;;
  cache)
    ensure_rust
    cargo bench --locked --bench cache
    ;;
  peers)
    hack/control-plane.sh build-kcm
    control_plane
    cargo bench --locked --bench peers -- "${2:-1000}"
    ;;
  soak)
    control_plane
    cargo bench --locked --bench soak -- "${2:-30}" "${3:-10}"
    ;;
  flood)
    control_plane
    cargo test --locked --test floods -- --nocapture \
      a_flood_of_large_bodies_neither_exhausts_memory_nor_blocks_admission 2>&1 \
      | grep -E '^(flood:|kubectl create during|test result)'
    ;;
  *) echo "usage: $0 csr [N] | webhook [SECONDS] | connector [N] [C] | peers [N] | signing [SECONDS] | admission [N] | cache | flood | soak [MINUTES] [RATE]" >&2; exit 2 ;;
esac
