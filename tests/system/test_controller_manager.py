"""dpf-controller-manager: leader election, hand-over, metrics and flags.

Two managers run against one dpf-server (whose in-process controllers are
off) with --leader-elect and the test-only witness controller: while a
manager leads, its witness appends "<identity> <unix ms>" to the ConfigMap
default/witness every half second. The record shows who ran controllers
when; two leaders at once would interleave identities.
"""
import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import (DpfServer, TlsListener, binary, free_port, make_cert,
                      wait_for)

LEASE_S = 15.0   # client-go's default lease duration (not overridden)
RETRY_S = 2.0    # retry period; a try waits up to 2.2 x this
WITNESS = "/api/v1/namespaces/default/configmaps/witness"
LEASE = ("/apis/coordination.k8s.io/v1/namespaces/dpf-operator-system/"
         "leases/dpf-controller-manager")


class Manager:
    """One dpf-controller-manager process owned by a test."""

    def __init__(self, srv, tmp, identity, extra=(), kubeconfig=None):
        self.identity = identity
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.log = os.path.join(tmp, f"{identity}.log")
        args = [binary("dpf-controller-manager", "dpf-controller-manager"),
                "--kubeconfig", kubeconfig or srv.kubeconfig,
                "--controllers", "none",
                "--test-witness", "default/witness",
                "--leader-elect", "--identity", identity,
                "--bfb-dir", os.path.join(tmp, "bfb-" + identity),
                "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}",
                "--health-probe-bind-address",
                f"127.0.0.1:{self.health_port}"] + list(extra)
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(args, stdout=f, stderr=f,
                                         stdin=subprocess.DEVNULL)

    def get(self, path, port=None):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", port or self.metrics_port,
                                       timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def server(tmp_path):
    data = tmp_path / "dpf-state"
    data.mkdir()
    srv = DpfServer(str(data), controllers="none")
    srv.start()
    yield srv
    code = srv.stop()
    assert code == 0, srv.log_text()[-3000:]


@pytest.fixture
def managers(server, tmp_path):
    started = []

    def start(identity, extra=(), kubeconfig=None):
        m = Manager(server, str(tmp_path), identity, extra, kubeconfig)
        started.append(m)
        return m
    yield start
    for m in started:
        m.stop(signal.SIGKILL)


def records(srv):
    """[(identity, unix ms)] from the witness ConfigMap."""
    st, cm = srv.json("GET", WITNESS)
    if st != 200:
        return []
    out = []
    for line in cm.get("data", {}).get("log", "").splitlines():
        ident, ms = line.split()
        out.append((ident, int(ms)))
    return out


def blocks(recs):
    """Collapse runs of one identity: [(identity, first ms, last ms)]."""
    out = []
    for ident, ms in recs:
        if out and out[-1][0] == ident:
            out[-1][2] = ms
        else:
            out.append([ident, ms, ms])
    return out


def lease(srv):
    return srv.json("GET", LEASE, expect=200)[1]["spec"]


def test_standby_takes_over_after_sigkill(server, managers):
    a = managers("cm-a")
    wait_for(lambda: any(i == "cm-a" for i, _ in records(server)), 60,
             what="cm-a leading")
    b = managers("cm-b")
    # The standby synced its caches (ready) but does not lead: the record
    # stays cm-a's only while both run.
    wait_for(lambda: b.get("/readyz", b.health_port)[0] == 200, 60,
             what="standby ready")
    time.sleep(2 * RETRY_S * 2.2)
    assert {i for i, _ in records(server)} == {"cm-a"}
    assert "leader_election_master_status{name=\"dpf-controller-manager\"} 0" \
        in b.get("/metrics")[1]
    assert "leader_election_master_status{name=\"dpf-controller-manager\"} 1" \
        in a.get("/metrics")[1]

    kill_ms = int(time.time() * 1000)
    a.stop(signal.SIGKILL)
    wait_for(lambda: any(i == "cm-b" for i, _ in records(server)),
             LEASE_S + 4 * RETRY_S * 2.2 + 10, what="cm-b taking over")
    time.sleep(2)
    recs = records(server)
    bl = blocks(recs)
    # Exactly one hand-over: cm-a's records, then cm-b's, never mixed.
    assert [x[0] for x in bl] == ["cm-a", "cm-b"], bl
    a_last, b_first = bl[0][2], bl[1][1]
    takeover_s = (b_first - kill_ms) / 1000.0
    gap_s = (b_first - a_last) / 1000.0
    print(f"takeover {takeover_s:.1f} s after SIGKILL, "
          f"gap between leaders {gap_s:.1f} s")
    # The standby waited for the lease to run out (cm-a last renewed at
    # most one retry period before its last record)...
    assert gap_s >= LEASE_S - RETRY_S * 1.5, bl
    # ...and took over within the lease duration plus the time it takes
    # to notice (a try every 2-4.4 s).
    assert takeover_s <= LEASE_S + 2 * RETRY_S * 2.2 + 3, bl
    spec = lease(server)
    assert spec["holderIdentity"] == "cm-b"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] >= 1
    assert b.stop() == 0, b.log_text()[-3000:]
    assert "released the lease" in b.log_text()


