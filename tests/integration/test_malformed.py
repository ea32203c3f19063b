#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Malformed packets: FORMERR or silence, never amplification, never a crash.

The corpus (corpus() below, deterministic: fixed seeds) holds truncated queries,
bad counts (QDCOUNT 0, 2, 65535; AN/NS/AR records that are not there), trailing
garbage, compression pointer loops and forward/out-of-range pointers, bad label
types, names over 255 octets, broken OPT records, oversized datagrams and random
bytes behind a query header. Each packet is checked against the strict parser in
ternlib (it must not parse, except the few that are well-formed wire but not a
valid query), then sent over UDP and over TCP. A reply must be FORMERR with the
query's ID and at most AMPLIFICATION times the query size; after each packet the
server must still answer a normal query. TCP-only cases cover framing abuse.
Run with an argument `--write DIR` to dump the corpus as files for fuzzers.
"""

import os
import random
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import (DNSError, build_opt, check, eq, encode_name, frame,  # noqa: E402
                     make_query, parse_message, query, run_tests, tcp_connect,
                     tcp_read_frame, udp_exchange, zone_server, RCODES)

SRV = None
AMPLIFICATION = 2
QID = 0x4D5A
STATS = {"udp_formerr": 0, "udp_silent": 0, "tcp_formerr": 0, "tcp_silent": 0}
# RFC 6891 says the OPT owner MUST be root but not what a receiver does otherwise;
# knotd ignores the owner and answers. For these a normal NOERROR reply is accepted too.
LENIENT = {"opt-owner-not-root"}


def header(qd=1, an=0, ns=0, ar=0, flags=0, qid=QID):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def question(name="www.example.org", qtype=1, qclass=1):
    return encode_name(name) + struct.pack("!HH", qtype, qclass)


def rr(name, rtype, rdata, ttl=300, cls=1):
    return encode_name(name) + struct.pack("!HHIH", rtype, cls, ttl, len(rdata)) + rdata


def corpus():
    """List of (label, packet bytes, wire_valid) — wire_valid marks packets that are
    well-formed DNS wire but invalid as a query (the server must still refuse them)."""
    out = []
    good = header() + question()
    good_edns = header(ar=1) + question() + build_opt(1232)

    # 1. truncated plain queries (header complete, question cut)
    for cut in (12, 13, 14, 16, 17, 20, 28, len(good) - 4, len(good) - 3, len(good) - 1):
        out.append((f"truncated-at-{cut}", good[:cut], False))
    # 2. truncated EDNS queries (cut inside the OPT RR)
    base = len(header()) + len(question())
    for extra in (1, 3, 5, 9, 10):
        out.append((f"truncated-opt-{extra}", good_edns[:base + extra], False))
    # 3. question counts
    out.append(("qdcount-0", header(qd=0), True))
    out.append(("qdcount-0-with-opt", header(qd=0, ar=1) + build_opt(1232), True))
    out.append(("qdcount-2", header(qd=2) + question() + question("mail.example.org"), True))
    out.append(("qdcount-2-one-present", header(qd=2) + question(), False))
    out.append(("qdcount-65535", header(qd=65535) + question(), False))
    # 4. other counts claim records that are not there
    out.append(("ancount-missing", header(an=1) + question(), False))
    out.append(("nscount-missing", header(ns=3) + question(), False))
    out.append(("arcount-missing", header(ar=2) + question() + build_opt(1232), False))
    out.append(("arcount-65535", header(ar=65535) + question(), False))
    # 5. trailing garbage
    rnd = random.Random(1)
    for n in (1, 7, 100, 500):
        out.append((f"trailing-{n}", good + bytes(rnd.randrange(256) for _ in range(n)), False))
    out.append(("trailing-after-opt", good_edns + b"\x00\x00\x00", False))
    out.append(("trailing-zero-rr", good + b"\x00" * 11, False))
    # 6. compression pointers in the question
    tail = struct.pack("!HH", 1, 1)
    out.append(("ptr-self-loop", header() + b"\xc0\x0c" + tail, False))
    out.append(("ptr-label-then-self", header() + b"\x03www\xc0\x0c" + tail, False))
    out.append(("ptr-two-loop", header() + b"\x03www\xc0\x12\x03abc\xc0\x0c" + tail, False))
    out.append(("ptr-forward", header() + b"\xc0\x12" + tail + b"\x03www\x00", False))
    out.append(("ptr-past-end", header() + b"\xc0\xff" + tail, False))
    out.append(("ptr-max-offset", header() + b"\xff\xff" + tail, False))
    out.append(("ptr-truncated", header() + b"\x03www\xc0", False))
    # a loop through the answer section: question fine, answer owner loops onto itself
    q = question()
    loop_at = 12 + len(q)
    out.append(("ptr-loop-in-answer", header(an=1) + q + struct.pack("!H", 0xC000 | loop_at)
                + struct.pack("!HHIH", 1, 1, 60, 4) + b"\x01\x02\x03\x04", False))
    # 7. bad labels and names
    out.append(("label-type-01", header() + b"\x41" + b"a" * 10 + b"\x00" + tail, False))
    out.append(("label-type-10", header() + b"\x83abc\x00" + tail, False))
    out.append(("label-past-end", header() + b"\x3fabc", False))
    out.append(("label-len-over-packet", header() + b"\x20abc\x00" + tail, False))
    out.append(("name-256-octets", header() + (b"\x3f" + b"a" * 63) * 4 + b"\x00" + tail, False))
    out.append(("name-128-labels", header() + b"\x01a" * 128 + b"\x00" + tail, False))
    out.append(("name-no-terminator", header() + b"\x03www\x07example\x03org", False))
    out.append(("name-no-type-class", header() + encode_name("www.example.org"), False))
    out.append(("name-half-type", header() + encode_name("www.example.org") + b"\x00\x01\x00",
                False))
    # 8. broken OPT records
    out.append(("opt-twice", header(ar=2) + question() + build_opt(1232) + build_opt(512),
                False))
    opt_named = encode_name("example.org") + build_opt(1232)[1:]
    out.append(("opt-owner-not-root", header(ar=1) + question() + opt_named, False))
    bad_opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 4) + struct.pack("!HH", 10, 40)
    out.append(("opt-option-overruns", header(ar=1) + question() + bad_opt, False))
    short_opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 2) + b"\x00\x0a"
    out.append(("opt-option-header-short", header(ar=1) + question() + short_opt, False))
    out.append(("opt-rdlen-past-end", header(ar=1) + question()
                + b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 200), False))
    out.append(("opt-in-answer", header(an=1) + question() + build_opt(1232), False))
    # 9. oversized
    out.append(("oversized-4k", good + bytes(rnd.randrange(256) for _ in range(4000)), False))
    out.append(("oversized-60k", good + b"\xc0" * 60000, False))
    # 10. random bytes behind a query header (QR=0, opcode QUERY)
    gen = random.Random(20240101)
    made = 0
    while made < 24:
        n = gen.randrange(1, 300)
        body = bytes(gen.randrange(256) for _ in range(n))
        counts = [gen.choice((1, 1, 1, 2, 0x0101)), gen.randrange(3), gen.randrange(3),
                  gen.randrange(3)]
        pkt = header(*counts, flags=gen.randrange(0x10000) & 0x07FF & ~0x0400) + body
        if _wire_valid(pkt):
            continue
        out.append((f"random-{made}", pkt, False))
        made += 1
    return out


def tcp_only_cases():
    """Framing abuse that only exists on a stream."""
    good = make_query("www.example.org", "A", qid=QID)
    return [
        ("tcp-zero-length-frame", b"\x00\x00"),
        ("tcp-one-byte-length", b"\x00"),
        ("tcp-length-longer-than-data", struct.pack("!H", 200) + good),
        ("tcp-length-shorter-than-query", struct.pack("!H", 10) + good),
        ("tcp-max-frame-garbage", struct.pack("!H", 65535) + good + b"\xee" * (65535 - len(good))),
    ]


def _wire_valid(pkt):
    try:
        parse_message(pkt)
        return True
    except DNSError:
        return False


def setup_module():
    global SRV
    SRV = zone_server()


def teardown_module():
    SRV.cleanup()
    print(f"  replies: {STATS}")


def check_reply(label, pkt, raw):
    if raw is None:
        return False
    check(len(raw) >= 12, f"{label}: reply of {len(raw)} bytes")
    eq(raw[:2], pkt[:2], f"{label}: reply ID")
    limit = AMPLIFICATION * len(pkt)
    check(len(raw) <= limit, f"{label}: amplification, {len(raw)} bytes for a {len(pkt)}-byte query")
    flags = struct.unpack("!H", raw[2:4])[0]
    check(flags & 0x8000, f"{label}: reply without QR")
    rcode = flags & 0xF
    if label in LENIENT and rcode == RCODES["NOERROR"]:
        return True
    eq(rcode, RCODES["FORMERR"], f"{label}: rcode")
    try:
        m = parse_message(raw)
    except DNSError as e:
        raise AssertionError(f"{label}: the FORMERR reply is itself malformed: {e}") from None
    eq(m.answer, [], f"{label}: answer records in a FORMERR reply")
    return True


def assert_serving(label, tcp=False):
    m = query(SRV.port, "www.example.org", "A", tcp=tcp, timeout=2.0)
    eq([r.data for r in m.answer], ["192.0.2.10"], f"normal answer after {label}")


def test_corpus_is_malformed():
    cases = corpus()
    check(len(cases) >= 50, f"corpus has {len(cases)} packets")
    eq(len({lab for lab, _, _ in cases}), len(cases), "unique labels")
    for label, pkt, wire_valid in cases:
        eq(_wire_valid(pkt), wire_valid, f"{label}: strict parser verdict")


def _each(cases, fn):
    """Run fn on every case; collect all failures, then raise one error listing them."""
    errors = []
    for i, case in enumerate(cases):
        try:
            fn(i, *case)
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        raise AssertionError(f"{len(errors)} of {len(cases)} packets failed:\n  "
                             + "\n  ".join(errors))


def test_corpus_over_udp():
    def one(i, label, pkt, _):
        if len(pkt) > 65507:
            return
        raw = udp_exchange(SRV.port, pkt, timeout=0.3)
        STATS["udp_formerr" if check_reply(label, pkt, raw) else "udp_silent"] += 1
        assert_serving(label)
    _each(corpus(), one)


def test_corpus_over_tcp():
    def one(i, label, pkt, _):
        with tcp_connect(SRV.port) as s:
            s.sendall(frame(pkt))
            try:
                raw = tcp_read_frame(s, 1.0)
            except (TimeoutError, ConnectionResetError, DNSError):
                raw = None
        STATS["tcp_formerr" if check_reply(label, pkt, raw) else "tcp_silent"] += 1
        assert_serving(label, tcp=(i % 8 == 0))
    _each(corpus(), one)


def test_tcp_framing_abuse():
    for label, data in tcp_only_cases():
        with tcp_connect(SRV.port) as s:
            s.sendall(data)
            try:
                s.shutdown(socket.SHUT_WR)
                raw = tcp_read_frame(s, 1.5)
            except (TimeoutError, ConnectionResetError, DNSError, OSError):
                raw = None
        if raw is not None:
            check(len(raw) >= 12, f"{label}: short reply")
            flags = struct.unpack("!H", raw[2:4])[0]
            check(flags & 0x8000, f"{label}: QR")
            # a reply only makes sense for a frame that held a whole message
            check(flags & 0xF in (RCODES["FORMERR"], RCODES["NOERROR"]),
                  f"{label}: rcode {flags & 0xF}")
        assert_serving(label)
        assert_serving(label, tcp=True)


def test_malformed_then_valid_on_same_tcp_connection():
    """A FORMERR on a stream must either close it or keep serving it correctly."""
    good = make_query("www.example.org", "A")
    with tcp_connect(SRV.port) as s:
        s.sendall(frame(header(qd=0)) + frame(good))
        answers = []
        try:
            for _ in range(2):
                raw = tcp_read_frame(s, 1.5)
                if raw is None:
                    break
                answers.append(parse_message(raw))
        except (TimeoutError, ConnectionResetError):
            pass
    for m in answers:
        if m.id == QID:
            eq(m.rcode, RCODES["FORMERR"], "the QDCOUNT=0 message")
        else:
            eq(m.id, struct.unpack("!H", good[:2])[0], "ID of the valid query")
            eq([r.data for r in m.answer], ["192.0.2.10"], "valid query answered")
    assert_serving("same-connection")


def _write_corpus(directory):
    os.makedirs(directory, exist_ok=True)
    for label, pkt, _ in corpus():
        with open(os.path.join(directory, label + ".bin"), "wb") as f:
            f.write(pkt)
    print(f"wrote {len(corpus())} packets to {directory}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        _write_corpus(sys.argv[2])
        sys.exit(0)
    run_tests(globals())
