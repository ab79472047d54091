"""Identity and authorization as a Kubernetes user sees them.

Users come from client certificates issued with the server's CA (CN the
user, each O a group); only system:masters is admin; RBAC (Roles,
ClusterRoles, bindings, aggregation, the default roles) decides for
everyone else, with kube-apiserver's 403 messages, and `kubectl auth
can-i` (SelfSubjectAccessReview, SelfSubjectRulesReview) agrees with what
the server enforces. Creating roles and bindings cannot grant more than
the creator holds.
"""
import base64
import json
import os
import subprocess
import time

import pytest
import yaml

from conftest import kubectl, wait_for

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def issue_cert(srv, tmp_path, cn, groups=()):
    """A client certificate for cn with one O per group, signed by the
    server's own CA; returns (crt, key) paths."""
    d = tmp_path / ("user-" + cn.replace(":", "_"))
    d.mkdir()
    pki = os.path.join(srv.data_dir, "pki")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True,
                       cwd=d)
    subj = "".join(f"/O={g}" for g in groups) + f"/CN={cn}"
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
        "u.key")
    run("req", "-new", "-key", "u.key", "-subj", subj, "-out", "u.csr")
    (d / "ext").write_text("extendedKeyUsage=clientAuth\n")
    run("x509", "-req", "-in", "u.csr", "-CA", os.path.join(pki, "ca.crt"),
        "-CAkey", os.path.join(pki, "ca.key"), "-CAcreateserial",
        "-days", "2", "-extfile", "ext", "-out", "u.crt")
    os.chmod(d / "u.key", 0o600)
    return str(d / "u.crt"), str(d / "u.key")


def user_kubeconfig(srv, tmp_path, cn, groups=()):
    """A kubeconfig for a certificate user (no token)."""
    crt, key = issue_cert(srv, tmp_path, cn, groups)
    with open(srv.kubeconfig) as f:
        kc = yaml.safe_load(f)
    kc["users"] = [{"name": cn, "user": {
        "client-certificate-data": base64.b64encode(
            open(crt, "rb").read()).decode(),
        "client-key-data": base64.b64encode(open(key, "rb").read()).decode(),
    }}]
    kc["contexts"][0]["context"]["user"] = cn
    path = tmp_path / ("kc-" + cn.replace(":", "_"))
    path.write_text(yaml.safe_dump(kc))
    os.chmod(path, 0o600)
    return str(path), crt, key


class User:
    """Requests as a certificate user."""

    def __init__(self, srv, tmp_path, cn, groups=()):
        self.srv = srv
        self.name = cn
        self.kubeconfig, self.crt, self.key = user_kubeconfig(
            srv, tmp_path, cn, groups)

    def request(self, method, path, body=None, ctype="application/json"):
        ctx = self.srv.ssl_context()
        ctx.load_cert_chain(self.crt, self.key)
        import http.client
        conn = http.client.HTTPSConnection("127.0.0.1", self.srv.port,
                                           context=ctx, timeout=30)
        hdrs = {"Accept": "application/json"}
        if body is not None:
            if not isinstance(body, (str, bytes)):
                body = json.dumps(body)
            hdrs["Content-Type"] = ctype
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            try:
                return resp.status, (json.loads(data) if data else None)
            except ValueError:
                return resp.status, data
        finally:
            conn.close()

    def kubectl(self, *args, version="1.32"):
        return kubectl(list(args), self.kubeconfig, version=version)

    def can_i(self, *args, version="1.32"):
        r = self.kubectl("auth", "can-i", *args, version=version)
        # "yes", "no", or "no - <reason>"
        out = r.stdout.strip().split(" - ")[0]
        assert out in ("yes", "no"), (r.stdout, r.stderr)
        return out == "yes"


def admin_apply(srv, *objs):
    for o in objs:
        r = kubectl(["apply", "-f", "-"], srv.kubeconfig,
                    input=json.dumps(o))
        assert r.returncode == 0, r.stderr


def role(name, rules, ns="default", kind="Role", labels=None, agg=None):
    md = {"name": name}
    if kind == "Role":
        md["namespace"] = ns
    if labels:
        md["labels"] = labels
    o = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
         "metadata": md, "rules": rules}
    if agg:
        o["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": agg}]}
    return o


