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

    def start(self, *extra):
        self.log = open(self.root.parent / "agent.log", "w")
        self.proc = subprocess.Popen(
            [binary("tests", "system", "kubelet-api-fake"), "--root",
             str(self.root), "--cert", self.cert, "--key", self.key,
             "--client-ca", os.path.join(self.pki, "ca.crt"), *extra],
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


def lib_exec(srv, pod, container, *cmd, timeout_ms=10000, max_output=0):
    """lib/kube/kube-exec.h through tests/system/kube-exec-check."""
    r = subprocess.run([binary("tests", "system", "kube-exec-check"),
                        srv.kubeconfig, NS, pod, container or "-",
                        str(timeout_ms), str(max_output), "--", *cmd],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_lib_kube_exec_matches_kubectl(dpf_server, agent):
    """The DPU controller's exec client (lib/kube/kube-exec.c, its own
    WebSocket over curl's CONNECT_ONLY) gets what stock kubectl gets."""
    r = lib_exec(dpf_server, "web", "app", "cat", "/proc/uptime")
    assert r["rc"] == 0 and r["exitCode"] == 0, r
    assert r["protocol"] == "v5.channel.k8s.io"
    assert re.fullmatch(r"\d+\.\d+ \d+\.\d+\n", r["stdout"]), r
    k = kc(dpf_server, "exec", "web", "--", "cat", "/proc/uptime")
    assert k.returncode == 0, k.stderr
    assert abs(float(k.stdout.split()[0]) -
               float(r["stdout"].split()[0])) < 60

    cmd = ["sh", "-c", "echo out; echo err >&2; echo $POD_NAME; exit 3"]
    r = lib_exec(dpf_server, "web", "app", *cmd)
    k = kc(dpf_server, "exec", "web", "-c", "app", "--", *cmd)
    assert r["rc"] == 0, r
    assert r["exitCode"] == 3 == k.returncode
    assert r["stdout"] == k.stdout == "out\nweb\n"
    assert r["stderr"] == "err\n" and "err\n" in k.stderr

    # the pod's only container when none is named, as kubectl does
    r = lib_exec(dpf_server, "web", None, "true")
    assert r["rc"] == 0 and r["exitCode"] == 0, r


def test_lib_kube_exec_errors_name_the_pod(dpf_server, agent):
    r = lib_exec(dpf_server, "nope", "app", "true")
    assert r["rc"] == -2, r  # -ENOENT
    assert r["error"]["code"] == 404
    assert "exec in pod default/nope" in r["error"]["message"]
    assert 'pods "nope" not found' in r["error"]["message"]

    r = lib_exec(dpf_server, "web", "nope", "true")
    assert r["rc"] < 0, r
    assert "container nope is not valid for pod web" in \
        r["error"]["message"], r

    # more output than the caller takes: an error, not a cut result
    r = lib_exec(dpf_server, "web", "app", "head", "-c", "200000",
                 "/dev/zero", max_output=1000)
    assert r["rc"] == -90, r  # -EMSGSIZE
    assert "exec in pod default/web" in r["error"]["message"]
    assert "passes 1000 bytes" in r["error"]["message"]

    # the deadline covers the command's run
    t0 = time.monotonic()
    r = lib_exec(dpf_server, "web", "app", "sleep", "30", timeout_ms=1500)
    took = time.monotonic() - t0
    assert r["rc"] == -110, r  # -ETIMEDOUT
    assert "did not end before the deadline" in r["error"]["message"]
    assert took < 15, took

    # a command that cannot start: what the node agent says, as kubectl
    k = kc(dpf_server, "exec", "web", "--", "no-such-command-here")
    r = lib_exec(dpf_server, "web", "app", "no-such-command-here")
    assert k.returncode != 0
    assert "no-such-command-here" in (r["error"]["message"] + r["stderr"]), r


def test_exec_with_stdin(dpf_server, agent):
    data = "hello stdin\n" * 2000  # more than one pipe buffer
    r = kc(dpf_server, "exec", "-i", "web", "--", "tr", "a-z", "A-Z",
           input=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data.upper()


def test_kubectl_120_exec_over_spdy(dpf_server, agent):
    # kubectl 1.20 speaks SPDY/3.1 only (v4.channel.k8s.io): stdout and
    # stderr on their streams, the exit code in the error stream's Status.
    r = kc(dpf_server, "exec", "web", "-c", "app", "--", "sh", "-c",
           "echo out; echo err >&2; echo $POD_NAME", version="1.20")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "out\nweb\n"
    assert r.stderr == "err\n"

    r = kc(dpf_server, "exec", "web", "--", "sh", "-c", "echo bye; exit 3",
           version="1.20")
    assert r.returncode == 3, r.stderr
    assert r.stdout == "bye\n"
    assert "command terminated with exit code 3" in r.stderr, r.stderr

    r = kc(dpf_server, "exec", "web", "--", "no-such-command-here",
           version="1.20")
    assert r.returncode != 0
    assert "no-such-command-here" in r.stderr, r.stderr
    assert "executable file not found" in r.stderr, r.stderr

    # more output than one SPDY window (64 KiB): kubectl sends no
    # WINDOW_UPDATE, so nothing may wait for one
    r = kc(dpf_server, "exec", "web", "--", "sh", "-c",
           "i=0; while [ $i -lt 4000 ]; do "
           "echo line-$i-abcdefghijklmnopqrstuvwxyz; i=$((i+1)); done",
           version="1.20")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4000
    assert lines[0] == "line-0-abcdefghijklmnopqrstuvwxyz"
    assert lines[-1] == "line-3999-abcdefghijklmnopqrstuvwxyz"

    # kubectl 1.32 (WebSocket) still works against the same agent
    r = kc(dpf_server, "exec", "web", "--", "sh", "-c", "echo ws; exit 4")
    assert r.returncode == 4, r.stderr
    assert r.stdout == "ws\n"


def test_kubectl_120_exec_with_stdin(dpf_server, agent):
    data = "hello stdin\n" * 8000  # more than a SPDY window and a pipe
    r = kc(dpf_server, "exec", "-i", "web", "--", "tr", "a-z", "A-Z",
           input=data, version="1.20")
    assert r.returncode == 0, r.stderr
    assert r.stdout == data.upper()

    # stdin's end reaches the command (it would wait forever otherwise)
    r = kc(dpf_server, "exec", "-i", "web", "--", "sh", "-c",
           "wc -l; exit 5", input="a\nb\n", version="1.20")
    assert r.returncode == 5, r.stderr
    assert r.stdout.strip() == "2"


def test_kubectl_120_exec_tty(dpf_server, agent):
    # -t needs kubectl's own stdin to be a terminal: run it on a pty.
    import pty
    exe = KUBECTL["1.20"]
    cache = os.path.join(dpf_server.data_dir, "kubectl-cache-120")
    pid, fd = pty.fork()
    if pid == 0:
        # the terminal's size, which kubectl sends on the resize stream
        import fcntl
        import struct
        import termios
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        os.execv(exe, [exe, "--kubeconfig", dpf_server.kubeconfig,
                       "--cache-dir", cache, "exec", "-it", "web", "--",
                       "sh", "-c", "tty >/dev/null && echo is-a-tty; "
                       # the size comes on the resize stream while the
                       # command already runs: wait for it
                       "while [ \"$(stty size)\" = '0 0' ]; do "
                       "sleep 0.1; done; "
                       "stty size; read x; echo got-$x; exit 6"])
    out = b""
    try:
        deadline = time.monotonic() + 60
        sent = False
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 1)
            if fd in r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if not sent and b"is-a-tty" in out and b"33 101" in out:
                os.write(fd, b"typed\r")
                sent = True
        status = None
        while time.monotonic() < deadline + 30:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status, pid = st, 0
                break
            time.sleep(0.2)
        assert status is not None, f"kubectl did not exit: {out!r}"
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace")
    assert "is-a-tty" in text, text
    assert "33 101" in text, text
    assert "got-typed" in text, text
    assert os.WEXITSTATUS(status) == 6, text


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


# 1.32 over WebSocket, 1.20 over SPDY/3.1
@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_attach_streams_new_output_until_the_container_stops(dpf_server,
                                                             agent, version):
    cmd = [KUBECTL[version], "--kubeconfig", dpf_server.kubeconfig, "attach",
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


# --- SPDY/3.1 at the frame level, straight to the node agent ----------

def spdy_dictionary():
    # SPDY/3 draft, 2.6.10.1: length-prefixed words, then a raw tail
    words = ("options head post put delete trace accept accept-charset "
             "accept-encoding accept-language accept-ranges age allow "
             "authorization cache-control connection content-base "
             "content-encoding content-language content-length "
             "content-location content-md5 content-range content-type "
             "date etag expect expires from host if-match "
             "if-modified-since if-none-match if-range "
             "if-unmodified-since last-modified location max-forwards "
             "pragma proxy-authenticate proxy-authorization range referer "
             "retry-after server te trailer transfer-encoding upgrade "
             "user-agent vary via warning www-authenticate method get "
             "status").split() + ["200 OK", "version", "HTTP/1.1", "url",
                                  "public", "set-cookie", "keep-alive",
                                  "origin"]
    tail = ("100101201202205206300302303304305306307402405406407408409410"
            "411412413414415416417502504505203 Non-Authoritative "
            "Information204 No Content301 Moved Permanently400 Bad "
            "Request401 Unauthorized403 Forbidden404 Not Found500 "
            "Internal Server Error501 Not Implemented503 Service "
            "UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec "
            "00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,"
            "text/html,image/png,image/jpg,image/gif,application/xml,"
            "application/xhtml+xml,text/plain,text/javascript,"
            "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
            "charset=iso-8859-1,utf-,*,enq=0.")
    d = b"".join(len(w).to_bytes(4, "big") + w.encode() for w in words)
    return d + tail.encode()


class SpdyClient:
    """A bare SPDY/3.1 client on a TLS connection to the agent."""

    def __init__(self, srv, port, path, protocols=("v4.channel.k8s.io",)):
        import socket
        import ssl
        import zlib
        pki = os.path.join(srv.data_dir, "pki")
        ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        ctx.load_cert_chain(os.path.join(pki, "kubelet-client.crt"),
                            os.path.join(pki, "kubelet-client.key"))
        raw = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        d = spdy_dictionary()
        self.zout = zlib.compressobj(zdict=d)
        self.zin = zlib.decompressobj(zdict=d)
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n" +
                "".join(f"X-Stream-Protocol-Version: {p}\r\n"
                        for p in protocols) + "Content-Length: 0\r\n\r\n")
        self.sock.sendall(head.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"agent closed: {self.buf!r}"
            self.buf += chunk
        self.head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = self.head.decode().replace("\r\n", "\n")
        self.status = int(self.head.split()[1])

    def body(self):
        # the error answer's body (Content-Length)
        m = re.search(r"(?i)content-length: (\d+)", self.head)
        n = int(m.group(1))
        while len(self.buf) < n:
            self.buf += self.sock.recv(65536)
        return self.buf[:n].decode()

    def syn_stream(self, sid, stream_type):
        import struct
        import zlib
        name, value = b"streamtype", stream_type.encode()
        raw = (struct.pack(">I", 1) + struct.pack(">I", len(name)) + name +
               struct.pack(">I", len(value)) + value)
        block = self.zout.compress(raw) + self.zout.flush(zlib.Z_SYNC_FLUSH)
        body = struct.pack(">IIH", sid, 0, 0) + block
        self.sock.sendall(struct.pack(">HHI", 0x8003, 1, len(body)) + body)

    def data(self, sid, payload, fin=False):
        import struct
        self.sock.sendall(struct.pack(">II", sid,
                                      (int(fin) << 24) | len(payload)) +
                          payload)

    def frame(self):
        """The next frame as (type, flags, stream or value, body); type 0
        is DATA; None when the agent closed the connection."""
        import struct
        while True:
            if len(self.buf) >= 8:
                w0, w1 = struct.unpack(">II", self.buf[:8])
                n = w1 & 0xffffff
                if len(self.buf) >= 8 + n:
                    body, self.buf = self.buf[8:8 + n], self.buf[8 + n:]
                    if not w0 & 0x80000000:
                        return 0, w1 >> 24, w0, body
                    ftype = w0 & 0xffff
                    sid = struct.unpack(">I", body[:4])[0] & 0x7fffffff
                    if ftype in (2, 8):  # SYN_REPLY, HEADERS: keep zlib in step
                        self.zin.decompress(body[4:])
                    return ftype, w1 >> 24, sid, body
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk

    def frames_until_close(self):
        out = []
        while (f := self.frame()) is not None:
            out.append(f)
        return out

    def close(self):
        self.sock.close()


@pytest.fixture
def raw_agent(dpf_server, tmp_path):
    # its own agent, with 3 s for a SPDY client to open its streams
    a = NodeAgent(dpf_server, tmp_path)
    a.container_dir("web", "app")
    (a.container_dir("web", "app") / "running").write_text("")
    (a.container_dir("web", "app") / "0.log").write_text("")
    a.start("--stream-create-ms", "3000")
    yield a
    a.stop()


EXEC_ECHO = ("/exec/default/web/app?command=sh&command=-c"
             "&command=echo%20spdy-out&stdout=1")


def test_spdy_frames_streams_and_status(dpf_server, raw_agent):
    import struct
    c = SpdyClient(dpf_server, raw_agent.port, EXEC_ECHO,
                   protocols=("v4.channel.k8s.io", "v3.channel.k8s.io"))
    try:
        assert c.status == 101, c.head
        assert re.search(r"(?im)^upgrade: SPDY/3\.1$", c.head), c.head
        assert re.search(r"(?im)^x-stream-protocol-version: "
                         r"v4\.channel\.k8s\.io$", c.head), c.head
        # a stream of a type that does not exist: refused
        c.syn_stream(1, "stdinn")
        assert c.frame()[:3] == (3, 0, 1)  # RST_STREAM
        c.syn_stream(3, "error")
        assert c.frame()[:3] == (2, 0, 3)  # SYN_REPLY
        c.syn_stream(5, "error")  # a second one: refused
        assert c.frame()[:3] == (3, 0, 5)
        c.syn_stream(7, "stdout")
        assert c.frame()[:3] == (2, 0, 7)
        frames = c.frames_until_close()
    finally:
        c.close()
    out = b"".join(f[3] for f in frames if f[0] == 0 and f[2] == 7)
    assert out == b"spdy-out\n"
    err = [f for f in frames if f[0] == 0 and f[2] == 3]
    assert json.loads(b"".join(f[3] for f in err))["status"] == "Success"
    assert err[-1][1] & 1  # FIN
    assert any(f[0] == 0 and f[2] == 7 and f[1] & 1 for f in frames)
    goaway = [f for f in frames if f[0] == 7]
    assert goaway and struct.unpack(">II", goaway[0][3]) == (7, 0)


def test_spdy_limits(dpf_server, raw_agent):
    import struct
    # only v4 over SPDY: a client without it is told what to use
    c = SpdyClient(dpf_server, raw_agent.port, EXEC_ECHO,
                   protocols=("v3.channel.k8s.io", "channel.k8s.io"))
    try:
        assert c.status == 400, c.head
        assert "v4.channel.k8s.io" in c.body()
    finally:
        c.close()

    # streams not opened in time: the session ends with the Status
    # saying so (the agent's deadline is 3 s here, 30 s by default)
    c = SpdyClient(dpf_server, raw_agent.port, EXEC_ECHO)
    try:
        assert c.status == 101, c.head
        c.syn_stream(1, "error")
        assert c.frame()[:3] == (2, 0, 1)
        t0 = time.monotonic()
        frames = c.frames_until_close()
        assert time.monotonic() - t0 < 20
    finally:
        c.close()
    err = b"".join(f[3] for f in frames if f[0] == 0 and f[2] == 1)
    st = json.loads(err)
    assert st["status"] == "Failure"
    assert "did not open the streams" in st["message"]
    assert [f for f in frames if f[0] == 7]

    # a frame longer than the agent takes (1 MiB): GOAWAY, protocol error
    c = SpdyClient(dpf_server, raw_agent.port, EXEC_ECHO)
    try:
        c.sock.sendall(struct.pack(">II", 1, 0xffffff))
        frames = c.frames_until_close()
    finally:
        c.close()
    goaway = [f for f in frames if f[0] == 7]
    assert goaway and struct.unpack(">II", goaway[0][3])[1] == 1

    # a header block that is not zlib: GOAWAY, protocol error
    c = SpdyClient(dpf_server, raw_agent.port, EXEC_ECHO)
    try:
        body = struct.pack(">IIH", 1, 0, 0) + b"not a zlib stream"
        c.sock.sendall(struct.pack(">HHI", 0x8003, 1, len(body)) + body)
        frames = c.frames_until_close()
    finally:
        c.close()
    goaway = [f for f in frames if f[0] == 7]
    assert goaway and struct.unpack(">II", goaway[0][3])[1] == 1

    # a session may open 8 streams (kubectl opens 5 at most), refused
    # ones included; the ninth ends it
    c = SpdyClient(dpf_server, raw_agent.port, EXEC_ECHO)
    try:
        assert c.status == 101, c.head
        for sid in range(1, 17, 2):
            c.syn_stream(sid, "bogus")
            assert c.frame()[:3] == (3, 0, sid)  # RST_STREAM
        c.syn_stream(17, "error")
        frames = c.frames_until_close()
    finally:
        c.close()
    assert not [f for f in frames if f[0] == 2]  # no SYN_REPLY
    goaway = [f for f in frames if f[0] == 7]
    assert goaway and struct.unpack(">II", goaway[0][3]) == (17, 1)
