#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Integration tests of the cache plugin in front of forward, on loopback.

The upstream is an in-process ternlib.PyUpstream that counts every query it gets, so
each test can say exactly how many questions reached it: hits that never leave ternd,
TTLs counted down between hits, negative answers kept for the SOA minimum, identical
misses in flight coalesced into one upstream query, popular entries prefetched before
they expire, and stale answers served when the upstream is gone (RFC 8767). Options are
those of lib/plugins/cache/cache.h (CoreDNS's names).
Run: python3 tests/integration/test_cache.py [name-filter...]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import (PyUpstream, Ternd, check, eq, metric_sum, query, require_tool,  # noqa: E402
                     run_tests, udp_blast, wait_for)
import re  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402


def cached_server(u, cache=None, forward=None, workers=2):
    """ternd: local + cache + forward to @u for every name."""
    fwd = {"to": [f"127.0.0.1:{u.port}"], "read_timeout": "1s"}
    fwd.update(forward or {})
    cfg = {"workers": workers, "servers": [{"zones": ["."], "plugins": {
        "local": {}, "cache": cache if cache is not None else {}, "forward": fwd}}]}
    return Ternd(cfg).start(zone="localhost")


def upstream(**kw):
    u = PyUpstream(zone="pub.example.", **kw)
    u.add("www.pub.example", "A", "192.0.2.10", ttl=30)
    u.add("short.pub.example", "A", "192.0.2.11", ttl=4)
    u.add("two.pub.example", "A", "192.0.2.12", ttl=2)
    return u.start()


def test_a_hit_is_answered_without_asking_the_upstream():
    u = upstream()
    t = cached_server(u)
    try:
        for _ in range(5):
            m = query(t.port, "www.pub.example", rd=True)
            eq([r.data for r in m.answer], ["192.0.2.10"], "answer")
        eq(u.count("www.pub.example."), 1, "upstream queries for five asks")
        text = t.metrics()
        check(metric_sum(text, "coredns_cache_hits_total") >= 4, "coredns_cache_hits_total")
        check(metric_sum(text, "coredns_cache_misses_total") >= 1, "coredns_cache_misses_total")
        check(metric_sum(text, "coredns_cache_entries") >= 1, "coredns_cache_entries")
    finally:
        t.cleanup()
        u.stop()


def test_ttl_counts_down_between_two_hits():
    u = upstream()
    t = cached_server(u)
    try:
        first = query(t.port, "www.pub.example", rd=True).answer[0].ttl
        check(first <= 30, f"first TTL {first} above the record's 30")
        time.sleep(2.2)
        second = query(t.port, "www.pub.example", rd=True).answer[0].ttl
        check(first - 3 <= second <= first - 2, f"TTL {first} then {second} after 2.2 s")
        eq(u.count("www.pub.example."), 1, "upstream queries")
    finally:
        t.cleanup()
        u.stop()


def test_negative_answers_are_cached_for_the_soa_minimum():
    u = upstream(soa_min=3)
    t = cached_server(u)
    try:
        m = query(t.port, "nope.pub.example", rd=True)
        eq(m.rcode_name, "NXDOMAIN", "rcode")
        soa = m.rrs("authority", "SOA")
        check(soa and soa[0].ttl <= 3, f"authority SOA TTL above the SOA minimum: {m}")
        m = query(t.port, "nope.pub.example", rd=True)
        eq(m.rcode_name, "NXDOMAIN", "cached rcode")
        check(m.rrs("authority", "SOA"), "cached NXDOMAIN keeps its SOA")
        eq(u.count("nope.pub.example."), 1, "upstream queries while cached")
        # NODATA too.
        query(t.port, "www.pub.example", "TXT", rd=True)
        m = query(t.port, "www.pub.example", "TXT", rd=True)
        eq((m.rcode_name, len(m.answer)), ("NOERROR", 0), "cached NODATA")
        eq(u.count("www.pub.example.", "TXT"), 1, "NODATA upstream queries")
        time.sleep(3.5)
        eq(query(t.port, "nope.pub.example", rd=True).rcode_name, "NXDOMAIN", "after expiry")
        eq(u.count("nope.pub.example."), 2, "asked again once the SOA minimum passed")
    finally:
        t.cleanup()
        u.stop()


def test_denial_ttl_caps_the_negative_ttl():
    u = upstream(soa_min=300)
    t = cached_server(u, cache={"denial": {"ttl": 2}})
    try:
        first = query(t.port, "nope.pub.example", rd=True)
        check(first.rrs("authority", "SOA")[0].ttl <= 2, f"denial ttl cap on the miss: {first}")
        m = query(t.port, "nope.pub.example", rd=True)
        check(m.rrs("authority", "SOA")[0].ttl <= 2, f"denial ttl cap on a hit: {m}")
        eq(u.count("nope.pub.example."), 1, "upstream queries while cached")
        time.sleep(2.5)
        query(t.port, "nope.pub.example", rd=True)
        eq(u.count("nope.pub.example."), 2, "asked again after the capped TTL")
    finally:
        t.cleanup()
        u.stop()


def test_identical_misses_in_flight_are_coalesced_into_one_upstream_query():
    u = upstream(delay=0.5)
    t = cached_server(u, workers=1)
    try:
        replies = udp_blast(t.port, [("www.pub.example", "A")] * 20, timeout=3.0, sockets=20)
        answered = [r for r in replies if r is not None]
        eq(len(answered), 20, "answers")
        check(all([x.data for x in r.answer] == ["192.0.2.10"] for r in answered), "all right")
        eq(u.count("www.pub.example."), 1, "upstream queries for 20 simultaneous misses")
    finally:
        t.cleanup()
        u.stop()


def test_popular_entry_is_prefetched_before_it_expires():
    u = upstream()
    t = cached_server(u, cache={"prefetch": {"amount": 2, "duration": "1m", "percentage": 30}})
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 6.0:
            m = query(t.port, "short.pub.example", rd=True)
            eq([r.data for r in m.answer], ["192.0.2.11"], "answer")
            check(m.answer[0].ttl >= 1, "served an expired TTL")
            time.sleep(0.2)
        times = u.times("short.pub.example.")
        check(len(times) >= 2, f"no refresh in 6 s of a 4 s TTL: {times}")
        gap = times[1] - times[0]
        check(gap < 4.0, f"second upstream query {gap:.2f}s after the first: not before expiry")
        check(metric_sum(t.metrics(), "coredns_cache_prefetch_total") >= 1,
              "coredns_cache_prefetch_total")
    finally:
        t.cleanup()
        u.stop()


def test_stale_answers_are_served_when_the_upstream_is_gone():
    u = upstream()
    t = cached_server(u, cache={"serve_stale": {"duration": "1h"}},
                      forward={"read_timeout": "300ms"})
    try:
        m = query(t.port, "two.pub.example", rd=True)
        eq([r.data for r in m.answer], ["192.0.2.12"], "fresh answer")
        u.stop()
        time.sleep(2.5)
        m = query(t.port, "two.pub.example", rd=True, timeout=3)
        eq(m.rcode_name, "NOERROR", "stale rcode")
        eq([r.data for r in m.answer], ["192.0.2.12"], "stale answer")
        check(metric_sum(t.metrics(), "coredns_cache_served_stale_total") >= 1,
              "coredns_cache_served_stale_total")
        # Without serve_stale the same situation is a SERVFAIL.
    finally:
        t.cleanup()
        u.stop()


def test_without_serve_stale_an_expired_entry_and_a_dead_upstream_give_servfail():
    u = upstream()
    t = cached_server(u, forward={"read_timeout": "300ms"})
    try:
        query(t.port, "two.pub.example", rd=True)
        u.stop()
        time.sleep(2.5)
        m = query(t.port, "two.pub.example", rd=True, timeout=4, retries=0)
        eq(m.rcode_name, "SERVFAIL", "expired, no upstream")
    finally:
        t.cleanup()
        u.stop()


def test_disable_success_for_a_zone_always_asks_upstream():
    u = upstream()
    t = cached_server(u, cache={"disable": {"success": ["pub.example."]}})
    try:
        for _ in range(3):
            query(t.port, "www.pub.example", rd=True)
        eq(u.count("www.pub.example."), 3, "upstream queries with success caching off")
    finally:
        t.cleanup()
        u.stop()


def test_local_names_never_enter_the_cache_or_reach_upstream():
    u = upstream()
    t = cached_server(u)
    try:
        for _ in range(3):
            eq([r.data for r in query(t.port, "localhost", rd=True).answer], ["127.0.0.1"],
               "localhost")
        eq(u.count(), 0, "upstream queries")
        wait_for(lambda: metric_sum(t.metrics(), "coredns_cache_misses_total") == 0, 2,
                 what="no cache misses for local names")
    finally:
        t.cleanup()
        u.stop()


def test_two_workers_share_the_cache_under_load_with_eviction_churn():
    """dnsperf over 300 names into a 64-entry cache on 2 workers: hits, stores and
    evictions race on the shared table (the suite also runs under TSan and ASan)."""
    dnsperf = require_tool("dnsperf")
    u = PyUpstream(zone="pub.example.")
    for i in range(300):
        u.add(f"n{i}.pub.example", "A", f"192.0.2.{i % 250 + 1}", ttl=60)
    u.start()
    t = cached_server(u, cache={"success": {"capacity": 64}, "denial": {"capacity": 64}})
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            for i in range(3000):   # half on 16 hot names, half spread over all 300
                n = (i * 7) % 16 if i % 2 else (i * 7919) % 300
                f.write(f"n{n}.pub.example A\n")
            qfile = f.name
        p = subprocess.run([dnsperf, "-s", "127.0.0.1", "-p", str(t.port), "-d", qfile,
                            "-l", "4", "-Q", "2000", "-t", "2"],
                           capture_output=True, text=True, timeout=60)
        os.unlink(qfile)
        out = p.stdout + p.stderr
        eq(p.returncode, 0, f"dnsperf exit code:\n{out}")
        lost = re.search(r"Queries lost:\s+(\d+)", out)
        done = re.search(r"Queries completed:\s+(\d+)", out)
        check(lost and done, f"unparsable dnsperf output:\n{out}")
        eq(int(lost.group(1)), 0, f"queries lost:\n{out}")
        check("SERVFAIL" not in out and "REFUSED" not in out, f"error rcodes:\n{out}")
        text = t.metrics()
        hits = metric_sum(text, "coredns_cache_hits_total")
        evictions = metric_sum(text, "coredns_cache_evictions_total")
        check(hits > 0 and evictions > 0, f"hits {hits}, evictions {evictions}")
        m = query(t.port, "n17.pub.example", rd=True)
        eq([r.data for r in m.answer], ["192.0.2.18"], "an answer after the churn")
    finally:
        t.cleanup()
        u.stop()


if __name__ == "__main__":
    run_tests(globals())
