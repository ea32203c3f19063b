#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Cluster DNS benchmark: ternd's kubernetes plugin against a fake API server, on loopback.

Starts every process itself on 127.0.0.1 (tools/fake-apiserver/fake_apiserver.py, ternd,
knotd, dnsperf) in a temp dir and stops each one by PID at the end, also on errors and
Ctrl-C. It measures, for a generated cluster of 10k (and, without --quick, 100k) services
with 10 endpoints each: the seconds from ternd's start to /ready 200 (list, build, publish),
ternd's peak RSS and RSS after the sync, the snapshot build histogram and object gauges from
/metrics, and bytes per service and per endpoint over an empty ternd; then, on the 10k
cluster, the latency from an API change (applied through the fake's /_control/apply at 100
and at 1000 events/s) to the first UDP answer that shows it; dnsperf QPS on cluster names
against ternd and against knotd serving the same records from a zone file built from the
API's own lists; and the queries dnsperf loses at a fixed rate while API events at 1000/s
republish the snapshot (a republish storm). bench/run.py prints the same control-plane
tables (Bench.suite()). Prints Markdown tables and writes
bench/results/cluster-<UTC date>.json.
Usage: bench/cluster.py [--ternd build/daemon/ternd] [--quick]
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import queue
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE = os.path.join(ROOT, "tools", "fake-apiserver", "fake_apiserver.py")
ZONE = "cluster.local"
TTL = 30
ENDPOINTS_PER_SVC = 10
NAMESPACES = 1000
DNSPERF_CLIENTS = 4
DNSPERF_THREADS = 2
# API event -> answer: (events per second, seconds) per run; the storm: API events per
# second and seconds, under dnsperf at a fixed rate (queries per second).
LAT_RUNS = ((100.0, 10.0), (1000.0, 5.0))
LAT_RUNS_QUICK = ((100.0, 2.0), (1000.0, 1.0))
STORM_RATE = 1000.0
STORM_SECONDS = 10
STORM_SECONDS_QUICK = 2
STORM_QPS = 20000
LAT_GIVE_UP = 5.0         # an event not visible after this long counts as missed
SEED = 7


class BenchError(Exception):
    pass


def log(msg):
    print(f"[cluster.py {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

class Procs:
    """Every process this script starts; stop_all() ends each by PID."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, stdout, stderr):
        log(f"start {name}: {' '.join('<shim>' if chr(10) in a else a for a in argv)}")
        p = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
        self.procs.append((name, p))
        return p

    @staticmethod
    def stop(p, grace=5.0):
        if p.poll() is not None:
            return
        try:
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()

    def stop_one(self, p):
        self.stop(p)
        self.procs = [(n, q) for n, q in self.procs if q is not p]

    def stop_all(self):
        for _, p in reversed(self.procs):
            self.stop(p)
        self.procs = []


def free_port(taken):
    """A port free for both UDP and TCP on 127.0.0.1, not in @taken."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            if port in taken:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", port))
            except OSError:
                continue
            taken.add(port)
            return port
    raise BenchError("no free port")


def proc_status(pid):
    """VmRSS and VmHWM of @pid in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


def cpu_seconds(pid):
    """User + system CPU time of @pid so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_get(url, timeout=5.0):
    """(status, body bytes); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, http.client.HTTPException):
        return 0, b""


# ---------------------------------------------------------------- DNS on the wire

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "TXT": 16, "AAAA": 28, "SRV": 33}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def make_query(qid, name, qtype):
    hdr = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1)
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, 0)
    return hdr + encode_name(name) + struct.pack("!HH", QTYPES[qtype], 1) + opt


def read_name(msg, off):
    labels, jumped, end = [], False, off
    for _ in range(128):
        n = msg[off]
        if n >= 0xC0:
            if not jumped:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumped = True
            continue
        if n == 0:
            if not jumped:
                end = off + 1
            return ".".join(labels).lower() + ".", end
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    raise ValueError("name loop")


def parse_response(msg):
    """(id, rcode name, [(owner, type, rdata text)] of the answer section)."""
    qid, flags, qd, an = struct.unpack("!HHHH", msg[:8])
    off = 12
    for _ in range(qd):
        _, off = read_name(msg, off)
        off += 4
    answers = []
    for _ in range(an):
        owner, off = read_name(msg, off)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rd = msg[off:off + rdlen]
        if rtype == 1:
            data = socket.inet_ntop(socket.AF_INET, rd)
        elif rtype == 28:
            data = socket.inet_ntop(socket.AF_INET6, rd)
        elif rtype == 33:
            prio, weight, port = struct.unpack("!HHH", rd[:6])
            data = f"{prio} {weight} {port} {read_name(msg, off + 6)[0]}"
        elif rtype in (2, 5, 12):
            data = read_name(msg, off)[0]
        else:
            data = rd.hex()
        answers.append((owner, rtype, data))
        off += rdlen
    return qid, RCODES.get(flags & 0xF, str(flags & 0xF)), answers


def ask(port, name, qtype="A", timeout=1.0):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        qid = random.randrange(65536)
        s.sendto(make_query(qid, name, qtype), ("127.0.0.1", port))
        while True:
            data, _ = s.recvfrom(65535)
            r = parse_response(data)
            if r[0] == qid:
                return r


def wait_soa(port, what, proc, logfile, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited ({proc.returncode}); log:\n{tail(logfile)}")
        try:
            if ask(port, ZONE, "SOA", 0.5)[1] == "NOERROR":
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise BenchError(f"{what} did not answer {ZONE} SOA on port {port}; log:\n{tail(logfile)}")


def tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- metrics

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line.strip())
        if line.startswith("#") or not m:
            continue
        out.append((m.group(1), dict(_LABEL.findall(m.group(3) or "")), float(m.group(4))))
    return out


def histogram(samples, name):
    """{"count", "sum", "buckets": [(le, cumulative)]} summed over every label set."""
    buckets, count, total = {}, 0.0, 0.0
    for n, lab, v in samples:
        if n == name + "_bucket":
            le = float("inf") if lab["le"] == "+Inf" else float(lab["le"])
            buckets[le] = buckets.get(le, 0.0) + v
        elif n == name + "_count":
            count += v
        elif n == name + "_sum":
            total += v
    return {"count": count, "sum": total, "buckets": sorted(buckets.items())}


def hist_delta(after, before):
    b = dict(before["buckets"])
    return {"count": after["count"] - before["count"], "sum": after["sum"] - before["sum"],
            "buckets": [(le, c - b.get(le, 0.0)) for le, c in after["buckets"]]}


def hist_quantile_bound(h, q):
    """Upper bound of the bucket holding quantile @q (None when empty)."""
    if not h["count"]:
        return None
    want = q * h["count"]
    for le, c in h["buckets"]:
        if c >= want - 1e-9:
            return le
    return float("inf")


def hist_summary(h):
    return {"count": int(h["count"]),
            "sum_ms": round(h["sum"] * 1000, 3),
            "mean_ms": round(h["sum"] / h["count"] * 1000, 3) if h["count"] else None,
            "p50_le_ms": _ms(hist_quantile_bound(h, 0.5)),
            "max_le_ms": _ms(hist_quantile_bound(h, 1.0)),
            "buckets": [[("+Inf" if le == float("inf") else le), c] for le, c in h["buckets"]]}


def _ms(v):
    if v is None:
        return None
    return "+Inf" if v == float("inf") else round(v * 1000, 4)


def gauges(samples, name, label):
    out = {}
    for n, lab, v in samples:
        if n == name:
            out[lab.get(label, "")] = out.get(lab.get(label, ""), 0) + int(v)
    return out


def metric_total(samples, name):
    return sum(v for n, _, v in samples if n == name)


def hot_hits(samples):
    """Answers replayed from the workers' hot answers so far."""
    return sum(v for n, lab, v in samples
               if n == "tern_hot_answers_total" and lab.get("result") == "hit")


