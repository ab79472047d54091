"""Strategic merge patch (issue 8, item 2) with the tools that send it:
stock kubectl 1.32 and 1.20 (`set image`, client-side `apply`, `patch`),
a small @kubernetes/client-node program (tests/system/patch-client.mjs:
a kubelet-style status patch, a typed Deployment patch), and raw HTTP for
each directive. Lists merge by the keys Kubernetes declares (containers,
env, volumes by name, volumeMounts by mountPath, ports by containerPort,
conditions by type); a strategic patch on a DPF custom kind is 415 as in
kube-apiserver.

client-node's node_modules come from the npm registry, installed into the
build directory by bench/informer-bench.py's node_setup (once, from its
lockfile); without node/npm or the registry the client-node tests skip
with one line saying so."""
import importlib.util
import json
import os
import shutil
import subprocess

import pytest
import yaml

from apiutil import PROV, bfb, call, path
from conftest import BUILD, REPO, kubectl

SMP = "application/strategic-merge-patch+json"
VERSIONS = ["1.32", "1.20"]
CR_415 = ("the body of the request was in an unknown format - accepted "
          "media types include: application/json-patch+json, "
          "application/merge-patch+json, application/apply-patch+yaml")


def k(srv, version, *args, ok=True, input=None):
    r = kubectl(list(args), srv.kubeconfig, version=version, input=input)
    if ok:
        assert r.returncode == 0, \
            f"kubectl {version} {args}: {r.returncode}\n{r.stderr}"
    return r


def deployment(name, image="nginx:1.0", env=None, kind="Deployment"):
    c = {"name": "app", "image": image,
         "env": env if env is not None else
         [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
         "ports": [{"containerPort": 80, "name": "http"},
                   {"containerPort": 443, "name": "https"}],
         "volumeMounts": [{"name": "data", "mountPath": "/data"},
                          {"name": "cfg", "mountPath": "/etc/cfg"}]}
    side = {"name": "side", "image": "busybox:1.36"}
    spec = {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [c, side],
                                  "volumes": [{"name": "data",
                                               "emptyDir": {}},
                                              {"name": "cfg",
                                               "configMap": {"name": "c"}}]}}}
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def containers(obj):
    return {c["name"]: c for c in obj["spec"]["template"]["spec"]["containers"]}


def get(srv, plural, name, group="", version=None, ns="default"):
    st, o = call(srv, "GET", path(plural, name, ns=ns, group=group,
                                  version=version))
    assert st == 200, o
    return o


# ---- kubectl ----

