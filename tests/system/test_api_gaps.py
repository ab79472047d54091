"""The smaller Kubernetes API gaps (issue 8 item 6), measured with stock
kubectl (1.32 and 1.20) and plain HTTP: the scale subresource, built-in
kinds posted without apiVersion/kind, aggregated discovery."""
import json
import os
import subprocess
import time

import pytest

from apiutil import Watch, call, path
from conftest import KUBECTL, DpfServer, binary, kubectl, wait_for

AGG_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGG_V2B1 = ("application/json;g=apidiscovery.k8s.io;v=v2beta1;"
            "as=APIGroupDiscoveryList")


def deployment(name, replicas=2, labels=None):
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas,
                     "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [
                                      {"name": "c",
                                       "image": "busybox:1.36"}]}}}}


def workload(kind, name, replicas=2):
    obj = deployment(name, replicas)
    obj["kind"] = kind
    if kind == "StatefulSet":
        obj["spec"]["serviceName"] = name
    return obj


PLURAL = {"Deployment": "deployments", "ReplicaSet": "replicasets",
          "StatefulSet": "statefulsets"}


def need_kubectl(version):
    if not os.path.exists(KUBECTL[version]):
        pytest.fail(f"kubectl {version} missing at {KUBECTL[version]}: "
                    "run scripts/install-deps (or link .deps)")


# ---------------------------------------------------------------- scale

