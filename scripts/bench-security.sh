#!/usr/bin/env bash
# The cost of security, measured in one run against one broker: produce 1 KiB records with
# acks=1 over PLAINTEXT and over SASL_SSL (TLS 1.3 + SCRAM-SHA-256) to two listeners of the
# same `sluice serve`, alternating, several rounds; prints both figures of each round, the
# medians and the ratio. Then the authorizer alone with 1,000 ACLs (`sluice bench authz`).
# Usage: scripts/bench-security.sh [rounds] [records per run]   (needs openssl, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
count=${2:-1000000}
cargo build --release -p sluice -p sluice-bench
bin=$PWD/target/release/sluice
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-security.XXXXXX")
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# A test CA and a server certificate for 127.0.0.1 (EC P-256, as most deployments now use).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$work/ca.key" -out "$work/ca.pem" -subj /CN=sluice-bench-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$work/server.key" -out "$work/server.csr" -subj /CN=localhost 2>/dev/null
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -out "$work/server.pem" 2>/dev/null \
  -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth')

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
plain=$(free_port)
secure=$(free_port)
http=$(free_port)
SLUICE_BOOTSTRAP_USER=bench:bench-secret "$bin" serve \
  --listeners "PLAINTEXT://127.0.0.1:$plain,SASL_SSL://127.0.0.1:$secure" \
  --ssl-cert-file "$work/server.pem" --ssl-key-file "$work/server.key" \
  --sasl-mechanisms SCRAM-SHA-256 --data-dir "$work/data" --http-listen "127.0.0.1:$http" \
  > "$work/broker.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$secure") 2>/dev/null; then break; fi
  sleep 0.1
done

common=(produce --count "$count" --record-size 1024 --acks 1 --partitions 8 --broker-pid "$pid" --json -q)
export SLUICE_SASL_PASSWORD=bench-secret
run_plain() {
  "$bin" bench "${common[@]}" --brokers "127.0.0.1:$plain" --topic "plain-$1" > "$work/plain-$1.json"
}
run_secure() {
  "$bin" bench "${common[@]}" --brokers "127.0.0.1:$secure" --topic "secure-$1" \
    --security-protocol SASL_SSL --ssl-ca-file "$work/ca.pem" \
    --sasl-mechanism SCRAM-SHA-256 --sasl-username bench > "$work/secure-$1.json"
}
for i in $(seq "$rounds"); do
  # Alternate which goes first, and delete each round's topics, so neither protocol always
  # meets a fuller page cache and disk.
  if [ $((i % 2)) = 1 ]; then run_plain "$i"; run_secure "$i"; else run_secure "$i"; run_plain "$i"; fi
  "$bin" topic delete "plain-$i" --brokers "127.0.0.1:$plain" >/dev/null
  "$bin" topic delete "secure-$i" --brokers "127.0.0.1:$plain" >/dev/null
  sync
done

python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def load(name, i):
    return json.load(open(f"{work}/{name}-{i}.json"))
def figures(r):
    if r["errors"]:
        sys.exit(f"a run had {r['errors']} errors: {r['first_error']}")
    gb = r["mb_per_sec"] * r["elapsed_s"] / 1000
    return (r["records_per_sec"], r["mb_per_sec"], r["broker"]["cpu_s_per_gb"], r["client_cpu_s"] / gb)
def show(f):
    return f"{f[0]:,.0f} rec/s {f[1]:.1f} MB/s (CPU s/GB: broker {f[2]:.2f}, client {f[3]:.2f})"
plain, secure = [], []
for i in range(1, rounds + 1):
    p, s = figures(load("plain", i)), figures(load("secure", i))
    plain.append(p); secure.append(s)
    print(f"round {i}: PLAINTEXT {show(p)} | SASL_SSL {show(s)} | ratio {s[0]/p[0]:.0%}")
mp = statistics.median(f[0] for f in plain)
ms = statistics.median(f[0] for f in secure)
print(f"median: PLAINTEXT {mp:,.0f} rec/s, SASL_SSL {ms:,.0f} rec/s, SASL_SSL/PLAINTEXT {ms/mp:.0%}")
PY

# The SASL_SSL runs did log in over TLS: the broker counts them.
python3 -c "import urllib.request,sys; print(*[l for l in urllib.request.urlopen('http://127.0.0.1:$http/metrics').read().decode().splitlines() if l.startswith('sluice_authentications_total')], sep='\n')"

echo "==> authorizer: 1,000 ACLs"
"$bin" bench authz --acls 1000 --checks 1000000 --rounds 5 -q
