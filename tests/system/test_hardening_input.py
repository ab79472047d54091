"""Control plane hardening: request text and watch memory.

Input: whatever bytes a request carries in its path, query or headers, the
API server answers with valid JSON and stays up; text that is not valid
UTF-8 is a 400 naming the path segment, query parameter or header, and
nothing is stored. The requests are sent as raw HTTP over TLS with the
admin token, exactly as an attacker would.

Memory: the watch cache is bounded in bytes, each watch's unsent backlog
and all watches' backlogs together are bounded, stalled watchers are
ended while a healthy one receives every event, and an ended watcher
resumes from its last resourceVersion. These tests measure the release
build's resident memory (VmRSS), since that is what an operator sees.
"""
import json
import os
import socket
import subprocess
import threading
import time

import pytest

import conftest
from apiutil import Watch, call, configmap, path, snapshot
from conftest import DpfServer, dpfctl, kubectl, wait_for

CM = path("configmaps")
MiB = 1024 * 1024


# --------------------------------------------------------------------------
# raw HTTP helpers

def raw_request(srv, method, target, headers=None, body=b"", timeout=30):
    """Send one request with exactly these bytes in the request line and
    headers (values may be bytes); returns (status, headers, body)."""
    if isinstance(target, str):
        target = target.encode()
    if isinstance(body, str):
        body = body.encode()
    hdrs = {b"Host": b"127.0.0.1",
            b"Authorization": ("Bearer " + srv.token).encode(),
            b"Accept": b"application/json",
            b"Connection": b"close",
            b"Content-Length": str(len(body)).encode()}
    for k, v in (headers or {}).items():
        hdrs[k.encode() if isinstance(k, str) else k] = \
            v.encode() if isinstance(v, str) else v
    req = method.encode() + b" " + target + b" HTTP/1.1\r\n" + b"".join(
        k + b": " + v + b"\r\n" for k, v in hdrs.items()) + b"\r\n" + body
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout)
    sock = srv.ssl_context().wrap_socket(raw)
    try:
        sock.sendall(req)
        data = b""
        while True:
            try:
                d = sock.recv(65536)
            except (ConnectionResetError, OSError):
                break
            if not d:
                break
            data += d
    finally:
        sock.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines and lines[0].startswith(b"HTTP/1.1 "), \
        f"no HTTP response (server crashed?): {data[:200]!r}"
    status = int(lines[0].split()[1])
    out_hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        out_hdrs.setdefault(k.strip().lower().decode(), []).append(v.strip())
    if b"chunked" in b"".join(out_hdrs.get("transfer-encoding", [])):
        body, rest2 = b"", rest
        while rest2:
            size_line, _, rest2 = rest2.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body += rest2[:size]
            rest2 = rest2[size + 2:]
        rest = body
    return status, out_hdrs, rest


def status_of(body):
    """The Status object of an error body; fails unless the body is valid
    UTF-8 JSON (json.loads on bytes rejects anything else)."""
    st = json.loads(body)
    assert st["kind"] == "Status" and st["status"] == "Failure", st
    return st


def assert_alive(srv):
    assert srv.proc.poll() is None, srv.log_text()[-3000:]
    st, _ = call(srv, "GET", CM)
    assert st == 200


def all_configmaps(srv):
    st, lst = call(srv, "GET", path("configmaps", ns=None))
    assert st == 200
    return [(i["metadata"].get("namespace"), i["metadata"]["name"])
            for i in lst["items"]]


# --------------------------------------------------------------------------
# request text

@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_invalid_utf8_name_is_400_and_server_survives(dpf_server, method):
    s = dpf_server
    body = json.dumps(configmap("x")) if method == "PUT" else \
        ("{}" if method == "PATCH" else "")
    ctype = {"PUT": "application/json",
             "PATCH": "application/merge-patch+json"}.get(method)
    st, _, data = raw_request(s, method, CM + "/%ff",
                              {"Content-Type": ctype} if ctype else None, body)
    assert st == 400, data
    status = status_of(data)
    assert status["reason"] == "BadRequest" and status["code"] == 400
    assert "path segment 6" in status["message"]
    assert "not valid UTF-8" in status["message"]
    assert_alive(s)


