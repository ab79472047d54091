"""Server-side apply and field ownership (issue 8, item 1): managedFields
per manager and operation in Kubernetes' fieldsV1 format, removal of
fields a manager stops applying, 409 conflicts in kube-apiserver's text
and causes, force, fieldManager rules, Update ownership of PUT/PATCH,
managedFields reset with [{}]; with raw HTTP, stock kubectl
(`apply --server-side`, `--force-conflicts`) and client-node
(tests/system/patch-client.mjs)."""
import json

import pytest
import yaml

from apiutil import PROV, bfb, call, configmap, path
from conftest import kubectl
from test_api_strategic import client_node, deployment, node_patch  # noqa

APPLY = "application/apply-patch+yaml"


def apply(srv, p, obj, manager=None, force=False, ns="default"):
    q = []
    if manager:
        q.append(f"fieldManager={manager}")
    if force:
        q.append("force=true")
    return call(srv, "PATCH", p + ("?" + "&".join(q) if q else ""),
                yaml.safe_dump(obj), APPLY)


def entries(obj):
    return {(m["manager"], m["operation"]): m
            for m in obj["metadata"].get("managedFields", [])}


def test_apply_records_ownership_and_removes_dropped_fields(dpf_server):
    s = dpf_server
    p = path("configmaps", "own")
    st, o = apply(s, p, configmap("own", {"a": "1", "b": "2"}), "alice")
    assert st == 201, o
    e = entries(o)[("alice", "Apply")]
    assert e["fieldsType"] == "FieldsV1" and e["apiVersion"] == "v1"
    assert e["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}}}
    assert e["time"].endswith("Z")
    # the same apply again writes nothing
    st, again = apply(s, p, configmap("own", {"a": "1", "b": "2"}), "alice")
    assert st == 200 and again["metadata"]["resourceVersion"] == \
        o["metadata"]["resourceVersion"]
    # another manager takes a key of its own by update (merge patch)
    st, o = call(s, "PATCH", p + "?fieldManager=bob",
                 {"data": {"c": "3"}}, "application/merge-patch+json")
    assert st == 200, o
    assert entries(o)[("bob", "Update")]["fieldsV1"] == \
        {"f:data": {"f:c": {}}}
    # alice stops applying b: it goes; c (bob's) stays
    st, o = apply(s, p, configmap("own", {"a": "1"}), "alice")
    assert st == 200, o
    assert o["data"] == {"a": "1", "c": "3"}
    assert entries(o)[("alice", "Apply")]["fieldsV1"] == \
        {"f:data": {"f:a": {}}}
    # a field another manager also owns is kept when one stops applying it
    st, o = apply(s, p, configmap("own", {"a": "1", "z": "9"}), "carol")
    assert st == 200, o
    st, o = apply(s, p, configmap("own", {"z": "9"}), "alice")
    assert st == 200 and o["data"]["a"] == "1"


def test_apply_conflict_and_force(dpf_server):
    s = dpf_server
    p = path("configmaps", "cf")
    assert apply(s, p, configmap("cf", {"a": "1", "b": "1"}), "alice")[0] \
        == 201
    st, o = apply(s, p, configmap("cf", {"a": "2", "b": "2"}), "bob")
    assert st == 409, o
    assert o["reason"] == "Conflict"
    assert o["message"] == ('Apply failed with 2 conflicts: conflicts with '
                            '"alice":\n- .data.a\n- .data.b')
    assert o["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "alice"',
         "field": ".data.a"},
        {"reason": "FieldManagerConflict", "message": 'conflict with "alice"',
         "field": ".data.b"}]
    st, o = apply(s, p, configmap("cf", {"a": "2"}), "bob")
    assert st == 409 and o["message"] == \
        'Apply failed with 1 conflict: conflict with "alice": .data.a'
    # the same value is no conflict: shared ownership
    st, o = apply(s, p, configmap("cf", {"b": "1"}), "bob")
    assert st == 200, o
    # an Update owner is named with its apiVersion and time
    st, o = call(s, "PUT", p + "?fieldManager=editor",
                 dict(o, data={"a": "1", "b": "1", "e": "1"}))
    assert st == 200, o
    t = entries(o)[("editor", "Update")]["time"]
    st, o = apply(s, p, configmap("cf", {"e": "2"}), "bob")
    assert st == 409 and o["message"] == \
        ('Apply failed with 1 conflict: conflict with "editor" using v1 '
         f'at {t}: .data.e')
    # force takes the field; the previous owner loses it
    st, o = apply(s, p, configmap("cf", {"a": "3", "b": "1"}), "bob",
                  force=True)
    assert st == 200 and o["data"]["a"] == "3"
    assert entries(o)[("alice", "Apply")]["fieldsV1"] == \
        {"f:data": {"f:b": {}}}


