#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""DNS protocol behaviour independent of the data: EDNS0, truncation, TCP, opcodes.

Uses the medium (~750 byte) and big (~3.4 KB) TXT RRsets of example.org.zone:
EDNS UDP sizes are honoured (responses never exceed max(512, client size)),
BADVERS for EDNS version > 0, unknown EDNS options are not echoed, oversize answers
come back TC=1 with the question only over UDP and complete over TCP, TCP follows
RFC 7766 (pipelining, split writes, several queries per connection, idle close),
other opcodes get NOTIMP and messages with QR=1 or shorter than a header get nothing.
"""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import (Opt, check, eq, frame, make_query, parse_message,  # noqa: E402
                     query, run_tests, tcp_connect, tcp_read_frame, udp_exchange,
                     zone_server, RCODES, TYPES)

SRV = None
MEDIUM_RRS = 8
BIG_RRS = 16


def setup_module():
    global SRV
    SRV = zone_server()


def teardown_module():
    SRV.cleanup()


def q(name, qtype="A", **kw):
    return query(SRV.port, name, qtype, **kw)


def assert_tc_question_only(m, name, qtype, limit):
    check(m.tc, f"TC expected for {name} (limit {limit}): {m}")
    eq(m.answer, [], "TC reply carries no answer records")
    eq(m.authority, [], "TC reply carries no authority records")
    eq(len(m.question), 1, "TC reply keeps the question")
    eq((m.question[0][0].lower(), m.question[0][1]), (name.lower() + ".", TYPES[qtype]),
       "TC question")
    check(m.size <= limit, f"TC reply of {m.size} bytes exceeds {limit}")


def test_no_edns_no_opt():
    m = q("www.example.org", "A")
    check(m.opt is None, f"OPT in reply to a query without EDNS: {m.opt}")


def test_edns_opt_in_reply():
    m = q("www.example.org", "A", edns=4096)
    check(m.opt is not None, "OPT expected in reply to an EDNS query")
    eq(m.opt.version, 0, "EDNS version")
    check(m.opt.udp_size >= 512, f"advertised UDP size {m.opt.udp_size}")
    eq(m.opt.udp_size, 1232, "default advertised UDP size")
    eq(m.rcode, RCODES["NOERROR"], "rcode")


def test_medium_fits_edns_1232():
    m = q("medium.example.org", "TXT", edns=1232)
    check(not m.tc, f"no TC expected with EDNS 1232 ({m.size} bytes)")
    eq(len(m.answer), MEDIUM_RRS, "all TXT records")
    check(512 < m.size <= 1232, f"size {m.size}")


def test_medium_truncated_without_edns():
    m = q("medium.example.org", "TXT")
    assert_tc_question_only(m, "medium.example.org", "TXT", 512)


def test_client_size_honoured():
    m = q("medium.example.org", "TXT", edns=600)
    assert_tc_question_only(m, "medium.example.org", "TXT", 600)
    check(m.opt is not None, "OPT kept in a TC reply")
    m = q("medium.example.org", "TXT", edns=1000)
    check(not m.tc and len(m.answer) == MEDIUM_RRS, f"fits 1000: {m.size} bytes, tc={m.tc}")


def test_small_edns_size_means_512():
    m = q("medium.example.org", "TXT", edns=100)
    assert_tc_question_only(m, "medium.example.org", "TXT", 512)
    m = q("www.example.org", "A", edns=100)
    check(not m.tc and len(m.answer) == 1, "a small answer fits the 512 floor")


def test_big_truncated_over_udp():
    m = q("big.example.org", "TXT")
    assert_tc_question_only(m, "big.example.org", "TXT", 512)
    m = q("big.example.org", "TXT", edns=4096)
    check(m.size <= 4096, f"reply of {m.size} over the client's 4096")
    if m.tc:
        assert_tc_question_only(m, "big.example.org", "TXT", 4096)
    else:
        eq(len(m.answer), BIG_RRS, "untruncated big reply is complete")


def test_big_complete_over_tcp():
    for edns in (None, 1232):
        m = q("big.example.org", "TXT", tcp=True, edns=edns)
        check(not m.tc, "no TC over TCP")
        eq(len(m.answer), BIG_RRS, "all TXT records over TCP")
        check(m.size > 1232, f"TCP reply size {m.size}")
        eq(sorted(r.data[0][:3] for r in m.answer),
           sorted(b"b%02d" % i for i in range(BIG_RRS)), "TXT contents")


def test_badvers():
    m = q("www.example.org", "A", edns=Opt(udp_size=1232, version=1))
    eq(m.rcode, RCODES["BADVERS"], "extended rcode for EDNS version 1")
    check(m.opt is not None, "BADVERS needs an OPT")
    eq(m.opt.version, 0, "responder's version")
    eq(m.answer, [], "no answer with BADVERS")


def test_unknown_option_not_echoed():
    opt = Opt(udp_size=1232, options=[(65001, b"\x01\x02\x03"), (65002, b"")])
    m = q("www.example.org", "A", edns=opt)
    eq(m.rcode, RCODES["NOERROR"], "unknown options are ignored")
    eq(len(m.answer), 1, "answer")
    codes = [c for c, _ in m.opt.options]
    check(65001 not in codes and 65002 not in codes, f"unknown options echoed: {codes}")


def test_tcp_pipelining():
    names = ["www.example.org", "mail.example.org", "nope.example.org"]
    wires = [make_query(n, "A") for n in names]
    ids = {struct.unpack("!H", w[:2])[0]: n for w, n in zip(wires, names)}
    with tcp_connect(SRV.port) as s:
        s.sendall(b"".join(frame(w) for w in wires))
        got = {}
        for _ in names:
            raw = tcp_read_frame(s, 3.0)
            check(raw is not None, "connection closed before all answers")
            m = parse_message(raw)
            check(m.id in ids, f"unexpected ID {m.id}")
            got[m.id] = m
    eq(set(got), set(ids), "one answer per pipelined query")
    by_name = {ids[i]: m for i, m in got.items()}
    eq([r.data for r in by_name["www.example.org"].answer], ["192.0.2.10"], "www")
    eq([r.data for r in by_name["mail.example.org"].answer], ["192.0.2.25"], "mail")
    eq(by_name["nope.example.org"].rcode, RCODES["NXDOMAIN"], "nope")


def test_tcp_split_writes():
    wire = frame(make_query("www.example.org", "A"))
    with tcp_connect(SRV.port) as s:
        for i in range(len(wire)):          # one byte per segment, including the length
            s.send(wire[i:i + 1])
            if i < 3:
                time.sleep(0.05)
        m = parse_message(tcp_read_frame(s, 3.0))
        eq(m.id, struct.unpack("!H", wire[2:4])[0], "ID")
        eq([r.data for r in m.answer], ["192.0.2.10"], "answer")


def test_tcp_sequential_on_one_connection():
    with tcp_connect(SRV.port) as s:
        for i in range(5):
            w = make_query("www.example.org", "AAAA")
            s.sendall(frame(w))
            m = parse_message(tcp_read_frame(s, 3.0))
            eq(m.id, struct.unpack("!H", w[:2])[0], f"ID of query {i}")
            eq([r.data for r in m.answer], ["2001:db8::10"], "answer")


def test_notimp_for_other_opcodes():
    for opcode in (2, 3, 6, 15):   # STATUS, unassigned, DSO, unassigned
        wire = make_query("example.org", "SOA", opcode=opcode)
        raw = udp_exchange(SRV.port, wire, timeout=2.0)
        check(raw is not None, f"no reply for opcode {opcode}")
        check(len(raw) >= 12, "reply shorter than a header")
        eq(raw[:2], wire[:2], "ID echoed")
        flags = struct.unpack("!H", raw[2:4])[0]
        check(flags & 0x8000, "QR set")
        eq((flags >> 11) & 0xF, opcode, "opcode echoed")
        eq(flags & 0xF, RCODES["NOTIMP"], f"rcode for opcode {opcode}")


def test_qr_set_gets_no_reply():
    wire = make_query("www.example.org", "A", qr=True)
    eq(udp_exchange(SRV.port, wire, timeout=1.0), None, "reply to a message with QR=1")
    check(q("www.example.org").answer, "still serving")


def test_short_packets_get_no_reply():
    for pkt in (b"", b"\x12", b"\x12\x34\x01\x00\x00\x01", b"\xab\xcd" + b"\x00" * 9):
        if not pkt:
            continue   # a zero-length datagram is legal but carries nothing to answer
        eq(udp_exchange(SRV.port, pkt, timeout=0.5), None, f"reply to {len(pkt)}-byte packet")
    check(q("www.example.org").answer, "still serving")


def test_tcp_idle_connection_closed():
    # RFC 7766 6.2.3: servers close idle connections. Bound: 40 s (CoreDNS and knotd
    # use 10 s or less by default).
    with tcp_connect(SRV.port) as s:
        s.settimeout(40.0)
        t0 = time.monotonic()
        try:
            data = s.recv(1)
        except socket.timeout:
            raise AssertionError("idle TCP connection still open after 40 s") from None
        except ConnectionResetError:
            data = b""
        eq(data, b"", "server sent data on an idle connection")
        print(f"  idle connection closed after {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    run_tests(globals())