def test_clean_handover_on_sigterm(server, managers):
    a = managers("cm-a")
    wait_for(lambda: any(i == "cm-a" for i, _ in records(server)), 60,
             what="cm-a leading")
    b = managers("cm-b")
    wait_for(lambda: b.get("/readyz", b.health_port)[0] == 200, 60,
             what="standby ready")
    time.sleep(1)
    assert a.stop(signal.SIGTERM) == 0, a.log_text()[-3000:]
    stop_ms = int(time.time() * 1000)
    # On SIGTERM the leader releases the Lease (holder "", duration 1 s):
    # the standby takes over at its next try, not after 15 s.
    assert "released the lease" in a.log_text()
    wait_for(lambda: any(i == "cm-b" for i, _ in records(server)), 30,
             what="cm-b taking over")
    bl = blocks(records(server))
    assert [x[0] for x in bl] == ["cm-a", "cm-b"], bl
    takeover_s = (bl[1][1] - stop_ms) / 1000.0
    print(f"takeover {takeover_s:.1f} s after SIGTERM")
    assert takeover_s <= RETRY_S * 2.2 + 3, bl
    assert lease(server)["holderIdentity"] == "cm-b"


def test_metrics_and_health(server, managers):
    a = managers("cm-a")
    wait_for(lambda: len(records(server)) >= 3, 60, what="witness writes")
    st, text = a.get("/metrics")
    assert st == 200
    for needle in (
            'controller_runtime_reconcile_total{controller="witness",'
            'result="requeue_after"}',
            'controller_runtime_reconcile_errors_total{controller="witness"} 0',
            'controller_runtime_reconcile_time_seconds_bucket{'
            'controller="witness",le="+Inf"}',
            'controller_runtime_reconcile_time_seconds_count{'
            'controller="witness"}',
            'workqueue_depth{name="witness"}',
            'workqueue_adds_total{name="witness"}',
            'workqueue_retries_total{name="witness"}',
            'dpf_informer_lists_total{resource="configmaps"} 1',
            'dpf_informer_watches_total{resource="configmaps"}',
            '# TYPE controller_runtime_reconcile_time_seconds histogram'):
        assert needle in text, f"{needle} missing from:\n{text}"
    n = [int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
         if line.startswith('controller_runtime_reconcile_total{'
                            'controller="witness",result="requeue_after"}')]
    assert n and n[0] >= 3
    assert a.get("/healthz", a.health_port)[0] == 200
    assert a.get("/readyz", a.health_port)[0] == 200
    assert a.get("/nope", a.health_port)[0] == 404


