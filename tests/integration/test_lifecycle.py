#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The daemon's life: command line, config checks, reloads, shutdown, HTTP endpoints.

--version and --check-config (good config exits 0; bad ones exit 1 with one
FILE:LINE:COL: PATH: MESSAGE line per problem, at the right line); SIGHUP reload
picking up a changed zone and hosts entry; a bad config on SIGHUP keeps the old one
running and increments coredns_reload_failed_total; a reload under dnsperf load loses
no query; the file plugin's own reload when the zone file changes; SIGTERM turns
/ready to 503 while queries are still answered for the lameduck time, then exit 0;
/metrics passes `promtool check metrics` and counts exactly the queries sent;
/health answers 200. Tern-only: skipped as a whole under TERN_TARGET=knotd.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import (SOURCE_ROOT, TERND, Skip, Ternd, check, eq, is_knotd,  # noqa: E402
                     free_port, make_query, metric_sum, query, read_data, require_tool,
                     run_tests, udp_exchange, wait_for, RCODES)

ZONE = read_data("example.org.zone")
DIAG = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<path>\S*): (?P<msg>.+)$")
SYNTAX = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$")


def setup_module():
    if is_knotd():
        raise Skip("lifecycle tests exercise ternd itself")
    if not os.path.exists(TERND):
        raise AssertionError(f"ternd not found at {TERND}")


def base_config(hosts_ip="10.0.0.1", zone_file="example.org.zone", extra_file_opts=None,
                log=False):
    plugins = {"hosts": {"entries": [f"{hosts_ip} r.example.org"], "fallthrough": True},
               "file": dict({"path": zone_file}, **(extra_file_opts or {})),
               "errors": {}}
    if log:
        plugins = dict({"log": {"class": ["all"]}}, **plugins)
    return {"servers": [{"zones": ["example.org"], "plugins": plugins}]}


def start(config=None, files=None, **kw):
    t = Ternd(config or base_config(**kw), files=files or {"example.org.zone": ZONE})
    return t.start()


def a_records(port, name):
    return sorted(r.data for r in query(port, name, "A").answer)


def run_ternd(*args, timeout=20):
    return subprocess.run([TERND] + list(args), capture_output=True, text=True, timeout=timeout)


def diag_lines(stderr):
    return [m for m in (DIAG.match(ln.strip()) for ln in stderr.splitlines()) if m]


# ---------------------------------------------------------------- command line

def test_version():
    p = run_ternd("--version")
    eq(p.returncode, 0, "exit code")
    m = re.match(r"^ternd (\S+)$", p.stdout.strip())
    check(m, f"--version output: {p.stdout!r}")
    with open(os.path.join(SOURCE_ROOT, "meson.build"), encoding="utf-8") as f:
        want = re.search(r"version\s*:\s*'([^']+)'", f.read())
    if want:
        eq(m.group(1), want.group(1), "version matches meson.build")


def test_check_config_good():
    t = Ternd(base_config(), files={"example.org.zone": ZONE})
    for rel, text in t.files.items():
        t.write(rel, text)
    t.write_config()
    p = run_ternd("--check-config", t.config_path)
    t.cleanup()
    eq(p.returncode, 0, f"exit code (stderr: {p.stderr})")
    eq(diag_lines(p.stderr), [], "no diagnostics for a good config")


def _check_bad(text, files=None):
    t = Ternd({"servers": []}, files=files or {})
    for rel, body in t.files.items():
        t.write(rel, body)
    path = t.write("bad.yaml", text)
    p = run_ternd("--check-config", path)
    t.cleanup()
    eq(p.returncode, 1, f"exit code for a bad config (stderr: {p.stderr})")
    lines = diag_lines(p.stderr)
    check(lines, f"no FILE:LINE:COL: PATH: MESSAGE line in: {p.stderr!r}")
    for m in lines:
        check(m.group("file") == path or os.path.basename(m.group("file")) == "bad.yaml",
              f"diagnostic names {m.group('file')}, not the config")
    return lines, p.stderr


def test_check_config_reports_every_problem():
    text = (
        "workers: lots\n"                                                   # line 1
        "health: {listen: \"127.0.0.1:18080\", lameduck: soon}\n"           # line 2
        "servers:\n"
        "  - zones: [example.org]\n"
        "    listen: [\"127.0.0.1:notaport\"]\n"                            # line 5
        "    plugins:\n"
        "      file: {path: example.org.zone}\n"
    )
    lines, stderr = _check_bad(text, {"example.org.zone": ZONE})
    got = {int(m.group("line")) for m in lines}
    for line, what in ((1, "workers"), (2, "lameduck"), (5, "listen")):
        check(line in got, f"no diagnostic at line {line} ({what}); got:\n{stderr}")
        m = next(m for m in lines if int(m.group("line")) == line)
        check(what in m.group("path"), f"line {line} path {m.group('path')!r} lacks {what!r}")
        check(int(m.group("col")) >= 1, "column is 1-based")


