#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration tests of the forward plugin against real upstreams on loopback.

Peers: PowerDNS (bind backend) authoritative for the internal zone corp.internal,
knotd authoritative for the "public" zone pub.example (a TXT too big for UDP, short
TTLs), and in-process Python upstreams (ternlib.PyUpstream) that count every query they
get and can stay silent, answer garbage or answer with the wrong ID, or speak DNS over
TLS with a certificate for dns.test and 127.0.0.1 from a CA made here with openssl (the
DoT tests, which check verification, pipelining and session resumption); and unbound's
DNS-over-TLS service (tls-port) with that certificate, as a real packaged DoT peer. Each test starts
its own ternd with the YAML of lib/plugins/forward/README.md and stops it at the end.
Run: python3 tests/integration/test_forward.py [name-filter...]
"""
import os
import select
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import (Blackhole, DNSError, Garbage, Knotd, Pdns, PyUpstream, Skip,  # noqa: E402
                     Ternd, Unbound, check, encode_name, eq, metric_sum, parse_message, query,
                     require_tool, run_tests, udp_blast, wait_for)

CORP_ZONE = """$ORIGIN corp.internal.
$TTL 300
@    IN SOA ns1 hostmaster 1 3600 600 86400 60
@    IN NS  ns1
ns1  IN A   127.0.0.1
wiki IN A   10.10.0.5
git  IN A   10.10.0.6
"""

BIG_TXT = " ".join('"' + ("%03d" % i) * 60 + '"' for i in range(12))   # ~2.2 kB
PUB_ZONE = f"""$ORIGIN pub.example.
$TTL 300
@     IN SOA ns hostmaster 1 3600 600 86400 30
@     IN NS  ns
ns    IN A   127.0.0.1
www   IN A   192.0.2.10
short 2 IN A 192.0.2.11
big   IN TXT {BIG_TXT}
"""

peers = {}


def setup_module():
    require_tool("kdig")
    for tool in ("pdns_server", "knotd"):
        if not any(os.path.exists(os.path.join(d, tool)) for d in ("/usr/sbin", "/usr/bin")):
            raise Skip(f"{tool} not installed (tools/deps.sh)")
    peers["pdns"] = Pdns({"corp.internal": CORP_ZONE}).start()
    peers["knotd"] = Knotd({"pub.example": PUB_ZONE}).start()


def teardown_module():
    for p in peers.values():
        p.cleanup()
    if certs:
        shutil.rmtree(certs["dir"], ignore_errors=True)


def forward_server(blocks, **top):
    """ternd with these server blocks (each {zones, plugins}), started and ready.

    The "." block gets `local: {}` so that the readiness probe (localhost. SOA) is
    answered even when every upstream is silent."""
    for b in blocks:
        if "." in b["zones"]:
            b["plugins"].setdefault("local", {})
    cfg = {"servers": blocks}
    cfg.update(top)
    return Ternd(cfg).start(zone="localhost")


def upstream(u):
    return f"127.0.0.1:{u.port}"


def py(*records, **kw):
    """A started PyUpstream for pub.example with records (name, TYPE, value[, ttl])."""
    u = PyUpstream(**kw)
    for r in records:
        u.add(*r)
    return u.start()


# ---------------------------------------------------------------------------- routing

def test_split_dns_sends_the_internal_zone_to_pdns_and_the_rest_to_knotd():
    pd, kn = peers["pdns"], peers["knotd"]
    t = forward_server([
        {"zones": ["corp.internal."], "plugins": {"forward": {"to": [upstream(pd)]}}},
        {"zones": ["."], "plugins": {"forward": {"to": [upstream(kn)]}}},
    ])
    try:
        before = len(pd.queries("www.pub.example."))
        m = query(t.port, "wiki.corp.internal", rd=True)
        eq(m.rcode_name, "NOERROR", "internal rcode")
        eq([r.data for r in m.answer], ["10.10.0.5"], "internal answer")
        check(pd.queries("wiki.corp.internal.", "A"), "pdns never saw wiki.corp.internal")

        m = query(t.port, "www.pub.example", rd=True)
        eq([r.data for r in m.answer], ["192.0.2.10"], "public answer")
        eq(len(pd.queries("www.pub.example.")), before, "public name leaked to pdns")

        m = query(t.port, "nope.corp.internal", rd=True)
        eq(m.rcode_name, "NXDOMAIN", "internal NXDOMAIN passed through")
        check(m.rrs("authority", "SOA"), f"NXDOMAIN without the SOA: {m}")
    finally:
        t.cleanup()


def test_local_names_are_answered_locally_and_never_forwarded():
    u = py(("www.pub.example", "A", "192.0.2.1"), zone="pub.example.")
    t = forward_server([{"zones": ["."], "plugins": {
        "local": {}, "forward": {"to": [upstream(u)]}}}])
    try:
        m = query(t.port, "localhost", rd=True)
        eq([r.data for r in m.answer], ["127.0.0.1"], "localhost A")
        m = query(t.port, "db.localhost", "AAAA", rd=True)
        eq([r.data for r in m.answer], ["::1"], "name under localhost. AAAA")
        m = query(t.port, "localhost.pub.example", rd=True)
        eq([r.data for r in m.answer], ["127.0.0.1"], "localhost.<zone>")
        m = query(t.port, "1.0.0.127.in-addr.arpa", "PTR", rd=True)
        eq([r.data for r in m.answer], ["localhost."], "loopback PTR")
        m = query(t.port, "1.2.3.127.in-addr.arpa", "PTR", rd=True)
        eq(m.rcode_name, "NXDOMAIN", "other 127/8 reverse name")
        v6 = ".".join(["1"] + ["0"] * 31) + ".ip6.arpa"
        m = query(t.port, v6, "PTR", rd=True)
        eq([r.data for r in m.answer], ["localhost."], "::1 PTR")
        eq(u.count(), 0, "queries that reached the upstream")
        check(metric_sum(t.metrics(), "coredns_local_localhost_requests_total") >= 2,
              "coredns_local_localhost_requests_total")
        m = query(t.port, "www.pub.example", rd=True)
        eq(u.count("www.pub.example."), 1, "other names are still forwarded")
    finally:
        t.cleanup()
        u.stop()


# ----------------------------------------------------------------------- transports

def test_truncated_udp_answer_is_retried_over_tcp():
    kn = peers["knotd"]
    t = forward_server([{"zones": ["."], "plugins": {"forward": {"to": [upstream(kn)]}}}])
    try:
        m = query(t.port, "big.pub.example", "TXT", tcp=True, rd=True)
        eq(m.rcode_name, "NOERROR", "rcode")
        eq(len(m.answer), 1, "one TXT record")
        eq(len(m.answer[0].data), 12, "all 12 strings of the big TXT")
        m = query(t.port, "big.pub.example", "TXT", rd=True)
        check(m.tc, f"a 2 kB answer to a 512-byte UDP client must carry TC: {m}")
    finally:
        t.cleanup()
    # The same through an upstream that counts: it must have been asked over TCP.
    u = py(("big.pub.example", "TXT", ["%03d" % i * 60 for i in range(12)]))
    t = forward_server([{"zones": ["."], "plugins": {"forward": {"to": [upstream(u)]}}}])
    try:
        m = query(t.port, "big.pub.example", "TXT", tcp=True, rd=True)
        eq(len(m.answer[0].data), 12, "all strings")
        check(u.count("big.pub.example.", proto="udp") >= 1, "first attempt over UDP")
        check(u.count("big.pub.example.", proto="tcp") >= 1, "retry over TCP after TC")
    finally:
        t.cleanup()
        u.stop()


def test_force_tcp_sends_every_query_over_tcp():
    u = py(("www.pub.example", "A", "192.0.2.1"))
    t = forward_server([{"zones": ["."], "plugins": {
        "forward": {"to": [upstream(u)], "force_tcp": True}}}])
    try:
        for i in range(5):
            m = query(t.port, "www.pub.example", rd=True)
            eq([r.data for r in m.answer], ["192.0.2.1"], "answer")
        eq(u.count(proto="udp"), 0, "UDP queries with force_tcp")
        eq(u.count(proto="tcp"), 5, "TCP queries")
        # One pooled connection per worker: the rest reuse it (CoreDNS's conn cache metrics).
        text = t.metrics()
        hits = metric_sum(text, "coredns_proxy_conn_cache_hits_total", proto="tcp")
        misses = metric_sum(text, "coredns_proxy_conn_cache_misses_total", proto="tcp")
        eq(hits + misses, 5, "conn cache outcomes, one per upstream query")
        check(1 <= misses <= 2 and hits >= 3, f"conn cache hits {hits}, misses {misses}")
    finally:
        t.cleanup()
        u.stop()


# ------------------------------------------------------------------------- policies

def _two_upstreams(policy, **fwd):
    a = py(zone="pub.example.")
    b = py(zone="pub.example.")
    for u in (a, b):
        for i in range(40):
            u.add(f"n{i}.pub.example", "A", f"192.0.2.{i + 1}")
    conf = {"to": [upstream(a), upstream(b)], "policy": policy}
    conf.update(fwd)
    t = forward_server([{"zones": ["."], "plugins": {"forward": conf}}])
    return a, b, t


def test_sequential_policy_always_asks_the_first_upstream():
    a, b, t = _two_upstreams("sequential")
    try:
        for i in range(20):
            eq(query(t.port, f"n{i}.pub.example", rd=True).rcode_name, "NOERROR", "rcode")
        eq(a.count(), 20, "queries to the first upstream")
        eq(b.count(), 0, "queries to the second upstream")
    finally:
        t.cleanup()
        a.stop()
        b.stop()


def test_round_robin_policy_alternates_between_upstreams():
    a, b, t = _two_upstreams("round_robin")
    try:
        for i in range(20):
            eq(query(t.port, f"n{i}.pub.example", rd=True).rcode_name, "NOERROR", "rcode")
        check(a.count() >= 5 and b.count() >= 5,
              f"round_robin split {a.count()}/{b.count()}, want both >= 5")
        eq(a.count() + b.count(), 20, "total upstream queries")
    finally:
        t.cleanup()
        a.stop()
        b.stop()


def test_random_policy_uses_both_upstreams():
    a, b, t = _two_upstreams("random")
    try:
        for i in range(40):
            query(t.port, f"n{i}.pub.example", rd=True)
        check(a.count() >= 5 and b.count() >= 5, f"random split {a.count()}/{b.count()}")
    finally:
        t.cleanup()
        a.stop()
        b.stop()


# ------------------------------------------------------------------ health checking

def test_a_stopped_upstream_is_marked_down_and_restored_when_it_returns():
    a, b, t = _two_upstreams("sequential", max_fails=2, read_timeout="500ms")
    try:
        query(t.port, "n0.pub.example", rd=True)
        eq(a.count(), 1, "first upstream used while healthy")
        a.stop()
        # Failures mark it down; then every query goes to b without waiting on a.
        for i in range(1, 10):
            m = query(t.port, f"n{i}.pub.example", rd=True, timeout=3)
            eq(m.rcode_name, "NOERROR", "answered by the second upstream")
        wait_for(lambda: b.count() >= 8, 5, what="traffic moved to the second upstream")
        t0 = time.monotonic()
        m = query(t.port, "n20.pub.example", rd=True, timeout=3)
        check(time.monotonic() - t0 < 0.4, "a down upstream still delays queries")
        check(metric_sum(t.metrics(), "coredns_proxy_healthcheck_failures_total") >= 1,
              "coredns_proxy_healthcheck_failures_total after the upstream stopped")

        a.start()  # same port; the probe (". IN NS" every 0.5 s) finds it again
        wait_for(lambda: a.count(".", "NS") >= 1, 5, what="a health probe to the restarted upstream")
        a.reset()

        def back():
            query(t.port, f"n{30 + a.count()}.pub.example", rd=True)
            return a.count(qtype="A") >= 1
        wait_for(back, 10, interval=0.2, what="traffic back on the first upstream")
    finally:
        t.cleanup()
        a.stop()
        b.stop()


def test_failfast_all_unhealthy_upstreams_answers_servfail_at_once():
    a = py(zone="pub.example.").add("www.pub.example", "A", "192.0.2.1")
    t = forward_server([{"zones": ["."], "plugins": {"forward": {
        "to": [upstream(a)], "max_fails": 1, "read_timeout": "300ms",
        "failfast_all_unhealthy_upstreams": True}}}], workers=1)
    try:
        a.stop()
        for _ in range(3):
            try:
                query(t.port, "www.pub.example", rd=True, timeout=2, retries=0)
            except TimeoutError:
                pass
        t0 = time.monotonic()
        m = query(t.port, "www.pub.example", rd=True, timeout=2, retries=0)
        eq(m.rcode_name, "SERVFAIL", "all upstreams down")
        check(time.monotonic() - t0 < 0.2, "failfast took longer than a read timeout")
    finally:
        t.cleanup()
        a.stop()


# ------------------------------------------------------------------ overload, abuse

def test_max_concurrent_refuses_queries_beyond_the_limit():
    bh = Blackhole().start()
    t = forward_server([{"zones": ["."], "plugins": {"forward": {
        "to": [upstream(bh)], "max_concurrent": 5, "read_timeout": "2s"}}}])
    try:
        replies = udp_blast(t.port, [(f"q{i}.pub.example", "A") for i in range(40)],
                            timeout=1.0)
        refused = sum(1 for r in replies if r is not None and r.rcode_name == "REFUSED")
        # At most max_concurrent in flight per instance (per worker at worst: 2 x 5).
        check(refused >= 30, f"{refused} of 40 REFUSED with max_concurrent 5")
        check(bh.count() <= 10, f"the blackhole got {bh.count()} queries, limit 5")
        check(metric_sum(t.metrics(), "coredns_forward_max_concurrent_rejects_total") >= 30,
              "coredns_forward_max_concurrent_rejects_total")
    finally:
        t.cleanup()
        bh.stop()


def _bad_then_good(bad):
    good = py(("www.pub.example", "A", "192.0.2.77"))
    t = forward_server([{"zones": ["."], "plugins": {"forward": {
        "to": [upstream(bad), upstream(good)], "policy": "sequential",
        "read_timeout": "400ms"}}}])
    return good, t


def _check_bad_upstream(bad, what):
    bad.start()
    good, t = _bad_then_good(bad)
    try:
        m = query(t.port, "www.pub.example", rd=True, timeout=4, retries=0)
        eq(m.rcode_name, "NOERROR", f"{what}: answer from the good upstream")
        eq([r.data for r in m.answer], ["192.0.2.77"], f"{what}: answer")
        check(bad.count() >= 1, f"{what}: the bad upstream was tried first")
        eq(good.count("www.pub.example."), 1, f"{what}: good upstream queries")
        # Alone, the bad upstream gives the client SERVFAIL, never its junk.
    finally:
        t.cleanup()
        good.stop()
    t = forward_server([{"zones": ["."], "plugins": {"forward": {
        "to": [upstream(bad)], "read_timeout": "400ms"}}}])
    try:
        m = query(t.port, "www.pub.example", rd=True, timeout=4, retries=0)
        eq(m.rcode_name, "SERVFAIL", f"{what}: alone")
        eq(m.question[0][0].lower(), "www.pub.example.", f"{what}: question echoed")
    finally:
        t.cleanup()
        bad.stop()


def test_an_upstream_answering_garbage_is_ignored():
    _check_bad_upstream(Garbage("garbage"), "garbage")


def test_an_upstream_answering_with_wrong_ids_is_ignored():
    _check_bad_upstream(Garbage("wrong_id"), "wrong ID")


def test_an_upstream_answering_nothing_times_out_to_the_next():
    _check_bad_upstream(Blackhole(), "blackhole")


def test_except_zone_is_not_forwarded():
    u = py(("www.pub.example", "A", "192.0.2.1"), ("www.internal.pub.example", "A", "192.0.2.9"))
    t = forward_server([{"zones": ["."], "plugins": {"forward": {
        "to": [upstream(u)], "except": ["internal.pub.example."]}}}])
    try:
        eq(query(t.port, "www.pub.example", rd=True).rcode_name, "NOERROR", "forwarded")
        m = query(t.port, "www.internal.pub.example", rd=True)
        check(m.rcode_name != "NOERROR" or not m.answer, f"except zone answered: {m}")
        eq(u.count("www.internal.pub.example."), 0, "except zone reached the upstream")
    finally:
        t.cleanup()
        u.stop()


# ------------------------------------------------------------- UDP socket pool

class PortRecorder:
    """A scripted UDP upstream that records the source port of every query and answers
    NAME A with 192.0.2.1. For names starting with "spoof-" it first sends three replies
    that must be dropped, each with the address 6.6.6.6: the right ID and question from
    another source port, a wrong ID from the right port, and the right ID with another
    question from the right port; then the real reply."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.other.bind(("127.0.0.1", 0))
        self.ports = []            # (source port, name) of each query, in order
        self.spoofs = 0            # queries answered with the three bad replies first
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        self.other.close()

    @staticmethod
    def reply(qid, name, addr):
        hdr = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
        q = encode_name(name) + struct.pack("!HH", 1, 1)
        return hdr + q + encode_name(name) + struct.pack("!HHIH", 1, 1, 60, 4) + \
            socket.inet_aton(addr)

    def _loop(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            try:
                data, peer = self.sock.recvfrom(65535)
                q = parse_message(data, strict=False)
            except (OSError, DNSError):
                continue
            name = q.question[0][0]
            with self._lock:
                self.ports.append((peer[1], name.lower()))
            if name.lower().startswith("spoof-"):
                self.other.sendto(self.reply(q.id, name, "6.6.6.6"), peer)
                self.sock.sendto(self.reply(q.id ^ 0x0101, name, "6.6.6.6"), peer)
                self.sock.sendto(self.reply(q.id, "other." + name, "6.6.6.6"), peer)
                with self._lock:
                    self.spoofs += 1
            self.sock.sendto(self.reply(q.id, name, "192.0.2.1"), peer)

    def port_counts(self, prefix):
        with self._lock:
            out = {}
            for port, name in self.ports:
                if name.startswith(prefix):
                    out[port] = out.get(port, 0) + 1
            return out


def _blast_all(port, names, window):
    """Ask every name (A), at most @window at a time; return the replies."""
    out = []
    for i in range(0, len(names), window):
        out += udp_blast(port, [(n, "A") for n in names[i:i + window]], timeout=3.0)
    return out


def test_udp_queries_share_pooled_sockets_whose_ports_rotate():
    rec = PortRecorder().start()
    t = forward_server([{"zones": ["."], "plugins": {"forward": {
        "to": [f"127.0.0.1:{rec.port}"], "read_timeout": "2s"}}}], workers=1)
    try:
        # 5000 misses, 8 in flight at a time: a small pool carries them all.
        names = [f"q{i}.pool.example." for i in range(5000)]
        replies = _blast_all(t.port, names, 8)
        answered = sum(1 for m in replies if m is not None and m.rcode_name == "NOERROR"
                       and [r.data for r in m.answer] == ["192.0.2.1"])
        check(answered >= 4990, f"{answered} of 5000 answered")
        counts = rec.port_counts("q")
        # Reuse: a fresh socket per query would show ~5000 ports.
        check(len(counts) <= 50, f"{len(counts)} source ports for 5000 queries")
        # Rotation: no port carries more than 1000 queries, so 5000 need at least 5.
        check(max(counts.values()) <= 1000, f"a port carried {max(counts.values())} queries")
        check(len(counts) >= 5, f"only {len(counts)} source ports: no rotation")
        text = t.metrics()
        hits = metric_sum(text, "coredns_proxy_conn_cache_hits_total", proto="udp")
        misses = metric_sum(text, "coredns_proxy_conn_cache_misses_total", proto="udp")
        # Each socket is opened for a query (a miss); the kernel may reuse a port later.
        check(len(counts) <= misses <= 50, f"{misses} UDP socket opens, {len(counts)} ports")
        check(hits + misses >= 4990, f"conn cache hits {hits} + misses {misses}")
    finally:
        t.cleanup()
        rec.stop()


def test_spoofed_replies_on_a_shared_socket_are_dropped():
    rec = PortRecorder().start()
    t = forward_server([{"zones": ["."], "plugins": {"forward": {
        "to": [f"127.0.0.1:{rec.port}"], "read_timeout": "2s"}}}], workers=1)
    try:
        # 64 at once: several queries in flight on each socket when the bad replies come.
        names = [f"spoof-{i}.pool.example." for i in range(64)]
        replies = udp_blast(t.port, [(n, "A") for n in names], timeout=4.0)
        for n, m in zip(names, replies):
            check(m is not None, f"{n}: no answer")
            eq(m.rcode_name, "NOERROR", f"{n}: rcode")
            eq([r.data for r in m.answer], ["192.0.2.1"], f"{n}: the real reply only")
        counts = rec.port_counts("spoof-")
        check(len(counts) < len(names), f"{len(counts)} ports for {len(names)} queries")
        # Wrong ID and wrong question are seen and counted; the wrong port never
        # reaches ternd (the sockets are connected).
        bad = metric_sum(t.metrics(), "tern_upstream_bad_replies_total")
        eq(rec.spoofs, len(names), "queries answered with bad replies first")
        eq(bad, 2 * len(names), "bad replies counted")
    finally:
        t.cleanup()
        rec.stop()


# ---------------------------------------------------------------------- DNS over TLS

certs = {}


def _certs():
    """A CA, and a server certificate it signed for dns.test and 127.0.0.1 (made once)."""
    if certs:
        return certs
    require_tool("openssl")
    d = tempfile.mkdtemp(prefix="tern-dot-")

    def ossl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=30)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=Tern test CA")
    ossl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=dns.test")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:dns.test,IP:127.0.0.1\n"
                "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    certs.update(dir=d, ca=os.path.join(d, "ca.pem"), cert=os.path.join(d, "server.pem"),
                 key=os.path.join(d, "server.key"))
    return certs


