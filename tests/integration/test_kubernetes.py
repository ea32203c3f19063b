#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The kubernetes plugin end to end: ternd watching the fake API server on loopback.

Answers for the demo cluster (tools/fake-apiserver/demo.json) record by record, as the
plugin's README and the Kubernetes DNS spec give them (ClusterIP, dual-stack, headless
with only ready and de-duplicated endpoints, endpoint names, SRV with weights and glue,
ExternalName, PTR v4/v6, dns-version, SOA/NS, the NXDOMAIN/NODATA table with the SOA at
TTL = ttl, pods insecure, case, AA); API changes reaching answers, with the latency from
the API event to the answer measured over 50 events (p50/p99 printed); /ready and
SERVFAIL before the first sync; a kubeconfig with a token and an inline CA against the
server over HTTPS, and a wrong token; a rotated tokenFile; a reload that keeps the watch;
slices that move between services, orphan slices, namespace deletion; TC for a big
headless service; in-zone ExternalName; namespaces/pods verified/endpoint_pod_names/
ignore_empty_service; a 3000-service cluster listed in pages and compared with the API;
a dnsperf run while services are republished.
Faults (cuts, garbage, 410, errors, stalls, a dead API server) are in
test_kubernetes_resilience.py. Tern-only: skipped as a whole under TERN_TARGET=knotd.
"""

import base64
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import (TERND, FakeApi, Skip, Ternd, check, eq, free_port,  # noqa: E402
                     is_knotd, kdig, metric_sum, query, require_tool, run_tests, wait_for)

ZONE = "cluster.local"
TTL = 600          # above 300: the SOA's own TTL (min(ttl, 300)) differs from negative TTL
S = {}             # the shared fake API server and ternd of the record tests


def kube_config(endpoint=None, **extra):
    plugin = {"zones": [ZONE, "in-addr.arpa", "ip6.arpa"], "pods": "insecure", "ttl": TTL}
    if endpoint:
        plugin["endpoint"] = endpoint
    plugin.update(extra)
    return {"health": {"lameduck": "0s"},
            "servers": [{"zones": [ZONE, "in-addr.arpa", "ip6.arpa"],
                         "plugins": {"kubernetes": plugin}}]}


def start_ternd(config, files=None, wait=True):
    t = Ternd(config, files=files)
    return t.start(wait=wait, zone=ZONE)


def setup_module():
    if is_knotd():
        raise Skip("the kubernetes plugin is Tern's own")
    if not os.path.exists(TERND):
        raise AssertionError(f"ternd not found at {TERND}")
    S["api"] = FakeApi().start()
    S["ternd"] = start_ternd(kube_config(S["api"].url))


def teardown_module():
    for k in ("ternd", "api"):
        if k in S:
            S[k].cleanup()


# ---------------------------------------------------------------- helpers

def ask(name, qtype="A", t=None, **kw):
    kw.setdefault("edns", 1232)
    return query((t or S["ternd"]).port, name, qtype, **kw)


def data(m, rtype, section="answer"):
    return sorted(r.data for r in m.rrs(section, rtype))


def svc(name, ns="demo"):
    return f"{name}.{ns}.svc.{ZONE}."


def positive(name, qtype, want, t=None):
    """NOERROR, AA, exactly @want (sorted rdata) at TTL, owner = the question."""
    m = ask(name, qtype, t)
    eq(m.rcode_name, "NOERROR", f"{name} {qtype} rcode ({m})")
    check(m.aa, f"{name} {qtype}: AA not set")
    eq(data(m, qtype), sorted(want), f"{name} {qtype} answer")
    for r in m.answer:
        eq(r.name, name if name.endswith(".") else name + ".", "owner name")
        eq(r.ttl, TTL, f"{name} {qtype} TTL")
    return m


def negative(name, qtype, rcode, t=None):
    """NXDOMAIN or NODATA: no answer, AA, the zone's SOA in authority with TTL = ttl."""
    m = ask(name, qtype, t)
    eq(m.rcode_name, rcode, f"{name} {qtype} rcode ({m})")
    check(m.aa, f"{name} {qtype}: AA not set")
    eq(m.answer, [], f"{name} {qtype} answer section")
    soa = m.rrs("authority", "SOA")
    eq(len(soa), 1, f"{name} {qtype}: one SOA in authority ({m})")
    check(soa[0].name.lower().endswith(("cluster.local.", "in-addr.arpa.", "ip6.arpa.")),
          f"SOA owner {soa[0].name}")
    eq(soa[0].ttl, TTL, f"{name} {qtype}: negative SOA TTL")
    return m


def rev4(ip):
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa."


def rev6(ip):
    import ipaddress
    return ipaddress.IPv6Address(ip).reverse_pointer + "."


def service(name, ns, ports=(("http", 80, "TCP"),), cluster_ip=None, headless=False,
            labels=None):
    spec = {"ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]}
    if headless:
        spec["clusterIP"] = "None"
    elif cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": name}},
            "spec": spec}