def test_raw_non_utf8_bytes_in_request_line(dpf_server):
    s = dpf_server
    st, _, data = raw_request(s, "GET", CM.encode() + b"/a\xff\xfeb")
    assert st == 400, data
    if data:  # the HTTP layer may refuse the line before the API server
        assert "not valid UTF-8" in status_of(data)["message"]
    assert_alive(s)


def test_dpfctl_and_kubectl_get_invalid_name(dpf_server):
    s = dpf_server
    r = subprocess.run([conftest.binary("dpfctl", "dpfctl"), "--kubeconfig",
                        s.kubeconfig, "get", "configmap", b"\xff"],
                       capture_output=True, timeout=60)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode != 0
    assert "BadRequest" in err and "not valid UTF-8" in err, err
    assert_alive(s)
    r = subprocess.run([conftest.KUBECTL["1.32"], "--kubeconfig", s.kubeconfig,
                        "get", "configmap", b"\xff"],
                       capture_output=True, timeout=60)
    assert r.returncode != 0
    assert "not valid UTF-8" in r.stderr.decode("utf-8", "replace")
    assert_alive(s)


def test_invalid_utf8_namespace_stores_nothing(dpf_server):
    s = dpf_server
    before = snapshot(s)
    st, _, data = raw_request(
        s, "POST", "/api/v1/namespaces/%ff/configmaps",
        {"Content-Type": "application/json"},
        json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "nsless"}, "data": {"a": "b"}}))
    assert st == 400, data
    status = status_of(data)
    assert status["reason"] == "BadRequest"
    assert "path segment 4" in status["message"]
    assert snapshot(s) == before
    assert not [c for c in all_configmaps(s) if c[1] == "nsless"]
    # the same with a valid namespace works, so the 400 was the namespace
    st, _, data = raw_request(
        s, "POST", CM, {"Content-Type": "application/json"},
        json.dumps(configmap("nsless")))
    assert st == 201, data


QUERY_PARAMS = ["labelSelector", "fieldSelector", "continue", "limit",
                "resourceVersion", "timeoutSeconds", "fieldValidation",
                "dryRun", "propagationPolicy", "includeObject"]


@pytest.mark.parametrize("param", QUERY_PARAMS)
def test_invalid_utf8_query_parameter(dpf_server, param):
    s = dpf_server
    assert call(s, "POST", CM, configmap("keep", labels={"a": "b"}))[0] == 201
    before = snapshot(s)
    for method, target in (("GET", CM), ("GET", CM + "?watch=1"),
                           ("DELETE", CM)):
        sep = "&" if "?" in target else "?"
        st, _, data = raw_request(s, method, f"{target}{sep}{param}=x%ff%c3")
        assert st == 400, (method, target, data)
        status = status_of(data)
        assert status["reason"] == "BadRequest"
        assert f"query parameter {param}" in status["message"]
    assert snapshot(s) == before
    assert_alive(s)


@pytest.mark.parametrize("header", ["Content-Type", "Accept"])
def test_invalid_utf8_header(dpf_server, header):
    s = dpf_server
    before = snapshot(s)
    st, _, data = raw_request(s, "POST", CM, {header: b"application/json\xff"},
                              json.dumps(configmap("hdr")))
    assert st == 400, data
    status = status_of(data)
    assert f"{header} header" in status["message"]
    assert snapshot(s) == before
    assert_alive(s)


def test_long_multibyte_name_and_kind(dpf_server):
    s = dpf_server
    for n in (300, 500, 1000):
        name = "\u00e9" * n
        enc = "%C3%A9" * n
        # get: a clean 404 naming the resource, valid JSON however long
        st, _, data = raw_request(s, "GET", f"{CM}/{enc}")
        assert st == 404, data[:300]
        status = status_of(data)
        assert status["message"].startswith('configmaps "\u00e9\u00e9')
        assert status["details"]["kind"] == "configmaps"
        assert set(status["details"]["name"]) == {"\u00e9"}
        # an odd byte in front shifts every cut by one
        st, _, data = raw_request(s, "GET", f"{CM}/x{enc}")
        assert st == 404 and status_of(data)["code"] == 404
        # create with that name: 422 naming metadata.name
        st, _, data = raw_request(s, "POST", CM,
                                  {"Content-Type": "application/json"},
                                  json.dumps(configmap(name)))
        assert st == 422, data[:300]
        status = status_of(data)
        assert status["reason"] == "Invalid"
        assert "metadata.name" in [c["field"] for c in
                                   status["details"]["causes"]]
        # a long multibyte kind: 400 quoting it, cut between characters
        for prefix in ("", "x"):
            body = {"apiVersion": "v1", "kind": prefix + name,
                    "metadata": {"name": "k"}}
            st, _, data = raw_request(s, "POST", CM,
                                      {"Content-Type": "application/json"},
                                      json.dumps(body, ensure_ascii=False))
            assert st == 400, data[:300]
            status = status_of(data)
            assert "the kind in the data" in status["message"]
        # and in a label selector (valid UTF-8, but not a label)
        st, _, data = raw_request(s, "GET", f"{CM}?labelSelector=x{enc}")
        assert st == 400 and status_of(data)["reason"] == "BadRequest"
    assert not [c for c in all_configmaps(s) if c[1] == "k"]
    assert_alive(s)


