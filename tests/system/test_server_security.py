"""dpf-server transport security and authentication, as a client sees it.

HTTPS only by default; every non-health request needs the admin token or a
client certificate issued by the server's own CA; the PKI lives under the
data dir with private files at mode 0600 and is reused across restarts.
"""
import http.client
import json
import os
import signal
import socket
import ssl
import stat
import subprocess

import pytest

from conftest import binary, free_port, kubectl, wait_for

PROTECTED = "/api/v1/namespaces"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def https_request(srv, path, ctx, headers=None, method="GET"):
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx,
                                       timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def assert_unauthorized(status, body):
    assert status == 401, body
    st = json.loads(body)
    assert st["kind"] == "Status"
    assert st["apiVersion"] == "v1"
    assert st["status"] == "Failure"
    assert st["reason"] == "Unauthorized"
    assert st["code"] == 401


def make_foreign_client_cert(tmp_path):
    """A CA the server never saw, and a client cert from it that claims to
    be the admin (same CN and O as the real one)."""
    d = tmp_path / "foreign"
    d.mkdir()

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True,
                       capture_output=True, cwd=d)

    run("ecparam", "-name", "prime256v1", "-genkey", "-noout",
        "-out", "ca.key")
    run("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=dpf-ca",
        "-days", "30", "-out", "ca.crt")
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout",
        "-out", "client.key")
    run("req", "-new", "-key", "client.key",
        "-subj", "/O=system:masters/CN=dpf-admin", "-out", "client.csr")
    (d / "ext.cnf").write_text("extendedKeyUsage=clientAuth\n")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.crt",
        "-CAkey", "ca.key", "-CAcreateserial", "-days", "30",
        "-extfile", "ext.cnf", "-out", "client.crt")
    return str(d / "client.crt"), str(d / "client.key")


def admin_cert_files(srv, tmp_path):
    crt = tmp_path / "admin-from-kubeconfig.crt"
    key = tmp_path / "admin-from-kubeconfig.key"
    crt.write_bytes(srv.client_cert)
    key.write_bytes(srv.client_key)
    os.chmod(key, 0o600)
    return str(crt), str(key)


def test_plain_http_to_the_port_fails(dpf_server):
    conn = http.client.HTTPConnection("127.0.0.1", dpf_server.port,
                                      timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError,
                        socket.timeout, OSError)):
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        # Anything that parses as an HTTP answer is a failure of the test.
        raise AssertionError(f"plain HTTP got an answer: {resp.status}")
    conn.close()
    assert dpf_server.url.startswith("https://")


def test_requests_without_credentials_get_401(dpf_server):
    status, _, body = dpf_server.request("GET", PROTECTED, auth=False)
    assert_unauthorized(status, body)
    status, _, body = dpf_server.request(
        "POST", PROTECTED, body={"kind": "Namespace"}, auth=False)
    assert_unauthorized(status, body)


def test_wrong_token_gets_401(dpf_server):
    wrong = ("0" if dpf_server.token[0] != "0" else "1") + dpf_server.token[1:]
    for tok in (wrong, dpf_server.token[:-1], dpf_server.token + "0", ""):
        status, _, body = dpf_server.request(
            "GET", PROTECTED, auth=False,
            headers={"Authorization": "Bearer " + tok})
        assert_unauthorized(status, body)
    status, _, body = dpf_server.request(
        "GET", PROTECTED, auth=False,
        headers={"Authorization": "Basic " + dpf_server.token})
    assert_unauthorized(status, body)


def test_client_cert_from_another_ca_gets_401(dpf_server, tmp_path):
    crt, key = make_foreign_client_cert(tmp_path)
    ctx = dpf_server.ssl_context()
    ctx.load_cert_chain(crt, key)
    status, body = https_request(dpf_server, PROTECTED, ctx)
    assert_unauthorized(status, body)


def test_token_and_admin_cert_are_accepted(dpf_server, tmp_path):
    status, _, body = dpf_server.request("GET", PROTECTED)
    assert status == 200, body
    names = [ns["metadata"]["name"] for ns in json.loads(body)["items"]]
    assert "default" in names

    crt, key = admin_cert_files(dpf_server, tmp_path)
    ctx = dpf_server.ssl_context()
    ctx.load_cert_chain(crt, key)
    status, body = https_request(dpf_server, PROTECTED, ctx)
    assert status == 200, body
    assert json.loads(body)["kind"] == "NamespaceList"

    # The token in any letter case of the scheme.
    status, _, body = dpf_server.request(
        "GET", PROTECTED, auth=False,
        headers={"Authorization": "bearer " + dpf_server.token})
    assert status == 200, body