def slice_(svc_name, ns, addrs, suffix="x", ports=(("http", 80, "TCP"),), family="IPv4"):
    """An EndpointSlice; addrs: [ip] or [(ip, hostname, ready)]."""
    eps = []
    for a in addrs:
        ip, host, ready = (a, None, True) if isinstance(a, str) else a
        ep = {"addresses": [ip], "conditions": {"ready": ready}}
        if host:
            ep["hostname"] = host
        eps.append(ep)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{svc_name}-{suffix}", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc_name}},
            "addressType": family, "endpoints": eps,
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]}


def namespace(name, labels=None):
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}}}


def a_of(name, t=None, qtype="A"):
    m = ask(name, qtype, t, retries=0, timeout=1.0)
    return m.rcode_name, tuple(data(m, qtype))


# ---------------------------------------------------------------- 1. records

def test_clusterip_a():
    positive(svc("web"), "A", ["10.96.100.10"])
    positive(svc("kube-dns", "kube-system"), "A", ["10.96.0.10"])
    positive(svc("kubernetes", "default"), "A", ["10.96.0.1"])
    negative(svc("web"), "AAAA", "NOERROR")       # v4-only service: NODATA
    negative(svc("web"), "TXT", "NOERROR")


def test_dual_stack():
    positive(svc("dual"), "A", ["10.96.100.20"])
    positive(svc("dual"), "AAAA", ["fd00:10:96::100:20"])


def test_headless_ready_endpoints_only():
    # .13 (db-3) is not ready; .12 has no conditions, which counts as ready
    positive(svc("db"), "A", ["10.244.2.10", "10.244.2.11", "10.244.2.12"])
    negative(svc("db"), "AAAA", "NOERROR")
    positive(svc("cart", "shop"), "A", ["10.244.3.20", "10.244.3.21"])
    negative(svc("empty"), "A", "NXDOMAIN")        # headless without endpoints


def test_endpoint_names():
    positive("db-0." + svc("db"), "A", ["10.244.2.10"])
    positive("db-1." + svc("db"), "A", ["10.244.2.11"])
    positive("10-244-2-12." + svc("db"), "A", ["10.244.2.12"])   # no hostname: dashed IP
    negative("db-3." + svc("db"), "A", "NXDOMAIN")                 # not ready
    negative("db-9." + svc("db"), "A", "NXDOMAIN")
    # ClusterIP services have endpoint names too; .21 is in two slices: one record
    positive("10-244-1-10." + svc("web"), "A", ["10.244.1.10"])
    positive("10-244-1-21." + svc("dual"), "A", ["10.244.1.21"])


def test_srv_headless_weights_and_glue():
    name = "_postgres._tcp." + svc("db")
    m = positive(name, "SRV", [(0, 33, 5432, "10-244-2-12." + svc("db")),
                               (0, 33, 5432, "db-0." + svc("db")),
                               (0, 33, 5432, "db-1." + svc("db"))])
    glue = sorted((r.name, r.data) for r in m.rrs("additional", "A"))
    eq(glue, sorted([("10-244-2-12." + svc("db"), "10.244.2.12"),
                     ("db-0." + svc("db"), "10.244.2.10"),
                     ("db-1." + svc("db"), "10.244.2.11")]), "SRV glue")
    # kdig agrees (and parses it as a regular answer)
    status, flags, answers, text = kdig(S["ternd"].port, name, "SRV")
    eq(status, "NOERROR", "kdig status")
    check("aa" in flags, f"kdig flags {flags}")
    eq(sorted(a[-1] for a in answers), sorted(["10-244-2-12." + svc("db"), "db-0." + svc("db"),
                                              "db-1." + svc("db")]), "kdig SRV targets")


def test_srv_clusterip():
    m = positive("_http._tcp." + svc("web"), "SRV", [(0, 100, 80, svc("web"))])
    eq([(r.name, r.data) for r in m.rrs("additional", "A")], [(svc("web"), "10.96.100.10")],
       "SRV glue")
    positive("_https._tcp." + svc("web"), "SRV", [(0, 100, 443, svc("web"))])
    # every port on the bare service name
    positive(svc("web"), "SRV", [(0, 50, 80, svc("web")), (0, 50, 443, svc("web"))])
    positive("_dns._udp." + svc("kube-dns", "kube-system"), "SRV",
             [(0, 100, 53, svc("kube-dns", "kube-system"))])
    positive("_syslog._udp." + svc("api", "shop"), "SRV", [(0, 100, 514, svc("api", "shop"))])
    negative("_syslog._tcp." + svc("api", "shop"), "SRV", "NXDOMAIN")   # wrong protocol
    negative("_nope._tcp." + svc("api", "shop"), "SRV", "NXDOMAIN")
    # dual-stack: glue of both families
    m = positive("_http._tcp." + svc("dual"), "SRV", [(0, 100, 80, svc("dual"))])
    eq(data(m, "A", "additional"), ["10.96.100.20"], "dual SRV A glue")
    eq(data(m, "AAAA", "additional"), ["fd00:10:96::100:20"], "dual SRV AAAA glue")