def test_flags():
    exe = binary("dpf-controller-manager", "dpf-controller-manager")
    p = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    for flag in ("--kubeconfig", "--leader-elect", "--controllers",
                 "--bfb-dir", "--metrics-bind-address",
                 "--health-probe-bind-address",
                 "--leader-elect-lease-duration"):
        assert flag in p.stdout
    p = subprocess.run([exe, "--controllers", "bfb,nosuch"],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert 'unknown controller "nosuch"' in p.stderr
    p = subprocess.run([exe, "--leader-elect-lease-duration", "soon"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and '"soon" is not a duration' in p.stderr
    # A kubeconfig that cannot be read: exit 1, naming the file.
    p = subprocess.run([exe, "--kubeconfig", "/nonexistent/kubeconfig"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "/nonexistent/kubeconfig" in p.stderr


def test_external_manager_is_standby_to_dpf_server(tmp_path):
    """dpf-server's in-process controllers hold the Lease; an external
    manager against it waits (ready, not leading, no witness writes)."""
    data = tmp_path / "dpf-state"
    data.mkdir()
    srv = DpfServer(str(data), controllers="all")
    srv.start()
    m = None
    try:
        wait_for(lambda: srv.request("GET", LEASE)[0] == 200, 30,
                 what="dpf-server's Lease")
        holder = lease(srv)["holderIdentity"]
        assert holder.startswith("dpf-server_")
        m = Manager(srv, str(tmp_path), "cm-ext")
        wait_for(lambda: m.get("/readyz", m.health_port)[0] == 200, 60,
                 what="external manager ready")
        time.sleep(2 * RETRY_S * 2.2)
        assert records(srv) == []
        assert "leader_election_master_status{name=\"dpf-controller-" \
            "manager\"} 0" in m.get("/metrics")[1]
        assert lease(srv)["holderIdentity"] == holder
        assert "waiting for the lease" in m.log_text()
    finally:
        if m:
            m.stop(signal.SIGKILL)
        code = srv.stop()
    assert code == 0, srv.log_text()[-3000:]


class TlsFront(TlsListener):
    """A TLS front on 127.0.0.1 whose certificate names only one DNS name
    (not 127.0.0.1); it relays each connection's bytes to dpf-server."""

    def __init__(self, pki, srv):
        self.up = ssl.create_default_context(cadata=srv._cadata.decode())
        self.up.check_hostname = False  # dpf-server's own CA, 127.0.0.1
        self.srv_port = srv.port
        super().__init__(pki)

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle(self, conn):
        conn.settimeout(None)  # watches stay quiet for long
        up = self.up.wrap_socket(
            socket.create_connection(("127.0.0.1", self.srv_port)))
        self.conns += [conn, up]
        for a, b in ((conn, up), (up, conn)):
            threading.Thread(target=self._pipe, args=(a, b),
                             daemon=True).start()


def test_exec_plugin_and_tls_server_name(server, managers, tmp_path):
    """A manager whose kubeconfig user is an exec plugin and whose cluster
    has tls-server-name (URL 127.0.0.1, certificate for only.dpf.test):
    it connects, leads and reconciles; the plugin's credential is cached
    until it expires (5 s), then fetched again; the token is never in
    the manager's debug log."""
    pki = make_cert(tmp_path, "only.dpf.test")
    front = TlsFront(pki, server)
    runs = tmp_path / "plugin-runs"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(f"""#!/usr/bin/python3
import datetime, json
with open({str(runs)!r}, "a") as f:
    f.write("run\\n")
exp = datetime.datetime.now(datetime.timezone.utc) + \\
    datetime.timedelta(seconds=5)
print(json.dumps({{
    "kind": "ExecCredential",
    "apiVersion": "client.authentication.k8s.io/v1",
    "status": {{"token": {server.token!r},
               "expirationTimestamp": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}}}}))
""")
    plugin.chmod(0o700)
    kc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "front", "cluster": {
            "server": f"https://127.0.0.1:{front.port}",
            "certificate-authority-data": base64.b64encode(
                (pki / "ca.crt").read_bytes()).decode(),
            "tls-server-name": "only.dpf.test"}}],
        "users": [{"name": "plugin-user", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin), "interactiveMode": "Never"}}}],
        "contexts": [{"name": "c", "context": {
            "cluster": "front", "user": "plugin-user"}}]}
    kc_path = tmp_path / "plugin.kubeconfig"
    kc_path.write_text(json.dumps(kc))  # JSON is YAML
    try:
        m = managers("cm-exec", extra=["--log-level", "debug"],
                     kubeconfig=str(kc_path))
        wait_for(lambda: any(i == "cm-exec" for i, _ in records(server)), 60,
                 what="cm-exec leading and reconciling")
        assert lease(server)["holderIdentity"] == "cm-exec"
        assert front.sni and set(front.sni) == {"only.dpf.test"}
        # Cached, then fetched again after expiry: many requests (witness
        # writes every 0.5 s, Lease renewals), few plugin runs.
        wait_for(lambda: len(runs.read_text().splitlines()) >= 2, 30,
                 what="a second plugin run after the credential expired")
        n_runs = len(runs.read_text().splitlines())
        n_recs = len(records(server))
        assert n_runs < n_recs, (n_runs, n_recs)
        assert m.stop() == 0, m.log_text()[-3000:]
        log = m.log_text()
        assert "level=debug" in log, log[-2000:]
        assert server.token not in log
    finally:
        front.close()