def test_strict_catches_long_multibyte_unknown_field(dpf_server):
    """A field path longer than the validator's buffer used to be cut in
    the middle of a character, lost, and so let through under Strict."""
    s = dpf_server
    before = snapshot(s)
    # 511 bytes of path buffer: 255 characters and half of the next
    body = dict(configmap("strict-long"), **{"\u00e9" * 600: 1})
    st, _, data = raw_request(s, "POST", CM + "?fieldValidation=Strict",
                              {"Content-Type": "application/json"},
                              json.dumps(body, ensure_ascii=False))
    assert st == 400, data[:300]
    status = status_of(data)
    assert 'unknown field "\u00e9\u00e9' in status["message"]
    assert snapshot(s) == before


def test_warning_header_cannot_inject(dpf_server):
    s = dpf_server
    body = dict(configmap("warned"), **{"bogus\r\nX-Injected: 1": 1,
                                         "q\"\\": 2, "\u00e9" * 400: 3})
    st, hdrs, data = raw_request(s, "POST", CM + "?fieldValidation=Warn",
                                 {"Content-Type": "application/json"},
                                 json.dumps(body, ensure_ascii=False))
    assert st == 201, data[:300]
    assert "x-injected" not in hdrs
    warnings = [w.decode("utf-8") for w in hdrs["warning"]]
    assert len(warnings) == 3
    assert any("bogus??X-Injected: 1" in w for w in warnings)
    assert any('q\\\\\\"\\\\\\\\' in w for w in warnings)
    assert any(w.endswith('...\\""') for w in warnings)


# --------------------------------------------------------------------------
# watch memory (release build)

def release_server(tmp_path, monkeypatch, args):
    """A dpf-server from DPF_BUILD_RELEASE (realistic RSS)."""
    monkeypatch.setattr(conftest, "BUILD", conftest.BUILD_RELEASE)
    data = tmp_path / "state"
    data.mkdir()
    srv = DpfServer(str(data), extra_args=args)
    srv.start()
    return srv


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Updater:
    """PUTs a ~900 KB ConfigMap over one connection."""

    def __init__(self, srv, name="big", size=900_000):
        self.srv, self.name, self.blob = srv, name, "x" * size
        self.conn = srv.connection(timeout=60)
        self.rvs = []

    def put(self, i):
        body = json.dumps(configmap(self.name, data={"d": self.blob + str(i)}))
        self.conn.request("PUT", path("configmaps", self.name), body=body,
                          headers={"Content-Type": "application/json",
                                   "Authorization": "Bearer " + self.srv.token})
        resp = self.conn.getresponse()
        data = resp.read()
        assert resp.status == 200, data[:300]
        self.rvs.append(int(json.loads(data)["metadata"]["resourceVersion"]))

    def close(self):
        self.conn.close()


