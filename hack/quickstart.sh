#!/usr/bin/env bash
# certpair's main job on this machine: builds certpair and the local control plane, starts the
# control plane, installs the CRDs and RBAC, runs `certpair controller` and `certpair
# connector` as their ServiceAccounts, shows a CSR made with openssl being approved and signed,
# pairs an application the way Kyma's tutorial does it (curl and openssl: token, CSR info,
# certificate, management info, renewal, revocation, CRL), then the way Compass's tutorial does
# it (GraphQL), then with certpair's own client commands (token create, pair, info, renew,
# revoke). The processes and the control plane keep running afterwards; `hack/quickstart.sh
# down` stops them all.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"

work="$root/target/quickstart"

# stop_process controller|connector: the one this script started, if it still runs.
stop_process() {
  local pidfile="$work/$1.pid"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null &&
     tr '\0' ' ' < "/proc/$(cat "$pidfile")/cmdline" | grep -q "certpair $1"; then
    kill -TERM "$(cat "$pidfile")"
    for _ in $(seq 1 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
    echo "stopped certpair $1 (pid $(cat "$pidfile"))" >&2
  fi
  rm -f "$pidfile"
}

if [[ "${1:-}" == down ]]; then
  stop_process connector
  stop_process controller
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

say "running certpair controller and connector as their ServiceAccounts (not as an admin)"
stop_process connector
stop_process controller
mkdir -p "$work"
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
# --flatten embeds the CA even where the admin kubeconfig names a file.
ca_data=$(kubectl config view --raw --minify --flatten \
  -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
# sa_kubeconfig NAME: a kubeconfig of its own for ServiceAccount NAME that holds the cluster
# and the ServiceAccount's token, and nothing of the admin's (copying the admin kubeconfig
# would leave the admin's client key in a file the process reads). Written directly (0600),
# so the token never appears on a command line.
sa_kubeconfig() {
  local file="$work/$1.kubeconfig" token
  token=$(kubectl create token "$1" -n certpair-system --duration 24h)
  (
    umask 077
    cat > "$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster: {server: "$server", certificate-authority-data: "$ca_data"}
users:
  - name: $1
    user: {token: "$token"}
contexts:
  - name: certpair
    context: {cluster: local, user: $1}
current-context: certpair
KUBECONFIG
  )
  if grep -q 'client-key-data\|client-certificate-data' "$file"; then
    echo "error: $file holds client certificate credentials; it must hold only the token" >&2
    exit 1
  fi
  echo "$file"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_ready NAME PORT: until /readyz answers, or the process has exited.
wait_ready() {
  for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && return
    kill -0 "$(cat "$work/$1.pid")" 2>/dev/null || { cat "$work/$1.log" >&2; echo "certpair $1 exited" >&2; exit 1; }
    sleep 0.2
  done
  cat "$work/$1.log" >&2; echo "certpair $1 never became ready" >&2; exit 1
}
port=$(free_port)
connector_port=$(free_port)
connector_url=https://127.0.0.1:9443
# The webhook listens where the local webhook configuration points; certpair makes its own CA
# and serving certificate and injects the caBundle. It also makes the connector's certificate
# (for 127.0.0.1) and serves TokenRequests pointing at the connector.
KUBECONFIG="$(sa_kubeconfig certpair-controller)" setsid "$bin" controller --http-addr "127.0.0.1:$port" \
  --webhook-addr 127.0.0.1:8443 --webhook-ips 127.0.0.1 --webhook-dns-names localhost \
  --connector-url "$connector_url" --connector-ips 127.0.0.1 --connector-dns-names localhost \
  > "$work/controller.log" 2>&1 < /dev/null &
echo $! > "$work/controller.pid"
wait_ready controller "$port"
KUBECONFIG="$(sa_kubeconfig certpair-connector)" setsid "$bin" connector --http-addr "127.0.0.1:$connector_port" \
  --connector-addr 127.0.0.1:9443 --internal-addr 127.0.0.1:9080 --external-url "$connector_url" \
  > "$work/connector.log" 2>&1 < /dev/null &
echo $! > "$work/connector.pid"
wait_ready connector "$connector_port"
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

say "pairing an external application the way Kyma's tutorial does it (curl and openssl)"
cd "$work"
# csr_json CSR OUT: Kyma's request body {"csr": "<base64 of the PEM>"}.
csr_json() { printf '{"csr":"%s"}' "$(base64 -w0 "$1")" > "$2"; }
kubectl delete tokenrequest billing-pairing -n default --ignore-not-found >/dev/null
set -x
kubectl create -f - <<'YAML'
apiVersion: certpair.dev/v1alpha1
kind: TokenRequest
metadata:
  name: billing-pairing
  namespace: default
spec:
  application: billing
YAML
kubectl wait --for=jsonpath='{.status.state}'=Ready --timeout 30s tokenrequest/billing-pairing
kubectl get tokenrequest billing-pairing
url=$(kubectl get tokenrequest billing-pairing -o jsonpath='{.status.url}')
# The connector's CA: check it against the pin in the TokenRequest before sending the token.
kubectl get configmap certpair-connector-ca -n certpair-system -o jsonpath='{.data.ca\.crt}' > connector-ca.crt
pin=$(kubectl get tokenrequest billing-pairing -o jsonpath='{.status.caCertHash}')
test "$pin" = "sha256:$(openssl x509 -in connector-ca.crt -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)"
curl -fsS --cacert connector-ca.crt "$url" > info.json
python3 -m json.tool info.json
csr_url=$(python3 -c 'import json; print(json.load(open("info.json"))["csrUrl"])')
subject=$(python3 -c 'import json; print("/" + json.load(open("info.json"))["certificate"]["subject"].replace(",", "/"))')
openssl genrsa -out app.key 2048
openssl req -new -key app.key -subj "$subject" -out app.csr
csr_json app.csr app.json
curl -fsS --cacert connector-ca.crt -H "Content-Type: application/json" -d @app.json "$csr_url" > cert.json
python3 -c 'import json, base64; d = json.load(open("cert.json")); [open(f, "wb").write(base64.b64decode(d[k])) for k, f in (("crt", "app.chain.crt"), ("clientCrt", "app.crt"), ("caCrt", "app.ca.crt"))]'
openssl verify -CAfile ca-bundle.crt app.crt
kubectl get csr -l app.kubernetes.io/managed-by=certpair-connector
curl -fsS --cacert connector-ca.crt --cert app.chain.crt --key app.key \
  https://127.0.0.1:9443/v1/applications/management/info | python3 -m json.tool
openssl genrsa -out app2.key 2048
openssl req -new -key app2.key -subj "$subject" -out app2.csr
csr_json app2.csr app2.json
curl -fsS --cacert connector-ca.crt --cert app.chain.crt --key app.key \
  -d @app2.json https://127.0.0.1:9443/v1/applications/certificates/renewals > renewed.json
python3 -c 'import json, base64; open("app2.crt", "wb").write(base64.b64decode(json.load(open("renewed.json"))["clientCrt"]))'
openssl x509 -in app.crt -noout -serial
openssl x509 -in app2.crt -noout -serial
curl -fsS --cacert connector-ca.crt --cert app.chain.crt --key app.key -X POST \
  https://127.0.0.1:9443/v1/applications/certificates/revocations
# Renewing with the revoked certificate is refused:
curl -sS --cacert connector-ca.crt --cert app.chain.crt --key app.key \
  -d @app2.json https://127.0.0.1:9443/v1/applications/certificates/renewals
echo
set +x
serial=$(openssl x509 -in app.crt -noout -serial | cut -d= -f2)
for _ in $(seq 1 100); do
  curl -fsS --cacert connector-ca.crt -H 'Accept: application/x-pem-file' https://127.0.0.1:9443/v1/crl > crl.pem 2>/dev/null &&
    openssl crl -in crl.pem -noout -text | grep -q "$serial" && break
  sleep 0.2
done
set -x
openssl crl -in crl.pem -noout -text | grep -A1 "$serial"
openssl crl -in crl.pem -CAfile ca-bundle.crt -noout -verify
openssl verify -crl_check -CAfile ca-bundle.crt -CRLfile crl.pem app.crt || true
set +x
cd "$root"

say "pairing the way Compass's tutorial does it (GraphQL, curl and openssl)"
cd "$work"
kubectl delete tokenrequest billing-compass -n default --ignore-not-found >/dev/null
set -x
kubectl create -f - <<'YAML'
apiVersion: certpair.dev/v1alpha1
kind: TokenRequest
metadata: {name: billing-compass, namespace: default}
spec: {application: billing}
YAML
kubectl wait --for=jsonpath='{.status.state}'=Ready --timeout 30s tokenrequest/billing-compass
token=$(kubectl get tokenrequest billing-compass -o jsonpath='{.status.token}')
curl -fsS --cacert connector-ca.crt -H "Connector-Token: $token" -H 'Content-Type: application/json' \
  -d '{"query": "{ result: configuration() { token { token } certificateSigningRequestInfo { subject keyAlgorithm } managementPlaneInfo { directorURL certificateSecuredConnectorURL } } }"}' \
  https://127.0.0.1:9443/graphql > configuration.json
python3 -m json.tool configuration.json
next_token=$(python3 -c 'import json; print(json.load(open("configuration.json"))["data"]["result"]["token"]["token"])')
subject=$(python3 -c 'import json; print("/" + json.load(open("configuration.json"))["data"]["result"]["certificateSigningRequestInfo"]["subject"].replace(",", "/"))')
openssl genrsa -out compass.key 4096
openssl req -new -sha256 -out compass.csr -key compass.key -subj "$subject"
printf '{"query": "mutation { result: signCertificateSigningRequest(csr: \\"%s\\") { certificateChain caCertificate clientCertificate } }"}' \
  "$(base64 -w0 compass.csr)" > sign.json
curl -fsS --cacert connector-ca.crt -H "Connector-Token: $next_token" -H 'Content-Type: application/json' \
  -d @sign.json https://127.0.0.1:9443/graphql > signed.json
python3 -c 'import json, base64; r = json.load(open("signed.json"))["data"]["result"]; open("compass.chain.crt", "wb").write(base64.b64decode(r["certificateChain"]))'
openssl verify -CAfile ca-bundle.crt compass.chain.crt
# Over mTLS without a token: the renewal's configuration, then revocation.
curl -fsS --cacert connector-ca.crt --cert compass.chain.crt --key compass.key -H 'Content-Type: application/json' \
  -d '{"query": "{ result: configuration() { certificateSigningRequestInfo { subject keyAlgorithm } } }"}' \
  https://127.0.0.1:9443/graphql
echo
curl -fsS --cacert connector-ca.crt --cert compass.chain.crt --key compass.key -H 'Content-Type: application/json' \
  -d '{"query": "mutation { result: revokeCertificate }"}' https://127.0.0.1:9443/graphql
echo
set +x
cd "$root"

say "pairing with certpair's client commands"
cd "$work"
certpair() { "$bin" "$@"; }
rm -rf billing-pairing
set -x
certpair token create billing -n default -o json > token.json
url=$(python3 -c 'import json; print(json.load(open("token.json"))["url"])')
pin=$(python3 -c 'import json; print(json.load(open("token.json"))["caCertHash"])')
certpair pair "$url" --ca-cert-hash "$pin" --out billing-pairing
ls -l billing-pairing/
curl -fsS --cacert billing-pairing/connector-ca.crt --cert billing-pairing/tls.crt --key billing-pairing/tls.key \
  https://127.0.0.1:9443/v1/applications/management/info > /dev/null
certpair info --dir billing-pairing
certpair renew --dir billing-pairing
certpair renew --dir billing-pairing --force
certpair revoke --dir billing-pairing
set +x
cd "$root"

cat <<TXT

certpair controller is running (pid $(cat "$work/controller.pid"), logs: $work/controller.log).
certpair connector is running (pid $(cat "$work/connector.pid"), logs: $work/connector.log) at https://127.0.0.1:9443.
  export KUBECONFIG=$KUBECONFIG
  export PATH=$root/hack/bin:\$PATH
  kubectl get applications
Stop everything with: hack/quickstart.sh down
TXT
