# SPDX-License-Identifier: Apache-2.0
"""Shared helpers for Tern's integration tests (Python 3 standard library only).

What is here: starting ternd (or knotd, to validate the tests themselves) with a
generated config on free loopback ports and stopping it by PID; UDP/TCP exchanges; a
kdig wrapper; HTTP and Prometheus-text helpers; upstream peers for the forward and
cache tests (PowerDNS, Unbound, in-process Python upstreams); and a tiny test runner
(plain test_* functions, PASS/FAIL per test, "N passed, N failed" at the end,
non-zero exit on any failure, server logs printed when a test fails).

The DNS message builder and the strict parser live in dnswire.py, beside this file;
every public name of it is re-exported here, so tests import everything from ternlib.

Environment: TERND (path of the daemon; default <source>/build/daemon/ternd),
TERN_SOURCE_ROOT (repository root; default two levels above this file),
TERN_TARGET=knotd (serve the same zones with knotd instead; tests of Tern-only
behaviour skip themselves), TERN_TEST_VERBOSE=1 (print server logs even on success).
"""

import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# dnswire.py sits beside this file, and every test puts this folder first on sys.path
# (meson runs the tests from the source tree), so the import finds it there. The star
# import re-exports dnswire's public names (its __all__) for the tests; the second
# names what this file uses itself.
from dnswire import *  # noqa: F401,F403
from dnswire import (CLASS_IN, RCODES, TYPES, DNSError, build_opt, encode_name,
                     make_query, name_eq, parse_message, rdata_wire, type_name)

# ---------------------------------------------------------------------------
# Paths and environment

SOURCE_ROOT = os.environ.get("TERN_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA_DIR = os.path.join(SOURCE_ROOT, "tests", "data", "integration")
TERND = os.environ.get("TERND") or os.path.join(SOURCE_ROOT, "build", "daemon", "ternd")
TARGET = os.environ.get("TERN_TARGET", "ternd")
VERBOSE = os.environ.get("TERN_TEST_VERBOSE") == "1"


def data_path(*parts):
    return os.path.join(DATA_DIR, *parts)


def read_data(*parts):
    with open(data_path(*parts), encoding="utf-8") as f:
        return f.read()


def is_knotd():
    return TARGET == "knotd"


def have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# The test runner

class Skip(Exception):
    """Raise in a test to skip it (counted and printed as SKIP)."""


def skip_unless_ternd(what):
    if is_knotd():
        raise Skip(f"Tern-only behaviour under TERN_TARGET=knotd: {what}")


def require_tool(name):
    path = shutil.which(name)
    if not path:
        raise Skip(f"{name} not installed")
    return path


_servers = []   # every server started in this process, for log dumps


def run_tests(namespace):
    """Run setup_module(), every test_* function in definition order, teardown_module().

    Prints PASS/FAIL/SKIP per test and a closing 'N passed, N failed, N skipped'
    line; exits 1 if any test (or the setup) failed."""
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    only = sys.argv[1:]
    if only:
        tests = [(n, f) for n, f in tests if any(o in n for o in only)]
    passed = failed = skipped = 0
    setup = namespace.get("setup_module")
    teardown = namespace.get("teardown_module")
    try:
        if setup:
            setup()
    except Skip as e:
        print(f"SKIP all: {e}", flush=True)
        print(f"0 passed, 0 failed, {len(tests)} skipped", flush=True)
        _stop_all()
        sys.exit(0)
    except Exception:
        traceback.print_exc()
        print("FAIL setup_module", flush=True)
        _dump_logs()
        _stop_all()
        print(f"0 passed, {len(tests)} failed", flush=True)
        sys.exit(1)
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            fn()
        except Skip as e:
            skipped += 1
            print(f"SKIP {name}: {e}", flush=True)
            continue
        except Exception:
            failed += 1
            traceback.print_exc()
            print(f"FAIL {name} ({time.monotonic() - t0:.2f}s)", flush=True)
            _dump_logs()
            continue
        passed += 1
        print(f"PASS {name} ({time.monotonic() - t0:.2f}s)", flush=True)
    try:
        if teardown:
            teardown()
    except Exception:
        traceback.print_exc()
        print("FAIL teardown_module", flush=True)
        _dump_logs()
        failed += 1
    if VERBOSE:
        _dump_logs()
    _stop_all()
    for s in _servers:
        report = sanitizer_report(s)
        if report:
            failed += 1
            print(f"FAIL sanitizer report in {s.name} log ({s.log_path}):\n{report}", flush=True)
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line, flush=True)
    sys.exit(1 if failed else 0)


def _dump_logs():
    for s in _servers:
        s.dump_log()


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "WARNING: ThreadSanitizer", "runtime error:")


