#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Authoritative answers from the file plugin, checked on the wire.

Serves tests/data/integration/example.org.zone and example.net.zone (two server
blocks on one port, plus a hosts block for deep.example.org to check that the most
specific zone wins) and asserts exact flags, sections, TTLs and additional records
for positive answers, CNAME chains, wildcards, empty non-terminals, NXDOMAIN,
delegations, ANY (RFC 8482), zone transfers and names outside every zone.
With TERN_TARGET=knotd the same zones are served by knotd to validate the tests.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import (Skip, check, eq, have_ipv6, is_knotd, kdig, name_eq, query,  # noqa: E402
                     run_tests, skip_unless_ternd, zone_server, RCODES, TYPES)

SRV = None


def setup_module():
    global SRV
    deep = {"zones": ["deep.example.org"],
            "plugins": {"hosts": {"entries": ["192.0.2.200 x.deep.example.org"]}}}
    hosts_then_file = {"hosts": {"entries": ["10.1.2.3 h.example.org"], "fallthrough": True},
                       "file": {"path": "example.org.zone"}, "errors": {}}
    SRV = zone_server(extra_blocks=[deep], file_plugins=hosts_then_file)


def teardown_module():
    SRV.cleanup()


def q(name, qtype="A", **kw):
    return query(SRV.port, name, qtype, **kw)


def datas(rrs):
    return sorted(r.data for r in rrs)


def assert_positive(m, name, qtype):
    eq(m.rcode, RCODES["NOERROR"], f"rcode for {name} {qtype}")
    check(m.aa, f"AA not set for {name} {qtype}: {m}")
    check(not m.tc, "TC set")
    eq(len(m.question), 1, "question count")
    eq(m.question[0][0], name if name.endswith(".") else name + ".", "question name (case kept)")
    eq(m.question[0][1], TYPES.get(qtype, 0) or int(qtype[4:]), "question type")


def assert_negative_soa(m, zone, ttl):
    soas = m.rrs("authority", "SOA")
    eq(len(soas), 1, f"SOA records in authority: {m}")
    check(name_eq(soas[0].name, zone), f"SOA owner {soas[0].name}")
    eq(soas[0].ttl, ttl, "negative SOA TTL = min(SOA TTL, minimum)")
    eq(m.answer, [], "answer section of a negative reply")


def test_a_record():
    m = q("www.example.org", "A")
    assert_positive(m, "www.example.org", "A")
    eq(datas(m.answer), ["192.0.2.10"], "A data")
    eq(m.answer[0].ttl, 3600, "TTL from $TTL")
    check(name_eq(m.answer[0].name, "www.example.org"), "owner")


def test_explicit_ttl():
    m = q("short.example.org", "A")
    eq(m.answer[0].ttl, 300, "explicit record TTL")


def test_aaaa_record():
    m = q("www.example.org", "AAAA")
    assert_positive(m, "www.example.org", "AAAA")
    eq(datas(m.answer), ["2001:db8::10"], "AAAA data")


def test_mx_with_additional():
    m = q("example.org", "MX")
    assert_positive(m, "example.org", "MX")
    eq(sorted((p, n.lower()) for p, n in datas(m.answer)),
       [(10, "mail.example.org."), (20, "mail2.example.org."), (30, "mx.elsewhere.net.")],
       "MX data")
    add = {(r.name.lower(), r.type_name, r.data) for r in m.additional}
    for want in [("mail.example.org.", "A", "192.0.2.25"),
                 ("mail.example.org.", "AAAA", "2001:db8::25"),
                 ("mail2.example.org.", "A", "192.0.2.26")]:
        check(want in add, f"additional lacks {want}: {m.additional}")
    check(not any(name_eq(r.name, "mx.elsewhere.net") for r in m.additional),
          "additional data for an out-of-zone MX target")


def test_txt_record():
    m = q("txt.example.org", "TXT")
    assert_positive(m, "txt.example.org", "TXT")
    eq(datas(m.answer), [(b"hello world", b"second string")], "TXT strings")


def test_srv_with_additional():
    m = q("_sip._tcp.example.org", "SRV")
    assert_positive(m, "_sip._tcp.example.org", "SRV")
    eq(len(m.answer), 1, "SRV count")
    prio, weight, port, target = m.answer[0].data
    eq((prio, weight, port), (10, 60, 5060), "SRV fields")
    check(name_eq(target, "sipserver.example.org"), f"SRV target {target}")
    check(any(name_eq(r.name, "sipserver.example.org") and r.data == "192.0.2.50"
              for r in m.additional), f"SRV target address in additional: {m.additional}")


def test_caa_record():
    m = q("example.org", "CAA")
    assert_positive(m, "example.org", "CAA")
    eq(datas(m.answer), [(0, b"issue", b"letsencrypt.org")], "CAA data")