def snapshot_delta(before, after):
    """Snapshots published between two scrapes and their build+publish times."""
    name = "tern_kubernetes_snapshot_build_seconds"
    d = hist_delta(histogram(after, name), histogram(before, name))
    return {"snapshots_published": int(metric_total(after, "tern_kubernetes_snapshots_total")
                                       - metric_total(before, "tern_kubernetes_snapshots_total")),
            "snapshot_build": hist_summary(d)}


# ---------------------------------------------------------------- fake API and ternd

# Runs fake_apiserver.py (path in argv[1]) with TCP_NODELAY on its connections. The fake
# writes each watch event as its own small send; without TCP_NODELAY, Nagle's algorithm holds
# an event back until the previous one is ACKed, and the receiver delays that ACK up to 40 ms,
# which is the fake's latency, not ternd's (kube-apiserver, in Go, sets TCP_NODELAY).
# http.server's StreamRequestHandler does this when disable_nagle_algorithm is true.
FAKE_SHIM = """import importlib.util, sys
path = sys.argv.pop(1)
spec = importlib.util.spec_from_file_location("fake_apiserver", path)
mod = importlib.util.module_from_spec(spec)
sys.modules["fake_apiserver"] = mod
spec.loader.exec_module(mod)
if hasattr(mod, "Handler"):
    mod.Handler.disable_nagle_algorithm = True
sys.exit(mod.main())
"""


class Fake:
    def __init__(self, bench, tag, args):
        self.bench, self.tag, self.args = bench, tag, args
        self.url = None
        self.proc = None

    def start(self):
        out = os.path.join(self.bench.work, f"fake-{self.tag}.out")
        err = os.path.join(self.bench.work, f"fake-{self.tag}.log")
        t0 = time.monotonic()
        with open(out, "w") as fo, open(err, "w") as fe:
            self.proc = self.bench.procs.start(
                f"fake-apiserver ({self.tag})",
                [sys.executable, "-c", FAKE_SHIM, FAKE, "--listen", "127.0.0.1:0"] + self.args,
                fo, fe)
        deadline = t0 + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"fake API server exited; log:\n{tail(err)}")
            with open(out) as f:
                line = f.readline()
            if line.startswith("listening ") and line.endswith("\n"):
                self.url = line.split()[1]
                self.start_s = time.monotonic() - t0
                return self
            time.sleep(0.02)
        raise BenchError("fake API server did not start listening")

    def get_json(self, path):
        st, body = http_get(self.url + path, timeout=120)
        if st != 200:
            raise BenchError(f"GET {path}: {st} {body[:200]!r}")
        return json.loads(body)

    def stop(self):
        if self.proc:
            self.bench.procs.stop_one(self.proc)
            self.proc = None


class KeepAlive:
    """POSTs to the fake's control interface on one kept-alive connection with TCP_NODELAY
    (the fake sets it too, through FAKE_SHIM): a request then takes well under a
    millisecond, where a new connection per request costs a handshake and, without
    TCP_NODELAY, Nagle's algorithm and the peer's delayed ACK could add ~40 ms."""

    def __init__(self, url):
        hp = url.split("//", 1)[1]
        self.host, port = hp.rsplit(":", 1)
        self.port = int(port)
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self, path, obj):
        body = json.dumps(obj).encode()
        for attempt in (0, 1):      # the fake may close a kept-alive connection: reopen once
            try:
                if self.conn is None:
                    self._connect()
                self.conn.request("POST", path, body, {"Content-Type": "application/json"})
                r = self.conn.getresponse()
                data = r.read()
                break
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        if r.status != 200:
            raise BenchError(f"POST {path}: {r.status} {data[:300]!r}")
        return json.loads(data)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Changes:
    """What API events can change in one fake cluster: the headless services with one
    EndpointSlice (their slice is the template of an endpoint change). Read once per
    cluster, shared by every Applier on it; each Applier gets a run number that keeps its
    addresses and service names apart from the earlier runs' (an address already served
    would be "seen" at once)."""

    def __init__(self, fake):
        self.url = fake.url
        svcs = fake.get_json("/api/v1/services")["items"]
        slices = fake.get_json("/apis/discovery.k8s.io/v1/endpointslices")["items"]
        self.by_svc = {}
        for s in slices:
            svc = s["metadata"].get("labels", {}).get("kubernetes.io/service-name")
            self.by_svc.setdefault((s["metadata"]["namespace"], svc), []).append(s)
        self.headless = [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in svcs
                         if s["spec"].get("clusterIP") == "None"
                         and len(self.by_svc.get((s["metadata"]["namespace"],
                                                  s["metadata"]["name"]), [])) == 1]
        random.Random(SEED).shuffle(self.headless)
        if not self.headless:
            raise BenchError("no headless service with one slice in the generated cluster")
        self.names = [f"{s['metadata']['name']}.{s['metadata']['namespace']}.svc.{ZONE}"
                      for s in svcs]
        self.runs = 0