def test_externalname():
    for qtype in ("A", "AAAA", "CNAME"):
        m = ask(svc("www", "shop"), qtype)
        eq(m.rcode_name, "NOERROR", f"ExternalName {qtype} rcode")
        check(m.aa, "AA")
        eq([(r.type_name, r.data, r.ttl) for r in m.answer],
           [("CNAME", "www.example.org.", TTL)], f"ExternalName {qtype} answer")


def test_ptr_clusterip_and_endpoints():
    positive(rev4("10.96.100.10"), "PTR", [svc("web")])
    positive(rev4("10.96.0.10"), "PTR", [svc("kube-dns", "kube-system")])
    positive(rev4("10.244.2.10"), "PTR", ["db-0." + svc("db")])
    positive(rev4("10.244.2.12"), "PTR", ["10-244-2-12." + svc("db")])
    positive(rev4("10.244.1.21"), "PTR", ["10-244-1-21." + svc("dual")])  # two slices, once
    negative(rev4("10.244.2.13"), "PTR", "NXDOMAIN")    # not ready
    negative(rev4("10.99.99.99"), "PTR", "NXDOMAIN")
    positive(rev6("fd00:10:96::100:20"), "PTR", [svc("dual")])
    positive(rev6("fd00:10:244:1::22"), "PTR", ["fd00-10-244-1--22." + svc("dual")])
    negative(rev6("fd00:10:244:1::99"), "PTR", "NXDOMAIN")


def test_dns_version_soa_ns():
    m = ask("dns-version." + ZONE, "TXT")
    eq(m.rcode_name, "NOERROR", "dns-version rcode")
    check(m.aa, "AA")
    eq([(r.data, r.ttl) for r in m.answer], [((b"1.1.0",), 28800)], "dns-version TXT")
    m = ask(ZONE, "SOA")
    eq(m.rcode_name, "NOERROR", "SOA rcode")
    check(m.aa, "AA")
    eq(len(m.answer), 1, "one SOA")
    soa = m.answer[0]
    eq(soa.ttl, min(TTL, 300), "SOA TTL")
    mname, rname, _serial, refresh, retry, expire, minimum = soa.data
    eq((mname, rname, refresh, retry, expire, minimum),
       (f"ns.dns.{ZONE}.", f"hostmaster.{ZONE}.", 7200, 1800, 86400, TTL), "SOA fields")
    positive(ZONE, "NS", [f"ns.dns.{ZONE}."])


def test_negative_table():
    negative(ZONE, "A", "NOERROR")                       # apex A: NODATA
    negative(f"demo.svc.{ZONE}", "A", "NOERROR")         # namespace exists
    negative(f"svc.{ZONE}", "A", "NOERROR")
    negative(f"pod.{ZONE}", "A", "NOERROR")
    negative(f"nosuchns.svc.{ZONE}", "A", "NXDOMAIN")   # namespace missing
    negative(svc("nope"), "A", "NXDOMAIN")               # service missing
    negative(svc("web", "nosuchns"), "A", "NXDOMAIN")
    negative(f"bogus.{ZONE}", "A", "NXDOMAIN")
    negative("a.b.c.d.e." + svc("web"), "A", "NXDOMAIN")   # too many labels
    negative("1.2.in-addr.arpa.", "PTR", "NXDOMAIN")      # not a full address


def test_pods_insecure():
    positive(f"10-244-3-30.shop.pod.{ZONE}", "A", ["10.244.3.30"])
    positive(f"1-2-3-4.demo.pod.{ZONE}", "A", ["1.2.3.4"])   # insecure: any address
    negative(f"1-2-3-4.nosuchns.pod.{ZONE}", "A", "NXDOMAIN")
    negative(f"10-244-3-30.shop.pod.{ZONE}", "AAAA", "NOERROR")


def test_case_echo_and_any():
    name = "WeB.DeMo.SvC.Cluster.LOCAL."
    m = ask(name, "A")
    eq(m.question[0][0], name, "question case")
    eq([(r.name, r.data) for r in m.answer], [(name, "10.96.100.10")], "owner keeps case")
    check(m.aa, "AA")
    m = ask(svc("web"), "ANY")
    eq(m.rcode_name, "NOERROR", "ANY rcode")
    eq([r.data for r in m.answer], [(b"RFC8482", b"")], "ANY answer")


# ---------------------------------------------------------------- 2. updates