def test_unknown_type():
    m = q("unk.example.org", "TYPE65280")
    assert_positive(m, "unk.example.org", "TYPE65280")
    eq(len(m.answer), 1, "answer count")
    eq(m.answer[0].type, 65280, "type")
    eq(m.answer[0].rdata, bytes.fromhex("0a000001"), "RFC 3597 rdata")


def test_cname_chain():
    m = q("alias.example.org", "A")
    assert_positive(m, "alias.example.org", "A")
    chain = [(r.name.lower(), r.type_name, r.data if r.type != 5 else r.data.lower())
             for r in m.answer]
    eq(chain, [("alias.example.org.", "CNAME", "alias2.example.org."),
               ("alias2.example.org.", "CNAME", "www.example.org."),
               ("www.example.org.", "A", "192.0.2.10")], "CNAME chain in order")


def test_cname_out_of_zone():
    m = q("ext.example.org", "A")
    assert_positive(m, "ext.example.org", "A")
    eq(len(m.answer), 1, f"only the CNAME: {m}")
    eq(m.answer[0].type, TYPES["CNAME"], "CNAME type")
    check(name_eq(m.answer[0].data, "www.example.net"), "CNAME target")


def test_cname_query_type():
    m = q("alias.example.org", "CNAME")
    assert_positive(m, "alias.example.org", "CNAME")
    eq([(r.type_name, r.data.lower()) for r in m.answer],
       [("CNAME", "alias2.example.org.")], "CNAME asked directly is not followed")


def test_wildcard():
    m = q("foo.wild.example.org", "A")
    assert_positive(m, "foo.wild.example.org", "A")
    eq(len(m.answer), 1, "answer count")
    check(name_eq(m.answer[0].name, "foo.wild.example.org"), "wildcard owner is the query name")
    eq(m.answer[0].data, "192.0.2.99", "wildcard data")
    m = q("a.b.wild.example.org", "TXT")
    eq(datas(m.answer), [(b"wildcard",)], "wildcard matches several labels")


def test_wildcard_nodata():
    m = q("foo.wild.example.org", "AAAA")
    eq(m.rcode, RCODES["NOERROR"], "rcode")
    check(m.aa, "AA")
    assert_negative_soa(m, "example.org", 300)


def test_empty_non_terminal_nodata():
    for name in ("b.ent.example.org", "ent.example.org"):
        m = q(name, "A")
        eq(m.rcode, RCODES["NOERROR"], f"ENT {name} is NODATA, not NXDOMAIN")
        check(m.aa, "AA")
        assert_negative_soa(m, "example.org", 300)
    m = q("a.b.ent.example.org", "A")
    eq(datas(m.answer), ["192.0.2.77"], "record below the ENT")


def test_nodata_existing_name():
    m = q("www.example.org", "MX")
    eq(m.rcode, RCODES["NOERROR"], "rcode")
    check(m.aa, "AA")
    assert_negative_soa(m, "example.org", 300)


def test_nxdomain_soa_ttl():
    m = q("nope.example.org", "A")
    eq(m.rcode, RCODES["NXDOMAIN"], "rcode")
    check(m.aa, "AA on NXDOMAIN")
    assert_negative_soa(m, "example.org", 300)


def test_nxdomain_soa_ttl_below_minimum():
    m = q("nope.example.net", "A")
    eq(m.rcode, RCODES["NXDOMAIN"], "rcode")
    check(m.aa, "AA")
    assert_negative_soa(m, "example.net", 60)


def test_second_zone_positive():
    m = q("www.example.net", "A")
    assert_positive(m, "www.example.net", "A")
    eq(datas(m.answer), ["198.51.100.10"], "A data from the example.net block")


def test_soa_and_ns_at_apex():
    m = q("example.org", "SOA")
    assert_positive(m, "example.org", "SOA")
    eq(len(m.answer), 1, "one SOA")
    soa = m.answer[0].data
    eq(soa[2:], (2024010101, 7200, 3600, 1209600, 300), "SOA numbers")
    m = q("example.org", "NS")
    assert_positive(m, "example.org", "NS")
    eq(sorted(d.lower() for d in datas(m.answer)), ["ns1.example.org.", "ns2.example.org."],
       "apex NS")


def test_delegation_referral():
    for name, qtype in (("www.sub.example.org", "A"), ("sub.example.org", "NS"),
                        ("deeper.www.sub.example.org", "AAAA")):
        m = q(name, qtype)
        eq(m.rcode, RCODES["NOERROR"], f"referral rcode for {name}")
        check(not m.aa, f"AA must not be set on a referral: {m}")
        eq(m.answer, [], "referral answer section")
        ns = m.rrs("authority", "NS")
        eq(sorted(r.data.lower() for r in ns), ["ns.elsewhere.net.", "ns.sub.example.org."],
           "delegation NS set")
        check(all(name_eq(r.name, "sub.example.org") for r in ns), "NS owner is the cut")
        glue = {(r.name.lower(), r.type_name, r.data) for r in m.additional}
        check(("ns.sub.example.org.", "A", "192.0.2.53") in glue, f"A glue missing: {glue}")
        check(("ns.sub.example.org.", "AAAA", "2001:db8::53") in glue,
              f"AAAA glue missing: {glue}")
        check(not any(name_eq(r.name, "ns.elsewhere.net") for r in m.additional),
              "no glue for out-of-zone NS")


