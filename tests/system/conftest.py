"""Shared fixtures for the system tests.

The tests drive the real binaries. DPF_BUILD names the build directory
whose binaries are tested (default: <repo>/build-asan); DPF_BUILD_RELEASE a
release build where a test needs speed. Everything a fixture starts is
stopped by PID in teardown; network namespaces a test creates are deleted.

Fixtures:
  dpf_server   a running dpf-server on a fresh data dir and a free port
               (see DpfServer below and /work/notes/server-contract.md)
  netns        factory for network namespaces removed at teardown
Helpers:
  dpf_fixtures(subdir) -> path of DPF's verbatim manifests, or None
  kubectl(args, kubeconfig, version="1.32"|"1.20", ...) -> CompletedProcess
  dpfctl(args, kubeconfig, ...) -> CompletedProcess
  free_port() -> int
"""
import base64
import json
import os
import random
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
import http.client

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("DPF_BUILD", os.path.join(REPO, "build-asan"))
BUILD_RELEASE = os.environ.get("DPF_BUILD_RELEASE", os.path.join(REPO, "build"))
# The manifests of the README's tour, part of the repository.
EXAMPLES = os.path.join(REPO, "examples")
# DPF's own manifests, verbatim, are not part of it: they are in the shared
# folder beside the clone (CI has it; a user's clone may not) or wherever
# DPF_SHARED_DIR points. Tests that read them call dpf_fixtures() and skip
# their module with FIXTURES_ABSENT when it returns None.
SHARED = os.environ.get("DPF_SHARED_DIR") or \
    os.path.join(os.path.dirname(REPO), "shared")
FIXTURES = os.path.join(SHARED, "fixtures", "dpf-v24.10-usecases")
FIXTURES_ABSENT = (f"fixtures: {SHARED}/fixtures not present; DPF's "
                   "verbatim manifests not checked (set DPF_SHARED_DIR to "
                   "check them)")


def dpf_fixtures(subdir):
    """The directory of DPF's manifests for one use case, or None when the
    shared folder is absent: the caller then skips with FIXTURES_ABSENT, so
    the skip names the caller's file. Fails when DPF_SHARED_DIR names a
    folder without them."""
    path = os.path.join(FIXTURES, subdir)
    if os.path.isdir(path):
        return path
    if os.environ.get("DPF_SHARED_DIR"):
        pytest.fail(f"{path} not found (DPF_SHARED_DIR="
                    f"{os.environ['DPF_SHARED_DIR']})", pytrace=False)
    return None

KUBECTL = {
    "1.32": "/usr/bin/kubectl",
    # the image's kubectl package (google-cloud-cli's) carries each minor
    "1.30": "/usr/lib/google-cloud-sdk/bin/kubectl.1.30",
    "1.20": os.path.join(REPO, ".deps", "k120", "usr", "bin", "kubectl"),
}

# ASan: report leaks but do not fail daemons on exit for leaks in
# third-party libraries' global state; tests check exit status separately.
os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")