class Applier:
    """API events at @rate per second for @seconds through the fake's /_control/apply and
    /_control/delete: 80 % replace the address of one endpoint of a headless service's
    slice (with a fresh last-change-trigger-time), 10 % create a ClusterIP service, 10 %
    delete one created before (once an answer showed it, or with @confirm_on_apply once the
    API accepted it). Event k is due at start + k/rate and is sent by thread k % @threads,
    each with its own connection, so that a rate above one request's round trip holds.
    Each applied event goes to @out (when given) as {kind, qname, want, t0, key}: want is
    ("ip", address), ("a",) or ("nx",), t0 the monotonic time just before the request."""

    def __init__(self, changes, rate, seconds, out=None, threads=4, confirm_on_apply=False):
        self.ch, self.rate, self.out = changes, float(rate), out
        self.total = int(rate * seconds)
        if self.total > 65536:
            raise BenchError("an Applier run is limited to 65536 events (unique addresses)")
        changes.runs += 1
        self.run_no = changes.runs
        self.threads = max(1, min(threads, self.total))
        self.confirm_on_apply = confirm_on_apply
        self.confirmed = []         # created services seen in answers, to delete later
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.applied, self.apply_ms, self.error = 0, [], None
        self.elapsed = None
        self.master = None

    def confirm(self, key):
        with self.lock:
            self.confirmed.append(key)

    def event(self, k):
        """The request of event k: (kind, qname, want, key, path, body)."""
        kind = "create" if k % 10 == 8 else "delete" if k % 10 == 9 else "endpoints"
        if kind == "delete":
            with self.lock:
                victim = self.confirmed.pop(0) if self.confirmed else None
            if victim is None:
                kind = "endpoints"
            else:
                ns, name = victim
                return (kind, f"{name}.{ns}.svc.{ZONE}", ("nx",), victim, "/_control/delete",
                        {"kind": "Service", "namespace": ns, "name": name})
        if kind == "create":
            ns, name = "gen-0000", f"bench-r{self.run_no}-{k}"
            return (kind, f"{name}.{ns}.svc.{ZONE}", ("a",), (ns, name), "/_control/apply",
                    {"kind": "Service", "apiVersion": "v1",
                     "metadata": {"name": name, "namespace": ns},
                     "spec": {"ports": [{"name": "http", "port": 80}]}})
        ns, name = self.ch.headless[k % len(self.ch.headless)]
        sl = json.loads(json.dumps(self.ch.by_svc[(ns, name)][0]))
        new_ip = f"10.{200 + self.run_no % 50}.{(k >> 8) & 255}.{k & 255}"
        sl["kind"], sl["apiVersion"] = "EndpointSlice", "discovery.k8s.io/v1"
        sl["metadata"].pop("resourceVersion", None)
        sl["metadata"].setdefault("annotations", {})[
            "endpoints.kubernetes.io/last-change-trigger-time"] = \
            datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        sl["endpoints"][0]["addresses"] = [new_ip]
        return (kind, f"{name}.{ns}.svc.{ZONE}", ("ip", new_ip), (ns, name),
                "/_control/apply", sl)

    def worker(self, i, start):
        conn = KeepAlive(self.ch.url)
        try:
            for k in range(i, self.total, self.threads):
                if self.stop.is_set() or self.error:
                    break
                delay = start + k / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                kind, qname, want, key, path, body = self.event(k)
                t0 = time.monotonic()
                conn.post(path, body)
                t1 = time.monotonic()
                with self.lock:
                    self.applied += 1
                    self.apply_ms.append((t1 - t0) * 1000)
                if kind == "create" and self.confirm_on_apply:
                    self.confirm(key)
                if self.out is not None:
                    self.out.put({"kind": kind, "qname": qname, "want": want, "t0": t0,
                                  "key": key})
        except Exception as e:      # reported by the caller (wait())
            self.error = self.error or repr(e)
        finally:
            conn.close()

    def run_all(self):
        start = time.monotonic()
        ws = [threading.Thread(target=self.worker, args=(i, start), daemon=True)
              for i in range(self.threads)]
        for w in ws:
            w.start()
        for w in ws:
            w.join()
        self.elapsed = time.monotonic() - start
        if self.out is not None:
            self.out.put(None)

    def start(self):
        self.master = threading.Thread(target=self.run_all, daemon=True)
        self.master.start()
        return self

    def wait(self, timeout=30):
        self.master.join(timeout)
        if self.error:
            raise BenchError(f"applying API events failed: {self.error}")

    def summary(self):
        return {"events": self.applied, "rate_target_per_s": self.rate,
                "seconds": round(self.elapsed or 0, 2),
                "rate_per_s": round(self.applied / self.elapsed, 1) if self.elapsed else None,
                "threads": self.threads,
                "apply_rtt_ms_p50": round(pct(self.apply_ms, 50), 3),
                "apply_rtt_ms_p99": round(pct(self.apply_ms, 99), 3)}


def answer_shows(want, rc, ans):
    if want[0] == "ip":
        return rc == "NOERROR" and any(a[1] == 1 and a[2] == want[1] for a in ans)
    if want[0] == "a":
        return rc == "NOERROR" and any(a[1] == 1 for a in ans)
    return rc == "NXDOMAIN"