def dot(*records, **kw):
    """A started PyUpstream for pub.example speaking DNS over TLS on its TCP port."""
    c = _certs()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(c["cert"], c["key"])
    return py(*records, tls=ctx, **kw)


def tls_to(u, name=None):
    return f"tls://127.0.0.1{'%' + name if name else ''}:{u.port}"


def test_dot_upstream_answers_with_tls_servername_and_ca():
    u = dot(("www.pub.example", "A", "192.0.2.53"))
    t = forward_server([{"zones": ["."], "plugins": {"forward": {
        "to": [tls_to(u)], "tls_servername": "dns.test", "tls": {"ca": _certs()["ca"]}}}}])
    try:
        for _ in range(3):
            m = query(t.port, "www.pub.example", rd=True)
            eq(m.rcode_name, "NOERROR", "rcode over DoT")
            eq([r.data for r in m.answer], ["192.0.2.53"], "answer over DoT")
        m = query(t.port, "www.pub.example", tcp=True, rd=True)
        eq([r.data for r in m.answer], ["192.0.2.53"], "TCP client, DoT upstream")
        eq(u.count(proto="udp") + u.count(proto="tcp"), 0, "plain DNS sent to a tls:// upstream")
        check(u.count("www.pub.example.", proto="tls") >= 1, "the upstream saw no DoT query")
        check(1 <= u.tls_conns <= 2, f"{u.tls_conns} TLS connections for 4 queries (2 workers)")
        text = t.metrics()
        check(metric_sum(text, "tern_upstream_tls_handshakes_total") >= 1, "tls_handshakes")
        eq(metric_sum(text, "tern_upstream_tls_failures_total"), 0, "tls_failures")
    finally:
        t.cleanup()
        u.stop()


