"""dpf-server's HTTP layer under hostile clients, as those clients see it.

Connections: a flood of idle sockets (no TLS, no credentials) neither
locks out a client with credentials nor stays for minutes; long watches
are not cut by the short deadlines. TLS: 1.2 with ECDHE+AEAD suites or 1.3
only, as --tls-min-version / --tls-cipher-suites say. --insecure-dev stays
on loopback unless told otherwise. HTTP framing the server cannot trust is
answered at once (400/413/501), and a NUL inside the bearer token is no
login.
"""
import json
import os
import re
import resource
import select
import signal
import socket
import ssl
import subprocess
import time

import pytest

from apiutil import Watch, configmap, path
from conftest import DpfServer, binary, free_port, kubectl, wait_for

PROTECTED = "/api/v1/namespaces"


# ---------------------------------------------------------------- helpers

@pytest.fixture
def make_server(tmp_path):
    """Start dpf-servers with extra flags; all stopped (by PID) at the end."""
    started = []

    def start(*args):
        data = tmp_path / f"srv{len(started)}"
        data.mkdir()
        srv = DpfServer(str(data), extra_args=args)
        started.append(srv)
        return srv.start()
    yield start
    for srv in started:
        code = srv.stop()
        assert code in (0, -signal.SIGKILL, None), \
            f"dpf-server exited with {code}:\n{srv.log_text()[-3000:]}"


def tls_socket(srv, timeout=10):
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    return srv.ssl_context().wrap_socket(raw)


def read_response(sock, timeout=10):
    """(status, headers dict, body bytes) of one response; the body by
    Content-Length or until the server closes."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise EOFError(f"closed before a response: {buf!r}")
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    want = int(headers.get("content-length", -1))
    while want < 0 or len(body) < want:
        try:
            d = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not d:
            break
        body += d
    return status, headers, body


def raw_request(srv, head, body=b"", timeout=10):
    """Send bytes as they are over TLS; returns (status, headers, body,
    seconds until the answer)."""
    with tls_socket(srv, timeout) as s:
        t0 = time.monotonic()
        s.sendall(head + body)
        status, headers, data = read_response(s, timeout)
        return status, headers, data, time.monotonic() - t0


def auth_head(srv, method, p, extra=""):
    return (f"{method} {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {srv.token}\r\n{extra}\r\n").encode()


def assert_status(body, code, reason):
    st = json.loads(body)
    assert st["kind"] == "Status" and st["code"] == code, st
    assert st["reason"] == reason, st
    return st


def s_client(srv, *args):
    """openssl s_client against the server: (handshake ok, version, cipher,
    output)."""
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}",
         "-CAfile", srv.ca, "-servername", "localhost"] + list(args),
        input="", capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    m = re.search(r"^New, (\S+), Cipher is (\S+)", out, re.M)
    version, cipher = (m.group(1), m.group(2)) if m else (None, None)
    ok = cipher not in (None, "(NONE)") and \
        "Verify return code: 0 (ok)" in out
    return ok, version, cipher, out


def nofile_for(n):
    """Raise this process's open-file limit for n sockets (the test itself
    holds them)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 512
    if soft < want:
        assert hard == resource.RLIM_INFINITY or hard >= want, \
            f"hard open-file limit {hard} is below {want}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def server_closed(sock):
    """True if the server closed (or reset) this idle socket. Reads what
    is there: a TLS alert may come before the end of the stream."""
    sock.setblocking(False)
    try:
        while True:
            if sock.recv(4096) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def kubectl_timed(srv, cache):
    """kubectl get ns -v=6 with a warm discovery cache: (result, slowest
    request in ms as kubectl measured it)."""
    r = kubectl(["get", "ns", "-o", "name", "-v=6"], srv.kubeconfig,
                cache_dir=cache, timeout=60)
    ms = [int(x) for x in re.findall(r" in (\d+) milliseconds", r.stderr)]
    return r, ms


# ---------------------------------------------------------------- connections

FLOOD = 5000


