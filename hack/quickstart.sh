#!/usr/bin/env bash
# certpair's main job on this machine: builds certpair and the local control plane, starts the
# control plane, installs the Application CRD, runs `certpair controller` against it and shows
# it healthy. The controller and the control plane keep running afterwards;
# `hack/quickstart.sh down` stops both.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"

work="$root/target/quickstart"
pidfile="$work/controller.pid"

stop_controller() {
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null &&
     tr '\0' ' ' < "/proc/$(cat "$pidfile")/cmdline" | grep -q "certpair controller"; then
    kill -TERM "$(cat "$pidfile")"
    for _ in $(seq 1 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
    echo "stopped certpair controller (pid $(cat "$pidfile"))" >&2
  fi
  rm -f "$pidfile"
}

if [[ "${1:-}" == down ]]; then
  stop_controller
  hack/control-plane.sh down
  exit 0
fi

ensure_packages
ensure_rust

say "building certpair and the control plane (cold: several minutes; warm: seconds)"
cargo build --locked --quiet
hack/control-plane.sh build
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/certpair"

say "starting the local control plane"
eval "$(hack/control-plane.sh up)"
export PATH="$root/hack/bin:$PATH"
kubectl version

say "installing the Application CRD"
# This is the command the README gives users: the CRD comes from the binary itself.
"$bin" crd | kubectl apply --server-side -f -
kubectl wait --for condition=Established --timeout 30s crd/applications.certpair.dev

say "registering an example Application"
kubectl apply --server-side -f - <<'YAML'
apiVersion: certpair.dev/v1alpha1
kind: Application
metadata:
  name: billing
spec:
  subject:
    organization: Acme
    country: DE
  keys:
    allowedAlgorithms: [ECDSA-P256, RSA]
  maxExpirationSeconds: 86400
YAML
kubectl get applications.certpair.dev

say "running certpair controller"
stop_controller
mkdir -p "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setsid "$bin" controller --http-addr "127.0.0.1:$port" > "$work/controller.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$pidfile")" 2>/dev/null || { cat "$work/controller.log" >&2; echo "certpair controller exited" >&2; exit 1; }
  sleep 0.2
done
echo "GET /healthz -> $(curl -fsS "http://127.0.0.1:$port/healthz")"
echo "GET /readyz  -> $(curl -fsS "http://127.0.0.1:$port/readyz")"
echo "GET /metrics:"
curl -fsS "http://127.0.0.1:$port/metrics" | grep -v '^#'

cat <<TXT

certpair controller is running (pid $(cat "$pidfile"), logs: $work/controller.log).
  export KUBECONFIG=$KUBECONFIG
  export PATH=$root/hack/bin:\$PATH
  kubectl get applications
Stop everything with: hack/quickstart.sh down
TXT
