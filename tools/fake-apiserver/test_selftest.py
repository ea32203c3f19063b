#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Self-test of the fake Kubernetes API server (Python 3 standard library + the openssl CLI).

Starts fake_apiserver.py on loopback port 0 (several instances with different options),
then checks it over raw sockets the way a watcher sees it: discovery, list shape and
pagination with consistent snapshots and expired continue tokens, label/field selectors,
watches (ADDED/MODIFIED/DELETED with increasing resourceVersions, selector transitions,
initial events, bookmarks, clean timeout ends with keep-alive), 410 after compaction and
history overflow, the fault injections (cut, stall, garbage, truncated, fail), closed-peer
detection, bearer-token auth, TLS with server and client certificates made by `openssl
req`, the synthetic cluster generator with gzip, SIGTERM, and `kubectl get --raw` when
kubectl is installed. Prints PASS/FAIL/SKIP per test; exits non-zero on any failure.
"""

import base64
import gzip
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "fake_apiserver.py")
DEMO = os.path.join(HERE, "demo.json")


class Skip(Exception):
    pass


class FakeApi:
    """One server process; stopped by PID with SIGTERM."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, SERVER, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening "):
            self.proc.kill()
            raise AssertionError(f"no listening line: {line!r} {self.proc.stderr.read()}")
        self.url = line.split(" ", 1)[1]
        u = urllib.parse.urlsplit(self.url)
        self.tls = u.scheme == "https"
        self.host, self.port = u.hostname, u.port
        self.ctx = None      # default client TLS context

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    # -- plain requests (http.client) --

    def conn(self, ctx=None):
        if self.tls:
            return http.client.HTTPSConnection(self.host, self.port, timeout=10,
                                               context=ctx or self.ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def request(self, method, path, body=None, headers=None, ctx=None):
        c = self.conn(ctx)
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        if hdrs.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        return r.status, hdrs, raw

    def get(self, path, **kw):
        st, _, raw = self.request("GET", path, **kw)
        return st, json.loads(raw) if raw else None

    def control(self, op, body=None, method="POST"):
        st, _, raw = self.request(method, "/_control/" + op, body=body)
        doc = json.loads(raw)
        if st != 200:
            raise AssertionError(f"control {op}: {st} {doc}")
        return doc

    def apply(self, *objs):
        return self.control("apply", list(objs))

    def stats(self):
        return self.control("stats", method="GET")

    def stream(self, path, **kw):
        return Stream(self, path, **kw)


class StreamEnd(Exception):
    def __init__(self, clean):
        super().__init__("clean end" if clean else "abrupt end")
        self.clean = clean


class Stream:
    """A raw HTTP/1.1 chunked watch reader that tells a clean end from a cut."""

    def __init__(self, api, path, token=None, ctx=None, sock=None):
        self.api = api
        if sock is None:
            sock = socket.create_connection((api.host, api.port), timeout=10)
            if api.tls:
                sock = (ctx or api.ctx or ssl.create_default_context()).wrap_socket(
                    sock, server_hostname=api.host)
        self.sock = sock
        self.raw = b""       # bytes received, not yet de-chunked
        self.buf = b""       # de-chunked bytes, not yet split into lines
        self.lines = []
        self.ended = None
        hdr = f"GET {path} HTTP/1.1\r\nHost: {api.host}:{api.port}\r\nAccept: application/json\r\n"
        if token:
            hdr += f"Authorization: Bearer {token}\r\n"
        sock.sendall((hdr + "\r\n").encode())
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in self.raw:
            self._fill(deadline)
        head, _, self.raw = self.raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.headers.get("transfer-encoding") != "chunked":
            n = int(self.headers.get("content-length", "0"))
            while len(self.raw) < n:
                self._fill(deadline)
            self.body, self.raw = self.raw[:n], self.raw[n:]

    def _fill(self, deadline):
        """Read more raw bytes; raises socket.timeout at the deadline, StreamEnd on EOF."""
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            raise StreamEnd(False)
        self.raw += data

    def _read_chunk(self, deadline):
        while b"\r\n" not in self.raw:
            self._fill(deadline)
        size_line, _, rest = self.raw.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"x", 16)
        if size == 0:
            while not rest.startswith(b"\r\n"):
                self.raw = rest
                self._fill(deadline)
                rest = self.raw
            self.raw = rest[2:]
            raise StreamEnd(True)
        while len(rest) < size + 2:
            try:
                self.raw = size_line + b"\r\n" + rest
                self._fill(deadline)
            except StreamEnd:
                self.buf += rest[:size]        # what arrived of a cut chunk
                raise
            rest = self.raw.partition(b"\r\n")[2]
        if rest[size:size + 2] != b"\r\n":
            raise AssertionError(f"bad chunk framing: {rest[size:size + 8]!r}")
        self.raw = rest[size + 2:]
        return rest[:size]

    def next_raw(self, timeout=5.0):
        """Next newline-terminated line (bytes); raises StreamEnd, socket.timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.ended is not None:
                raise StreamEnd(self.ended)
            try:
                self.buf += self._read_chunk(deadline)
            except StreamEnd as e:
                self.ended = e.clean
                raise
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def next(self, timeout=5.0, skip_bookmarks=True):
        while True:
            ev = json.loads(self.next_raw(timeout))
            if not (skip_bookmarks and ev["type"] == "BOOKMARK"):
                return ev

    def expect_end(self, timeout=5.0):
        """Waits for the end of the stream (bookmarks skipped); True when it was clean."""
        try:
            while True:
                line = self.next_raw(timeout)
                if line.startswith(b'{"type":"BOOKMARK"'):
                    continue
                raise AssertionError(f"expected end of stream, got {line[:200]!r}")
        except StreamEnd as e:
            return e.clean

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def eq(got, want, what=""):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def wait_for(fn, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def svc(ns, name, labels=None, ip=None, port=80):
    spec = {"ports": [{"name": "http", "port": port}]}
    if ip:
        spec["clusterIP"] = ip
    md = {"name": name, "namespace": ns}
    if labels:
        md["labels"] = labels
    return {"kind": "Service", "apiVersion": "v1", "metadata": md, "spec": spec}


def names(items):
    return [(i["metadata"].get("namespace"), i["metadata"]["name"]) for i in items]


# ---------------------------------------------------------------------------
# Tests on the demo cluster (one shared instance; each test leaves it usable)

def test_discovery(api):
    st, v = api.get("/version")
    eq(st, 200, "/version")
    check(v["major"] == "1" and v["gitVersion"], "version shape")
    eq(api.request("GET", "/healthz")[2], b"ok", "/healthz")
    st, a = api.get("/api")
    eq((st, a["kind"], a["versions"]), (200, "APIVersions", ["v1"]), "/api")
    st, g = api.get("/apis")
    eq([x["name"] for x in g["groups"]], ["discovery.k8s.io"], "/apis groups")
    st, r = api.get("/api/v1")
    eq(sorted(x["name"] for x in r["resources"]), ["namespaces", "pods", "services"], "/api/v1")
    st, r = api.get("/apis/discovery.k8s.io/v1")
    eq([x["name"] for x in r["resources"]], ["endpointslices"], "discovery.k8s.io/v1")
    st, s = api.get("/api/v1/nodes")
    eq((st, s["kind"], s["code"]), (404, "Status", 404), "unknown resource")


def test_list_shape(api):
    st, d = api.get("/api/v1/services")
    eq((st, d["kind"], d["apiVersion"]), (200, "ServiceList", "v1"), "list kind")
    check(int(d["metadata"]["resourceVersion"]) > 0, "list rv")
    check("continue" not in d["metadata"], "no continue without limit")
    want = {("default", "kubernetes"), ("kube-system", "kube-dns"), ("demo", "web"),
            ("demo", "db"), ("demo", "dual"), ("shop", "www")}
    check(want <= set(names(d["items"])), f"demo services present: {names(d['items'])}")
    eq(names(d["items"]), sorted(names(d["items"])), "sorted by namespace/name")
    for it in d["items"]:
        check("kind" not in it and "apiVersion" not in it, "list items carry no kind (as real)")
        md = it["metadata"]
        for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp"):
            check(k in md, f"metadata.{k}")
        check(int(md["resourceVersion"]) <= int(d["metadata"]["resourceVersion"]), "item rv <= list rv")
    by = {(i["metadata"]["namespace"], i["metadata"]["name"]): i for i in d["items"]}
    eq(by[("demo", "dual")]["spec"]["clusterIPs"], ["10.96.100.20", "fd00:10:96::100:20"], "dual-stack")
    eq(by[("demo", "db")]["spec"]["clusterIP"], "None", "headless")
    eq(by[("shop", "www")]["spec"]["externalName"], "www.example.org", "ExternalName")
    eq(by[("kube-system", "kube-dns")]["spec"]["clusterIP"], "10.96.0.10", "kube-dns")
    st, d = api.get("/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices")
    eq(d["kind"], "EndpointSliceList", "slice list kind")
    eq(d["apiVersion"], "discovery.k8s.io/v1", "slice list apiVersion")
    slices = {i["metadata"]["name"]: i for i in d["items"]}
    db = slices["db-q8w7e"]["endpoints"]
    eq(sum(1 for e in db if e["conditions"].get("ready", True)), 3, "db ready endpoints")
    eq(sum(1 for e in db if "hostname" in e and e["conditions"].get("ready", True)), 2, "db hostnames")
    eq(sorted(s["addressType"] for n, s in slices.items() if n.startswith("dual-")),
       ["IPv4", "IPv4", "IPv6", "IPv6"], "dual-stack slices")
    eq(slices["empty-z9y8x"]["endpoints"], None, "empty slice has endpoints: null")
    st, d = api.get("/api/v1/namespaces")
    check({"default", "kube-system", "demo", "shop"} <= {n for _, n in names(d["items"])}, "namespaces")
    st, d = api.get("/api/v1/namespaces/demo/pods")
    check(all(p["metadata"]["namespace"] == "demo" and p["status"]["podIP"] for p in d["items"]), "pods")
    st, o = api.get("/api/v1/namespaces/demo/services/web")
    eq((st, o["kind"], o["metadata"]["name"]), (200, "Service", "web"), "get one")
    st, o = api.get("/api/v1/namespaces/demo/services/nope")
    eq((st, o["reason"]), (404, "NotFound"), "get missing")


def test_pagination(api):
    st, full = api.get("/api/v1/services")
    got, pages, cont, rv = [], 0, None, None
    while True:
        st, d = api.get("/api/v1/services?limit=2" + (f"&continue={cont}" if cont else ""))
        eq(st, 200, "page status")
        pages += 1
        got += d["items"]
        rv = rv or d["metadata"]["resourceVersion"]
        eq(d["metadata"]["resourceVersion"], rv, "same rv on every page")
        cont = d["metadata"].get("continue")
        if not cont:
            break
        eq(d["metadata"]["remainingItemCount"], len(full["items"]) - len(got), "remainingItemCount")
        tok = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
        eq(str(tok["rv"]), rv, "token encodes rv")
    eq(names(got), names(full["items"]), "paginated == unpaginated")
    eq(pages, (len(full["items"]) + 1) // 2, "page count")
    # A change between pages does not show up: the pages are a snapshot at the first rv.
    st, p1 = api.get("/api/v1/services?limit=3")
    api.apply(svc("aaa-first", "zzz-paged"))
    rest, cont = [], p1["metadata"]["continue"]
    while cont:
        st, d = api.get(f"/api/v1/services?limit=3&continue={cont}")
        eq(st, 200, "continue after a change")
        rest += d["items"]
        cont = d["metadata"].get("continue")
    check(("aaa-first", "zzz-paged") not in names(p1["items"] + rest), "snapshot is consistent")
    eq(len(p1["items"] + rest), len(full["items"]), "snapshot size")
    # After compaction an old continue token has expired.
    st, p1 = api.get("/api/v1/services?limit=3")
    api.apply(svc("aaa-first", "zzz-paged", labels={"v": "2"}))
    api.control("compact")
    st, d = api.get(f"/api/v1/services?limit=3&continue={p1['metadata']['continue']}")
    eq((st, d["kind"], d["code"], d["reason"]), (410, "Status", 410, "Expired"), "expired continue")
    st, d = api.get("/api/v1/services?limit=3&continue=garbage!!")
    eq(st, 400, "bad continue token")
    api.control("delete", {"kind": "Namespace", "name": "aaa-first"})


def test_selectors(api):
    def sel(q, path="/api/v1/services"):
        st, d = api.get(path + "?" + urllib.parse.urlencode(q))
        eq(st, 200, f"selector {q}")
        return {n for _, n in names(d["items"])}
    eq(sel({"labelSelector": "app=web"}), {"web"}, "a=b")
    eq(sel({"labelSelector": "app==web"}), {"web"}, "a==b")
    check("web" not in sel({"labelSelector": "app!=web"}), "a!=b excludes")
    check("kubernetes" in sel({"labelSelector": "app!=web"}), "a!=b keeps unlabelled")
    eq(sel({"labelSelector": "k8s-app"}), {"kube-dns"}, "exists")
    check("kube-dns" not in sel({"labelSelector": "!k8s-app"}), "!exists")
    eq(sel({"labelSelector": "app in (web,db)"}), {"web", "db"}, "in")
    eq(sel({"labelSelector": "app in (web,db),app notin (db)"}), {"web"}, "in + notin")
    eq(sel({"labelSelector": "team=web"}, "/api/v1/namespaces"), {"demo"}, "namespace labels")
    eq(sel({"labelSelector": "kubernetes.io/service-name=db"},
           "/apis/discovery.k8s.io/v1/endpointslices"), {"db-q8w7e"}, "slices by service")
    eq(sel({"fieldSelector": "metadata.name=web"}), {"web"}, "field name")
    eq(sel({"fieldSelector": "metadata.namespace=shop"}), {"www", "api", "cart"}, "field ns")
    eq(sel({"fieldSelector": "status.phase!=Pending", "labelSelector": "app=db"},
           "/api/v1/pods"), {"db-0", "db-1", "db-2"}, "pods phase")
    st, d = api.get("/api/v1/services?labelSelector=" + urllib.parse.quote("a b c=d"))
    eq(st, 400, "bad selector")


def test_watch_events(api):
    st, d = api.get("/api/v1/namespaces/demo/services")
    rv = int(d["metadata"]["resourceVersion"])
    w = api.stream(f"/api/v1/namespaces/demo/services?watch=1&resourceVersion={rv}")
    eq((w.status, w.headers.get("transfer-encoding")), (200, "chunked"), "watch response")
    api.apply(svc("shop", "elsewhere"))                      # other namespace: not seen
    api.apply(svc("demo", "w1", labels={"v": "1"}))
    api.apply(svc("demo", "w1", labels={"v": "2"}))
    api.apply(svc("demo", "w1", labels={"v": "2"}))          # unchanged: no event
    api.control("delete", {"kind": "Service", "namespace": "demo", "name": "w1"})
    evs = [w.next() for _ in range(3)]
    eq([e["type"] for e in evs], ["ADDED", "MODIFIED", "DELETED"], "event types")
    for e in evs:
        eq((e["object"]["kind"], e["object"]["apiVersion"]), ("Service", "v1"), "event object kind")
        eq(e["object"]["metadata"]["name"], "w1", "event object")
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
    check(rv < rvs[0] < rvs[1] < rvs[2], f"increasing rvs {rv} {rvs}")
    eq(evs[1]["object"]["metadata"]["labels"], {"v": "2"}, "modified object")
    eq(evs[0]["object"]["metadata"]["uid"], evs[2]["object"]["metadata"]["uid"], "uid kept")
    check("10.96." in evs[0]["object"]["spec"]["clusterIP"], "cluster IP allocated")
    eq(evs[0]["object"]["spec"]["clusterIP"], evs[1]["object"]["spec"]["clusterIP"], "IP kept")
    # Resume from the middle: only what came after.
    w.close()
    w = api.stream(f"/api/v1/namespaces/demo/services?watch=true&resourceVersion={rvs[0]}")
    eq([w.next()["type"], w.next()["type"]], ["MODIFIED", "DELETED"], "resume from rv")
    w.close()
    api.control("delete", {"kind": "Service", "namespace": "shop", "name": "elsewhere"})


def test_watch_initial_and_selector(api):
    w = api.stream("/api/v1/services?watch=1&labelSelector=tier%3Dfront")
    api.apply(svc("demo", "sel1", labels={"tier": "back"}))    # not selected
    api.apply(svc("demo", "sel1", labels={"tier": "front"}))   # enters: ADDED
    api.apply(svc("demo", "sel1", labels={"tier": "front", "x": "y"}))
    api.apply(svc("demo", "sel1", labels={"tier": "back"}))    # leaves: DELETED
    eq([w.next()["type"] for _ in range(3)], ["ADDED", "MODIFIED", "DELETED"], "selector transitions")
    w.close()
    # No resourceVersion: synthetic ADDED for everything that exists, then live events.
    st, d = api.get("/api/v1/namespaces/demo/services")
    w = api.stream("/api/v1/namespaces/demo/services?watch=1")
    got = {w.next()["object"]["metadata"]["name"] for _ in d["items"]}
    eq(got, {n for _, n in names(d["items"])}, "initial ADDED events")
    api.control("delete", {"kind": "Service", "namespace": "demo", "name": "sel1"})
    ev = w.next()
    eq((ev["type"], ev["object"]["metadata"]["name"]), ("DELETED", "sel1"), "live after initial")
    w.close()
    # sendInitialEvents: initial events end with an annotated bookmark.
    w = api.stream("/api/v1/namespaces?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                   "&resourceVersionMatch=NotOlderThan")
    evs = []
    while not evs or evs[-1]["type"] != "BOOKMARK":
        evs.append(w.next(skip_bookmarks=False))
    eq(evs[-1]["object"]["metadata"]["annotations"], {"k8s.io/initial-events-end": "true"}, "end bm")
    check(len(evs) >= 5 and all(e["type"] == "ADDED" for e in evs[:-1]), "initial namespaces")
    w.close()


def test_bookmarks_and_timeout(api):
    rv = api.get("/api/v1/pods")[1]["metadata"]["resourceVersion"]
    w = api.stream(f"/api/v1/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=true"
                   "&timeoutSeconds=2")
    api.apply(svc("demo", "bm1"))          # a change elsewhere advances the global rv
    ev = w.next(timeout=3, skip_bookmarks=False)
    eq(ev["type"], "BOOKMARK", "periodic bookmark")
    obj = ev["object"]
    eq((obj["kind"], obj["apiVersion"]), ("Pod", "v1"), "bookmark kind")
    eq(set(obj["metadata"]), {"resourceVersion", "creationTimestamp"}, "bookmark metadata only")
    check(int(obj["metadata"]["resourceVersion"]) > int(rv), "bookmark advances rv")
    check(w.expect_end(timeout=4), "timeoutSeconds ends the stream cleanly")
    # Keep-alive: the same connection serves the next request after a clean end.
    check(w.raw == b"", "nothing after the terminating chunk")
    w2 = Stream(api, "/api/v1/namespaces/demo/services/bm1", sock=w.sock)
    eq(w2.status, 200, "keep-alive after watch")
    eq(json.loads(w2.body)["metadata"]["name"], "bm1", "second request on the connection")
    w.close()
    # Forced bookmark from the control interface.
    w = api.stream("/api/v1/services?watch=1&allowWatchBookmarks=1&resourceVersion=" +
                   str(api.stats()["resourceVersion"]))
    wait_for(lambda: api.stats()["open_watches"] >= 1, "watch registered")
    api.control("bookmark")
    eq(w.next(skip_bookmarks=False)["type"], "BOOKMARK", "forced bookmark")
    w.close()
    api.control("delete", {"kind": "Service", "namespace": "demo", "name": "bm1"})


def test_gone_410(api):
    rv = int(api.stats()["resourceVersion"])
    api.apply(svc("demo", "old1"))
    api.control("compact")
    w = api.stream(f"/api/v1/services?watch=1&resourceVersion={rv}")
    ev = w.next()
    eq(ev["type"], "ERROR", "too old: ERROR event")
    st = ev["object"]
    eq((st["kind"], st["code"], st["reason"]), ("Status", 410, "Expired"), "410 Status")
    check("too old resource version" in st["message"], st["message"])
    check(w.expect_end(), "stream ends after the ERROR")
    w.close()
    # Watching from the current rv still works after compaction.
    cur = api.stats()["resourceVersion"]
    w = api.stream(f"/api/v1/services?watch=1&resourceVersion={cur}")
    api.control("delete", {"kind": "Service", "namespace": "demo", "name": "old1"})
    eq(w.next()["type"], "DELETED", "watch from the compaction point")
    w.close()


def test_cut_and_peer_close(api):
    wait_for(lambda: api.stats()["open_watches"] == 0, "earlier tests' watches reaped")
    base = 0
    ws = [api.stream(f"/api/v1/{p}?watch=1&resourceVersion={api.stats()['resourceVersion']}")
          for p in ("services", "namespaces")]
    wait_for(lambda: api.stats()["open_watches"] == base + 2, "two open watches")
    eq(api.control("cut")["cut"], base + 2, "cut count")
    for w in ws:
        check(not w.expect_end(), "cut is abrupt (no terminating chunk)")
        w.close()
    wait_for(lambda: api.stats()["open_watches"] == 0, "watches gone after cut")
    w = api.stream("/api/v1/services?watch=1&resourceVersion=" + str(api.stats()["resourceVersion"]))
    wait_for(lambda: api.stats()["open_watches"] == 1, "watch open")
    w.close()                                   # the client goes away while idle
    wait_for(lambda: api.stats()["open_watches"] == 0, "closed peer detected")


def test_stall(api):
    w = api.stream("/api/v1/services?watch=1&resourceVersion=" + str(api.stats()["resourceVersion"]))
    api.control("stall?seconds=1.0")
    api.apply(svc("demo", "stalled"))
    t0 = time.monotonic()
    try:
        w.next(timeout=0.5)
        raise AssertionError("event delivered during a stall")
    except socket.timeout:
        pass
    ev = w.next(timeout=3)
    eq(ev["type"], "ADDED", "event after the stall")
    check(time.monotonic() - t0 >= 0.4, "stalled")
    api.control("stall?seconds=0.8")
    t0 = time.monotonic()
    st, _ = api.get("/api/v1/services")
    check(time.monotonic() - t0 >= 0.6, "list hung during the stall")
    eq(st, 200, "list after the stall")
    w.close()
    api.control("delete", {"kind": "Service", "namespace": "demo", "name": "stalled"})


def test_garbage(api):
    w = api.stream("/api/v1/services?watch=1&resourceVersion=" + str(api.stats()["resourceVersion"]))
    api.control("garbage?resource=services")
    api.apply(svc("demo", "g1"))
    api.apply(svc("demo", "g2"))
    bad = w.next_raw()
    try:
        json.loads(bad)
        raise AssertionError("garbage line parsed as JSON")
    except ValueError:
        pass
    eq(json.loads(w.next_raw())["object"]["metadata"]["name"], "g2", "stream continues after garbage")
    w.close()
    w = api.stream("/api/v1/services?watch=1&resourceVersion=" + str(api.stats()["resourceVersion"]))
    api.control("garbage?mode=truncated")
    api.control("delete", {"kind": "Service", "namespace": "demo", "name": "g1"})
    check(not w.expect_end(), "truncated event then abrupt close")
    check(w.buf and b"\n" not in w.buf and w.buf.startswith(b'{"type":"DELETED"'), "half an event")
    w.close()
    api.control("garbage?target=list&resource=namespaces")
    st, _, raw = api.request("GET", "/api/v1/namespaces")
    eq(st, 200, "garbage list status")
    try:
        json.loads(raw)
        raise AssertionError("garbage list parsed")
    except ValueError:
        pass
    eq(api.get("/api/v1/namespaces")[0], 200, "next list fine")
    api.control("delete", {"kind": "Service", "namespace": "demo", "name": "g2"})


def test_fail(api):
    api.control("fail?code=500&count=2")
    for _ in range(2):
        st, d = api.get("/api/v1/services")
        eq((st, d["kind"], d["code"], d["reason"]), (500, "Status", 500, "InternalError"), "failure")
    eq(api.get("/api/v1/services")[0], 200, "after the failures")
    api.control("fail?code=429&count=1")
    st, h, _ = api.request("GET", "/api/v1/services")
    eq((st, h.get("retry-after")), (429, "1"), "429 with Retry-After")
    s = api.stats()
    check(s["requests"]["GET /api/v1/services"] >= 4 and s["responses_by_code"]["500"] >= 2, "stats")


def test_namespace_cascade(api):
    api.apply(svc("tmpns", "a"), svc("tmpns", "b"))
    eq(api.get("/api/v1/namespaces/tmpns")[0], 200, "namespace auto-created")
    w = api.stream("/api/v1/services?watch=1&resourceVersion=" + str(api.stats()["resourceVersion"]))
    out = api.control("delete", {"kind": "Namespace", "name": "tmpns"})["deleted"]
    eq([d["kind"] for d in out], ["Service", "Service", "Namespace"], "cascade order")
    eq(sorted(w.next()["object"]["metadata"]["name"] for _ in range(2)), ["a", "b"], "deleted svcs")
    w.close()


def test_kubectl(api):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise Skip("kubectl not installed")
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "kubeconfig")
        with open(cfg, "w") as f:
            f.write(f"apiVersion: v1\nkind: Config\nclusters: [{{name: f, cluster: {{server: "
                    f"'{api.url}'}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: "
                    f"[{{name: c, context: {{cluster: f, user: u}}}}]\ncurrent-context: c\n")
        env = dict(os.environ, KUBECONFIG=cfg, HOME=d)
        out = subprocess.run([kubectl, "get", "--raw", "/api/v1/namespaces/demo/services/web"],
                             env=env, capture_output=True, text=True, timeout=30)
        eq(out.returncode, 0, f"kubectl get --raw: {out.stderr}")
        eq(json.loads(out.stdout)["spec"]["clusterIP"], "10.96.100.10", "kubectl raw")
        out = subprocess.run([kubectl, "get", "svc", "-A", "--chunk-size=2", "-o", "name"],
                             env=env, capture_output=True, text=True, timeout=30)
        eq(out.returncode, 0, f"kubectl get svc: {out.stderr}")
        check("service/kube-dns" in out.stdout.split(), out.stdout)


# ---------------------------------------------------------------------------
# Tests with their own server instance

def test_history_overflow():
    api = FakeApi("--history", "20")
    try:
        rv = api.stats()["resourceVersion"]
        for i in range(40):
            api.apply(svc("default", "churn", labels={"i": str(i)}))
        w = api.stream(f"/api/v1/services?watch=1&resourceVersion={rv}")
        ev = w.next()
        eq((ev["type"], ev["object"]["code"]), ("ERROR", 410), "rv fell out of history")
        w.close()
        rv = api.stats()["resourceVersion"] - 10
        w = api.stream(f"/api/v1/services?watch=1&resourceVersion={rv}")
        eq(sum(1 for _ in range(10) if w.next()["type"] == "MODIFIED"), 10, "within history")
        w.close()
    finally:
        eq(api.stop(), 0, "exit status")


def test_token_auth():
    api = FakeApi("--fixture", DEMO, "--token", "s3cret")
    try:
        st, d = api.get("/api/v1/services")
        eq((st, d["kind"], d["reason"], d["code"]), (401, "Status", "Unauthorized", 401), "no token")
        eq(api.get("/api/v1/services", headers={"Authorization": "Bearer nope"})[0], 401, "bad token")
        st, d = api.get("/api/v1/services", headers={"Authorization": "Bearer s3cret"})
        eq((st, d["kind"]), (200, "ServiceList"), "good token")
        w = api.stream("/api/v1/services?watch=1", token="s3cret")
        eq(w.status, 200, "watch with token")
        w.close()
        eq(api.request("GET", "/healthz")[0], 200, "healthz is public")
        eq(api.request("GET", "/version")[0], 200, "version is public")
        eq(api.stats()["objects"]["services"] > 0, True, "control needs no token")
        api.control("token?value=rotated")
        eq(api.get("/api/v1/services", headers={"Authorization": "Bearer s3cret"})[0], 401, "old")
        eq(api.get("/api/v1/services", headers={"Authorization": "Bearer rotated"})[0], 200, "new")
    finally:
        eq(api.stop(), 0, "exit status")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=fake-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                 "extendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}/O=system:masters", cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-out", f"{name}.pem",
                "-extfile", f"{name}.ext", cwd=d)


def test_tls():
    if not shutil.which("openssl"):
        raise Skip("openssl CLI not installed")
    with tempfile.TemporaryDirectory() as d:
        make_pki(d)
        p = lambda n: os.path.join(d, n)  # noqa: E731
        api = FakeApi("--fixture", DEMO, "--tls-cert", p("server.pem"), "--tls-key", p("server.key"),
                      "--token", "tok", "--client-ca", p("ca.pem"))
        try:
            check(api.url.startswith("https://127.0.0.1:"), api.url)
            ctx = ssl.create_default_context(cafile=p("ca.pem"))
            st, d1 = api.get("/api/v1/services", ctx=ctx, headers={"Authorization": "Bearer tok"})
            eq((st, d1["kind"]), (200, "ServiceList"), "TLS + token")
            eq(api.get("/api/v1/services", ctx=ctx)[0], 401, "TLS without credentials")
            cctx = ssl.create_default_context(cafile=p("ca.pem"))
            cctx.load_cert_chain(p("client.pem"), p("client.key"))
            eq(api.get("/api/v1/services", ctx=cctx)[0], 200, "client certificate")
            api.ctx = ctx                      # control requests: trust the CA, no creds
            rv = api.get("/api/v1/services", ctx=cctx)[1]["metadata"]["resourceVersion"]
            w = api.stream(f"/api/v1/services?watch=1&resourceVersion={rv}", ctx=cctx)
            api.apply(svc("demo", "tls1"))
            eq(w.next()["object"]["metadata"]["name"], "tls1", "watch over TLS")
            w.close()
            try:
                api.request("GET", "/healthz", ctx=ssl.create_default_context())
                raise AssertionError("untrusted server certificate accepted")
            except ssl.SSLError:
                pass
            plain = http.client.HTTPConnection(api.host, api.port, timeout=5)
            try:
                plain.request("GET", "/healthz")
                r = plain.getresponse()
                check(r.status != 200, "plain HTTP on the TLS port")
            except (OSError, http.client.HTTPException):
                pass
        finally:
            eq(api.stop(), 0, "exit status")


def test_generate_gzip():
    api = FakeApi("--generate", "3000:4", "--gen-namespaces", "30")
    try:
        s = api.stats()
        eq((s["objects"]["services"], s["objects"]["endpointslices"], s["objects"]["namespaces"]),
           (3000, 3000, 30), "generated counts")
        st, h, raw = api.request("GET", "/apis/discovery.k8s.io/v1/endpointslices",
                                 headers={"Accept-Encoding": "gzip"})
        eq((st, h.get("content-encoding"), h.get("transfer-encoding")), (200, "gzip", "chunked"),
           "big list is gzipped and chunked")
        d = json.loads(raw)
        eq(len(d["items"]), 3000, "all slices")
        check(all(len(i["endpoints"]) == 4 for i in d["items"]), "4 endpoints each")
        ips = [e["addresses"][0] for i in d["items"] for e in i["endpoints"]]
        eq(len(set(ips)), len(ips), "unique endpoint IPs")
        st, d = api.get("/api/v1/namespaces/gen-0007/services")
        eq(len(d["items"]), 100, "per-namespace list")
        seen, cont = 0, ""
        while True:
            st, d = api.get("/api/v1/services?limit=500" + (f"&continue={cont}" if cont else ""))
            seen += len(d["items"])
            cont = d["metadata"].get("continue")
            if not cont:
                break
        eq(seen, 3000, "paged over the generated cluster")
        st, d = api.get("/api/v1/namespaces/gen-0001/services/svc-000001")
        eq(d["metadata"]["namespace"], "gen-0001", "generated object get")
    finally:
        eq(api.stop(), 0, "exit status")


def test_future_rv_small_chunks_ipv6():
    host = "[::1]" if socket.has_ipv6 else "127.0.0.1"
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        host = "127.0.0.1"
    api = FakeApi("--fixture", DEMO, "--max-chunk", "7", "--listen", f"{host}:0")
    try:
        check(api.url.startswith(f"http://{host}:"), api.url)
        cur = api.stats()["resourceVersion"]
        t0 = time.monotonic()
        st, d = api.get(f"/api/v1/services?watch=1&resourceVersion={cur + 100}")
        eq((st, d["code"], d["details"]["causes"][0]["reason"]), (504, 504, "ResourceVersionTooLarge"),
           "future resourceVersion (as after a server restart)")
        check(time.monotonic() - t0 >= 2.5, "waited for the rv first")
        w = api.stream(f"/api/v1/services?watch=1&resourceVersion={cur}")
        api.apply(svc("demo", "tiny-chunks", labels={"x": "y" * 100}))
        ev = w.next()
        eq((ev["type"], ev["object"]["metadata"]["labels"]["x"]), ("ADDED", "y" * 100),
           "event reassembled from 7-byte chunks")
        w.close()
    finally:
        eq(api.stop(), 0, "exit status")


def test_sigterm_ends_watches():
    api = FakeApi("--fixture", DEMO)
    w = api.stream("/api/v1/services?watch=1&resourceVersion=" + str(api.stats()["resourceVersion"]))
    wait_for(lambda: api.stats()["open_watches"] == 1, "watch open")
    t0 = time.monotonic()
    eq(api.stop(), 0, "SIGTERM exit status")
    check(time.monotonic() - t0 < 3, "prompt shutdown")
    check(w.expect_end(), "watch ended cleanly on SIGTERM")
    w.close()


SHARED = [test_discovery, test_list_shape, test_pagination, test_selectors, test_watch_events,
          test_watch_initial_and_selector, test_bookmarks_and_timeout, test_gone_410,
          test_cut_and_peer_close, test_stall, test_garbage, test_fail, test_namespace_cascade,
          test_kubectl]
OWN = [test_history_overflow, test_token_auth, test_tls, test_generate_gzip,
       test_future_rv_small_chunks_ipv6, test_sigterm_ends_watches]


def run(fn, *args):
    t0 = time.monotonic()
    try:
        fn(*args)
        print(f"PASS {fn.__name__} ({time.monotonic() - t0:.2f}s)", flush=True)
        return "pass"
    except Skip as e:
        print(f"SKIP {fn.__name__}: {e}", flush=True)
        return "skip"
    except Exception:  # noqa: BLE001 - report every failure and go on
        print(f"FAIL {fn.__name__}", flush=True)
        traceback.print_exc()
        return "fail"


def main(argv=None):
    only = set((argv if argv is not None else sys.argv[1:]))
    pick = lambda tests: [t for t in tests if not only or t.__name__ in only]  # noqa: E731
    results = []
    shared = pick(SHARED)
    if shared:
        api = FakeApi("--fixture", DEMO, "--bookmark-interval", "0.5")
        try:
            results += [run(t, api) for t in shared]
        finally:
            rc = api.stop()
            if rc != 0:
                print(f"FAIL shared server exit status {rc}: {api.proc.stderr.read()}")
                results.append("fail")
    results += [run(t) for t in pick(OWN)]
    n = {k: results.count(k) for k in ("pass", "fail", "skip")}
    print(f"{n['pass']} passed, {n['fail']} failed, {n['skip']} skipped", flush=True)
    return 1 if n["fail"] or not results else 0


if __name__ == "__main__":
    sys.exit(main())