def sanitizer_report(server):
    """The first lines of an ASan/UBSan/TSan report in the server's log, or ''.

    Sanitizer builds run the same tests; a report there is a failure even when every
    query was answered right."""
    text = server.log_text()
    for marker in SANITIZER_MARKERS:
        at = text.find(marker)
        if at >= 0:
            return "\n".join(text[at:].splitlines()[:40])
    return ""


def _stop_all():
    for s in _servers:
        try:
            s.stop(timeout=5)
        except Exception:
            pass


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def eq(got, want, what="value"):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def wait_for(pred, timeout=5.0, interval=0.05, what="condition"):
    """Poll pred() until it returns a true value; return it or raise after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
            if last:
                return last
        except (OSError, TimeoutError, DNSError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Transports

def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def udp_exchange(port, data, host="127.0.0.1", timeout=2.0):
    """Send one datagram, return the first reply (bytes) or None after timeout."""
    with socket.socket(_family(host), socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        s.send(data)
        r, _, _ = select.select([s], [], [], timeout)
        if not r:
            return None
        try:
            return s.recv(65535)
        except ConnectionRefusedError:
            return None


def tcp_connect(port, host="127.0.0.1", timeout=3.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def frame(data):
    return struct.pack("!H", len(data)) + data


def _recv_exact(s, n, deadline):
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("TCP read timed out")
        s.settimeout(left)
        try:
            chunk = s.recv(n - len(buf))
        except socket.timeout:
            raise TimeoutError("TCP read timed out") from None
        if not chunk:
            return None if not buf else bytes(buf)
        buf += chunk
    return bytes(buf)


def tcp_read_frame(s, timeout=3.0):
    """Read one length-prefixed message; None if the peer closed cleanly first."""
    deadline = time.monotonic() + timeout
    hdr = _recv_exact(s, 2, deadline)
    if hdr is None or len(hdr) < 2:
        return None
    (ln,) = struct.unpack("!H", hdr)
    body = _recv_exact(s, ln, deadline)
    if body is None or len(body) < ln:
        raise DNSError("TCP frame cut short by the peer")
    return body


def tcp_exchange(port, data, host="127.0.0.1", timeout=3.0):
    with tcp_connect(port, host, timeout) as s:
        s.sendall(frame(data))
        return tcp_read_frame(s, timeout)


def query(port, name, qtype="A", tcp=False, host="127.0.0.1", timeout=2.0, retries=2,
          **kw):
    """Send a query (make_query kwargs) and return the parsed reply; raise on silence or
    an ID/question mismatch."""
    wire = make_query(name, qtype, **kw)
    qid = struct.unpack_from("!H", wire)[0]
    for attempt in range(retries + 1):
        if tcp:
            raw = tcp_exchange(port, wire, host, timeout)
        else:
            raw = udp_exchange(port, wire, host, timeout)
        if raw is not None:
            break
    else:
        raise TimeoutError(f"no reply to {name} {qtype} on {host}:{port} ({'tcp' if tcp else 'udp'})")
    if raw is None:
        raise TimeoutError(f"TCP connection closed without a reply to {name} {qtype}")
    m = parse_message(raw)
    eq(m.id, qid, "reply ID")
    check(m.qr, f"reply without QR: {m}")
    return m


def alive(port, host="127.0.0.1", name="example.org", qtype="SOA", timeout=1.0):
    """True if the server sends any well-formed reply with our ID."""
    wire = make_query(name, qtype)
    raw = udp_exchange(port, wire, host, timeout)
    if raw is None or len(raw) < 12:
        return False
    return raw[:2] == wire[:2]


# ---------------------------------------------------------------------------
# kdig

def kdig(port, name, qtype="A", *opts, host="127.0.0.1", timeout=10):
    """Run kdig against the server; return (status, flags set, answer lines, full text)."""
    cmd = ["kdig", f"@{host}", "-p", str(port), "+norec", "+time=2", "+retry=1"] + \
        list(opts) + [name, qtype]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    text = p.stdout
    m = re.search(r"->>HEADER<<- opcode: (\S+); status: (\S+); id: (\d+)", text)
    if not m:
        raise AssertionError(f"kdig gave no header (rc {p.returncode}): {text}{p.stderr}")
    status = m.group(2)
    fm = re.search(r";; Flags: ([^;]*);", text)
    flags = set(fm.group(1).split()) if fm else set()
    answers = []
    in_answer = False
    for line in text.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            in_answer = True
            continue
        if in_answer:
            if not line.strip() or line.startswith(";;"):
                in_answer = False
                continue
            answers.append(line.split())
    return status, flags, answers, text


# ---------------------------------------------------------------------------
# HTTP and Prometheus text

def http_get(addr, path, timeout=3.0):
    """GET http://addr/path; return (status, body text). addr is 'host:port'."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text exposition to a list of (name, {labels}, float value)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line.strip())
        if not m:
            raise AssertionError(f"unparsable metrics line: {line!r}")
        labels = dict(_LABEL.findall(m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def metric_sum(text, name, **labels):
    """Sum of all samples of @name whose labels include @labels (0.0 if none)."""
    total = 0.0
    for n, lab, v in parse_metrics(text):
        if n == name and all(lab.get(k) == str(val) for k, val in labels.items()):
            total += v
    return total


def metric_present(text, name):
    return any(n == name for n, _, _ in parse_metrics(text))


# ---------------------------------------------------------------------------
# Ports

_used_ports = set()


def free_port(ipv6=None):
    """A port that is free for both UDP and TCP on 127.0.0.1 (and ::1 if available)."""
    if ipv6 is None:
        ipv6 = have_ipv6()
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            if port in _used_ports:
                continue
            try:
                socks = []
                for fam, host in ([(socket.AF_INET, "127.0.0.1")] +
                                  ([(socket.AF_INET6, "::1")] if ipv6 else [])):
                    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                        if fam == socket.AF_INET and kind == socket.SOCK_STREAM:
                            continue
                        s = socket.socket(fam, kind)
                        socks.append(s)
                        s.bind((host, port))
            except OSError:
                continue
            finally:
                for s in socks:
                    s.close()
            _used_ports.add(port)
            return port
    raise RuntimeError("no free port found")


# ---------------------------------------------------------------------------
# Config generation (a small YAML emitter: block maps, flow lists of scalars)

def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))