class Ternd:
    def __init__(self, bench, tag, api_url):
        self.bench, self.tag = bench, tag
        b = bench
        self.port, self.mport, self.rport = (free_port(b.ports), free_port(b.ports),
                                             free_port(b.ports))
        self.dir = os.path.join(b.work, f"ternd-{tag}")
        os.makedirs(self.dir)
        self.conf = os.path.join(self.dir, "ternd.yaml")
        with open(self.conf, "w") as f:
            f.write(f"""workers: 2
metrics: {{ listen: "127.0.0.1:{self.mport}" }}
ready: {{ listen: "127.0.0.1:{self.rport}" }}
servers:
  - zones: [{ZONE}, in-addr.arpa, ip6.arpa]
    listen: ["127.0.0.1:{self.port}"]
    plugins:
      kubernetes:
        endpoint: "{api_url}"
        ttl: {TTL}
        startup_timeout: 60s
""")
        self.logfile = os.path.join(b.work, f"ternd-{tag}.log")
        self.proc = None

    def start_and_wait_ready(self, timeout=180.0):
        with open(self.logfile, "w") as fe:
            t0 = time.monotonic()
            self.proc = self.bench.procs.start(f"ternd ({self.tag})",
                                               [self.bench.ternd, "--config", self.conf],
                                               subprocess.DEVNULL, fe)
        url = f"http://127.0.0.1:{self.rport}/ready"
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise BenchError(f"ternd exited ({self.proc.returncode}); log:\n"
                                 f"{tail(self.logfile)}")
            st, _ = http_get(url, timeout=1.0)
            if st == 200:
                return time.monotonic() - t0
            time.sleep(0.005)
        raise BenchError(f"ternd not ready after {timeout}s; log:\n{tail(self.logfile)}")

    def metrics(self):
        st, body = http_get(f"http://127.0.0.1:{self.mport}/metrics")
        if st != 200:
            raise BenchError(f"ternd /metrics: {st}")
        return parse_metrics(body.decode("utf-8", "replace"))

    def stop(self):
        if self.proc:
            self.bench.procs.stop_one(self.proc)
            self.proc = None


# ---------------------------------------------------------------- the benchmark