def test_idle_flood_does_not_lock_out_authenticated_clients(make_server,
                                                           tmp_path):
    # A long header deadline, so that only eviction makes room here.
    srv = make_server("--request-header-timeout", "600")
    cache = str(tmp_path / "kcache")
    r, _ = kubectl_timed(srv, cache)  # warm the discovery cache
    assert r.returncode == 0, r.stderr

    nofile_for(FLOOD)
    flood = []
    try:
        for _ in range(FLOOD):
            flood.append(socket.create_connection(("127.0.0.1", srv.port),
                                                  timeout=30))
        t0 = time.monotonic()
        r, ms = kubectl_timed(srv, cache)
        wall = time.monotonic() - t0
        assert r.returncode == 0, r.stderr[-3000:]
        assert "namespace/default" in r.stdout.split()
        assert ms, r.stderr[-2000:]
        # The answer came within a second of asking (kubectl's own
        # per-request timing; process start-up is not the server's).
        assert max(ms) < 1000, (ms, wall)
        # The flood is held: the server closed only what it had to (the
        # oldest unauthenticated sockets beyond --max-connections).
        closed = sum(server_closed(s) for s in flood)
        print(f"flood={FLOOD} kubectl_ms={ms} wall={wall:.2f}s "
              f"closed_by_server={closed}")
        assert FLOOD - 4096 - 50 <= closed <= FLOOD - 4096 + 200, closed
        assert all(not server_closed(s) for s in flood[-1000:])
    finally:
        for s in flood:
            s.close()


def test_idle_pre_tls_sockets_are_closed_at_the_handshake_deadline(
        make_server):
    dpf_server = make_server()
    # Defaults: 10 s to finish the handshake and send the headers, counted
    # from the connect, whatever the client trickles meanwhile.
    idle = socket.create_connection(("127.0.0.1", dpf_server.port))
    trickle = socket.create_connection(("127.0.0.1", dpf_server.port))
    t0 = time.monotonic()
    closed_at = {}
    # A TLS record header, one byte a second: never a whole ClientHello.
    hello = b"\x16\x03\x01\x02\x00" + b"\x01" * 40
    i = 0
    while len(closed_at) < 2 and time.monotonic() - t0 < 60:
        for name, s in (("idle", idle), ("trickle", trickle)):
            if name not in closed_at and server_closed(s):
                closed_at[name] = time.monotonic() - t0
        if "trickle" not in closed_at and i < len(hello):
            try:
                trickle.setblocking(True)
                trickle.send(hello[i:i + 1])
                i += 1
            except OSError:
                closed_at["trickle"] = time.monotonic() - t0
        time.sleep(1)
    idle.close()
    trickle.close()
    assert set(closed_at) == {"idle", "trickle"}, \
        (closed_at, dpf_server.log_text()[-6000:])
    print(f"closed after (s): {closed_at}")
    for name, t in closed_at.items():
        assert 8 <= t <= 30, (name, t)


def test_watch_outlives_header_and_idle_timeouts(make_server):
    srv = make_server("--request-header-timeout", "2", "--idle-timeout", "3")
    w = Watch(srv, path("configmaps") + "?watch=1")
    try:
        assert w.status == 200
        time.sleep(8)  # well past both timeouts, no event meanwhile
        st, body = srv.json("POST", path("configmaps"),
                            configmap("after-quiet"))
        assert st == 201, body
        evs = w.events_until(
            lambda e: any(x["object"]["metadata"]["name"] == "after-quiet"
                          for x in e), timeout=20)
        assert evs[-1]["type"] == "ADDED"
    finally:
        w.close()