@pytest.mark.parametrize("version", VERSIONS)
def test_kubectl_set_image_keeps_the_rest(dpf_server, version):
    s = dpf_server
    st, o = call(s, "POST", path("deployments", group="apps", version="v1"),
                 deployment("si"))
    assert st == 201, o
    k(s, version, "-n", "default", "set", "image", "deployment/si",
      "app=nginx:2.0")
    o = get(s, "deployments", "si", group="apps", version="v1")
    c = containers(o)
    assert c["app"]["image"] == "nginx:2.0"
    assert [e["name"] for e in c["app"]["env"]] == ["A", "B"]
    assert [p["containerPort"] for p in c["app"]["ports"]] == [80, 443]
    assert [m["mountPath"] for m in c["app"]["volumeMounts"]] == \
        ["/data", "/etc/cfg"]
    assert c["side"]["image"] == "busybox:1.36"
    assert list(c) == ["app", "side"]
    assert o["metadata"]["generation"] == 2


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet"])
def test_kubectl_client_side_apply(dpf_server, tmp_path, version, kind):
    """kubectl apply (three-way strategic patch against last-applied):
    an env var dropped from the file goes, one another writer added stays,
    a changed image and a new port land, the sidecar is untouched."""
    s = dpf_server
    plural = kind.lower() + "s"
    name = f"csa-{kind.lower()}"
    f = tmp_path / "w.yaml"
    obj = deployment(name, kind=kind)
    f.write_text(yaml.safe_dump(obj))
    r = k(s, version, "apply", "-f", str(f))
    assert "created" in r.stdout
    # another writer adds an env var kubectl's file never had
    st, o = call(s, "PATCH", path(plural, name, group="apps", version="v1"),
                 {"spec": {"template": {"spec": {"containers": [
                     {"name": "app", "env": [{"name": "EXTRA",
                                              "value": "x"}]}]}}}}, SMP)
    assert st == 200, o
    assert [e["name"] for e in containers(o)["app"]["env"]] == \
        ["A", "B", "EXTRA"]
    app = obj["spec"]["template"]["spec"]["containers"][0]
    app["image"] = "nginx:3.0"
    app["env"] = [{"name": "A", "value": "10"}]
    app["ports"].append({"containerPort": 8080, "name": "alt"})
    if kind == "Deployment":
        obj["spec"]["strategy"] = {"type": "Recreate"}
    f.write_text(yaml.safe_dump(obj))
    r = k(s, version, "apply", "-f", str(f))
    assert "configured" in r.stdout
    o = get(s, plural, name, group="apps", version="v1")
    c = containers(o)
    assert c["app"]["image"] == "nginx:3.0"
    assert {e["name"]: e.get("value") for e in c["app"]["env"]} == \
        {"A": "10", "EXTRA": "x"}
    assert [p["containerPort"] for p in c["app"]["ports"]] == [80, 443, 8080]
    assert [m["mountPath"] for m in c["app"]["volumeMounts"]] == \
        ["/data", "/etc/cfg"]
    assert c["side"]["image"] == "busybox:1.36" and "env" not in c["side"]
    if kind == "Deployment":
        # $retainKeys: the RollingUpdate parameters went with the type
        assert o["spec"]["strategy"] == {"type": "Recreate"}
    # Applying the same file again changes nothing on the server (kubectl
    # may still send an order-only patch for the list another writer
    # extended, as it does against kube-apiserver).
    k(s, version, "apply", "-f", str(f))
    again = get(s, plural, name, group="apps", version="v1")
    assert again["metadata"]["resourceVersion"] == \
        o["metadata"]["resourceVersion"]


def test_kubectl_patch_node_status_condition(dpf_server):
    s = dpf_server
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    assert call(s, "POST", path("nodes", ns=None), node)[0] == 201
    conds = [{"type": t, "status": "False", "reason": "Fine",
              "message": "ok"} for t in
             ("MemoryPressure", "DiskPressure", "PIDPressure")]
    conds.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                  "message": "ready"})
    st, o = call(s, "PUT", path("nodes", "n1", ns=None, sub="status"),
                 dict(get(s, "nodes", "n1", ns=None),
                      status={"conditions": conds}))
    assert st == 200, o
    r = k(s, "1.32", "patch", "node", "n1", "--subresource=status", "-p",
          json.dumps({"status": {"conditions": [
              {"type": "DiskPressure", "status": "True",
               "reason": "KubeletHasDiskPressure"}]}}))
    assert "patched" in r.stdout
    got = {c["type"]: c for c in
           get(s, "nodes", "n1", ns=None)["status"]["conditions"]}
    assert list(got) == ["MemoryPressure", "DiskPressure", "PIDPressure",
                         "Ready"]
    assert got["DiskPressure"]["status"] == "True"
    assert got["DiskPressure"]["reason"] == "KubeletHasDiskPressure"
    assert got["DiskPressure"]["message"] == "ok"
    assert got["Ready"]["status"] == "True"