def test_dot_per_upstream_server_name_and_ip_verification_without_one():
    u = dot(("www.pub.example", "A", "192.0.2.54"))
    ca = {"ca": _certs()["ca"]}
    for to in (tls_to(u, "dns.test"), tls_to(u)):
        # No name: the certificate must carry the IP address (it has 127.0.0.1).
        t = forward_server([{"zones": ["."], "plugins": {"forward": {"to": [to], "tls": ca}}}])
        try:
            m = query(t.port, "www.pub.example", rd=True)
            eq([r.data for r in m.answer], ["192.0.2.54"], f"answer via {to}")
        finally:
            t.cleanup()
    u.stop()


def test_dot_wrong_server_name_fails_over_to_the_next_upstream():
    bad = dot(("www.pub.example", "A", "192.0.2.66"))
    good = py(("www.pub.example", "A", "192.0.2.1"))
    t = forward_server([{"zones": ["."], "plugins": {"forward": {
        "to": [tls_to(bad), upstream(good)], "policy": "sequential",
        "tls_servername": "wrong.test", "tls": {"ca": _certs()["ca"]}}}}])
    try:
        m = query(t.port, "www.pub.example", rd=True)
        eq([r.data for r in m.answer], ["192.0.2.1"], "answer from the next upstream")
        eq(bad.count(), 0, "a query reached an upstream whose certificate was rejected")
        eq(bad.tls_conns, 0, "handshake completed despite the wrong name")
        check(metric_sum(t.metrics(), "tern_upstream_tls_failures_total") >= 1,
              "tern_upstream_tls_failures_total")
        check("certificate rejected" in t.log_text(), "no log line about the certificate")
    finally:
        t.cleanup()
        good.stop()
    # Alone: SERVFAIL. The same without tls.ca (the system store does not know our CA).
    for fwd in ({"tls_servername": "wrong.test", "tls": {"ca": _certs()["ca"]}},
                {"tls_servername": "dns.test"}):
        t = forward_server([{"zones": ["."], "plugins": {"forward": {
            "to": [tls_to(bad)], **fwd}}}])
        try:
            m = query(t.port, "www.pub.example", rd=True, timeout=4, retries=0)
            eq(m.rcode_name, "SERVFAIL", f"rcode with {fwd}")
            eq(bad.count(), 0, "query sent over an unverified connection")
        finally:
            t.cleanup()
    bad.stop()


