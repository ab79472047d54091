"""Helpers for the API server system tests (test_api_*.py).

Thin wrappers over the dpf_server fixture's request(): URL builders, JSON
calls that return (status, body), object factories for the kinds the tests
use, a raw watch reader, and a store snapshot for "nothing changed"
assertions.
"""
import json
import socket
import ssl
import time

PROV = "provisioning.dpu.nvidia.com"
SVC = "svc.dpu.nvidia.com"
V = "v1alpha1"


def path(plural, name=None, ns="default", group="", version=None, sub=None):
    """REST path of a collection or object ("" group = core)."""
    if group:
        base = f"/apis/{group}/{version or V}"
    else:
        base = f"/api/{version or 'v1'}"
    p = base + (f"/namespaces/{ns}" if ns else "") + f"/{plural}"
    if name:
        p += f"/{name}"
    if sub:
        p += f"/{sub}"
    return p


def call(srv, method, p, body=None, ctype=None, headers=None):
    """One request; returns (status, decoded JSON or raw bytes)."""
    hdrs = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", ctype or "application/json")
    elif ctype:
        hdrs["Content-Type"] = ctype
    status, _, data = srv.request(method, p, body, hdrs)
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, data


def configmap(name, data=None, ns="default", **meta):
    md = {"name": name, "namespace": ns}
    md.update(meta)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md,
            "data": data or {"k": "v"}}


def bfb(name, url=None, ns="default", **meta):
    md = {"name": name, "namespace": ns}
    md.update(meta)
    return {"apiVersion": f"{PROV}/{V}", "kind": "BFB", "metadata": md,
            "spec": {"url": url or f"http://example.com/{name}.bfb"}}


def dpu(name, node="host-1", bfb_name="bf-1", ns="default", **spec):
    s = {"nodeName": node, "bfb": bfb_name}
    s.update(spec)
    return {"apiVersion": f"{PROV}/{V}", "kind": "DPU",
            "metadata": {"name": name, "namespace": ns}, "spec": s}


def pod(name, node=None, ns="default", labels=None):
    spec = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
    if node:
        spec["nodeName"] = node
    md = {"name": name, "namespace": ns}
    if labels:
        md["labels"] = labels
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec}


def causes(status_body):
    """Field paths named in a Status object's causes."""
    det = (status_body or {}).get("details") or {}
    return [c.get("field", "") for c in det.get("causes") or []]


def snapshot(srv, plurals=(("", "configmaps"), (PROV, "bfbs"),
                           (PROV, "dpus"))):
    """(name, resourceVersion) of every object of some kinds, all
    namespaces, plus the namespace list: equal snapshots mean the store
    did not change."""
    out = {}
    for group, plural in plurals + (("", "namespaces"),):
        st, body = call(srv, "GET", path(plural, ns=None, group=group))
        assert st == 200, body
        out[plural] = sorted((i["metadata"].get("namespace", ""),
                              i["metadata"]["name"],
                              i["metadata"]["resourceVersion"])
                             for i in body["items"])
    return out


class Watch:
    """A raw HTTPS watch stream: read newline-delimited JSON events."""

    def __init__(self, srv, p, timeout=30, headers=None):
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout)
        self.sock = srv.ssl_context().wrap_socket(raw)
        hdrs = {"Host": "127.0.0.1", "Accept": "application/json",
                "Authorization": "Bearer " + srv.token}
        hdrs.update(headers or {})
        req = f"GET {p} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        self.sock.sendall(req.encode())
        self.buf = b""
        self.pending = b""  # de-chunked bytes not yet split into lines
        self.closed = False
        head = self._until(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode()
        self.status = int(status_line.split()[1])
        self.chunked = b"chunked" in head.lower()

    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLError, OSError):
            raise
        if not d:
            self.closed = True
        self.buf += d
        return bool(d)

    def _until(self, sep):
        while sep not in self.buf:
            if not self._fill():
                raise EOFError("stream closed")
        i = self.buf.index(sep)
        out, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return out

    def _next_chunk(self):
        size = int(self._until(b"\r\n").split(b";")[0], 16)
        if size == 0:
            self.closed = True
            return False
        while len(self.buf) < size + 2:
            if not self._fill():
                raise EOFError("stream closed mid-chunk")
        self.pending += self.buf[:size]
        self.buf = self.buf[size + 2:]
        return True

    def next(self):
        """The next event as a dict; None when the server ended the
        stream. Raises socket.timeout if nothing arrives in time."""
        while b"\n" not in self.pending:
            if self.closed:
                return None
            try:
                if not self._next_chunk():
                    return None
            except EOFError:
                return None
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def events_until(self, pred, timeout=20, partial=False):
        """Collect events until pred(events) is true; on timeout raise, or
        return what arrived when partial is set."""
        out = []
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        while not pred(out):
            left = deadline - time.monotonic()
            if left <= 0:
                if partial:
                    return out
                raise TimeoutError(f"watch: {len(out)} events: {out[-3:]}")
            self.sock.settimeout(left)
            try:
                ev = self.next()
            except (socket.timeout, TimeoutError):
                if partial:
                    return out
                raise
            if ev is None:
                break
            out.append(ev)
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
