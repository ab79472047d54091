"""certificates.k8s.io/v1 CertificateSigningRequests as kube-apiserver and
kube-controller-manager serve them: kubectl's approve/deny, the `approve`
verb on signers, validation, the requester recorded by the server, the
signers' rules (kubelet client, kube-apiserver client, kubelet serving,
dpu.nvidia.com/dms) and lifetimes."""
import base64
import os
import time

import pytest

from certutil import (CSR_PATH, csr_object, ekus, lifetime_s, load_cert,
                      make_csr, subject_parts, verify_with_ca)
from conftest import dpfctl, kubectl, wait_for
from test_api_rbac import User


def get_csr(srv, name):
    st, obj = srv.json("GET", f"{CSR_PATH}/{name}", expect=200)
    return obj


def wait_cert(srv, name, timeout=20):
    def issued():
        o = get_csr(srv, name)
        return o.get("status", {}).get("certificate")
    wait_for(issued, timeout, what=f"certificate of CSR {name}")
    return base64.b64decode(get_csr(srv, name)["status"]["certificate"])


def conditions(obj):
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def test_kubectl_approve_signs(dpf_server, tmp_path):
    """kubectl certificate approve -> a certificate that verifies against
    the CA, with the CSR's CN/O, client auth only and the lifetime asked
    for; the requester is the authenticated user, not the body's."""
    srv = dpf_server
    _, pem = make_csr(str(tmp_path / "a"), "alice", ["devs", "ops"])
    body = csr_object("alice", pem, "kubernetes.io/kube-apiserver-client",
                      expiration=3600,
                      extra_spec={"username": "evil",
                                  "groups": ["system:masters"]})
    srv.json("POST", CSR_PATH, body, expect=201)
    obj = get_csr(srv, "alice")
    assert obj["spec"]["username"] == "dpf-admin"
    assert "system:masters" in obj["spec"]["groups"]
    assert "evil" not in str(obj["spec"])
    # nothing is signed before approval
    time.sleep(1)
    assert "certificate" not in get_csr(srv, "alice").get("status", {})
    r = kubectl(["certificate", "approve", "alice"], srv.kubeconfig)
    assert r.returncode == 0, r.stderr
    assert "approved" in r.stdout
    der = wait_cert(srv, "alice")
    cert = load_cert(der)
    ok, out = verify_with_ca(der, srv.ca, str(tmp_path))
    assert ok, out
    cn, orgs = subject_parts(cert)
    assert cn == ["alice"] and sorted(orgs) == ["devs", "ops"]
    assert ekus(cert) == {"client auth"}
    assert 3600 <= lifetime_s(cert) <= 3600 + 120
    cond = conditions(get_csr(srv, "alice"))["Approved"]
    assert cond["status"] == "True" and cond["reason"] == "KubectlApprove"
    # kubectl get csr shows it
    r = kubectl(["get", "csr"], srv.kubeconfig)
    assert "alice" in r.stdout and "Approved" in r.stdout


def test_deny_is_final(dpf_server, tmp_path):
    srv = dpf_server
    _, pem = make_csr(str(tmp_path / "d"), "dora")
    srv.json("POST", CSR_PATH,
             csr_object("dora", pem, "kubernetes.io/kube-apiserver-client"),
             expect=201)
    r = dpfctl(["certificate", "deny", "dora"], srv.kubeconfig)
    assert r.returncode == 0, r.stderr
    assert "denied" in r.stdout
    time.sleep(1)
    obj = get_csr(srv, "dora")
    assert "Denied" in conditions(obj)
    assert "certificate" not in obj.get("status", {})
    # Approved and Denied exclude each other
    # (kubectl refuses on its side; the server refuses on its own)
    r = kubectl(["certificate", "approve", "dora"], srv.kubeconfig)
    assert r.returncode != 0 and "already Denied" in r.stderr
    r = dpfctl(["certificate", "approve", "dora"], srv.kubeconfig)
    assert r.returncode != 0
    assert "mutually exclusive" in r.stderr, r.stderr