def test_check_config_missing_zone_file():
    text = ("servers:\n"
            "  - zones: [example.org]\n"
            "    listen: [\"127.0.0.1:15399\"]\n"
            "    plugins:\n"
            "      file: {path: no-such-file.zone}\n")                     # line 5
    lines, stderr = _check_bad(text)
    check(any(int(m.group("line")) == 5 for m in lines), f"missing file not at line 5:\n{stderr}")


def test_check_config_unknown_key():
    text = ("servers:\n"
            "  - zones: [example.org]\n"
            "    listen: [\"127.0.0.1:15399\"]\n"
            "    plugins:\n"
            "      nosuchplugin: {}\n")                                     # line 5
    lines, stderr = _check_bad(text)
    check(any("nosuchplugin" in m.group("msg") or "nosuchplugin" in m.group("path")
              for m in lines), f"unknown key not named:\n{stderr}")
    check(any(int(m.group("line")) == 5 for m in lines), f"unknown key not at line 5:\n{stderr}")


def test_check_config_yaml_syntax():
    # A syntax error has no node path: FILE:LINE:COL: MESSAGE is accepted as well.
    t = Ternd({"servers": []})
    path = t.write("bad.yaml", "servers:\n  - zones: [example.org\n    listen: x\n")
    p = run_ternd("--check-config", path)
    t.cleanup()
    eq(p.returncode, 1, f"exit code for a syntax error (stderr: {p.stderr})")
    pos = [m for m in (SYNTAX.match(ln.strip()) for ln in p.stderr.splitlines()) if m]
    check(pos, f"no FILE:LINE:COL: line in {p.stderr!r}")
    for m in pos:
        eq(m.group("file"), path, "file named in the syntax error")
        check(int(m.group("line")) in (2, 3), f"syntax error position:\n{p.stderr}")


# ---------------------------------------------------------------- HTTP endpoints

def test_health_and_ready():
    t = start()
    try:
        status, body = t.http("health")
        eq(status, 200, "/health status")
        check("OK" in body, f"/health body {body!r}")
        status, _ = t.http("ready")
        eq(status, 200, "/ready status")
    finally:
        t.cleanup()


def test_metrics_promtool_and_counts():
    promtool = require_tool("promtool")
    t = start(log=True)
    try:
        before = t.metrics()
        for i in range(20):
            eq(a_records(t.port, "www.example.org"), ["192.0.2.10"], "answer")
        for i in range(5):
            m = query(t.port, f"nx{i}.example.org", "A", tcp=True)
            eq(m.rcode, RCODES["NXDOMAIN"], "rcode")

        def counted():
            after = t.metrics()
            d_req = metric_sum(after, "coredns_dns_requests_total") - \
                metric_sum(before, "coredns_dns_requests_total")
            d_nx = metric_sum(after, "coredns_dns_responses_total", rcode="NXDOMAIN") - \
                metric_sum(before, "coredns_dns_responses_total", rcode="NXDOMAIN")
            d_ok = metric_sum(after, "coredns_dns_responses_total", rcode="NOERROR") - \
                metric_sum(before, "coredns_dns_responses_total", rcode="NOERROR")
            return (d_req, d_ok, d_nx) == (25, 20, 5) and after, (d_req, d_ok, d_nx)
        after = None
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            after, got = counted()
            if after:
                break
            time.sleep(0.2)
        check(after, f"request/NOERROR/NXDOMAIN deltas {got}, want (25, 20, 5)")
        p = subprocess.run([promtool, "check", "metrics"], input=after, capture_output=True,
                           text=True, timeout=30)
        eq(p.returncode, 0, f"promtool check metrics: {p.stdout}{p.stderr}")
        check("nx3.example.org" in t.log_text(), "log plugin logged the queries")
    finally:
        t.cleanup()


# ---------------------------------------------------------------- reloads

def test_sighup_reload_picks_up_changes():
    v2 = ZONE.replace("www         IN A    192.0.2.10", "www         IN A    192.0.2.111")
    check(v2 != ZONE, "test zone edit")
    t = start()
    try:
        eq(a_records(t.port, "r.example.org"), ["10.0.0.1"], "hosts entry")
        eq(a_records(t.port, "www.example.org"), ["192.0.2.10"], "zone data")
        t.write("example.org.v2.zone", v2)
        t.write_config(base_config(hosts_ip="10.0.0.2", zone_file="example.org.v2.zone"))
        t.reload()
        wait_for(lambda: a_records(t.port, "r.example.org") == ["10.0.0.2"], 10,
                 what="new hosts entry after SIGHUP")
        wait_for(lambda: a_records(t.port, "www.example.org") == ["192.0.2.111"], 10,
                 what="new zone file after SIGHUP")
        check(t.running(), "still running")
        eq(t.http("ready")[0], 200, "/ready after reload")
    finally:
        t.cleanup()


