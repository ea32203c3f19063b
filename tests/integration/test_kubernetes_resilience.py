#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The kubernetes watch under API faults, end to end (ternd + the fake API server).

Each test injects one fault through the fake server's /_control/ endpoints and then
checks that a later update still reaches the answers: watch streams cut (FIN and RST)
resume from their resourceVersion without a relist; garbage in a watch (invalid JSON,
a truncated event) drops the stream, which resumes without losing the event; a
compaction while the watcher is away gives 410 and a relist that removes what was
deleted in the gap (even when the first relist body is garbage); 500s are retried
with backoff; a stall is waited out; the API server killed and restarted (with a
higher --start-rv, and with a lower one, which the watch answers with 504
ResourceVersionTooLarge) is relisted; bookmarks keep a quiet watch resumable past a
short history. The faults show in ternd's tern_kubernetes_* metrics. The server splits
watch chunks into 37-byte pieces and sends bookmarks every second. All the while a
monitor thread queries two names every 5 ms: an outage must never turn them into
NXDOMAIN, SERVFAIL or silence.
"""

import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import (TERND, FakeApi, Skip, check, eq, is_knotd, metric_sum,  # noqa: E402
                     query, run_tests, wait_for)
from test_kubernetes import (ZONE, a_of, kube_config, negative, positive,  # noqa: E402
                             service, slice_, start_ternd, svc)

R = {}
WATCHED = 3      # services, endpointslices, namespaces


class Monitor(threading.Thread):
    """Queries names with known answers every 5 ms; remembers every wrong answer."""

    def __init__(self, port, expect):
        super().__init__(daemon=True)
        self.port, self.expect = port, expect
        self.stop_ev = threading.Event()
        self.bad = []
        self.count = 0

    def run(self):
        while not self.stop_ev.is_set():
            for name, want in self.expect.items():
                try:
                    m = query(self.port, name, "A", retries=0, timeout=1.0)
                    got = (m.rcode_name, tuple(sorted(r.data for r in m.answer)))
                except Exception as e:   # noqa: BLE001 - silence is a failure too
                    got = ("no answer", repr(e))
                self.count += 1
                if got != want:
                    self.bad.append((time.strftime("%H:%M:%S"), name, got))
            time.sleep(0.005)

    def check_clean(self):
        check(self.count > 0, "the monitor sent no query")
        check(not self.bad, f"{len(self.bad)} wrong answers during the faults, first: "
                            f"{self.bad[:5]}")


def setup_module():
    if is_knotd():
        raise Skip("the kubernetes plugin is Tern's own")
    if not os.path.exists(TERND):
        raise AssertionError(f"ternd not found at {TERND}")
    R["api"] = api = FakeApi(args=["--max-chunk", "37", "--bookmark-interval", "1"]).start()
    R["ternd"] = t = start_ternd(kube_config(api.url))
    R["mon"] = Monitor(t.port, {
        svc("web"): ("NOERROR", ("10.96.100.10",)),
        svc("db"): ("NOERROR", ("10.244.2.10", "10.244.2.11", "10.244.2.12")),
    })
    R["mon"].start()
    R["n"] = 0


def teardown_module():
    if "mon" in R:
        R["mon"].stop_ev.set()
        R["mon"].join()
    for k in ("ternd", "api"):
        if k in R:
            R[k].cleanup()


def api():
    return R["api"]


def t():
    return R["ternd"]


def bump(timeout=5.0, what="an update after the fault"):
    """Apply a new ClusterIP service; wait until it is answered; return its name."""
    R["n"] += 1
    n = R["n"]
    name, ip = f"probe-{n}", f"10.96.160.{n}"
    api().apply(service(name, "demo", cluster_ip=ip))
    wait_for(lambda: a_of(svc(name), t()) == ("NOERROR", (ip,)), timeout, 0.005, what)
    return name


def metric(name, **labels):
    return metric_sum(t().metrics(), name, **labels)


def counter(stats, key, resource=None):
    v = stats.get(key, 0)
    if isinstance(v, dict):
        v = v.get(resource, 0) if resource else sum(v.values())
    return int(v)


def open_watches():
    return counter(api().stats(), "open_watches")


def wait_watching(what="every watch to be open again"):
    wait_for(lambda: open_watches() == WATCHED, 10, 0.02, what)


# ---------------------------------------------------------------- tests

def test_baseline():
    wait_watching()
    bump(what="a plain update")
    R["mon"].check_clean()


def test_cut_resumes_without_relist():
    for mode in ("", "?mode=rst"):
        before = api().stats()
        out = api().control("cut" + mode)
        eq(out.get("cut"), WATCHED, f"watches cut ({mode or 'fin'})")
        bump(what=f"an update after a cut {mode}")
        wait_watching()
        after = api().stats()
        check(counter(after, "watches_started") >= counter(before, "watches_started") + WATCHED,
              "every watch was started again")
        eq(counter(after, "lists"), counter(before, "lists"), "lists (a cut needs no relist)")
    R["mon"].check_clean()


def test_garbage_in_watch():
    for mode in ("invalid", "truncated"):
        wait_watching()
        before = api().stats()
        api().control(f"garbage?mode={mode}&target=watch&resource=services")
        name = bump(what=f"the event replaced by {mode} garbage, after the resume")
        positive(svc(name), "A", [f"10.96.160.{R['n']}"], t())
        after = api().stats()
        check(counter(after, "watches_started", "services") >
              counter(before, "watches_started", "services"), "the services watch restarted")
        eq(after.get("pending_faults"), [], "the fault was used")
    check(t().running(), "ternd is alive")
    check(metric("tern_kubernetes_decode_errors_total") >= 1, "decode errors counted")
    positive(svc("api", "shop"), "A", ["10.96.200.10"], t())
    R["mon"].check_clean()


def test_compaction_gap_relists():
    """Away while objects are deleted and added, then 410: the relist drops the deleted."""
    wait_watching()
    api().apply([service("gap-old", "demo", headless=True),
                 slice_("gap-old", "demo", ["10.253.0.1"], "a"),
                 slice_("web", "demo", ["10.253.0.7"], "extra")])
    wait_for(lambda: a_of(svc("gap-old"), t()) == ("NOERROR", ("10.253.0.1",)), 3, 0.005,
             "gap-old")
    before = api().stats()
    api().control("stall?seconds=10")
    api().control("cut")
    api().delete("Service", "gap-old", "demo")
    api().delete("EndpointSlice", "gap-old-a", "demo")
    api().delete("EndpointSlice", "web-extra", "demo")
    api().apply(service("gap-new", "demo", cluster_ip="10.96.161.1"))
    api().control("compact")
    api().control("garbage?mode=invalid&target=list&resource=services")
    time.sleep(0.2)
    # away from the API: the last snapshot is still served
    positive(svc("gap-old"), "A", ["10.253.0.1"], t())
    positive("10-253-0-7." + svc("web"), "A", ["10.253.0.7"], t())
    api().control("stall?seconds=0")
    wait_for(lambda: a_of(svc("gap-new"), t()) == ("NOERROR", ("10.96.161.1",)), 5, 0.005,
             "gap-new after the relist")
    wait_for(lambda: a_of(svc("gap-old"), t())[0] == "NXDOMAIN" and
             a_of("10-253-0-7." + svc("web"), t())[0] == "NXDOMAIN", 5, 0.005,
             "objects deleted in the gap to be gone")
    negative(svc("gap-old"), "A", "NXDOMAIN", t())
    wait_watching()
    after = api().stats()
    check(counter(after, "lists") >= counter(before, "lists") + WATCHED + 1,
          f"every kind relisted, services twice: {before.get('lists')} -> {after.get('lists')}")
    check(re.search(r"too old, relisting", t().log_text()), "ternd logs the 410 relist")
    check(metric("tern_kubernetes_relists_total", reason="gone") >= WATCHED,
          "410 relists counted")
    for n in range(1, R["n"] + 1):     # nothing else was lost
        positive(svc(f"probe-{n}"), "A", [f"10.96.160.{n}"], t())
    bump(what="an update after the relist")
    R["mon"].check_clean()


def test_errors_back_off_then_recover():
    wait_watching()
    api().control("reset-stats")
    api().control("fail?code=500&count=6")
    api().control("cut")
    bump(timeout=10, what="an update after six 500s")
    wait_watching()
    codes = api().stats()["responses_by_code"]
    eq(int(codes.get("500", 0)), 6, f"500s served ({codes})")
    check("HTTP 500" in t().log_text(), "ternd logs the 500s")
    check(metric("tern_kubernetes_api_requests_total", code="5xx") >= 6, "500s counted")
    api().control("fail?code=429&count=1&resource=endpointslices")
    api().control("cut?resource=endpointslices")
    api().apply(slice_("web", "demo", ["10.253.1.1"], "after429"))
    wait_for(lambda: a_of("10-253-1-1." + svc("web"), t()) == ("NOERROR", ("10.253.1.1",)),
             10, 0.005, "an endpoint update after a 429")
    api().delete("EndpointSlice", "web-after429", "demo")
    R["mon"].check_clean()


def test_stall_is_waited_out():
    wait_watching()
    api().control("stall?seconds=1.5")
    R["n"] += 1
    name, ip = f"probe-{R['n']}", f"10.96.160.{R['n']}"
    t0 = time.monotonic()
    api().apply(service(name, "demo", cluster_ip=ip))
    time.sleep(0.3)
    eq(a_of(svc(name), t())[0], "NXDOMAIN", "the update is held by the stall")
    positive(svc("web"), "A", ["10.96.100.10"], t())
    wait_for(lambda: a_of(svc(name), t()) == ("NOERROR", (ip,)), 10, 0.005,
             "the update after the stall")
    check(time.monotonic() - t0 >= 1.0, "the update arrived only after the stall")
    R["mon"].check_clean()


def test_bookmarks_keep_a_quiet_watch_resumable():
    """A short history (20 events) and 60 slice changes: without bookmarks the quiet
    namespaces watch would fall out of the history and relist after a cut; the
    bookmark moves its resourceVersion, so it resumes."""
    fa = FakeApi(args=["--history", "20"]).start()
    tt = None
    try:
        tt = start_ternd(kube_config(fa.url))
        wait_for(lambda: open_watches_of(fa) == WATCHED, 10, 0.02, "watches")
        for i in range(60):
            fa.apply(slice_("web", "demo", [f"10.253.2.{i + 1}"], "churn"))
        wait_for(lambda: a_of("10-253-2-60." + svc("web"), tt)[0] == "NOERROR", 3, 0.005,
                 "the last change")
        fa.control("bookmark")
        time.sleep(0.2)
        before = fa.stats()
        fa.control("cut")
        fa.apply(service("after-bookmark", "demo", cluster_ip="10.96.162.1"))
        wait_for(lambda: a_of(svc("after-bookmark"), tt) == ("NOERROR", ("10.96.162.1",)), 5,
                 0.005, "an update after the cut")
        wait_for(lambda: open_watches_of(fa) == WATCHED, 10, 0.02, "watches resumed")
        eq(counter(fa.stats(), "lists"), counter(before, "lists"),
           "lists (bookmarked watches resume without a relist)")
        check("too old" not in tt.log_text(), "no 410 after the bookmark")
    finally:
        if tt:
            tt.cleanup()
        fa.cleanup()


def open_watches_of(fa):
    return counter(fa.stats(), "open_watches")


def _outage(seconds):
    """The API server is dead: answers, /ready and NXDOMAIN for what never existed stay."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        positive(svc(f"probe-{R['n']}"), "A", [f"10.96.160.{R['n']}"], t())
        negative(svc("never-existed"), "A", "NXDOMAIN", t())
        eq(t().http("ready")[0], 200, "/ready during an outage after the first sync")
        time.sleep(0.1)