def test_non_approver_refused(dpf_server, tmp_path):
    """update on certificatesigningrequests/approval is not enough: the
    verb approve on the signer is needed too, as Kubernetes asks."""
    srv = dpf_server
    signer = "kubernetes.io/kube-apiserver-client"
    rules = [{"apiGroups": ["certificates.k8s.io"],
              "resources": ["certificatesigningrequests",
                            "certificatesigningrequests/approval"],
              "verbs": ["get", "list", "update"]}]
    srv.json("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
             {"metadata": {"name": "csr-updater"}, "rules": rules},
             expect=201)
    srv.json("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
             {"metadata": {"name": "bob-csr"},
              "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                          "kind": "ClusterRole", "name": "csr-updater"},
              "subjects": [{"kind": "User", "name": "bob",
                            "apiGroup": "rbac.authorization.k8s.io"}]},
             expect=201)
    bob = User(srv, tmp_path, "bob")
    _, pem = make_csr(str(tmp_path / "c"), "carol")
    srv.json("POST", CSR_PATH, csr_object("carol", pem, signer), expect=201)
    r = kubectl(["certificate", "approve", "carol"], bob.kubeconfig)
    assert r.returncode != 0
    assert ('certificatesigningrequests.certificates.k8s.io "carol" is '
            'forbidden: user not permitted to approve requests with '
            f'signerName "{signer}"') in r.stderr, r.stderr
    assert "Approved" not in conditions(get_csr(srv, "carol"))
    # a user with no rights on the approval subresource: the gate's 403
    eve = User(srv, tmp_path, "eve")
    r = kubectl(["certificate", "approve", "carol"], eve.kubeconfig)
    assert r.returncode != 0 and "forbidden" in r.stderr
    # with approve on that signer, bob may
    srv.json("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
             {"metadata": {"name": "approver"},
              "rules": [{"apiGroups": ["certificates.k8s.io"],
                         "resources": ["signers"], "resourceNames": [signer],
                         "verbs": ["approve"]}]}, expect=201)
    srv.json("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
             {"metadata": {"name": "bob-approver"},
              "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                          "kind": "ClusterRole", "name": "approver"},
              "subjects": [{"kind": "User", "name": "bob",
                            "apiGroup": "rbac.authorization.k8s.io"}]},
             expect=201)

    def approved():
        r = kubectl(["certificate", "approve", "carol"], bob.kubeconfig)
        return r.returncode == 0
    wait_for(approved, 10, what="bob's approval after the grant")
    wait_cert(srv, "carol")


def test_status_cannot_approve(dpf_server, tmp_path):
    """An Approved condition only through the approval subresource."""
    srv = dpf_server
    _, pem = make_csr(str(tmp_path / "s"), "sam")
    srv.json("POST", CSR_PATH,
             csr_object("sam", pem, "kubernetes.io/kube-apiserver-client"),
             expect=201)
    obj = get_csr(srv, "sam")
    obj["status"] = {"conditions": [{"type": "Approved", "status": "True",
                                     "reason": "Sneaky"}]}
    st, e = srv.json("PUT", f"{CSR_PATH}/sam/status", obj)
    assert st == 422, e
    assert "approval subresource" in e["message"]


@pytest.mark.parametrize("mutate,field,words", [
    (lambda s: s.update(request=base64.b64encode(b"not a csr").decode()),
     "spec.request", "not a PEM CERTIFICATE REQUEST"),
    (lambda s: s.pop("signerName"), "spec.signerName", "Required value"),
    (lambda s: s.update(signerName="nodomain"), "spec.signerName",
     "fully qualified"),
    (lambda s: s.update(expirationSeconds=599), "spec.expirationSeconds",
     "less than 600 seconds"),
    (lambda s: s.update(usages=["client auth", "flying"]), "spec.usages[1]",
     "not a supported key usage"),
    (lambda s: s.update(usages=[]), "spec.usages", "Required value"),
])
def test_validation(dpf_server, tmp_path, mutate, field, words):
    srv = dpf_server
    _, pem = make_csr(str(tmp_path / "v"), "val")
    body = csr_object("val", pem, "kubernetes.io/kube-apiserver-client")
    mutate(body["spec"])
    st, e = srv.json("POST", CSR_PATH, body)
    assert st == 422, e
    assert 'CertificateSigningRequest.certificates.k8s.io "val" is invalid' \
        in e["message"]
    assert field in e["message"] and words in e["message"], e["message"]


def test_spec_is_immutable(dpf_server, tmp_path):
    srv = dpf_server
    _, pem = make_csr(str(tmp_path / "i"), "imm")
    srv.json("POST", CSR_PATH,
             csr_object("imm", pem, "kubernetes.io/kube-apiserver-client"),
             expect=201)
    obj = get_csr(srv, "imm")
    obj["spec"]["usages"] = ["client auth", "digital signature"]
    st, e = srv.json("PUT", f"{CSR_PATH}/imm", obj)
    assert st == 422 and "spec: Forbidden: field is immutable" in \
        e["message"], e


def test_signer_rules_fail(dpf_server, tmp_path):
    """An approved request that breaks its signer's rules is not signed:
    Failed, reason SignerValidationFailure, saying what is wrong."""
    srv = dpf_server
    cases = {
        "kubelet-cn": ("alice", ["system:nodes"], (),
                       "kubernetes.io/kube-apiserver-client-kubelet",
                       ["client auth"], "system:node:<name>"),
        "client-san": ("alice", [], ("DNS:a.example",),
                       "kubernetes.io/kube-apiserver-client",
                       ["client auth"], "DNS and IP names are not allowed"),
        "serving-noname": ("system:node:n1", ["system:nodes"], (),
                           "kubernetes.io/kubelet-serving",
                           ["server auth"], "at least one DNS or IP name"),
        "client-server-usage": ("alice", [], (),
                                "kubernetes.io/kube-apiserver-client",
                                ["server auth"], "usages not allowed"),
    }
    for name, (cn, orgs, sans, signer, usages, _) in cases.items():
        _, pem = make_csr(str(tmp_path / name), cn, orgs, sans)
        srv.json("POST", CSR_PATH, csr_object(name, pem, signer, usages),
                 expect=201)
        r = dpfctl(["certificate", "approve", name], srv.kubeconfig)
        assert r.returncode == 0, r.stderr
    for name, (*_, words) in cases.items():
        def failed():
            return "Failed" in conditions(get_csr(srv, name))
        wait_for(failed, 20, what=f"Failed condition on {name}")
        obj = get_csr(srv, name)
        c = conditions(obj)["Failed"]
        assert c["reason"] == "SignerValidationFailure"
        assert words in c["message"], (name, c["message"])
        assert "certificate" not in obj["status"]