def test_dot_pipelines_queries_on_one_connection_and_resumes_the_session():
    u = dot(("www.pub.example", "A", "192.0.2.55"))
    t = forward_server([{"zones": ["."], "plugins": {"forward": {
        "to": [tls_to(u)], "tls_servername": "dns.test", "tls": {"ca": _certs()["ca"]}}}}],
        workers=1)
    try:
        n = 200
        replies = udp_blast(t.port, [(f"q{i}.pub.example", "A") for i in range(n)],
                            timeout=5.0)
        answered = sum(1 for r in replies if r is not None and r.rcode_name == "NXDOMAIN")
        eq(answered, n, "NXDOMAIN answers over one DoT connection")
        eq(u.count(proto="tls"), n, "DoT queries seen by the upstream")
        eq(u.tls_conns, 1, "TLS connections (one worker: one pooled connection)")
        # The upstream restarts: the next connection resumes the saved session.
        u.stop()
        time.sleep(0.2)
        u.start()
        m = query(t.port, "www.pub.example", rd=True)
        eq([r.data for r in m.answer], ["192.0.2.55"], "answer after the reconnect")
        eq(u.tls_conns, 2, "TLS connections after the restart")
        eq(u.tls_resumed, 1, "resumed TLS sessions")
        check(metric_sum(t.metrics(), "tern_upstream_tls_resumed_total") >= 1,
              "tern_upstream_tls_resumed_total")
    finally:
        t.cleanup()
        u.stop()