def test_sighup_bad_config_keeps_old():
    t = start()
    try:
        failed0 = metric_sum(t.metrics(), "coredns_reload_failed_total")
        t.write_config(raw="workers: lots\nservers: [\n")
        t.reload()
        wait_for(lambda: metric_sum(t.metrics(), "coredns_reload_failed_total") == failed0 + 1,
                 10, what="coredns_reload_failed_total to increment")
        check(t.running(), "a bad config must not stop the server")
        eq(a_records(t.port, "r.example.org"), ["10.0.0.1"], "old config still serving")
        eq(a_records(t.port, "www.example.org"), ["192.0.2.10"], "old zone still serving")
        check(re.search(r"ternd\.yaml:\d+:\d+", t.log_text()), "reload error logged with position")
        # a semantically bad config (valid YAML) must also be refused as a whole
        t.write_config(raw=t.render(base_config(hosts_ip="10.0.0.9", zone_file="missing.zone")))
        t.reload()
        wait_for(lambda: metric_sum(t.metrics(), "coredns_reload_failed_total") == failed0 + 2,
                 10, what="second reload failure counted")
        eq(a_records(t.port, "r.example.org"), ["10.0.0.1"], "no partial reload")
        # and a good one afterwards is taken
        t.write_config(base_config(hosts_ip="10.0.0.3"))
        t.reload()
        wait_for(lambda: a_records(t.port, "r.example.org") == ["10.0.0.3"], 10,
                 what="recovery with a good config")
    finally:
        t.cleanup()


def _dnsperf_qfile(t):
    lines = ["www.example.org A", "mail.example.org AAAA", "example.org MX", "r.example.org A",
             "txt.example.org TXT", "alias.example.org A", "nope.example.org A"]
    return t.write("queries.txt", "\n".join(lines) + "\n")


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_busy_sockets_are_polled_then_sleep_again():
    """A flood makes the workers read their UDP sockets every turn instead of waiting in
    epoll (tern_udp_polled_total); once it stops they go back to sleep: ternd idles."""
    dnsperf = require_tool("dnsperf")
    config = base_config()
    config["workers"] = 1   # one socket takes the whole flood: a backlog for sure
    t = start(config)
    try:
        qfile = _dnsperf_qfile(t)
        out = subprocess.run([dnsperf, "-s", "127.0.0.1", "-p", str(t.port), "-d", qfile,
                              "-l", "2", "-c", "4", "-q", "500"], capture_output=True,
                             text=True, timeout=60).stdout
        done = re.search(r"Queries completed:\s+(\d+)", out)
        check(done and int(done.group(1)) > 5000, f"the flood did not run:\n{out}")
        check(metric_sum(t.metrics(), "tern_udp_polled_total") >= 1,
              "no worker switched a busy socket to polling")
        time.sleep(0.5)
        c0 = _cpu_seconds(t.proc.pid)
        time.sleep(2.0)
        used = _cpu_seconds(t.proc.pid) - c0
        check(used < 0.3, f"ternd used {used:.2f} s of CPU in 2 s idle: a worker kept polling")
        eq(a_records(t.port, "r.example.org"), ["10.0.0.1"], "answers after the flood")
    finally:
        t.cleanup()


