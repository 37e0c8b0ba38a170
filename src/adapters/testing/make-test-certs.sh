#!/usr/bin/env bash
# Makes throw-away TLS certificates for the MQTT TLS tests and the IoT gateway
# example's mutual-TLS run, with the openssl CLI (EC P-256, fast). Never use
# them for anything else: the CA's key lies next to them.
#
#   make-test-certs.sh DIR
#
# DIR receives, PEM each (NAME.pem certificate, NAME.key key):
#   ca           the test CA
#   server       broker certificate for localhost / 127.0.0.1 (subjectAltName), by ca
#   client       client certificate (CN jaiminho-test-client), by ca
#   client-enc.key  client.key encrypted with the pass phrase in client-key-password
#   other-ca     an unrelated CA (a "wrong CA" for clients)
#   expired      like server, but valid only on 2020-01-01
#   wronghost    by ca, but for wrong.example only
set -euo pipefail
dir=${1:?usage: make-test-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

ca() {  # name cn
  openssl req -x509 "${newkey[@]}" -keyout "$1.key" -out "$1.pem" -days 30 -subj "/CN=$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
leaf() {  # name cn san extended-key-usage: a key and a CSR
  openssl req "${newkey[@]}" -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$3" "$4" >"$1.ext"
}
sign() {  # name: signs name.csr with ca for 30 days
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile "$1.ext" \
    -out "$1.pem" 2>/dev/null
}

ca ca "jaiminho test CA"
ca other-ca "jaiminho unrelated CA"
leaf server localhost "DNS:localhost,IP:127.0.0.1" serverAuth && sign server
leaf client jaiminho-test-client "DNS:jaiminho-test-client" clientAuth && sign client
leaf wronghost wrong.example "DNS:wrong.example" serverAuth && sign wronghost
echo "test-key-pass" >client-key-password
openssl pkey -in client.key -aes256 -passout file:client-key-password -out client-enc.key

# expired: `openssl x509 -days` cannot go back in time; `openssl ca` takes explicit dates.
leaf expired localhost "DNS:localhost,IP:127.0.0.1" serverAuth
mkdir -p ca-db && : >ca-db/index.txt && echo 01 >ca-db/serial
cat >ca-db/ca.cnf <<CNF
[ca]
default_ca = test_ca
[test_ca]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
CNF
openssl ca -batch -config ca-db/ca.cnf -in expired.csr -out expired.pem -extfile expired.ext \
  -startdate 20200101000000Z -enddate 20200102000000Z -notext 2>/dev/null
rm -f ./*.csr ./*.ext
chmod 600 ./*.key
