#!/usr/bin/env bash
# Writes the fuzz targets' seed inputs to fuzz/seeds/<target>/ with the openssl CLI (real
# requests of every key type certpair accepts or refuses, AdmissionReviews, connector bodies,
# GraphQL queries, CRLs and bundles). The seeds are committed, so a finding reproduces from
# the same starting point; rerun this only to renew them (hack/fuzz.sh never does).
#
# csr_differential signs requests with the fixed keys in fuzz/keys/ (compiled into the
# target). They are made once, when missing: test keys, never used anywhere else.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root/fuzz"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p keys
genkey() { # file, genpkey arguments
  [[ -s "$1" ]] || openssl genpkey -quiet "${@:2}" -out "$1"
}
genkey keys/rsa2048.pem -algorithm RSA -pkeyopt rsa_keygen_bits:2048
for curve in P-256 P-384 P-521; do
  genkey "keys/p${curve#P-}.pem" -algorithm EC -pkeyopt "ec_paramgen_curve:$curve" -pkeyopt ec_param_enc:named_curve
done
genkey keys/ed25519.pem -algorithm ed25519

say "keys for the seeds"
k=$tmp/keys
mkdir -p "$k"
for bits in 1024 3072 4096; do
  genkey "$k/rsa$bits.pem" -algorithm RSA -pkeyopt "rsa_keygen_bits:$bits"
done
genkey "$k/secp256k1.pem" -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1 -pkeyopt ec_param_enc:named_curve
genkey "$k/rsapss.pem" -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048
genkey "$k/ed448.pem" -algorithm ed448
openssl genpkey -quiet -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 -out "$k/dsa.params"
genkey "$k/dsa.pem" -paramfile "$k/dsa.params"
# The same P-256 key with its point compressed in the SubjectPublicKeyInfo.
openssl ec -in keys/p256.pem -conv_form compressed -out "$k/p256c.pem" 2>/dev/null

say "requests"
r=$tmp/req
mkdir -p "$r"
subject=/C=DE/O=Acme/CN=billing
req() { # name, key, openssl req arguments
  openssl req -new -config /dev/null -key "$2" -outform DER -out "$r/$1.der" "${@:3}"
}
req rsa1024 "$k/rsa1024.pem" -subj "$subject"
req rsa2048 keys/rsa2048.pem -subj "$subject"
req rsa2048-sha1 keys/rsa2048.pem -subj "$subject" -sha1
req rsa2048-sha512 keys/rsa2048.pem -subj "$subject" -sha512
req rsa3072 "$k/rsa3072.pem" -subj "$subject" -sha384
req rsa4096 "$k/rsa4096.pem" -subj "$subject"
req rsapss "$k/rsapss.pem" -subj "$subject"
req p256 keys/p256.pem -subj "$subject"
req p256c "$k/p256c.pem" -subj "$subject"
req p384 keys/p384.pem -subj "$subject" -sha384
req p521 keys/p521.pem -subj "$subject" -sha512
req secp256k1 "$k/secp256k1.pem" -subj "$subject"
req ed25519 keys/ed25519.pem -subj "$subject"
req ed448 "$k/ed448.pem" -subj "$subject"
req dsa "$k/dsa.pem" -subj "$subject"
req p256-extensions keys/p256.pem -subj /CN=billing \
  -addext "subjectAltName=DNS:a.example,IP:10.0.0.1,email:a@example.com,URI:https://a.example" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=keyCertSign,digitalSignature" \
  -addext "extendedKeyUsage=serverAuth,clientAuth,1.2.3.4"
req p256-multivalued keys/p256.pem -multivalue-rdn -subj "/CN=billing+O=Acme/OU=Payments"
req p256-utf8 keys/p256.pem -utf8 -subj "/O=Äcme Straße/L=München/ST=Bayern/CN=billing"
req p256-system keys/p256.pem -subj "/O=system:masters/CN=billing"

pem() { openssl req -inform DER -in "$1" -outform PEM; }

seeds=seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{csr_parse,csr_differential,admission_review,connector_rest,graphql,crl_bundle}