def test_updates_visible():
    api = S["api"]
    api.apply(namespace("lonely"))
    wait_for(lambda: ask(f"lonely.svc.{ZONE}", "A").rcode_name == "NOERROR", 2,
             0.005, "the new namespace")
    negative(f"x.lonely.svc.{ZONE}", "A", "NXDOMAIN")
    # a new ClusterIP service
    api.apply(service("fresh", "demo", cluster_ip="10.96.150.1"))
    wait_for(lambda: a_of(svc("fresh")) == ("NOERROR", ("10.96.150.1",)), 2, 0.005, "fresh A")
    positive(rev4("10.96.150.1"), "PTR", [svc("fresh")])
    # a changed ClusterIP (immutable in the API: the service is re-created)
    api.delete("Service", "fresh", "demo")
    api.apply(service("fresh", "demo", cluster_ip="10.96.150.2"))
    wait_for(lambda: a_of(svc("fresh")) == ("NOERROR", ("10.96.150.2",)), 2, 0.005,
             "fresh's new ClusterIP")
    negative(rev4("10.96.150.1"), "PTR", "NXDOMAIN")
    # a headless service scaled 0 -> 3 -> 1, with two overlapping slices (de-duplicated)
    api.apply([service("scale", "demo", headless=True), slice_("scale", "demo", [], "a")])
    wait_for(lambda: a_of(svc("scale"))[0] == "NXDOMAIN" and
             ask(f"demo.svc.{ZONE}").rcode_name == "NOERROR", 2, 0.005, "scale, empty")
    api.apply([slice_("scale", "demo", ["10.250.0.1", "10.250.0.2"], "a"),
               slice_("scale", "demo", ["10.250.0.2", "10.250.0.3"], "b")])
    wait_for(lambda: a_of(svc("scale")) == ("NOERROR", ("10.250.0.1", "10.250.0.2",
                                                         "10.250.0.3")), 2, 0.005, "scale 3")
    api.apply(slice_("scale", "demo", [("10.250.0.1", "s-0", True),
                                       ("10.250.0.2", "s-1", False)], "a"))
    api.delete("EndpointSlice", "scale-b", "demo")
    wait_for(lambda: a_of(svc("scale")) == ("NOERROR", ("10.250.0.1",)), 2, 0.005, "scale 1")
    positive("s-0." + svc("scale"), "A", ["10.250.0.1"])
    negative("s-1." + svc("scale"), "A", "NXDOMAIN")
    # deletes
    api.delete("Service", "scale", "demo")
    api.delete("Service", "fresh", "demo")
    wait_for(lambda: a_of(svc("fresh"))[0] == "NXDOMAIN" and
             a_of(svc("scale"))[0] == "NXDOMAIN", 2, 0.005, "deleted services")
    api.delete("Namespace", "lonely")
    wait_for(lambda: ask(f"lonely.svc.{ZONE}", "A").rcode_name == "NXDOMAIN", 2, 0.005,
             "deleted namespace")
    positive(svc("web"), "A", ["10.96.100.10"])   # the rest is intact


def test_slice_moves_orphans_and_namespace_delete():
    api = S["api"]
    api.apply([namespace("tmp"), service("a", "tmp", headless=True),
               service("b", "tmp", headless=True),
               slice_("a", "tmp", [("10.249.0.1", "h1", True)], "s1")])
    wait_for(lambda: a_of(svc("a", "tmp")) == ("NOERROR", ("10.249.0.1",)), 2, 0.005, "a")
    negative(svc("b", "tmp"), "A", "NXDOMAIN")
    # the slice is relabelled to service b: its endpoints move
    moved = slice_("b", "tmp", [("10.249.0.1", "h1", True)], "s1")
    moved["metadata"]["name"] = "a-s1"
    api.apply(moved)
    wait_for(lambda: a_of(svc("b", "tmp")) == ("NOERROR", ("10.249.0.1",)), 2, 0.005,
             "b after the move")
    negative(svc("a", "tmp"), "A", "NXDOMAIN")
    positive(rev4("10.249.0.1"), "PTR", ["h1." + svc("b", "tmp")])
    # service b deleted, its slice stays: no names and no PTR; b back: endpoints back
    api.delete("Service", "b", "tmp")
    wait_for(lambda: a_of(svc("b", "tmp"))[0] == "NXDOMAIN", 2, 0.005, "b deleted")
    negative(rev4("10.249.0.1"), "PTR", "NXDOMAIN")
    negative("h1." + svc("b", "tmp"), "A", "NXDOMAIN")
    api.apply(service("b", "tmp", headless=True))
    wait_for(lambda: a_of(svc("b", "tmp")) == ("NOERROR", ("10.249.0.1",)), 2, 0.005,
             "b re-created over its slice")
    positive("h1." + svc("b", "tmp"), "A", ["10.249.0.1"])
    # deleting the namespace deletes what is in it
    # The namespace, its services and its slices arrive on three watch streams, in no
    # guaranteed order between them: wait until all three have been applied.
    api.delete("Namespace", "tmp")
    wait_for(lambda: ask(f"tmp.svc.{ZONE}").rcode_name == "NXDOMAIN" and
             a_of(svc("b", "tmp"))[0] == "NXDOMAIN" and
             ask(rev4("10.249.0.1"), "PTR").rcode_name == "NXDOMAIN", 2, 0.005, "tmp gone")
    negative(svc("b", "tmp"), "A", "NXDOMAIN")
    negative(rev4("10.249.0.1"), "PTR", "NXDOMAIN")


