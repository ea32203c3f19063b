#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The example configs in docs/examples/ stay valid and do what their comments say.

Every docs/examples/*.yaml must pass `ternd --check-config`. split-dns.yaml is also
served for real: its addresses are rewritten to loopback peers (PowerDNS for
corp.internal, a counting Python upstream standing in for the public resolvers) and
queries are checked to reach the right side.
Run: python3 tests/integration/test_examples.py [name-filter...]
"""
import glob
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import (SOURCE_ROOT, TERND, Pdns, PyUpstream, Skip, Ternd, check, eq,  # noqa: E402
                     free_port, query, run_tests)

EXAMPLES = os.path.join(SOURCE_ROOT, "docs", "examples")

CORP_ZONE = """$ORIGIN corp.internal.
$TTL 300
@    IN SOA ns1 hostmaster 1 3600 600 86400 60
@    IN NS  ns1
ns1  IN A   127.0.0.1
wiki IN A   10.10.0.5
"""


def setup_module():
    if not os.path.exists(TERND):
        raise Skip(f"ternd not built at {TERND}")


def _check_config(path):
    p = subprocess.run([TERND, "--check-config", path], capture_output=True, text=True,
                       timeout=30, cwd=EXAMPLES)
    check(p.returncode == 0, f"{os.path.basename(path)} rejected (rc {p.returncode}):\n"
          f"{p.stdout}{p.stderr}")


def test_every_example_passes_check_config():
    files = sorted(glob.glob(os.path.join(EXAMPLES, "*.yaml")))
    names = [os.path.basename(f) for f in files]
    for want in ("cluster-dns.yaml", "node-local.yaml", "split-dns.yaml"):
        check(want in names, f"docs/examples/{want} missing")
    for f in files:
        _check_config(f)


def test_every_example_starts_with_a_header_comment():
    for f in sorted(glob.glob(os.path.join(EXAMPLES, "*.yaml"))):
        with open(f, encoding="utf-8") as fh:
            head = fh.read().splitlines()[:3]
        check(all(ln.startswith("#") for ln in head), f"{f}: no header comment")


def test_split_dns_example_serves_internal_names_from_pdns_and_the_rest_upstream():
    if not any(os.path.exists(os.path.join(d, "pdns_server")) for d in ("/usr/sbin", "/usr/bin")):
        raise Skip("pdns_server not installed (tools/deps.sh)")
    pdns = Pdns({"corp.internal": CORP_ZONE}).start()
    public = PyUpstream(zone="pub.example.").add("www.pub.example", "A", "192.0.2.10").start()
    with open(os.path.join(EXAMPLES, "split-dns.yaml"), encoding="utf-8") as f:
        text = f.read()
    t = Ternd(http=False)
    port = t.port
    subst = {
        "0.0.0.0:53": f"127.0.0.1:{port}",
        "10.0.0.53:53": f"127.0.0.1:{pdns.port}",
        "10.0.0.54:53": f"127.0.0.1:{pdns.port}",
        "1.1.1.1:53": f"127.0.0.1:{public.port}",
        "9.9.9.9:53": f"127.0.0.1:{public.port}",
        "127.0.0.1:9153": f"127.0.0.1:{free_port(False)}",
        "workers: auto": "workers: 2",
    }
    for old, new in subst.items():
        check(old in text, f"split-dns.yaml no longer contains {old!r}; update this test")
        text = text.replace(old, new)
    check(not re.search(r"\b(?:10\.0\.0|1\.1\.1|9\.9\.9)\.\d+", text), "an address left over")
    try:
        t.write("ternd.yaml", text)
        t._spawn([TERND, "--config", t.config_path])
        t.wait_ready(zone="localhost")
        m = query(port, "wiki.corp.internal", rd=True)
        eq([r.data for r in m.answer], ["10.10.0.5"], "internal name")
        check(pdns.queries("wiki.corp.internal."), "pdns was not asked")
        m = query(port, "www.pub.example", rd=True)
        eq([r.data for r in m.answer], ["192.0.2.10"], "public name")
        eq(public.count("wiki.corp.internal."), 0, "internal name leaked to the public side")
        eq(len(pdns.queries("www.pub.example.")), 0, "public name sent to pdns")
        m = query(port, "localhost", rd=True)
        eq([r.data for r in m.answer], ["127.0.0.1"], "localhost answered locally")
        eq(public.count("localhost."), 0, "localhost leaked")
        # Cached: asking again does not reach pdns.
        before = len(pdns.queries("wiki.corp.internal."))
        query(port, "wiki.corp.internal", rd=True)
        eq(len(pdns.queries("wiki.corp.internal.")), before, "internal answer not cached")
    finally:
        t.cleanup()
        pdns.cleanup()
        public.stop()


if __name__ == "__main__":
    run_tests(globals())