def test_apply_lists_by_key(dpf_server):
    s = dpf_server
    p = path("deployments", "lk", group="apps", version="v1")
    d = deployment("lk")
    st, o = apply(s, p, d, "ci")
    assert st == 201, o
    f = entries(o)[("ci", "Apply")]["fieldsV1"]
    c = f["f:spec"]["f:template"]["f:spec"]["f:containers"]
    app = c['k:{"name":"app"}']
    assert app["."] == {} and app["f:image"] == {}
    assert 'k:{"containerPort":80,"protocol":"TCP"}' in app["f:ports"]
    assert 'k:{"mountPath":"/data"}' in app["f:volumeMounts"]
    assert 'k:{"name":"A"}' in app["f:env"]
    # a second manager sets one env var; the first drops the sidecar
    st, o = apply(s, p, {"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": "lk"},
                         "spec": {"template": {"spec": {"containers": [
                             {"name": "app", "env": [{"name": "X",
                                                      "value": "x"}]}]}}}},
                  "other")
    assert st == 200, o
    d["spec"]["template"]["spec"]["containers"].pop()
    st, o = apply(s, p, d, "ci")
    assert st == 200, o
    cs = o["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in cs] == ["app"]
    assert [e["name"] for e in cs[0]["env"]] == ["A", "B", "X"]


def test_field_manager_rules_and_reset(dpf_server):
    s = dpf_server
    p = path("configmaps", "fm")
    st, o = apply(s, p, configmap("fm"))
    assert st == 422, o
    assert o["message"] == ('PatchOptions.meta.k8s.io "" is invalid: '
                            'fieldManager: Required value: is required for '
                            'apply patch')
    st, o = call(s, "POST", path("configmaps"), configmap("fm"),
                 headers={"User-Agent": "my-tool/1.2 (linux)"})
    assert st == 201, o
    assert entries(o)[("my-tool", "Update")]["fieldsV1"] == \
        {"f:data": {".": {}, "f:k": {}}}
    st, o = call(s, "PATCH", p + "?force=true", {"data": {"x": "1"}},
                 "application/merge-patch+json")
    assert st == 422 and "force: Forbidden: may not be specified for " \
        "non-apply patch" in o["message"]
    # a write may overwrite managedFields (as kubectl's migration of its
    # managers does); an empty list leaves them; [{}] clears them
    st, o = call(s, "PATCH", p, {"metadata": {"managedFields": [
        {"manager": "renamed", "operation": "Apply", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:data": {"f:k": {}}}}]}},
                 "application/merge-patch+json")
    assert st == 200, o
    assert list(entries(o)) == [("renamed", "Apply")]
    st, o = call(s, "PATCH", p, {"metadata": {"managedFields": []}},
                 "application/merge-patch+json")
    assert st == 200 and list(entries(o)) == [("renamed", "Apply")]
    st, o = apply(s, p, dict(configmap("fm"), metadata={
        "name": "fm", "managedFields": [{"manager": "x"}]}), "x")
    assert st == 400 and o["message"] == "metadata.managedFields must be nil"
    st, o = call(s, "PATCH", p, {"metadata": {"managedFields": [{}]}},
                 "application/merge-patch+json")
    assert st == 200 and "managedFields" not in o["metadata"], o
    # a status write is recorded with its subresource
    st, o = call(s, "POST", path("nodes", ns=None),
                 {"apiVersion": "v1", "kind": "Node",
                  "metadata": {"name": "fmn"}})
    st, o = call(s, "PATCH", path("nodes", "fmn", ns=None, sub="status") +
                 "?fieldManager=kubelet",
                 {"status": {"conditions": [{"type": "Ready",
                                             "status": "True"}]}},
                 "application/strategic-merge-patch+json")
    assert st == 200, o
    e = entries(o)[("kubelet", "Update")]
    assert e["subresource"] == "status"
    assert 'k:{"type":"Ready"}' in e["fieldsV1"]["f:status"]["f:conditions"]


def test_apply_on_custom_kind(dpf_server):
    s = dpf_server
    p = path("bfbs", "ab", group=PROV)
    st, o = apply(s, p, bfb("ab", url="http://example.com/a.bfb"), "ctrl")
    assert st == 201, o
    assert entries(o)[("ctrl", "Apply")]["fieldsV1"] == \
        {"f:spec": {"f:url": {}}}
    st, o = apply(s, p, bfb("ab", url="http://example.com/b.bfb"), "other")
    assert st == 409 and o["message"] == \
        'Apply failed with 1 conflict: conflict with "ctrl": .spec.url'


@pytest.mark.parametrize("version", ["1.32", "1.30", "1.20"])
def test_kubectl_server_side_apply(dpf_server, tmp_path, version):
    s = dpf_server
    f = tmp_path / "cm.yaml"
    f.write_text(yaml.safe_dump(configmap("ks", {"a": "1", "b": "2"})))
    r = kubectl(["apply", "--server-side", "-f", str(f)], s.kubeconfig,
                version=version)
    assert r.returncode == 0, r.stderr
    assert "serverside-applied" in r.stdout
    st, o = call(s, "GET", path("configmaps", "ks"))
    assert ("kubectl", "Apply") in entries(o)
    # fields dropped from the file go
    f.write_text(yaml.safe_dump(configmap("ks", {"a": "1"})))
    r = kubectl(["apply", "--server-side", "-f", str(f)], s.kubeconfig,
                version=version)
    assert r.returncode == 0, r.stderr
    st, o = call(s, "GET", path("configmaps", "ks"))
    assert o["data"] == {"a": "1"}
    # a conflict with another manager, then --force-conflicts
    assert apply(s, path("configmaps", "ks"),
                 configmap("ks", {"a": "other"}), "other",
                 force=True)[0] == 200
    r = kubectl(["apply", "--server-side", "-f", str(f)], s.kubeconfig,
                version=version)
    assert r.returncode != 0
    assert 'conflict with "other"' in r.stderr and ".data.a" in r.stderr
    r = kubectl(["apply", "--server-side", "--force-conflicts", "-f",
                 str(f)], s.kubeconfig, version=version)
    assert r.returncode == 0, r.stderr
    st, o = call(s, "GET", path("configmaps", "ks"))
    assert o["data"] == {"a": "1"}


def test_client_node_apply(dpf_server, client_node):  # noqa: F811
    s = dpf_server
    assert call(s, "POST", path("configmaps"),
                configmap("cna", {"a": "1"}))[0] == 201
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cna", "namespace": "default"},
            "data": {"a": "2", "n": "1"}}
    r = node_patch(client_node, s, "configmap", "cna", APPLY, body,
                   "default", "node-ctrl")
    assert r["code"] == 409, r
    assert json.loads(r["body"])["details"]["causes"][0]["field"] == ".data.a"
    r = node_patch(client_node, s, "configmap", "cna", APPLY, body,
                   "default", "node-ctrl", "force")
    assert r["code"] == 200, r
    assert r["object"]["data"] == {"a": "2", "n": "1"}
    mf = {(m["manager"], m["operation"]) for m in
          r["object"]["metadata"]["managedFields"]}
    assert ("node-ctrl", "Apply") in mf


def test_kubectl_migrates_client_side_apply(dpf_server, tmp_path):
    """kubectl 1.32's `apply --server-side` on an object it applied
    client-side moves kubectl-client-side-apply's fields to its own Apply
    entry (a JSON patch of managedFields), so a field later dropped from
    the file is removed, as with a real cluster."""
    s = dpf_server
    f = tmp_path / "cm.yaml"
    f.write_text(yaml.safe_dump(configmap("mig", {"a": "1", "b": "2"})))
    r = kubectl(["apply", "-f", str(f)], s.kubeconfig)
    assert r.returncode == 0, r.stderr
    st, o = call(s, "GET", path("configmaps", "mig"))
    assert ("kubectl-client-side-apply", "Update") in entries(o)
    r = kubectl(["apply", "--server-side", "-f", str(f)], s.kubeconfig)
    assert r.returncode == 0, r.stderr
    st, o = call(s, "GET", path("configmaps", "mig"))
    assert ("kubectl", "Apply") in entries(o)
    assert ("kubectl-client-side-apply", "Update") not in entries(o)
    f.write_text(yaml.safe_dump(configmap("mig", {"a": "1"})))
    r = kubectl(["apply", "--server-side", "-f", str(f)], s.kubeconfig)
    assert r.returncode == 0, r.stderr
    st, o = call(s, "GET", path("configmaps", "mig"))
    assert o["data"] == {"a": "1"}