def binary(*parts):
    """Path of a built program, e.g. binary('dpf-server', 'dpf-server')."""
    path = os.path.join(BUILD, *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not built (DPF_BUILD={BUILD})")
    return path


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _routed_10_octets():
    """The second octets of the 10.x.0.0/16 networks the root namespace
    routes (from /proc/net/route: hex of the network-order address)."""
    out = set()
    with open("/proc/net/route") as f:
        next(f)
        for line in f:
            cols = line.split()
            dst = int(cols[1], 16).to_bytes(4, "little")
            mask = int(cols[7], 16).to_bytes(4, "little")
            if mask[0] == 0xff and dst[0] == 10:
                out.add(dst[1] if mask[1] == 0xff else None)
    return out


def mgmt_octet_routed(octet):
    """Whether anything routes 10.<octet>.0.0/16 (or a network holding
    it) in the root namespace."""
    routed = _routed_10_octets()
    return octet in routed or None in routed


def free_mgmt_octet(lo, hi):
    """A random x in [lo, hi) whose 10.x.0.0/16 nothing routes yet, for an
    emulated fleet's management network: dpf-emu refuses one that overlaps
    a route (another fleet's, a test run's left over)."""
    routed = _routed_10_octets()
    free = [o for o in range(lo, hi) if o not in routed]
    assert free and None not in routed, \
        f"no free 10.x.0.0/16 for x in [{lo}, {hi}): routes {routed}"
    return random.choice(free)


def wait_for(pred, timeout=20.0, interval=0.05, what="condition"):
    """Poll pred() until it returns a truthy value; raise on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - report the last failure
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}: last={last!r}")


class DpfServer:
    """A dpf-server process owned by a test."""

    def __init__(self, data_dir, port=0, extra_args=(), controllers="none"):
        self.data_dir = data_dir
        self.port = port
        # The in-process controllers are off unless a test asks for them:
        # the API tests create BFBs whose URLs must not be fetched.
        self.extra_args = list(extra_args)
        if controllers is not None:
            self.extra_args.append("--controllers=" + controllers)
        self.proc = None
        self.kubeconfig = os.path.join(data_dir, "admin.kubeconfig")
        self.log = os.path.join(data_dir, "server.log")
        self.token = None
        self.ca = None
        self.url = None
        self._cadata = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=30.0):
        """Start (or restart) on the same data dir and port."""
        assert self.proc is None or self.proc.poll() is not None
        if self.port and os.path.exists(self.kubeconfig):
            os.unlink(self.kubeconfig)
        args = [binary("dpf-server", "dpf-server"),
                "--data-dir", self.data_dir,
                "--bind-address", "127.0.0.1",
                "--port", str(self.port),
                "--kubeconfig-out", self.kubeconfig,
                "--log-level", "info"] + self.extra_args
        if not self.port and os.path.exists(self.kubeconfig):
            os.unlink(self.kubeconfig)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdout=logf, stderr=logf,
                                     stdin=subprocess.DEVNULL)
        logf.close()

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"dpf-server exited {self.proc.returncode}: "
                    + open(self.log, errors="replace").read()[-3000:])
            return os.path.exists(self.kubeconfig)
        wait_for(ready, timeout, what="dpf-server kubeconfig")
        self._load_kubeconfig()
        wait_for(lambda: self.request("GET", "/readyz", auth=False)[0] == 200,
                 timeout, what="dpf-server /readyz")
        return self

    def _load_kubeconfig(self):
        with open(self.kubeconfig) as f:
            kc = yaml.safe_load(f)
        cluster = kc["clusters"][0]["cluster"]
        user = kc["users"][0]["user"]
        self.url = cluster["server"]
        self.port = int(self.url.rsplit(":", 1)[1].rstrip("/"))
        self._cadata = base64.b64decode(cluster["certificate-authority-data"])
        self.ca = os.path.join(self.data_dir, "pki", "ca.crt")
        self.token = user.get("token")
        self.client_cert = base64.b64decode(user["client-certificate-data"]) \
            if "client-certificate-data" in user else None
        self.client_key = base64.b64decode(user["client-key-data"]) \
            if "client-key-data" in user else None

    def ssl_context(self):
        ctx = ssl.create_default_context(cadata=self._cadata.decode())
        ctx.check_hostname = False  # we dial 127.0.0.1; SAN covers it too
        return ctx

    def connection(self, timeout=30):
        """A fresh HTTPS connection (http.client) to the server."""
        return http.client.HTTPSConnection("127.0.0.1", self.port,
                                           context=self.ssl_context(),
                                           timeout=timeout)

    def request(self, method, path, body=None, headers=None, auth=True,
                timeout=30):
        """One request; returns (status, headers dict lower-case, bytes).
        body may be bytes, str, or a JSON-serialisable object."""
        hdrs = {"Accept": "application/json"}
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        if isinstance(body, str):
            body = body.encode()
        if auth and self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        hdrs.update(headers or {})
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None, expect=None):
        """Request and decode the JSON reply; assert the status if given."""
        status, _, data = self.request(method, path, body, headers)
        if expect is not None:
            assert status == expect, f"{method} {path}: {status} {data[:500]!r}"
        return status, (json.loads(data) if data else None)

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill(self):
        """SIGKILL (crash) and reap."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()


@pytest.fixture
def dpf_server(tmp_path):
    """A running dpf-server on a fresh data dir; stopped at teardown."""
    data = tmp_path / "dpf-state"
    data.mkdir()
    srv = DpfServer(str(data))
    srv.start()
    yield srv
    code = srv.stop()
    # A server that crashed (ASan, signal) during the test fails it, unless
    # the test killed it on purpose (then proc was already reaped).
    assert code in (0, -signal.SIGKILL, None), \
        f"dpf-server exited with {code}:\n{srv.log_text()[-3000:]}"


def kubectl(args, kubeconfig, version="1.32", input=None, timeout=60,
            check=False, cache_dir=None):
    """Run a stock kubectl with a private discovery cache."""
    exe = KUBECTL[version]
    if not os.path.exists(exe):
        raise FileNotFoundError(f"{exe} missing: run scripts/install-deps")
    cache = cache_dir or tempfile.mkdtemp(prefix="dpf-kubectl-cache-")
    cmd = [exe, "--kubeconfig", kubeconfig, "--cache-dir", cache] + list(args)
    try:
        return subprocess.run(cmd, input=input, capture_output=True,
                              text=True, timeout=timeout, check=check)
    finally:
        if not cache_dir:
            shutil.rmtree(cache, ignore_errors=True)


def dpfctl(args, kubeconfig, input=None, timeout=60, check=False):
    """Run our dpfctl."""
    cmd = [binary("dpfctl", "dpfctl"), "--kubeconfig", kubeconfig] + list(args)
    return subprocess.run(cmd, input=input, capture_output=True, text=True,
                          timeout=timeout, check=check)


class NetnsFactory:
    """Creates uniquely named network namespaces; deletes them at teardown."""

    def __init__(self):
        self.names = []

    def __call__(self, prefix="dpft"):
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        self.names.append(name)
        return name

    def cleanup(self):
        for name in reversed(self.names):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def netns():
    f = NetnsFactory()
    yield f
    f.cleanup()


def make_cert(tmp_path, dns_name):
    """A CA and a serving certificate whose only name is dns_name, in
    tmp_path/pki (ca.crt, srv.crt, srv.key); returns that directory."""
    d = tmp_path / "pki"
    d.mkdir()

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(d / "ca.key"),
        "-out", str(d / "ca.crt"), "-subj", "/CN=test-ca", "-days", "2",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", str(d / "srv.key"), "-out", str(d / "srv.csr"),
        "-subj", f"/CN={dns_name}")
    (d / "ext").write_text(f"subjectAltName=DNS:{dns_name}\n"
                           "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", str(d / "srv.csr"), "-CA", str(d / "ca.crt"),
        "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out",
        str(d / "srv.crt"), "-days", "2", "-extfile", str(d / "ext"))
    return d


