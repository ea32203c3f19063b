#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Set up and run Tern on the embedded demo: installs what is missing, builds, starts the
# project's fake Kubernetes API server with a demo cluster (tools/fake-apiserver/demo.json)
# and runs ternd against it in the foreground on 127.0.0.1:5300 (Ctrl-C stops both).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
dir=$(tools/build.sh)
run=$(mktemp -d /tmp/tern-demo.XXXXXX)
api_pid=""
cleanup() {
	[ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null || true
	rm -rf "$run"
}
trap cleanup EXIT INT TERM

# The fake API server prints "listening http://127.0.0.1:PORT" first.
python3 tools/fake-apiserver/fake_apiserver.py --fixture tools/fake-apiserver/demo.json \
	--listen 127.0.0.1:0 >"$run/api.out" 2>"$run/api.log" &
api_pid=$!
for _ in $(seq 100); do
	grep -q '^listening ' "$run/api.out" 2>/dev/null && break
	sleep 0.1
done
endpoint=$(sed -n 's/^listening //p' "$run/api.out" | head -n 1)
[ -n "$endpoint" ] || { echo "demo: the fake API server did not start:" >&2; cat "$run/api.log" >&2; exit 1; }
sed "s|@ENDPOINT@|$endpoint|" tools/demo/ternd.yaml >"$run/ternd.yaml"
cp tools/demo/example.org.zone "$run/"

cat <<TXT
Demo cluster served by the fake Kubernetes API at $endpoint
(change it live: tools/fake-apiserver/README.md, "Control interface").
Tern is starting on 127.0.0.1:5300 (and [::1]:5300). In another terminal try:
  dig @127.0.0.1 -p 5300 web.demo.svc.cluster.local            # ClusterIP
  dig @127.0.0.1 -p 5300 dual.demo.svc.cluster.local AAAA      # dual-stack
  dig @127.0.0.1 -p 5300 db.demo.svc.cluster.local             # headless: ready endpoints
  dig @127.0.0.1 -p 5300 db-0.db.demo.svc.cluster.local        # one endpoint by hostname
  dig @127.0.0.1 -p 5300 _postgres._tcp.db.demo.svc.cluster.local SRV
  dig @127.0.0.1 -p 5300 www.shop.svc.cluster.local            # ExternalName -> CNAME
  dig @127.0.0.1 -p 5300 -x 10.96.0.10                         # PTR of kube-dns
  dig @127.0.0.1 -p 5300 nope.demo.svc.cluster.local           # NXDOMAIN with SOA
  dig @127.0.0.1 -p 5300 www.example.org                       # the file zone
  curl -s http://127.0.0.1:8181/ready
  curl -s http://127.0.0.1:9153/metrics | grep -E '^(coredns_dns_requests_total|tern_kubernetes)'
TXT
"$dir/daemon/ternd" --config "$run/ternd.yaml"