def binding(name, role_name, subjects, ns="default", kind="RoleBinding",
            role_kind="Role"):
    md = {"name": name}
    if kind == "RoleBinding":
        md["namespace"] = ns
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": md,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                        "kind": role_kind, "name": role_name},
            "subjects": subjects}


def user_subject(name):
    return {"kind": "User", "name": name,
            "apiGroup": "rbac.authorization.k8s.io"}


def rule(verbs, resources, groups=("",), names=None):
    r = {"apiGroups": list(groups), "resources": list(resources),
         "verbs": list(verbs)}
    if names:
        r["resourceNames"] = list(names)
    return r


def test_a_user_without_bindings_is_refused_and_can_i_agrees(dpf_server,
                                                             tmp_path):
    alice = User(dpf_server, tmp_path, "alice", groups=("dev",))
    st, body = alice.request("GET", "/api/v1/namespaces/default/pods")
    assert st == 403, body
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API '
        'group "" in the namespace "default"')
    assert body["details"] == {"kind": "pods"}

    st, body = alice.request("GET", "/api/v1/nodes/n1")
    assert st == 403
    assert body["message"] == (
        'nodes "n1" is forbidden: User "alice" cannot get resource "nodes" '
        'in API group "" at the cluster scope')

    st, body = alice.request(
        "POST", "/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/"
        "default/bfbs", {"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
                         "kind": "BFB", "metadata": {"name": "b"},
                         "spec": {"url": "http://127.0.0.1:1/b.bfb"}})
    assert st == 403
    assert body["message"].startswith(
        'bfbs.provisioning.dpu.nvidia.com is forbidden: User "alice" cannot '
        'create resource "bfbs" in API group "provisioning.dpu.nvidia.com"')

    # Discovery and the health endpoints stay open to every user.
    assert alice.request("GET", "/api")[0] == 200
    assert alice.request("GET", "/readyz")[0] == 200

    r = alice.kubectl("get", "pods")
    assert r.returncode != 0
    assert 'User "alice" cannot list resource "pods"' in r.stderr
    for version in ("1.32", "1.20"):
        assert not alice.can_i("list", "pods", version=version)
        assert not alice.can_i("create", "configmaps", version=version)
    # The admin kubeconfig is still admin, and can-i says so.
    r = kubectl(["auth", "can-i", "delete", "nodes"], dpf_server.kubeconfig)
    assert r.stdout.strip() == "yes"
    r = alice.kubectl("auth", "whoami", "-o", "json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["status"]["userInfo"]
    assert info["username"] == "alice"
    assert info["groups"] == ["dev", "system:authenticated"]


def test_a_certificate_in_system_masters_is_admin(dpf_server, tmp_path):
    root = User(dpf_server, tmp_path, "root2", groups=("system:masters",))
    assert root.request("GET", "/api/v1/namespaces/default/secrets")[0] == 200
    assert root.can_i("*", "*")
    # Anonymous: health only; anything else 401 as before.
    st, _, _ = dpf_server.request("GET", "/api/v1/pods", auth=False)
    assert st == 401


def test_a_granted_role_works_and_only_where_bound(dpf_server, tmp_path):
    alice = User(dpf_server, tmp_path, "alice")
    team = User(dpf_server, tmp_path, "bob", groups=("team-a",))
    admin_apply(
        dpf_server,
        role("pod-reader", [rule(["get", "list", "watch"], ["pods"])]),
        binding("alice-reads-pods", "pod-reader", [user_subject("alice")]),
        role("one-cm", [rule(["get", "update"], ["configmaps"],
                             names=["one"])]),
        binding("team-one-cm", "one-cm",
                [{"kind": "Group", "name": "team-a",
                  "apiGroup": "rbac.authorization.k8s.io"}]),
        role("status-writer", [rule(["patch"], ["pods/status"])]),
        binding("alice-status", "status-writer", [user_subject("alice")]))
    for n in ("one", "two"):
        dpf_server.json("POST", "/api/v1/namespaces/default/configmaps",
                        {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": n}, "data": {"a": "1"}},
                        expect=201)

    st, body = alice.request("GET", "/api/v1/namespaces/default/pods")
    assert st == 200, body
    r = alice.kubectl("get", "pods", "-n", "default")
    assert r.returncode == 0, r.stderr
    assert alice.can_i("list", "pods")
    assert alice.can_i("watch", "pods", "-n", "default")
    assert not alice.can_i("delete", "pods")
    assert not alice.can_i("list", "pods", "-n", "kube-public")
    st, body = alice.request("GET", "/api/v1/namespaces/kube-public/pods")
    assert st == 403
    assert 'in the namespace "kube-public"' in body["message"]
    assert alice.request("DELETE",
                         "/api/v1/namespaces/default/pods/x")[0] == 403
    # Subresources are their own resource.
    assert alice.can_i("patch", "pods", "--subresource=status")
    assert not alice.can_i("patch", "pods")

    # A group binding, limited by resourceNames.
    assert team.request("GET",
                        "/api/v1/namespaces/default/configmaps/one")[0] == 200
    st, body = team.request("GET",
                            "/api/v1/namespaces/default/configmaps/two")
    assert st == 403
    assert body["message"].startswith('configmaps "two" is forbidden')
    assert team.request("GET",
                        "/api/v1/namespaces/default/configmaps")[0] == 403
    assert team.can_i("get", "configmap/one")
    assert not team.can_i("get", "configmap/two")

    # Taking the binding away takes the access away at once.
    r = kubectl(["delete", "rolebinding", "alice-reads-pods"],
                dpf_server.kubeconfig)
    assert r.returncode == 0, r.stderr
    assert alice.request("GET", "/api/v1/namespaces/default/pods")[0] == 403
    assert not alice.can_i("list", "pods")


def test_default_roles_and_aggregation(dpf_server, tmp_path):
    carol = User(dpf_server, tmp_path, "carol")
    dave = User(dpf_server, tmp_path, "dave")
    r = kubectl(["get", "clusterroles", "-o", "name"], dpf_server.kubeconfig)
    for name in ("cluster-admin", "admin", "edit", "view"):
        assert f"clusterrole.rbac.authorization.k8s.io/{name}" in r.stdout
    crb = json.loads(kubectl(["get", "clusterrolebinding", "cluster-admin",
                              "-o", "json"], dpf_server.kubeconfig).stdout)
    assert crb["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io",
                                "kind": "Group", "name": "system:masters"}]

    # view in one namespace: reads pods, not secrets, writes nothing.
    admin_apply(dpf_server, binding("carol-view", "view",
                                    [user_subject("carol")],
                                    role_kind="ClusterRole"))
    assert carol.request("GET", "/api/v1/namespaces/default/pods")[0] == 200
    assert carol.request(
        "GET", "/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/"
        "default/dpusets")[0] == 200
    assert carol.request("GET",
                         "/api/v1/namespaces/default/secrets")[0] == 403
    assert not carol.can_i("create", "pods")
    r = carol.kubectl("auth", "can-i", "--list", "-n", "default")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(line.split()[0] == "pods" and "[get list watch]" in line
               for line in lines if line.strip()), r.stdout
    assert not any(line.split()[0] == "secrets" for line in lines
                   if line.strip())

    # A new role labelled for aggregation lands in its aggregator.
    admin_apply(
        dpf_server,
        role("agg", [], kind="ClusterRole", agg={"example.com/agg": "true"}),
        binding("dave-agg", "agg", [user_subject("dave")],
                kind="ClusterRoleBinding", role_kind="ClusterRole"))
    assert dave.request("GET", "/api/v1/nodes")[0] == 403
    admin_apply(dpf_server, role("part", [rule(["list"], ["nodes"])],
                                 kind="ClusterRole",
                                 labels={"example.com/agg": "true"}))

    def aggregated():
        st, cr = dpf_server.json("GET", RBAC + "/clusterroles/agg")
        return cr.get("rules") == [{"apiGroups": [""], "resources": ["nodes"],
                                    "verbs": ["list"]}]
    wait_for(aggregated, 20, what="aggregated rules")
    assert dave.request("GET", "/api/v1/nodes")[0] == 200
    assert dave.can_i("list", "nodes")
    # And a label taken off takes the rules out again.
    r = kubectl(["label", "clusterrole", "part", "example.com/agg-"],
                dpf_server.kubeconfig)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not dpf_server.json(
        "GET", RBAC + "/clusterroles/agg")[1].get("rules"), 20,
        what="rules removed")
    assert dave.request("GET", "/api/v1/nodes")[0] == 403