def test_question_case_preserved():
    m = q("WwW.ExAmPlE.oRg", "A")
    eq(m.question[0][0], "WwW.ExAmPlE.oRg.", "question echoed with original case")
    eq(datas(m.answer), ["192.0.2.10"], "case-insensitive match")
    check(m.aa, "AA")
    m = q("NoPe.ExAmPlE.OrG", "A")
    eq(m.question[0][0], "NoPe.ExAmPlE.OrG.", "question case on NXDOMAIN")


def test_aa_flag_and_rd_copied():
    m = q("www.example.org", "A", rd=True)
    check(m.aa, "AA on authoritative answer")
    check(m.rd, "RD copied from the query")
    check(not m.ra, "RA must not be set by an authoritative-only server")


def test_any_minimal_hinfo():
    m = q("www.example.org", "ANY")
    eq(m.rcode, RCODES["NOERROR"], "rcode")
    if is_knotd():
        # knotd takes RFC 8482's other option: one RRset of the existing types over UDP
        eq(len({r.type for r in m.answer}), 1, f"RFC 8482: one RRset: {m}")
        return
    eq(len(m.answer), 1, f"RFC 8482: exactly one record: {m}")
    eq(m.answer[0].type, TYPES["HINFO"], "RFC 8482 answer is HINFO")
    check(name_eq(m.answer[0].name, "www.example.org"), "HINFO owner is the query name")


def test_refused_outside_zones():
    for name in ("www.example.com", "org", "."):
        m = q(name, "A")
        eq(m.rcode, RCODES["REFUSED"], f"rcode for {name}")
        check(not m.aa, "no AA on REFUSED")
        eq(m.answer, [], "no answer on REFUSED")


def test_refused_axfr_ixfr():
    if is_knotd():
        # knotd answers unauthorised transfers with NOTAUTH; the contract wants REFUSED
        skip_unless_ternd("AXFR/IXFR answered REFUSED")
    for qtype in ("AXFR", "IXFR"):
        m = q("example.org", qtype, tcp=True)
        eq(m.rcode, RCODES["REFUSED"], f"{qtype} over TCP")
        eq(m.answer, [], f"{qtype} leaks no records")
    m = q("example.org", "AXFR")
    check(m.rcode in (RCODES["REFUSED"], RCODES["FORMERR"], RCODES["NOTIMP"]),
          f"AXFR over UDP: {m.rcode_name}")
    eq(m.answer, [], "AXFR over UDP leaks no records")


def test_tcp_same_answers():
    for name, qtype in (("www.example.org", "A"), ("nope.example.org", "A"),
                        ("example.org", "MX")):
        u = q(name, qtype)
        t = q(name, qtype, tcp=True)
        eq((t.rcode, t.aa, datas(t.answer), datas(t.authority)),
           (u.rcode, u.aa, datas(u.answer), datas(u.authority)), f"TCP vs UDP for {name}")


def test_kdig_agrees():
    status, flags, answers, text = kdig(SRV.port, "alias.example.org", "A")
    eq(status, "NOERROR", "kdig status")
    check("aa" in flags, f"kdig flags {flags}")
    eq([a[-1] for a in answers], ["alias2.example.org.", "www.example.org.", "192.0.2.10"],
       "kdig answer chain")
    status, flags, answers, text = kdig(SRV.port, "nope.example.org", "A", "+tcp")
    eq(status, "NXDOMAIN", "kdig NXDOMAIN over TCP")


def test_hosts_before_file_with_fallthrough():
    skip_unless_ternd("hosts plugin")
    m = q("h.example.org", "A")
    eq(m.rcode, RCODES["NOERROR"], "rcode")
    eq(datas(m.answer), ["10.1.2.3"], "hosts entry")
    m = q("www.example.org", "A")
    eq(datas(m.answer), ["192.0.2.10"], "falls through to file")


def test_most_specific_block_wins():
    skip_unless_ternd("several server blocks on one port")
    m = q("x.deep.example.org", "A")
    eq(datas(m.answer), ["192.0.2.200"], "deep.example.org block answers")
    m = q("example.org", "SOA")
    eq(len(m.answer), 1, "example.org block still answers its apex")


def test_ipv6_listener():
    if not have_ipv6():
        raise Skip("no ::1 on this host")
    m = query(SRV.port, "www.example.org", "AAAA", host="::1")
    eq(datas(m.answer), ["2001:db8::10"], "answer over [::1]")
    m = query(SRV.port, "www.example.org", "A", host="::1", tcp=True)
    eq(datas(m.answer), ["192.0.2.10"], "answer over [::1] TCP")


if __name__ == "__main__":
    run_tests(globals())