def test_health_endpoints_are_open(dpf_server):
    for path in ("/healthz", "/livez", "/readyz"):
        status, _, body = dpf_server.request("GET", path, auth=False)
        assert (status, body) == (200, b"ok"), path
    status, _, body = dpf_server.request("GET", "/readyz?verbose", auth=False)
    assert status == 200
    assert b"[+]store ok" in body
    status, _, body = dpf_server.request("GET", "/version", auth=False)
    assert status == 200, body
    assert json.loads(body)["major"] == "1"
    # Only GET/HEAD are open: writing to an open path still needs a login.
    status, _, body = dpf_server.request("POST", "/healthz", body="x",
                                         auth=False)
    assert_unauthorized(status, body)


def test_serving_cert_names_the_loopback_address(dpf_server):
    ctx = ssl.create_default_context(cafile=dpf_server.ca)
    ctx.check_hostname = True
    for host in ("127.0.0.1", "localhost"):
        with socket.create_connection(("127.0.0.1", dpf_server.port),
                                      timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_private_files_are_0600(dpf_server):
    d = dpf_server.data_dir
    # (the fixture made the data dir itself; a dir the server creates is
    # checked in test_insecure_dev_is_off_unless_asked)
    assert mode(os.path.join(d, "pki")) == 0o700
    assert mode(dpf_server.kubeconfig) == 0o600
    assert mode(os.path.join(d, "admin.token")) == 0o600
    for name in ("ca.key", "server.key", "admin.key"):
        assert mode(os.path.join(d, "pki", name)) == 0o600, name
    for name in ("ca.crt", "server.crt", "admin.crt"):
        assert os.path.getsize(os.path.join(d, "pki", name)) > 0
    with open(os.path.join(d, "admin.token")) as f:
        token = f.read().strip()
    assert token == dpf_server.token
    assert len(token) == 64 and int(token, 16) >= 0


def test_kubeconfig_works_with_kubectl(dpf_server):
    for version in ("1.32", "1.20"):
        r = kubectl(["get", "--raw", "/healthz"], dpf_server.kubeconfig,
                    version=version)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "ok"
    # kubectl's own TLS (Go) with the kubeconfig's credentials passes the
    # gate.
    for version in ("1.32", "1.20"):
        r = kubectl(["get", "namespaces", "-o", "name"],
                    dpf_server.kubeconfig, version=version)
        assert r.returncode == 0, r.stderr
        assert "namespace/default" in r.stdout.split()


def test_restart_reuses_the_ca_and_credentials(dpf_server, tmp_path):
    d = dpf_server.data_dir
    pki = os.path.join(d, "pki")
    before = {n: open(os.path.join(pki, n), "rb").read()
              for n in ("ca.crt", "ca.key", "server.crt", "admin.crt")}
    token = dpf_server.token
    crt, key = admin_cert_files(dpf_server, tmp_path)

    assert dpf_server.stop() == 0
    dpf_server.start()

    after = {n: open(os.path.join(pki, n), "rb").read() for n in before}
    assert after == before
    assert dpf_server.token == token
    # The old admin certificate still logs in.
    ctx = dpf_server.ssl_context()
    ctx.load_cert_chain(crt, key)
    status, body = https_request(dpf_server, PROTECTED, ctx)
    assert status == 200, body


def test_sigint_stops_cleanly(dpf_server):
    dpf_server.proc.send_signal(signal.SIGINT)
    assert dpf_server.proc.wait(20) == 0
    assert 'msg="stopped"' in dpf_server.log_text()


def test_listening_line_is_logged(dpf_server):
    log = dpf_server.log_text()
    line = [ln for ln in log.splitlines() if 'msg="listening"' in ln]
    assert line, log
    assert f"port={dpf_server.port}" in line[0]
    assert f"kubeconfig={dpf_server.kubeconfig}" in line[0]
    assert dpf_server.token not in log


def test_insecure_dev_is_off_unless_asked(dpf_server, tmp_path):
    # The default server (dpf_server) refuses unauthenticated requests; only
    # with --insecure-dev does the same request succeed over plain HTTP.
    status, _, body = dpf_server.request("GET", PROTECTED, auth=False)
    assert_unauthorized(status, body)

    data = tmp_path / "insecure" / "state"  # the server creates it
    port = free_port()
    log_path = tmp_path / "insecure.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [binary("dpf-server", "dpf-server"), "--data-dir", str(data),
         "--bind-address", "127.0.0.1", "--port", str(port),
         "--insecure-dev"], stdout=log, stderr=log)
    log.close()
    try:
        def get(path):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", path)
                return conn.getresponse().status
            finally:
                conn.close()
        wait_for(lambda: get("/readyz") == 200, 30,
                 what="insecure dpf-server /readyz")
        status = get(PROTECTED)
        assert status == 200
        assert "INSECURE" in log_path.read_text()
        assert not os.path.exists(data / "pki" / "ca.key")
        assert mode(data) == 0o700
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
