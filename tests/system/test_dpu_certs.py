"""The DMS certificates of a DPU (controllers/dpu-certs.c) against
dpf-server: Secrets <dpu>-server-secret and dpf-provisioning-client-secret
from the signer dpu.nvidia.com/dms through CSRs the controller approves,
24 h lifetimes, reissue 8 h before the end or for a new host address, no
CSR left behind; then dmsd serves with the server Secret and the DMS
client talks to it with the client Secret; an explicit CA instead of the
signer; deletion."""
import base64
import datetime
import os
import subprocess

import pytest

from conftest import binary
from dmsd_util import Dmsd, make_ca
from rshim_util import RshimEmu

NS = "default"
OWNER = f"/api/v1/namespaces/{NS}/configmaps/dpu1"


def check(srv, ip, *args):
    return subprocess.run([binary("tests", "system", "dpu-certs-check"),
                           srv.kubeconfig, OWNER, ip] + list(args),
                          capture_output=True, text=True, timeout=120)


def secret(srv, name):
    st, obj = srv.json("GET", f"/api/v1/namespaces/{NS}/secrets/{name}")
    assert st == 200, obj
    return {k: base64.b64decode(v) for k, v in obj["data"].items()}, obj


def x509(pem, tmp_path, *what):
    p = tmp_path / "c.pem"
    p.write_bytes(pem)
    return subprocess.run(["openssl", "x509", "-noout", "-in", str(p)] +
                          list(what), capture_output=True, text=True,
                          check=True).stdout


def not_after(pem, tmp_path):
    out = x509(pem, tmp_path, "-enddate").strip().split("=", 1)[1]
    return datetime.datetime.strptime(out, "%b %d %H:%M:%S %Y %Z")


def lifetime_h(pem, tmp_path):
    a = x509(pem, tmp_path, "-startdate").strip().split("=", 1)[1]
    start = datetime.datetime.strptime(a, "%b %d %H:%M:%S %Y %Z")
    return (not_after(pem, tmp_path) - start).total_seconds() / 3600


def verify(ca, pem, tmp_path):
    (tmp_path / "ca.pem").write_bytes(ca)
    (tmp_path / "leaf.pem").write_bytes(pem)
    return subprocess.run(["openssl", "verify", "-CAfile",
                           str(tmp_path / "ca.pem"),
                           str(tmp_path / "leaf.pem")],
                          capture_output=True, text=True).returncode == 0


def csrs(srv):
    st, obj = srv.json("GET",
                       "/apis/certificates.k8s.io/v1/certificatesigningrequests")
    assert st == 200, obj
    return obj["items"]


def short_cert(srv, tmp_path, cn, ext):
    """A certificate from the server's CA that ends today (due for
    renewal)."""
    subprocess.run(["openssl", "req", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", f"/CN={cn}", "-keyout", str(tmp_path / "s.key"),
                    "-out", str(tmp_path / "s.csr")], check=True,
                   capture_output=True)
    (tmp_path / "ext").write_text(ext + "\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(tmp_path / "s.csr"),
                    "-CA", os.path.join(srv.data_dir, "pki", "ca.crt"),
                    "-CAkey", os.path.join(srv.data_dir, "pki", "ca.key"),
                    "-CAcreateserial", "-days", "0", "-extfile",
                    str(tmp_path / "ext"),
                    "-out", str(tmp_path / "s.crt")], check=True,
                   capture_output=True)
    return (tmp_path / "s.crt").read_bytes()


@pytest.fixture
def owner(dpf_server):
    dpf_server.json("POST", f"/api/v1/namespaces/{NS}/configmaps",
                    {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "dpu1"}}, expect=201)
    return dpf_server