def test_api_killed_and_restarted_higher_rv():
    wait_watching()
    rv = int(api().stats()["resourceVersion"])
    last = f"probe-{R['n']}"
    api().kill()
    _outage(1.5)
    api().restart(args=api().args + ["--start-rv", str(rv + 100000)])
    # the new server has only the demo cluster: 410 on resume, relist, probes gone
    wait_for(lambda: a_of(svc(last), t())[0] == "NXDOMAIN", 10, 0.01,
             "the relist after the restart")
    positive(svc("web"), "A", ["10.96.100.10"], t())
    wait_watching()
    bump(timeout=5, what="an update after the restart")
    R["mon"].check_clean()


def test_api_restarted_with_lower_rv():
    """The new server is behind the watcher's resourceVersion: the watch gets 504
    ResourceVersionTooLarge after ~3 s, and the watcher must relist, not retry forever."""
    wait_watching()
    last = f"probe-{R['n']}"
    api().kill()
    api().restart(args=api().args + ["--start-rv", "1000"])
    wait_for(lambda: a_of(svc(last), t())[0] == "NXDOMAIN", 15, 0.01,
             "the relist after a restart with a lower resourceVersion")
    wait_watching()
    codes = api().stats()["responses_by_code"]
    check(int(codes.get("504", 0)) >= 1, f"the 504 path was taken ({codes})")
    bump(timeout=5, what="an update after the relist")
    positive(svc("db"), "A", ["10.244.2.10", "10.244.2.11", "10.244.2.12"], t())
    R["mon"].check_clean()
    check(t().running(), "ternd is alive")


if __name__ == "__main__":
    run_tests(globals())