class Bench:
    """The measurements; run.py's control-plane section uses them with its own process
    registry, port set and a directory of its work dir (@procs, @ports, @work)."""

    def __init__(self, ternd, quick, procs=None, ports=None, work=None):
        self.ternd = os.path.abspath(ternd)
        self.quick = quick
        self.procs = procs if procs is not None else Procs()
        self.ports = ports if ports is not None else set()
        self.own_work = work is None
        self.work = work or tempfile.mkdtemp(prefix="tern-cluster-bench.")
        os.makedirs(self.work, exist_ok=True)
        self.res = {}

    # 1. control plane ------------------------------------------------------------
    def control_plane(self, n, keep=False, namespaces=NAMESPACES):
        """Start a fake with @n services (@namespaces namespaces) and a ternd on it;
        measure the sync."""
        tag = str(n) if n else "empty"
        args = ["--generate", f"{n}:{ENDPOINTS_PER_SVC}", "--gen-namespaces",
                str(namespaces)] if n else []
        fake = Fake(self, tag, args).start()
        log(f"fake API ({tag}) up in {fake.start_s:.2f}s at {fake.url}")
        t = Ternd(self, tag, fake.url)
        ready_s = t.start_and_wait_ready()
        peak_at_ready = proc_status(t.proc.pid)["VmHWM"]
        cpu_at_ready = cpu_seconds(t.proc.pid)
        time.sleep(1.0)    # the grace period frees older snapshots
        st = proc_status(t.proc.pid)
        m = t.metrics()
        build = histogram(m, "tern_kubernetes_snapshot_build_seconds")
        r = {"services_generated": n, "endpoints_per_service": ENDPOINTS_PER_SVC if n else 0,
             "namespaces_generated": namespaces if n else 0,
             "fake_start_s": round(fake.start_s, 3), "ready_s": round(ready_s, 3),
             "ternd_cpu_s_at_ready": round(cpu_at_ready, 2),
             "peak_rss_bytes": st["VmHWM"], "peak_rss_at_ready_bytes": peak_at_ready,
             "rss_after_sync_bytes": st["VmRSS"],
             "objects": gauges(m, "tern_kubernetes_objects", "kind"),
             "snapshots": int(metric_total(m, "tern_kubernetes_snapshots_total")),
             "snapshot_build": hist_summary(build)}
        log(f"ternd ({tag}): ready in {ready_s:.3f}s, peak RSS {st['VmHWM'] >> 20} MiB, "
            f"RSS {st['VmRSS'] >> 20} MiB, objects {r['objects']}")
        if keep:
            return r, fake, t
        t.stop()
        fake.stop()
        return r, None, None

    # 2. API event -> answer latency ------------------------------------------------
    def latency(self, changes, t, rate, seconds):
        """The time from an API change (Applier at @rate/s for @seconds) to the first UDP
        answer of ternd that shows it: every changed name is asked each millisecond."""
        before = t.metrics()
        work = queue.Queue()
        ap = Applier(changes, rate, seconds, out=work)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(("127.0.0.1", t.port))
        sock.setblocking(False)
        pending, lat, missed = {}, {}, {}
        next_id, done_feeding = 1, False
        log(f"latency: {ap.total} API events at {rate:.0f}/s ({ap.threads} threads), "
            "polling every 1 ms")
        ap.start()
        try:
            while not done_feeding or pending:
                while True:
                    try:
                        item = work.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        done_feeding = True
                        continue
                    while next_id in pending or next_id == 0:
                        next_id = (next_id + 1) & 0xFFFF
                    item["q"] = make_query(next_id, item["qname"], "A")
                    pending[next_id] = item
                    next_id = (next_id + 1) & 0xFFFF
                now = time.monotonic()
                for qid in [q for q, it in pending.items() if now - it["t0"] > LAT_GIVE_UP]:
                    it = pending.pop(qid)
                    missed[it["kind"]] = missed.get(it["kind"], 0) + 1
                for it in pending.values():
                    try:
                        sock.send(it["q"])
                    except BlockingIOError:
                        pass
                deadline = now + 0.001
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0 or not select.select([sock], [], [], left)[0]:
                        break
                    try:
                        data = sock.recv(65535)
                    except (BlockingIOError, ConnectionRefusedError):
                        continue
                    got = time.monotonic()
                    try:
                        qid, rc, ans = parse_response(data)
                    except (ValueError, IndexError, struct.error):
                        continue
                    it = pending.get(qid)
                    if it and answer_shows(it["want"], rc, ans):
                        del pending[qid]
                        lat.setdefault(it["kind"], []).append((got - it["t0"]) * 1000)
                        if it["kind"] == "create":
                            ap.confirm(it["key"])
                if not pending and not done_feeding:
                    time.sleep(0.0005)
        finally:
            ap.stop.set()
            ap.master.join(30)
            sock.close()
        ap.wait(1)
        time.sleep(0.2)
        after = t.metrics()
        allv = [v for vs in lat.values() for v in vs]
        out = {**ap.summary(), "all": lat_summary(allv), "missed": missed,
               "by_kind": {k: lat_summary(v) for k, v in sorted(lat.items())},
               "raw_ms": {k: [round(x, 2) for x in v] for k, v in sorted(lat.items())}}
        out.update(snapshot_delta(before, after))
        prog = hist_delta(
            histogram(after, "coredns_kubernetes_dns_programming_duration_seconds"),
            histogram(before, "coredns_kubernetes_dns_programming_duration_seconds"))
        out["dns_programming_duration"] = hist_summary(prog)
        log(f"latency at {rate:.0f}/s: {out['all']}, missed {missed}, achieved "
            f"{out['rate_per_s']}/s")
        return out

    def storm(self, changes, t, rate, seconds, qps):
        """dnsperf at a fixed @qps on the cluster's names while API events arrive at
        @rate/s (each change is published in a new snapshot, bursts batched): queries
        lost while snapshots are swapped under the workers (must be none)."""
        rnd = random.Random(SEED + 3)
        qfile = os.path.join(self.work, f"storm-{changes.runs + 1}.txt")
        with open(qfile, "w") as f:
            f.write("\n".join(f"{rnd.choice(changes.names)} A" for _ in range(20000)) + "\n")
        before, cpu0 = t.metrics(), cpu_seconds(t.proc.pid)
        ap = Applier(changes, rate, seconds, confirm_on_apply=True)
        log(f"storm: {ap.total} API events at {rate:.0f}/s under dnsperf at {qps} q/s")
        try:
            perf = self.dnsperf("ternd-storm", t.port, qfile, int(seconds), qps=qps,
                                during=ap.start)
        finally:
            ap.stop.set()
            if ap.master:
                ap.master.join(30)
        ap.wait(1)
        time.sleep(0.2)
        after, cpu1 = t.metrics(), cpu_seconds(t.proc.pid)
        out = {**ap.summary(), "offered_qps": qps, "dnsperf": perf}
        out.update(snapshot_delta(before, after))
        # How many answers were replays of kept answers while snapshots were being
        # swapped (each keeps the snapshot part it was read from), and ternd's CPU per
        # answer, every thread included (the watcher builds the snapshots).
        hits = hot_hits(after) - hot_hits(before)
        done = perf["sent"] - perf["lost"]
        out["hot_share"] = round(hits / done, 4) if done else None
        out["cpu_us_per_answer"] = round((cpu1 - cpu0) * 1e6 / done, 2) if done else None
        log(f"storm: {out['snapshots_published']} snapshots published, dnsperf sent "
            f"{perf['sent']} lost {perf['lost']}, {100 * (out['hot_share'] or 0):.1f}% "
            f"replayed, {out['cpu_us_per_answer']} us CPU per answer")
        return out

    # 3. dnsperf against ternd and knotd ------------------------------------------------
    def build_zone(self, fake):
        svcs = fake.get_json("/api/v1/services")["items"]
        slices = fake.get_json("/apis/discovery.k8s.io/v1/endpointslices")["items"]
        eps = {}    # (ns, svc) -> {address: hostname}
        eport = {}  # (ns, svc) -> {(port name, proto): {(hostname, endpoint port)}}
        for s in slices:
            md = s["metadata"]
            svc = (md.get("labels") or {}).get("kubernetes.io/service-name")
            if not svc:
                continue
            key = (md["namespace"], svc)
            d = eps.setdefault(key, {})
            hosts = set()
            for e in s.get("endpoints") or []:
                if (e.get("conditions") or {}).get("ready", True) is False:
                    continue
                for a in e.get("addresses") or []:
                    d.setdefault(a, e.get("hostname") or dashed(a))
                    hosts.add(d[a])
            for p in s.get("ports") or []:
                if p.get("name") and hosts:
                    eport.setdefault(key, {}).setdefault(
                        (p["name"], p.get("protocol", "TCP").lower()), set()).update(
                        (h, p["port"]) for h in hosts)
        z = [f"$ORIGIN {ZONE}.", f"$TTL {TTL}",
             f"@ IN SOA ns.dns hostmaster 1 7200 1800 86400 {TTL}", "@ IN NS ns.dns",
             'dns-version 28800 IN TXT "1.1.0"']
        names = {"clusterip": [], "headless": [], "srv": [], "ns": set()}
        records = 0

        def addr_rr(owner, ip):
            return f"{owner} IN {'AAAA' if ':' in ip else 'A'} {ip}"

        for s in svcs:
            md, spec = s["metadata"], s["spec"]
            ns, name = md["namespace"], md["name"]
            names["ns"].add(ns)
            own = f"{name}.{ns}.svc"
            if spec.get("type") == "ExternalName":
                z.append(f"{own} IN CNAME {spec['externalName'].rstrip('.')}.")
                records += 1
                continue
            ep = eps.get((ns, name), {})
            headless = spec.get("clusterIP") == "None"
            if headless:
                z.extend(addr_rr(own, a) for a in ep)
                records += len(ep)
                if ep:
                    names["headless"].append(own)
            else:
                ips = spec.get("clusterIPs") or [spec["clusterIP"]]
                z.extend(addr_rr(own, ip) for ip in ips)
                records += len(ips)
                names["clusterip"].append(own)
            for a, host in ep.items():
                z.append(addr_rr(f"{host}.{own}", a))
            records += len(ep)
            if headless:    # the endpoints' ports (the slices'), one SRV per endpoint name
                for (pn, proto), targets in sorted(eport.get((ns, name), {}).items()):
                    pname = f"_{pn}._{proto}.{own}"
                    w = max(1, 100 // len(targets))
                    z.extend(f"{pname} IN SRV 0 {w} {port} {h}.{own}"
                             for h, port in sorted(targets))
                    records += len(targets)
                    names["srv"].append(pname)
                continue
            for p in spec.get("ports") or []:   # ClusterIP: the service's own ports
                if p.get("name"):
                    pname = f"_{p['name']}._{p.get('protocol', 'TCP').lower()}.{own}"
                    z.append(f"{pname} IN SRV 0 100 {p['port']} {own}")
                    records += 1
                    names["srv"].append(pname)
        path = os.path.join(self.work, "knot", f"{ZONE}.zone")
        os.makedirs(os.path.join(self.work, "knot", "storage"))
        with open(path, "w") as f:
            f.write("\n".join(z) + "\n")
        names["ns"] = sorted(names["ns"])
        return names, records

    def query_file(self, names):
        q = query_mix(names, 50000, lambda rnd: f"nx-{rnd.randrange(1 << 20)}."
                                                f"{rnd.choice(names['ns'])}.svc.{ZONE} A")
        path = os.path.join(self.work, "queries.txt")
        with open(path, "w") as f:
            f.write("\n".join(q) + "\n")
        return path, q

    def start_knotd(self):
        port = free_port(self.ports)
        kdir = os.path.join(self.work, "knot")
        conf = os.path.join(kdir, "knot.conf")
        with open(conf, "w") as f:
            f.write(f"""server:
    rundir: "{kdir}"
    listen: 127.0.0.1@{port}
    udp-workers: 2
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "{kdir}/storage"
template:
  - id: default
    storage: "{kdir}"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: {ZONE}
""")
        knotd = shutil.which("knotd") or "/usr/sbin/knotd"
        logfile = os.path.join(self.work, "knotd.log")
        with open(logfile, "w") as fe:
            p = self.procs.start("knotd", [knotd, "-c", conf], subprocess.DEVNULL, fe)
        t0 = time.monotonic()
        wait_soa(port, "knotd", p, logfile)
        return p, port, time.monotonic() - t0

    def compare_answers(self, queries, tport, kport, n=400):
        """rcode and answer RRsets (TTL aside) for @n queries of the file, both servers."""
        diffs, checked = [], 0
        for line in queries[:n]:
            name, qtype = line.split()
            a, b = ask(tport, name, qtype), ask(kport, name, qtype)
            checked += 1
            ra, rb = (a[1], sorted(a[2])), (b[1], sorted(b[2]))
            if ra != rb:
                diffs.append({"query": line, "ternd": ra, "knotd": rb})
        return checked, diffs

    def dnsperf(self, name, port, qfile, seconds, qps=None, during=None):
        """dnsperf for @seconds (at most @qps queries/s when given); @during() is called
        once dnsperf runs (the storm starts its API events there)."""
        out = os.path.join(self.work, f"{name}.perf")
        argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile, "-l", str(seconds),
                "-c", str(DNSPERF_CLIENTS), "-T", str(DNSPERF_THREADS), "-q", "500", "-t", "2"]
        if qps:
            argv += ["-Q", str(qps)]
        with open(out, "w") as fo:
            p = self.procs.start(f"dnsperf ({name})", argv, fo, subprocess.STDOUT)
            try:
                if during is not None:
                    during()
                rc = p.wait(seconds + 60)
            finally:
                self.procs.stop_one(p)
        text = open(out).read()
        if rc != 0:
            raise BenchError(f"dnsperf against {name} failed ({rc}):\n{text}")

        def num(pat, cast=float):
            m = re.search(pat, text)
            if not m:
                raise BenchError(f"no {pat!r} in dnsperf output for {name}:\n{text}")
            return cast(m.group(1))
        return {"qps": num(r"Queries per second:\s+([\d.]+)"),
                "avg_latency_ms": num(r"Average Latency \(s\):\s+([\d.]+)") * 1000.0,
                "sent": num(r"Queries sent:\s+(\d+)", int),
                "completed": num(r"Queries completed:\s+(\d+)", int),
                "lost": num(r"Queries lost:\s+(\d+)", int),
                "noerror": num(r"NOERROR (\d+)", int),
                "nxdomain": int(re.search(r"NXDOMAIN (\d+)", text).group(1))
                if re.search(r"NXDOMAIN (\d+)", text) else 0}

    def throughput(self, fake, t):
        names, records = self.build_zone(fake)
        qfile, queries = self.query_file(names)
        log(f"zone: {records} address/SRV records; starting knotd")
        knot, kport, kload = self.start_knotd()
        checked, diffs = self.compare_answers(queries, t.port, kport)
        log(f"answers compared on {checked} queries: {len(diffs)} differ")
        seconds = 3 if self.quick else 10
        order = ["knotd", "ternd", "ternd", "knotd"]     # ABBA: drift hits both alike
        ports = {"knotd": kport, "ternd": t.port}
        runs = {"knotd": [], "ternd": []}
        for srv in order:
            log(f"dnsperf -l {seconds} against {srv}")
            runs[srv].append(self.dnsperf(srv, ports[srv], qfile, seconds))
        self.procs.stop_one(knot)
        agg = {}
        for srv, rs in runs.items():
            agg[srv] = {"qps": sum(r["qps"] for r in rs) / len(rs),
                        "avg_latency_ms": sum(r["avg_latency_ms"] for r in rs) / len(rs),
                        "sent": sum(r["sent"] for r in rs), "lost": sum(r["lost"] for r in rs),
                        "runs": rs}
        ratio = agg["ternd"]["qps"] / agg["knotd"]["qps"] if agg["knotd"]["qps"] else 0.0
        mix = {"clusterip_a": 0.7, "headless_a": 0.1, "srv": 0.1, "nxdomain": 0.1}
        return {"seconds_per_run": seconds, "order": order, "clients": DNSPERF_CLIENTS,
                "threads": DNSPERF_THREADS, "query_mix": mix, "zone_records": records,
                "knotd_load_s": round(kload, 3), "answers_checked": checked,
                "answer_diffs": len(diffs), "answer_diff_examples": diffs[:5],
                "ternd": agg["ternd"], "knotd": agg["knotd"], "ratio_qps": round(ratio, 4)}

    # driver ---------------------------------------------------------------------
    def suite(self, sizes, lat_runs, storm_seconds, between=None):
        """The control plane: an empty cluster, then each of @sizes services; on the first
        size also the event->answer latency for each (rate, seconds) of @lat_runs, then
        @between(fake, ternd) (cluster.py's dnsperf against knotd; its dict is merged into
        the result), then the republish storm for @storm_seconds."""
        res = {"clusters": {}, "latency": {}}
        res["empty"], _, _ = self.control_plane(0)
        for i, n in enumerate(sizes):
            r, fake, t = self.control_plane(n, keep=(i == 0),
                                            namespaces=min(NAMESPACES, max(1, n // 10)))
            res["clusters"][str(n)] = r
            if i:
                continue
            try:
                changes = Changes(fake)
                for rate, secs in lat_runs:
                    res["latency"][str(int(rate))] = self.latency(changes, t, rate, secs)
                    time.sleep(0.3)
                if between is not None:
                    res.update(between(fake, t))
                res["storm"] = self.storm(changes, t, STORM_RATE, storm_seconds, STORM_QPS)
            finally:
                t.stop()
                fake.stop()
        base = res["empty"]["rss_after_sync_bytes"]
        for r in res["clusters"].values():
            delta = r["rss_after_sync_bytes"] - base
            svc = r["objects"].get("services") or r["services_generated"]
            ep = r["objects"].get("endpoints") or 0
            r["rss_over_empty_bytes"] = delta
            r["bytes_per_service"] = round(delta / svc) if svc else None
            r["bytes_per_endpoint"] = round(delta / ep) if ep else None
        return res

    def run(self):
        t_start = time.monotonic()
        self.res = self.suite([10000] if self.quick else [10000, 100000],
                              LAT_RUNS_QUICK if self.quick else LAT_RUNS,
                              STORM_SECONDS_QUICK if self.quick else STORM_SECONDS,
                              between=lambda fake, t: {"dnsperf": self.throughput(fake, t)})
        self.res["total_s"] = round(time.monotonic() - t_start, 1)

    def cleanup(self):
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # a second Ctrl-C must not cut it short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.procs.stop_all()
        if self.own_work:
            shutil.rmtree(self.work, ignore_errors=True)


# ---------------------------------------------------------------- report

def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def lat_summary(xs):
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "p50_ms": round(pct(xs, 50), 2), "p99_ms": round(pct(xs, 99), 2),
            "max_ms": round(max(xs), 2)}


def query_mix(names, n, other):
    """@n queries (seeded): 70 % ClusterIP A, 10 % headless A, 10 % SRV, 10 % other(rnd)."""
    rnd = random.Random(SEED)
    q = []
    for _ in range(n):
        r = rnd.random()
        if r < 0.7:
            q.append(f"{rnd.choice(names['clusterip'])}.{ZONE} A")
        elif r < 0.8:
            q.append(f"{rnd.choice(names['headless'])}.{ZONE} A")
        elif r < 0.9:
            q.append(f"{rnd.choice(names['srv'])}.{ZONE} SRV")
        else:
            q.append(other(rnd))
    return q


def dashed(ip):
    """An endpoint's name from its address: 10-1-2-3, fd00--1 (a 0 after a final dash)."""
    d = ip.replace(".", "-").replace(":", "-")
    return d + "0" if d.endswith("-") else d


def mib(b):
    return f"{b / 1048576:.1f}"


def _k(n):
    n = int(n)
    return "empty" if not n else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def report_control_plane(res, h="##"):
    """Markdown tables of suite()'s result (also printed by run.py)."""
    print(f"{h} Control plane: sync (ternd workers: 2, fake API on loopback)\n")
    print("| cluster | services | endpoints | namespaces | start→/ready (s) | ternd CPU (s) "
          "| peak RSS (MiB) | RSS after sync (MiB) | snapshots | build+publish (ms) "
          "| build max ≤ (ms) | B/service | B/endpoint |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
          "| ---: |")
    rows = [("empty", res["empty"])] + [(_k(k), v) for k, v in res["clusters"].items()]
    for label, r in rows:
        o, b = r["objects"], r["snapshot_build"]
        print(f"| {label} | {o.get('services', 0)} | {o.get('endpoints', 0)} "
              f"| {o.get('namespaces', 0)} | {r['ready_s']:.3f} | {r['ternd_cpu_s_at_ready']:.2f} "
              f"| {mib(r['peak_rss_bytes'])} "
              f"| {mib(r['rss_after_sync_bytes'])} | {r['snapshots']} "
              f"| {b['sum_ms'] if b['count'] else '-'} "
              f"| {b['max_le_ms'] if b['max_le_ms'] is not None else '-'} "
              f"| {r.get('bytes_per_service') or '-'} | {r.get('bytes_per_endpoint') or '-'} |")
    print("\nternd CPU: user + system seconds used by ternd up to /ready 200 (the rest of "
          "start→/ready is waiting for the fake API). build+publish: the summed "
          "tern_kubernetes_snapshot_build_seconds of the snapshots published up to then "
          "(snapshots: how many); build max: the histogram bucket of the slowest. "
          "B/service and B/endpoint both divide the whole RSS growth over the empty ternd "
          "(after sync) by the count.\n")
    first = _k(next(iter(res["clusters"]), 0))
    print(f"{h} Control plane: API event → answer ({first} cluster; 80% endpoint changes, "
          "10% creates, 10% deletes; every changed name asked each ms)\n")
    print("| events/s (target) | events/s (achieved) | events | p50 (ms) | p99 (ms) "
          "| max (ms) | missed | p50/p99 by kind (ms) | apply RTT p50 (ms) | snapshots "
          "| build mean (ms) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for rate, lat in res["latency"].items():
        a = lat["all"]
        kinds = ", ".join(f"{k} {v['p50_ms']}/{v['p99_ms']}" for k, v in lat["by_kind"].items()
                          if v["n"])
        print(f"| {rate} | {lat['rate_per_s']} | {lat['events']} | {a.get('p50_ms', '-')} "
              f"| {a.get('p99_ms', '-')} | {a.get('max_ms', '-')} "
              f"| {sum(lat['missed'].values())} | {kinds} | {lat['apply_rtt_ms_p50']} "
              f"| {lat['snapshots_published']} | {lat['snapshot_build']['mean_ms']} |")
    print("\nLatency runs from just before the apply request is sent (its round trip, "
          "reported, and any wait of ternd's before it publishes) to the first answer "
          f"that shows the change; not visible after {LAT_GIVE_UP:.0f} s: missed.\n")
    st = res.get("storm")
    if st:
        d = st["dnsperf"]
        print(f"{h} Control plane: dnsperf during a republish storm ({first} cluster)\n")
        print("| events/s (achieved) | seconds | snapshots published | build mean (ms) "
              "| dnsperf offered q/s | QPS | sent | lost | avg latency (ms) | replayed "
              "| ternd CPU µs/answer |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        share = st.get("hot_share")
        print(f"| {st['rate_per_s']} | {st['seconds']} | {st['snapshots_published']} "
              f"| {st['snapshot_build']['mean_ms']} | {st['offered_qps']} | {d['qps']:.0f} "
              f"| {d['sent']} | **{d['lost']}** | {d['avg_latency_ms']:.3f} "
              f"| {'-' if share is None else f'{100 * share:.1f}%'} "
              f"| {st.get('cpu_us_per_answer', '-')} |")
        print(f"\nAPI events at {STORM_RATE:.0f}/s (each change published in a new snapshot, "
              "bursts batched) while "
              f"dnsperf (-c {DNSPERF_CLIENTS} -T {DNSPERF_THREADS} -Q {st['offered_qps']}) "
              "asks for the cluster's service names; lost must be 0. Replayed: answers "
              "from the workers' hot answers, each kept while the snapshot part it was "
              "read from is unchanged; CPU: all of ternd's threads, the snapshot builds "
              "included.\n")


def report(res):
    report_control_plane(res)
    d = res["dnsperf"]
    print(f"## dnsperf on cluster names (10k cluster; {len(d['order'])} runs of "
          f"{d['seconds_per_run']} s, order {'/'.join(d['order'])}; -c {d['clients']} "
          f"-T {d['threads']})\n")
    print("| server | QPS | avg latency (ms) | sent | lost |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for srv in ("ternd", "knotd"):
        r = d[srv]
        print(f"| {srv} | {r['qps']:.0f} | {r['avg_latency_ms']:.3f} | {r['sent']} "
              f"| {r['lost']} |")
    print(f"\nTern/knotd QPS ratio: {d['ratio_qps']:.2f}  (answers compared on "
          f"{d['answers_checked']} queries: {d['answer_diffs']} differ; zone "
          f"{d['zone_records']} records)")
    for ex in d["answer_diff_examples"]:
        print(f"  differs: {ex['query']}: ternd {str(ex['ternd'])[:300]} "
              f"knotd {str(ex['knotd'])[:300]}")


def version(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True,
                              timeout=10).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def run_guarded(bench, prog):
    """bench.run(), stopping every process it started on errors, Ctrl-C and SIGTERM
    (also when started in the background). None on success, else the exit code."""
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        bench.run()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BenchError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ternd", default=os.path.join(ROOT, "build", "daemon", "ternd"))
    ap.add_argument("--quick", action="store_true", help="10k only, 3 s dnsperf runs")
    args = ap.parse_args()
    if not os.access(args.ternd, os.X_OK):
        sys.exit(f"cluster.py: no ternd at {args.ternd} (build it first: ninja -C build)")
    for tool in ("dnsperf", "knotd"):
        if not shutil.which(tool) and not os.access(f"/usr/sbin/{tool}", os.X_OK):
            sys.exit(f"cluster.py: {tool} is required (Debian: dnsperf, knot)")

    bench = Bench(args.ternd, args.quick)
    rc = run_guarded(bench, "cluster.py")
    if rc is not None:
        return rc
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    res = bench.res
    doc = {"date": date, "quick": bench.quick,
           "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
           "versions": {"ternd": version([bench.ternd, "--version"]),
                        "knotd": version([shutil.which("knotd") or "/usr/sbin/knotd",
                                          "--version"])},
           "settings": {"endpoints_per_service": ENDPOINTS_PER_SVC,
                        "namespaces": NAMESPACES, "ternd_workers": 2, "knotd_udp_workers": 2,
                        "ttl": TTL,
                        "latency_runs": LAT_RUNS_QUICK if bench.quick else LAT_RUNS,
                        "storm_rate_per_s": STORM_RATE, "storm_qps": STORM_QPS,
                        "seed": SEED,
                        "fake_tcp_nodelay": True},
           **res}
    report(res)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    out = os.path.join(ROOT, "bench", "results", f"cluster-{date}.json")
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"\nwrote {out} (total {res['total_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