# unbound's DNS-over-TLS service: its port is a TLS-only TCP listener (no UDP, no plain
# TCP), so every query it logs came over TLS.
UNBOUND_DOT_ZONE = {"dot.example": ["dot.example. 300 IN SOA ns hostmaster 1 3600 600 86400 60",
                                    "www.dot.example. 300 IN A 192.0.2.80",
                                    "mail.dot.example. 300 IN A 192.0.2.81"]}


def unbound_dot():
    if not any(os.path.exists(os.path.join(d, "unbound")) for d in ("/usr/sbin", "/usr/bin")):
        raise Skip("unbound not installed (tools/deps.sh)")
    c = _certs()
    return Unbound(UNBOUND_DOT_ZONE, tls=(c["cert"], c["key"])).start()


def plain_refused(port, tcp):
    """True if a plain (non-TLS) query to port gets no DNS answer."""
    try:
        query(port, "www.dot.example", tcp=tcp, timeout=0.5, retries=0)
    except (OSError, TimeoutError, DNSError):
        return True
    return False


def test_dot_to_unbound_tls_service_answers_udp_and_tcp_clients():
    ub = unbound_dot()
    probe_conns = ub.tls_connections()      # the readiness probe's
    t = forward_server([{"zones": ["."], "plugins": {"forward": {
        "to": [tls_to(ub)], "tls_servername": "dns.test", "tls": {"ca": _certs()["ca"]}}}}])
    try:
        m = query(t.port, "www.dot.example", rd=True)
        eq(m.rcode_name, "NOERROR", "rcode from unbound over DoT")
        eq([r.data for r in m.answer], ["192.0.2.80"], "UDP client, unbound DoT upstream")
        m = query(t.port, "mail.dot.example", tcp=True, rd=True)
        eq([r.data for r in m.answer], ["192.0.2.81"], "TCP client, unbound DoT upstream")
        m = query(t.port, "nope.dot.example", rd=True)
        eq(m.rcode_name, "NXDOMAIN", "NXDOMAIN from unbound's local zone")
        check(m.rrs("authority", "SOA"), f"NXDOMAIN without the SOA: {m}")
        for name in ("www.dot.example.", "mail.dot.example.", "nope.dot.example."):
            wait_for(lambda: ub.queries(name, "A"), 3, what=f"unbound to log {name} A")
        conns = ub.tls_connections() - probe_conns
        check(1 <= conns <= 2, f"{conns} TLS connections at unbound for 3 queries (2 workers)")
        check("ssl handshake failed" not in ub.log_text(), "a TLS handshake failed at unbound")
        check(plain_refused(ub.port, False) and plain_refused(ub.port, True),
              "unbound's DoT port answered plain DNS")
        text = t.metrics()
        check(metric_sum(text, "tern_upstream_tls_handshakes_total") >= 1, "tls_handshakes")
        eq(metric_sum(text, "tern_upstream_tls_failures_total"), 0, "tls_failures")
    finally:
        t.cleanup()
        ub.cleanup()


