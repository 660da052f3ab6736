#!/usr/bin/env bash
# Makes the TLS files the client security tests use, with openssl, into DIR:
#
#   tests/lib/make-test-certs.sh DIR
#
#   ca.pem                   a test certificate authority
#   server.pem, server.key   the broker's certificate (127.0.0.1 and localhost), signed by it
#   client.pem, client.key   a client certificate, subject CN=alice,OU=eng,O=sluice
#
# Keys are unencrypted P-256 keys in PKCS#8; certificates last a day. The CA key stays in
# DIR (ca.key) and is not needed afterwards.
set -euo pipefail

dir="${1:?usage: make-test-certs.sh DIR}"
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -days 1 -subj "/CN=Sluice test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem 2>/dev/null

# sign NAME SUBJECT EXTENSIONS: NAME.key and NAME.pem signed by the CA.
sign() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

sign server "/CN=localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"

sign client "/O=sluice/OU=eng/CN=alice" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