class TlsListener:
    """HTTPS-style listener on 127.0.0.1 with the certificate in pki
    (make_cert()); records the SNI names clients send and hands each TLS
    connection to self.handle(conn) on the accept thread. close() stops it
    and closes what handle() put in self.conns."""

    def __init__(self, pki):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(pki / "srv.crt"), str(pki / "srv.key"))
        self.sni = []
        self.ctx.sni_callback = lambda s, name, c: self.sni.append(name)
        self.conns = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def handle(self, conn):
        raise NotImplementedError

    def _serve(self):
        while not self._stop:
            if not select.select([self.sock], [], [], 0.1)[0]:
                continue
            raw = None
            try:
                raw, _ = self.sock.accept()
                raw.settimeout(5)
                self.handle(self.ctx.wrap_socket(raw, server_side=True))
            except (OSError, ssl.SSLError):
                if raw:
                    raw.close()

    def close(self):
        self._stop = True
        self.thread.join(5)
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test whose fixtures include an object with a diagnose()
    method (the provisioning Lab) gets that object's account of the fleet
    added to its report: what the control plane and the emulator said and
    where each DPU stood when it failed, so a failure seen only in CI can be
    explained from its log."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        diagnose = getattr(value, "diagnose", None)
        if callable(diagnose):
            try:
                text = diagnose()
            except Exception as e:  # noqa: BLE001 - never mask the failure
                text = f"diagnose() failed: {e!r}"
            rep.sections.append((f"state of fixture {name!r} at failure",
                                 text))