def to_yaml(obj, indent=0):
    pad = "  " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict):
                if not v:
                    lines.append(f"{pad}{k}: {{}}")
                else:
                    lines.append(f"{pad}{k}:")
                    lines.append(to_yaml(v, indent + 1))
            elif isinstance(v, list) and v and any(isinstance(x, dict) for x in v):
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 1))
            elif isinstance(v, list):
                lines.append(f"{pad}{k}: [" + ", ".join(_scalar(x) for x in v) + "]")
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            sub = to_yaml(item, indent + 1).lstrip()
            lines.append(f"{pad}- {sub}")
    else:
        lines.append(pad + _scalar(obj))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Servers

class Server:
    """Base: a process we started, with a temp dir, a log file and a DNS port."""

    name = "server"

    def __init__(self, port=None, keep_dir=False):
        self.dir = tempfile.mkdtemp(prefix=f"tern-it-{self.name}-")
        self.port = port or free_port()
        self.proc = None
        self.log_path = os.path.join(self.dir, "stderr.log")
        self.keep_dir = keep_dir
        self.returncode = None
        _servers.append(self)

    def write(self, rel, text):
        path = os.path.join(self.dir, rel)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)   # atomic: a reloading server never sees half a file
        return path

    def _spawn(self, argv):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=15.0, zone="example.org"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(f"{self.name} exited early with {self.proc.returncode}:\n"
                                     + self.log_text())
            if alive(self.port, name=zone, timeout=0.2):
                return self
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not answer on port {self.port} in {timeout}s")

    def send_signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """SIGTERM, then SIGKILL after @timeout; return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.returncode = self.proc.returncode
        if not self._log.closed:
            self._log.close()
        return self.returncode

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def dump_log(self, lines=80):
        text = self.log_text().splitlines()
        print(f"----- {self.name} log ({self.log_path}), last {lines} lines -----")
        for ln in text[-lines:]:
            print("  " + ln)
        print(f"----- end of {self.name} log -----", flush=True)

    def cleanup(self):
        self.stop()
        report = sanitizer_report(self)
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        if report:
            raise AssertionError(f"sanitizer report in {self.name} log:\n{report}")


class Ternd(Server):
    """ternd with a config dict (written as YAML) and extra files in its directory.

    Endpoint addresses (metrics/health/ready) get free ports unless given."""

    name = "ternd"

    def __init__(self, config=None, files=None, port=None, http=True):
        super().__init__(port)
        self.files = dict(files or {})
        self.metrics_addr = f"127.0.0.1:{free_port(False)}" if http else None
        self.health_addr = f"127.0.0.1:{free_port(False)}" if http else None
        self.ready_addr = f"127.0.0.1:{free_port(False)}" if http else None
        self.config = config
        self.config_path = os.path.join(self.dir, "ternd.yaml")

    def listen(self, ipv6=None):
        if ipv6 is None:
            ipv6 = have_ipv6()
        out = [f"127.0.0.1:{self.port}"]
        if ipv6:
            out.append(f"[::1]:{self.port}")
        return out

    def render(self, config):
        """Fill in defaults: workers 2, HTTP endpoints, and listen on our port."""
        cfg = {"workers": 2}
        if self.metrics_addr:
            cfg["metrics"] = {"listen": self.metrics_addr}
            cfg["health"] = {"listen": self.health_addr, "lameduck": "1s"}
            cfg["ready"] = {"listen": self.ready_addr}
        for k, v in config.items():
            if k in ("health", "metrics", "ready") and isinstance(v, dict) and k in cfg:
                merged = dict(cfg[k])
                merged.update(v)
                cfg[k] = merged
            else:
                cfg[k] = v
        servers = []
        for blk in cfg.get("servers", []):
            blk = dict(blk)
            blk.setdefault("listen", self.listen())
            servers.append(blk)
        cfg["servers"] = servers
        return to_yaml(cfg) + "\n"

    def write_config(self, config=None, raw=None):
        if config is not None:
            self.config = config
        text = raw if raw is not None else self.render(self.config)
        self.write("ternd.yaml", text)
        return text

    def start(self, wait=True, zone="example.org"):
        for rel, text in self.files.items():
            self.write(rel, text)
        self.write_config()
        if not os.path.exists(TERND):
            raise AssertionError(f"ternd not found at {TERND} (set TERND)")
        self._spawn([TERND, "--config", self.config_path])
        if wait:
            self.wait_ready(zone=zone)
            if self.ready_addr:
                wait_for(lambda: self.http("ready")[0] == 200, 10, what="/ready 200")
        return self

    def reload(self):
        self.send_signal(signal.SIGHUP)

    def http(self, which, path=None):
        addr = {"metrics": self.metrics_addr, "health": self.health_addr,
                "ready": self.ready_addr}[which]
        return http_get(addr, path or f"/{which}")

    def metrics(self):
        status, body = self.http("metrics")
        eq(status, 200, "/metrics status")
        return body


class Knotd(Server):
    """knotd serving zone files (name -> zone text) on our port, 2 UDP workers."""

    name = "knotd"

    def __init__(self, zones, port=None, udp_workers=2):
        super().__init__(port)
        self.zones = zones
        self.udp_workers = udp_workers

    def start(self, wait=True, zone=None):
        knotd = shutil.which("knotd") or "/usr/sbin/knotd"
        os.makedirs(os.path.join(self.dir, "storage"), exist_ok=True)
        listen = [f"127.0.0.1@{self.port}"] + ([f"::1@{self.port}"] if have_ipv6() else [])
        conf = [
            "server:",
            f"    rundir: \"{self.dir}\"",
            f"    listen: [ {', '.join(listen)} ]",
            f"    udp-workers: {self.udp_workers}",
            "    tcp-workers: 1",
            "    background-workers: 1",
            "log:",
            "  - target: stderr",
            "    any: info",
            "database:",
            f"    storage: \"{self.dir}/storage\"",
            "template:",
            "  - id: default",
            f"    storage: \"{self.dir}\"",
            "    file: \"%s.zone\"",
            "    zonefile-sync: -1",
            "    journal-content: none",
            "zone:",
        ]
        for zname, text in self.zones.items():
            self.write(f"{zname}.zone", text)
            conf.append(f"  - domain: {zname}")
        self.write("knot.conf", "\n".join(conf) + "\n")
        self._spawn([knotd, "-c", os.path.join(self.dir, "knot.conf")])
        if wait:
            self.wait_ready(zone=zone or next(iter(self.zones)))
            # wait until every zone is loaded (SOA answered authoritatively)
            for zname in self.zones:
                wait_for(lambda z=zname: query(self.port, z, "SOA").aa, 10,
                         what=f"knotd to load {zname}")
        return self


def zone_server(extra_blocks=(), file_plugins=None):
    """The standard test target: example.org + example.net zones from tests/data.

    With TERN_TARGET=knotd, knotd serves the same zone files (no extra blocks)."""
    org = read_data("example.org.zone")
    net = read_data("example.net.zone")
    if is_knotd():
        return Knotd({"example.org": org, "example.net": net}).start()
    servers = [
        {"zones": ["example.org"],
         "plugins": file_plugins or {"file": {"path": "example.org.zone"}, "errors": {}}},
        {"zones": ["example.net"], "plugins": {"file": {"path": "example.net.zone"}}},
    ] + list(extra_blocks)
    t = Ternd({"servers": servers},
              files={"example.org.zone": org, "example.net.zone": net})
    return t.start()


# ---------------------------------------------------------------------------
# The fake Kubernetes API server (tools/fake-apiserver)

FAKE_APISERVER = os.path.join(SOURCE_ROOT, "tools", "fake-apiserver", "fake_apiserver.py")
DEMO_FIXTURE = os.path.join(SOURCE_ROOT, "tools", "fake-apiserver", "demo.json")


class FakeApi(Server):
    """fake_apiserver.py on a loopback port, driven through its /_control/ endpoints.

    start() picks a free port (port 0) and reads the printed URL; restart() (after
    kill() or stop()) comes back on the same port so a watcher can reconnect."""

    name = "fakeapi"

    def __init__(self, fixtures=(DEMO_FIXTURE,), args=()):
        super().__init__()
        self.fixtures = list(fixtures)
        self.args = list(args)
        self.url = None
        self.addr = None

    def start(self, wait=True, listen="127.0.0.1:0", args=None):
        argv = [sys.executable, FAKE_APISERVER, "--listen", listen]
        for f in self.fixtures:
            argv += ["--fixture", f]
        argv += self.args if args is None else list(args)
        try:
            offset = os.path.getsize(self.log_path)
        except OSError:
            offset = 0
        self._spawn(argv)

        def url():
            if not self.running():
                raise AssertionError(f"fake API server exited with {self.proc.returncode}:\n"
                                     + self.log_text())
            m = re.search(r"^listening (https?://(\S+))$", self.log_text()[offset:], re.M)
            return m and m.groups()
        self.url, self.addr = wait_for(url, 15, 0.02, "the fake API server to listen")
        return self

    def restart(self, args=None):
        """Start again on the same address (the old process must be gone)."""
        self.stop()
        return self.start(listen=self.addr, args=args)

    def kill(self):
        return self.stop(timeout=0, sig=signal.SIGKILL)

    def request(self, method, path, body=None, timeout=10.0):
        """One HTTP(S) request to the server; return (status, parsed JSON or text)."""
        host, port = self.addr.rsplit(":", 1)
        if self.url.startswith("https:"):
            import ssl
            conn = http.client.HTTPSConnection(host.strip("[]"), int(port), timeout=timeout,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            r = conn.getresponse()
            text = r.read().decode("utf-8", "replace")
        finally:
            conn.close()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text

    def control(self, what, body=None, method="POST"):
        """/_control/<what>; raises unless 200."""
        status, out = self.request(method, "/_control/" + what, body)
        eq(status, 200, f"/_control/{what} status ({out})")
        return out

    def apply(self, objs):
        return self.control("apply", objs)

    def delete(self, kind, name, namespace="default"):
        return self.control("delete", {"kind": kind, "namespace": namespace, "name": name})

    def stats(self):
        return self.control("stats", method="GET")


# ---------------------------------------------------------------------------
# Upstream peers for the forward and cache tests: real servers from Debian packages
# (PowerDNS, Unbound; knotd is the Knotd class above) and in-process Python upstreams
# that count what they are asked and can misbehave on purpose. All listen on
# 127.0.0.1 only and are stopped by PID (or by closing their sockets).

_PDNS_QUERY = re.compile(r"Remote \S+ wants '([^|']*)\|([A-Z0-9]+)'")
_UNBOUND_QUERY = re.compile(r"info: \S+ (\S+) (\S+) IN\s*$")


class Pdns(Server):
    """pdns_server with the bind backend, authoritative for {zone: zone text}.

    Runs in the foreground (daemon=no, guardian=no) as the current user, with its own
    config dir, no webserver/API, no security polling (which would leave the host),
    no packet or query cache (so every query reaches the backend and is logged), and
    log-dns-queries on: queries() reads them back from the log."""

    name = "pdns"

    def __init__(self, zones, port=None):
        super().__init__(port)
        self.zones = zones

    def start(self, wait=True):
        pdns = shutil.which("pdns_server") or "/usr/sbin/pdns_server"
        named = []
        for zname, text in self.zones.items():
            path = self.write(f"{zname}.zone", text)
            named.append(f'zone "{zname}" {{ type master; file "{path}"; }};')
        self.write("named.conf", "\n".join(named) + "\n")
        self.write("pdns.conf", "\n".join([
            "launch=bind",
            f"bind-config={self.dir}/named.conf",
            "local-address=127.0.0.1",
            f"local-port={self.port}",
            f"socket-dir={self.dir}",
            "daemon=no", "guardian=no", "webserver=no", "api=no",
            "disable-syslog=yes", "log-timestamp=no",
            "security-poll-suffix=",
            "cache-ttl=0", "negquery-cache-ttl=0", "query-cache-ttl=0",
            "loglevel=5", "log-dns-queries=yes",
            "distributor-threads=1", "receiver-threads=1",
            "setuid=", "setgid=",
        ]) + "\n")
        self._spawn([pdns, f"--config-dir={self.dir}"])
        if wait:
            first = next(iter(self.zones))
            self.wait_ready(zone=first)
            wait_for(lambda: query(self.port, first, "SOA").aa, 10, what=f"pdns to load {first}")
        return self

    def queries(self, name=None, qtype=None):
        """[(name lowercase with final dot, TYPE)] in the order pdns logged them."""
        out = []
        for m in _PDNS_QUERY.finditer(self.log_text()):
            n = m.group(1).lower().rstrip(".") + "."
            if (name is None or name_eq(n, name)) and (qtype is None or m.group(2) == qtype):
                out.append((n, m.group(2)))
        return out


class Unbound(Server):
    """unbound -d serving local-zone data and stub zones on 127.0.0.1:PORT.

    local_zones: {zone: [local-data lines]} answered authoritatively ("static");
    stubs: {zone: "127.0.0.1@PORT"} resolved through that server. Every other name is a
    static local zone too (local-zone "." static), so unbound never recurses to the
    Internet. No chroot, no remote-control, no trust anchors, log-queries on.

    tls=(cert, key): serve DNS over TLS instead (tls-port is our port, do-udp off, so
    the port is a TLS-only TCP listener) with verbosity 4, which logs one "SSL
    connection" line per accepted TLS connection (tls_connections())."""

    name = "unbound"

    def __init__(self, local_zones=None, stubs=None, port=None, extra=(), tls=None):
        super().__init__(port)
        self.local_zones = local_zones or {}
        self.stubs = stubs or {}
        self.extra = list(extra)
        self.tls = tls

    def start(self, wait=True):
        unbound = shutil.which("unbound") or "/usr/sbin/unbound"
        conf = [
            "server:",
            f"    interface: 127.0.0.1@{self.port}",
            f"    port: {self.port}",
            "    do-daemonize: no", '    chroot: ""', '    username: ""',
            f'    directory: "{self.dir}"', '    pidfile: ""',
            "    use-syslog: no", '    logfile: ""', "    verbosity: 1", "    log-queries: yes",
            "    access-control: 127.0.0.0/8 allow", "    do-ip6: no",
            "    num-threads: 1", "    so-reuseport: no",
            '    auto-trust-anchor-file: ""', '    module-config: "iterator"',
            "    do-not-query-localhost: no", "    qname-minimisation: no",
            '    local-zone: "." static',
        ]
        for zone, lines in self.local_zones.items():
            conf.append(f'    local-zone: "{zone}" static')
            conf += [f'    local-data: "{ln}"' for ln in lines]
        for zone in self.stubs:
            conf.append(f'    local-zone: "{zone}" transparent')
        if self.tls:
            conf = [ln for ln in conf if not ln.startswith("    verbosity:")]
            conf += ["    verbosity: 4", f"    tls-port: {self.port}", "    do-udp: no",
                     f'    tls-service-pem: "{self.tls[0]}"',
                     f'    tls-service-key: "{self.tls[1]}"']
        conf += ["    " + ln for ln in self.extra]
        for zone, addr in self.stubs.items():
            conf += ["stub-zone:", f'    name: "{zone}"', f"    stub-addr: {addr}"]
        conf += ["remote-control:", "    control-enable: no"]
        path = self.write("unbound.conf", "\n".join(conf) + "\n")
        self._spawn([unbound, "-d", "-c", path])
        if wait:
            zone = next(iter(self.local_zones), None) or next(iter(self.stubs), ".")
            if self.tls:
                wait_for(self._dot_alive(zone), 10, what="unbound's DNS-over-TLS service")
            else:
                self.wait_ready(zone=zone)
        return self

    def _dot_alive(self, zone):
        """A readiness probe over TLS (not verified: the tests verify through ternd)."""
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        def probe():
            check(self.running(), f"unbound exited early:\n{self.log_text()}")
            wire = make_query(zone, "SOA")
            try:
                with ctx.wrap_socket(tcp_connect(self.port, timeout=1.0)) as s:
                    s.sendall(frame(wire))
                    raw = tcp_read_frame(s, 1.0)
            except (OSError, TimeoutError):
                return False
            return raw is not None and raw[:2] == wire[:2]
        return probe

    def tls_connections(self):
        """TLS connections unbound accepted (verbosity 4 "SSL connection" lines)."""
        return self.log_text().count("debug: SSL connection ")

    def queries(self, name=None, qtype=None):
        """[(name lowercase, TYPE)] from the log-queries lines."""
        out = []
        for line in self.log_text().splitlines():
            m = _UNBOUND_QUERY.search(line)
            if not m:
                continue
            n = m.group(1).lower()
            if (name is None or name_eq(n, name)) and (qtype is None or m.group(2) == qtype):
                out.append((n, m.group(2)))
        return out


