#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Throughput comparison of ternd against knotd on the same authoritative zone.
# Builds nothing: it takes an already built ternd, generates a zone and a dnsperf
# query file in a temp dir, starts ternd (file plugin, 2 workers) and knotd
# (2 UDP workers) on free loopback ports, runs dnsperf against each for a bounded
# time, prints a Markdown table (QPS, average latency, lost queries) and the
# Tern/knotd QPS ratio, writes bench/results/compare-<date>.json, and stops both
# servers by PID. Usage: bench/compare.sh [--quick] [-l SECONDS] [-c CLIENTS]
# [-T THREADS] [PATH_TO_TERND]   (default ternd: build/daemon/ternd).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TERND="$ROOT/build/daemon/ternd"
DURATION=10
CLIENTS=4
THREADS=2
RECORDS=2000

usage() {
	sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) DURATION=3 ;;
	-l) DURATION="$2"; shift ;;
	-c) CLIENTS="$2"; shift ;;
	-T) THREADS="$2"; shift ;;
	-h|--help) usage 0 ;;
	-*) echo "unknown option $1" >&2; usage 2 ;;
	*) TERND="$1" ;;
	esac
	shift
done

for tool in dnsperf knotd kdig python3; do
	if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
		echo "compare.sh: $tool is required" >&2
		exit 2
	fi
done
KNOTD=$(command -v knotd || echo /usr/sbin/knotd)
if [ ! -x "$TERND" ]; then
	echo "compare.sh: no ternd at $TERND (build it first: ninja -C build)" >&2
	exit 2
fi

WORK=$(mktemp -d /tmp/tern-bench.XXXXXX)
TERN_PID=
KNOT_PID=