def test_certificates_from_the_dms_signer(owner, tmp_path):
    srv = owner
    r = check(srv, "127.0.0.1", "ensure")
    assert r.returncode == 0, r.stdout + r.stderr + srv.log_text()[-3000:]
    recheck = int(r.stdout.split("recheck_s=")[1])
    assert 15.5 * 3600 < recheck <= 16 * 3600, r.stdout
    ca = open(os.path.join(srv.data_dir, "pki", "ca.crt"), "rb").read()
    sd, sobj = secret(srv, "dpu1-server-secret")
    assert sobj["type"] == "kubernetes.io/tls"
    assert sd["ca.crt"] == ca
    assert b"PRIVATE KEY" in sd["tls.key"]
    assert verify(ca, sd["tls.crt"], tmp_path)
    text = x509(sd["tls.crt"], tmp_path, "-text")
    assert "CN = dpu1-dms-server-cert" in text or \
        "CN=dpu1-dms-server-cert" in text, text
    assert "IP Address:127.0.0.1" in text, text
    assert "TLS Web Server Authentication" in text, text
    assert 23.9 < lifetime_h(sd["tls.crt"], tmp_path) < 24.2
    # owned by the DPU: deleting the DPU deletes it
    assert sobj["metadata"]["ownerReferences"][0]["name"] == "dpu1"
    cd, cobj = secret(srv, "dpf-provisioning-client-secret")
    assert cd["ca.crt"] == ca and verify(ca, cd["tls.crt"], tmp_path)
    ctext = x509(cd["tls.crt"], tmp_path, "-text")
    assert "TLS Web Client Authentication" in ctext, ctext
    assert "ownerReferences" not in cobj["metadata"]  # shared by the DPUs
    assert csrs(srv) == []  # nothing left behind

    # good as they are: nothing reissued
    r = check(srv, "127.0.0.1", "ensure")
    assert r.returncode == 0, r.stdout
    assert secret(srv, "dpu1-server-secret")[0]["tls.crt"] == sd["tls.crt"]
    assert secret(srv, "dpf-provisioning-client-secret")[0]["tls.crt"] == \
        cd["tls.crt"]

    # they work: dmsd with the server Secret, the DMS client with the
    # client Secret, over mutual TLS with the name check on the IP SAN
    pki = tmp_path / "pki"
    pki.mkdir()
    for n, v in (("ca.crt", sd["ca.crt"]), ("server.crt", sd["tls.crt"]),
                 ("server.key", sd["tls.key"]), ("client.crt", cd["tls.crt"]),
                 ("client.key", cd["tls.key"])):
        (pki / n).write_bytes(v)
    emu = RshimEmu(str(tmp_path))
    d = Dmsd(str(tmp_path), str(pki), emu.dir)
    try:
        r = subprocess.run([binary("tests", "system", "dms-client-check"),
                            f"127.0.0.1:{d.port}", str(pki / "ca.crt"),
                            str(pki / "client.crt"), str(pki / "client.key"),
                            "dpu1", "get", "/nvidia/mode/config/mode"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.startswith("ok value"), \
            r.stdout + r.stderr
    finally:
        assert d.stop() == 0
        assert emu.stop() == 0

    # a new host address: a new server certificate for it
    r = check(srv, "127.0.0.2", "ensure")
    assert r.returncode == 0, r.stdout
    sd2, _ = secret(srv, "dpu1-server-secret")
    assert sd2["tls.crt"] != sd["tls.crt"]
    assert "IP Address:127.0.0.2" in x509(sd2["tls.crt"], tmp_path, "-text")

    # within 8 h of its end: renewed
    short = short_cert(srv, tmp_path, "dpu1-dms-server-cert",
                       "subjectAltName=IP:127.0.0.2")
    _, sobj = secret(srv, "dpu1-server-secret")
    sobj["data"]["tls.crt"] = base64.b64encode(short).decode()
    srv.json("PUT", f"/api/v1/namespaces/{NS}/secrets/dpu1-server-secret",
             sobj, expect=200)
    r = check(srv, "127.0.0.2", "ensure")
    assert r.returncode == 0, r.stdout
    sd3, _ = secret(srv, "dpu1-server-secret")
    assert sd3["tls.crt"] != short
    assert lifetime_h(sd3["tls.crt"], tmp_path) > 23.9

    # deletion: the server Secret goes, the shared client Secret stays
    r = check(srv, "127.0.0.2", "delete")
    assert r.returncode == 0, r.stdout
    st, _ = srv.json("GET", f"/api/v1/namespaces/{NS}/secrets/"
                     "dpu1-server-secret")
    assert st == 404
    secret(srv, "dpf-provisioning-client-secret")
    r = check(srv, "127.0.0.2", "delete")  # again: nothing to do
    assert r.returncode == 0, r.stdout
    assert csrs(srv) == []


def test_memo_renews_from_what_the_api_holds(owner, tmp_path):
    """The DPU controller keeps the shared client Secret as last read
    (dpu_certs_client). A copy that is due for renewal is read again
    before anything is renewed: the Secret was renewed meanwhile (here by
    hand), so nothing is reissued and the renewed one stays."""
    srv = owner
    r = check(srv, "127.0.0.1", "ensure")
    assert r.returncode == 0, r.stdout + r.stderr
    good, cobj = secret(srv, "dpf-provisioning-client-secret")
    name = "dpf-provisioning-client-secret"
    short = short_cert(srv, tmp_path, "dpf-provisioning-client",
                       "extendedKeyUsage=clientAuth")
    cobj["data"]["tls.crt"] = base64.b64encode(short).decode()
    srv.json("PUT", f"/api/v1/namespaces/{NS}/secrets/{name}", cobj,
             expect=200)
    p = subprocess.Popen([binary("tests", "system", "dpu-certs-check"),
                          srv.kubeconfig, OWNER, "127.0.0.1", "memo"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline() == "read\n"  # the memo holds the short one
        _, cobj = secret(srv, name)
        cobj["data"]["tls.crt"] = base64.b64encode(good["tls.crt"]).decode()
        st, put = srv.json("PUT", f"/api/v1/namespaces/{NS}/secrets/{name}",
                           cobj, expect=200)
        out, _ = p.communicate("go\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and out.startswith("ok"), out
    after, aobj = secret(srv, name)
    assert after["tls.crt"] == good["tls.crt"]
    assert aobj["metadata"]["resourceVersion"] == \
        put["metadata"]["resourceVersion"]  # not written again
    assert csrs(srv) == []


def configmap_gets(srv):
    st, _, body = srv.request("GET", "/metrics")
    assert st == 200
    n = 0
    for line in body.decode().splitlines():
        if line.startswith("apiserver_request_total{") and \
                'verb="GET"' in line and 'resource="configmaps"' in line:
            n += float(line.rsplit(" ", 1)[1])
    return n


def test_memo_holds_the_ca(owner):
    """With a memo, the CA from kube-public/cluster-info is read once for
    many DPUs' checks (it was a ConfigMap GET per DPU)."""
    srv = owner
    r = check(srv, "127.0.0.1", "ensure")  # issue both certificates first
    assert r.returncode == 0, r.stdout + r.stderr
    before = configmap_gets(srv)
    r = check(srv, "127.0.0.1", "again")
    assert r.returncode == 0 and r.stdout.startswith("ok"), \
        r.stdout + r.stderr
    # the tool's own GET of its owner ConfigMap, and cluster-info once
    assert configmap_gets(srv) - before == 2


def test_explicit_ca(owner, tmp_path):
    srv = owner
    make_ca(str(tmp_path), "own")
    r = check(srv, "127.0.0.1", "ensure", "--ca-cert",
              str(tmp_path / "own.crt"), "--ca-key", str(tmp_path / "own.key"))
    assert r.returncode == 0, r.stdout + r.stderr
    ca = (tmp_path / "own.crt").read_bytes()
    for name in ("dpu1-server-secret", "dpf-provisioning-client-secret"):
        d, _ = secret(srv, name)
        assert d["ca.crt"] == ca
        assert verify(ca, d["tls.crt"], tmp_path), name
    assert csrs(srv) == []  # no CSR on this path


def test_unsigned_request_says_why(owner, tmp_path):
    """A CA file that does not exist: the error names it."""
    srv = owner
    r = check(srv, "127.0.0.1", "ensure", "--ca-cert",
              str(tmp_path / "missing.crt"), "--ca-key",
              str(tmp_path / "missing.key"))
    assert r.returncode == 1
    assert "missing.crt" in r.stdout, r.stdout