class PyUpstream:
    """An in-process authoritative DNS server on 127.0.0.1:PORT (UDP and TCP).

    It serves self.zone from add()ed records (NXDOMAIN or NODATA with an SOA whose
    minimum is soa_min, REFUSED outside the zone, NOERROR for ". NS" health probes),
    truncates UDP answers larger than the client's size (512, or its EDNS size), and
    remembers every query (name, TYPE, 'udp'|'tcp', monotonic time). Behaviour knobs:
    delay (seconds before each reply), mode: 'answer' (default), 'blackhole' (read,
    never reply), 'garbage' (random bytes), 'wrong_id' (a correct reply with another
    ID), 'rcode' (reply with self.rcode). stop() closes the sockets; start() again
    comes back on the same port. With tls (an ssl.SSLContext for a server) the TCP port
    speaks DNS over TLS instead: its queries are recorded as 'tls', self.tls_conns
    counts the completed handshakes (self.tls_resumed the resumed ones,
    self.tls_failed the failed ones), and stop() also closes the open connections."""

    name = "pyupstream"

    def __init__(self, zone="pub.example.", port=None, mode="answer", delay=0.0, soa_min=30,
                 tls=None):
        self.zone = zone if zone.endswith(".") else zone + "."
        self.port = port or free_port(False)
        self.mode = mode
        self.delay = delay
        self.rcode = RCODES["SERVFAIL"]
        self.soa_min = soa_min
        self.records = {}
        self.tls = tls
        self.tls_conns = self.tls_resumed = self.tls_failed = 0
        self._conns = []
        self.log = []
        self.log_path = f"(in-process {self.name} on 127.0.0.1:{self.port})"
        self._lock = threading.Lock()
        self._socks = []
        self._threads = []
        self._stop = None
        _servers.append(self)

    # -- data -----------------------------------------------------------------
    def add(self, name, rtype, value, ttl=300):
        key = (name.lower().rstrip(".") + ".", rtype.upper())
        self.records.setdefault(key, []).append((ttl, rdata_wire(rtype.upper(), value)))
        return self

    def count(self, name=None, qtype=None, proto=None, since=None):
        with self._lock:
            return sum(1 for (n, t, p, ts) in self.log
                       if (name is None or name_eq(n, name)) and (qtype is None or t == qtype)
                       and (proto is None or p == proto) and (since is None or ts >= since))

    def times(self, name, qtype="A"):
        with self._lock:
            return [ts for (n, t, _, ts) in self.log if name_eq(n, name) and t == qtype]

    def reset(self):
        with self._lock:
            self.log.clear()

    # -- lifecycle ------------------------------------------------------------
    def start(self):
        self._stop = threading.Event()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", self.port))
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind(("127.0.0.1", self.port))
        t.listen(64)
        self._socks = [u, t]
        self._threads = [threading.Thread(target=self._udp_loop, args=(u, self._stop), daemon=True),
                         threading.Thread(target=self._tcp_loop, args=(t, self._stop), daemon=True)]
        for th in self._threads:
            th.start()
        return self

    def running(self):
        return self._stop is not None and not self._stop.is_set()

    def stop(self, timeout=5.0, sig=None):
        if self._stop is None or self._stop.is_set():
            return 0
        self._stop.set()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass
        for th in self._threads:
            th.join(timeout)
        return 0

    def cleanup(self):
        self.stop()

    def log_text(self):
        with self._lock:
            return "\n".join(f"{ts:.3f} {p} {n} {t}" for (n, t, p, ts) in self.log)

    def dump_log(self, lines=40):
        text = self.log_text().splitlines()
        print(f"----- {self.name} :{self.port} mode={self.mode}, last {lines} queries -----")
        for ln in text[-lines:]:
            print("  " + ln)
        print(f"----- end of {self.name} -----", flush=True)

    # -- serving --------------------------------------------------------------
    def _udp_loop(self, s, stop):
        while not stop.is_set():
            try:
                r, _, _ = select.select([s], [], [], 0.1)
                if not r:
                    continue
                data, addr = s.recvfrom(65535)
            except (OSError, ValueError):
                return
            self._later(lambda d=data, a=addr: self._reply_udp(s, d, a))

    def _reply_udp(self, s, data, addr):
        out = self.respond(data, tcp=False)
        if out is not None:
            try:
                s.sendto(out, addr)
            except OSError:
                pass

    def _tcp_loop(self, s, stop):
        while not stop.is_set():
            try:
                r, _, _ = select.select([s], [], [], 0.1)
                if not r:
                    continue
                c, _ = s.accept()
            except (OSError, ValueError):
                return
            threading.Thread(target=self._tcp_conn, args=(c, stop), daemon=True).start()

    def _tls_accept(self, c):
        """The TLS side of a new connection (None when the handshake failed)."""
        try:
            c.settimeout(10)
            c = self.tls.wrap_socket(c, server_side=True)
        except (OSError, ValueError):
            with self._lock:
                self.tls_failed += 1
            c.close()
            return None
        with self._lock:
            self.tls_conns += 1
            self.tls_resumed += bool(c.session_reused)
            self._conns.append(c)
        return c

    def _tcp_conn(self, c, stop):
        wlock = threading.Lock()
        if self.tls is not None and (c := self._tls_accept(c)) is None:
            return
        proto = "tls" if self.tls is not None else "tcp"

        def send(data):
            out = self.respond(data, tcp=proto)
            if out is None:
                return
            with wlock:
                try:
                    c.sendall(frame(out))
                except OSError:
                    pass
        with c:
            while not stop.is_set():
                try:
                    data = tcp_read_frame(c, timeout=30)
                except (TimeoutError, DNSError, OSError):
                    return
                if data is None:
                    return
                self._later(lambda d=data: send(d))

    def _later(self, fn):
        if self.delay > 0:
            t = threading.Timer(self.delay, fn)
            t.daemon = True
            t.start()
        else:
            fn()

    def _soa(self):
        rdata = encode_name("ns." + self.zone) + encode_name("hostmaster." + self.zone) + \
            struct.pack("!IIIII", 1, 3600, 600, 86400, self.soa_min)
        return (encode_name(self.zone), 6, self.soa_min, rdata)

    def respond(self, data, tcp):
        """The reply to one query (bytes), or None for no reply. Records the query."""
        try:
            q = parse_message(data, strict=False)
            qname, qtype, _ = q.question[0]
        except (DNSError, IndexError):
            return None
        with self._lock:
            self.log.append((qname.lower(), type_name(qtype),
                             tcp if isinstance(tcp, str) else "tcp" if tcp else "udp",
                             time.monotonic()))
        mode = self.mode
        if mode == "blackhole":
            return None
        if mode == "garbage":
            rnd = os.urandom(12 + (os.urandom(1)[0] % 80))
            return rnd
        lname = qname.lower()
        rcode, answer, authority = 0, [], []
        in_zone = lname == self.zone or lname.endswith("." + self.zone)
        if mode == "rcode":
            rcode = self.rcode
        elif lname == "." and qtype == TYPES["NS"]:
            pass
        elif not in_zone:
            rcode = RCODES["REFUSED"]
        else:
            for ttl, rd in self.records.get((lname, type_name(qtype)), []):
                answer.append((encode_name(qname), qtype, ttl, rd))
            if not answer:
                exists = any(n == lname or n.endswith("." + lname) for (n, _) in self.records) \
                    or lname == self.zone
                rcode = 0 if exists else RCODES["NXDOMAIN"]
                authority.append(self._soa())
        limit = 65535 if tcp else (max(q.opt.udp_size, 512) if q.opt else 512)
        qid = q.id ^ 0x5A5A if mode == "wrong_id" else q.id
        out = self._build(qid, q, rcode, answer, authority)
        if len(out) > limit:
            out = self._build(qid, q, rcode, [], [], tc=True)
        return out

    @staticmethod
    def _build(qid, q, rcode, answer, authority, tc=False):
        qname, qtype, qclass = q.question[0]
        flags = 0x8000 | 0x0400 | (q.flags & 0x0100) | (0x0200 if tc else 0) | rcode
        opt = build_opt(1232) if q.opt else b""
        hdr = struct.pack("!HHHHHH", qid, flags, 1, len(answer), len(authority), 1 if opt else 0)
        body = encode_name(qname) + struct.pack("!HH", qtype, qclass)
        for owner, rtype, ttl, rd in answer + authority:
            body += owner + struct.pack("!HHIH", rtype, CLASS_IN, ttl, len(rd)) + rd
        return hdr + body + opt