def test_roles_and_bindings_cannot_escalate(dpf_server, tmp_path):
    erin = User(dpf_server, tmp_path, "erin")
    # erin is namespace admin of default (may write roles and bindings).
    admin_apply(dpf_server, binding("erin-admin", "admin",
                                    [user_subject("erin")],
                                    role_kind="ClusterRole"))
    assert erin.can_i("create", "roles")
    assert erin.can_i("create", "rolebindings")

    # What she holds she may grant ...
    st, body = erin.request("POST", RBAC + "/namespaces/default/roles",
                            role("readers", [rule(["get"], ["pods"])]))
    assert st == 201, body
    st, body = erin.request(
        "POST", RBAC + "/namespaces/default/rolebindings",
        binding("frank-readers", "readers", [user_subject("frank")]))
    assert st == 201, body

    # ... what she does not, she may not.
    st, body = erin.request("POST", RBAC + "/namespaces/default/roles",
                            role("everything", [rule(["*"], ["*"],
                                                     groups=["*"])]))
    assert st == 403, body
    assert body["message"].startswith(
        'roles.rbac.authorization.k8s.io "everything" is forbidden: user '
        '"erin" (groups=["system:authenticated"]) is attempting to grant '
        'RBAC permissions not currently held:\n{APIGroups:["*"], '
        'Resources:["*"], Verbs:["*"]}')
    st, body = erin.request(
        "POST", RBAC + "/namespaces/default/rolebindings",
        binding("erin-root", "cluster-admin", [user_subject("erin")],
                role_kind="ClusterRole"))
    assert st == 403, body
    assert "is attempting to grant RBAC permissions not currently held" in \
        body["message"]
    r = erin.kubectl("create", "role", "nodes-too", "--verb=get",
                     "--resource=nodes", "-n", "default")
    assert r.returncode != 0
    assert "not currently held" in r.stderr
    # Cluster-wide objects are beyond her namespace admin anyway.
    st, body = erin.request("POST", RBAC + "/clusterrolebindings",
                            binding("erin-crb", "view",
                                    [user_subject("erin")],
                                    kind="ClusterRoleBinding",
                                    role_kind="ClusterRole"))
    assert st == 403
    assert "cannot create resource \"clusterrolebindings\"" in body["message"]
    st, _ = erin.request("GET", RBAC + "/namespaces/default/roles/everything")
    assert st == 404

    # The bind verb on a role lets a user bind it without holding it.
    admin_apply(
        dpf_server,
        role("bind-edit", [rule(["bind"], ["clusterroles"],
                                groups=["rbac.authorization.k8s.io"],
                                names=["edit"]),
                           rule(["create"], ["rolebindings"],
                                groups=["rbac.authorization.k8s.io"])],
             kind="ClusterRole"),
        binding("gina-bind-edit", "bind-edit", [user_subject("gina")],
                role_kind="ClusterRole"))
    gina = User(dpf_server, tmp_path, "gina")
    st, body = gina.request(
        "POST", RBAC + "/namespaces/default/rolebindings",
        binding("gina-edit", "edit", [user_subject("gina")],
                role_kind="ClusterRole"))
    assert st == 201, body
    st, body = gina.request(
        "POST", RBAC + "/namespaces/default/rolebindings",
        binding("gina-admin", "admin", [user_subject("gina")],
                role_kind="ClusterRole"))
    assert st == 403, body


