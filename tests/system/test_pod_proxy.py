"""pods/log, pods/exec and kubectl get pods -o wide through dpf-server,
proxied to a node agent's kubelet API (dpulet/dpulet-api.c).

The node agent here is tests/system/kubelet-api-fake: the real kubelet API
over a fake runtime (CRI log files in a temp dir, exec of the command in
its own namespaces), serving HTTPS on 127.0.0.1 with a certificate from
the server's CA and accepting only the server's kubelet client
certificate. A Node names it in status.addresses and
status.daemonEndpoints; stock kubectl talks to dpf-server only.
"""
import json
import os
import re
import select
import signal
import subprocess
import time

import pytest

from conftest import KUBECTL, binary, kubectl, wait_for
from test_api_rbac import User, admin_apply, binding, role, rule, user_subject

NS = "default"
UID = "0f5b1c1e-3f0c-4c7e-9a55-6b8f2a7d0c11"


def ts(sec):
    return f"2026-12-01T10:00:{sec:02d}.123456789Z"


class NodeAgent:
    """The fake node agent, stopped by PID at teardown."""

    def __init__(self, srv, tmp_path):
        self.root = tmp_path / "agent"
        self.pki = os.path.join(srv.data_dir, "pki")
        d = tmp_path / "agent-pki"
        d.mkdir()

        def run(*args):
            subprocess.run(["openssl", *args], check=True,
                           capture_output=True)
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(d / "srv.key"), "-out",
            str(d / "srv.csr"), "-subj", "/CN=node1")
        (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n"
                               "extendedKeyUsage=serverAuth\n")
        run("x509", "-req", "-in", str(d / "srv.csr"), "-CA",
            os.path.join(self.pki, "ca.crt"), "-CAkey",
            os.path.join(self.pki, "ca.key"), "-CAcreateserial", "-out",
            str(d / "srv.crt"), "-days", "2", "-extfile", str(d / "ext"))
        self.cert, self.key = str(d / "srv.crt"), str(d / "srv.key")
        self.proc = None
        self.port = None

    def container_dir(self, pod, container):
        p = self.root / "pods" / f"{NS}_{pod}_{UID}" / container
        p.mkdir(parents=True, exist_ok=True)
        return p

    def start(self):
        self.log = open(self.root.parent / "agent.log", "w")
        self.proc = subprocess.Popen(
            [binary("tests", "system", "kubelet-api-fake"), "--root",
             str(self.root), "--cert", self.cert, "--key", self.key,
             "--client-ca", os.path.join(self.pki, "ca.crt")],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"port=(\d+)", line)
        assert m, f"node agent did not start: {line!r}"
        self.port = int(m.group(1))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
            assert code == 0, f"node agent exited with {code}"
        self.log.close()


def make_node(srv, name, port=None, address="127.0.0.1"):
    srv.json("POST", "/api/v1/nodes", {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name}},
        expect=201)
    _, node = srv.json("GET", f"/api/v1/nodes/{name}", expect=200)
    node["status"] = {
        "addresses": ([{"type": "InternalIP", "address": address},
                       {"type": "Hostname", "address": name}]
                      if address else []),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port or 10250}},
    }
    srv.json("PUT", f"/api/v1/nodes/{name}/status", node, expect=200)


def make_pod(srv, name, node, containers=("app",), ip="127.0.0.1"):
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"containers": [{"name": c, "image": "busybox"}
                                    for c in containers]}}
    if node:
        body["spec"]["nodeName"] = node
    srv.json("POST", f"/api/v1/namespaces/{NS}/pods", body, expect=201)
    if ip:
        _, pod = srv.json("GET", f"/api/v1/namespaces/{NS}/pods/{name}",
                       expect=200)
        pod["status"] = {"phase": "Running", "podIP": ip, "hostIP": ip}
        srv.json("PUT", f"/api/v1/namespaces/{NS}/pods/{name}/status", pod,
                 expect=200)


@pytest.fixture
def agent(dpf_server, tmp_path):
    a = NodeAgent(dpf_server, tmp_path)
    c = a.container_dir("web", "app")
    # restart 0 ended; restart 1 is the current, running one
    (c / "0.log").write_text(f"{ts(0)} stdout F first run\n"
                             f"{ts(1)} stderr F first run failed\n")
    (c / "1.log").write_text(f"{ts(2)} stdout F hello\n"
                             f"{ts(3)} stderr P half \n"
                             f"{ts(4)} stderr F a line\n"
                             f"{ts(5)} stdout F last\n")
    (c / "running").write_text("")
    a.start()
    make_node(dpf_server, "node1", a.port)
    make_pod(dpf_server, "web", "node1")
    yield a
    a.stop()


