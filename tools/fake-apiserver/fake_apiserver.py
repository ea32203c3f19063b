#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A fake Kubernetes API server for Tern's tests, benchmarks and demo (Python 3 stdlib only).

It serves list, get and watch for four resources -- v1 Services, discovery.k8s.io/v1
EndpointSlices, v1 Namespaces and v1 Pods -- the way the real kube-apiserver does on the
wire: JSON lists paginated with `limit`/`continue` (tokens expire with 410), label and field
selectors, chunked JSON-lines watch streams from a resourceVersion with a bounded history
(410 "too old resource version" as an ERROR event), bookmarks, `timeoutSeconds`, one global
strictly increasing resourceVersion, bearer-token and client-certificate auth, TLS, gzip for
big lists. A control interface under /_control/ (loopback only, no auth) changes objects and
injects faults: cut streams, stall, garbage or truncated JSON, compaction, HTTP errors.
`--fixture` loads objects at start (demo.json is the demo cluster); `--generate` synthesises a
big cluster quickly from templates. Objects are kept as their serialized JSON bytes, so a list
is streamed by joining stored bytes. See README.md next to this file for the full reference.
"""

import argparse
import base64
import bisect
import collections
import datetime
import hmac
import ipaddress
import json
import os
import selectors
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Resource:
    """One served resource type and its wire names."""

    def __init__(self, plural, kind, group, namespaced, short, empty_tail):
        self.plural = plural
        self.kind = kind
        self.group = group
        self.namespaced = namespaced
        self.short = short
        self.api_version = f"{group}/v1" if group else "v1"
        self.prefix = f"/apis/{group}/v1" if group else "/api/v1"
        self.list_kind = kind + "List"
        # Watch objects carry kind and apiVersion; list items do not (as the real API).
        self.head = f'{{"kind":"{kind}","apiVersion":"{self.api_version}",'.encode()
        # The zero-valued rest of a typed object, as Go serializes it in a BOOKMARK.
        self.empty_tail = empty_tail


RESOURCES = {r.plural: r for r in (
    Resource("services", "Service", "", True, "svc", ',"spec":{},"status":{"loadBalancer":{}}'),
    Resource("endpointslices", "EndpointSlice", "discovery.k8s.io", True, "",
             ',"addressType":"","endpoints":null,"ports":null'),
    Resource("namespaces", "Namespace", "", False, "ns", ',"spec":{},"status":{}'),
    Resource("pods", "Pod", "", True, "po", ',"spec":{"containers":null},"status":{}'),
)}
KIND_TO_RES = {r.kind.lower(): r for r in RESOURCES.values()}
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
           422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
           503: "ServiceUnavailable", 504: "Timeout"}
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")
LIST_CHUNK = 256 * 1024
GZIP_MIN = 128 * 1024


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def status_obj(code, message, reason=None, details=None):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
          "message": message, "reason": reason or REASONS.get(code, "Unknown")}
    if details:
        st["details"] = details
    st["code"] = code
    return st


class ApiError(Exception):
    def __init__(self, code, message, reason=None, details=None):
        super().__init__(message)
        self.code = code
        self.status = status_obj(code, message, reason, details)


# ---------------------------------------------------------------------------
# Selectors

def split_terms(s):
    """Split a selector on commas outside parentheses."""
    terms, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return [t.strip() for t in terms if t.strip()]


def valid_label_key(k):
    prefix, _, name = k.rpartition("/")
    if not name or len(name) > 63 or len(prefix) > 253:
        return False
    ok = all(c.isalnum() or c in "-_." for c in name) and name[0].isalnum() and name[-1].isalnum()
    return ok and all(c.isalnum() or c in "-." for c in prefix)


def parse_label_selector(s):
    """`a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)` -> [(key, op, values)]."""
    reqs = []
    for t in split_terms(s or ""):
        for word in (" notin ", " in "):
            if word in t:
                key, _, rest = t.partition(word)
                rest = rest.strip()
                if not (rest.startswith("(") and rest.endswith(")")):
                    raise ApiError(400, f"unable to parse requirement: {t!r}")
                vals = {v.strip() for v in rest[1:-1].split(",") if v.strip()}
                reqs.append((key.strip(), word.strip(), vals))
                break
        else:
            if t.startswith("!"):
                reqs.append((t[1:].strip(), "!", None))
            elif "!=" in t:
                k, _, v = t.partition("!=")
                reqs.append((k.strip(), "!=", v.strip()))
            elif "=" in t:
                k, _, v = t.partition("==") if "==" in t else t.partition("=")
                reqs.append((k.strip(), "=", v.strip()))
            else:
                reqs.append((t, "exists", None))
        if not valid_label_key(reqs[-1][0]):
            raise ApiError(400, f"unable to parse requirement: invalid label key {reqs[-1][0]!r}")
    return reqs


def labels_match(reqs, labels):
    for key, op, val in reqs:
        have = labels.get(key)
        if op == "=" and have != val:
            return False
        if op == "!=" and have == val:
            return False
        if op == "exists" and have is None:
            return False
        if op == "!" and have is not None:
            return False
        if op == "in" and have not in val:
            return False
        if op == "notin" and have in val:
            return False
    return True


def parse_field_selector(s):
    reqs = []
    for t in split_terms(s or ""):
        if "!=" in t:
            k, _, v = t.partition("!=")
            reqs.append((k.strip(), "!=", v.strip()))
        elif "=" in t:
            k, _, v = t.partition("==") if "==" in t else t.partition("=")
            reqs.append((k.strip(), "=", v.strip()))
        else:
            raise ApiError(400, f"invalid selector: '{s}'; can't understand '{t}'")
    return reqs


def field_value(obj, path):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


class Filter:
    """Namespace + label selector + field selector of one list or watch."""

    def __init__(self, ns, label_sel, field_sel):
        self.ns = ns
        self.labels = parse_label_selector(label_sel)
        self.fields = parse_field_selector(field_sel)
        self.key = (ns, label_sel or "", field_sel or "")

    def trivial(self):
        return not self.labels and not self.fields

    def match(self, e):
        if self.ns is not None and e.ns != self.ns:
            return False
        if self.labels and not labels_match(self.labels, e.labels):
            return False
        if self.fields:
            obj = json.loads(e.body)
            for path, op, val in self.fields:
                if (field_value(obj, path) == val) != (op == "="):
                    return False
        return True


# ---------------------------------------------------------------------------
# The store: objects, history, watches, fault injection

class Entry:
    """One stored object version: its list-item JSON (no kind/apiVersion) and index fields."""
    __slots__ = ("res", "ns", "name", "labels", "rv", "body")

    def __init__(self, res, ns, name, labels, rv, body):
        self.res, self.ns, self.name, self.labels, self.rv, self.body = \
            res, ns, name, labels, rv, body

    def full(self):
        return self.res.head + self.body[1:]


class Event:
    __slots__ = ("rv", "plural", "type", "entry", "old")

    def __init__(self, rv, plural, type_, entry, old):
        self.rv, self.plural, self.type, self.entry, self.old = rv, plural, type_, entry, old


class Watch:
    """One open watch stream; fields other than `last_rv` are written under the store lock."""

    def __init__(self, res, flt, last_rv, bookmarks, sock):
        self.res, self.flt, self.last_rv, self.bookmarks, self.sock = \
            res, flt, last_rv, bookmarks, sock
        self.cut = None          # None, "fin" or "rst"
        self.peer_closed = False
        self.stopping = False    # server shutdown: end cleanly
        self.force_bm = False    # /_control/bookmark: send one now
        self.fd = sock.fileno()


class Store:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.rv = args.start_rv
        self.objects = {p: {} for p in RESOURCES}
        self.keys = {p: [] for p in RESOURCES}
        self.last_change = {p: self.rv for p in RESOURCES}
        self.events = []
        self.floor = self.rv           # a watch may start from any rv >= floor
        self.history_max = args.history
        self.snapshots = collections.OrderedDict()
        self.continue_ttl = args.continue_ttl
        self.watches = set()
        self.stall_until = 0.0
        self.garbage = []              # one-shot faults: dicts with target/mode/resource
        self.fail_code, self.fail_count, self.fail_resource = 0, 0, None
        self.requests = collections.Counter()
        self.codes = collections.Counter()
        self.lists = collections.Counter()
        self.watch_starts = collections.Counter()
        self.events_sent = 0
        self.next_ip = {4: int(ipaddress.ip_address("10.96.0.100")),
                        6: int(ipaddress.ip_address("fd00:10:96::100"))}
        self.used_ips = set()
        self.closing = False

    # -- mutation (lock held) ------------------------------------------------

    def _bump(self):
        self.rv += 1
        return self.rv

    def _put(self, res, ns, name, obj_body_fn, record):
        """Store a new version; obj_body_fn(rv) -> (labels, body). Returns (type, entry)."""
        key = (ns or "", name)
        table = self.objects[res.plural]
        old = table.get(key)
        rv = self._bump()
        labels, body = obj_body_fn(rv)
        e = Entry(res, ns, name, labels, rv, body)
        table[key] = e
        if old is None:
            bisect.insort(self.keys[res.plural], key)
        self.last_change[res.plural] = rv
        typ = "ADDED" if old is None else "MODIFIED"
        if record:
            self._record(Event(rv, res.plural, typ, e, old))
        return typ, e

    def _record(self, ev):
        self.events.append(ev)
        if len(self.events) > self.history_max + max(16, self.history_max // 4):
            drop = len(self.events) - self.history_max
            self.floor = self.events[drop - 1].rv
            del self.events[:drop]

    def _remove(self, res, key):
        table = self.objects[res.plural]
        old = table.pop(key)
        keys = self.keys[res.plural]
        del keys[bisect.bisect_left(keys, key)]
        rv = self._bump()
        obj = json.loads(old.body)
        obj["metadata"]["resourceVersion"] = str(rv)
        e = Entry(res, old.ns, old.name, old.labels, rv, dumps(obj))
        self.last_change[res.plural] = rv
        self._record(Event(rv, res.plural, "DELETED", e, old))
        return e

    def _alloc_ip(self, fam):
        while True:
            ip = str(ipaddress.ip_address(self.next_ip[fam]))
            self.next_ip[fam] += 1
            if ip not in self.used_ips:
                self.used_ips.add(ip)
                return ip

    def apply(self, objs, record=True):
        """Add or modify objects; returns one result per object. Raises ApiError."""
        prepared = [self._validate(o) for o in objs]
        results = []
        with self.lock:
            for res, obj in prepared:
                md = obj["metadata"]
                ns = md.get("namespace") if res.namespaced else None
                if ns is not None and ("", ns) not in self.objects["namespaces"]:
                    nsobj = {"metadata": {"name": ns}}
                    self._apply_one(RESOURCES["namespaces"], self._normalize(
                        RESOURCES["namespaces"], nsobj), record, results)
                self._apply_one(res, obj, record, results)
            if record:
                self.cond.notify_all()
        return results

    def _apply_one(self, res, obj, record, results):
        md = obj["metadata"]
        ns = md.get("namespace") if res.namespaced else None
        key = (ns or "", md["name"])
        old = self.objects[res.plural].get(key)
        if res.plural == "services":
            spec = obj["spec"]
            if old is not None and spec.get("clusterIP") is None and not spec.get("clusterIPs"):
                ospec = json.loads(old.body).get("spec", {})   # cluster IPs are immutable
                for k in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                    if k in ospec:
                        spec[k] = ospec[k]
            self._default_service_ips(obj)
        if old is not None:
            prev = json.loads(old.body)
            pmd = prev["metadata"]
            md["uid"] = pmd.get("uid", md.get("uid"))
            md["creationTimestamp"] = pmd.get("creationTimestamp")
            md["resourceVersion"] = pmd.get("resourceVersion")
            if dumps(prev) == dumps(self._order(res, obj)):
                results.append({"kind": res.kind, "namespace": ns, "name": md["name"],
                                "type": "UNCHANGED", "resourceVersion": old.rv})
                return
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("creationTimestamp", now_rfc3339())

        def body(rv):
            md["resourceVersion"] = str(rv)
            return dict(md.get("labels") or {}), dumps(self._order(res, obj))
        typ, e = self._put(res, ns, md["name"], body, record)
        results.append({"kind": res.kind, "namespace": ns, "name": md["name"], "type": typ,
                        "resourceVersion": e.rv})

    def _default_service_ips(self, obj):
        spec = obj["spec"]
        if spec.get("type") == "ExternalName":
            return
        if spec.get("clusterIP") is None and not spec.get("clusterIPs"):
            fams = spec.get("ipFamilies") or ["IPv4"]
            spec["clusterIPs"] = [self._alloc_ip(6 if f == "IPv6" else 4) for f in fams]
        if spec.get("clusterIPs") and spec.get("clusterIP") is None:
            spec["clusterIP"] = spec["clusterIPs"][0]
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        ips = spec["clusterIPs"]
        for ip in ips:
            self.used_ips.add(ip)
        if "ipFamilies" not in spec and ips != ["None"]:
            spec["ipFamilies"] = ["IPv6" if ":" in ip else "IPv4" for ip in ips]
        spec.setdefault("ipFamilyPolicy", "RequireDualStack" if len(ips) > 1 else "SingleStack")

    @staticmethod
    def _order(res, obj):
        """Key order as the real API writes it: metadata first, then spec, then status."""
        md = obj["metadata"]
        order = ("name", "generateName", "namespace", "uid", "resourceVersion", "generation",
                 "creationTimestamp", "deletionTimestamp", "labels", "annotations",
                 "ownerReferences", "finalizers", "managedFields")
        out_md = {k: md[k] for k in order if k in md}
        out_md.update({k: v for k, v in md.items() if k not in out_md})
        out = {"metadata": out_md}
        for k in ("spec", "addressType", "endpoints", "ports", "status"):
            if k in obj:
                out[k] = obj[k]
        out.update({k: v for k, v in obj.items() if k not in out and k not in
                    ("kind", "apiVersion")})
        return out

    def _validate(self, obj):
        if not isinstance(obj, dict):
            raise ApiError(400, "object must be a JSON object")
        kind = str(obj.get("kind", "")).lower()
        res = KIND_TO_RES.get(kind) or RESOURCES.get(kind)
        if res is None:
            raise ApiError(400, f"unsupported kind {obj.get('kind')!r}")
        md = obj.get("metadata")
        if not isinstance(md, dict) or not md.get("name"):
            raise ApiError(422, f"{res.kind}: metadata.name is required")
        return res, self._normalize(res, json.loads(json.dumps(obj)))

    @staticmethod
    def _normalize(res, obj):
        """Defaulting the real API server would do, so applied objects look real."""
        md = obj["metadata"]
        if res.namespaced:
            md.setdefault("namespace", "default")
        else:
            md.pop("namespace", None)
        for k in ("labels", "annotations"):
            if k in md and not md[k]:
                del md[k]
        if res.plural == "services":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            for p in spec.get("ports") or []:
                p.setdefault("protocol", "TCP")
                if spec["type"] != "ExternalName":
                    p.setdefault("targetPort", p.get("port"))
            if spec["type"] != "ExternalName":
                spec.setdefault("sessionAffinity", "None")
                spec.setdefault("internalTrafficPolicy", "Cluster")
            obj.setdefault("status", {"loadBalancer": {}})
        elif res.plural == "endpointslices":
            obj.setdefault("addressType", "IPv4")
            obj.setdefault("endpoints", None)
            obj.setdefault("ports", None)
            for p in obj.get("ports") or []:
                p.setdefault("protocol", "TCP")
        elif res.plural == "namespaces":
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})
        elif res.plural == "pods":
            st = obj.setdefault("status", {})
            st.setdefault("phase", "Running")
            if st.get("podIP") and not st.get("podIPs"):
                st["podIPs"] = [{"ip": st["podIP"]}]
            if st.get("podIPs") and not st.get("podIP"):
                st["podIP"] = st["podIPs"][0]["ip"]
        return obj

    def delete(self, kind, ns, name):
        res = KIND_TO_RES.get(str(kind).lower()) or RESOURCES.get(str(kind).lower())
        if res is None:
            raise ApiError(400, f"unsupported kind {kind!r}")
        key = ((ns or "default") if res.namespaced else "", name)
        with self.lock:
            if key not in self.objects[res.plural]:
                raise ApiError(404, f'{res.plural} "{name}" not found', "NotFound",
                               {"name": name, "kind": res.plural})
            deleted = []
            if res.plural == "namespaces":   # the namespace controller empties it first
                for p, table in self.objects.items():
                    if p != "namespaces":
                        for k in [k for k in table if k[0] == name]:
                            deleted.append(self._remove(RESOURCES[p], k))
            deleted.append(self._remove(res, key))
            self.cond.notify_all()
            return [{"kind": e.res.kind, "namespace": e.ns, "name": e.name,
                     "resourceVersion": e.rv} for e in deleted]

    # -- reading --------------------------------------------------------------

    def wait_unstalled(self):
        with self.lock:
            while time.monotonic() < self.stall_until and not self.closing:
                self.cond.wait(self.stall_until - time.monotonic())

    def _select(self, res, flt):
        keys, table = self.keys[res.plural], self.objects[res.plural]
        if flt.ns is not None and res.namespaced:
            lo = bisect.bisect_left(keys, (flt.ns, ""))
            hi = bisect.bisect_left(keys, (flt.ns + "\0", ""))
            keys = keys[lo:hi]
        entries = [table[k] for k in keys]
        if not flt.trivial() or (flt.ns is not None and not res.namespaced):
            entries = [e for e in entries if flt.match(e)]
        return entries

    def list(self, res, flt, limit, cont):
        """Returns (rv, entries, continue_token, remaining)."""
        with self.lock:
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
                    rv, off = int(tok["rv"]), int(tok["off"])
                except (ValueError, KeyError, TypeError):
                    raise ApiError(400, "continue key is not valid")
                snap_key = (res.plural, flt.key, rv)
                snap = self.snapshots.get(snap_key)
                if snap is None:
                    if rv < self.floor or self.last_change[res.plural] > rv:
                        raise ApiError(410, "The provided continue parameter is too old to "
                                       "display a consistent list result. You can start a new "
                                       "list without the continue parameter.", "Expired")
                    snap = (time.monotonic(), self._select(res, flt))
                    self.snapshots[snap_key] = snap
            else:
                rv, off = self.rv, 0
                snap = (time.monotonic(), self._select(res, flt))
                snap_key = (res.plural, flt.key, rv)
            entries = snap[1]
            if not limit or off + limit >= len(entries):
                self.snapshots.pop(snap_key, None)
                return rv, entries[off:], None, None
            self.snapshots[snap_key] = snap
            self.snapshots.move_to_end(snap_key)
            tnow = time.monotonic()
            while self.snapshots and (len(self.snapshots) > 64 or
                                      next(iter(self.snapshots.values()))[0] + self.continue_ttl < tnow):
                self.snapshots.popitem(last=False)
            nxt = off + limit
            last = entries[nxt - 1]
            tok = {"v": "meta.k8s.io/v1", "rv": rv, "off": nxt, "start": f"{last.ns or ''}/{last.name}"}
            token = base64.urlsafe_b64encode(dumps(tok)).decode().rstrip("=")
            remaining = len(entries) - nxt if flt.trivial() else None
            return rv, entries[off:nxt], token, remaining

    def get(self, res, ns, name):
        with self.lock:
            return self.objects[res.plural].get(((ns or "") if res.namespaced else "", name))

    def take_fault(self, target, plural):
        """Consume a one-shot garbage fault for `target` ('watch'/'list') if one applies."""
        for i, g in enumerate(self.garbage):
            if g["target"] == target and g["resource"] in (None, plural):
                g["count"] -= 1
                if g["count"] <= 0:
                    del self.garbage[i]
                return g["mode"]
        return None

    def compact(self):
        with self.lock:
            self.events.clear()
            self.floor = self.rv
            self.snapshots.clear()
            self.cond.notify_all()
            return self.rv

    def stats(self):
        with self.lock:
            by_res = collections.Counter(w.res.plural for w in self.watches)
            return {"resourceVersion": self.rv, "open_watches": len(self.watches),
                    "open_watches_by_resource": dict(by_res),
                    "watches_started": dict(self.watch_starts), "lists": dict(self.lists),
                    "requests": dict(self.requests),
                    "responses_by_code": {str(k): v for k, v in self.codes.items()},
                    "events_sent": self.events_sent,
                    "objects": {p: len(t) for p, t in self.objects.items()},
                    "history": {"events": len(self.events), "floor": self.floor},
                    "stalled_for": max(0.0, round(self.stall_until - time.monotonic(), 3)),
                    "pending_faults": list(self.garbage),
                    "pending_failures": {"code": self.fail_code, "count": self.fail_count}}


# ---------------------------------------------------------------------------
# Closed-peer detection: one thread blocks on every open watch socket; a watch socket
# becoming readable means the client closed it (a watching client sends nothing).

class PeerMonitor:
    def __init__(self, store):
        self.store = store
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.rfd, self.wfd = os.pipe()
        self.sel.register(self.rfd, selectors.EVENT_READ, None)
        threading.Thread(target=self.run, name="peer-monitor", daemon=True).start()

    def add(self, w):
        with self.lock:
            self.sel.register(w.fd, selectors.EVENT_READ, w)
        os.write(self.wfd, b"x")

    def remove(self, w):
        """Unregister w, and only w: its fd number may already belong to a newer watch."""
        with self.lock:
            key = self.sel.get_map().get(w.fd)
            if key is not None and key.data is w:
                self.sel.unregister(w.fd)

    def run(self):
        while True:
            for key, _ in self.sel.select():
                if key.data is None:
                    os.read(self.rfd, 4096)
                    continue
                w = key.data
                with self.lock:
                    if self.sel.get_map().get(w.fd) is not key:
                        continue             # stale: that watch ended meanwhile
                    self.sel.unregister(w.fd)
                with self.store.lock:
                    w.peer_closed = True
                    self.store.cond.notify_all()


# ---------------------------------------------------------------------------
# Synthetic clusters

def generate(store, n_services, per, n_namespaces, headless_ratio, pods):
    """Fill the store with n_services Services, one EndpointSlice of `per` endpoints each."""
    t0 = time.monotonic()
    svc_res, eps_res = RESOURCES["services"], RESOURCES["endpointslices"]
    ns_res, pod_res = RESOURCES["namespaces"], RESOURCES["pods"]
    ts = now_rfc3339()
    headless_every = max(1, round(1 / headless_ratio)) if headless_ratio > 0 else 0
    with store.lock:
        def put(res, ns, name, labels, body_fmt):
            rv = store._bump()
            e = Entry(res, ns, name, labels, rv, body_fmt.replace("@RV@", str(rv)).encode())
            store.objects[res.plural][(ns or "", name)] = e
        for j in range(n_namespaces):
            ns = f"gen-{j:04d}"
            put(ns_res, None, ns, {"kubernetes.io/metadata.name": ns},
                f'{{"metadata":{{"name":"{ns}","uid":"00000000-0000-4000-8001-{j:012x}",'
                f'"resourceVersion":"@RV@","creationTimestamp":"{ts}","labels":'
                f'{{"kubernetes.io/metadata.name":"{ns}"}}}},"spec":{{"finalizers":'
                f'["kubernetes"]}},"status":{{"phase":"Active"}}}}')
        pod_ip = int(ipaddress.ip_address("10.128.0.10"))
        for i in range(n_services):
            ns, name = f"gen-{i % n_namespaces:04d}", f"svc-{i:06d}"
            headless = headless_every and i % headless_every == 0
            cip = "None" if headless else str(ipaddress.ip_address(
                int(ipaddress.ip_address("10.100.0.0")) + i))
            if not headless:
                store.used_ips.add(cip)
            md = (f'"name":"{name}","namespace":"{ns}","uid":"00000000-0000-4000-8002-{i:012x}",'
                  f'"resourceVersion":"@RV@","creationTimestamp":"{ts}"')
            put(svc_res, ns, name, {"app": name},
                f'{{"metadata":{{{md},"labels":{{"app":"{name}"}}}},"spec":{{"ports":[{{'
                f'"name":"http","protocol":"TCP","port":80,"targetPort":8080}}],"selector":'
                f'{{"app":"{name}"}},"clusterIP":"{cip}","clusterIPs":["{cip}"],'
                f'"type":"ClusterIP","sessionAffinity":"None","ipFamilies":["IPv4"],'
                f'"ipFamilyPolicy":"SingleStack","internalTrafficPolicy":"Cluster"}},'
                f'"status":{{"loadBalancer":{{}}}}}}')
            eps = []
            for k in range(per):
                ip = socket.inet_ntoa(struct.pack("!I", pod_ip))
                pod_ip += 1
                pname = f"{name}-{k}"
                eps.append(f'{{"addresses":["{ip}"],"conditions":{{"ready":true,"serving":true,'
                           f'"terminating":false}},"targetRef":{{"kind":"Pod","namespace":'
                           f'"{ns}","name":"{pname}"}},"nodeName":"node-{k % 16}"}}')
                if pods:
                    put(pod_res, ns, pname, {"app": name},
                        f'{{"metadata":{{"name":"{pname}","namespace":"{ns}","resourceVersion":'
                        f'"@RV@","creationTimestamp":"{ts}","labels":{{"app":"{name}"}}}},'
                        f'"spec":{{"containers":[{{"name":"app","image":"app:1"}}],'
                        f'"nodeName":"node-{k % 16}"}},"status":{{"phase":"Running",'
                        f'"podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}]}}}}')
            sname = f"{name}-gen00"
            labels = {"kubernetes.io/service-name": name,
                      "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
            put(eps_res, ns, sname, labels,
                f'{{"metadata":{{"name":"{sname}","generateName":"{name}-","namespace":"{ns}",'
                f'"uid":"00000000-0000-4000-8003-{i:012x}","resourceVersion":"@RV@",'
                f'"creationTimestamp":"{ts}","labels":{{"endpointslice.kubernetes.io/'
                f'managed-by":"endpointslice-controller.k8s.io","kubernetes.io/service-name":'
                f'"{name}"}},"annotations":{{"endpoints.kubernetes.io/last-change-trigger-time":'
                f'"{ts}"}}}},"addressType":"IPv4","endpoints":[{",".join(eps) or ""}],'
                f'"ports":[{{"name":"http","protocol":"TCP","port":8080}}]}}'
                .replace('"endpoints":[]', '"endpoints":null'))
        for p in RESOURCES:
            store.keys[p] = sorted(store.objects[p])
            store.last_change[p] = store.rv
        store.floor = store.rv
    return time.monotonic() - t0


# ---------------------------------------------------------------------------
# HTTP

class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers, bodies and watch events go out as separate small writes: without
    # TCP_NODELAY, Nagle plus the client's delayed ACK hold them back ~40 ms.
    disable_nagle_algorithm = True
    server_version = "fake-apiserver"
    sys_version = ""

    def setup(self):
        srv = self.server
        self.tls_peer_ok = False
        if srv.tls_ctx is not None:
            self.request.settimeout(10)
            self.request = srv.tls_ctx.wrap_socket(self.request, server_side=True)
            self.request.settimeout(None)
            self.tls_peer_ok = self.request.getpeercert() is not None
        super().setup()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake-apiserver: %s %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    # -- plumbing --------------------------------------------------------------

    def send_body(self, code, body, ctype="application/json", extra=None):
        self.server.store.codes[code] += 1
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, code, obj, extra=None):
        self.send_body(code, dumps(obj) + b"\n" if code >= 400 else dumps(obj), extra=extra)

    def send_error_status(self, err):
        extra = {"Retry-After": "1"} if err.code == 429 else None
        if err.code == 401:
            extra = {"Www-Authenticate": 'Bearer realm="kubernetes"'}
        self.send_json(err.code, err.status, extra)

    def start_chunked(self, ctype="application/json", extra=None):
        self.server.store.codes[200] += 1
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data):
        mx = self.server.max_chunk
        if mx and len(data) > mx:
            self.wfile.write(b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + mx]), data[i:i + mx])
                                      for i in range(0, len(data), mx)))
        elif data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunked(self):
        self.wfile.write(b"0\r\n\r\n")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(out)
                out.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def dispatch(self):
        store = self.server.store
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        with store.lock:
            store.requests[f"{self.command} {path}"] += 1
        try:
            body = self.read_body() if self.command in ("POST", "PUT", "PATCH") else b""
            if path.startswith("/_control/"):
                if not ipaddress.ip_address(self.client_address[0]).is_loopback:
                    raise ApiError(403, "control interface is loopback only")
                return self.control(path[len("/_control/"):], q, body)
            store.wait_unstalled()
            with store.lock:
                if store.fail_count > 0 and store.fail_resource in (None, *path.split("/")):
                    store.fail_count -= 1
                    code = store.fail_code
                    raise ApiError(code, f"injected failure ({code})")
            if path in ("/healthz", "/livez", "/readyz"):
                return self.send_body(200, b"ok", "text/plain; charset=utf-8")
            self.authenticate(path)
            if self.command != "GET":
                raise ApiError(405, f"the server does not allow this method on the requested "
                               f"resource ({self.command})", "MethodNotAllowed")
            self.api(path, q)
        except ApiError as err:
            self.send_error_status(err)
        except (OSError, ssl.SSLError):
            self.close_connection = True

    def authenticate(self, path):
        srv = self.server
        if not srv.tokens and not srv.client_ca:
            return
        if path in PUBLIC_PATHS or self.tls_peer_ok:
            return
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[7:].strip().encode()
            if any(hmac.compare_digest(given, t.encode()) for t in srv.tokens):
                return
        raise ApiError(401, "Unauthorized")

    # -- the API -----------------------------------------------------------------

    def api(self, path, q):
        srv = self.server
        if path == "/version":
            return self.send_json(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake",
                                        "gitCommit": "0" * 40, "gitTreeState": "clean",
                                        "buildDate": "2024-05-01T00:00:00Z", "goVersion": "go1.22.2",
                                        "compiler": "gc", "platform": "linux/amd64"})
        if path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                                        "serverAddress": srv.hostport}]})
        if path == "/apis":
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                self.group_obj()]})
        if path == "/apis/discovery.k8s.io":
            return self.send_json(200, dict(self.group_obj(), kind="APIGroup", apiVersion="v1"))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif parts[:3] == ["apis", "discovery.k8s.io", "v1"]:
            group, rest = "discovery.k8s.io", parts[3:]
        else:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        if not rest:
            return self.send_json(200, self.resource_list(group))
        watch = q.get("watch", "") in ("1", "true", "True")
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        ns = name = None
        if len(rest) in (3, 4) and rest[0] == "namespaces":
            ns, plural, name = rest[1], rest[2], (rest[3] if len(rest) == 4 else None)
        elif len(rest) in (1, 2):
            plural, name = rest[0], (rest[1] if len(rest) == 2 else None)
        else:
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        res = RESOURCES.get(plural)
        if res is None or res.group != group or (ns is not None and not res.namespaced):
            raise ApiError(404, "the server could not find the requested resource", "NotFound")
        if name is not None and not watch:
            if res.namespaced and ns is None:
                raise ApiError(404, "the server could not find the requested resource", "NotFound")
            e = srv.store.get(res, ns, name)
            if e is None:
                raise ApiError(404, f'{plural} "{name}" not found', "NotFound",
                               {"name": name, "kind": plural})
            return self.send_body(200, e.full())
        fsel = q.get("fieldSelector")
        if name is not None:
            fsel = ",".join(filter(None, [fsel, f"metadata.name={name}"]))
        flt = Filter(ns, q.get("labelSelector"), fsel)
        if watch:
            return self.watch(res, flt, q)
        limit = q.get("limit") or "0"
        if not limit.isdigit():
            raise ApiError(400, f"invalid limit {limit!r}")
        self.list(res, flt, int(limit), q.get("continue") or None)

    def group_obj(self):
        gv = {"groupVersion": "discovery.k8s.io/v1", "version": "v1"}
        return {"name": "discovery.k8s.io", "versions": [gv], "preferredVersion": gv}

    def resource_list(self, group):
        gv = f"{group}/v1" if group else "v1"
        rs = [{"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
               "kind": r.kind, "verbs": ["get", "list", "watch"],
               **({"shortNames": [r.short]} if r.short else {})}
              for r in RESOURCES.values() if r.group == group]
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": rs}

    def list(self, res, flt, limit, cont):
        store = self.server.store
        rv, entries, token, remaining = store.list(res, flt, limit, cont)
        with store.lock:
            store.lists[res.plural] += 1
            fault = store.take_fault("list", res.plural)
        meta = {"resourceVersion": str(rv)}
        if token:
            meta["continue"] = token
            if remaining is not None:
                meta["remainingItemCount"] = remaining
        head = (b'{"kind":"%s","apiVersion":"%s","metadata":%s,"items":['
                % (res.list_kind.encode(), res.api_version.encode(), dumps(meta)))
        if fault:
            junk = head + b'{"metadata":{"name":"garb\xff\xfe' + b"}}]],,{{"
            return self.send_body(200, junk if fault == "invalid" else head[:len(head) // 2])
        total = len(head) + 2 + sum(len(e.body) for e in entries) + max(0, len(entries) - 1)
        gzip = "gzip" in self.headers.get("Accept-Encoding", "") and total >= GZIP_MIN
        if total < 64 * 1024:
            return self.send_body(200, head + b",".join(e.body for e in entries) + b"]}")
        self.start_chunked(extra={"Content-Encoding": "gzip"} if gzip else None)
        z = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
        out = z.compress if z else (lambda b: b)
        buf, size = [head], len(head)
        for i, e in enumerate(entries):
            if i:
                buf.append(b",")
            buf.append(e.body)
            size += len(e.body) + 1
            if size >= LIST_CHUNK:
                self.write_chunk(out(b"".join(buf)))
                buf, size = [], 0
        buf.append(b"]}")
        self.write_chunk(out(b"".join(buf)))
        if z:
            self.write_chunk(z.flush())
        self.end_chunked()

    # -- watch ---------------------------------------------------------------------

    def watch(self, res, flt, q):
        srv, store = self.server, self.server.store
        rv_param = q.get("resourceVersion", "")
        if rv_param not in ("", "0") and not rv_param.isdigit():
            raise ApiError(400, f"invalid resource version: {rv_param}")
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true")
        initial = q.get("sendInitialEvents") in ("1", "true")
        timeout = q.get("timeoutSeconds") or ""
        secs = int(timeout) if timeout.isdigit() and int(timeout) > 0 else srv.max_watch
        deadline = time.monotonic() + (secs or 1e12)
        w = Watch(res, flt, 0, bookmarks, self.connection)
        pending = []
        too_old = None
        with store.lock:
            store.watch_starts[res.plural] += 1
            if rv_param in ("", "0") or initial:
                w.last_rv = store.rv
                pending = [(b"ADDED", e) for e in store._select(res, flt)]
            else:
                w.last_rv = int(rv_param)
                wait_until = time.monotonic() + 3.0
                while w.last_rv > store.rv and time.monotonic() < wait_until:
                    store.cond.wait(wait_until - time.monotonic())
                if w.last_rv > store.rv:       # as the watch cache: 504 after ~3 s
                    raise ApiError(504, f"Too large resource version: {w.last_rv}, current: "
                                   f"{store.rv}", "Timeout",
                                   {"causes": [{"reason": "ResourceVersionTooLarge",
                                                "message": "Too large resource version"}],
                                    "retryAfterSeconds": 1})
                if w.last_rv < store.floor:
                    too_old = w.last_rv
            if too_old is None:
                store.watches.add(w)
        self.start_chunked()
        if too_old is not None:
            return self.send_too_old(too_old)
        self.close_connection = True      # set back to False only after a clean end
        srv.monitor.add(w)
        try:
            self.write_events(w, pending)
            if initial and bookmarks:
                self.write_chunk(self.bookmark(res, w.last_rv, True))
            self.watch_loop(w, deadline)
        except (OSError, ssl.SSLError):
            pass
        finally:
            srv.monitor.remove(w)
            with store.lock:
                store.watches.discard(w)
            if w.cut == "rst":
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                except OSError:
                    pass

    def send_too_old(self, rv):
        st = status_obj(410, f"too old resource version: {rv} ({self.server.store.floor})", "Expired")
        self.write_chunk(b'{"type":"ERROR","object":' + dumps(st) + b"}\n")
        self.end_chunked()
        self.close_connection = True

    def bookmark(self, res, rv, initial_end=False):
        ann = ',"annotations":{"k8s.io/initial-events-end":"true"}' if initial_end else ""
        return (b'{"type":"BOOKMARK","object":%s"metadata":{"resourceVersion":"%d",'
                b'"creationTimestamp":null%s}%s}}\n'
                % (res.head, rv, ann.encode(), res.empty_tail.encode()))

    def write_events(self, w, pending):
        """Sends pending [(type, entry)], applying garbage faults; a truncation raises."""
        store = self.server.store
        lines = []
        for typ, e in pending:
            line = b'{"type":"%s","object":%s}\n' % (typ, e.full())
            with store.lock:
                fault = store.take_fault("watch", w.res.plural)
                store.events_sent += 1
            if fault == "truncated":
                lines.append(line[:len(line) // 2])
                self.write_chunk(b"".join(lines))
                raise ConnectionAbortedError("truncated by fault injection")
            if fault:
                line = b'{"type":"%s","object":{"kind":"%s","metadata":{"name":"\xff\xfe\x00 garbage ' \
                       b'<<<]]}}},,\n' % (typ, w.res.kind.encode())
            lines.append(line)
            if len(lines) >= 64:
                self.write_chunk(b"".join(lines))
                lines = []
        self.write_chunk(b"".join(lines))

    def watch_loop(self, w, deadline):
        srv, store = self.server, self.server.store
        next_bm = time.monotonic() + srv.bookmark_interval
        while True:
            pending, bookmark = [], False
            with store.lock:
                while True:
                    if w.cut or w.peer_closed:
                        return
                    tnow = time.monotonic()
                    stalled = tnow < store.stall_until
                    if w.stopping or (tnow >= deadline and not stalled):
                        break
                    if stalled:
                        wake = store.stall_until
                    else:
                        if w.last_rv < store.floor:
                            pending = None       # events it needs fell out of the history
                            break
                        pending = self.collect(w)
                        if pending:
                            break
                        if w.bookmarks and (w.force_bm or tnow >= next_bm):
                            bookmark = True
                            break
                        wake = min(deadline, next_bm) if w.bookmarks else deadline
                    store.cond.wait(max(0.001, min(wake - tnow, 3600.0)))
                bm_rv = store.rv
                w.force_bm = False
            if pending is None:
                return self.send_too_old(w.last_rv)
            if pending:
                self.write_events(w, pending)
                continue
            if bookmark:
                next_bm = time.monotonic() + srv.bookmark_interval
                w.last_rv = max(w.last_rv, bm_rv)
                self.write_chunk(self.bookmark(w.res, bm_rv))
                continue
            if w.bookmarks and bm_rv > w.last_rv:
                self.write_chunk(self.bookmark(w.res, bm_rv))
            self.end_chunked()
            self.close_connection = False
            return

    def collect(self, w):
        """Events after w.last_rv for this watch, with selector transitions (lock held)."""
        evs = self.server.store.events
        out = []
        trivial = w.flt.trivial() and w.flt.ns is None
        for k in range(bisect.bisect_right(evs, w.last_rv, key=lambda e: e.rv), len(evs)):
            if len(out) >= 1024:
                break
            ev = evs[k]
            w.last_rv = ev.rv
            if ev.plural != w.res.plural:
                continue
            if trivial:
                out.append((ev.type.encode(), ev.entry))
                continue
            new_m = w.flt.match(ev.entry)
            old_m = ev.old is not None and w.flt.match(ev.old)
            if ev.type == "DELETED":
                if old_m:
                    out.append((b"DELETED", ev.entry))
            elif new_m:
                out.append((b"MODIFIED" if old_m else b"ADDED", ev.entry))
            elif old_m:
                out.append((b"DELETED", ev.entry))
        return out

    # -- control -------------------------------------------------------------------

    def control(self, op, q, body):
        srv, store = self.server, self.server.store
        if op == "stats" and self.command == "GET":
            return self.send_json(200, store.stats())
        if self.command != "POST":
            raise ApiError(405, "control operations are POST (stats is GET)", "MethodNotAllowed")
        if op in ("apply", "delete"):
            try:
                doc = json.loads(body or b"null")
            except ValueError as e:
                raise ApiError(400, f"body is not JSON: {e}")
        if op == "apply":
            objs = doc.get("items") if isinstance(doc, dict) and "items" in doc else doc
            objs = objs if isinstance(objs, list) else [objs]
            results = store.apply(objs)
            return self.send_json(200, {"applied": results, "resourceVersion": store.rv})
        if op == "delete":
            docs = doc if isinstance(doc, list) else [doc]
            out = []
            for d in docs:
                if not isinstance(d, dict):
                    raise ApiError(400, "delete takes {kind, namespace, name}")
                md = d.get("metadata") or {}
                out += store.delete(d.get("kind"), d.get("namespace", md.get("namespace")),
                                    d.get("name", md.get("name")))
            return self.send_json(200, {"deleted": out, "resourceVersion": store.rv})
        if op == "cut":
            mode = "rst" if q.get("mode") == "rst" else "fin"
            with store.lock:
                ws = [w for w in store.watches if q.get("resource") in (None, w.res.plural)]
                for w in ws:
                    w.cut = mode
                    if mode == "fin":
                        try:
                            socket.socket.shutdown(w.sock, socket.SHUT_RDWR)
                        except OSError:
                            pass
                store.cond.notify_all()
            return self.send_json(200, {"cut": len(ws)})
        if op == "stall":
            secs = float(q.get("seconds", "5"))
            with store.lock:
                store.stall_until = time.monotonic() + secs if secs > 0 else 0.0
                store.cond.notify_all()
            return self.send_json(200, {"stalled_for": max(secs, 0.0)})
        if op == "garbage":
            g = {"target": q.get("target", "watch"), "mode": q.get("mode", "invalid"),
                 "resource": q.get("resource"), "count": int(q.get("count", "1"))}
            if g["target"] not in ("watch", "list") or g["mode"] not in ("invalid", "truncated"):
                raise ApiError(400, "target is watch|list, mode is invalid|truncated")
            with store.lock:
                store.garbage.append(g)
            return self.send_json(200, {"armed": g})
        if op == "compact":
            return self.send_json(200, {"compacted_at": store.compact()})
        if op == "fail":
            code, count = int(q.get("code", "500")), int(q.get("count", "1"))
            with store.lock:
                store.fail_code, store.fail_count = code, count
                store.fail_resource = q.get("resource")
            return self.send_json(200, {"code": code, "count": count})
        if op == "bookmark":
            with store.lock:
                for w in store.watches:
                    w.force_bm = True
                store.cond.notify_all()
                n = sum(1 for w in store.watches if w.bookmarks)
            return self.send_json(200, {"watches": n})
        if op == "token":
            srv.tokens = [t for t in q.get("value", "").split(",") if t]
            return self.send_json(200, {"tokens": len(srv.tokens)})
        if op == "reset-stats":
            with store.lock:
                for c in (store.requests, store.codes, store.lists, store.watch_starts):
                    c.clear()
                store.events_sent = 0
            return self.send_json(200, {"ok": True})
        raise ApiError(404, f"unknown control operation {op!r}", "NotFound")


# ---------------------------------------------------------------------------
# Main

def load_fixture(store, path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    objs = doc.get("items", []) if isinstance(doc, dict) else doc
    store.apply(objs, record=False)
    with store.lock:
        store.floor = store.rv


def parse_listen(s):
    host, _, port = s.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"fake-apiserver: refusing to listen on non-loopback {host}")
    return host, int(port)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Kubernetes API server (see README.md)")
    ap.add_argument("--listen", default="127.0.0.1:0", help="loopback HOST:PORT (port 0 picks)")
    ap.add_argument("--token", action="append", default=[], help="accepted bearer token")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca", help="verify client certificates against this CA")
    ap.add_argument("--fixture", action="append", default=[], help="JSON List of objects")
    ap.add_argument("--generate", help="N_SERVICES[:ENDPOINTS_PER] synthetic cluster")
    ap.add_argument("--gen-namespaces", type=int, default=0, help="default N/100 (min 1)")
    ap.add_argument("--gen-headless", type=float, default=0.25, help="headless ratio")
    ap.add_argument("--gen-pods", action="store_true", help="also one Pod per endpoint")
    ap.add_argument("--history", type=int, default=1000, help="watch history (events)")
    ap.add_argument("--bookmark-interval", type=float, default=60.0)
    ap.add_argument("--max-watch", type=float, default=0, help="close watches after S s")
    ap.add_argument("--continue-ttl", type=float, default=300.0)
    ap.add_argument("--max-chunk", type=int, default=0, help="split chunks to N bytes")
    ap.add_argument("--start-rv", type=int, default=1000)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    store = Store(args)
    for f in args.fixture:
        load_fixture(store, f)
    if args.generate:
        n, _, per = args.generate.partition(":")
        n, per = int(n), int(per or 0)
        nns = args.gen_namespaces or max(1, n // 100)
        took = generate(store, n, per, nns, args.gen_headless, args.gen_pods)
        print(f"fake-apiserver: generated {n} services x {per} endpoints in {nns} namespaces "
              f"in {took:.2f}s", file=sys.stderr)

    host, port = parse_listen(args.listen)
    Server.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    srv = Server((host, port), Handler)
    srv.store = store
    srv.monitor = PeerMonitor(store)
    srv.verbose = args.verbose
    srv.tokens = list(args.token)
    srv.client_ca = args.client_ca
    srv.bookmark_interval = args.bookmark_interval
    srv.max_watch = args.max_watch
    srv.max_chunk = args.max_chunk
    srv.tls_ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        ctx.set_alpn_protocols(["http/1.1"])
        if args.client_ca:
            ctx.load_verify_locations(args.client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        srv.tls_ctx = ctx

    port = srv.server_address[1]
    hp = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    srv.hostport = hp
    print(f"listening {'https' if srv.tls_ctx else 'http'}://{hp}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    t = threading.Thread(target=srv.serve_forever, name="accept", daemon=True)
    t.start()
    stop.wait()
    with store.lock:
        store.closing = True
        for w in store.watches:
            w.stopping = True
        store.cond.notify_all()
    srv.shutdown()
    srv.server_close()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:      # let watches write their final chunk
        with store.lock:
            if not store.watches:
                break
            store.cond.wait(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