@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet"])
def test_scale_subresource_get_put_patch(dpf_server, kind):
    plural = PLURAL[kind]
    p = path(plural, group="apps", version="v1")
    st, obj = call(dpf_server, "POST", p, workload(kind, "web", 2))
    assert st == 201, obj
    # The controller is not running: report a status to see it in Scale.
    obj["status"] = {"replicas": 2}
    st, _ = call(dpf_server, "PUT", p + "/web/status", obj)
    assert st == 200
    st, sc = call(dpf_server, "GET", p + "/web/scale")
    assert st == 200, sc
    assert sc["apiVersion"] == "autoscaling/v1" and sc["kind"] == "Scale"
    assert sc["metadata"]["name"] == "web"
    assert sc["spec"] == {"replicas": 2}
    assert sc["status"] == {"replicas": 2, "selector": "app=web"}
    # PUT: only spec.replicas of the object changes.
    sc["spec"]["replicas"] = 5
    st, sc2 = call(dpf_server, "PUT", p + "/web/scale", sc)
    assert st == 200, sc2
    assert sc2["spec"]["replicas"] == 5
    st, o = call(dpf_server, "GET", p + "/web")
    assert o["spec"]["replicas"] == 5
    assert o["status"] == {"replicas": 2}
    assert o["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "busybox:1.36"
    # A PUT with the old resourceVersion is a conflict.
    st, err = call(dpf_server, "PUT", p + "/web/scale", sc)
    assert st == 409, err
    # PATCH (merge) and a negative count.
    st, sc3 = call(dpf_server, "PATCH", p + "/web/scale",
                   {"spec": {"replicas": 1}},
                   ctype="application/merge-patch+json")
    assert st == 200 and sc3["spec"]["replicas"] == 1, sc3
    st, err = call(dpf_server, "PATCH", p + "/web/scale",
                   {"spec": {"replicas": -1}},
                   ctype="application/merge-patch+json")
    assert st == 422, err
    assert 'Scale.autoscaling "web" is invalid: spec.replicas' in \
        err["message"]
    st, o = call(dpf_server, "GET", p + "/web")
    assert o["spec"]["replicas"] == 1


def test_scale_not_served_for_other_kinds(dpf_server):
    p = path("daemonsets", group="apps", version="v1")
    obj = workload("DaemonSet", "ds")
    del obj["spec"]["replicas"]
    st, _ = call(dpf_server, "POST", p, obj)
    assert st == 201
    st, _ = call(dpf_server, "GET", p + "/ds/scale")
    assert st == 404
    st, _ = call(dpf_server, "GET", path("deployments", "none", group="apps",
                                         version="v1", sub="scale"))
    assert st == 404


@pytest.mark.parametrize("version", ["1.32", "1.30", "1.20"])
def test_kubectl_scale_deployment(dpf_server, version):
    need_kubectl(version)
    p = path("deployments", group="apps", version="v1")
    st, _ = call(dpf_server, "POST", p, deployment("web", 2))
    assert st == 201
    r = kubectl(["scale", "deployment", "web", "--replicas=4"],
                dpf_server.kubeconfig, version=version)
    assert r.returncode == 0, r.stderr
    assert "deployment.apps/web scaled" in r.stdout
    st, o = call(dpf_server, "GET", p + "/web")
    assert o["spec"]["replicas"] == 4
    # --current-replicas is a precondition kubectl checks on the Scale.
    r = kubectl(["scale", "deployment", "web", "--current-replicas=3",
                 "--replicas=1"], dpf_server.kubeconfig, version=version)
    assert r.returncode != 0
    assert "3" in r.stderr
    st, o = call(dpf_server, "GET", p + "/web")
    assert o["spec"]["replicas"] == 4


# ------------------------------------------- bodies without apiVersion/kind

def test_builtin_kind_without_apiversion_and_kind(dpf_server):
    body = {"metadata": {"name": "bare"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    st, obj = call(dpf_server, "POST", path("pods"), body)
    assert st == 201, obj
    assert obj["apiVersion"] == "v1" and obj["kind"] == "Pod"
    st, got = call(dpf_server, "GET", path("pods", "bare"))
    assert got["kind"] == "Pod" and got["apiVersion"] == "v1"
    # PUT without them too.
    del got["apiVersion"]
    del got["kind"]
    got["metadata"]["labels"] = {"a": "b"}
    st, upd = call(dpf_server, "PUT", path("pods", "bare"), got)
    assert st == 200, upd
    assert upd["kind"] == "Pod" and upd["metadata"]["labels"] == {"a": "b"}
    # apps/v1 kinds as well.
    d = deployment("bare-deploy")
    del d["apiVersion"], d["kind"]
    st, obj = call(dpf_server, "POST",
                   path("deployments", group="apps", version="v1"), d)
    assert st == 201, obj
    assert obj["apiVersion"] == "apps/v1" and obj["kind"] == "Deployment"


def test_mismatching_or_missing_type_still_refused(dpf_server):
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x"}, "data": {}}
    st, err = call(dpf_server, "POST", path("pods"), body)
    assert st == 400, err
    assert "the kind in the data (ConfigMap) does not match the expected " \
        "kind (Pod)" in err["message"]
    body = {"apiVersion": "apps/v1", "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    st, err = call(dpf_server, "POST", path("pods"), body)
    assert st == 400, err
    assert "the API version in the data (apps/v1) does not match the " \
        "expected API version (v1)" in err["message"]
    # A custom resource must say what it is, as with a CRD.
    bfb = {"metadata": {"name": "b"}, "spec": {"url": "http://x/y.bfb"}}
    st, err = call(dpf_server, "POST",
                   path("bfbs", group="provisioning.dpu.nvidia.com"), bfb)
    assert st == 400, err
    assert "Object 'Kind' is missing" in err["message"]


# ------------------------------------------------- aggregated discovery

def _agg(dpf_server, p, accept):
    st, hdrs, data = dpf_server.request("GET", p, headers={"Accept": accept})
    assert st == 200
    return hdrs["content-type"], json.loads(data)


def _resources(doc):
    out = {}
    for g in doc["items"]:
        for v in g["versions"]:
            for r in v["resources"]:
                out[(g["metadata"].get("name", ""), v["version"],
                     r["resource"])] = r
    return out


@pytest.mark.parametrize("version", ["v2", "v2beta1"])
def test_aggregated_discovery_shape(dpf_server, version):
    accept = AGG_V2 if version == "v2" else AGG_V2B1
    ct, doc = _agg(dpf_server, "/apis", accept + ",application/json")
    assert ct.replace(" ", "") == accept
    assert doc["kind"] == "APIGroupDiscoveryList"
    assert doc["apiVersion"] == f"apidiscovery.k8s.io/{version}"
    names = [g["metadata"]["name"] for g in doc["items"]]
    assert "apps" in names and "provisioning.dpu.nvidia.com" in names
    assert "" not in names
    res = _resources(doc)
    dep = res[("apps", "v1", "deployments")]
    assert dep["scope"] == "Namespaced"
    assert dep["singularResource"] == "deployment"
    assert dep["responseKind"] == {"group": "apps", "version": "v1",
                                   "kind": "Deployment"}
    assert "deploy" in dep["shortNames"] and "all" in dep["categories"]
    assert set(dep["verbs"]) >= {"get", "list", "watch", "create", "patch",
                                 "update", "delete", "deletecollection"}
    subs = {s["subresource"]: s for s in dep["subresources"]}
    assert subs["scale"]["responseKind"] == {
        "group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert set(subs["status"]["verbs"]) == {"get", "patch", "update"}
    dpu = res[("provisioning.dpu.nvidia.com", "v1alpha1", "dpus")]
    assert "status" in {s["subresource"] for s in dpu["subresources"]}
    # /api: the core group alone, with the namespaces' finalize.
    ct, core = _agg(dpf_server, "/api", accept)
    assert len(core["items"]) == 1 and core["items"][0]["versions"][0][
        "version"] == "v1"
    cres = _resources(core)
    ns = cres[("", "v1", "namespaces")]
    assert ns["scope"] == "Cluster"
    assert "finalize" in {s["subresource"] for s in ns["subresources"]}
    assert "po" in cres[("", "v1", "pods")]["shortNames"]


def test_plain_discovery_without_aggregated_accept(dpf_server):
    st, hdrs, data = dpf_server.request("GET", "/apis")
    assert st == 200
    assert json.loads(data)["kind"] == "APIGroupList"
    st, rl = call(dpf_server, "GET", "/apis/apps/v1")
    scale = [r for r in rl["resources"] if r["name"] == "deployments/scale"]
    assert scale and scale[0]["group"] == "autoscaling" and \
        scale[0]["kind"] == "Scale"


def test_kubectl_132_uses_aggregated_discovery(dpf_server):
    need_kubectl("1.32")
    r = kubectl(["api-resources", "-v=7"], dpf_server.kubeconfig)
    assert r.returncode == 0, r.stderr
    # kubectl logs the aggregated request and never falls back to the
    # per-group documents.
    assert "apidiscovery.k8s.io" in r.stderr
    assert "/apis/apps/v1" not in r.stderr, r.stderr[-2000:]
    lines = [ln.split() for ln in r.stdout.splitlines()]
    dep = [ln for ln in lines if ln and ln[0] == "deployments"]
    assert dep and dep[0][1] == "deploy" and dep[0][2] == "apps/v1"


# ------------------------------------------------- events.k8s.io/v1

EV = "events.k8s.io"


def new_event(name, note="pulled image", reason="Pulled"):
    return {"apiVersion": f"{EV}/v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "default"},
            "eventTime": "2026-01-02T03:04:05.000000Z",
            "reportingController": "dpf.nvidia.com/test",
            "reportingInstance": "test-1",
            "action": "Pull", "reason": reason, "type": "Normal",
            "note": note,
            "regarding": {"apiVersion": "v1", "kind": "Pod",
                          "name": "web-1", "namespace": "default"},
            "series": {"count": 2,
                       "lastObservedTime": "2026-01-02T03:05:00.000000Z"}}


def test_events_k8s_io_shares_storage_with_core_events(dpf_server):
    p = path("events", group=EV, version="v1")
    st, ev = call(dpf_server, "POST", p, new_event("e1"))
    assert st == 201, ev
    assert ev["apiVersion"] == f"{EV}/v1" and ev["note"] == "pulled image"
    assert ev["regarding"]["name"] == "web-1"
    assert ev["reportingController"] == "dpf.nvidia.com/test"
    # The same object through core/v1, with core's field names.
    st, core = call(dpf_server, "GET", path("events", "e1"))
    assert st == 200, core
    assert core["apiVersion"] == "v1"
    assert core["message"] == "pulled image"
    assert core["involvedObject"]["name"] == "web-1"
    assert core["reportingComponent"] == "dpf.nvidia.com/test"
    assert core["series"]["count"] == 2
    assert core["metadata"]["uid"] == ev["metadata"]["uid"]
    # A core Event is listed by events.k8s.io with the new names.
    st, _ = call(dpf_server, "POST", path("events"), {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "e2", "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": "n1"},
        "reason": "Rebooted", "message": "node rebooted", "type": "Warning",
        "source": {"component": "kubelet"}, "count": 3})
    assert st == 201
    st, lst = call(dpf_server, "GET", p)
    assert st == 200 and lst["kind"] == "EventList", lst
    items = {i["metadata"]["name"]: i for i in lst["items"]}
    assert set(items) == {"e1", "e2"}
    e2 = items["e2"]
    assert e2["note"] == "node rebooted"
    assert e2["regarding"] == {"kind": "Node", "name": "n1"}
    assert e2["deprecatedSource"] == {"component": "kubelet"}
    assert e2["deprecatedCount"] == 3
    assert "message" not in e2 and "involvedObject" not in e2
    # Patch through the new API, read through the old.
    st, pe = call(dpf_server, "PATCH", p + "/e1", {"note": "again"},
                  ctype="application/merge-patch+json")
    assert st == 200 and pe["note"] == "again", pe
    st, core = call(dpf_server, "GET", path("events", "e1"))
    assert core["message"] == "again"
    # Delete through the new API: gone from both.
    st, _ = call(dpf_server, "DELETE", p + "/e1")
    assert st == 200
    st, _ = call(dpf_server, "GET", path("events", "e1"))
    assert st == 404
    st, err = call(dpf_server, "GET", p + "/e1")
    assert st == 404 and 'events.events.k8s.io "e1" not found' in \
        err["message"], err


def test_events_k8s_io_validation(dpf_server):
    p = path("events", group=EV, version="v1")
    ev = new_event("bad")
    del ev["eventTime"], ev["reportingController"]
    st, err = call(dpf_server, "POST", p, ev)
    assert st == 422, err
    assert "eventTime: Required value" in err["message"]
    assert "reportingController: Required value" in err["message"]
    ev = new_event("bad")
    ev["type"] = "Odd"
    st, err = call(dpf_server, "POST", p, ev)
    assert st == 422 and "type" in err["message"], err


def test_kubectl_events(dpf_server):
    need_kubectl("1.32")
    p = path("events", group=EV, version="v1")
    st, _ = call(dpf_server, "POST", p, new_event("e1", note="hello note"))
    assert st == 201
    r = kubectl(["get", "events.events.k8s.io", "-n", "default"],
                dpf_server.kubeconfig)
    assert r.returncode == 0, r.stderr
    assert "hello note" in r.stdout and "pod/web-1" in r.stdout
    r = kubectl(["get", f"events.{EV}", "e1", "-o",
                 "jsonpath={.note}/{.regarding.kind}"], dpf_server.kubeconfig)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello note/Pod"
    r = kubectl(["events", "-n", "default"], dpf_server.kubeconfig)
    assert r.returncode == 0, r.stderr
    assert "hello note" in r.stdout and "Pulled" in r.stdout
    r = kubectl(["get", "events", "-n", "default"], dpf_server.kubeconfig)
    assert r.returncode == 0, r.stderr
    assert "hello note" in r.stdout


def core_event(name, message):
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "default"},
            "involvedObject": {"kind": "Node", "name": "n-" + name},
            "reason": "Tested", "message": message, "type": "Normal",
            "source": {"component": "test"}}


def test_event_ttl(tmp_path):
    """--event-ttl deletes Events not written for that long, as
    kube-apiserver's does: an Event written again lives on, a watcher sees
    the deletion, and Events (kept out of the watch cache's index, as
    kube-apiserver keeps them) still list with selectors from the store."""
    data = tmp_path / "dpf-state"
    data.mkdir()
    srv = DpfServer(str(data), extra_args=["--event-ttl", "6s"]).start()
    try:
        st, lst = call(srv, "GET", path("events"))
        assert st == 200 and lst["items"] == [], lst
        w = Watch(srv, path("events") + "?watch=1&resourceVersion="
                  + lst["metadata"]["resourceVersion"])
        assert w.status == 200
        t0 = time.monotonic()
        for name in ("old", "again"):
            st, body = call(srv, "POST", path("events"),
                            core_event(name, "first"))
            assert st == 201, body
        time.sleep(3)
        st, body = call(srv, "POST", path("events"), core_event("new", "x"))
        assert st == 201, body
        st, body = call(srv, "PATCH", path("events", "again"),
                        {"message": "written again"},
                        ctype="application/merge-patch+json")
        assert st == 200, body
        assert call(srv, "GET", path("events", "old"))[0] == 200

        # A list with a field selector is served (from the store).
        st, sel = call(srv, "GET", path("events")
                       + "?fieldSelector=involvedObject.name%3Dn-new")
        assert st == 200, sel
        assert [i["metadata"]["name"] for i in sel["items"]] == ["new"]
        # The store has no history: an older exact revision is 410.
        st, gone = call(srv, "GET", path("events")
                        + "?resourceVersionMatch=Exact&resourceVersion="
                        + lst["metadata"]["resourceVersion"])
        assert st == 410 and gone["reason"] == "Expired", gone

        wait_for(lambda: call(srv, "GET", path("events", "old"))[0] == 404,
                 20, what="the old Event to expire")
        assert time.monotonic() - t0 >= 6
        names = {i["metadata"]["name"]
                 for i in call(srv, "GET", path("events"))[1]["items"]}
        assert names == {"again", "new"}, names
        evs = w.events_until(
            lambda es: any(e["type"] == "DELETED" for e in es), timeout=10)
        deleted = [e for e in evs if e["type"] == "DELETED"]
        assert deleted[0]["object"]["metadata"]["name"] == "old"
        assert deleted[0]["object"]["message"] == "first"
        w.close()

        wait_for(lambda: call(srv, "GET", path("events"))[1]["items"] == [],
                 20, what="the rewritten Events to expire")
        assert time.monotonic() - t0 >= 9
    finally:
        assert srv.stop() == 0, srv.log_text()[-3000:]


def test_event_ttl_flag_checked(tmp_path):
    r = subprocess.run([binary("dpf-server", "dpf-server"), "--event-ttl",
                        "soon", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert '--event-ttl: "soon" is not a duration' in r.stderr


# ------------------------------------------------------------- OpenAPI

PB = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def test_openapi_v2_json_definitions_and_paths(dpf_server):
    st, doc = call(dpf_server, "GET", "/openapi/v2")
    assert st == 200
    assert doc["swagger"] == "2.0"
    defs = doc["definitions"]
    dep = defs["io.k8s.api.apps.v1.Deployment"]
    assert dep["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "version": "v1", "kind": "Deployment"}]
    assert dep["properties"]["metadata"]["$ref"] == \
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    surge = dep["properties"]["spec"]["properties"]["strategy"][
        "properties"]["rollingUpdate"]["properties"]["maxSurge"]
    assert surge["type"] == "string" and surge["format"] == "int-or-string"
    assert surge["x-kubernetes-int-or-string"] is True
    assert "anyOf" not in surge
    ds = defs["com.nvidia.dpu.provisioning.v1alpha1.DPUSet"]
    assert ds["properties"]["spec"]["properties"]["strategy"]
    patch = doc["paths"][
        "/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/{namespace}"
        "/dpusets/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "DPUSet"
    assert "dryRun" in [p["name"] for p in patch["parameters"]]
    # The protobuf encoding kubectl asks for is the same document.
    st, hdrs, data = dpf_server.request("GET", "/openapi/v2",
                                        headers={"Accept": PB})
    assert st == 200 and len(data) > 10000
    assert b"com.nvidia.dpu.provisioning.v1alpha1.DPUSet" in data
    assert b"x-kubernetes-group-version-kind" in data


def test_openapi_v3_int_or_string(dpf_server):
    st, doc = call(dpf_server, "GET", "/openapi/v3/apis/apps/v1")
    assert st == 200
    dep = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    surge = dep["properties"]["spec"]["properties"]["strategy"][
        "properties"]["rollingUpdate"]["properties"]["maxSurge"]
    assert surge["x-kubernetes-int-or-string"] is True


@pytest.mark.parametrize("version", ["1.32", "1.30", "1.20"])
def test_kubectl_explain_dpuset_strategy(dpf_server, version):
    need_kubectl(version)
    r = kubectl(["explain", "dpuset.spec.strategy"], dpf_server.kubeconfig,
                version=version)
    assert r.returncode == 0, r.stderr
    assert "DPUSet" in r.stdout
    assert "rollingUpdate" in r.stdout and "type" in r.stdout
    # A real description, not <empty>.
    assert "<empty>" not in r.stdout
    assert "DPU" in r.stdout.split("FIELDS")[0]
    r = kubectl(["explain", "deployment.spec.strategy.rollingUpdate.maxSurge"],
                dpf_server.kubeconfig, version=version)
    assert r.returncode == 0, r.stderr
    assert "maxSurge" in r.stdout


MANIFEST_CM = """apiVersion: v1
kind: ConfigMap
metadata: {name: cm1, namespace: default}
data: {a: "%s"}
"""

MANIFEST_DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: %d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: "busybox:1.36"}]
"""

MANIFEST_BFB = """apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: BFB
metadata: {name: bf1, namespace: default, labels: {tier: "%s"}}
spec: {url: "http://example.com/a.bfb"}
"""


def test_kubectl_120_diff_and_server_dry_run(dpf_server):
    need_kubectl("1.20")
    kc = dpf_server.kubeconfig
    for text, plural in ((MANIFEST_CM % "1", "configmaps"),
                         (MANIFEST_DEPLOY % 2, "deployments"),
                         (MANIFEST_BFB % "one", "bfbs")):
        r = kubectl(["apply", "--dry-run=server", "-f", "-"], kc,
                    version="1.20", input=text)
        assert r.returncode == 0, r.stderr
        assert "(server dry run)" in r.stdout
        r = kubectl(["get", plural, "-n", "default", "-o", "name"], kc,
                    version="1.20")
        assert r.stdout.strip() == "", r.stdout
        r = kubectl(["apply", "-f", "-"], kc, version="1.20", input=text)
        assert r.returncode == 0, r.stderr
        assert "error calculating patch" not in r.stderr
    r = kubectl(["diff", "-f", "-"], kc, version="1.20",
                input=MANIFEST_DEPLOY % 2)
    assert r.returncode == 0, r.stdout + r.stderr
    for text, changed in ((MANIFEST_CM % "2", '+  a: "2"'),
                          (MANIFEST_DEPLOY % 5, "+  replicas: 5"),
                          (MANIFEST_BFB % "two", "+    tier: two")):
        r = kubectl(["diff", "-f", "-"], kc, version="1.20", input=text)
        assert r.returncode == 1, r.stderr
        assert changed in r.stdout, r.stdout
        assert "error calculating patch" not in r.stderr
    # Nothing was changed by diff.
    st, o = call(dpf_server, "GET", path("deployments", "web", group="apps",
                                         version="v1"))
    assert o["spec"]["replicas"] == 2


DPF_GROUPS = ("provisioning.dpu.nvidia.com", "svc.dpu.nvidia.com",
              "operator.dpu.nvidia.com", "nv-ipam.nvidia.com")


def test_every_dpf_field_has_a_description(dpf_server):
    st, idx = call(dpf_server, "GET", "/openapi/v3")
    assert st == 200
    missing, seen = [], 0
    for gv in idx["paths"]:
        if not any(gv.startswith(f"apis/{g}/") for g in DPF_GROUPS):
            continue
        st, doc = call(dpf_server, "GET", "/openapi/v3/" + gv)
        assert st == 200
        for name, sch in doc["components"]["schemas"].items():
            def walk(s, p):
                nonlocal seen
                for k, v in (s.get("properties") or {}).items():
                    if not p and k == "metadata":
                        continue  # the standard ObjectMeta, plain in a CRD
                    seen += 1
                    if not v.get("description", "").strip():
                        missing.append(f"{name}: {p}{k}")
                    walk(v, f"{p}{k}.")
                if isinstance(s.get("items"), dict):
                    walk(s["items"], p)
                if isinstance(s.get("additionalProperties"), dict):
                    walk(s["additionalProperties"], p)
            if not sch.get("description"):
                missing.append(name)
            walk(sch, "")
    assert seen > 500
    assert not missing, missing[:50]