def test_dot_to_unbound_wrong_server_name_is_servfail_and_sends_nothing():
    ub = unbound_dot()
    probe_conns = ub.tls_connections()
    t = forward_server([{"zones": ["."], "plugins": {"forward": {
        "to": [tls_to(ub)], "tls_servername": "wrong.test", "tls": {"ca": _certs()["ca"]}}}}])
    try:
        m = query(t.port, "www.dot.example", rd=True, timeout=4, retries=0)
        eq(m.rcode_name, "SERVFAIL", "rcode with a certificate for another name")
        check(metric_sum(t.metrics(), "tern_upstream_tls_failures_total") >= 1,
              "tern_upstream_tls_failures_total")
        check("certificate rejected" in t.log_text(), "no log line about the certificate")
        # ternd did reach unbound, and hung up during the handshake.
        wait_for(lambda: "SSL_handshake" in ub.log_text() or "ssl handshake failed"
                 in ub.log_text(), 3, what="unbound to log the aborted handshake")
        eq(ub.queries("www.dot.example."), [], "queries unbound saw over a rejected TLS session")
        eq(ub.tls_connections() - probe_conns, 0, "TLS sessions unbound completed")
    finally:
        t.cleanup()
        ub.cleanup()


if __name__ == "__main__":
    run_tests(globals())
