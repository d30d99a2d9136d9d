#!/usr/bin/env bash
# A real, local Kubernetes control plane (etcd + kube-apiserver) on 127.0.0.1 for certpair's
# tests, quickstart and development.
#
#   hack/control-plane.sh build   build etcd, kube-apiserver and kubectl into hack/bin/ (cached)
#   hack/control-plane.sh build-kcm  build kube-controller-manager too (the peers benchmark)
#   hack/control-plane.sh up      start etcd and kube-apiserver; prints `export KUBECONFIG=...`
#   hack/control-plane.sh down    stop exactly the processes `up` started
#   hack/control-plane.sh status  say whether it runs, and where
#   hack/control-plane.sh env     print `export KUBECONFIG=...` for a running control plane
#   hack/control-plane.sh restart kube-apiserver|etcd [DOWN_SECONDS]
#                                 stop one server, wait, start it again (fault tests)
#
# The pinned releases are the `require` lines of hack/tools/*/go.mod. Binaries are built from
# the Go module proxy and also kept in $CERTPAIR_CACHE_DIR (default ~/.cache/certpair), so a
# fresh clone on the same machine copies them instead of compiling again.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir="$root/hack/bin"
state="${CERTPAIR_CONTROL_PLANE_DIR:-$root/target/control-plane}"
cache_dir="${CERTPAIR_CACHE_DIR:-$HOME/.cache/certpair}"