def test_subject_access_review(dpf_server, tmp_path):
    admin_apply(dpf_server,
                role("cm-reader", [rule(["get"], ["configmaps"])]),
                binding("hank-cm", "cm-reader", [user_subject("hank")]))
    sar = {"apiVersion": "authorization.k8s.io/v1",
           "kind": "SubjectAccessReview",
           "spec": {"user": "hank", "resourceAttributes": {
               "verb": "get", "resource": "configmaps",
               "namespace": "default"}}}
    st, body = dpf_server.json(
        "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", sar)
    assert st == 201, body
    assert body["status"]["allowed"] is True
    sar["spec"]["resourceAttributes"]["verb"] = "delete"
    st, body = dpf_server.json(
        "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", sar)
    assert body["status"]["allowed"] is False
    # A user may not ask about others unless RBAC lets it.
    hank = User(dpf_server, tmp_path, "hank")
    st, body = hank.request(
        "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", sar)
    assert st == 403
    assert body["message"].startswith(
        'subjectaccessreviews.authorization.k8s.io is forbidden: User "hank" '
        'cannot create resource "subjectaccessreviews"')


def claims_of(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def as_token(srv, token, method, path, body=None):
    st, _, data = srv.request(method, path, body=body, auth=False,
                              headers={"Authorization": "Bearer " + token})
    return st, (json.loads(data) if data else None)


def token_kubeconfig(srv, tmp_path, token):
    with open(srv.kubeconfig) as f:
        kc = yaml.safe_load(f)
    kc["users"] = [{"name": "sa", "user": {"token": token}}]
    kc["contexts"][0]["context"]["user"] = "sa"
    path = tmp_path / "kc-token"
    path.write_text(yaml.safe_dump(kc))
    os.chmod(path, 0o600)
    return str(path)


def test_default_service_accounts_and_bound_tokens(dpf_server, tmp_path):
    kc = dpf_server.kubeconfig
    for ns in ("default", "kube-system"):
        st, sa = dpf_server.json(
            "GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")
        assert st == 200, sa
    assert kubectl(["create", "namespace", "tok"], kc).returncode == 0
    wait_for(lambda: dpf_server.json(
        "GET", "/api/v1/namespaces/tok/serviceaccounts/default")[0] == 200,
        20, what="default service account in a new namespace")
    sa = dpf_server.json(
        "GET", "/api/v1/namespaces/tok/serviceaccounts/default")[1]

    r = kubectl(["create", "token", "default", "-n", "tok"], kc)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    c = claims_of(token)
    assert c["sub"] == "system:serviceaccount:tok:default"
    assert c["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert c["kubernetes.io"]["serviceaccount"] == {
        "name": "default", "uid": sa["metadata"]["uid"]}
    assert 3000 <= c["exp"] - c["iat"] <= 3700
    assert token not in dpf_server.log_text()

    pods = "/api/v1/namespaces/tok/pods"
    st, body = as_token(dpf_server, token, "GET", pods)
    assert st == 403
    assert body["message"] == (
        'pods is forbidden: User "system:serviceaccount:tok:default" cannot '
        'list resource "pods" in API group "" in the namespace "tok"')
    admin_apply(dpf_server,
                role("pod-reader", [rule(["get", "list"], ["pods"])],
                     ns="tok"),
                binding("sa-reads", "pod-reader",
                        [{"kind": "ServiceAccount", "name": "default",
                          "namespace": "tok"}], ns="tok"))
    st, body = as_token(dpf_server, token, "GET", pods)
    assert st == 200, body
    r = kubectl(["auth", "whoami", "-o", "json"],
                token_kubeconfig(dpf_server, tmp_path, token))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:tok:default"
    assert info["groups"] == ["system:serviceaccounts",
                              "system:serviceaccounts:tok",
                              "system:authenticated"]

    # A token altered by one character, or for another audience, is 401.
    sig = token.rsplit(".", 1)
    bad = sig[0] + "." + ("A" if sig[1][0] != "A" else "B") + sig[1][1:]
    assert as_token(dpf_server, bad, "GET", pods)[0] == 401
    r = kubectl(["create", "token", "default", "-n", "tok", "--audience",
                 "vault"], kc)
    assert r.returncode == 0, r.stderr
    assert claims_of(r.stdout.strip())["aud"] == ["vault"]
    assert as_token(dpf_server, r.stdout.strip(), "GET", pods)[0] == 401
    r = kubectl(["create", "token", "default", "-n", "tok", "--duration",
                 "5m"], kc)
    assert r.returncode != 0
    assert "less than 10 minutes" in r.stderr

    # Bound to a pod: valid while that pod lives.
    dpf_server.json("POST", pods, {"apiVersion": "v1", "kind": "Pod",
                                   "metadata": {"name": "p"},
                                   "spec": {"containers": [
                                       {"name": "c", "image": "x"}]}},
                    expect=201)
    r = kubectl(["create", "token", "default", "-n", "tok",
                 "--bound-object-kind", "Pod", "--bound-object-name", "p"],
                kc)
    assert r.returncode == 0, r.stderr
    bound = r.stdout.strip()
    assert claims_of(bound)["kubernetes.io"]["pod"]["name"] == "p"
    assert as_token(dpf_server, bound, "GET", pods)[0] == 200
    dpf_server.json("DELETE", pods + "/p?gracePeriodSeconds=0", expect=200)
    assert as_token(dpf_server, bound, "GET", pods)[0] == 401

    # Deleting the service account revokes its tokens, also once the
    # account is created again under the same name.
    assert as_token(dpf_server, token, "GET", pods)[0] == 200
    assert kubectl(["delete", "sa", "default", "-n", "tok"],
                   kc).returncode == 0
    assert as_token(dpf_server, token, "GET", pods)[0] == 401
    wait_for(lambda: dpf_server.json(
        "GET", "/api/v1/namespaces/tok/serviceaccounts/default")[0] == 200,
        20, what="default service account created again")
    assert as_token(dpf_server, token, "GET", pods)[0] == 401
    # A user without the right to create tokens is refused.
    alice = User(dpf_server, tmp_path, "alice")
    st, body = alice.request(
        "POST", "/api/v1/namespaces/tok/serviceaccounts/default/token", {})
    assert st == 403
    assert body["message"].startswith(
        'serviceaccounts "default" is forbidden: User "alice" cannot create '
        'resource "serviceaccounts/token"')


def test_node_identity_writes_only_its_own_objects(dpf_server, tmp_path):
    srv = dpf_server
    for n in ("n1", "n2"):
        srv.json("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                           "metadata": {"name": n}},
                 expect=201)
    # kube-node-lease exists from the first start, as in Kubernetes
    srv.json("GET", "/api/v1/namespaces/kube-node-lease", expect=200)
    for pod, node, cm in (("p1", "n1", "cm1"), ("p2", "n2", "cm2")):
        srv.json("POST", "/api/v1/namespaces/default/configmaps",
                 {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": cm}, "data": {"k": "v"}}, expect=201)
        srv.json("POST", "/api/v1/namespaces/default/pods",
                 {"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": pod},
                  "spec": {"nodeName": node, "containers": [{
                      "name": "c", "image": "x",
                      "envFrom": [{"configMapRef": {"name": cm}}]}]}},
                 expect=201)
    n1 = User(srv, tmp_path, "system:node:n1", groups=("system:nodes",))
    merge = "application/merge-patch+json"
    cond = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}

    assert n1.request("GET", "/api/v1/nodes")[0] == 200
    st, body = n1.request("PATCH", "/api/v1/nodes/n1/status", cond, merge)
    assert st == 200, body
    st, body = n1.request("PATCH", "/api/v1/nodes/n2/status", cond, merge)
    assert st == 403, body
    assert body["message"] == (
        'nodes "n2" is forbidden: User "system:node:n1" cannot patch '
        'resource "nodes/status" in API group "" at the cluster scope: '
        'node "n1" is not allowed to modify node "n2"')
    r = n1.kubectl("label", "node", "n2", "x=y")
    assert r.returncode != 0
    assert 'node "n1" is not allowed to modify node "n2"' in r.stderr
    r = n1.kubectl("label", "node", "n1", "x=y")
    assert r.returncode == 0, r.stderr
    st, body = n1.request("POST", "/api/v1/nodes",
                          {"apiVersion": "v1", "kind": "Node",
                           "metadata": {"name": "n3"}})
    assert st == 403, body
    assert 'is not allowed to modify node "n3"' in body["message"]
    assert n1.can_i("patch", "nodes/n1", "--subresource=status")
    assert not n1.can_i("patch", "nodes/n2", "--subresource=status")
    r = n1.kubectl("auth", "can-i", "patch", "nodes/n2",
                   "--subresource=status")
    assert 'node "n1" is not allowed to modify node "n2"' in r.stdout

    # Its own Lease in kube-node-lease, no other.
    leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"

    def lease(name):
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name},
                "spec": {"holderIdentity": name}}
    st, body = n1.request("POST", leases, lease("n1"))
    assert st == 201, body
    body["spec"]["leaseDurationSeconds"] = 40
    assert n1.request("PUT", leases + "/n1", body)[0] == 200
    st, body = n1.request("POST", leases, lease("n2"))
    assert st == 403
    assert "can only access node lease with the same name" in body["message"]

    # Its pods' status, and what they use; not other nodes' pods.
    pods = "/api/v1/namespaces/default/pods"
    phase = {"status": {"phase": "Running"}}
    assert n1.request("PATCH", pods + "/p1/status", phase, merge)[0] == 200
    st, body = n1.request("PATCH", pods + "/p2/status", phase, merge)
    assert st == 403
    assert "spec.nodeName set to itself" in body["message"]
    assert n1.request("DELETE", pods + "/p2")[0] == 403
    assert n1.request("PATCH", pods + "/p1", {"metadata": {
        "labels": {"a": "b"}}}, merge)[0] == 403
    cms = "/api/v1/namespaces/default/configmaps"
    assert n1.request("GET", cms + "/cm1")[0] == 200
    st, body = n1.request("GET", cms + "/cm2")
    assert st == 403
    assert body["message"].endswith(
        "no relationship found between node 'n1' and this object")
    assert n1.request("GET", cms)[0] == 403
    # A plain user with the same name but not in system:nodes is nobody.
    fake = User(srv, tmp_path, "system:node:n2")
    assert fake.request("PATCH", "/api/v1/nodes/n2/status", cond,
                        merge)[0] == 403