def test_connection_flags_are_validated():
    exe = binary("dpf-server", "dpf-server")
    for args, word in ((["--max-connections", "5"], "--max-connections"),
                       (["--request-header-timeout", "0"],
                        "--request-header-timeout"),
                       (["--idle-timeout", "x"], "--idle-timeout"),
                       (["--connection-memory", "1Ki"], "--connection-memory"),
                       (["--connection-memory", "2Mi"], "--connection-memory"),
                       (["--connection-memory", "8Kx"],
                        "--connection-memory")):
        r = subprocess.run([exe] + args, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2, r
        assert word in r.stderr
    r = subprocess.run([exe, "--help"], capture_output=True, text=True,
                       timeout=30)
    for flag in ("--max-connections", "--request-header-timeout",
                 "--idle-timeout", "--connection-memory", "--tls-min-version",
                 "--tls-cipher-suites"):
        assert flag in r.stdout


def test_connection_memory_bounds_request_heads(make_server):
    """--connection-memory: heads that fit are served, a longer one gets
    431 (not a reset or a hang), and answers far larger than the buffer
    stream through it intact."""
    small = make_server("--connection-memory", "8Ki")
    default = make_server()
    for i in range(40):
        st, _ = small.json("POST", path("configmaps"),
                           configmap(f"big-{i}", {"v": "x" * 2000}))
        assert st == 201
    for srv, fits, too_long in ((small, 4000, 9000),
                                (default, 10000, 20000)):
        pad = f"X-Pad: {'p' * fits}\r\n"
        st, _, body, _ = raw_request(srv, auth_head(srv, "GET",
                                                    path("configmaps"), pad))
        assert st == 200, body[:300]
        pad = f"X-Pad: {'p' * too_long}\r\n"
        st, _, body, _ = raw_request(srv, auth_head(srv, "GET",
                                                    path("configmaps"), pad))
        assert st == 431, body[:300]
    # an answer of ~80 KB through 8 KiB buffers, whole
    st, lst = small.json("GET", path("configmaps"))
    assert st == 200
    names = sorted(o["metadata"]["name"] for o in lst["items"])
    assert names == sorted(f"big-{i}" for i in range(40))
    assert all(o["data"]["v"] == "x" * 2000 for o in lst["items"])


# ---------------------------------------------------------------- TLS

def test_tls_10_and_11_are_refused(dpf_server):
    # SECLEVEL=0 lets the client itself offer the old versions.
    for flag in ("-tls1", "-tls1_1"):
        ok, _, cipher, out = s_client(dpf_server, flag,
                                      "-cipher", "DEFAULT@SECLEVEL=0")
        assert not ok, out
        assert cipher in (None, "(NONE)"), out


def test_tls12_offers_only_ecdhe_aead_suites(dpf_server):
    for cipher in ("AES128-SHA", "ECDHE-RSA-AES128-SHA",
                   "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384",
                   "AES128-GCM-SHA256"):
        ok, _, _, out = s_client(dpf_server, "-tls1_2", "-cipher", cipher)
        assert not ok, (cipher, out)
    for cipher in ("ECDHE-ECDSA-AES128-GCM-SHA256",
                   "ECDHE-ECDSA-AES256-GCM-SHA384",
                   "ECDHE-ECDSA-CHACHA20-POLY1305"):
        ok, version, got, out = s_client(dpf_server, "-tls1_2",
                                         "-cipher", cipher)
        assert ok, (cipher, out)
        assert (version, got) == ("TLSv1.2", cipher)


def test_tls13_is_accepted_and_preferred(dpf_server):
    ok, version, _, out = s_client(dpf_server, "-tls1_3")
    assert ok and version == "TLSv1.3", out
    ok, version, _, out = s_client(dpf_server)
    assert ok and version == "TLSv1.3", out


def test_tls_min_version_13_refuses_12(make_server):
    srv = make_server("--tls-min-version=VersionTLS13")
    ok, _, _, out = s_client(srv, "-tls1_2")
    assert not ok, out
    ok, version, _, out = s_client(srv, "-tls1_3")
    assert ok and version == "TLSv1.3", out
    r = kubectl(["get", "ns", "-o", "name"], srv.kubeconfig)
    assert r.returncode == 0, r.stderr


def test_tls_cipher_suites_limit_tls12(make_server):
    srv = make_server("--tls-cipher-suites",
                      "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,"
                      "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305")
    ok, _, _, out = s_client(srv, "-tls1_2", "-cipher",
                             "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert not ok, out
    ok, version, got, out = s_client(srv, "-tls1_2", "-cipher",
                                     "ECDHE-ECDSA-CHACHA20-POLY1305")
    assert ok and got == "ECDHE-ECDSA-CHACHA20-POLY1305", out


def test_tls_flags_refuse_insecure_and_unknown_values():
    exe = binary("dpf-server", "dpf-server")
    cases = [
        (["--tls-cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"],
         'insecure cipher suite "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"'),
        (["--tls-cipher-suites",
          "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_GCM_SHA256"],
         'insecure cipher suite "TLS_RSA_WITH_AES_128_GCM_SHA256"'),
        (["--tls-cipher-suites", "TLS_FANCY_NEW_SUITE"],
         'unknown cipher suite "TLS_FANCY_NEW_SUITE"'),
        (["--tls-min-version", "VersionTLS11"], '"VersionTLS11"'),
        (["--tls-min-version", "1.2"], '"1.2"'),
    ]
    for args, msg in cases:
        r = subprocess.run([exe] + args, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2, (args, r)
        assert msg in r.stderr, (args, r.stderr)


# ---------------------------------------------------------------- insecure-dev

def listening_addresses(port):
    """Local addresses (hex, as in /proc/net/tcp*) listening on port."""
    out = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            next(f)
            for line in f:
                fields = line.split()
                addr, p = fields[1].split(":")
                if int(p, 16) == port and fields[3] == "0A":  # LISTEN
                    out.append(addr)
    return out


def non_loopback_ipv4():
    r = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                       capture_output=True, text=True)
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", r.stdout)
    return m.group(1) if m else None


def start_insecure(tmp_path, name, *args):
    data = tmp_path / name
    port = free_port()
    log = tmp_path / f"{name}.log"
    f = open(log, "ab")
    proc = subprocess.Popen(
        [binary("dpf-server", "dpf-server"), "--data-dir", str(data),
         "--port", str(port), "--insecure-dev"] + list(args),
        stdout=f, stderr=f)
    f.close()
    wait_for(lambda: proc.poll() is None and listening_addresses(port), 30,
             what=f"{name} listening")
    return proc, port, log


def test_insecure_dev_binds_loopback_unless_told(tmp_path):
    proc, port, log = start_insecure(tmp_path, "dev")
    try:
        assert listening_addresses(port) == ["0100007F"]  # 127.0.0.1 only
        ip = non_loopback_ipv4()
        if ip:
            with pytest.raises(OSError):
                socket.create_connection((ip, port), timeout=5).close()
        assert "non-loopback" not in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0

    proc, port, log = start_insecure(tmp_path, "dev-any",
                                     "--bind-address", "0.0.0.0")
    try:
        assert listening_addresses(port) == ["00000000"]
        text = log.read_text()
        assert "INSECURE: --insecure-dev listens on a non-loopback address" \
            in text, text
        assert "address=0.0.0.0" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


# ---------------------------------------------------------------- framing

def test_nul_inside_the_bearer_token_is_401(dpf_server):
    p = "/api/v1/namespaces"
    ok = (f"GET {p} HTTP/1.1\r\nHost: x\r\n"
          f"Authorization: Bearer {dpf_server.token}\r\n\r\n").encode()
    st, _, _, _ = raw_request(dpf_server, ok)
    assert st == 200  # the same request without the NUL logs in
    for tail in (b"\x00junk", b"\x00", b"\x00 "):
        bad = (f"GET {p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
               f"{dpf_server.token}").encode() + tail + b"\r\n\r\n"
        st, _, body, _ = raw_request(dpf_server, bad)
        assert st == 401, (tail, body)
        assert_status(body, 401, "Unauthorized")
    # Also when another header follows the poisoned one.
    bad = (f"GET {p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
           f"{dpf_server.token}").encode() + b"\x00x\r\nAccept: */*\r\n\r\n"
    st, _, body, _ = raw_request(dpf_server, bad)
    assert st == 401, body


def test_two_content_lengths_are_400(dpf_server):
    p = path("configmaps")
    body = json.dumps(configmap("dup-cl")).encode()
    for extra in (f"Content-Length: {len(body)}\r\nContent-Length: 5\r\n",
                  f"Content-Length: {len(body)}\r\n"
                  f"Content-Length: {len(body)}\r\n"):
        head = auth_head(dpf_server, "POST", p,
                         "Content-Type: application/json\r\n" + extra)
        st, hdrs, data, secs = raw_request(dpf_server, head, body)
        assert st == 400, data
        assert_status(data, 400, "BadRequest")
        assert b"Content-Length" in data
        assert secs < 3
    st, _ = dpf_server.json("GET", path("configmaps", "dup-cl"))
    assert st == 404


def test_transfer_encoding_with_content_length_is_400(dpf_server):
    body = json.dumps(configmap("te-cl")).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = auth_head(dpf_server, "POST", path("configmaps"),
                     "Content-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n"
                     f"Content-Length: {len(chunked)}\r\n")
    st, _, data, secs = raw_request(dpf_server, head, chunked)
    assert st == 400, data
    assert_status(data, 400, "BadRequest")
    assert secs < 3
    st, _ = dpf_server.json("GET", path("configmaps", "te-cl"))
    assert st == 404


def test_unsupported_transfer_coding_is_501(dpf_server):
    head = auth_head(dpf_server, "POST", path("configmaps"),
                     "Content-Type: application/json\r\n"
                     "Transfer-Encoding: gzip, chunked\r\n")
    st, _, data, secs = raw_request(dpf_server, head, b"5\r\nhello\r\n0\r\n\r\n")
    assert st == 501, data
    st_body = assert_status(data, 501, "NotImplemented")
    assert "gzip" in st_body["message"]
    assert secs < 3
    # chunked not last: the length cannot be known at all.
    head = auth_head(dpf_server, "POST", path("configmaps"),
                     "Transfer-Encoding: chunked, gzip\r\n")
    st, _, data, secs = raw_request(dpf_server, head, b"5\r\nhello\r\n0\r\n\r\n")
    assert st == 400, data
    assert secs < 3


def test_huge_chunk_size_is_400_promptly(dpf_server):
    head = auth_head(dpf_server, "POST", path("configmaps"),
                     "Content-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n")
    st, _, data, secs = raw_request(
        dpf_server, head, b"ffffffffffffffff\r\n{}\r\n0\r\n\r\n")
    assert st == 400, data
    assert_status(data, 400, "BadRequest")
    print(f"16-digit chunk size answered in {secs:.2f}s")
    assert secs < 5, secs
    # One hex digit more overflows 64 bits: refused as well.
    st, _, data, secs = raw_request(
        dpf_server, head, b"fffffffffffffffff\r\n{}\r\n0\r\n\r\n")
    assert st in (400, 413), data
    assert secs < 5, secs


def test_100mb_chunked_body_gets_413(dpf_server):
    head = auth_head(dpf_server, "POST", path("configmaps"),
                     "Content-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n")
    piece = b"a" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    total = 100 * 1024 * 1024
    s = tls_socket(dpf_server, 30)
    try:
        s.sendall(head)
        s.setblocking(False)
        sent = 0
        pending = b""
        got = b""
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            want_write = sent < total or pending
            r, w, _ = select.select([s], [s] if want_write else [], [], 1)
            if r:
                try:
                    d = s.recv(65536)
                except ssl.SSLWantReadError:
                    d = None
                except (ConnectionResetError, ssl.SSLError):
                    break
                if d == b"":
                    break
                if d:
                    got += d
                    if b"\r\n\r\n" in got:
                        hdr, rest = got.split(b"\r\n\r\n", 1)
                        m = re.search(rb"content-length: (\d+)", hdr, re.I)
                        if m and len(rest) >= int(m.group(1)):
                            break
            if w and want_write:
                if not pending:
                    pending = chunk
                try:
                    n = s.send(pending)
                    pending = pending[n:]
                    if not pending:
                        sent += len(piece)
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    want_write = False
                    total = sent
    finally:
        s.close()
    assert got.startswith(b"HTTP/1.1 413 "), got[:300]
    hdr, body = got.split(b"\r\n\r\n", 1)
    assert b"connection: close" in hdr.lower()
    assert_status(body, 413, "RequestEntityTooLarge")
    # Answered long before the client was done: the server does not read
    # 100 MB to say no.
    print(f"413 after {sent} bytes sent")
    assert sent < 50 * 1024 * 1024, sent


def test_unauthenticated_body_is_refused_before_upload(dpf_server):
    # No credentials, a 50 MB body announced: the 401 comes at once,
    # without the server waiting for (or reading) the body.
    head = (f"POST {path('configmaps')} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {50 * 1024 * 1024}\r\n\r\n").encode()
    st, hdrs, data, secs = raw_request(dpf_server, head)
    assert st == 401, data
    assert_status(data, 401, "Unauthorized")
    assert secs < 3
    # Without a body the connection stays usable after the 401.
    with tls_socket(dpf_server) as s:
        s.sendall(f"GET {PROTECTED} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        st, hdrs, _ = read_response(s)
        assert st == 401
        assert hdrs.get("connection", "").lower() != "close"
        s.sendall(auth_head(dpf_server, "GET", PROTECTED))
        st, _, body = read_response(s)
        assert st == 200, body


def test_stalled_body_gets_408(make_server):
    srv = make_server("--idle-timeout", "2")
    head = auth_head(srv, "POST", path("configmaps"),
                     "Content-Type: application/json\r\n"
                     "Content-Length: 100\r\n")
    st, _, data, secs = raw_request(srv, head, b'{"kind":', timeout=30)
    assert st == 408, data
    assert_status(data, 408, "Timeout")
    assert 1.5 <= secs < 15, secs