def test_kubelet_serving_and_dms(dpf_server, tmp_path):
    """kubelet-serving: the node's DNS/IP names, server auth; the DMS
    signer: server and client certificates, 24 h by default."""
    srv = dpf_server
    _, pem = make_csr(str(tmp_path / "ks"), "system:node:n1",
                      ["system:nodes"], ("DNS:n1", "IP:10.0.0.7"))
    srv.json("POST", CSR_PATH, csr_object(
        "serving", pem, "kubernetes.io/kubelet-serving",
        ["digital signature", "server auth"]), expect=201)
    _, pem = make_csr(str(tmp_path / "dms"), "dpu-1-dms", [],
                      ("DNS:dpu-1-dms", "IP:192.168.1.5"))
    srv.json("POST", CSR_PATH, csr_object(
        "dms-server", pem, "dpu.nvidia.com/dms",
        ["digital signature", "key encipherment", "server auth"]),
        expect=201)
    _, pem = make_csr(str(tmp_path / "dmsc"), "dpf-provisioning-client")
    srv.json("POST", CSR_PATH, csr_object(
        "dms-client", pem, "dpu.nvidia.com/dms", ["client auth"],
        expiration=7200), expect=201)
    for n in ("serving", "dms-server", "dms-client"):
        r = dpfctl(["certificate", "approve", n], srv.kubeconfig)
        assert r.returncode == 0, r.stderr
    c = load_cert(wait_cert(srv, "serving"))
    assert ekus(c) == {"server auth"}
    san = c.extensions.get_extension_for_oid(
        __import__("cryptography").x509.oid.ExtensionOID
        .SUBJECT_ALTERNATIVE_NAME).value
    assert [str(n.value) for n in san] == ["n1", "10.0.0.7"]
    d = load_cert(wait_cert(srv, "dms-server"))
    assert ekus(d) == {"server auth"}
    assert 24 * 3600 <= lifetime_s(d) <= 24 * 3600 + 120
    ok, out = verify_with_ca(wait_cert(srv, "dms-server"), srv.ca,
                             str(tmp_path))
    assert ok, out
    e = load_cert(wait_cert(srv, "dms-client"))
    assert ekus(e) == {"client auth"}
    assert 7200 <= lifetime_s(e) <= 7200 + 120


def test_signing_survives_restart(dpf_server, tmp_path):
    """An approval whose signing was cut short by a restart is signed by
    the next server."""
    srv = dpf_server
    _, pem = make_csr(str(tmp_path / "r"), "rita")
    srv.json("POST", CSR_PATH,
             csr_object("rita", pem, "kubernetes.io/kube-apiserver-client"),
             expect=201)
    r = dpfctl(["certificate", "approve", "rita"], srv.kubeconfig)
    assert r.returncode == 0
    wait_cert(srv, "rita")
    srv.stop()
    srv.start()
    assert os.path.exists(srv.kubeconfig)
    assert get_csr(srv, "rita")["status"]["certificate"]


def test_approval_answer_holds_certificate(dpf_server, tmp_path):
    """The server signs for its own signers as it approves: the approval's
    answer already holds the certificate (the DPU controller reads it there
    instead of polling), and a denial's answer holds none."""
    srv = dpf_server
    for name, cond in (("dms-now", "Approved"), ("dms-no", "Denied")):
        _, pem = make_csr(str(tmp_path / name), f"{name}-cert", [],
                          ("IP:192.168.1.9",))
        _, made = srv.json("POST", CSR_PATH, csr_object(
            name, pem, "dpu.nvidia.com/dms",
            ["digital signature", "key encipherment", "server auth"]),
            expect=201)
        made["status"] = {"conditions": [{
            "type": cond, "status": "True", "reason": "Test",
            "message": "by the test"}]}
        _, out = srv.json("PUT", f"{CSR_PATH}/{name}/approval", made,
                          expect=200)
        if cond == "Approved":
            der = base64.b64decode(out["status"]["certificate"])
            ok, msg = verify_with_ca(der, srv.ca, str(tmp_path))
            assert ok, msg
        else:
            assert "certificate" not in out.get("status", {})
            time.sleep(0.5)
            assert "certificate" not in get_csr(srv, name).get("status", {})