def test_big_headless_truncates_over_udp():
    api = S["api"]
    ips = [f"10.254.{i // 200}.{i % 200 + 1}" for i in range(120)]
    api.apply([service("big", "demo", headless=True), slice_("big", "demo", ips, "a")])
    wait_for(lambda: a_of(svc("big"))[0] == "NOERROR", 2, 0.005, "big")
    m = ask(svc("big"), "A", edns=None)           # 512 bytes: TC
    check(m.tc, f"TC over UDP without EDNS ({m.size} bytes)")
    check(m.size <= 512, f"UDP answer of {m.size} bytes")
    m = ask(svc("big"), "A", tcp=True)
    check(not m.tc, "no TC over TCP")
    eq(data(m, "A"), sorted(ips), "every endpoint over TCP")
    m = ask("_http._tcp." + svc("big"), "SRV", tcp=True)
    eq(len(m.answer), 120, "SRV records over TCP")
    eq({r.data[1] for r in m.answer}, {1}, "SRV weight floor(100/120) -> at least 1")
    api.delete("Service", "big", "demo")
    wait_for(lambda: a_of(svc("big"))[0] == "NXDOMAIN", 2, 0.005, "big deleted")


def test_externalname_in_zone_and_shared_endpoint_ptr():
    api = S["api"]
    api.apply([{"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "alias", "namespace": "demo"},
                "spec": {"type": "ExternalName", "externalName": svc("web").rstrip(".")}},
               {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "ipname", "namespace": "demo"},
                "spec": {"type": "ExternalName", "externalName": "10.1.2.3"}},
               service("web2", "demo", headless=True),
               slice_("web2", "demo", [("10.244.1.10", "w2", True)], "a")])
    wait_for(lambda: ask(svc("alias")).answer and a_of(svc("web2"))[0] == "NOERROR", 2,
             0.005, "alias and web2")
    m = ask(svc("alias"), "A")
    eq([(r.name, r.type_name, r.data) for r in m.answer],
       [(svc("alias"), "CNAME", svc("web")), (svc("web"), "A", "10.96.100.10")],
       "in-zone ExternalName followed")
    negative(svc("ipname"), "A", "NXDOMAIN")          # an IP address as external name
    # 10.244.1.10 is an endpoint of web and of web2: one PTR per service
    positive(rev4("10.244.1.10"), "PTR", ["10-244-1-10." + svc("web"), "w2." + svc("web2")])
    for name in ("alias", "ipname", "web2"):
        api.delete("Service", name, "demo")
    api.delete("EndpointSlice", "web2-a", "demo")
    wait_for(lambda: data(ask(rev4("10.244.1.10"), "PTR"), "PTR") ==
             ["10-244-1-10." + svc("web")], 2, 0.005, "PTR back to one")


def test_options_namespaces_pods_verified_pod_names():
    """namespaces, pods: verified, endpoint_pod_names and ignore_empty_service reach the
    watch and the answers."""
    api = S["api"]
    t = start_ternd(kube_config(api.url, namespaces=["demo", "shop"], pods="verified",
                                endpoint_pod_names=True, ignore_empty_service=True))
    try:
        positive(svc("web"), "A", ["10.96.100.10"], t)
        negative(svc("kube-dns", "kube-system"), "A", "NXDOMAIN", t)   # not exposed
        negative(rev4("10.96.0.10"), "PTR", "NXDOMAIN", t)
        positive(f"10-244-3-30.shop.pod.{ZONE}", "A", ["10.244.3.30"], t)   # a real pod
        negative(f"1-2-3-4.shop.pod.{ZONE}", "A", "NXDOMAIN", t)           # no such pod
        positive("cart-0." + svc("cart", "shop"), "A", ["10.244.3.20"], t)  # pod name
        positive(rev4("10.244.3.21"), "PTR", ["cart-1." + svc("cart", "shop")], t)
        api.apply(service("lonesome", "shop", cluster_ip="10.96.150.20"))
        api.apply({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "late", "namespace": "shop"},
                   "spec": {"containers": [{"name": "c", "image": "i"}]},
                   "status": {"podIP": "10.244.3.99"}})
        wait_for(lambda: a_of(f"10-244-3-99.shop.pod.{ZONE}", t) ==
                 ("NOERROR", ("10.244.3.99",)), 2, 0.005, "a new pod (verified)")
        negative(svc("lonesome", "shop"), "A", "NXDOMAIN", t)   # ignore_empty_service
        api.apply(slice_("lonesome", "shop", ["10.244.3.98"], "a"))
        wait_for(lambda: a_of(svc("lonesome", "shop"), t) == ("NOERROR", ("10.96.150.20",)),
                 2, 0.005, "lonesome with an endpoint")
        api.delete("Pod", "late", "shop")
        wait_for(lambda: a_of(f"10-244-3-99.shop.pod.{ZONE}", t)[0] == "NXDOMAIN", 2, 0.005,
                 "the pod deleted")
        api.delete("Service", "lonesome", "shop")
        api.delete("EndpointSlice", "lonesome-a", "shop")
    finally:
        t.cleanup()


