"""Node bootstrap as kubeadm does it: bootstrap tokens (Secrets in
kube-system) authenticate as system:bootstrap:<id>; `dpfctl join` reads
kube-public/cluster-info without credentials, pins the CA by its hash,
gets a node client certificate through an auto-approved CSR and writes a
kubeconfig; the token can do nothing but join; expired tokens are 401;
anonymous users read cluster-info and nothing else; a node's client
certificate is renewed when a third of its lifetime is left."""
import base64
import datetime
import hashlib
import json
import os
import stat
import time

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certutil import CSR_PATH, csr_object, load_cert, make_csr, subject_parts
from conftest import dpfctl, kubectl, wait_for


def join_command(srv, *extra):
    r = dpfctl(["token", "create", "--print-join-command", *extra],
               srv.kubeconfig)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert words[:2] == ["kubeadm", "join"], r.stdout
    return {"endpoint": words[2], "token": words[4], "hash": words[6]}


def join(srv, j, node, path, token=None, ca_hash=None):
    return dpfctl(["join", j["endpoint"], "--token", token or j["token"],
                   "--discovery-token-ca-cert-hash", ca_hash or j["hash"],
                   "--node-name", node, "--timeout", "30s"], str(path),
                  timeout=90)


def token_request(srv, token, method, path, body=None):
    st, _, data = srv.request(method, path, body, auth=False,
                              headers={"Authorization": "Bearer " + token})
    return st, (json.loads(data) if data else None)


def test_token_create_and_hash(dpf_server):
    """The Secret kubeadm would create, and the CA pin is SHA-256 of the
    CA's SubjectPublicKeyInfo."""
    srv = dpf_server
    j = join_command(srv, "--ttl", "2h")
    tid, secret = j["token"].split(".")
    assert len(tid) == 6 and len(secret) == 16
    st, sec = srv.json("GET",
                       f"/api/v1/namespaces/kube-system/secrets/"
                       f"bootstrap-token-{tid}", expect=200)
    assert sec["type"] == "bootstrap.kubernetes.io/token"
    data = {k: base64.b64decode(v).decode() for k, v in sec["data"].items()}
    assert data["token-id"] == tid and data["token-secret"] == secret
    assert data["usage-bootstrap-authentication"] == "true"
    assert data["auth-extra-groups"] == \
        "system:bootstrappers:kubeadm:default-node-token"
    exp = datetime.datetime.strptime(data["expiration"], "%Y-%m-%dT%H:%M:%SZ")
    left = (exp - datetime.datetime.utcnow()).total_seconds()
    assert 7000 < left <= 7200
    ca = x509.load_pem_x509_certificate(open(srv.ca, "rb").read())
    spki = ca.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    assert j["hash"] == "sha256:" + hashlib.sha256(spki).hexdigest()
    assert j["endpoint"] == f"127.0.0.1:{srv.port}"
    # the token secret never reaches the server's log
    assert secret not in srv.log_text()


def test_join_creates_node(dpf_server, tmp_path):
    """dpfctl join -> a 0600 kubeconfig whose user is system:node:<name>,
    which can create its own Node (and not another's)."""
    srv = dpf_server
    j = join_command(srv)
    kc = tmp_path / "node.kubeconfig"
    r = join(srv, j, "dpu-a", kc)
    assert r.returncode == 0, r.stderr
    assert "joined the cluster as system:node:dpu-a" in r.stdout
    assert "certificate issued" in r.stderr
    assert stat.S_IMODE(os.stat(kc).st_mode) == 0o600
    r = kubectl(["auth", "whoami", "-o", "json"], str(kc))
    assert r.returncode == 0, r.stderr
    ui = json.loads(r.stdout)["status"]["userInfo"]
    assert ui["username"] == "system:node:dpu-a"
    assert "system:nodes" in ui["groups"]
    cfg = yaml.safe_load(kc.read_text())
    cert = load_cert(base64.b64decode(
        cfg["users"][0]["user"]["client-certificate-data"]))
    assert subject_parts(cert) == (["system:node:dpu-a"], ["system:nodes"])
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "dpu-a"}}
    r = kubectl(["create", "-f", "-"], str(kc), input=json.dumps(node))
    assert r.returncode == 0, r.stderr
    other = dict(node, metadata={"name": "dpu-b"})
    r = kubectl(["create", "-f", "-"], str(kc), input=json.dumps(other))
    assert r.returncode != 0
    # the CSR was approved automatically, and the requester recorded
    st, lst = srv.json("GET", CSR_PATH, expect=200)
    (csr,) = [c for c in lst["items"]
              if c["spec"]["signerName"] ==
              "kubernetes.io/kube-apiserver-client-kubelet"]
    tid = j["token"].split(".")[0]
    assert csr["spec"]["username"] == f"system:bootstrap:{tid}"
    approved = [c for c in csr["status"]["conditions"]
                if c["type"] == "Approved"]
    assert approved and approved[0]["reason"] == "AutoApproved"