def kc(srv, *args, **kw):
    return kubectl(list(args), srv.kubeconfig, **kw)


def test_logs_tail_previous_timestamps(dpf_server, agent):
    r = kc(dpf_server, "logs", "web")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\nhalf a line\nlast\n"

    r = kc(dpf_server, "logs", "web", "--tail=1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "last\n"

    r = kc(dpf_server, "logs", "web", "--previous")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "first run\nfirst run failed\n"

    r = kc(dpf_server, "logs", "web", "--timestamps", "--tail=2")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{ts(4)} a line\n{ts(5)} last\n"

    r = kc(dpf_server, "logs", "web", "--limit-bytes=8")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\nha"

    # the records are from 2026-12-01T10:00; all are older than an hour
    r = kc(dpf_server, "logs", "web", "--since=1h")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""

    r = kc(dpf_server, "logs", "web", "-c", "nope")
    assert r.returncode != 0
    assert "container nope is not valid for pod web" in r.stderr

    # kubectl 1.20 reads logs through the same path
    r = kc(dpf_server, "logs", "web", "--tail=1", version="1.20")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "last\n"


def test_logs_follow_sees_a_new_line_and_ends_with_the_container(
        dpf_server, agent):
    cmd = [KUBECTL["1.32"], "--kubeconfig", dpf_server.kubeconfig, "logs",
           "-f", "web"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        lines = []
        for _ in range(3):
            lines.append(p.stdout.readline())
        assert lines == ["hello\n", "half a line\n", "last\n"]
        logf = agent.container_dir("web", "app") / "1.log"
        with open(logf, "a") as f:
            f.write(f"{ts(6)} stdout F appended while following\n")
        assert p.stdout.readline() == "appended while following\n"
        # the container stops: the follow ends and kubectl exits 0
        os.unlink(agent.container_dir("web", "app") / "running")
        assert p.wait(timeout=30) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_exec_stdout_and_exit_codes(dpf_server, agent):
    r = kc(dpf_server, "exec", "web", "--", "cat", "/proc/uptime")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"\d+\.\d+ \d+\.\d+\n", r.stdout), r.stdout
    up = float(r.stdout.split()[0])
    with open("/proc/uptime") as f:
        assert abs(float(f.read().split()[0]) - up) < 60

    r = kc(dpf_server, "exec", "web", "-c", "app", "--", "sh", "-c",
           "echo out; echo err >&2; echo $POD_NAME; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout == "out\nweb\n"
    assert "err\n" in r.stderr
    assert "command terminated with exit code 3" in r.stderr

    r = kc(dpf_server, "exec", "web", "--", "no-such-command-here")
    assert r.returncode != 0
    assert "no-such-command-here" in r.stderr
    assert "executable file not found" in r.stderr

    r = kc(dpf_server, "exec", "web", "-c", "nope", "--", "true")
    assert r.returncode != 0
    assert "container nope is not valid for pod web" in r.stderr


def test_exec_with_stdin(dpf_server, agent):
    data = "hello stdin\n" * 2000  # more than one pipe buffer
    r = kc(dpf_server, "exec", "-i", "web", "--", "tr", "a-z", "A-Z",
           input=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data.upper()


def test_kubectl_120_exec_is_refused_clearly(dpf_server, agent):
    # kubectl 1.20 speaks SPDY only; the node agent speaks WebSocket.
    r = kc(dpf_server, "exec", "web", "--", "true", version="1.20")
    assert r.returncode != 0
    assert "SPDY is not supported" in r.stderr, r.stderr


def test_rbac_exec_needs_create_pods_exec(dpf_server, agent, tmp_path):
    admin_apply(dpf_server,
                role("reader", [rule(["get", "list"], ["pods", "pods/log"]),
                                rule(["get"], ["pods/exec"])]),
                binding("reader", "reader", [user_subject("alice")]))
    alice = User(dpf_server, tmp_path, "alice")
    r = alice.kubectl("logs", "web", "--tail=1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "last\n"
    r = alice.kubectl("exec", "web", "--", "true")
    assert r.returncode != 0
    assert "forbidden" in r.stderr.lower(), r.stderr
    assert 'cannot create resource "pods/exec"' in r.stderr, r.stderr

    admin_apply(dpf_server,
                role("execer", [rule(["create"], ["pods/exec"])]),
                binding("execer", "execer", [user_subject("alice")]))
    wait_for(lambda: alice.kubectl("exec", "web", "--", "true").returncode
             == 0, what="alice may exec")


def test_unscheduled_pod_and_node_without_address(dpf_server, agent):
    make_pod(dpf_server, "pending", None, ip=None)
    r = kc(dpf_server, "logs", "pending")
    assert r.returncode != 0
    assert "pod pending does not have a host assigned" in r.stderr
    r = kc(dpf_server, "exec", "pending", "--", "true")
    assert r.returncode != 0
    assert "pod pending does not have a host assigned" in r.stderr

    make_node(dpf_server, "lost", address=None)
    make_pod(dpf_server, "stray", "lost", ip=None)
    r = kc(dpf_server, "logs", "stray")
    assert r.returncode != 0
    assert 'node "lost" has no address' in r.stderr, r.stderr
    assert "no preferred addresses found" in r.stderr

    # a node whose agent does not answer: the error names it
    make_node(dpf_server, "dark", port=1)
    make_pod(dpf_server, "shadow", "dark", ip=None)
    r = kc(dpf_server, "logs", "shadow")
    assert r.returncode != 0
    assert 'node agent of node "dark"' in r.stderr, r.stderr


def test_node_agent_refuses_other_clients(dpf_server, agent, tmp_path):
    # The agent's API wants the server's kubelet client certificate: the
    # admin's (O=system:masters) passes, a user certificate does not, and
    # without any certificate it is 401.
    import ssl
    import http.client
    ctx = ssl.create_default_context(
        cafile=os.path.join(dpf_server.data_dir, "pki", "ca.crt"))
    c = http.client.HTTPSConnection("127.0.0.1", agent.port, context=ctx,
                                    timeout=10)
    c.request("GET", "/pods")
    assert c.getresponse().status == 401
    c.close()
    alice = User(dpf_server, tmp_path, "mallory")
    ctx.load_cert_chain(alice.crt, alice.key)
    c = http.client.HTTPSConnection("127.0.0.1", agent.port, context=ctx,
                                    timeout=10)
    c.request("GET", "/containerLogs/default/web/app")
    resp = c.getresponse()
    assert resp.status == 403
    assert "mallory" in resp.read().decode()
    c.close()
    pki = os.path.join(dpf_server.data_dir, "pki")
    ctx.load_cert_chain(os.path.join(pki, "kubelet-client.crt"),
                        os.path.join(pki, "kubelet-client.key"))
    c = http.client.HTTPSConnection("127.0.0.1", agent.port, context=ctx,
                                    timeout=10)
    c.request("GET", "/pods")
    resp = c.getresponse()
    assert resp.status == 200
    names = [p["metadata"]["name"] for p in json.load(resp)["items"]]
    assert names == ["web"]
    c.close()


def test_get_pods_wide_shows_ip_and_node(dpf_server, agent):
    r = kc(dpf_server, "get", "pods", "-o", "wide")
    assert r.returncode == 0, r.stderr
    head, *rows = r.stdout.splitlines()
    assert head.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE",
                            "IP", "NODE", "NOMINATED", "NODE", "READINESS",
                            "GATES"]
    web = [row.split() for row in rows if row.startswith("web ")]
    assert web and web[0][5:] == ["127.0.0.1", "node1", "<none>", "<none>"]


def test_attach_streams_new_output_until_the_container_stops(dpf_server,
                                                             agent):
    cmd = [KUBECTL["1.32"], "--kubeconfig", dpf_server.kubeconfig, "attach",
           "web", "-c", "app"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        logf = agent.container_dir("web", "app") / "1.log"

        # attach shows output from the moment it connected: write until a
        # line arrives (the first write may precede the connection)
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and not line:
            with open(logf, "a") as f:
                f.write(f"{ts(7)} stdout F attached output\n")
            r, _, _ = select.select([p.stdout], [], [], 1.0)
            if r:
                line = p.stdout.readline()
        assert line == "attached output\n"
        os.unlink(agent.container_dir("web", "app") / "running")
        assert p.wait(timeout=30) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