def test_reload_under_load_loses_nothing():
    dnsperf = require_tool("dnsperf")
    t = start()
    try:
        qfile = _dnsperf_qfile(t)
        p = subprocess.Popen([dnsperf, "-s", "127.0.0.1", "-p", str(t.port), "-d", qfile,
                              "-l", "5", "-Q", "2000", "-t", "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        reloads = []

        def hup():
            for i in range(4):
                time.sleep(0.9)
                t.write_config(base_config(hosts_ip=f"10.0.1.{i + 1}"))
                t.reload()
                reloads.append(i)
        th = threading.Thread(target=hup)
        th.start()
        out, _ = p.communicate(timeout=60)
        th.join()
        eq(p.returncode, 0, f"dnsperf exit code:\n{out}")
        lost = re.search(r"Queries lost:\s+(\d+)", out)
        done = re.search(r"Queries completed:\s+(\d+)", out)
        check(lost and done, f"unparsable dnsperf output:\n{out}")
        eq(int(lost.group(1)), 0, f"queries lost during reloads:\n{out}")
        check(int(done.group(1)) >= 5000, f"too few queries completed:\n{out}")
        check("SERVFAIL" not in out and "REFUSED" not in out, f"error rcodes under reload:\n{out}")
        eq(len(reloads), 4, "reloads sent")
        wait_for(lambda: a_records(t.port, "r.example.org") == ["10.0.1.4"], 10,
                 what="last reload applied")
    finally:
        t.cleanup()


def _answers(port):
    try:
        return query(port, "www.example.org", "A", timeout=0.3, retries=0).rcode == 0
    except (OSError, TimeoutError, AssertionError):
        return False


def test_reload_opens_new_listeners_and_closes_dropped_ones():
    t = start()
    try:
        p1, p2 = t.port, free_port(False)
        cfg = base_config()
        cfg["servers"][0]["listen"] = [f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"]
        t.write_config(cfg)
        t.reload()
        wait_for(lambda: _answers(p2), 10, what=f"answers on the new listener :{p2}")
        check(_answers(p1), "the unchanged listener still answers")
        cfg["servers"][0]["listen"] = [f"127.0.0.1:{p2}"]
        t.write_config(cfg)
        t.reload()
        wait_for(lambda: not _answers(p1), 10, what=f"the dropped listener :{p1} closed")
        check(_answers(p2), "the kept listener still answers")
    finally:
        t.cleanup()


def test_reload_to_an_unbindable_address_keeps_the_old_config():
    t = start()
    try:
        failed0 = metric_sum(t.metrics(), "coredns_reload_failed_total")
        cfg = base_config()
        # 192.0.2.0/24 (TEST-NET-1) is not on this host: bind fails, nothing is sent.
        cfg["servers"][0]["listen"] = [f"127.0.0.1:{t.port}", f"192.0.2.1:{t.port}"]
        t.write_config(cfg)
        t.reload()
        wait_for(lambda: metric_sum(t.metrics(), "coredns_reload_failed_total") == failed0 + 1,
                 10, what="reload counted as failed")
        check("cannot listen on 192.0.2.1" in t.log_text(), "the reason is logged")
        check(_answers(t.port), "the old config still answers")
    finally:
        t.cleanup()


def test_file_plugin_reloads_changed_zone():
    t = start(extra_file_opts={"reload": "1s"})
    try:
        m = query(t.port, "new.example.org", "A")
        eq(m.rcode, RCODES["NXDOMAIN"], "before the change")
        v2 = ZONE.replace("2024010101", "2024010102") + "new         IN A    192.0.2.123\n"
        time.sleep(1.1)     # a different mtime second on coarse file systems
        t.write("example.org.zone", v2)
        wait_for(lambda: a_records(t.port, "new.example.org") == ["192.0.2.123"], 8,
                 interval=0.2, what="file plugin reload of the changed zone")
        soa = query(t.port, "example.org", "SOA").answer[0].data
        eq(soa[2], 2024010102, "new serial")
    finally:
        t.cleanup()


# ---------------------------------------------------------------- shutdown

def test_sigterm_lameduck():
    cfg = base_config()
    cfg["health"] = {"lameduck": "2s"}
    t = start(cfg)
    try:
        eq(t.http("ready")[0], 200, "/ready before SIGTERM")
        t0 = time.monotonic()
        t.send_signal(signal.SIGTERM)
        wait_for(lambda: t.http("ready")[0] == 503, 1.0, interval=0.02,
                 what="/ready 503 after SIGTERM")
        answered = 0
        while time.monotonic() - t0 < 1.5:
            wire = make_query("www.example.org", "A")
            raw = udp_exchange(t.port, wire, timeout=0.5)
            check(raw is not None and raw[:2] == wire[:2],
                  f"query unanswered {time.monotonic() - t0:.2f}s into the lameduck")
            answered += 1
            time.sleep(0.05)
        m = query(t.port, "www.example.org", "A", tcp=True)
        eq([r.data for r in m.answer], ["192.0.2.10"], "TCP still answered in lameduck")
        check(answered >= 10, f"only {answered} queries in the lameduck window")
        rc = t.proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
        eq(rc, 0, "exit code after SIGTERM")
        check(elapsed >= 1.8, f"exited after {elapsed:.2f}s, before the 2s lameduck")
        check(elapsed <= 6.0, f"exited only after {elapsed:.2f}s")
    finally:
        t.cleanup()


def test_sigterm_exit_without_lameduck_traffic():
    t = start()
    try:
        t0 = time.monotonic()
        rc = t.stop(timeout=10)
        eq(rc, 0, "exit code")
        check(time.monotonic() - t0 < 6, "exit within lameduck + margin")
        eq(udp_exchange(t.port, make_query("www.example.org"), timeout=0.3), None,
           "nothing answers after exit")
    finally:
        t.cleanup()


if __name__ == "__main__":
    run_tests(globals())