# csr_parse: every request as PEM, a few as DER.
for f in "$r"/*.der; do
  pem "$f" > "$seeds/csr_parse/$(basename "$f" .der).pem"
done
cp "$r/p256.der" "$r/rsa2048.der" "$r/ed25519.der" "$seeds/csr_parse/"

# csr_differential: mode 0 (the DER as is) for every request; modes 1 and 2 (signed by the
# target) with the info of requests made with the fixed keys. Byte 1 picks key and digest:
# key index (rsa2048, p256, p384, p521, ed25519) + 5 * digest (sha256, sha384, sha512, sha1).
python3 - "$r" "$seeds/csr_differential" <<'PY'
import os, sys
src, out = sys.argv[1], sys.argv[2]

def tlv(der):
    """The first TLV of der, whole."""
    n = der[1]
    if n < 0x80:
        return der[:2 + n]
    k = n & 0x7F
    return der[:2 + k + int.from_bytes(der[2:2 + k], "big")]

def info(name):
    der = open(os.path.join(src, name + ".der"), "rb").read()
    outer = tlv(der)
    header = len(outer) - int.from_bytes(outer[2:2 + (outer[1] & 0x7F)], "big") if outer[1] & 0x80 else 2
    return tlv(der[header:])

for f in sorted(os.listdir(src)):
    name = f[:-4]
    open(os.path.join(out, "raw-" + name), "wb").write(b"\x00" + open(os.path.join(src, f), "rb").read())
for name, pick in [("rsa2048", 0), ("rsa2048-sha1", 15), ("rsa2048-sha512", 10), ("p256", 1),
                   ("p384", 7), ("p521", 13), ("ed25519", 4), ("p256-extensions", 1),
                   ("p256-multivalued", 1), ("p256-utf8", 6), ("p256-system", 1)]:
    open(os.path.join(out, "signed-" + name), "wb").write(b"\x01" + bytes([pick]) + info(name))
# Another encoding of the fixed P-256 key (compressed point), signed as it is.
open(os.path.join(out, "own-key-p256-compressed"), "wb").write(b"\x02\x01" + info("p256c"))
PY

say "admission reviews and connector bodies"
python3 - "$r" "$seeds" <<'PY'
import base64, json, os, sys
src, out = sys.argv[1], sys.argv[2]

def pem(name):
    der = open(os.path.join(src, name + ".der"), "rb").read()
    b = base64.b64encode(der).decode()
    lines = [b[i:i + 64] for i in range(0, len(b), 64)]
    return ("-----BEGIN CERTIFICATE REQUEST-----\n" + "\n".join(lines)
            + "\n-----END CERTIFICATE REQUEST-----\n").encode()

def review(request, operation="CREATE", signer="certpair.dev/application",
           usages=("digital signature", "client auth"), expiration=3600, **extra):
    spec = {"request": base64.b64encode(request).decode(), "signerName": signer,
            "usages": list(usages)}
    if expiration is not None:
        spec["expirationSeconds"] = expiration
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "3f1c-uid",
            "kind": {"group": "certificates.k8s.io", "version": "v1",
                     "kind": "CertificateSigningRequest"},
            "resource": {"group": "certificates.k8s.io", "version": "v1",
                         "resource": "certificatesigningrequests"},
            "name": "csr-1",
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": {"apiVersion": "certificates.k8s.io/v1",
                       "kind": "CertificateSigningRequest",
                       "metadata": {"name": "csr-1"}, "spec": spec},
            "dryRun": False,
        },
    }
    body.update(extra)
    return body

def write(target, name, data):
    if not isinstance(data, bytes):
        data = json.dumps(data, ensure_ascii=False).encode()
    open(os.path.join(out, target, name), "wb").write(data)

a = "admission_review"
for name in ["p256", "rsa2048", "rsa1024", "ed25519", "p384", "p256-extensions",
             "p256-multivalued", "p256-system", "secp256k1"]:
    write(a, name + ".json", review(pem(name)))
write(a, "rsa3072-key-encipherment.json",
      review(pem("rsa3072"), usages=["digital signature", "key encipherment", "client auth"]))
write(a, "no-expiration.json", review(pem("p256"), expiration=None))
write(a, "short-expiration.json", review(pem("p256"), expiration=60))
write(a, "server-auth.json", review(pem("p256"), usages=["server auth"]))
write(a, "update.json", review(pem("p256"), operation="UPDATE"))
write(a, "other-signer.json", review(b"garbage", signer="example.com/other"))
write(a, "garbage-request.json", review(b"garbage"))
no_object = review(pem("p256"))
del no_object["request"]["object"]
write(a, "no-object.json", no_object)
no_request = review(pem("p256"))
del no_request["request"]
write(a, "no-request.json", no_request)
write(a, "v1beta1.json", review(pem("p256"), apiVersion="admission.k8s.io/v1beta1"))
not_a_csr = review(pem("p256"))
not_a_csr["request"]["object"]["spec"] = {"request": 42}
write(a, "not-a-csr.json", not_a_csr)

c = "connector_rest"
for name in ["p256", "rsa2048", "p384", "ed25519", "p256-extensions"]:
    write(c, "csr-" + name + ".json", {"csr": base64.b64encode(pem(name)).decode()})
write(c, "csr-not-base64.json", {"csr": "not base64!"})
write(c, "csr-not-pem.json", {"csr": base64.b64encode(b"garbage").decode()})
write(c, "hash.json", {"hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"})
write(c, "hash-upper-key.json", {"HASH": "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"})
write(c, "hash-short.json", {"hash": "9f86"})
write(c, "token.txt", b"dGhpcyBpcyBub3QgYSByZWFsIHRva2VuIGJ1dCBsb29rcyBsaWtlIG9uZSBhbHJlYWR5IGhlcmUgeHh4eHh4eHh4eHh4eHh4eHh4")
write(c, "subject.txt", b"O=Acme, Inc.,OU=Payments,L=Berlin,ST=Berlin,C=DE,CN=billing")

g = "graphql"
queries = {
    "configuration": "query { result: configuration() { token { token } certificateSigningRequestInfo { subject keyAlgorithm } managementPlaneInfo { directorURL certificateSecuredConnectorURL } } }",
    "configuration-plain": "{ configuration { token { token } } }",
    "sign": 'mutation { result: signCertificateSigningRequest(csr: "%s") { certificateChain caCertificate clientCertificate } }'
            % base64.b64encode(pem("p256")).decode(),
    "revoke": "mutation { result: revokeCertificate }",
    "aliases": "{ a: configuration { token { token } } b: configuration { token { token } } c: configuration { token { token } } }",
    "fragment": "query Q { ...F } fragment F on Query { configuration { certificateSigningRequestInfo { subject } } }",
    "introspection": "{ __schema { types { name fields { name args { name type { name kind ofType { name } } } } } } }",
    "internal-token": 'mutation { generateApplicationToken(authID: "billing") { token } }',
    "internal-runtime": 'mutation { generateRuntimeToken(authID: "runtime-1") { token } }',
    "internal-healthy": "{ isHealthy }",
}
for name, query in queries.items():
    write(g, name + ".json", {"query": query})
write(g, "variables.json", {
    "query": "mutation Sign($csr: String!) { signCertificateSigningRequest(csr: $csr) { clientCertificate } }",
    "variables": {"csr": base64.b64encode(pem("rsa2048")).decode()},
    "operationName": "Sign",
})
write(g, "get-query.txt", b"query=%7B%20configuration()%20%7B%20token%20%7B%20token%20%7D%20%7D%20%7D&operationName=")
write(g, "get-variables.txt", b"query=query%20Q(%24x%3A%20String)%20%7B%20configuration%20%7B%20token%20%7B%20token%20%7D%20%7D%20%7D&variables=%7B%22x%22%3A%221%22%7D")
PY

say "CRLs and bundles"
c=$tmp/ca
mkdir -p "$c"
cat > "$c/ca.cnf" <<EOF
[ca]
default_ca = d
[d]
database = $c/index.txt
crlnumber = $c/crlnumber
default_md = sha256
default_crl_days = 7
[ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
: > "$c/index.txt"
echo 1000 > "$c/crlnumber"
ca() { # name, key
  openssl req -x509 -new -config "$c/ca.cnf" -extensions ext -key "$2" -subj "/CN=$1" -days 3650 -out "$c/$1.crt"
}
ca ca-p256 keys/p256.pem
ca ca-rsa keys/rsa2048.pem
ca ca-ed25519 keys/ed25519.pem
crl() { # name
  openssl ca -config "$c/ca.cnf" -gencrl -keyfile keys/p256.pem -cert "$c/ca-p256.crt" -out "$c/$1.pem" 2>/dev/null
  openssl crl -in "$c/$1.pem" -outform DER -out "$seeds/crl_bundle/$1.der"
}
crl crl-empty
for serial in 0x0BA2C3D4E5F60718293A4B5C6D7E8F90 0x01 0xFF00FF00FF00FF00FF00FF00FF00FF00FF00FF00; do
  openssl x509 -req -in "$r/p256.der" -inform DER -CA "$c/ca-p256.crt" -CAkey keys/p256.pem \
    -set_serial "$serial" -days 1 -out "$c/leaf.crt" 2>/dev/null
  openssl ca -config "$c/ca.cnf" -revoke "$c/leaf.crt" -keyfile keys/p256.pem -cert "$c/ca-p256.crt" 2>/dev/null
done
crl crl-three
cp "$c/crl-three.pem" "$seeds/crl_bundle/crl-three.pem"
openssl x509 -in "$c/leaf.crt" -outform DER -out "$seeds/crl_bundle/leaf.der"
cat "$c/ca-p256.crt" "$c/ca-rsa.crt" > "$seeds/crl_bundle/bundle.pem"
{ cat "$c/ca-rsa.crt"; echo garbage; sed 's/MII/M!I/' "$c/ca-ed25519.crt"; cat "$c/ca-p256.crt"; } > "$seeds/crl_bundle/bundle-damaged.pem"
# A chain and its key in one input: the target reads the same bytes as both.
cat "$c/ca-p256.crt" keys/p256.pem > "$seeds/crl_bundle/ca-with-key.pem"
openssl pkey -in keys/rsa2048.pem -pubout > "$seeds/crl_bundle/public-key.pem"

say "seeds"
du -sh "$seeds"
for d in "$seeds"/*; do printf '%-18s %3d files\n' "$(basename "$d")" "$(ls "$d" | wc -l)"; done
