# SPDX-License-Identifier: Apache-2.0
"""The DNS wire format for Tern's integration tests (Python 3 standard library only).

A struct-based message builder (make_query, build_opt, encode_name, rdata_wire) and a
strict parser (parse_message, decode_name) that the tests use as the oracle for exact
assertions on flags and sections: it rejects forward or looping compression pointers,
reserved label types, names over 255 octets, truncated records, a second OPT and (by
default) trailing bytes. No I/O here (socket only converts addresses): ternlib.py
sends and receives, and re-exports every name in __all__ so that tests import
everything from ternlib.
"""

import ipaddress
import socket
import struct
import time

__all__ = [
    "TYPES", "TYPE_NAMES", "RCODES", "RCODE_NAMES", "CLASS_IN",
    "qtype_num", "type_name", "rcode_name", "DNSError",
    "encode_name", "decode_name", "name_eq", "RR", "Opt", "Message", "parse_message",
    "new_id", "build_opt", "make_query", "rdata_wire",
]

TYPES = {
    "A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "HINFO": 13, "MX": 15, "TXT": 16,
    "AAAA": 28, "SRV": 33, "NAPTR": 35, "DS": 43, "OPT": 41, "RRSIG": 46, "NSEC": 47,
    "DNSKEY": 48, "SVCB": 64, "HTTPS": 65, "IXFR": 251, "AXFR": 252, "ANY": 255, "CAA": 257,
}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
RCODES = {
    "NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5,
    "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9, "NOTZONE": 10, "BADVERS": 16,
}
RCODE_NAMES = {v: k for k, v in RCODES.items()}
CLASS_IN = 1


def qtype_num(t):
    if isinstance(t, int):
        return t
    t = t.upper()
    if t in TYPES:
        return TYPES[t]
    if t.startswith("TYPE"):
        return int(t[4:])
    raise ValueError(f"unknown type {t}")


def type_name(n):
    return TYPE_NAMES.get(n, f"TYPE{n}")


def rcode_name(n):
    return RCODE_NAMES.get(n, f"RCODE{n}")


class DNSError(Exception):
    """A message that does not parse (the parser is strict: it is the oracle)."""


def encode_name(name):
    """Presentation name ("www.Example.org" or with a final dot) to wire labels.

    Case is kept; '\\DDD' and '\\X' escapes are understood."""
    if name in (".", ""):
        return b"\x00"
    if name.endswith(".") and not name.endswith("\\."):
        name = name[:-1]
    out = bytearray()
    label = bytearray()
    i = 0
    while i < len(name):
        c = name[i]
        if c == "\\":
            if name[i + 1:i + 4].isdigit() and len(name[i + 1:i + 4]) == 3:
                label.append(int(name[i + 1:i + 4]))
                i += 4
            else:
                label += name[i + 1].encode()
                i += 2
            continue
        if c == ".":
            out.append(len(label))
            out += label
            label = bytearray()
        else:
            label += c.encode()
        i += 1
    out.append(len(label))
    out += label
    out.append(0)
    if len(out) > 255:
        raise ValueError("name too long")
    return bytes(out)


def _label_text(raw):
    s = []
    for b in raw:
        ch = chr(b)
        if ch in ".\\\"();@$":
            s.append("\\" + ch)
        elif 0x21 <= b <= 0x7e:
            s.append(ch)
        else:
            s.append("\\%03d" % b)
    return "".join(s)


def decode_name(msg, off):
    """Decode a possibly compressed name at @off; return (text with final dot, next offset).

    Strict: pointers must point strictly backwards (which also forbids loops), label
    types 01/10 are rejected, the name must fit 255 octets and the message."""
    labels = []
    wire_len = 1
    end = None
    pos = off
    lowest = off
    while True:
        if pos >= len(msg):
            raise DNSError("name runs past the end")
        ln = msg[pos]
        kind = ln & 0xC0
        if kind == 0xC0:
            if pos + 1 >= len(msg):
                raise DNSError("truncated compression pointer")
            ptr = ((ln & 0x3F) << 8) | msg[pos + 1]
            if end is None:
                end = pos + 2
            if ptr >= lowest:
                raise DNSError("compression pointer not backwards (loop or forward)")
            lowest = ptr
            pos = ptr
            continue
        if kind != 0:
            raise DNSError(f"bad label type {ln:#x}")
        if ln == 0:
            pos += 1
            break
        if pos + 1 + ln > len(msg):
            raise DNSError("label runs past the end")
        labels.append(msg[pos + 1:pos + 1 + ln])
        wire_len += ln + 1
        if wire_len > 255:
            raise DNSError("name longer than 255 octets")
        pos += 1 + ln
    if end is None:
        end = pos
    text = ".".join(_label_text(lab) for lab in labels) + "."
    return text, end