@pytest.mark.parametrize("version", VERSIONS)
def test_kubectl_strategic_patch_on_custom_kind_is_415(dpf_server, version):
    s = dpf_server
    assert call(s, "POST", path("bfbs", group=PROV), bfb("b415"))[0] == 201
    r = k(s, version, "-n", "default", "patch", "bfb", "b415", "-p",
          '{"metadata":{"labels":{"a":"b"}}}', ok=False)
    assert r.returncode != 0
    assert CR_415 in r.stderr, r.stderr
    # the merge patch kubectl offers instead works
    k(s, version, "-n", "default", "patch", "bfb", "b415", "--type=merge",
      "-p", '{"metadata":{"labels":{"a":"b"}}}')
    assert get(s, "bfbs", "b415", group=PROV)["metadata"]["labels"] == \
        {"a": "b"}


# ---- HTTP: each directive ----

def test_http_directives(dpf_server):
    s = dpf_server
    dp = path("deployments", "dir", group="apps", version="v1")
    st, o = call(s, "POST", path("deployments", group="apps", version="v1"),
                 deployment("dir"))
    assert st == 201, o
    assert o["spec"]["strategy"]["rollingUpdate"]
    # $setElementOrder reorders; $patch: delete drops one env var
    st, o = call(s, "PATCH", dp, {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
        "containers": [{"name": "app", "env": [
            {"name": "A", "$patch": "delete"}]}]}}}}, SMP)
    assert st == 200, o
    assert [c["name"] for c in o["spec"]["template"]["spec"]["containers"]] \
        == ["side", "app"]
    assert [e["name"] for e in containers(o)["app"]["env"]] == ["B"]
    # $retainKeys
    st, o = call(s, "PATCH", dp, {"spec": {"strategy": {
        "$retainKeys": ["type"], "type": "Recreate"}}}, SMP)
    assert st == 200, o
    assert o["spec"]["strategy"] == {"type": "Recreate"}
    # $patch: replace on a list and on an object
    st, o = call(s, "PATCH", dp, {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "ports": [
            {"containerPort": 9000}, {"$patch": "replace"}]}],
        "nodeSelector": {"$patch": "replace", "zone": "a"}}}}}, SMP)
    assert st == 200, o
    assert [p["containerPort"] for p in containers(o)["app"]["ports"]] == \
        [9000]
    assert o["spec"]["template"]["spec"]["nodeSelector"] == {"zone": "a"}
    # $deleteFromPrimitiveList on finalizers (a set), merge adds
    st, o = call(s, "PATCH", dp, {"metadata": {
        "finalizers": ["example.com/a", "example.com/b"]}}, SMP)
    assert st == 200 and o["metadata"]["finalizers"] == \
        ["example.com/a", "example.com/b"]
    st, o = call(s, "PATCH", dp, {"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
        "finalizers": ["example.com/c"]}}, SMP)
    assert st == 200, o
    assert o["metadata"]["finalizers"] == ["example.com/b", "example.com/c"]
    # no directive is ever stored
    assert "$" not in json.dumps(get(s, "deployments", "dir", group="apps",
                                     version="v1"))
    # malformed directives: 400 with apimachinery's text; a missing merge
    # key 422
    st, o = call(s, "PATCH", dp, {"spec": {"strategy": {
        "$retainKeys": "type"}}}, SMP)
    assert st == 400 and o["message"] == "invalid patch format of retainKeys"
    st, o = call(s, "PATCH", dp, {"metadata": {
        "$deleteFromPrimitiveList/finalizers": "x"}}, SMP)
    assert st == 400 and \
        o["message"] == "invalid patch format of primitive list"
    st, o = call(s, "PATCH", dp, {"spec": {"template": {"spec": {
        "containers": [{"image": "x"}]}}}}, SMP)
    assert st == 422 and \
        "does not contain declared merge key: name" in o["message"]
    st, o = call(s, "PATCH", path("bfbs", "nope", group=PROV), {}, SMP)
    assert st == 415 and o["reason"] == "UnsupportedMediaType" and \
        o["message"] == CR_415


