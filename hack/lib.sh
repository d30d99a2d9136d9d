# Shared by hack/test.sh and hack/quickstart.sh: install what the scripts need and keep
# caches warm. Source it; it defines functions only, plus `root`.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '\n==> %s\n' "$*" >&2; }

# Debian packages the build and the scripts use. Installed only when missing, so a warm
# machine never touches apt.
ensure_packages() {
  local missing=() p
  for p in libssl-dev pkg-config openssl ca-certificates curl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # Any python3 will do (control-plane.sh uses it to find free ports).
  command -v python3 >/dev/null || missing+=(python3)
  ((${#missing[@]} == 0)) && return
  say "installing Debian packages: ${missing[*]}"
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_rust() {
  command -v cargo >/dev/null || { echo "cargo is not installed (install Rust with rustup)" >&2; exit 1; }
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    say "adding rustfmt and clippy"
    rustup component add rustfmt clippy
  fi
  # CI works in a fresh clone each run: keep its cargo build outside the clone so the next
  # run on the same machine starts warm.
  if [[ "${CI:-}" == "true" && -z "${CARGO_TARGET_DIR:-}" ]]; then
    export CARGO_TARGET_DIR="${CERTPAIR_CACHE_DIR:-$HOME/.cache/certpair}/cargo-target"
  fi
}