def test_watch_cache_is_bounded_in_bytes(tmp_path, monkeypatch):
    cache = 32 * MiB
    srv = release_server(tmp_path, monkeypatch,
                         ["--watch-cache-bytes", "32Mi"])
    try:
        st, o = call(srv, "POST", CM, configmap("big", data={"d": "0"}))
        assert st == 201
        first_rv = int(o["metadata"]["resourceVersion"])
        base = rss_mib(srv.pid)
        up = Updater(srv)
        peak = 0
        for i in range(300):
            up.put(i)
            if i % 10 == 0:
                peak = max(peak, rss_mib(srv.pid))
        peak = max(peak, rss_mib(srv.pid))
        up.close()
        # Without the byte bound the ring kept all 300 events (~270 MiB).
        # Allowed: the cache, plus slack for SQLite's page caches, request
        # buffers and allocator overhead.
        bound = base + cache / MiB + 48
        print(f"watch cache: RSS {base:.0f} -> peak {peak:.0f} MiB "
              f"(bound {bound:.0f})")
        assert peak < bound, (base, peak, bound)
        # oldest events went first: a resume from the start is 410 ...
        w = Watch(srv, CM + f"?watch=1&resourceVersion={first_rv}")
        ev = w.events_until(lambda e: len(e) >= 1, timeout=20)[0]
        assert ev["type"] == "ERROR" and ev["object"]["code"] == 410
        w.close()
        # ... and a resume from a recent revision delivers what follows
        w = Watch(srv, CM + f"?watch=1&resourceVersion={up.rvs[-6]}")
        evs = w.events_until(lambda e: len(e) >= 5, timeout=20)
        assert [int(e["object"]["metadata"]["resourceVersion"])
                for e in evs] == up.rvs[-5:]
        w.close()
    finally:
        assert srv.stop() == 0


class StalledWatch:
    """A watch request whose client never reads (small receive buffer so
    the kernel does not absorb megabytes on its behalf)."""

    def __init__(self, srv, target):
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        raw.settimeout(30)
        raw.connect(("127.0.0.1", srv.port))
        self.sock = srv.ssl_context().wrap_socket(raw)
        self.sock.sendall(
            (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             f"Authorization: Bearer {srv.token}\r\n"
             "Accept: application/json\r\n\r\n").encode())

    def local_port(self):
        return self.sock.getsockname()[1]

    def drain(self, timeout=30):
        """Read what the server sent; (events, ended). ended is True when
        the server closed the connection within the timeout."""
        pieces, ended = [], False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                d = self.sock.recv(1 << 20)
            except socket.timeout:
                break
            except OSError:  # reset, or TLS EOF without close_notify
                ended = True
                break
            if not d:
                ended = True
                break
            pieces.append(d)
        self.sock.close()
        _, _, body = b"".join(pieces).partition(b"\r\n\r\n")
        chunks, at = [], 0
        while at < len(body):
            eol = body.find(b"\r\n", at)
            if eol < 0:
                break
            try:
                size = int(body[at:eol].split(b";")[0], 16)
            except ValueError:
                break
            if size == 0:
                break
            chunks.append(body[eol + 2:eol + 2 + size])
            at = eol + 2 + size + 2
        payload = b"".join(chunks)
        events = []
        for line in payload.split(b"\n")[:-1]:  # last piece may be cut
            events.append(json.loads(line))
        return events, ended


def server_side_open(port, peer_ports):
    """Peer ports of connections to the server's port that the server still
    has ESTABLISHED (from /proc/net/tcp{,6}: a server that ended a stream
    shuts its socket down, leaving ESTABLISHED at once, whether or not the
    client reads)."""
    still = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, remote, state = fields[1], fields[2], fields[3]
                if state != "01":
                    continue
                lport = int(local.rsplit(":", 1)[1], 16)
                rport = int(remote.rsplit(":", 1)[1], 16)
                if lport == port and rport in peer_ports:
                    still.add(rport)
    return still