def test_large_cluster_paginated_gzip_list():
    """3000 services x 3 endpoints: paged (limit/continue), chunked and gzipped lists.
    Sampled answers are compared with what the API itself lists."""
    import random
    api = FakeApi(fixtures=(), args=["--generate", "3000:3"]).start()
    t = None
    try:
        t0 = time.monotonic()
        t = start_ternd(kube_config(api.url))
        print(f"  3000 services, 9000 endpoints: ready {time.monotonic() - t0:.2f}s after "
              "start", flush=True)
        st, svcs = api.request("GET", "/api/v1/services")
        eq(st, 200, "service list")
        st, slices = api.request("GET", "/apis/discovery.k8s.io/v1/endpointslices")
        eq(st, 200, "slice list")
        eq(len(svcs["items"]), 3000, "services listed")
        eps = {}
        for sl in slices["items"]:
            key = (sl["metadata"]["namespace"], sl["metadata"]["labels"]["kubernetes.io/service-name"])
            for ep in sl["endpoints"] or []:
                if ep.get("conditions", {}).get("ready", True):
                    eps.setdefault(key, set()).update(ep["addresses"])
        stats = api.stats()
        check(int(stats["lists"].get("services", 0)) >= 6,
              f"the services list was paged ({stats['lists']})")
        rng = random.Random(7)
        for s in rng.sample(svcs["items"], 60) + svcs["items"][-2:]:
            ns, name = s["metadata"]["namespace"], s["metadata"]["name"]
            ip = s["spec"]["clusterIP"]
            want = sorted(eps[(ns, name)]) if ip == "None" else [ip]
            positive(svc(name, ns), "A", want, t)
    finally:
        if t:
            t.cleanup()
        api.cleanup()


def _percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def hot_hits(t=None):
    return metric_sum((t or S["ternd"]).metrics(), "tern_hot_answers_total", result="hit")


def test_update_latency():
    """API event to answer: apply, then poll every 1 ms until the answer changes. Between
    events the name is answered from the workers' hot answers (asserted), so this also
    proves that a publish retires them."""
    api = S["api"]
    hits0 = hot_hits()
    api.apply([service("lat", "demo", headless=True),
               slice_("lat", "demo", ["10.251.0.1"], "a")])
    wait_for(lambda: a_of(svc("lat")) == ("NOERROR", ("10.251.0.1",)), 2, 0.005, "lat")
    lat = []
    for i in range(2, 52):
        want = ("NOERROR", (f"10.251.0.{i}",))
        t0 = time.monotonic()
        api.apply(slice_("lat", "demo", [f"10.251.0.{i}"], "a"))
        while True:
            got = a_of(svc("lat"))
            now = time.monotonic()
            if got == want:
                break
            check(got[0] == "NOERROR" and got[1] == (f"10.251.0.{i - 1}",),
                  f"event {i}: unexpected answer {got} while waiting for {want}")
            check(now - t0 < 2.0, f"event {i}: no answer change after {now - t0:.3f}s")
            time.sleep(0.001)
        lat.append((now - t0) * 1000)
        for _ in range(10):   # replayed from the hot answers until the next event
            eq(a_of(svc("lat")), want, f"event {i}: the answer after the change")
    api.delete("Service", "lat", "demo")
    check(hot_hits() - hits0 >= 250, "the polled name was replayed from the hot answers")
    p50, p99 = _percentile(lat, 50), _percentile(lat, 99)
    print(f"  API event -> answer latency over {len(lat)} events: p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms, max {max(lat):.1f} ms", flush=True)
    check(max(lat) < 2000, "every update visible within 2 s")


def test_hot_answers_outlive_unrelated_changes():
    """A change to one Service retires only the hot answers read from its part of the
    snapshot: another Service's answers are still replayed after it is published, and a
    replayed negative answer carries the serial of the snapshot published now."""
    api = S["api"]
    nope = f"nope.demo.svc.{ZONE}"
    for _ in range(20):                   # every worker keeps both answers
        eq(a_of(svc("web")), ("NOERROR", ("10.96.100.10",)), "web before")
        ask(nope)
    serial0 = ask(nope).rrs("authority", "SOA")[0].data[2]
    api.apply(service("unrelated", "other", cluster_ip="10.96.140.1"))
    wait_for(lambda: a_of(svc("unrelated", "other")) == ("NOERROR", ("10.96.140.1",)), 2,
             0.005, "the unrelated service")
    hits0 = hot_hits()
    for _ in range(20):
        eq(a_of(svc("web")), ("NOERROR", ("10.96.100.10",)), "web after")
    eq(hot_hits() - hits0, 20, "web's answers replayed after an unrelated publish")
    m = ask(nope)
    eq(m.rcode_name, "NXDOMAIN", "nope after")
    serial1 = m.rrs("authority", "SOA")[0].data[2]
    apex = ask(ZONE, "SOA").rrs("answer", "SOA")[0].data[2]
    check(serial1 > serial0, f"the serial follows the snapshot ({serial0} -> "
          f"{serial1})")
    eq(serial1, apex, "the negative answer's serial is the zone's")
    api.delete("Service", "unrelated", "other")


# ---------------------------------------------------------------- 3. readiness