log() { printf 'control-plane: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The version a wrapper module requires of one module, read from its go.mod.
pinned() { awk -v m="$2" '$1 == "require" && $2 == m { print $3 } $1 == m && $2 ~ /^v/ { print $2 }' "$root/hack/tools/$1/go.mod" | head -n 1; }

k8s_version=$(pinned kubernetes k8s.io/kubernetes)
etcd_version=$(pinned etcd go.etcd.io/etcd/server/v3)
stamp="kubernetes=$k8s_version etcd=$etcd_version"

build() {
  [[ -n "$k8s_version" && -n "$etcd_version" ]] || die "cannot read the pinned versions from hack/tools/*/go.mod"
  if [[ -x "$bin_dir/kube-apiserver" && -x "$bin_dir/kubectl" && -x "$bin_dir/etcd" ]] &&
     [[ "$(cat "$bin_dir/.stamp" 2>/dev/null)" == "$stamp" ]]; then
    log "up to date: $stamp"
    return
  fi
  local cached="$cache_dir/bin/kubernetes-$k8s_version-etcd-$etcd_version"
  mkdir -p "$bin_dir"
  if [[ -x "$cached/kube-apiserver" && -x "$cached/kubectl" && -x "$cached/etcd" ]]; then
    log "copying $stamp from $cached"
    cp "$cached/kube-apiserver" "$cached/kubectl" "$cached/etcd" "$bin_dir/"
    echo "$stamp" > "$bin_dir/.stamp"
    return
  fi
  command -v go >/dev/null || die "go is not installed; it is needed to build the control plane"
  # sum.golang.org is not reachable here; the committed go.sum files pin every module's hash.
  export GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-mod=readonly
  local minor=${k8s_version#v1.}; minor=${minor%%.*}
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  local start=$SECONDS
  log "building kube-apiserver and kubectl $k8s_version (a cold build takes several minutes)"
  (cd "$root/hack/tools/kubernetes" &&
    go build -trimpath -ldflags "$ld" -o "$bin_dir/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl)
  log "building etcd $etcd_version"
  (cd "$root/hack/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin_dir/etcd" go.etcd.io/etcd/server/v3)
  echo "$stamp" > "$bin_dir/.stamp"
  mkdir -p "$cached"
  cp "$bin_dir/kube-apiserver" "$bin_dir/kubectl" "$bin_dir/etcd" "$cached/"
  log "built $stamp in $((SECONDS - start))s"
}

# kube-controller-manager of the same pinned release, for the peers benchmark only (tests do
# not need it). Cached like the others.
build_kcm() {
  [[ -n "$k8s_version" ]] || die "cannot read the pinned Kubernetes version from hack/tools/kubernetes/go.mod"
  local cached="$cache_dir/bin/kube-controller-manager-$k8s_version"
  mkdir -p "$bin_dir"
  if [[ -x "$bin_dir/kube-controller-manager" && "$(cat "$bin_dir/.stamp-kcm" 2>/dev/null)" == "$k8s_version" ]]; then
    log "up to date: kube-controller-manager $k8s_version"
    return
  fi
  if [[ -x "$cached/kube-controller-manager" ]]; then
    cp "$cached/kube-controller-manager" "$bin_dir/"
  else
    command -v go >/dev/null || die "go is not installed; it is needed to build kube-controller-manager"
    export GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-mod=readonly
    local start=$SECONDS
    log "building kube-controller-manager $k8s_version (a cold build takes several minutes)"
    (cd "$root/hack/tools/kubernetes" &&
      go build -trimpath -ldflags "-s -w" -o "$bin_dir/" k8s.io/kubernetes/cmd/kube-controller-manager)
    mkdir -p "$cached"
    cp "$bin_dir/kube-controller-manager" "$cached/"
    log "built kube-controller-manager in $((SECONDS - start))s"
  fi
  echo "$k8s_version" > "$bin_dir/.stamp-kcm"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A pid file names a running process only if that process was started with our state dir.
alive() {
  local pidfile="$state/$1.pid" pid
  [[ -f "$pidfile" ]] || return 1
  pid=$(cat "$pidfile")
  [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$state/"
}

running() { alive etcd && alive kube-apiserver; }

print_env() { echo "export KUBECONFIG=$state/admin.kubeconfig"; }

make_pki() {
  local pki="$state/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 365 -subj "/CN=certpair-local-control-plane-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
    leaf() { # name subject extensions...
      local name=$1 subj=$2; shift 2
      openssl ecparam -name prime256v1 -genkey -noout -out "$name.key" 2>/dev/null
      openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr"
      printf '%s\n' "$@" > "$name.ext"
      openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -sha256 \
        -extfile "$name.ext" -out "$name.crt" 2>/dev/null
      rm -f "$name.csr" "$name.ext"
    }
    leaf apiserver "/CN=kube-apiserver" \
      "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
      "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature"
    leaf admin "/O=system:masters/CN=certpair-admin" "extendedKeyUsage=clientAuth" "keyUsage=critical,digitalSignature"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
  )
}

write_kubeconfig() {
  local kc="$state/admin.kubeconfig" kubectl="$bin_dir/kubectl"
  rm -f "$kc"
  "$kubectl" --kubeconfig "$kc" config set-cluster certpair-local --server "https://127.0.0.1:$1" \
    --certificate-authority "$state/pki/ca.crt" --embed-certs >/dev/null
  "$kubectl" --kubeconfig "$kc" config set-credentials certpair-admin \
    --client-certificate "$state/pki/admin.crt" --client-key "$state/pki/admin.key" --embed-certs >/dev/null
  "$kubectl" --kubeconfig "$kc" config set-context certpair-local --cluster certpair-local --user certpair-admin >/dev/null
  "$kubectl" --kubeconfig "$kc" config use-context certpair-local >/dev/null
  chmod 600 "$kc"
}

# Reads the ports `up` chose.
read_ports() {
  [[ -f "$state/ports" ]] || die "no $state/ports: start the control plane with: hack/control-plane.sh up"
  read -r etcd_port peer_port api_port < "$state/ports"
}

start_etcd() {
  read_ports
  # setsid: the servers outlive this script and get no signals meant for its terminal.
  # --unsafe-no-fsync: test state is thrown away anyway; fsync would dominate write latency.
  setsid "$bin_dir/etcd" --name certpair-local --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "certpair-local=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --quota-backend-bytes 2147483648 --log-level warn \
    >> "$state/logs/etcd.log" 2>&1 < /dev/null &
  echo $! > "$state/etcd.pid"
}

# An audit log of the writes certpair's tests attribute to one process (CSR decisions,
# certificates, deletions, Events): the fault tests read it to prove a frozen leader wrote
# nothing after it resumed. Metadata level only, so it costs little.
write_audit_policy() {
  cat > "$state/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
    resources:
      - group: certificates.k8s.io
        resources: [certificatesigningrequests, certificatesigningrequests/approval, certificatesigningrequests/status]
      - group: events.k8s.io
        resources: [events]
      - group: ""
        resources: [events]
  - level: None
POLICY
}

start_apiserver() {
  read_ports
  setsid "$bin_dir/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$state/pki/apiserver.crt" --tls-private-key-file "$state/pki/apiserver.key" \
    --client-ca-file "$state/pki/ca.crt" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$state/pki/sa.pub" \
    --service-account-signing-key-file "$state/pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --endpoint-reconciler-type none \
    --profiling=false \
    --audit-policy-file "$state/audit-policy.yaml" \
    --audit-log-path "$state/logs/audit.log" --audit-log-maxsize 200 --audit-log-maxbackup 1 \
    --v 1 \
    >> "$state/logs/kube-apiserver.log" 2>&1 < /dev/null &
  echo $! > "$state/kube-apiserver.pid"
}

# Waits (bounded) until the apiserver answers /readyz.
wait_ready() {
  local deadline=$((SECONDS + 120))
  until "$bin_dir/kubectl" --kubeconfig "$state/admin.kubeconfig" get --raw /readyz >/dev/null 2>&1; do
    if ! alive etcd; then tail -n 20 "$state/logs/etcd.log" >&2; die "etcd exited; log: $state/logs/etcd.log"; fi
    if ! alive kube-apiserver; then
      tail -n 20 "$state/logs/kube-apiserver.log" >&2
      die "kube-apiserver exited; log: $state/logs/kube-apiserver.log"
    fi
    if (( SECONDS > deadline )); then
      stop_all quiet
      die "kube-apiserver was not ready within 120s; logs in $state/logs/"
    fi
    sleep 0.5
  done
}

# A fault for the tests: stops one server (SIGTERM, as a node drain or crash loop would),
# keeps it down for DOWN seconds, starts it again on the same ports and data, and returns
# once the apiserver is ready again. Clients see refused connections, then a fresh server.
restart() {
  local name=$1 down=${2:-0}
  case "$name" in kube-apiserver|etcd) ;; *) die "restart: kube-apiserver or etcd, not '$name'" ;; esac
  running || die "not running; start it with: hack/control-plane.sh up"
  stop_one "$name"
  sleep "$down"
  "start_${name//kube-/}"
  wait_ready
  log "restarted $name after ${down}s down"
}

up() {
  if running; then
    log "already running ($(cat "$state/endpoint"))"
    print_env
    return
  fi
  for b in etcd kube-apiserver kubectl; do
    [[ -x "$bin_dir/$b" ]] || die "$bin_dir/$b is missing; run: hack/control-plane.sh build"
  done
  command -v openssl >/dev/null || die "openssl is not installed (apt-get install openssl)"
  stop_all quiet
  rm -rf "$state"
  mkdir -p "$state/logs" "$state/etcd"
  make_pki

  local etcd_port peer_port api_port
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
  # Kept so `restart` starts a server again on the same ports, with the same data and PKI.
  printf '%s %s %s\n' "$etcd_port" "$peer_port" "$api_port" > "$state/ports"
  write_audit_policy
  start_etcd
  start_apiserver
  echo "https://127.0.0.1:$api_port" > "$state/endpoint"

  write_kubeconfig "$api_port"

  wait_ready
  log "ready at https://127.0.0.1:$api_port ($k8s_version); logs in $state/logs/"
  print_env
}

stop_one() {
  local name=$1 pid
  alive "$name" || { rm -f "$state/$name.pid"; return 0; }
  pid=$(cat "$state/$name.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    alive "$name" || break
    sleep 0.1
  done
  if alive "$name"; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$state/$name.pid"
  [[ "${2:-}" == quiet ]] || log "stopped $name (pid $pid)"
}

# The apiserver first, so it does not spin on a vanished etcd.
stop_all() { stop_one kube-apiserver "${1:-}"; stop_one etcd "${1:-}"; }

status() {
  if running; then
    log "running at $(cat "$state/endpoint"); state in $state"
    print_env
  else
    log "not running"
    return 1
  fi
}

case "${1:-}" in
  build) build ;;
  build-kcm) build_kcm ;;
  up) up ;;
  down) stop_all ;;
  restart) shift; restart "$@" ;;
  status) status ;;
  env) running || die "not running; start it with: hack/control-plane.sh up"; print_env ;;
  *) echo "usage: $0 build|build-kcm|up|down|status|env|restart NAME [DOWN_SECONDS]" >&2; exit 2 ;;
esac