def test_stalled_watchers_are_ended_and_memory_stays_bounded(tmp_path,
                                                             monkeypatch):
    # The ring is charged each update's previous value too (selector
    # watches need it), so 128Mi holds as many of these updates as 64Mi
    # did before.
    cache, per_watch, total = 128 * MiB, 4 * MiB, 32 * MiB
    srv = release_server(tmp_path, monkeypatch, [
        "--watch-cache-bytes", "128Mi", "--watch-buffer-bytes", "4Mi",
        "--watch-buffer-total-bytes", "32Mi"])
    try:
        st, o = call(srv, "POST", CM, configmap("big", data={"d": "0"}))
        assert st == 201
        start_rv = o["metadata"]["resourceVersion"]
        target = CM + f"?watch=1&resourceVersion={start_rv}"
        healthy = Watch(srv, target, timeout=60)
        got, healthy_err = [], []

        def read_healthy():
            try:
                while True:
                    ev = healthy.next()
                    if ev is None:
                        return
                    got.append((ev["type"],
                                int(ev["object"]["metadata"]
                                    ["resourceVersion"])))
            except Exception as e:  # noqa: BLE001 - reported below
                healthy_err.append(e)
        reader = threading.Thread(target=read_healthy, daemon=True)
        reader.start()
        # They ask from start_rv, so they get every event whenever the
        # server gets to subscribing them.
        stalled = [StalledWatch(srv, target) for _ in range(30)]
        ports = {w.local_port() for w in stalled}
        assert server_side_open(srv.port, ports) == ports
        base = rss_mib(srv.pid)
        up = Updater(srv)
        peak = 0
        n = 60
        for i in range(n):
            up.put(i)
            peak = max(peak, rss_mib(srv.pid))
        up.close()
        # every event reached the healthy watcher, in order, once
        wait_for(lambda: len(got) >= n or healthy_err or
                 not reader.is_alive(), 60, what="healthy watcher events")
        assert not healthy_err, healthy_err
        assert len(got) == n, (got, srv.log_text()[-3000:])
        assert got == [("MODIFIED", rv) for rv in up.rvs]
        assert reader.is_alive()  # its stream is still open
        # Without the budgets each stalled watch held up to 16 MiB, and
        # nothing bounded their sum (30 stalled: ~+500 MiB).
        bound = base + (cache + total + per_watch) / MiB + 48
        print(f"stalled watchers: RSS {base:.0f} -> peak {peak:.0f} MiB "
              f"(bound {bound:.0f})")
        assert peak < bound, (base, peak, bound)
        # The stalled watchers are ended (over the total, or after reading
        # nothing for 10 s) without anyone reading them: reading would
        # make them healthy again.
        wait_for(lambda: not server_side_open(srv.port, ports), 60,
                 what="the server to end the stalled watches")
        results = [w.drain() for w in stalled]
        assert all(ended for _, ended in results), \
            [len(e) for e, ended in results if not ended]
        assert all(len(evs) < n for evs, _ in results)
        assert "ending a watch" in srv.log_text() or \
            "ending a stalled watch" in srv.log_text()
        # a dropped watcher resumes from the last revision it saw and
        # gets exactly the rest
        evs, _ = max(results, key=lambda r: len(r[0]))
        last = evs[-1]["object"]["metadata"]["resourceVersion"] if evs \
            else start_rv
        rest = [rv for rv in up.rvs if rv > int(last)]
        w = Watch(srv, CM + f"?watch=1&resourceVersion={last}")
        evs2 = w.events_until(lambda e: len(e) >= len(rest), timeout=30)
        assert [(e["type"], int(e["object"]["metadata"]["resourceVersion"]))
                for e in evs2] == [("MODIFIED", rv) for rv in rest]
        w.close()
        healthy.close()
    finally:
        assert srv.stop() == 0


def test_initial_events_over_budget_are_410(tmp_path, monkeypatch):
    srv = release_server(tmp_path, monkeypatch, [
        "--watch-buffer-bytes", "2Mi", "--watch-buffer-total-bytes", "8Mi"])
    try:
        for i in range(4):
            st, _ = call(srv, "POST", CM,
                         configmap(f"init{i}", data={"d": "y" * 900_000}))
            assert st == 201
        # no resourceVersion: the initial state (3.6 MB) exceeds the budget
        w = Watch(srv, CM + "?watch=1")
        evs = w.events_until(lambda e: False, timeout=20)
        assert w.closed
        assert [e["type"] for e in evs] == ["ERROR"]
        assert evs[0]["object"]["code"] == 410
        assert "--watch-buffer-bytes" in evs[0]["object"]["message"]
        w.close()
        # what a client does next: list, then watch from the list
        st, lst = call(srv, "GET", CM)
        assert st == 200 and len(lst["items"]) == 4
        rv = lst["metadata"]["resourceVersion"]
        w = Watch(srv, CM + f"?watch=1&resourceVersion={rv}")
        assert call(srv, "DELETE", path("configmaps", "init0"))[0] == 200
        evs = w.events_until(lambda e: len(e) >= 1, timeout=20)
        assert [(e["type"], e["object"]["metadata"]["name"])
                for e in evs] == [("DELETED", "init0")]
        w.close()
    finally:
        assert srv.stop() == 0