def test_ready_and_servfail_before_first_sync():
    """ternd starts before the API server: /ready 503 and SERVFAIL (not NXDOMAIN) for
    cluster names, also after startup_timeout; then the server comes up: 200 and data."""
    port = free_port(False)
    url = f"http://127.0.0.1:{port}"
    t = start_ternd(kube_config(url, startup_timeout="300ms"), wait=False)
    api = None
    try:
        wait_for(lambda: ask(ZONE, "SOA", t).rcode_name, 10, 0.02, "ternd to answer")
        eq(t.http("ready")[0], 503, "/ready before the first sync")
        time.sleep(0.5)     # past startup_timeout: still no data, still SERVFAIL
        for name, qtype in ((svc("web"), "A"), (svc("nope"), "A"), (f"nosuchns.svc.{ZONE}", "A"),
                            (rev4("10.96.100.10"), "PTR"), (ZONE, "SOA")):
            m = ask(name, qtype, t)
            eq(m.rcode_name, "SERVFAIL", f"{name} {qtype} before the first sync")
        eq(t.http("ready")[0], 503, "/ready before the first sync")
        api = FakeApi()
        api.start(listen=f"127.0.0.1:{port}")
        wait_for(lambda: t.http("ready")[0] == 200, 10, 0.02, "/ready 200 after the sync")
        positive(svc("web"), "A", ["10.96.100.10"], t)
        eq(ask(svc("nope"), "A", t).rcode_name, "NXDOMAIN", "NXDOMAIN once synced")
    finally:
        t.cleanup()
        if api:
            api.cleanup()


def test_ready_waits_for_every_kind():
    """A stalled API server: the lists hang, /ready stays 503, names SERVFAIL."""
    api = FakeApi().start()
    t = None
    try:
        api.control("stall?seconds=1.5")
        t = start_ternd(kube_config(api.url), wait=False)
        wait_for(lambda: ask(ZONE, "SOA", t).rcode_name, 10, 0.02, "ternd to answer")
        eq(ask(svc("web"), "A", t).rcode_name, "SERVFAIL", "web A while the API stalls")
        eq(t.http("ready")[0], 503, "/ready while the API stalls")
        wait_for(lambda: t.http("ready")[0] == 200, 10, 0.02, "/ready 200 after the stall")
        positive(svc("web"), "A", ["10.96.100.10"], t)
    finally:
        if t:
            t.cleanup()
        api.cleanup()


# ---------------------------------------------------------------- 5. auth and TLS

def _make_cert(d):
    key, crt = os.path.join(d, "api.key"), os.path.join(d, "api.crt")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True, text=True, timeout=30)
    eq(p.returncode, 0, f"openssl req: {p.stderr}")
    return key, crt


def _kubeconfig(server, token, ca_pem):
    ca = base64.b64encode(ca_pem.encode()).decode()
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: fake\n"
        "  cluster:\n"
        f"    server: {server}\n"
        f"    certificate-authority-data: {ca}\n"
        "users:\n"
        "- name: tester\n"
        "  user:\n"
        f"    token: {token}\n"
        "contexts:\n"
        "- name: fake\n"
        "  context: {cluster: fake, user: tester}\n"
        "current-context: fake\n")


def test_kubeconfig_token_tls():
    require_tool("openssl")
    api = FakeApi()
    key, crt = _make_cert(api.dir)
    api.args = ["--tls-cert", crt, "--tls-key", key, "--token", "s3cret-token"]
    api.start()
    check(api.url.startswith("https://"), f"URL {api.url}")
    with open(crt, encoding="ascii") as f:
        ca_pem = f.read()
    good = bad = None
    try:
        good = start_ternd(kube_config(kubeconfig="kubeconfig"),
                           files={"kubeconfig": _kubeconfig(api.url, "s3cret-token", ca_pem)})
        positive(svc("web"), "A", ["10.96.100.10"], good)
        api.apply(service("tls", "demo", cluster_ip="10.96.150.9"))
        wait_for(lambda: a_of(svc("tls"), good) == ("NOERROR", ("10.96.150.9",)), 3, 0.005,
                 "an update over HTTPS")
        bad = start_ternd(kube_config(kubeconfig="kubeconfig", startup_timeout="200ms"),
                          files={"kubeconfig": _kubeconfig(api.url, "wrong-token", ca_pem)},
                          wait=False)
        wait_for(lambda: ask(ZONE, "SOA", bad).rcode_name, 10, 0.02, "ternd to answer")
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            eq(bad.http("ready")[0], 503, "/ready with a wrong token")
            eq(ask(svc("web"), "A", bad).rcode_name, "SERVFAIL", "web A with a wrong token")
            eq(ask(svc("nope"), "A", bad).rcode_name, "SERVFAIL", "nope A with a wrong token")
            time.sleep(0.1)
        codes = api.stats()["responses_by_code"]
        check(int(codes.get("401", 0)) >= 1, f"the server saw no 401: {codes}")
        check("401" in bad.log_text() or "nauthorized" in bad.log_text(),
              "ternd logs the 401")
    finally:
        for t in (good, bad):
            if t:
                t.cleanup()
        api.cleanup()