def name_eq(a, b):
    def norm(n):
        n = n.lower()
        return n if n.endswith(".") else n + "."
    return norm(a) == norm(b)


class RR:
    __slots__ = ("name", "type", "cls", "ttl", "rdata", "data")

    def __init__(self, name, rtype, cls, ttl, rdata, data):
        self.name, self.type, self.cls, self.ttl, self.rdata, self.data = \
            name, rtype, cls, ttl, rdata, data

    @property
    def type_name(self):
        return type_name(self.type)

    def __repr__(self):
        return f"<RR {self.name} {self.ttl} {type_name(self.type)} {self.data!r}>"


class Opt:
    __slots__ = ("udp_size", "ext_rcode", "version", "do", "z", "options")

    def __init__(self, udp_size=1232, ext_rcode=0, version=0, do=False, z=0, options=()):
        self.udp_size, self.ext_rcode, self.version, self.do, self.z = \
            udp_size, ext_rcode, version, do, z
        self.options = list(options)

    def __repr__(self):
        return (f"<OPT udp={self.udp_size} ext_rcode={self.ext_rcode} "
                f"version={self.version} do={self.do} options={self.options}>")


def _decode_rdata(msg, rtype, off, rdlen):
    end = off + rdlen
    rd = msg[off:end]
    try:
        if rtype == 1:
            if rdlen != 4:
                raise DNSError("A rdata length")
            return socket.inet_ntop(socket.AF_INET, rd)
        if rtype == 28:
            if rdlen != 16:
                raise DNSError("AAAA rdata length")
            return str(ipaddress.IPv6Address(rd))
        if rtype in (2, 5, 12):
            name, nxt = decode_name(msg, off)
            if nxt != end:
                raise DNSError("name rdata length")
            return name
        if rtype == 15:
            pref = struct.unpack_from("!H", msg, off)[0]
            name, nxt = decode_name(msg, off + 2)
            if nxt != end:
                raise DNSError("MX rdata length")
            return (pref, name)
        if rtype == 33:
            prio, weight, port = struct.unpack_from("!HHH", msg, off)
            name, nxt = decode_name(msg, off + 6)
            if nxt != end:
                raise DNSError("SRV rdata length")
            return (prio, weight, port, name)
        if rtype == 6:
            mname, p = decode_name(msg, off)
            rname, p = decode_name(msg, p)
            if p + 20 != end:
                raise DNSError("SOA rdata length")
            return (mname, rname) + struct.unpack_from("!IIIII", msg, p)
        if rtype in (16, 13):
            strings = []
            p = off
            while p < end:
                ln = msg[p]
                if p + 1 + ln > end:
                    raise DNSError("character-string past rdata")
                strings.append(bytes(msg[p + 1:p + 1 + ln]))
                p += 1 + ln
            return tuple(strings)
        if rtype == 257:
            flags, taglen = rd[0], rd[1]
            return (flags, bytes(rd[2:2 + taglen]), bytes(rd[2 + taglen:]))
    except (struct.error, IndexError) as e:
        raise DNSError(f"bad rdata for type {rtype}: {e}") from None
    return bytes(rd)


class Message:
    """A parsed DNS message. rcode includes the EDNS extended bits."""

    def __init__(self):
        self.id = 0
        self.flags = 0
        self.qr = self.aa = self.tc = self.rd = self.ra = self.ad = self.cd = False
        self.opcode = 0
        self.rcode = 0
        self.counts = (0, 0, 0, 0)
        self.question = []
        self.answer = []
        self.authority = []
        self.additional = []
        self.opt = None
        self.size = 0
        self.raw = b""

    @property
    def rcode_name(self):
        return rcode_name(self.rcode)

    def rrs(self, section, rtype=None, name=None):
        out = getattr(self, section)
        if rtype is not None:
            out = [r for r in out if r.type == qtype_num(rtype)]
        if name is not None:
            out = [r for r in out if name_eq(r.name, name)]
        return out

    def __repr__(self):
        fl = " ".join(f for f in ("qr", "aa", "tc", "rd", "ra", "ad", "cd") if getattr(self, f))
        return (f"<Message id={self.id} opcode={self.opcode} rcode={self.rcode_name} flags=[{fl}] "
                f"q={self.question} an={self.answer} ns={self.authority} "
                f"ar={self.additional} opt={self.opt} size={self.size}>")


