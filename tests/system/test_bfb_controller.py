"""The BFB controller, run in-process by dpf-server (--controllers=bfb).

A local HTTP server (Python's http.server on 127.0.0.1, in this process)
serves the BFB files. It can throttle (to kill dpf-server mid-download),
answer 404 for files it does not have yet, honours Range requests and
records every request's Range header.
"""
import hashlib
import http.client
import http.server
import json
import os
import socket
import stat
import subprocess
import threading
import time

import pytest

from conftest import DpfServer, binary, wait_for

PROV = "/apis/provisioning.dpu.nvidia.com/v1alpha1"
FINALIZER = "provisioning.dpu.nvidia.com/bfb-protection"


class Files:
    """What the HTTP server serves, and what it was asked."""

    def __init__(self):
        self.files = {}
        self.chunk = 1 << 20
        self.delay = 0.0
        self.ranges = []
        self.lock = threading.Lock()


def make_handler(files):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            with files.lock:
                data = files.files.get(self.path)
                files.ranges.append(self.headers.get("Range"))
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range",
                                 f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            try:
                for off in range(start, len(data), files.chunk):
                    self.wfile.write(data[off:off + files.chunk])
                    self.wfile.flush()
                    if files.delay:
                        time.sleep(files.delay)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@pytest.fixture
def web():
    files = Files()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            make_handler(files))
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    files.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield files
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server(tmp_path):
    data = tmp_path / "dpf-state"
    data.mkdir()
    srv = DpfServer(str(data), controllers="bfb")
    srv.bfb_dir = str(data / "bfb")
    srv.start()
    yield srv
    code = srv.stop()
    assert code in (0, None), srv.log_text()[-3000:]


def create_bfb(srv, name, url):
    srv.json("POST", f"{PROV}/namespaces/default/bfbs", {
        "apiVersion": "provisioning.dpu.nvidia.com/v1alpha1", "kind": "BFB",
        "metadata": {"name": name}, "spec": {"url": url}}, expect=201)


def get_bfb(srv, name):
    st, obj = srv.json("GET", f"{PROV}/namespaces/default/bfbs/{name}")
    return obj if st == 200 else None


def ready_cond(obj):
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == "Ready":
            return c
    return None


def events_for(srv, name):
    _, evs = srv.json("GET", "/api/v1/namespaces/default/events",
                      expect=200)
    return [e for e in evs["items"]
            if e["involvedObject"].get("name") == name]


def test_download_ready_sha256_redownload_and_delete(server, web):
    data = os.urandom(3 * 1024 * 1024 + 17)
    web.files["/images/bf-bundle.bfb"] = data
    create_bfb(server, "bf1", web.base + "/images/bf-bundle.bfb")
    obj = wait_for(lambda: (o := get_bfb(server, "bf1")) and
                   o.get("status", {}).get("phase") == "Ready" and o,
                   60, what="BFB Ready")
    st = obj["status"]
    assert st["sha256"] == hashlib.sha256(data).hexdigest()
    assert st["totalBytes"] == len(data)
    assert st["bytesDownloaded"] == len(data)
    assert st["downloadPercent"] == 100
    cond = ready_cond(obj)
    assert cond["status"] == "True" and cond["reason"] == "Downloaded"
    assert FINALIZER in obj["metadata"]["finalizers"]
    path = os.path.join(server.bfb_dir, "default-bf1.bfb")
    with open(path, "rb") as f:
        assert f.read() == data
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert any(e["reason"] == "SuccessfulDownload" and e["type"] == "Normal"
               for e in events_for(server, "bf1"))

    # The file disappears: the controller downloads it again.
    n_requests = len(web.ranges)
    os.unlink(path)
    wait_for(lambda: os.path.exists(path), 30, what="re-download")
    wait_for(lambda: len(web.ranges) > n_requests, 5, what="new GET")
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == st["sha256"]

    # Delete: the finalizer removes the file, then the object goes.
    server.json("DELETE", f"{PROV}/namespaces/default/bfbs/bf1", expect=200)
    wait_for(lambda: get_bfb(server, "bf1") is None, 30, what="BFB gone")
    assert not os.path.exists(path)
    assert [f for f in os.listdir(server.bfb_dir)] == []