def test_token_file_rotation():
    """kubeconfig tokenFile: the server rotates its token, the file follows, the next
    request (after a cut) uses the new token and updates flow again."""
    api = FakeApi(args=["--token", "old-token"]).start()
    t = None
    try:
        kc = ("apiVersion: v1\nkind: Config\n"
              f"clusters:\n- name: c\n  cluster: {{server: \"{api.url}\"}}\n"
              "users:\n- name: u\n  user: {tokenFile: token}\n"
              "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
              "current-context: x\n")
        t = start_ternd(kube_config(kubeconfig="kubeconfig"),
                        files={"kubeconfig": kc, "token": "old-token\n"})
        positive(svc("web"), "A", ["10.96.100.10"], t)
        api.control("token?value=old-token,new-token")
        t.write("token", "new-token\n")
        api.control("token?value=new-token")
        api.control("cut")
        api.apply(service("rotated", "demo", cluster_ip="10.96.150.7"))
        wait_for(lambda: a_of(svc("rotated"), t) == ("NOERROR", ("10.96.150.7",)), 5, 0.005,
                 "an update with the rotated token")
        codes = api.stats()["responses_by_code"]
        eq(int(codes.get("401", 0)), 0, f"no request was refused ({codes})")
    finally:
        if t:
            t.cleanup()
        api.cleanup()


def test_reload_keeps_the_watch():
    """SIGHUP with the same watch settings (only ttl changed): no relist, the new TTL."""
    api, t = S["api"], S["ternd"]
    before = api.stats()
    t.write_config(kube_config(api.url, ttl=30))
    mark = len(t.log_text())
    t.reload()
    wait_for(lambda: "reload, done" in t.log_text()[mark:], 5, 0.02, "the reload")
    m = ask(svc("web"), "A")
    eq([(r.data, r.ttl) for r in m.answer], [("10.96.100.10", 30)], "answer after reload")
    after = api.stats()
    eq(after["lists"], before["lists"], "lists (a reload does not relist)")
    eq(after["watches_started"], before["watches_started"], "watches (the same watch goes on)")
    api.apply(service("after-reload", "demo", cluster_ip="10.96.150.8"))
    wait_for(lambda: a_of(svc("after-reload")) == ("NOERROR", ("10.96.150.8",)), 2, 0.005,
             "an update after the reload")
    api.delete("Service", "after-reload", "demo")
    t.write_config(kube_config(api.url))
    mark = len(t.log_text())
    t.reload()
    wait_for(lambda: "reload, done" in t.log_text()[mark:], 5, 0.02, "the reload back")
    positive(svc("web"), "A", ["10.96.100.10"])


# ---------------------------------------------------------------- 6. republish storm

def test_dnsperf_during_republish_storm():
    dnsperf = require_tool("dnsperf")
    api, t = S["api"], S["ternd"]
    qfile = os.path.join(t.dir, "queries.txt")
    with open(qfile, "w", encoding="ascii") as f:
        f.write(f"web.demo.svc.{ZONE} A\n_http._tcp.web.demo.svc.{ZONE} SRV\n"
                f"db.demo.svc.{ZONE} A\n")
    stop = threading.Event()
    done = []
    errors = []

    def churn():
        try:
            i = 0
            while not stop.is_set() and i < 200:
                k = i % 20
                api.apply([service(f"storm-{k}", "shop", cluster_ip=None),
                           slice_(f"storm-{k}", "shop", [f"10.252.{k}.{i % 250 + 1}"], "a")])
                i += 1
                time.sleep(0.02)
            done.append(i)
        except Exception as e:     # noqa: BLE001 - reported by the main thread
            errors.append(e)

    th = threading.Thread(target=churn)
    th.start()
    try:
        p = subprocess.run([dnsperf, "-s", "127.0.0.1", "-p", str(t.port), "-d", qfile,
                            "-Q", "2000", "-l", "5", "-c", "4", "-t", "2"],
                           capture_output=True, text=True, timeout=30)
    finally:
        stop.set()
        th.join()
    check(not errors, f"the update thread failed: {errors}")
    out = p.stdout
    eq(p.returncode, 0, f"dnsperf exit code:\n{out}{p.stderr}")
    sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))
    completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
    codes = re.search(r"Response codes:\s+(.*)", out).group(1)
    print(f"  dnsperf: sent {sent}, completed {completed}, lost {lost}, codes {codes}; "
          f"{done[0] if done else 0} updates applied", flush=True)
    check(sent >= 8000, f"dnsperf sent only {sent} queries:\n{out}")
    eq(lost, 0, "queries lost")
    eq(completed, sent, "queries completed")
    check("SERVFAIL" not in codes and re.fullmatch(r"NOERROR \d+ \(100\.00%\)", codes.strip()),
          f"response codes: {codes}")
    check(done and done[0] >= 150, f"only {done} updates were applied during the run")
    # the storm's last state is served
    wait_for(lambda: a_of(svc("storm-0", "shop"))[0] == "NOERROR", 2, 0.01, "storm-0")


if __name__ == "__main__":
    run_tests(globals())