def parse_message(msg, strict=True):
    """Parse wire bytes. strict: trailing bytes and more than one OPT are errors."""
    if len(msg) < 12:
        raise DNSError("shorter than a header")
    m = Message()
    m.raw = bytes(msg)
    m.size = len(msg)
    m.id, m.flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", msg, 0)
    f = m.flags
    m.qr = bool(f & 0x8000)
    m.opcode = (f >> 11) & 0xF
    m.aa = bool(f & 0x0400)
    m.tc = bool(f & 0x0200)
    m.rd = bool(f & 0x0100)
    m.ra = bool(f & 0x0080)
    m.ad = bool(f & 0x0020)
    m.cd = bool(f & 0x0010)
    m.rcode = f & 0xF
    m.counts = (qd, an, ns, ar)
    off = 12
    for _ in range(qd):
        name, off = decode_name(msg, off)
        if off + 4 > len(msg):
            raise DNSError("question truncated")
        qt, qc = struct.unpack_from("!HH", msg, off)
        off += 4
        m.question.append((name, qt, qc))
    for section, count in (("answer", an), ("authority", ns), ("additional", ar)):
        lst = getattr(m, section)
        for _ in range(count):
            name, off = decode_name(msg, off)
            if off + 10 > len(msg):
                raise DNSError(f"{section} RR header truncated")
            rtype, cls, ttl, rdlen = struct.unpack_from("!HHIH", msg, off)
            off += 10
            if off + rdlen > len(msg):
                raise DNSError(f"{section} rdata truncated")
            if rtype == 41:
                if section != "additional" or name != ".":
                    raise DNSError("OPT outside additional or not at root")
                if m.opt is not None:
                    raise DNSError("more than one OPT")
                opts = []
                p = off
                while p < off + rdlen:
                    if p + 4 > off + rdlen:
                        raise DNSError("EDNS option header truncated")
                    code, olen = struct.unpack_from("!HH", msg, p)
                    if p + 4 + olen > off + rdlen:
                        raise DNSError("EDNS option truncated")
                    opts.append((code, bytes(msg[p + 4:p + 4 + olen])))
                    p += 4 + olen
                m.opt = Opt(udp_size=cls, ext_rcode=(ttl >> 24) & 0xFF,
                            version=(ttl >> 16) & 0xFF, do=bool(ttl & 0x8000),
                            z=ttl & 0x7FFF, options=opts)
            else:
                lst.append(RR(name, rtype, cls, ttl, bytes(msg[off:off + rdlen]),
                              _decode_rdata(msg, rtype, off, rdlen)))
            off += rdlen
    if strict and off != len(msg):
        raise DNSError(f"{len(msg) - off} trailing bytes")
    if m.opt is not None:
        m.rcode |= m.opt.ext_rcode << 4
    return m


_next_id = [int(time.time() * 1000) & 0xFFFF]


def new_id():
    _next_id[0] = (_next_id[0] * 75 + 74) % 65537 & 0xFFFF
    return _next_id[0]


def build_opt(udp_size=1232, version=0, do=False, ext_rcode=0, options=()):
    rdata = b"".join(struct.pack("!HH", c, len(d)) + d for c, d in options)
    ttl = (ext_rcode << 24) | (version << 16) | (0x8000 if do else 0)
    return b"\x00" + struct.pack("!HHIH", 41, udp_size, ttl, len(rdata)) + rdata


def make_query(name, qtype="A", qid=None, rd=False, opcode=0, qr=False, cd=False,
               edns=None, qclass=CLASS_IN, flags=None):
    """Build a query. edns: None (no OPT), an int (UDP size) or an Opt."""
    if qid is None:
        qid = new_id()
    if flags is None:
        flags = (0x8000 if qr else 0) | ((opcode & 0xF) << 11) | (0x0100 if rd else 0) \
            | (0x0010 if cd else 0)
    arcount = 0
    tail = b""
    if edns is not None:
        if isinstance(edns, int):
            edns = Opt(udp_size=edns)
        tail = build_opt(edns.udp_size, edns.version, edns.do, edns.ext_rcode, edns.options)
        arcount = 1
    hdr = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, arcount)
    return hdr + encode_name(name) + struct.pack("!HH", qtype_num(qtype), qclass) + tail


def rdata_wire(rtype, value):
    """Wire rdata for a record given in presentation form: A and AAAA (address text),
    NS, CNAME and PTR (a name), TXT (a string or a list of strings, each cut into
    character-strings of at most 255 octets). Other types raise ValueError."""
    if rtype == "A":
        return socket.inet_pton(socket.AF_INET, value)
    if rtype == "AAAA":
        return socket.inet_pton(socket.AF_INET6, value)
    if rtype in ("NS", "CNAME", "PTR"):
        return encode_name(value)
    if rtype == "TXT":
        parts = value if isinstance(value, (list, tuple)) else [value]
        out = b""
        for p in parts:
            b = p.encode() if isinstance(p, str) else p
            for i in range(0, max(len(b), 1), 255):
                chunk = b[i:i + 255]
                out += bytes([len(chunk)]) + chunk
        return out
    raise ValueError(f"no rdata encoder for {rtype}")