def client_node_program():
    """rbac-client-node.mjs placed beside @kubernetes/client-node's
    node_modules (installed by bench/informer-bench.py's setup from the
    lockfile); None when node or the npm registry is not there."""
    import importlib.util
    import shutil
    from conftest import BUILD, REPO
    spec = importlib.util.spec_from_file_location(
        "informer_bench", os.path.join(REPO, "bench", "informer-bench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        mjs = mod.node_setup(BUILD)
    except SystemExit:
        return None
    dst = os.path.join(os.path.dirname(mjs), "rbac-client-node.mjs")
    shutil.copyfile(os.path.join(REPO, "tests", "system",
                                 "rbac-client-node.mjs"), dst)
    return dst


def test_client_node_as_a_service_account(dpf_server, tmp_path):
    prog = client_node_program()
    if prog is None:
        pytest.skip("@kubernetes/client-node not installable here "
                    "(node/npm or the registry missing)")
    r = kubectl(["create", "token", "default", "-n", "default"],
                dpf_server.kubeconfig)
    assert r.returncode == 0, r.stderr
    kc = token_kubeconfig(dpf_server, tmp_path, r.stdout.strip())

    def run():
        p = subprocess.run(["node", prog, "--kubeconfig", kc, "--namespace",
                            "default"], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)
    res = run()
    assert res["list"]["code"] == 403, res
    assert res["list"]["message"] == (
        'pods is forbidden: User "system:serviceaccount:default:default" '
        'cannot list resource "pods" in API group "" in the namespace '
        '"default"')
    assert res["create"]["code"] == 403, res
    admin_apply(dpf_server,
                role("node-client", [rule(["list"], ["pods"]),
                                     rule(["create"], ["configmaps"])]),
                binding("node-client", "node-client",
                        [{"kind": "ServiceAccount", "name": "default",
                          "namespace": "default"}]))
    res = run()
    assert res["list"] == {"code": 200, "message": ""}, res
    assert res["create"] == {"code": 201, "message": ""}, res
