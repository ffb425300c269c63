#!/usr/bin/env bash
# Writes the small non-PDF seeds committed in fuzz/seeds/ (the PDF seeds
# come from ../shared/corpus, see seed.sh). Rerun only to change them:
#   timestamp_request/  RFC 3161 TimeStampReq made by `openssl ts -query`
#   ocsp_request/       RFC 6960 OCSPRequest made by `openssl ocsp -reqout`
#   activation_token/   JWS compact strings shaped like SPEC §3 tokens
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seeds=$here/seeds
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$seeds"/{timestamp_request,ocsp_request,activation_token}

echo "report" > "$tmp/data"
openssl ts -query -data "$tmp/data" -sha256 -cert -out "$seeds/timestamp_request/sha256-cert.tsq" 2>/dev/null
openssl ts -query -data "$tmp/data" -sha256 -no_nonce -out "$seeds/timestamp_request/sha256-no-nonce.tsq" 2>/dev/null
openssl ts -query -data "$tmp/data" -sha256 -tspolicy 1.3.6.1.4.1.32473.1.1 -out "$seeds/timestamp_request/policy.tsq" 2>/dev/null
openssl ts -query -data "$tmp/data" -sha1 -out "$seeds/timestamp_request/sha1.tsq" 2>/dev/null

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=seed-ca \
  -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -days 1 2>/dev/null
openssl ocsp -issuer "$tmp/ca.pem" -serial 0x1234 -reqout "$seeds/ocsp_request/one.der" >/dev/null
openssl ocsp -issuer "$tmp/ca.pem" -serial 0x1234 -no_nonce -reqout "$seeds/ocsp_request/no-nonce.der" >/dev/null
openssl ocsp -issuer "$tmp/ca.pem" -serial 1 -serial 2 -serial 3 -reqout "$seeds/ocsp_request/three.der" >/dev/null
openssl ocsp -sha256 -issuer "$tmp/ca.pem" -serial 7 -reqout "$seeds/ocsp_request/sha256.der" >/dev/null

python3 - "$seeds/activation_token" <<'PY'
import base64, json, sys
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
claims = {"iss": "idp", "aud": "qsign", "sub": "6f1c", "iat": 1795867200, "nbf": 1795867200,
          "exp": 1795868100, "jti": "seed-1", "given_name": "Jens", "family_name": "Hansen",
          "digests": [b(bytes(32))]}
for name, header, body in [
    ("es256", {"alg": "ES256", "typ": "JWT", "kid": "dev"}, claims),
    ("none", {"alg": "none"}, claims),
    ("seal", {"alg": "ES256", "kid": "dev"}, dict(claims, org_name="Qsign ApS", cvr="12345678")),
]:
    token = f"{b(json.dumps(header).encode())}.{b(json.dumps(body).encode())}.{b(bytes(64))}"
    open(f"{sys.argv[1]}/{name}.jwt", "w").write(token)
PY
ls -R "$seeds" | head -20