class Blackhole(PyUpstream):
    """A UDP/TCP upstream that reads every query and never answers."""

    name = "blackhole"

    def __init__(self, port=None):
        super().__init__(port=port, mode="blackhole")


class Garbage(PyUpstream):
    """An upstream that answers with random bytes (kind='garbage') or with well-formed
    replies carrying the wrong ID (kind='wrong_id')."""

    name = "garbage"

    def __init__(self, kind="garbage", port=None):
        super().__init__(port=port, mode=kind)


def udp_blast(port, questions, timeout=2.0, host="127.0.0.1", sockets=1, edns=None):
    """Send every (name, TYPE) in @questions at once over UDP, then collect replies for
    @timeout seconds. With sockets > 1 the queries leave from that many source ports.
    Returns a list of parsed replies (None where no reply came), in question order."""
    socks = [socket.socket(_family(host), socket.SOCK_DGRAM) for _ in range(sockets)]
    try:
        ids = {}
        for i, (name, qtype) in enumerate(questions):
            wire = make_query(name, qtype, rd=True, edns=edns)
            ids[(i % sockets, struct.unpack_from("!H", wire)[0])] = i
            socks[i % sockets].sendto(wire, (host, port))
        out = [None] * len(questions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(r is None for r in out):
            r, _, _ = select.select(socks, [], [], max(0.0, deadline - time.monotonic()))
            for s in r:
                try:
                    raw = s.recv(65535)
                except OSError:
                    continue
                k = (socks.index(s), struct.unpack_from("!H", raw)[0])
                if k in ids and out[ids[k]] is None:
                    out[ids[k]] = parse_message(raw)
        return out
    finally:
        for s in socks:
            s.close()
