#!/usr/bin/env bash
# certpair's main job on this machine: builds certpair and the local control plane, starts the
# control plane, installs the CRD and RBAC, runs `certpair controller` as its ServiceAccount,
# and shows a CSR made with openssl being approved and signed. The controller and the control plane keep running afterwards;
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

say "installing certpair: CRD, namespace, least-privilege RBAC, admission webhook configuration"
# The CRD comes from the binary itself (the README's command); the rest from manifests/.
"$bin" crd | kubectl apply --server-side -f -
kubectl wait --for condition=Established --timeout 30s \
  crd/applications.certpair.dev crd/tokenrequests.certpair.dev crd/revocations.certpair.dev
# Namespace, RBAC, the webhook configuration pointing at https://127.0.0.1:8443 and the
# admission policy that keeps it so. --force-conflicts: this installs what certpair ships, over
# any edit made since (say an admin's `kubectl replace` of the webhook configuration).
kubectl apply --server-side --force-conflicts -k kustomize/overlays/local

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

say "running certpair controller as its ServiceAccount (not as an admin)"
stop_controller
mkdir -p "$work"
# A kubeconfig of its own that holds the cluster and the ServiceAccount token, and nothing of
# the admin's (copying the admin kubeconfig would leave the admin's client key in a file the
# controller reads).
sa_kubeconfig="$work/controller.kubeconfig"
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
# --flatten embeds the CA even where the admin kubeconfig names a file.
ca_data=$(kubectl config view --raw --minify --flatten \
  -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
token=$(kubectl create token certpair-controller -n certpair-system --duration 24h)
# Written directly (0600), so the token never appears on a command line.
(
  umask 077
  cat > "$sa_kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster: {server: "$server", certificate-authority-data: "$ca_data"}
users:
  - name: certpair-controller
    user: {token: "$token"}
contexts:
  - name: certpair
    context: {cluster: local, user: certpair-controller}
current-context: certpair
KUBECONFIG
)
if grep -q 'client-key-data\|client-certificate-data' "$sa_kubeconfig"; then
  echo "error: $sa_kubeconfig holds client certificate credentials; it must hold only the token" >&2
  exit 1
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The webhook listens where the local webhook configuration points; certpair makes its own CA
# and serving certificate and injects the caBundle.
KUBECONFIG="$sa_kubeconfig" setsid "$bin" controller --http-addr "127.0.0.1:$port" \
  --webhook-addr 127.0.0.1:8443 --webhook-ips 127.0.0.1 --webhook-dns-names localhost \
  > "$work/controller.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$pidfile")" 2>/dev/null || { cat "$work/controller.log" >&2; echo "certpair controller exited" >&2; exit 1; }
  sleep 0.2
done
echo "GET /healthz -> $(curl -fsS "http://127.0.0.1:$port/healthz")"
echo "GET /readyz  -> $(curl -fsS "http://127.0.0.1:$port/readyz")"

say "requesting a certificate for 'billing' the way a user does"
cd "$work"
set -x
openssl ecparam -name prime256v1 -genkey -noout -out billing.key
openssl req -new -key billing.key -subj "/C=DE/O=Acme/CN=billing" -out billing.csr
csr_name="billing-$(date +%s)"
kubectl apply -f - <<YAML
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: $csr_name
spec:
  signerName: certpair.dev/application
  usages: [digital signature, client auth]
  expirationSeconds: 3600
  request: $(base64 -w0 < billing.csr)
YAML
kubectl wait --for=jsonpath='{.status.certificate}' --timeout 60s "csr/$csr_name"
kubectl get csr "$csr_name"
kubectl get csr "$csr_name" -o jsonpath='{.status.certificate}' | base64 -d > billing.crt
kubectl get configmap certpair-ca-bundle -n certpair-system -o jsonpath='{.data.ca\.crt}' > ca-bundle.crt
openssl x509 -in billing.crt -noout -subject -issuer -enddate -ext extendedKeyUsage
openssl verify -CAfile ca-bundle.crt billing.crt
set +x

echo
echo "A request certpair can never sign is refused at kubectl apply time by its webhook:"
set -x
openssl genrsa -out weak.key 1024
openssl req -new -key weak.key -subj "/C=DE/O=Acme/CN=billing" -out weak.csr
set +x
if kubectl apply -f - <<YAML
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: weak-$csr_name
spec:
  signerName: certpair.dev/application
  usages: [digital signature, client auth]
  request: $(base64 -w0 < weak.csr)
YAML
then
  echo "unexpected: the weak request was admitted" >&2
  exit 1
fi
cd "$root"

echo
echo "GET /metrics (certpair's own series):"
curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^certpair_(csr_decisions|certificates_issued|signing_ca|leader|applications)' \
  | grep -v '^certpair_signing_ca_problem.* 0$' # a problem series shows only while it is 1

cat <<TXT

certpair controller is running (pid $(cat "$pidfile"), logs: $work/controller.log).
  export KUBECONFIG=$KUBECONFIG
  export PATH=$root/hack/bin:\$PATH
  kubectl get applications
Stop everything with: hack/quickstart.sh down
TXT