stop_pid() {
	local pid="$1" _
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	stop_pid "$TERN_PID"
	stop_pid "$KNOT_PID"
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# Two ports free for UDP and TCP on 127.0.0.1.
read -r TERN_PORT KNOT_PORT < <(python3 - <<'EOF'
import socket
ports = []
while len(ports) < 2:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
        if p not in ports:
            ports.append(p)
    except OSError:
        pass
    u.close(); t.close()
print(*ports)
EOF
)

# The zone: apex records, RECORDS hosts with A+AAAA, a wildcard, a CNAME and MX.
# The query file: mostly positive A/AAAA, some MX/CNAME/wildcard, 10% NXDOMAIN.
python3 - "$WORK" "$RECORDS" <<'EOF'
import random, sys
work, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
z = ["$ORIGIN bench.test.", "$TTL 300",
     "@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60",
     "@ IN NS ns1", "ns1 IN A 192.0.2.1", "@ IN MX 10 mail", "mail IN A 192.0.2.25",
     "alias IN CNAME host1", "*.wild IN A 192.0.2.99"]
for i in range(n):
    z.append(f"host{i} IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    z.append(f"host{i} IN AAAA 2001:db8::{i:x}")
open(f"{work}/bench.test.zone", "w").write("\n".join(z) + "\n")
q = []
for _ in range(20000):
    r = rnd.random()
    if r < 0.6:
        q.append(f"host{rnd.randrange(n)}.bench.test A")
    elif r < 0.8:
        q.append(f"host{rnd.randrange(n)}.bench.test AAAA")
    elif r < 0.85:
        q.append("bench.test MX")
    elif r < 0.9:
        q.append(f"x{rnd.randrange(1000)}.wild.bench.test A")
    else:
        q.append(f"missing{rnd.randrange(100000)}.bench.test A")
open(f"{work}/queries.txt", "w").write("\n".join(q) + "\n")
EOF

mkdir -p "$WORK/ternd" "$WORK/knot/storage"
cp "$WORK/bench.test.zone" "$WORK/ternd/"
cp "$WORK/bench.test.zone" "$WORK/knot/"
cat >"$WORK/ternd/ternd.yaml" <<EOF
workers: 2
servers:
  - zones: [bench.test]
    listen: ["127.0.0.1:$TERN_PORT"]
    plugins:
      file: {path: bench.test.zone}
EOF
cat >"$WORK/knot/knot.conf" <<EOF
server:
    rundir: "$WORK/knot"
    listen: 127.0.0.1@$KNOT_PORT
    udp-workers: 2
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "$WORK/knot/storage"
template:
  - id: default
    storage: "$WORK/knot"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: bench.test
EOF

wait_answer() {
	local port="$1" name="$2" _
	for _ in $(seq 1 100); do
		if kdig @127.0.0.1 -p "$port" +time=1 +retry=0 +norec bench.test SOA 2>/dev/null \
			| grep -q 'status: NOERROR'; then
			return 0
		fi
		sleep 0.1
	done
	echo "compare.sh: $name did not answer on port $port; its log:" >&2
	cat "$WORK/$name.log" >&2 || true
	exit 1
}

"$TERND" --config "$WORK/ternd/ternd.yaml" 2>"$WORK/ternd.log" >/dev/null &
TERN_PID=$!
"$KNOTD" -c "$WORK/knot/knot.conf" 2>"$WORK/knotd.log" >/dev/null &
KNOT_PID=$!
wait_answer "$TERN_PORT" ternd
wait_answer "$KNOT_PORT" knotd

# run_dnsperf NAME PORT -> writes $WORK/NAME.perf
run_dnsperf() {
	dnsperf -s 127.0.0.1 -p "$2" -d "$WORK/queries.txt" -l "$DURATION" \
		-c "$CLIENTS" -T "$THREADS" -q 500 -t 2 >"$WORK/$1.perf" 2>&1 || {
		echo "compare.sh: dnsperf against $1 failed:" >&2
		cat "$WORK/$1.perf" >&2
		exit 1
	}
}

echo "Running dnsperf for ${DURATION}s against each server (clients $CLIENTS, threads $THREADS)..." >&2
run_dnsperf knotd "$KNOT_PORT"
run_dnsperf ternd "$TERN_PORT"

DATE=$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$ROOT/bench/results"
OUT_JSON="$ROOT/bench/results/compare-$DATE.json"

python3 - "$WORK" "$OUT_JSON" "$DURATION" "$CLIENTS" "$THREADS" "$("$TERND" --version 2>&1 | head -1)" \
	"$("$KNOTD" --version 2>&1 | head -1)" <<'EOF'
import json, re, sys, platform, os
work, out, duration, clients, threads, tern_ver, knot_ver = sys.argv[1:8]

def parse(name):
    text = open(f"{work}/{name}.perf").read()
    def num(pat, cast=float):
        m = re.search(pat, text)
        if not m:
            sys.exit(f"compare.sh: cannot find {pat!r} in dnsperf output for {name}:\n{text}")
        return cast(m.group(1))
    return {
        "qps": num(r"Queries per second:\s+([\d.]+)"),
        "avg_latency_ms": num(r"Average Latency \(s\):\s+([\d.]+)") * 1000.0,
        "sent": num(r"Queries sent:\s+(\d+)", int),
        "completed": num(r"Queries completed:\s+(\d+)", int),
        "lost": num(r"Queries lost:\s+(\d+)", int),
    }

res = {"ternd": parse("ternd"), "knotd": parse("knotd")}
ratio = res["ternd"]["qps"] / res["knotd"]["qps"] if res["knotd"]["qps"] else 0.0
print("| server | QPS | avg latency (ms) | sent | lost |")
print("| --- | ---: | ---: | ---: | ---: |")
for name in ("ternd", "knotd"):
    r = res[name]
    print(f"| {name} | {r['qps']:.0f} | {r['avg_latency_ms']:.3f} | {r['sent']} | {r['lost']} |")
print()
print(f"Tern/knotd QPS ratio: {ratio:.2f}")
doc = {"date": os.path.basename(out)[len("compare-"):-len(".json")],
       "duration_s": int(duration), "clients": int(clients), "threads": int(threads),
       "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
       "versions": {"ternd": tern_ver, "knotd": knot_ver},
       "results": res, "ratio_qps": round(ratio, 4)}
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
print(f"\nwrote {out}")
EOF