def test_join_refuses_wrong_ca_hash(dpf_server, tmp_path):
    srv = dpf_server
    j = join_command(srv)
    bad = "sha256:" + "0" * 64
    r = join(srv, j, "dpu-x", tmp_path / "x.kubeconfig", ca_hash=bad)
    assert r.returncode != 0
    assert "does not match --discovery-token-ca-cert-hash" in r.stderr
    assert j["hash"].split(":")[1] in r.stderr
    assert not (tmp_path / "x.kubeconfig").exists()
    # nothing was sent with the token: no CSR exists
    st, lst = srv.json("GET", CSR_PATH, expect=200)
    assert lst["items"] == []


def test_join_token_can_only_join(dpf_server, tmp_path):
    """The token of a bf.cfg: create and read CSRs, nothing else (kubeadm's
    bindings); its own CSR for anyone but a node is never approved."""
    srv = dpf_server
    j = join_command(srv)
    tok = j["token"]
    tid = tok.split(".")[0]
    user = f'User "system:bootstrap:{tid}"'
    checks = [
        ("GET", "/api/v1/namespaces/kube-system/secrets", None,
         f'secrets is forbidden: {user} cannot list resource "secrets" in '
         'API group "" in the namespace "kube-system"'),
        ("GET", "/api/v1/secrets", None,
         f'secrets is forbidden: {user} cannot list resource "secrets"'),
        ("POST", "/api/v1/namespaces/default/pods",
         {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
          "spec": {"containers": [{"name": "c", "image": "x"}]}},
         f'pods is forbidden: {user} cannot create resource "pods"'),
        ("GET", "/api/v1/nodes", None,
         f'nodes is forbidden: {user} cannot list resource "nodes"'),
        ("GET", "/api/v1/nodes/n1", None,
         f'nodes "n1" is forbidden: {user} cannot get resource "nodes"'),
        ("POST", "/api/v1/nodes",
         {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
         f'nodes is forbidden: {user} cannot create resource "nodes"'),
        ("DELETE", "/api/v1/namespaces/kube-system/secrets/"
         f"bootstrap-token-{tid}", None,
         f'cannot delete resource "secrets"'),
        ("GET", "/api/v1/namespaces/kube-public/configmaps", None,
         f'configmaps is forbidden: {user} cannot list resource '
         '"configmaps"'),
    ]
    for method, path, body, words in checks:
        st, e = token_request(srv, tok, method, path, body)
        assert st == 403, (method, path, st, e)
        assert words in e["message"], (method, path, e["message"])
    # a CSR for someone else's identity: created (Kubernetes lets a
    # bootstrapper ask), never approved, and the token cannot approve it
    _, pem = make_csr(str(tmp_path / "adm"), "dpf-admin", ["system:masters"])
    st, e = token_request(srv, tok, "POST", CSR_PATH, csr_object(
        "steal-admin", pem, "kubernetes.io/kube-apiserver-client"))
    assert st == 201, e
    _, pem = make_csr(str(tmp_path / "adm2"), "dpf-admin",
                      ["system:masters"])
    st, e = token_request(srv, tok, "POST", CSR_PATH, csr_object(
        "steal-kubelet", pem, "kubernetes.io/kube-apiserver-client-kubelet"))
    assert st == 201, e
    st, obj = token_request(srv, tok, "GET", f"{CSR_PATH}/steal-admin")
    assert st == 200 and obj["spec"]["username"] == f"system:bootstrap:{tid}"
    obj.setdefault("status", {})["conditions"] = [
        {"type": "Approved", "status": "True", "reason": "Self"}]
    st, e = token_request(srv, tok, "PUT", f"{CSR_PATH}/steal-admin/approval",
                          obj)
    assert st == 403, e
    assert (f'{user} cannot update resource "certificatesigningrequests/'
            'approval"') in e["message"] or \
        'user not permitted to approve' in e["message"], e["message"]
    # the worker looked at both (the node CSR of a join is approved within
    # the same time) and approved neither
    j2 = join_command(srv)
    r = join(srv, j2, "dpu-ok", tmp_path / "ok.kubeconfig")
    assert r.returncode == 0, r.stderr
    for n in ("steal-admin", "steal-kubelet"):
        st, obj = srv.json("GET", f"{CSR_PATH}/{n}", expect=200)
        types = [c["type"] for c in obj.get("status", {}).get(
            "conditions", [])]
        assert "Approved" not in types, (n, obj["status"])
        assert not obj.get("status", {}).get("certificate")
    # the same token, as a CSR approver through kubectl: 403 text
    kc = yaml.safe_load(open(srv.kubeconfig))
    kc["users"] = [{"name": "t", "user": {"token": tok}}]
    kc["contexts"][0]["context"]["user"] = "t"
    p = tmp_path / "token.kubeconfig"
    p.write_text(yaml.safe_dump(kc))
    r = kubectl(["certificate", "approve", "steal-kubelet"], str(p))
    assert r.returncode != 0
    assert "forbidden" in r.stderr and f"system:bootstrap:{tid}" in r.stderr
    r = kubectl(["get", "secrets", "-A"], str(p))
    assert r.returncode != 0 and "forbidden" in r.stderr


def make_token_secret(srv, tid, secret, expiration=None, usage="true"):
    data = {"token-id": tid, "token-secret": secret,
            "usage-bootstrap-authentication": usage,
            "auth-extra-groups":
            "system:bootstrappers:kubeadm:default-node-token,system:masters"}
    if expiration:
        data["expiration"] = expiration
    srv.json("POST", "/api/v1/namespaces/kube-system/secrets",
             {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": f"bootstrap-token-{tid}"},
              "type": "bootstrap.kubernetes.io/token", "stringData": data},
             expect=201)


def test_token_rules_401(dpf_server):
    """Expired, unusable, wrong-secret, malformed or deleted tokens are
    401; a token cannot name itself into system:masters."""
    srv = dpf_server
    make_token_secret(srv, "abcdef", "0123456789abcdef",
                      expiration="2001-01-01T00:00:00Z")
    make_token_secret(srv, "bbbbbb", "0123456789abcdef", usage="false")
    make_token_secret(srv, "cccccc", "0123456789abcdef",
                      expiration="2099-01-01T00:00:00Z")
    for tok in ("abcdef.0123456789abcdef", "bbbbbb.0123456789abcdef",
                "cccccc.0123456789abcdeX", "cccccc.0123456789abcdee",
                "CCCCCC.0123456789abcdef", "ddddd.0123456789abcdef"):
        st, e = token_request(srv, tok, "GET", CSR_PATH)
        assert st == 401, (tok, st, e)
        assert e["reason"] == "Unauthorized"
    st, e = token_request(srv, "cccccc.0123456789abcdef", "GET", CSR_PATH)
    assert st == 200, e
    # system:masters from auth-extra-groups is ignored
    st, e = token_request(srv, "cccccc.0123456789abcdef", "GET",
                          "/api/v1/secrets")
    assert st == 403, e
    srv.json("DELETE",
             "/api/v1/namespaces/kube-system/secrets/bootstrap-token-cccccc",
             expect=200)
    st, e = token_request(srv, "cccccc.0123456789abcdef", "GET", CSR_PATH)
    assert st == 401
    # an expired token cannot join
    r = dpfctl(["join", f"127.0.0.1:{srv.port}", "--token",
                "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash",
                join_command(srv)["hash"], "--node-name", "late",
                "--timeout", "20s"], "/nonexistent/late.kubeconfig")
    assert r.returncode != 0
    assert "Unauthorized" in r.stderr or "logged in" in r.stderr, r.stderr


def test_anonymous_reads_cluster_info_only(dpf_server):
    srv = dpf_server
    st, _, data = srv.request(
        "GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        auth=False)
    assert st == 200, data
    cm = json.loads(data)
    kc = yaml.safe_load(cm["data"]["kubeconfig"])
    cl = kc["clusters"][0]["cluster"]
    assert cl["server"] == srv.url
    assert base64.b64decode(cl["certificate-authority-data"]) == \
        open(srv.ca, "rb").read()
    assert not kc.get("users")
    for word in ("token", "client-key", "client-certificate"):
        assert word not in cm["data"]["kubeconfig"]
    for method, path in [
            ("GET", "/api/v1/namespaces/kube-public/configmaps"),
            ("GET", "/api/v1/namespaces/kube-public/configmaps/other"),
            ("GET", "/api/v1/namespaces/kube-system/secrets"),
            ("GET", "/api/v1/nodes"),
            ("GET", "/apis/certificates.k8s.io/v1/"
                    "certificatesigningrequests"),
            ("DELETE", "/api/v1/namespaces/kube-public/configmaps/"
                       "cluster-info"),
            ("PUT", "/api/v1/namespaces/kube-public/configmaps/"
                    "cluster-info")]:
        st, _, data = srv.request(method, path, auth=False)
        assert st == 401, (method, path, st, data)
    # watch of the one object is not a get
    st, _, _ = srv.request(
        "GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info"
        "?watch=true", auth=False)
    assert st == 401
    # the server keeps it current: an edit is put back
    cm["data"]["kubeconfig"] = "tampered"
    srv.json("PUT", "/api/v1/namespaces/kube-public/configmaps/cluster-info",
             cm, expect=200)

    def restored():
        st, o = srv.json("GET", "/api/v1/namespaces/kube-public/"
                         "configmaps/cluster-info")
        return st == 200 and "tampered" not in o["data"]["kubeconfig"]
    wait_for(restored, 10, what="cluster-info put back")
    # kube-node-lease exists from the first start
    srv.json("GET", "/api/v1/namespaces/kube-node-lease", expect=200)


def short_cert_kubeconfig(srv, tmp_path, node, lifetime_h, left_h):
    """A kubeconfig for system:node:<node> whose certificate (signed by the
    server's CA) has lifetime_h hours of which left_h remain."""
    ca_key = serialization.load_pem_private_key(
        open(os.path.join(srv.data_dir, "pki", "ca.key"), "rb").read(), None)
    ca = x509.load_pem_x509_certificate(open(srv.ca, "rb").read())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow()
    start = now - datetime.timedelta(hours=lifetime_h - left_h)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME,
                                   f"system:node:{node}")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(hours=lifetime_h))
            .add_extension(x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    kc = {"apiVersion": "v1", "kind": "Config", "current-context": "n",
          "clusters": [{"name": "c", "cluster": {
              "server": srv.url,
              "certificate-authority-data": base64.b64encode(
                  open(srv.ca, "rb").read()).decode()}}],
          "contexts": [{"name": "n", "context": {"cluster": "c",
                                                 "user": "u"}}],
          "users": [{"name": "u", "user": {
              "client-certificate-data": base64.b64encode(cert.public_bytes(
                  serialization.Encoding.PEM)).decode(),
              "client-key-data": base64.b64encode(key.private_bytes(
                  serialization.Encoding.PEM,
                  serialization.PrivateFormat.PKCS8,
                  serialization.NoEncryption())).decode()}}]}
    p = tmp_path / f"{node}.kubeconfig"
    p.write_text(yaml.safe_dump(kc))
    os.chmod(p, 0o600)
    return p, cert


def kubeconfig_cert(path):
    cfg = yaml.safe_load(open(path))
    return load_cert(base64.b64decode(
        cfg["users"][0]["user"]["client-certificate-data"]))


def test_rotation_near_expiry(dpf_server, tmp_path):
    """DPF's 24 h lifetime: 20 h left -> not due; 7 h left (under a
    third) -> renewed through a self-node CSR approved automatically, the
    same identity, a new 24 h certificate, the file still 0600."""
    srv = dpf_server
    p, old = short_cert_kubeconfig(srv, tmp_path, "dpu-r", 24, 20)
    r = dpfctl(["certificate", "renew"], str(p))
    assert r.returncode == 0, r.stderr
    assert "not due" in r.stdout
    assert kubeconfig_cert(p).serial_number == old.serial_number
    p, old = short_cert_kubeconfig(srv, tmp_path, "dpu-s", 24, 7)
    r = dpfctl(["certificate", "renew", "--timeout", "30s"], str(p),
               timeout=90)
    assert r.returncode == 0, r.stderr
    assert "renewed" in r.stdout
    new = kubeconfig_cert(p)
    assert new.serial_number != old.serial_number
    assert subject_parts(new) == (["system:node:dpu-s"], ["system:nodes"])
    life = (new.not_valid_after - new.not_valid_before).total_seconds()
    assert 24 * 3600 <= life <= 24 * 3600 + 120
    assert new.not_valid_after > old.not_valid_after
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    r = kubectl(["auth", "whoami", "-o", "json"], str(p))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"]["userInfo"]["username"] == \
        "system:node:dpu-s"
    st, lst = srv.json("GET", CSR_PATH, expect=200)
    (csr,) = lst["items"]
    assert csr["spec"]["username"] == "system:node:dpu-s"
    assert [c["reason"] for c in csr["status"]["conditions"]] == \
        ["AutoApproved"]