def test_http_error_is_a_condition_and_recovers(server, web):
    create_bfb(server, "late", web.base + "/late.bfb")
    obj = wait_for(lambda: (o := get_bfb(server, "late")) and
                   (c := ready_cond(o)) and c["reason"] == "HTTPError" and o,
                   60, what="HTTPError condition")
    cond = ready_cond(obj)
    assert cond["status"] == "False"
    assert "HTTP 404" in cond["message"] and "/late.bfb" in cond["message"]
    assert "retrying in" in cond["message"]
    # Not terminal: the phase stays Downloading (DPF would say Error).
    assert obj["status"]["phase"] == "Downloading"
    assert any(e["reason"] == "FailedDownload" and e["type"] == "Warning" and
               "HTTP 404" in e["message"]
               for e in events_for(server, "late"))
    generation = obj["metadata"]["generation"]
    # The URL starts working; nobody touches the object.
    data = os.urandom(256 * 1024)
    web.files["/late.bfb"] = data
    obj = wait_for(lambda: (o := get_bfb(server, "late")) and
                   o["status"].get("phase") == "Ready" and o,
                   60, what="recovery")
    assert obj["status"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert obj["metadata"]["generation"] == generation
    assert ready_cond(obj)["reason"] == "Downloaded"


def test_resume_after_sigkill_mid_download(server, web):
    data = os.urandom(6 * 1024 * 1024)
    web.chunk = 64 * 1024
    web.delay = 0.05   # ~1.3 MB/s: the download takes several seconds
    web.files["/slow.bfb"] = data
    create_bfb(server, "slow", web.base + "/slow.bfb")
    # Progress shows in status while it downloads.
    obj = wait_for(lambda: (o := get_bfb(server, "slow")) and
                   o.get("status", {}).get("bytesDownloaded", 0) > 0 and
                   o["status"].get("phase") == "Downloading" and o,
                   60, interval=0.2, what="progress in status")
    st = obj["status"]
    assert st["totalBytes"] == len(data)
    assert 0 < st["bytesDownloaded"] < len(data)
    assert 0 <= st["downloadPercent"] < 100
    assert ready_cond(obj)["reason"] == "Downloading"
    server.kill()
    uid = obj["metadata"]["uid"]
    part = os.path.join(server.bfb_dir, f".{uid}.part")
    have = os.path.getsize(part)
    assert 0 < have < len(data)
    assert not os.path.exists(os.path.join(server.bfb_dir,
                                           "default-slow.bfb"))
    web.delay = 0.0
    server.start()
    obj = wait_for(lambda: (o := get_bfb(server, "slow")) and
                   o["status"].get("phase") == "Ready" and o,
                   90, what="Ready after restart")
    assert obj["status"]["sha256"] == hashlib.sha256(data).hexdigest()
    # The second run asked for the rest only.
    resumed = [r for r in web.ranges if r]
    assert resumed, web.ranges
    assert int(resumed[-1][len("bytes="):-1]) >= have
    with open(os.path.join(server.bfb_dir, "default-slow.bfb"), "rb") as f:
        assert f.read() == data
    assert not os.path.exists(part)


def test_controllers_none_and_flags(tmp_path, web):
    """--controllers=none runs no controller; bad values are refused."""
    exe = binary("dpf-server", "dpf-server")
    p = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert "--controllers LIST" in p.stdout and "--bfb-dir DIR" in p.stdout
    p = subprocess.run([exe, "--controllers", "bfb,dpuset9"],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert 'unknown controller "dpuset9"' in p.stderr
    data = tmp_path / "off"
    data.mkdir()
    srv = DpfServer(str(data), controllers="none")
    srv.start()
    try:
        web.files["/x.bfb"] = b"x" * 1000
        create_bfb(srv, "idle", web.base + "/x.bfb")
        time.sleep(3)
        obj = get_bfb(srv, "idle")
        assert "finalizers" not in obj["metadata"]
        assert obj["status"] == {"phase": "Initializing"}
        assert web.ranges == []
        assert not os.path.exists(os.path.join(str(data), "bfb"))
        st, _, _ = srv.request(
            "GET", "/apis/coordination.k8s.io/v1/namespaces/"
            "dpf-operator-system/leases/dpf-controller-manager")
        assert st == 404
    finally:
        assert srv.stop() == 0


def unix_get(path, url):
    """GET url over the Unix socket at path: (status, body)."""
    conn = http.client.HTTPConnection("localhost", timeout=10)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    conn.sock = sock
    try:
        conn.request("GET", url)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_controllers_reach_the_api_over_the_local_socket(tmp_path, web):
    """In-process controllers talk to the API on an owner-only Unix socket
    (<data-dir>/api.sock) as the admin; --local-socket none, or a path a
    socket cannot have, puts them back on the TLS port."""
    exe = binary("dpf-server", "dpf-server")
    p = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert "--local-socket PATH" in p.stdout
    web.files["/l.bfb"] = b"l" * 4096
    data = tmp_path / "sock"
    data.mkdir()
    srv = DpfServer(str(data), controllers="bfb",
                    extra_args=["--log-level", "debug"])
    srv.start()
    try:
        path = os.path.join(str(data), "api.sock")
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        create_bfb(srv, "viasock", web.base + "/l.bfb")
        wait_for(lambda: (o := get_bfb(srv, "viasock")) and
                 o.get("status", {}).get("phase") == "Ready", 60,
                 what="BFB Ready over the local socket")
        log = srv.log_text()
        assert "listening for the controllers" in log
        # the controllers' connections come from this very process
        assert f'remote="unix:pid={srv.pid},uid={os.geteuid()}"' in log
        # the same user is the admin there, with no credentials at all
        code, body = unix_get(path, "/api/v1/namespaces/default")
        assert code == 200 and json.loads(body)["metadata"]["name"] == \
            "default"
    finally:
        assert srv.stop() == 0
    assert not os.path.exists(path)

    for name, arg in (("none", "none"), ("long", "/" + "s" * 120)):
        data = tmp_path / name
        data.mkdir()
        srv = DpfServer(str(data), controllers="bfb",
                        extra_args=["--local-socket", arg])
        srv.start()
        try:
            create_bfb(srv, "viatls", web.base + "/l.bfb")
            wait_for(lambda: (o := get_bfb(srv, "viatls")) and
                     o.get("status", {}).get("phase") == "Ready", 60,
                     what=f"BFB Ready over TLS (--local-socket {name})")
            assert not os.path.exists(os.path.join(str(data), "api.sock"))
            log = srv.log_text()
            assert "listening for the controllers" not in log
            if name == "long":
                assert "the controllers use the TLS port" in log
                assert "is longer than 107 bytes" in log
        finally:
            assert srv.stop() == 0


def test_progress_writes_are_paced(server, web):
    """Progress goes into status at most about once a second: the
    controller's own status writes come back as watch events and must
    not turn into a write per event."""
    from apiutil import Watch
    data = os.urandom(6 * 1024 * 1024)
    web.chunk = 32 * 1024
    web.delay = 0.03   # ~1 MB/s: about 6 s of downloading
    web.files["/paced.bfb"] = data
    _, lst = server.json("GET", f"{PROV}/namespaces/default/bfbs",
                         expect=200)
    w = Watch(server, f"{PROV}/namespaces/default/bfbs?watch=1"
              f"&resourceVersion={lst['metadata']['resourceVersion']}")
    try:
        t0 = time.monotonic()
        create_bfb(server, "paced", web.base + "/paced.bfb")
        evs = w.events_until(
            lambda es: es and es[-1]["object"].get("status", {})
            .get("phase") == "Ready", timeout=60)
        took = time.monotonic() - t0
    finally:
        w.close()
    progress = [e for e in evs if e["type"] == "MODIFIED" and
                e["object"]["status"].get("phase") == "Downloading"]
    print(f"{len(evs)} events, {len(progress)} progress writes in "
          f"{took:.1f} s")
    assert took > 4, "the download was not slow enough to measure"
    # The first Downloading write, then at most one a second.
    assert len(progress) <= took + 1.5, [e["object"]["status"] for e in evs]
    # Plus ADDED, the finalizer and Ready.
    assert len(evs) <= took + 4.5


LEASE = ("/apis/coordination.k8s.io/v1/namespaces/dpf-operator-system/"
         "leases/dpf-controller-manager")


def put_lease(srv, holder, duration):
    """Write the Lease's holder as another candidate would (retrying the
    409s that the elector's own renewals cause)."""
    def attempt():
        _, obj = srv.json("GET", LEASE, expect=200)
        obj["spec"]["holderIdentity"] = holder
        obj["spec"]["leaseDurationSeconds"] = duration
        obj["spec"]["renewTime"] = time.strftime(
            "%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        st, _ = srv.json("PUT", LEASE, obj)
        return st == 200
    wait_for(attempt, 30, interval=0.2, what=f"Lease written for {holder}")


def test_in_process_controllers_campaign_again_after_losing_the_lease(
        server, web):
    """A dpf-server whose controllers lose their Lease (here: another
    candidate takes it) stops reconciling, then campaigns again and
    resumes by itself once the Lease is free: no restart needed."""
    wait_for(lambda: server.request("GET", LEASE)[0] == 200, 30,
             what="dpf-server's Lease")
    _, obj = server.json("GET", LEASE, expect=200)
    ours = obj["spec"]["holderIdentity"]
    assert ours.startswith("dpf-server_")
    wait_for(lambda: "term=1" in server.log_text(), 30, what="caches synced")
    put_lease(server, "thief", 3600)
    # The renew deadline (10 s) passes without a renewal: the term ends.
    wait_for(lambda: "leadership lost; campaigning again" in
             server.log_text(), 40, what="lost leadership logged")
    # While the thief holds the Lease, nothing is reconciled.
    web.files["/during.bfb"] = os.urandom(64 * 1024)
    create_bfb(server, "during", web.base + "/during.bfb")
    time.sleep(6)
    obj = get_bfb(server, "during")
    assert "finalizers" not in obj["metadata"], obj
    # (the API sets phase Initializing on create; the controller would
    # add conditions and bytes)
    assert obj.get("status", {}) in ({}, {"phase": "Initializing"}), obj
    assert web.ranges == []
    # The thief lets go (holder "", as a clean hand-over writes it).
    put_lease(server, "", 1)
    obj = wait_for(lambda: (o := get_bfb(server, "during")) and
                   o.get("status", {}).get("phase") == "Ready" and o,
                   60, what="BFB Ready in the new term")
    assert obj["status"]["sha256"] == hashlib.sha256(
        web.files["/during.bfb"]).hexdigest()
    _, lease = server.json("GET", LEASE, expect=200)
    assert lease["spec"]["holderIdentity"] == ours
    assert "term=2" in server.log_text()


VERIFY = "provisioning.dpu.nvidia.com/verify-cache"


def build_bfb(tmp_path, name):
    """A real BFB (dpfctl bfb build), as bytes."""
    kernel, initrd = tmp_path / "kernel", tmp_path / "initramfs"
    kernel.write_bytes(os.urandom(64 * 1024))
    initrd.write_bytes(os.urandom(256 * 1024))
    out = tmp_path / name
    r = subprocess.run([binary("dpfctl", "dpfctl"), "bfb", "build",
                        "--kernel", str(kernel), "--initramfs", str(initrd),
                        str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out.read_bytes()


def ask_verify(srv, name, why):
    srv.json("PATCH", f"{PROV}/namespaces/default/bfbs/{name}",
             {"metadata": {"annotations": {VERIFY: why}}},
             headers={"Content-Type": "application/merge-patch+json"},
             expect=200)


def test_verify_request_checks_the_cache_and_downloads_again(server, web,
                                                             tmp_path):
    """What a DPU whose install was refused for the BFB's content asks
    for (the verify-cache annotation): a good cached file stays; a corrupt
    one is removed and downloaded again; a download that then is no valid
    BFB either is not Ready (InvalidBFB) until the URL serves a good one.
    Nobody but the test's annotation touches the object."""
    good = build_bfb(tmp_path, "good.bfb")
    web.files["/v.bfb"] = good
    create_bfb(server, "vfy", web.base + "/v.bfb")
    wait_for(lambda: (o := get_bfb(server, "vfy")) and
             o["status"].get("phase") == "Ready", 60, what="Ready")
    path = os.path.join(server.bfb_dir, "default-vfy.bfb")
    ino = os.stat(path).st_ino

    # 1. a good file: checked, kept, the annotation removed
    ask_verify(server, "vfy", "DPU default/d1: a test")
    wait_for(lambda: any(e["reason"] == "Verified" and "a test" in
                         e["message"] for e in events_for(server, "vfy")),
             30, what="Verified event")
    obj = wait_for(lambda: (o := get_bfb(server, "vfy")) and
                   VERIFY not in o["metadata"].get("annotations", {}) and o,
                   30, what="annotation removed")
    assert obj["status"]["phase"] == "Ready"
    assert os.stat(path).st_ino == ino

    # 2. the cache rots in place (size and mtime kept); so does the
    # server's copy
    bad = bytearray(good)
    for i in range(len(bad) // 2, len(bad) // 2 + 16):
        bad[i] ^= 0x5A
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.write(bad)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    web.files["/v.bfb"] = bytes(bad)
    ask_verify(server, "vfy", "DPU default/d1: CRC refused")
    wait_for(lambda: any(e["reason"] == "CorruptCache" and
                         "CRC-32 mismatch" in e["message"] and
                         "default-vfy.bfb" in e["message"]
                         for e in events_for(server, "vfy")),
             30, what="CorruptCache event")
    obj = wait_for(lambda: (o := get_bfb(server, "vfy")) and
                   (c := ready_cond(o)) and c["reason"] == "InvalidBFB" and o,
                   60, what="InvalidBFB condition")
    cond = ready_cond(obj)
    assert cond["status"] == "False" and obj["status"]["phase"] == \
        "Downloading", obj["status"]
    assert "not a valid BFB" in cond["message"] and "CRC-32 mismatch" in \
        cond["message"] and "/v.bfb" in cond["message"], cond["message"]
    assert VERIFY not in obj["metadata"].get("annotations", {})
    assert not os.path.exists(path)

    # 3. the server is fixed: the BFB recovers by itself
    web.files["/v.bfb"] = good
    obj = wait_for(lambda: (o := get_bfb(server, "vfy")) and
                   o["status"].get("phase") == "Ready" and o, 60,
                   what="Ready again")
    assert obj["status"]["sha256"] == hashlib.sha256(good).hexdigest()
    with open(path, "rb") as f:
        assert f.read() == good