def test_openapi_shows_patch_metadata(dpf_server):
    st, o = call(dpf_server, "GET", "/openapi/v3/api/v1")
    assert st == 200, o
    text = json.dumps(o)
    assert '"x-kubernetes-patch-merge-key": "containerPort"' in text
    assert '"x-kubernetes-list-map-keys": ["containerPort", "protocol"]' \
        in text
    assert '"x-kubernetes-patch-strategy": "merge,retainKeys"' in text


# ---- client-node ----

@pytest.fixture(scope="module")
def client_node():
    """The directory holding node_modules with client-node, and the
    program copied into it."""
    spec = importlib.util.spec_from_file_location(
        "informer_bench", os.path.join(REPO, "bench", "informer-bench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        mjs = mod.node_setup(BUILD)
    except SystemExit as e:
        pytest.skip(f"client-node not installable here (exit {e.code})")
    d = os.path.dirname(mjs)
    shutil.copyfile(os.path.join(REPO, "tests", "system",
                                 "patch-client.mjs"),
                    os.path.join(d, "patch-client.mjs"))
    return d


def node_patch(d, srv, target, name, ctype, body, ns="default", *extra):
    p = subprocess.run(["node", os.path.join(d, "patch-client.mjs"),
                        srv.kubeconfig, target, name, ns, ctype,
                        json.dumps(body), *extra],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_client_node_status_patches(dpf_server, client_node):
    s = dpf_server
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cn"},
            "status": {}}
    assert call(s, "POST", path("nodes", ns=None), node)[0] == 201
    cur = get(s, "nodes", "cn", ns=None)
    cur["status"] = {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady"},
        {"type": "MemoryPressure", "status": "False", "reason": "Fine"}]}
    assert call(s, "PUT", path("nodes", "cn", ns=None, sub="status"),
                cur)[0] == 200
    r = node_patch(client_node, s, "node-status", "cn", SMP,
                   {"status": {"conditions": [
                       {"type": "MemoryPressure", "status": "True",
                        "reason": "KubeletHasInsufficientMemory"}]}})
    assert r["code"] == 200, r
    got = {c["type"]: c for c in r["object"]["status"]["conditions"]}
    assert got["Ready"]["status"] == "True"
    assert got["MemoryPressure"] == {"type": "MemoryPressure",
                                     "status": "True",
                                     "reason": "KubeletHasInsufficientMemory"}

    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "cp", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    assert call(s, "POST", path("pods"), pod)[0] == 201
    cur = get(s, "pods", "cp")
    cur["status"] = {"phase": "Running", "conditions": [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Ready", "status": "False"}]}
    assert call(s, "PUT", path("pods", "cp", sub="status"), cur)[0] == 200
    r = node_patch(client_node, s, "pod-status", "cp", SMP,
                   {"status": {"conditions": [{"type": "Ready",
                                               "status": "True"}]}})
    assert r["code"] == 200, r
    assert [(c["type"], c["status"]) for c in
            r["object"]["status"]["conditions"]] == \
        [("PodScheduled", "True"), ("Ready", "True")]
    assert r["object"]["status"]["phase"] == "Running"


def test_client_node_deployment_and_custom_kind(dpf_server, client_node):
    s = dpf_server
    assert call(s, "POST", path("deployments", group="apps", version="v1"),
                deployment("cnd"))[0] == 201
    r = node_patch(client_node, s, "deployment", "cnd", SMP,
                   {"spec": {"template": {"spec": {"containers": [
                       {"name": "app", "image": "nginx:9"}]}}}})
    assert r["code"] == 200, r
    c = containers(r["object"])
    assert c["app"]["image"] == "nginx:9"
    assert [e["name"] for e in c["app"]["env"]] == ["A", "B"]
    assert "side" in c
    assert call(s, "POST", path("bfbs", group=PROV), bfb("cnb"))[0] == 201
    r = node_patch(client_node, s, "bfb", "cnb", SMP,
                   {"metadata": {"labels": {"a": "b"}}})
    assert r["code"] == 415, r
    assert json.loads(r["body"])["message"] == CR_415
