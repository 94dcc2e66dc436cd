#!/usr/bin/env bash
# Makes the certificates of the TLS tests in DIR (default: the first argument), with openssl:
#
#   ca.crt / ca.key                  the test CA
#   server.crt / server.key          PostgreSQL's certificate: localhost and 127.0.0.1, signed by the CA
#   client.crt / client.key          a client certificate for the role `dmf_cert` (cert auth)
#   other-ca.crt / other-ca.key      a CA that signed nothing the servers show
#   other-name.crt / other-name.key  signed by the CA, for `db.other.example` only
#
# Idempotent: files already there are kept (delete DIR to start over). No network. Keys are
# 0600 (libpq refuses a client key readable by others). Usage: bash scripts/test-certs.sh DIR
set -euo pipefail

dir=${1:?usage: test-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"

if ! command -v openssl >/dev/null; then
  echo "openssl not found: installing Debian's openssl package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq openssl >/dev/null
fi

# A P-256 key and a self-signed CA certificate valid for ten years.
make_ca() {
  local name=$1 subject=$2
  [ -s "$name.crt" ] && return 0
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 3650 \
    -subj "/CN=$subject" -keyout "$name.key" -out "$name.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 600 "$name.key"
}

# A P-256 key and a certificate signed by the CA `ca`: CN, extended key usage, subject names.
make_leaf() {
  local name=$1 subject=$2 usage=$3 names=${4:-}
  [ -s "$name.crt" ] && return 0
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -subj "/CN=$subject" -keyout "$name.key" -out "$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    if [ -n "$names" ]; then echo "subjectAltName=$names"; fi
  } >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
  chmod 600 "$name.key"
}

make_ca ca "DMF test CA"
make_ca other-ca "DMF other test CA"
make_leaf server localhost serverAuth "DNS:localhost,IP:127.0.0.1"
make_leaf client dmf_cert clientAuth
make_leaf other-name db.other.example serverAuth "DNS:db.other.example"
