#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The one benchmark command: ternd against its peers, same load, same cores, one run.

Starts everything itself on 127.0.0.1 in a temp dir (fake API server, ternd, knotd, nsd,
unbound, kresd, dnsmasq, pdns_recursor, an upstream knotd, the reflector) and stops each
process by PID at the end, also on errors and Ctrl-C. Four workloads: (a) cluster names
(Tern's kubernetes plugin on tools/fake-apiserver; knotd and nsd on the same records as zone
files), (b) the ndots:5 search-path mix (three NXDOMAIN expansions, then the real name),
(c) cache hits for 10k external names behind a warm forwarding cache, (d) cache misses
(unique names), the caches forwarding to a local knotd. Every server runs on CPU 0 with one
worker (the per-core figure; plus ternd with 2 workers, unpinned), the generators on CPU 1.
Per server and workload: QPS with dnsperf and bench/gen's tern-loadgen (closed loop), CPU
us/query from /proc/PID/stat and its ratio to the reflector's, lost queries, latency at a
fixed offered load (open loop), peak RSS, and for ternd user-space instructions/query from
callgrind (measured warm: one pass of the workload's query file first). Medians of
interleaved repetitions. Then a scaling run (ternd with N workers and the reflector with N
threads, unpinned, N = 1, 2, 4, ... up to the core count), the control plane from
bench/cluster.py (sync time and RSS for 10k and 100k services, bytes per object,
API-event-to-answer latency at 100 and 1000 events/s, dnsperf loss during a republish
storm), and issue 5's targets next to the measured figures (printed, never asserted).
Prints Markdown tables on stdout and writes bench/results/bench-<UTC date>.json.
Usage: bench/run.py [--quick] [--build-dir build] [--only abcdsp] [--reps N] [--seconds S]
[--check]
"""

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import cluster  # noqa: E402  (bench/cluster.py: processes, fake API, zone from the API)
from cluster import BenchError, Procs, ask, free_port, tail, dashed  # noqa: E402
from cluster import parse_response  # noqa: E402

SERVER_CPU = "0"
GEN_CPU = "1"
FIXED_RATE = 20000          # queries/s offered for the latency figures
SETTLE_S = 1.0              # idle seconds before each latency run
CHURN_RATES = (0, 100, 1000)   # API events/s for workload (a) under churn
SEED = 11
ZONE = cluster.ZONE
EXT_ZONE = "example.com"    # the upstream's zone of external names (cache hits, ndots)
MISS_ZONE = "miss.example.net"   # wildcard zone at the upstream (cache misses)
UP_TTL = 3600


def log(msg):
    print(f"[run.py {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ask_rd(port, name, qtype, timeout):
    """One query with RD set (recursive servers answer RD=0 from their cache only)."""
    q = bytearray(cluster.make_query(random.randrange(65536), name, qtype))
    q[2] |= 0x01
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(bytes(q), ("127.0.0.1", port))
        while True:
            r = parse_response(s.recvfrom(65535)[0])
            if r[0] == (q[0] << 8 | q[1]):
                return r


# ---------------------------------------------------------------- process accounting

def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def tree(pid):
    """@pid and its descendants (nsd and knot-resolver fork helpers)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                kids.setdefault(int(_stat(d)[1]), []).append(int(d))
            except (OSError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu(pid):
    """User + system CPU seconds of @pid's process tree."""
    total = 0
    for p in tree(pid):
        try:
            f = _stat(p)
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def tree_hwm(pid):
    """Sum of VmHWM over @pid's tree in bytes (shared pages counted in each process)."""
    total = 0
    for p in tree(pid):
        try:
            total += cluster.proc_status(p).get("VmHWM", 0)
        except OSError:
            pass
    return total


def udp_rcvbuf_errors():
    """The kernel's count of UDP datagrams dropped for a full socket receive buffer."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])
    except (OSError, IndexError, ValueError):
        return None


# ---------------------------------------------------------------- servers

class Server:
    """One DNS server (or the reflector) started by the benchmark."""

    def __init__(self, bench, name, argv, port, pin=True, probe=None, label=None):
        self.bench, self.name, self.argv, self.port = bench, name, argv, port
        self.pin, self.probe = pin, probe
        self.label = label or name
        self.proc = None
        self.logfile = os.path.join(bench.work, f"{name}.log")

    def start(self, timeout=None):
        return self.launch().wait_ready(timeout)

    def launch(self):
        argv = (["taskset", "-c", SERVER_CPU] if self.pin else []) + self.argv
        with open(self.logfile, "w") as fe:
            self.proc = self.bench.procs.start(self.name, argv, fe, subprocess.STDOUT)
        self.launched = time.monotonic()
        return self

    def wait_ready(self, timeout=None):
        """Until the probe query gets an accepted answer, @timeout from the launch."""
        timeout = timeout or (120.0 if self.name.startswith("ternd") else 30.0)
        deadline = self.launched + timeout
        name, qtype = self.probe[:2]
        accept = self.probe[2] if len(self.probe) > 2 else ("NOERROR", "NXDOMAIN")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited ({self.proc.returncode}); log:\n"
                                 f"{tail(self.logfile)}")
            try:
                if ask_rd(self.port, name, qtype, 0.5)[1] in accept:
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not answer {name} {qtype} on port {self.port}; "
                         f"log:\n{tail(self.logfile)}")

    def stop(self):
        if self.proc:
            self.bench.procs.stop_one(self.proc)
            self.proc = None


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


class Configs:
    """Config files of every server kind, each in its own directory under the work dir."""

    def __init__(self, bench):
        self.b = bench

    def dir(self, name):
        d = os.path.join(self.b.work, name)
        os.makedirs(d, exist_ok=True)
        return d

    def knotd(self, name, port, zones, workers=1):
        d = self.dir(name)
        os.makedirs(os.path.join(d, "storage"), exist_ok=True)
        for z, path in zones.items():
            shutil.copy(path, os.path.join(d, f"{z}.zone"))
        conf = write(os.path.join(d, "knot.conf"), f"""server:
    rundir: "{d}"
    listen: 127.0.0.1@{port}
    udp-workers: {workers}
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "{d}/storage"
template:
  - id: default
    storage: "{d}"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: none
zone:
""" + "".join(f"  - domain: {z}\n" for z in zones))
        return [self.b.bin("knotd"), "-c", conf]

    def nsd(self, name, port, zones):
        d = self.dir(name)
        for z, path in zones.items():
            shutil.copy(path, os.path.join(d, f"{z}.zone"))
        conf = write(os.path.join(d, "nsd.conf"), f"""server:
    ip-address: 127.0.0.1@{port}
    server-count: 1
    reuseport: no
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    pidfile: "{d}/nsd.pid"
    logfile: "{d}/nsd.log"
    verbosity: 0
    tcp-count: 10
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
""" + "".join(f"zone:\n    name: {z}\n    zonefile: \"{z}.zone\"\n" for z in zones))
        return [self.b.bin("nsd"), "-d", "-c", conf]

    def ternd(self, name, port, plugins_yaml, workers=1, zones='["."]', top=""):
        d = self.dir(name)
        conf = write(os.path.join(d, "ternd.yaml"), f"""workers: {workers}
{top}servers:
  - zones: {zones}
    listen: ["127.0.0.1:{port}"]
    plugins:
{plugins_yaml}""")
        return [self.b.ternd, "--config", conf]

    def tern_cache_plugins(self):
        up = self.b.upstream_port
        return f"""      cache:
        success: {{capacity: 100000}}
        denial: {{capacity: 100000}}
      forward:
        to: ["127.0.0.1:{up}"]
"""

    def tern_cluster_plugins(self, api_url):
        """docs/examples/cluster-dns.yaml on loopback: kubernetes, forward, cache."""
        up = self.b.upstream_port
        return f"""      errors: {{}}
      kubernetes:
        endpoint: "{api_url}"
        zones: ["{ZONE}.", "in-addr.arpa.", "ip6.arpa."]
        fallthrough: ["in-addr.arpa.", "ip6.arpa."]
        ttl: 30
        startup_timeout: 120s
      forward:
        to: ["127.0.0.1:{up}"]
      cache:
        ttl: 30
        success: {{capacity: 100000}}
        disable: {{ success: ["{ZONE}."], denial: ["{ZONE}."] }}
"""

    def unbound(self, name, port):
        d = self.dir(name)
        conf = write(os.path.join(d, "unbound.conf"), f"""server:
    interface: 127.0.0.1@{port}
    port: {port}
    num-threads: 1
    do-ip6: no
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    module-config: "iterator"
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    msg-cache-size: 64m
    rrset-cache-size: 128m
    qname-minimisation: no
remote-control:
    control-enable: no
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@{self.b.upstream_port}
""")
        return [self.b.bin("unbound"), "-d", "-c", conf]

    def kresd(self, name, port):
        d = self.dir(name)
        conf = write(os.path.join(d, "kresd.conf"), f"""-- Forwarding cache to the local upstream, no DNSSEC (the upstream zones are unsigned).
net.ipv6 = false
net.listen('127.0.0.1', {port}, {{ kind = 'dns' }})
modules.unload('priming')
modules.unload('detect_time_skew')
modules.unload('detect_time_jump')
trust_anchors.remove('.')
cache.open(200 * MB, 'lmdb://{d}/cache')
policy.add(policy.all(policy.FORWARD('127.0.0.1@{self.b.upstream_port}')))
""")
        return [self.b.bin("kresd"), "-n", "-q", "-c", conf, d]

    def dnsmasq(self, name, port):
        self.dir(name)
        return [self.b.bin("dnsmasq"), "-k", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", f"--server=127.0.0.1#{self.b.upstream_port}",
                "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={port}",
                "--cache-size=10000", "--dns-forward-max=10000", "--pid-file=", "--user=root"]

    def pdns_recursor(self, name, port):
        d = self.dir(name)
        # Root hints pointing at loopback: no query ever leaves the machine.
        hints = write(os.path.join(d, "root.hints"),
                      ". 3600000 NS a.root.invalid.\na.root.invalid. 3600000 A 127.0.0.1\n")
        write(os.path.join(d, "recursor.conf"), f"""local-address=127.0.0.1
local-port={port}
forward-zones=.=127.0.0.1:{self.b.upstream_port}
hint-file={hints}
threads=1
pdns-distributes-queries=no
dnssec=off
socket-dir={d}
daemon=no
write-pid=no
quiet=yes
disable-syslog=yes
loglevel=3
dont-query=
allow-from=127.0.0.0/8
max-cache-entries=1000000
max-packetcache-entries=500000
""")
        return [self.b.bin("pdns_recursor"), f"--config-dir={d}"]


# ---------------------------------------------------------------- zones and query files

def cluster_zones(bench, fake):
    """cluster.local (cluster.py's generator) plus in-addr.arpa PTRs, from the API's lists.
    Returns ({zone: path}, names)."""
    shim = type("Shim", (), {"work": bench.work})()
    names, records = cluster.Bench.build_zone(shim, fake)
    svcs = fake.get_json("/api/v1/services")["items"]
    slices = fake.get_json("/apis/discovery.k8s.io/v1/endpointslices")["items"]
    ptr = {}
    for s in svcs:
        md, spec = s["metadata"], s["spec"]
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            if ip and ip != "None" and ":" not in ip:
                ptr.setdefault(ip, set()).add(f"{md['name']}.{md['namespace']}.svc.{ZONE}.")
    for sl in slices:
        md = sl["metadata"]
        svc = (md.get("labels") or {}).get("kubernetes.io/service-name")
        if not svc:
            continue
        for e in sl.get("endpoints") or []:
            if (e.get("conditions") or {}).get("ready", True) is False:
                continue
            for a in e.get("addresses") or []:
                if ":" not in a:
                    host = e.get("hostname") or dashed(a)
                    ptr.setdefault(a, set()).add(f"{host}.{svc}.{md['namespace']}.svc.{ZONE}.")
    z = ["$ORIGIN in-addr.arpa.", f"$TTL {cluster.TTL}",
         f"@ IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 {cluster.TTL}",
         f"@ IN NS ns.dns.{ZONE}."]
    for ip, targets in sorted(ptr.items()):
        rev = ".".join(reversed(ip.split("."))) + ".in-addr.arpa."
        z.extend(f"{rev} IN PTR {t}" for t in sorted(targets))
    rpath = write(os.path.join(bench.work, "in-addr.arpa.zone"), "\n".join(z) + "\n")
    # The SOA in cluster.py's zone names ns.dns without a dot: relative, fine for both.
    names["ptr"] = [".".join(reversed(ip.split("."))) + ".in-addr.arpa" for ip in sorted(ptr)]
    names["records"] = records + sum(len(t) for t in ptr.values())
    return {ZONE: os.path.join(bench.work, "knot", f"{ZONE}.zone"), "in-addr.arpa": rpath}, names


def ext_zone(bench, n):
    z = [f"$ORIGIN {EXT_ZONE}.", f"$TTL {UP_TTL}",
         f"@ IN SOA ns hostmaster 1 7200 1800 86400 {UP_TTL}", "@ IN NS ns",
         "ns IN A 192.0.2.53"]
    z.extend(f"www-{i} IN A 198.18.{i >> 8 & 255}.{i & 255}" for i in range(n))
    return write(os.path.join(bench.work, f"{EXT_ZONE}.zone"), "\n".join(z) + "\n")


def miss_zone(bench):
    z = [f"$ORIGIN {MISS_ZONE}.", f"$TTL {UP_TTL}",
         f"@ IN SOA ns hostmaster 1 7200 1800 86400 {UP_TTL}", "@ IN NS ns",
         "ns IN A 192.0.2.53", "* IN A 198.19.0.1"]
    return write(os.path.join(bench.work, f"{MISS_ZONE}.zone"), "\n".join(z) + "\n")


def write_queries(bench, name, lines):
    return write(os.path.join(bench.work, f"q-{name}.txt"), "\n".join(lines) + "\n")


def cluster_queries(names, n):
    """70 % ClusterIP A, 10 % headless A, 10 % SRV, 10 % PTR (issue 5's mix)."""
    return cluster.query_mix(names, n, lambda rnd: f"{rnd.choice(names['ptr'])} PTR")


def ndots_queries(namespaces, n_ext, n):
    """What a pod in namespace NS asks for an external name with ndots:5: the three
    search-path expansions (NXDOMAIN) and then the name itself."""
    rnd = random.Random(SEED + 1)
    q = []
    for _ in range(n // 4):
        ns, name = rnd.choice(namespaces), f"www-{rnd.randrange(n_ext)}.{EXT_ZONE}"
        q += [f"{name}.{ns}.svc.{ZONE} A", f"{name}.svc.{ZONE} A", f"{name}.{ZONE} A",
              f"{name} A"]
    return q


def hit_queries(n_ext, n):
    rnd = random.Random(SEED + 2)
    return [f"www-{rnd.randrange(n_ext)}.{EXT_ZONE} A" for _ in range(n)]


# ---------------------------------------------------------------- the benchmark

class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.build = os.path.abspath(args.build_dir)
        self.ternd = os.path.join(self.build, "daemon", "ternd")
        self.loadgen = os.path.join(self.build, "bench", "gen", "tern-loadgen")
        self.reflector = os.path.join(self.build, "bench", "gen", "tern-reflector")
        self.procs = Procs()
        self.ports = set()
        self.work = tempfile.mkdtemp(prefix="tern-bench.")
        self.cfg = Configs(self)
        self.reps = args.reps or (1 if self.quick else 3)
        self.seconds = args.seconds or (1.0 if self.quick else 2.0)
        self.services = 2000 if self.quick else 10000
        self.n_ext = 10000
        self.upstream_port = None
        # A lost query holds the end of a run for the whole timeout: --quick waits less.
        self.lg_timeout = ["-t", "500"] if self.quick else []
        self.res = {"workloads": {}, "errors": []}

    # helpers -----------------------------------------------------------------------
    def bin(self, name):
        p = shutil.which(name) or f"/usr/sbin/{name}"
        if not os.access(p, os.X_OK):
            raise BenchError(f"{name} is not installed (tools/deps.sh installs it)")
        return p

    def port(self):
        return free_port(self.ports)

    def loadgen_argv(self, port, qfile, extra, pin=GEN_CPU):
        return ((["taskset", "-c", pin] if pin else []) +
                [self.loadgen, "-p", str(port), "-d", qfile] + extra)

    def loadgen_run(self, port, qfile, extra, timeout=60, pin=GEN_CPU):
        argv = self.loadgen_argv(port, qfile, extra, pin)
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise BenchError(f"tern-loadgen {' '.join(extra)} failed ({out.returncode}): "
                             f"{out.stderr.strip()}")
        return json.loads(out.stdout)

    def loadgen_many(self, port, qfile, extra, k, timeout=60):
        """@k unpinned tern-loadgen processes at once (one generator thread saturates
        before many server threads do); their counts summed, QPS summed."""
        if k <= 1:
            return self.loadgen_run(port, qfile, extra, timeout, pin=None)
        procs = []
        try:
            for _ in range(k):
                procs.append(subprocess.Popen(self.loadgen_argv(port, qfile, extra, None),
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True))
            outs = []
            for p in procs:
                so, se = p.communicate(timeout=timeout)
                if p.returncode != 0:
                    raise BenchError(f"tern-loadgen {' '.join(extra)} failed "
                                     f"({p.returncode}): {se.strip()}")
                outs.append(json.loads(so))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        tot = {k2: sum(o[k2] for o in outs) for k2 in ("sent", "received", "lost", "qps")}
        rc = {}
        for o in outs:
            for k2, v in o["rcodes"].items():
                rc[k2] = rc.get(k2, 0) + v
        return {**tot, "rcodes": rc, "generators": k, "each": outs}

    def dnsperf_run(self, port, qfile, seconds):
        argv = ["taskset", "-c", GEN_CPU, "dnsperf", "-s", "127.0.0.1", "-p", str(port),
                "-d", qfile, "-l", str(seconds), "-c", "4", "-T", "1", "-q", "500",
                "-t", "1" if self.quick else "2"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        text = out.stdout + out.stderr
        if out.returncode != 0:
            raise BenchError(f"dnsperf failed ({out.returncode}):\n{text[-2000:]}")

        def num(pat, cast=float):
            m = re.search(pat, text)
            if not m:
                raise BenchError(f"no {pat!r} in dnsperf output:\n{text[-2000:]}")
            return cast(m.group(1))
        return {"qps": num(r"Queries per second:\s+([\d.]+)"),
                "sent": num(r"Queries sent:\s+(\d+)", int),
                "lost": num(r"Queries lost:\s+(\d+)", int),
                "avg_latency_ms": num(r"Average Latency \(s\):\s+([\d.]+)") * 1000.0}

    # one measurement -----------------------------------------------------------------
    def measure(self, srv, wl):
        """Closed loop (max QPS, CPU/query), open loop at FIXED_RATE (latency), dnsperf."""
        secs = self.seconds
        extra_u = (["-U"] if wl["unique"] else []) + self.lg_timeout
        pid = srv.proc.pid
        c0, drops0 = tree_cpu(pid), udp_rcvbuf_errors()
        closed = self.loadgen_run(srv.port, wl["qfile"],
                                  ["-l", str(secs), "-w", "256"] + extra_u)
        c1, drops1 = tree_cpu(pid), udp_rcvbuf_errors()
        closed["rcvbuf_errors"] = (drops1 - drops0 if drops0 is not None and drops1 is not None
                                   else None)
        # The latency run starts on a settled machine: right after a closed-loop burst
        # even the reflector's p99 is several times its usual value on a shared VM.
        time.sleep(SETTLE_S / 5 if self.quick else SETTLE_S)
        opened = self.loadgen_run(srv.port, wl["qfile"],
                                  ["-l", str(secs / 2 if self.quick else secs),
                                   "-r", str(FIXED_RATE)] + extra_u)
        if wl["unique"]:
            qf = self.unique_file(wl, srv.name, int(secs * 200000))
        else:
            qf = wl["qfile"]
        perf = self.dnsperf_run(srv.port, qf, max(1, int(round(secs))))
        if wl["unique"]:
            os.unlink(qf)
        cpu_us = (c1 - c0) * 1e6 / closed["received"] if closed["received"] else None
        return {"closed": closed, "open": opened, "dnsperf": perf,
                "cpu_s": round(c1 - c0, 3), "cpu_us_per_query": cpu_us}

    def unique_file(self, wl, tag, n):
        self.uniq = getattr(self, "uniq", 0) + 1
        lines = [f"d{self.uniq}-{i}.{tag.replace(' ', '')}.{MISS_ZONE} A" for i in range(n)]
        return write_queries(self, f"uniq-{self.uniq}", lines)

    def callgrind(self, wl, who, argv, port, probe, warm, count):
        """User-space instructions per query of @argv (one worker, one process) on @count
        queries of the workload's file, one query in flight (deterministic batching), and
        the functions that spend the most of them. @warm: the passes sent before the
        counters are reset, [(query file, queries)] (a cache's names; for ternd also one
        pass over the workload's query file, so that what is measured is the steady state
        dnsperf sees, per-worker tables of hot answers filled)."""
        if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
            return {"error": "valgrind not installed"}
        d = self.cfg.dir(f"callgrind-{wl['key']}-{who}")
        vg = ["valgrind", "--tool=callgrind", "--compress-strings=no", "--compress-pos=no",
              f"--callgrind-out-file={d}/cg.out.%p"]
        srv = Server(self, f"callgrind-{wl['key']}-{who}", vg + argv, port, pin=True,
                     probe=probe)
        try:
            srv.start(timeout=180)
            extra_u = ["-U"] if wl["unique"] else []
            for wfile, n in warm:
                t0 = time.monotonic()
                w = self.loadgen_run(port, wfile, ["-n", str(n), "-w", "16", "-l", "120"],
                                     timeout=300)
                log(f"callgrind {who}: warm pass of {n} queries ({os.path.basename(wfile)}) "
                    f"in {time.monotonic() - t0:.1f} s, {w['lost']} lost")
            # A dump resets the counters: the next one holds only the measured queries.
            subprocess.run(["callgrind_control", "-d", str(srv.proc.pid)],
                           capture_output=True, timeout=60, check=True)
            lg = self.loadgen_run(port, wl["qfile"], ["-n", str(count), "-w", "1", "-c", "1",
                                                       "-t", "5000", "-l", "300"] + extra_u,
                                  timeout=400)
            before = set(os.listdir(d))
            subprocess.run(["callgrind_control", "-d", str(srv.proc.pid)],
                           capture_output=True, timeout=60, check=True)
            new = sorted(set(os.listdir(d)) - before)
            ir, dump = None, None
            for fn in new:
                with open(os.path.join(d, fn)) as f:
                    for line in f:
                        if line.startswith(("summary:", "totals:")):
                            ir, dump = int(line.split()[1]), os.path.join(d, fn)
                            break
            if ir is None:
                return {"error": f"no callgrind dump (files {new})"}
            return {"queries": count, "answered": lg["received"], "ir": ir,
                    "warm_queries": sum(n for _, n in warm),
                    "ir_per_query": round(ir / count), "top": top_functions(dump, count)}
        except (BenchError, subprocess.SubprocessError, OSError, ValueError) as e:
            return {"error": str(e)[:500]}
        finally:
            srv.stop()

    # workloads ---------------------------------------------------------------------
    def start_upstream(self):
        self.upstream_port = self.port()
        argv = self.cfg.knotd("upstream", self.upstream_port,
                              {EXT_ZONE: ext_zone(self, self.n_ext), MISS_ZONE: miss_zone(self)})
        up = Server(self, "upstream-knotd", ["taskset", "-c", GEN_CPU] + argv,
                    self.upstream_port, pin=False, probe=(f"www-1.{EXT_ZONE}", "A"))
        return up.start()

    def run_workload(self, wl, servers, check=None):
        """Start @servers (all launched at once, then each waited for), warm them, call
        @check(running servers by label) (its result goes to "_diffs"), measure
        interleaved repetitions, stop them."""
        key = wl["key"]
        log(f"workload {key}: {wl['title']}")
        started, out = [], {}
        launched = []
        for s in servers:
            try:
                launched.append(s.launch())
            except (BenchError, OSError) as e:
                out[s.label] = {"error": str(e)[:2000]}
                self.res["errors"].append(f"{key}/{s.label}: start: {str(e)[:300]}")
        for s in launched:
            try:
                s.wait_ready()
                if wl.get("warm"):
                    self.loadgen_run(s.port, wl["warm"],
                                     ["-n", str(wl["warm_n"]), "-w", "64", "-l", "20"])
                started.append(s)
                out[s.label] = {"runs": []}
            except (BenchError, subprocess.SubprocessError, OSError) as e:
                log(f"{key}: {s.label} failed to start: {str(e)[:300]}")
                out[s.label] = {"error": str(e)[:2000]}
                self.res["errors"].append(f"{key}/{s.label}: start: {str(e)[:300]}")
                s.stop()
        if check is not None:
            out["_diffs"] = check({s.label: s for s in started})
        for rep in range(self.reps):
            for s in started:
                if "error" in out[s.label]:
                    continue
                try:
                    r = self.measure(s, wl)
                    out[s.label]["runs"].append(r)
                    log(f"{key} rep {rep + 1}/{self.reps} {s.label}: "
                        f"loadgen {r['closed']['qps']:.0f} q/s, dnsperf "
                        f"{r['dnsperf']['qps']:.0f} q/s, "
                        f"{(r['cpu_us_per_query'] or 0):.2f} us/q, "
                        f"p99@{FIXED_RATE} {r['open']['latency_us']['p99']:.0f} us")
                except (BenchError, subprocess.SubprocessError, OSError, ValueError) as e:
                    log(f"{key}: {s.label} failed: {str(e)[:300]}")
                    out[s.label]["error"] = str(e)[:2000]
                    self.res["errors"].append(f"{key}/{s.label}: {str(e)[:300]}")
        for s in started:
            if s.proc and s.proc.poll() is None:
                out[s.label]["peak_rss_bytes"] = tree_hwm(s.proc.pid)
            s.stop()
        for label, r in out.items():
            if not label.startswith("_") and r.get("runs"):
                r["median"] = medians(r["runs"])
        return out

    def reflector_server(self):
        p = self.port()
        return Server(self, "reflector", [self.reflector, "-p", str(p)], p,
                      probe=("probe.invalid", "A"), label="reflector")

    def ternd_servers(self, tag, plugins, zones='["."]', probe=None):
        out = []
        for workers, pin in ((1, True), (2, False)):
            if self.quick and workers == 2:
                continue
            p = self.port()
            name = f"ternd-{tag}-{workers}w"
            label = "ternd" if workers == 1 else "ternd 2w unpinned"
            out.append(Server(self, name, self.cfg.ternd(name, p, plugins, workers, zones), p,
                              pin=pin, probe=probe, label=label))
        return out

    def workload_cluster(self, which, scaling=False):
        fake = cluster.Fake(self, "cluster", [
            "--generate", f"{self.services}:10", "--gen-namespaces",
            str(max(1, self.services // 100)), "--gen-headless", "0.1"]).start()
        log(f"fake API with {self.services} services at {fake.url}")
        zones, names = cluster_zones(self, fake)
        nq = 20000 if self.quick else 50000
        ns = sorted(names["ns"])
        # A service's A record: answered only once the cluster is synced.
        probe = (f"{names['clusterip'][0]}.{ZONE}", "A", ("NOERROR",))
        results = {}
        for key in which:
            if key == "a":
                lines = cluster_queries(names, nq)
                title = (f"cluster names ({self.services} services, {len(ns)} namespaces, "
                         "10% headless x 10 endpoints; 70% A, 10% headless A, 10% SRV, "
                         "10% PTR)")
                peer_zones = zones
            else:
                lines = ndots_queries(ns, self.n_ext, nq)
                title = ("ndots:5 search path for external names (3 NXDOMAIN expansions, then "
                         "the name; ternd: kubernetes + cache + forward, warm; knotd/nsd: "
                         f"authoritative for {EXT_ZONE} too)")
                peer_zones = dict(zones)
                peer_zones[EXT_ZONE] = os.path.join(self.work, f"{EXT_ZONE}.zone")
            qfile = write_queries(self, key, lines)
            wl = {"key": key, "title": title, "qfile": qfile, "unique": False,
                  "warm": qfile if key == "b" else None, "warm_n": len(lines)}
            tern = self.ternd_servers(key, self.cfg.tern_cluster_plugins(fake.url), probe=probe)
            peers = []
            for kind in ("knotd", "nsd"):
                p = self.port()
                argv = (self.cfg.knotd(f"{kind}-{key}", p, peer_zones) if kind == "knotd"
                        else self.cfg.nsd(f"{kind}-{key}", p, peer_zones))
                peers.append(Server(self, f"{kind}-{key}", argv, p, probe=probe, label=kind))
            refl = self.reflector_server()
            servers = [refl] + tern + peers
            check = ((lambda running, lines=lines: self.compare(lines[:300], running))
                     if key == "a" else None)
            res = self.run_workload(wl, servers, check)
            cg_port = self.port()
            cg_argv = self.cfg.ternd(f"cg-{key}", cg_port,
                                     self.cfg.tern_cluster_plugins(fake.url))
            cg_n = 1000 if self.quick else 10000
            one_pass = [(qfile, len(lines))]     # ternd is measured warm (see callgrind())
            res["_callgrind"] = {"ternd": self.callgrind(wl, "ternd", cg_argv, cg_port, probe,
                                                         one_pass, cg_n)}
            if key == "a":
                kp = self.port()
                only_k8s = f"""      kubernetes:
        endpoint: "{fake.url}"
        zones: ["{ZONE}.", "in-addr.arpa.", "ip6.arpa."]
        ttl: 30
        startup_timeout: 120s
"""
                res["_callgrind"]["ternd (kubernetes only)"] = self.callgrind(
                    wl, "ternd-k8s", self.cfg.ternd("cg-k8s", kp, only_k8s), kp, probe,
                    one_pass, cg_n)
            if key == "a":
                res["_churn"] = self.churn(fake, qfile, probe)
            if not self.quick and key == "a":
                kp = self.port()
                res["_callgrind"]["knotd"] = self.callgrind(
                    wl, "knotd", self.cfg.knotd("cg-knotd", kp, peer_zones), kp, probe, [],
                    cg_n)
            results[key] = {"title": title, "servers": res,
                            "query_file_lines": len(lines), "zone_records": names["records"]}
        if scaling:
            qfile = write_queries(self, "scaling", cluster_queries(names, nq))
            try:
                self.res["scaling"] = self.scaling(
                    qfile, self.cfg.tern_cluster_plugins(fake.url), probe)
            except (BenchError, subprocess.SubprocessError, OSError, ValueError) as e:
                self.res["scaling"] = {"error": str(e)[:2000]}
                self.res["errors"].append(f"scaling: {str(e)[:300]}")
        fake.stop()
        return results

    def churn(self, fake, qfile, probe):
        """Workload (a) while the cluster changes: ternd (one worker, pinned, metrics on)
        under tern-loadgen's closed loop while API events arrive at each rate of
        CHURN_RATES (cluster.Applier: endpoint moves, Service creates and deletes, each
        published in a new snapshot): QPS, ternd's CPU per query (all its threads: the
        snapshot builds count) and the share of answers replayed from the hot answers."""
        mport, p = self.port(), self.port()
        argv = self.cfg.ternd("ternd-churn", p, self.cfg.tern_cluster_plugins(fake.url),
                              top=f'metrics: {{ listen: "127.0.0.1:{mport}" }}\n')
        srv = Server(self, "ternd-churn", argv, p, probe=probe, label="ternd")
        rows = []
        try:
            srv.start()
            pid = srv.proc.pid
            changes = cluster.Changes(fake)
            self.loadgen_run(p, qfile, ["-l", "1", "-w", "256"])   # warm
            for rate in CHURN_RATES:
                before = self.hot_hits(mport)
                c0 = tree_cpu(pid)
                ap = (cluster.Applier(changes, rate, self.seconds + 1,
                                      confirm_on_apply=True).start() if rate else None)
                try:
                    closed = self.loadgen_run(p, qfile,
                                              ["-l", str(self.seconds), "-w", "256"])
                finally:
                    if ap:
                        ap.stop.set()
                        ap.master.join(30)
                c1 = tree_cpu(pid)
                hits = self.hot_hits(mport) - before
                got = closed["received"]
                rows.append({"events_per_s": rate, "events": ap.applied if ap else 0,
                             "qps": closed["qps"], "lost": closed["lost"],
                             "cpu_us_per_query": (c1 - c0) * 1e6 / got if got else None,
                             "hot_share": hits / got if got else None})
                log(f"churn {rate}/s: {closed['qps']:.0f} q/s, "
                    f"{rows[-1]['cpu_us_per_query'] or 0:.2f} us/q, "
                    f"{100 * (rows[-1]['hot_share'] or 0):.1f}% replayed")
            return {"rows": rows}
        except (BenchError, subprocess.SubprocessError, OSError, ValueError) as e:
            self.res["errors"].append(f"churn: {str(e)[:300]}")
            return {"rows": rows, "error": str(e)[:2000]}
        finally:
            srv.stop()

    def hot_hits(self, mport):
        st, body = cluster.http_get(f"http://127.0.0.1:{mport}/metrics")
        if st != 200:
            raise BenchError(f"ternd /metrics: {st}")
        return cluster.hot_hits(cluster.parse_metrics(body.decode("utf-8", "replace")))

    def scaling(self, qfile, plugins, probe):
        """ternd with N workers and the reflector with N threads, N = 1, 2, 4, ... and the
        core count, all unpinned (at N = cores no core is left to pin anything apart), on
        workload (a)'s cluster names: closed-loop QPS and CPU us/query, from max(1, N/2)
        unpinned tern-loadgen processes (window 256 each). Interleaved repetitions."""
        cores = os.cpu_count() or 1
        counts = sorted({1, cores} | {2 ** i for i in range(1, 7) if 2 ** i < cores})
        log(f"scaling: {cores} cores, N = {', '.join(map(str, counts))}")
        servers = []
        for n in counts:
            p = self.port()
            servers.append(Server(self, f"reflector-{n}t", [self.reflector, "-p", str(p),
                                                            "-t", str(n)], p, pin=False,
                                  probe=("probe.invalid", "A"), label=f"reflector {n}"))
            p = self.port()
            name = f"ternd-s-{n}w"
            servers.append(Server(self, name, self.cfg.ternd(name, p, plugins, n), p,
                                  pin=False, probe=probe, label=f"ternd {n}"))
        rows = {}
        for srv, n in zip(servers, [n for n in counts for _ in (0, 1)]):
            rows[srv.label] = {"n": n, "generators": max(1, n // 2), "runs": []}
        try:
            for srv in servers:
                srv.launch()
            for srv in servers:
                try:
                    srv.wait_ready()
                except (BenchError, OSError) as e:
                    rows[srv.label]["error"] = str(e)[:2000]
                    self.res["errors"].append(f"scaling/{srv.label}: start: {str(e)[:300]}")
                    srv.stop()
            for rep in range(self.reps):
                for srv in servers:
                    row = rows[srv.label]
                    if "error" in row:
                        continue
                    try:
                        c0 = tree_cpu(srv.proc.pid)
                        r = self.loadgen_many(srv.port, qfile,
                                              ["-l", str(self.seconds), "-w", "256"] +
                                              self.lg_timeout, row["generators"])
                        c1 = tree_cpu(srv.proc.pid)
                    except (BenchError, subprocess.SubprocessError, OSError,
                            ValueError) as e:
                        row["error"] = str(e)[:2000]
                        self.res["errors"].append(f"scaling/{srv.label}: {str(e)[:300]}")
                        continue
                    cpu_us = (c1 - c0) * 1e6 / r["received"] if r["received"] else None
                    row["runs"].append({"qps": r["qps"], "sent": r["sent"],
                                        "received": r["received"], "lost": r["lost"],
                                        "rcodes": r["rcodes"], "cpu_s": round(c1 - c0, 3),
                                        "cpu_us_per_query": cpu_us})
                    log(f"scaling rep {rep + 1}/{self.reps} {srv.label}: {r['qps']:.0f} q/s, "
                        f"{(cpu_us or 0):.2f} us/q")
        finally:
            for srv in servers:
                srv.stop()
        for row in rows.values():
            runs = row["runs"]
            if runs and "error" not in row:
                row["median"] = {
                    "qps": statistics.median(r["qps"] for r in runs),
                    "qps_range": [min(r["qps"] for r in runs), max(r["qps"] for r in runs)],
                    "cpu_us_per_query": statistics.median(
                        r["cpu_us_per_query"] for r in runs
                        if r["cpu_us_per_query"] is not None) if any(
                        r["cpu_us_per_query"] is not None for r in runs) else None,
                    "lost": statistics.median(r["lost"] for r in runs)}
        return {"cores": cores, "counts": counts, "rows": rows,
                "seconds": self.seconds, "reps": self.reps}

    def control_plane(self):
        """cluster.py's control-plane measurements (bench/cluster.py, suite()) with this
        run's processes and ports: sync time, RSS and bytes per object for an empty cluster
        and each size, event->answer latency at 100 and 1000 events/s, dnsperf loss during
        a republish storm."""
        cp = cluster.Bench(self.ternd, self.quick, procs=self.procs, ports=self.ports,
                           work=os.path.join(self.work, "control-plane"))
        sizes = [2000] if self.quick else [10000, 100000]
        log(f"control plane: empty, {', '.join(map(str, sizes))} services")
        try:
            return cp.suite(sizes, cluster.LAT_RUNS_QUICK if self.quick else cluster.LAT_RUNS,
                            cluster.STORM_SECONDS_QUICK if self.quick
                            else cluster.STORM_SECONDS)
        except (BenchError, subprocess.SubprocessError, OSError, ValueError) as e:
            self.res["errors"].append(f"control plane: {str(e)[:300]}")
            return {"error": str(e)[:2000]}

    def compare(self, lines, running):
        """rcode and answers (TTL aside) of the running ternd vs each running peer on
        @lines, before the measurements."""
        out = {}
        tern = running.get("ternd")
        if tern is None:
            return {"error": "ternd did not start"}
        try:
            for p in (running.get("knotd"), running.get("nsd")):
                if p is None:
                    continue
                diffs = []
                for line in lines:
                    name, qtype = line.split()
                    a, b = ask(tern.port, name, qtype), ask(p.port, name, qtype)
                    ra, rb = (a[1], sorted(a[2])), (b[1], sorted(b[2]))
                    if ra != rb:
                        diffs.append(f"{line}: ternd {str(ra)[:200]} {p.label} {str(rb)[:200]}")
                out[p.label] = {"checked": len(lines), "differ": len(diffs),
                                "examples": diffs[:3]}
        except (OSError, ValueError) as e:
            out["error"] = str(e)[:500]
        return out

    def workload_cache(self, which):
        results = {}
        hits = hit_queries(self.n_ext, 20000 if self.quick else 50000)
        warm = write_queries(self, "warm", [f"www-{i}.{EXT_ZONE} A" for i in range(self.n_ext)])
        for key in which:
            if key == "c":
                qfile = write_queries(self, "c", hits)
                title = (f"cache hits: {self.n_ext} external names behind a warm forwarding "
                         "cache (upstream: local knotd)")
                wl = {"key": key, "title": title, "qfile": qfile, "unique": False,
                      "warm": warm, "warm_n": self.n_ext}
            else:
                qfile = write_queries(self, "d", [f"q{i}.{MISS_ZONE} A" for i in range(10000)])
                title = ("cache misses: unique names, each forwarded to the local knotd "
                         "upstream (a wildcard zone; pinned to the generator's CPU)")
                wl = {"key": key, "title": title, "qfile": qfile, "unique": True,
                      "warm": None, "warm_n": 0}
            probe = (f"www-1.{EXT_ZONE}", "A")
            servers = [self.reflector_server()]
            servers += self.ternd_servers(key, self.cfg.tern_cache_plugins(), probe=probe)
            for kind in ("unbound", "kresd", "dnsmasq", "pdns_recursor"):
                p = self.port()
                argv = getattr(self.cfg, kind)(f"{kind}-{key}", p)
                servers.append(Server(self, f"{kind}-{key}", argv, p, probe=probe, label=kind))
            res = self.run_workload(wl, servers)
            cg_port = self.port()
            cg_argv = self.cfg.ternd(f"cg-{key}", cg_port, self.cfg.tern_cache_plugins())
            cg_n = 1000 if self.quick else 10000
            # (c): the cache filled with every name, then (ternd only) one pass over the
            # query file; (d): every name is new, nothing to warm.
            names = [(warm, self.n_ext)] if key == "c" else []
            one_pass = [(qfile, len(hits))] if key == "c" else []
            res["_callgrind"] = {"ternd": self.callgrind(wl, "ternd", cg_argv, cg_port, probe,
                                                         names + one_pass, cg_n)}
            if not self.quick and key == "c":
                up = self.port()
                res["_callgrind"]["unbound"] = self.callgrind(
                    wl, "unbound", self.cfg.unbound("cg-unbound", up), up, probe, names, cg_n)
            results[key] = {"title": title, "servers": res, "query_file_lines":
                            len(hits) if key == "c" else "unique"}
        return results

    def run(self):
        t0 = time.monotonic()
        only = self.args.only
        self.start_upstream()
        if "a" in only or "b" in only or "s" in only:
            self.res["workloads"].update(self.workload_cluster([k for k in "ab" if k in only],
                                                               scaling="s" in only))
        if "c" in only or "d" in only:
            self.res["workloads"].update(self.workload_cache([k for k in "cd" if k in only]))
        if "p" in only:
            self.res["control_plane"] = self.control_plane()
        self.res["total_s"] = round(time.monotonic() - t0, 1)

    def cleanup(self):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.procs.stop_all()
        if self.args.keep:
            log(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


# ---------------------------------------------------------------- figures and report

def top_functions(dump, count, n=8):
    """The @n functions with the most self instructions per query in a callgrind dump
    (written with --compress-strings=no: callgrind_annotate cannot attribute a dump taken
    after an earlier one, so the file is read here). A cost line right after "calls=" is
    the call's inclusive cost and belongs to the callee, not to the current function."""
    self_ir, fn, after_call = {}, None, False
    try:
        with open(dump) as f:
            for line in f:
                if line.startswith("fn="):
                    fn, after_call = line[3:].strip(), False
                elif line.startswith("calls="):
                    after_call = True
                elif line[:1].isdigit() or line[:1] in "+-*":
                    if after_call:
                        after_call = False
                        continue
                    parts = line.split()
                    if fn is not None and len(parts) >= 2 and parts[1].isdigit():
                        self_ir[fn] = self_ir.get(fn, 0) + int(parts[1])
    except OSError:
        return []
    top = sorted(self_ir.items(), key=lambda kv: -kv[1])[:n]
    return [[name, round(ir / count)] for name, ir in top]


def medians(runs):
    """Median of each figure over the repetitions, with min and max of the headline ones."""
    def col(f):
        return [v for v in (f(r) for r in runs) if v is not None]

    def med(f):
        xs = col(f)
        return statistics.median(xs) if xs else None

    def span(f):
        xs = col(f)
        return [min(xs), max(xs)] if xs else None
    q = lambda r: r["closed"]["qps"]                                    # noqa: E731
    dq = lambda r: r["dnsperf"]["qps"]                                  # noqa: E731
    cpu = lambda r: r["cpu_us_per_query"]                               # noqa: E731
    rc = {}
    for r in runs:
        for k, v in r["closed"]["rcodes"].items():
            rc[k] = rc.get(k, 0) + v
    return {"loadgen_qps": med(q), "loadgen_qps_range": span(q),
            "dnsperf_qps": med(dq), "dnsperf_qps_range": span(dq),
            "cpu_us_per_query": med(cpu), "cpu_us_range": span(cpu),
            "loadgen_lost": med(lambda r: r["closed"]["lost"]),
            "rcvbuf_errors": med(lambda r: r["closed"].get("rcvbuf_errors")),
            "dnsperf_lost": med(lambda r: r["dnsperf"]["lost"]),
            "fixed_p50_us": med(lambda r: r["open"]["latency_us"]["p50"]),
            "fixed_p99_us": med(lambda r: r["open"]["latency_us"]["p99"]),
            "fixed_p999_us": med(lambda r: r["open"]["latency_us"]["p999"]),
            "fixed_lost": med(lambda r: r["open"]["lost"]),
            "fixed_sent": med(lambda r: r["open"]["sent"]),
            "rcodes": rc}


def fmt(v, spec=".0f", none="-"):
    return none if v is None else format(v, spec)


def rcode_share(rc):
    total = sum(rc.values())
    if not total:
        return "-"
    parts = sorted(rc.items(), key=lambda kv: -kv[1])
    return " ".join(f"{k[:4]} {100 * v / total:.0f}%" for k, v in parts[:2])


def report_scaling(sc):
    if "error" in sc:
        print(f"## Scaling\n\nfailed: {sc['error'][:500]}\n")
        return
    print(f"## Scaling: ternd with N workers vs the reflector with N threads "
          f"({sc['cores']} cores; cluster names as in (a))\n")
    print("| N | ternd QPS | ternd CPU µs/q | reflector QPS | reflector CPU µs/q | ×refl QPS "
          "| ×refl CPU | ternd QPS / N=1 | generators | lost (ternd) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = sc["rows"]
    base = (rows.get("ternd 1") or {}).get("median", {}).get("qps")
    for n in sc["counts"]:
        t = rows.get(f"ternd {n}", {})
        r = rows.get(f"reflector {n}", {})
        tm, rm = t.get("median") or {}, r.get("median") or {}
        if "error" in t or "error" in r:
            err = (t.get("error") or r.get("error")).splitlines()[0][:120]
            print(f"| {n} | failed: {err} | | | | | | | | |")
            continue
        qr = tm["qps"] / rm["qps"] if tm.get("qps") and rm.get("qps") else None
        cr = (tm["cpu_us_per_query"] / rm["cpu_us_per_query"]
              if tm.get("cpu_us_per_query") and rm.get("cpu_us_per_query") else None)
        print(f"| {n} | {fmt(tm.get('qps'))} | {fmt(tm.get('cpu_us_per_query'), '.2f')} "
              f"| {fmt(rm.get('qps'))} | {fmt(rm.get('cpu_us_per_query'), '.2f')} "
              f"| {fmt(qr, '.2f')} | {fmt(cr, '.2f')} "
              f"| {fmt(tm['qps'] / base if base and tm.get('qps') else None, '.2f')} "
              f"| {t['generators']} | {fmt(tm.get('lost'))} |")
    print(f"\nEverything unpinned (servers and generators share the {sc['cores']} cores: "
          "at N = cores there is no core to set apart); max(1, N/2) tern-loadgen processes, "
          f"closed loop, window 256 each; medians of {sc['reps']} interleaved repetition(s) "
          f"of {sc['seconds']} s. CPU µs/q: the server's CPU time over the run / answers.\n")


def _median(res, key, label):
    w = res["workloads"].get(key) or {}
    return ((w.get("servers") or {}).get(label) or {}).get("median")


def _ratio(res, key, label, field, ref="reflector"):
    m, r = _median(res, key, label), _median(res, key, ref)
    if not m or not r or not m.get(field) or not r.get(field):
        return None
    return m[field] / r[field]


def _ir(res, key, who):
    w = res["workloads"].get(key) or {}
    return (((w.get("servers") or {}).get("_callgrind") or {}).get(who) or {}).get(
        "ir_per_query")


def targets(res, meta):
    """[(target, measured text, peers in the same run, met: True/False/None)] for issue 5's
    targets. Printed, never asserted."""
    out = []

    def x(v):
        return "-" if v is None else f"{v:.2f}×"

    def peers(fn, labels):
        got = [(lb, fn(lb)) for lb in labels]
        return ", ".join(f"{lb} {v}" for lb, v in got if v not in (None, "-")) or "-"

    def cmp(v, limit, le=True):
        return None if v is None else (v <= limit if le else v >= limit)

    # (a) cluster-name hits
    v = _ratio(res, "a", "ternd", "cpu_us_per_query")
    out.append(("(a) cluster names: CPU/query ≤ 1.15× the reflector's", x(v),
                peers(lambda lb: x(_ratio(res, "a", lb, "cpu_us_per_query")),
                      ("knotd", "nsd")), cmp(v, 1.15)))
    v = _ir(res, "a", "ternd")
    out.append(("(a) cluster names: instructions/query ≤ 1,500 (callgrind, warm)",
                fmt(v, ","), peers(lambda lb: fmt(_ir(res, "a", lb), ","),
                                   ("ternd (kubernetes only)", "knotd")), cmp(v, 1500)))
    v = _ratio(res, "a", "ternd", "loadgen_qps")
    out.append(("(a) cluster names: tern-loadgen QPS ≥ 0.9× the reflector's", x(v),
                peers(lambda lb: x(_ratio(res, "a", lb, "loadgen_qps")),
                      ("knotd", "nsd")), cmp(v, 0.9, le=False)))
    v = _ratio(res, "a", "ternd", "dnsperf_qps")
    out.append(("(a) cluster names: dnsperf QPS ≥ 0.98× the reflector's under dnsperf", x(v),
                peers(lambda lb: x(_ratio(res, "a", lb, "dnsperf_qps")),
                      ("knotd", "nsd")), cmp(v, 0.98, le=False)))
    # (c) cache hits, (d) cache misses
    v = _ratio(res, "c", "ternd", "cpu_us_per_query")
    out.append(("(c) cache hits: CPU/query ≤ 1.2× the reflector's", x(v),
                peers(lambda lb: x(_ratio(res, "c", lb, "cpu_us_per_query")),
                      ("unbound", "kresd")), cmp(v, 1.2)))
    v = _ir(res, "c", "ternd")
    out.append(("(c) cache hits: instructions/query ≤ 2,000 (callgrind, warm)", fmt(v, ","),
                peers(lambda lb: fmt(_ir(res, "c", lb), ","), ("unbound",)),
                cmp(v, 2000)))
    v = _ratio(res, "d", "ternd", "cpu_us_per_query", ref="unbound")
    um = _median(res, "d", "unbound") or {}
    out.append(("(d) cache misses: CPU/query ≤ 0.5× unbound's", x(v),
                f"unbound {fmt(um.get('cpu_us_per_query'), '.1f')} µs/q", cmp(v, 0.5)))
    # latency at the fixed offered load
    for key in ("a", "b"):
        t, k = _median(res, key, "ternd"), _median(res, key, "knotd")
        v = t.get("fixed_p99_us") if t else None
        kv = k.get("fixed_p99_us") if k else None
        out.append((f"({key}) p99 at {FIXED_RATE // 1000}k q/s offered ≤ knotd's",
                    f"{fmt(v)} µs", f"knotd {fmt(kv)} µs",
                    None if v is None or kv is None else v <= kv))
    lost = {key: (_median(res, key, "ternd") or {}).get("fixed_lost")
            for key in sorted(res["workloads"])}
    known = [v for v in lost.values() if v is not None]
    out.append((f"zero loss at {FIXED_RATE // 1000}k q/s offered (ternd, each workload)",
                ", ".join(f"({k}) {fmt(v)}" for k, v in lost.items()) or "-", "-",
                (not any(known)) if known else None))
    # control plane
    cp = res.get("control_plane") or {}
    big = (cp.get("clusters") or {}).get("100000")
    note = "" if big else (f"not measured (--quick: largest {max(map(int, cp['clusters']))} "
                           "services)" if cp.get("clusters") else "not measured")
    if big:
        b = big["snapshot_build"]
        out.append(("100k services + 1M endpoints built and published in < 1 s",
                    f"{b['sum_ms']:.0f} ms ({b['count']} snapshot(s); start→/ready "
                    f"{big['ready_s']:.1f} s with the fake's list transfer)", "-",
                    b["sum_ms"] < 1000 if b["count"] else None))
        out.append(("100k services + 1M endpoints at < 250 MB peak RSS",
                    f"{big['peak_rss_bytes'] / 1e6:.0f} MB",
                    "CoreDNS ≈ 1 MB per 1,000 objects + 54 MB",
                    big["peak_rss_bytes"] < 250e6))
    else:
        out.append(("100k services + 1M endpoints built and published in < 1 s", note, "-",
                    None))
        out.append(("100k services + 1M endpoints at < 250 MB peak RSS", note, "-", None))
    lat = (cp.get("latency") or {}).get("1000")
    if lat and lat["all"].get("n"):
        out.append(("event→answer p99 < 10 ms at 1000 events/s",
                    f"{lat['all']['p99_ms']} ms (achieved {lat['rate_per_s']}/s, "
                    f"missed {sum(lat['missed'].values())})", "-",
                    lat["all"]["p99_ms"] < 10 and not sum(lat["missed"].values())))
    else:
        out.append(("event→answer p99 < 10 ms at 1000 events/s", "not measured", "-", None))
    st = cp.get("storm")
    if st:
        out.append(("dnsperf loss during a republish storm = 0",
                    f"{st['dnsperf']['lost']} of {st['dnsperf']['sent']} "
                    f"({st['snapshots_published']} snapshots in {st['seconds']} s)", "-",
                    st["dnsperf"]["lost"] == 0))
    else:
        out.append(("dnsperf loss during a republish storm = 0", "not measured", "-", None))
    return out


def report_targets(res, meta):
    rows = targets(res, meta)
    res["targets"] = [{"target": t, "measured": m, "same_run": p,
                       "met": met} for t, m, p, met in rows]
    print(f"## Targets (issue 5; {'quick' if meta['quick'] else 'full'} run, printed, "
          "never asserted)\n")
    print("| target | measured | peers, same run | |")
    print("| --- | --- | --- | --- |")
    for t, m, p, met in rows:
        status = "not measured" if met is None else "met" if met else "**not met**"
        print(f"| {t} | {m} | {p} | {status} |")
    n_met = sum(1 for r in rows if r[3])
    n_not = sum(1 for r in rows if r[3] is False)
    print(f"\n{n_met} met, {n_not} not met, {len(rows) - n_met - n_not} not measured.\n")


def report(res, meta):
    print(f"# Tern benchmark ({'quick' if meta['quick'] else 'full'})\n")
    print(f"CPU: {meta['cpu_model']}, {meta['cores']} cores. Servers pinned to CPU {SERVER_CPU} "
          f"with one worker (\"ternd 2w unpinned\": 2 workers, no pinning), generators on CPU "
          f"{GEN_CPU}. {meta['reps']} interleaved repetition(s) of {meta['seconds']} s per "
          "mode; medians (min–max of QPS and CPU in the JSON).\n")
    print("| software | version |\n| --- | --- |")
    for k, v in meta["versions"].items():
        print(f"| {k} | {v} |")
    print()
    for key in sorted(res["workloads"]):
        w = res["workloads"][key]
        srv = w["servers"]
        print(f"## ({key}) {w['title']}\n")
        print(f"| server | dnsperf QPS | loadgen QPS | ×refl QPS | CPU µs/q | ×refl CPU "
              f"| lost lg/dnsperf (rcvbuf) | p50/p99/p99.9 µs @{FIXED_RATE // 1000}k | lost "
              f"@{FIXED_RATE // 1000}k | peak RSS MiB | rcodes |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        ref = (srv.get("reflector") or {}).get("median") or {}
        for label, r in srv.items():
            if label.startswith("_"):
                continue
            if "median" not in r:
                print(f"| {label} | failed: {r.get('error', '?').splitlines()[0][:120]} "
                      "| | | | | | | | | |")
                continue
            m = r["median"]
            qr = (m["loadgen_qps"] / ref["loadgen_qps"]
                  if ref.get("loadgen_qps") and m["loadgen_qps"] else None)
            cr = (m["cpu_us_per_query"] / ref["cpu_us_per_query"]
                  if ref.get("cpu_us_per_query") and m["cpu_us_per_query"] else None)
            rss = r.get("peak_rss_bytes")
            print(f"| {label} | {fmt(m['dnsperf_qps'])} | {fmt(m['loadgen_qps'])} "
                  f"| {fmt(qr, '.2f')} | {fmt(m['cpu_us_per_query'], '.2f')} | {fmt(cr, '.2f')} "
                  f"| {fmt(m['loadgen_lost'])}/{fmt(m['dnsperf_lost'])} "
                  f"({fmt(m.get('rcvbuf_errors'))}) "
                  f"| {fmt(m['fixed_p50_us'])}/{fmt(m['fixed_p99_us'])}/"
                  f"{fmt(m['fixed_p999_us'])} | {fmt(m['fixed_lost'])} "
                  f"| {fmt(rss / 1048576 if rss else None, '.1f')} | {rcode_share(m['rcodes'])} |")
        for who, cg in (srv.get("_callgrind") or {}).items():
            if "ir_per_query" in cg:
                top = ", ".join(f"{f} {n:,}" for f, n in cg["top"][:6])
                warm = (f"warm: {cg['warm_queries']:,} queries before the reset"
                        if cg.get("warm_queries") else "cold")
                print(f"\n{who}: user-space instructions/query (callgrind, 1 worker, "
                      f"{cg['queries']} queries one at a time, {warm}): "
                      f"**{cg['ir_per_query']:,}**; most self instructions/query: {top}")
            else:
                print(f"\n{who} callgrind: failed: {cg.get('error', '?')[:200]}")
        churn = srv.get("_churn")
        if churn:
            report_churn(churn)
        diffs = srv.get("_diffs")
        if diffs:
            print("\nAnswers compared with ternd: " + "; ".join(
                f"{k}: {v['differ']} of {v['checked']} differ" for k, v in diffs.items()
                if isinstance(v, dict)) + (f" ({diffs['error']})" if "error" in diffs else ""))
            for k, v in diffs.items():
                for ex in (v.get("examples", []) if isinstance(v, dict) else []):
                    print(f"  - {ex}")
        print()
    if res["workloads"]:
        lg_t, dp_t = ("0.5 s", "1 s") if meta["quick"] else ("1 s", "2 s")
        print("Ratios: ×refl QPS = loadgen QPS / the reflector's; ×refl CPU = CPU µs/query / "
              "the reflector's (closed loop, window 256). CPU is the server's whole process "
              "tree (utime+stime from /proc) over the closed-loop run divided by answers "
              f"received. lost: unanswered within {lg_t} (tern-loadgen, closed loop) and "
              f"{dp_t} (dnsperf); rcvbuf: the kernel's UDP RcvbufErrors during the closed-loop "
              "run (queries dropped by a full server socket buffer, mostly the start-of-run "
              "burst). Peak RSS sums VmHWM over the process tree. rcodes: the two most "
              "frequent in the closed-loop answers. Callgrind: ternd is measured warm (one "
              "pass of the workload's query file before the counters are reset, after the "
              "cache's names in (c); nothing to warm in (d), every name is new), the steady "
              "state dnsperf sees; the peers as they were: knotd cold, unbound after the "
              "names.\n")
    if "scaling" in res:
        report_scaling(res["scaling"])
    cp = res.get("control_plane")
    if cp is not None:
        if "error" in cp:
            print(f"## Control plane\n\nfailed: {cp['error'][:500]}\n")
        else:
            cluster.report_control_plane(cp)
    report_targets(res, meta)
    if res["errors"]:
        print("\nErrors:")
        for e in res["errors"]:
            print(f"- {e}")


def report_churn(ch):
    print("\nUnder churn: ternd (1 worker, pinned), tern-loadgen closed loop on these names "
          "while API events change the cluster (80% endpoint moves, 10% Service creates, "
          "10% deletes; each published in a new snapshot):\n")
    print("| API events/s | events | loadgen QPS | CPU µs/q (all threads) | replayed |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in ch.get("rows", []):
        share = r.get("hot_share")
        print(f"| {r['events_per_s']} | {r['events']} | {fmt(r['qps'])} "
              f"| {fmt(r['cpu_us_per_query'], '.2f')} "
              f"| {'-' if share is None else f'{100 * share:.1f}%'} |")
    if ch.get("error"):
        print(f"\nfailed: {ch['error'][:300]}")


def version(argv, pat=None):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        text = (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    if pat:
        m = re.search(pat, text)
        return m.group(0) if m else "?"
    return text.splitlines()[0] if text else "?"


def versions(bench):
    v = {"ternd": version([bench.ternd, "--version"]),
         "dnsperf": version(["dnsperf", "-h"], r"Version [\d.]+"),
         "knotd": version(["knotd", "--version"]), "nsd": version(["nsd", "-v"]),
         "unbound": version(["unbound", "-V"], r"Version [\d.]+"),
         "kresd": version(["kresd", "--version"]),
         "dnsmasq": version(["dnsmasq", "--version"], r"Dnsmasq version [\d.]+"),
         "pdns_recursor": version(["pdns_recursor", "--version"], r"PowerDNS Recursor [\d.]+"),
         "valgrind": version(["valgrind", "--version"]),
         "python3 (fake API server, drivers)": platform.python_version(),
         "kernel": platform.release()}
    return v


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


PEERS = {"dnsperf": "dnsperf", "knotd": "knot", "nsd": "nsd", "unbound": "unbound",
         "kresd": "knot-resolver", "dnsmasq": "dnsmasq", "pdns_recursor": "pdns-recursor",
         "valgrind": "valgrind", "taskset": "util-linux"}


def ensure_peers(install):
    missing = [b for b in PEERS if not shutil.which(b) and not os.access(f"/usr/sbin/{b}",
                                                                        os.X_OK)]
    if missing and install:
        log(f"missing {', '.join(missing)}: running tools/deps.sh")
        subprocess.run([os.path.join(ROOT, "tools", "deps.sh")], check=False)
        missing = [b for b in PEERS if not shutil.which(b)
                   and not os.access(f"/usr/sbin/{b}", os.X_OK)]
    return missing


def control_plane_complete(cp):
    """Every control-plane figure is there: each cluster synced with objects counted, both
    latency runs answered, the storm's dnsperf ran."""
    if "error" in cp or not cp.get("clusters"):
        return False
    lat = cp.get("latency") or {}
    return (all(r["objects"].get("services") for r in cp["clusters"].values())
            and len(lat) == 2 and all(v["all"].get("n") for v in lat.values())
            and "dnsperf" in (cp.get("storm") or {}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition of 1 s per mode, 2k services, ternd 1 worker only")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--only", default="abcdsp",
                    help="sections to run: workloads a b c d, s (scaling), p (control "
                    "plane); e.g. 'ac'")
    ap.add_argument("--reps", type=int, default=0, help="repetitions (default 3; quick 1)")
    ap.add_argument("--seconds", type=float, default=0, help="seconds per mode (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    ap.add_argument("--no-install", action="store_true", help="never run tools/deps.sh")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every server of every workload produced figures")
    args = ap.parse_args()
    bench = Bench(args)
    for path in (bench.ternd, bench.loadgen, bench.reflector):
        if not os.access(path, os.X_OK):
            sys.exit(f"run.py: no {path} (build first: meson setup build && ninja -C build)")
    missing = ensure_peers(not args.no_install)
    if missing:
        sys.exit(f"run.py: missing {', '.join(missing)} (Debian packages: "
                 f"{', '.join(PEERS[m] for m in missing)}; tools/deps.sh installs them)")

    meta = {"quick": bench.quick, "cores": os.cpu_count(), "cpu_model": cpu_model(),
            "reps": bench.reps, "seconds": bench.seconds, "versions": versions(bench),
            "fixed_rate": FIXED_RATE, "server_cpu": SERVER_CPU, "generator_cpu": GEN_CPU,
            "services": bench.services, "external_names": bench.n_ext}
    rc = cluster.run_guarded(bench, "run.py")
    if rc is not None:
        return rc
    report(bench.res, meta)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    out = os.path.join(ROOT, "bench", "results", f"bench-{date}.json")
    with open(out, "w") as f:
        json.dump({"date": date, **meta, **bench.res}, f, indent=1)
        f.write("\n")
    print(f"\nwrote {out} (total {bench.res['total_s']} s)")
    if args.check:
        bad = [f"{k}/{label}" for k, w in bench.res["workloads"].items()
               for label, r in w["servers"].items()
               if not label.startswith("_") and "median" not in r]
        sc = bench.res.get("scaling")
        if sc is not None:
            rows = sc.get("rows") or {"(all)": sc}
            bad += [f"scaling/{label}" for label, r in rows.items() if "median" not in r]
        cp = bench.res.get("control_plane")
        if cp is not None and not control_plane_complete(cp):
            bad.append("control plane")
        if bad or not (bench.res["workloads"] or sc or cp):
            print(f"run.py --check: no figures for {', '.join(bad) or 'any workload'}",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
