"""Kubernetes REST semantics of dpf-server: CRUD, patches, the status
subresource, generation, finalizers, garbage collection, conflicts,
selectors, paging, Table output, discovery and stock kubectl."""
import json
import threading

import yaml

from apiutil import (PROV, V, bfb, call, causes, configmap, path, pod)
from conftest import kubectl, wait_for

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def test_version_health_discovery(dpf_server):
    st, v = call(dpf_server, "GET", "/version")
    assert st == 200 and v["major"] == "1" and v["minor"].isdigit()
    assert v["gitVersion"].startswith("v1.")
    for p in ("/healthz", "/readyz", "/livez"):
        assert dpf_server.request("GET", p)[0] == 200
    st, apis = call(dpf_server, "GET", "/api")
    assert st == 200 and apis["kind"] == "APIVersions" and "v1" in apis["versions"]
    st, groups = call(dpf_server, "GET", "/apis")
    names = [g["name"] for g in groups["groups"]]
    assert groups["kind"] == "APIGroupList"
    for g in (PROV, "svc.dpu.nvidia.com", "operator.dpu.nvidia.com", "apps"):
        assert g in names
    st, rl = call(dpf_server, "GET", f"/apis/{PROV}/{V}")
    assert st == 200 and rl["kind"] == "APIResourceList"
    res = {r["name"]: r for r in rl["resources"]}
    assert res["dpus"]["kind"] == "DPU" and res["dpus"]["namespaced"]
    assert set(res["dpus"]["verbs"]) >= {"create", "get", "list", "watch",
                                         "patch", "update", "delete",
                                         "deletecollection"}
    assert res["dpus"]["singularName"] == "dpu"
    assert "dpus/status" in res
    assert "dpuflavors/status" not in res  # DPUFlavor has no status
    st, core = call(dpf_server, "GET", "/api/v1")
    core_res = {r["name"]: r for r in core["resources"]}
    assert "pods" in core_res and "pods/status" in core_res
    assert core_res["namespaces"]["namespaced"] is False
    assert "ns" in core_res["namespaces"].get("shortNames", [])
    # OpenAPI: v2 answers (kubectl client validation), v3 has an index
    # and per group-version documents with schemas.
    st, _, body = dpf_server.request(
        "GET", "/openapi/v2",
        headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert st == 200
    st, idx = call(dpf_server, "GET", "/openapi/v3")
    assert st == 200 and f"apis/{PROV}/{V}" in idx["paths"]
    st, doc = call(dpf_server, "GET", idx["paths"][f"apis/{PROV}/{V}"]["serverRelativeURL"])
    assert st == 200 and any(k.endswith(".DPU") for k in doc["components"]["schemas"])
    # unknown paths are 404 Status objects
    st, body = call(dpf_server, "GET", "/apis/nope.example.com/v1/things")
    assert st == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"


def test_default_namespaces(dpf_server):
    st, body = call(dpf_server, "GET", path("namespaces", ns=None))
    names = {i["metadata"]["name"] for i in body["items"]}
    assert {"default", "kube-system", "kube-public",
            "dpf-operator-system"} <= names


def test_crud_configmap(dpf_server):
    s = dpf_server
    st, created = call(s, "POST", path("configmaps"), configmap("cm1", {"a": "1"}))
    assert st == 201, created
    md = created["metadata"]
    assert md["uid"] and md["resourceVersion"] and md["creationTimestamp"]
    assert md["generation"] == 1 and md["namespace"] == "default"
    st, got = call(s, "GET", path("configmaps", "cm1"))
    assert st == 200 and got["data"] == {"a": "1"}
    assert got["metadata"]["resourceVersion"] == md["resourceVersion"]
    st, dup = call(s, "POST", path("configmaps"), configmap("cm1"))
    assert st == 409 and dup["reason"] == "AlreadyExists"
    assert dup["details"]["name"] == "cm1"
    got["data"]["a"] = "2"
    st, upd = call(s, "PUT", path("configmaps", "cm1"), got)
    assert st == 200 and upd["data"]["a"] == "2"
    assert int(upd["metadata"]["resourceVersion"]) > int(md["resourceVersion"])
    assert upd["metadata"]["uid"] == md["uid"]
    # a no-op update keeps the resourceVersion
    st, same = call(s, "PUT", path("configmaps", "cm1"), upd)
    assert st == 200
    assert same["metadata"]["resourceVersion"] == upd["metadata"]["resourceVersion"]
    st, lst = call(s, "GET", path("configmaps"))
    assert st == 200 and lst["kind"] == "ConfigMapList"
    assert "cm1" in [i["metadata"]["name"] for i in lst["items"]]
    assert int(lst["metadata"]["resourceVersion"]) >= int(upd["metadata"]["resourceVersion"])
    st, deleted = call(s, "DELETE", path("configmaps", "cm1"))
    assert st == 200
    st, gone = call(s, "GET", path("configmaps", "cm1"))
    assert st == 404 and gone["reason"] == "NotFound"
    assert gone["message"] == 'configmaps "cm1" not found'
    assert gone["details"] == {"name": "cm1", "kind": "configmaps"}


def test_create_rules(dpf_server):
    s = dpf_server
    obj = configmap("", ns="default")
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "gen-"
    st, a = call(s, "POST", path("configmaps"), obj)
    st2, b = call(s, "POST", path("configmaps"), obj)
    assert st == 201 and st2 == 201
    assert a["metadata"]["name"].startswith("gen-") and len(a["metadata"]["name"]) == 9
    assert a["metadata"]["name"] != b["metadata"]["name"]
    # namespace filled from the path; a different one is rejected
    obj = configmap("nsfill")
    del obj["metadata"]["namespace"]
    st, c = call(s, "POST", path("configmaps", ns="kube-system"), obj)
    assert st == 201 and c["metadata"]["namespace"] == "kube-system"
    st, e = call(s, "POST", path("configmaps", ns="kube-public"), configmap("x", ns="default"))
    assert st == 400 and e["reason"] == "BadRequest"
    # a namespace that does not exist: 404 naming the namespace
    st, e = call(s, "POST", path("configmaps", ns="nope"), configmap("x", ns="nope"))
    assert st == 404 and e["details"]["kind"] == "namespaces"
    assert e["details"]["name"] == "nope"
    # server-owned metadata is ignored on create
    obj = configmap("owned")
    obj["metadata"]["uid"] = "not-a-uid"
    obj["metadata"]["generation"] = 7
    st, c = call(s, "POST", path("configmaps"), obj)
    assert st == 201 and c["metadata"]["uid"] != "not-a-uid"
    assert c["metadata"]["generation"] == 1
    # dryRun=All validates and answers but stores nothing
    st, c = call(s, "POST", path("configmaps") + "?dryRun=All", configmap("dry"))
    assert st == 201 and c["metadata"]["name"] == "dry"
    assert call(s, "GET", path("configmaps", "dry"))[0] == 404


def test_patch_types(dpf_server):
    s = dpf_server
    assert call(s, "POST", path("configmaps"),
                configmap("p1", {"a": "1", "b": "2"}))[0] == 201
    st, o = call(s, "PATCH", path("configmaps", "p1"),
                 {"data": {"a": "9", "b": None}}, "application/merge-patch+json")
    assert st == 200 and o["data"] == {"a": "9"}
    st, o = call(s, "PATCH", path("configmaps", "p1"),
                 [{"op": "add", "path": "/data/c", "value": "3"},
                  {"op": "remove", "path": "/data/a"}],
                 "application/json-patch+json")
    assert st == 200 and o["data"] == {"c": "3"}
    st, o = call(s, "PATCH", path("configmaps", "p1"),
                 [{"op": "test", "path": "/data/c", "value": "nope"}],
                 "application/json-patch+json")
    assert st in (409, 422) and o["kind"] == "Status"
    st, o = call(s, "PATCH", path("configmaps", "p1"),
                 {"metadata": {"labels": {"l": "v"}}},
                 "application/strategic-merge-patch+json")
    assert st == 200 and o["metadata"]["labels"] == {"l": "v"}
    # strategic merge on a core list merges by name
    assert call(s, "POST", path("pods"), pod("sp", labels={"a": "b"}))[0] == 201
    st, o = call(s, "PATCH", path("pods", "sp"),
                 {"spec": {"$setElementOrder/containers": [{"name": "c"}],
                           "containers": [{"name": "c", "image": "busybox:1.37"}]}},
                 "application/strategic-merge-patch+json")
    assert st == 200, o
    assert o["spec"]["containers"][0]["image"] == "busybox:1.37"
    assert o["spec"]["containers"][0]["name"] == "c"
    # server-side apply: create, then merge
    ap = yaml.safe_dump(configmap("applied", {"x": "1"}))
    st, o = call(s, "PATCH", path("configmaps", "applied") + "?fieldManager=t&force=true",
                 ap, "application/apply-patch+yaml")
    assert st == 201 and o["data"] == {"x": "1"}
    ap = yaml.safe_dump(configmap("applied", {"x": "2"}))
    st, o = call(s, "PATCH", path("configmaps", "applied") + "?fieldManager=t",
                 ap, "application/apply-patch+yaml")
    assert st == 200 and o["data"] == {"x": "2"}
    # patch of a missing object, unknown patch type
    st, o = call(s, "PATCH", path("configmaps", "missing"), {"data": {}},
                 "application/merge-patch+json")
    assert st == 404
    st, o = call(s, "PATCH", path("configmaps", "p1"), {"data": {}}, "text/plain")
    assert st == 415 and o["reason"] == "UnsupportedMediaType"


def test_status_subresource_and_generation(dpf_server):
    s = dpf_server
    obj = bfb("b1")
    obj["status"] = {"phase": "Ready"}
    st, o = call(s, "POST", path("bfbs", group=PROV), obj)
    assert st == 201, o
    assert (o.get("status") or {}).get("phase") != "Ready"  # status dropped
    gen = o["metadata"]["generation"]
    assert gen == 1
    o["status"] = {"phase": "Downloading"}
    st, o2 = call(s, "PUT", path("bfbs", "b1", group=PROV, sub="status"), o)
    assert st == 200 and o2["status"]["phase"] == "Downloading"
    assert o2["metadata"]["generation"] == gen
    # a status change through the main resource is ignored
    o2["status"]["phase"] = "Error"
    o2["metadata"].setdefault("labels", {})["x"] = "y"
    st, o3 = call(s, "PUT", path("bfbs", "b1", group=PROV), o2)
    assert st == 200 and o3["status"]["phase"] == "Downloading"
    assert o3["metadata"]["labels"]["x"] == "y"
    assert o3["metadata"]["generation"] == gen
    # spec changes through /status are ignored
    st, o4 = call(s, "PATCH", path("bfbs", "b1", group=PROV, sub="status"),
                  {"status": {"phase": "Ready"},
                   "spec": {"url": "http://other/x.bfb"}},
                  "application/merge-patch+json")
    assert st == 200 and o4["status"]["phase"] == "Ready"
    assert o4["spec"]["url"] == "http://example.com/b1.bfb"
    st, o5 = call(s, "GET", path("bfbs", "b1", group=PROV, sub="status"))
    assert st == 200 and o5["status"]["phase"] == "Ready"
    # generation of a kind without spec: bumped by data, not metadata
    st, cm = call(s, "POST", path("configmaps"), configmap("g1", {"a": "1"}))
    st, cm = call(s, "PATCH", path("configmaps", "g1"),
                  {"metadata": {"labels": {"a": "b"}}}, "application/merge-patch+json")
    assert cm["metadata"]["generation"] == 1
    st, cm = call(s, "PATCH", path("configmaps", "g1"), {"data": {"a": "2"}},
                  "application/merge-patch+json")
    assert cm["metadata"]["generation"] == 2
    # no status subresource on a kind without status
    st, _ = call(s, "GET", path("configmaps", "g1", sub="status"))
    assert st == 404


def test_conflict(dpf_server):
    s = dpf_server
    st, o = call(s, "POST", path("configmaps"), configmap("c1"))
    stale = json.loads(json.dumps(o))
    o["data"] = {"k": "new"}
    assert call(s, "PUT", path("configmaps", "c1"), o)[0] == 200
    stale["data"] = {"k": "stale"}
    st, e = call(s, "PUT", path("configmaps", "c1"), stale)
    assert st == 409 and e["reason"] == "Conflict"
    assert "the object has been modified; please apply your changes to the " \
           "latest version and try again" in e["message"]
    assert call(s, "GET", path("configmaps", "c1"))[1]["data"] == {"k": "new"}
    del stale["metadata"]["resourceVersion"]
    st, o = call(s, "PUT", path("configmaps", "c1"), stale)
    assert st == 200 and o["data"] == {"k": "stale"}
    # a merge patch naming a stale resourceVersion conflicts too
    st, e = call(s, "PATCH", path("configmaps", "c1"),
                 {"metadata": {"resourceVersion": "1"}, "data": {"k": "p"}},
                 "application/merge-patch+json")
    assert st == 409
    # delete preconditions
    st, e = call(s, "DELETE", path("configmaps", "c1"),
                 {"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})
    assert st == 409 and e["reason"] == "Conflict"
    assert call(s, "GET", path("configmaps", "c1"))[0] == 200


def test_concurrent_patches_all_apply(dpf_server):
    """Patches without a resourceVersion never conflict: the server
    re-applies them to the newer object (GuaranteedUpdate)."""
    s = dpf_server
    assert call(s, "POST", path("configmaps"), configmap("hot"))[0] == 201
    results = []

    def patcher(t):
        for i in range(15):
            st, _ = call(s, "PATCH", path("configmaps", "hot"),
                         {"metadata": {"labels": {f"t{t}-{i}": "x"}}},
                         "application/merge-patch+json")
            results.append(st)
    threads = [threading.Thread(target=patcher, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 120
    st, o = call(s, "GET", path("configmaps", "hot"))
    assert len(o["metadata"]["labels"]) == 120


def test_finalizers_and_graceful_deletion(dpf_server):
    s = dpf_server
    st, o = call(s, "POST", path("configmaps"),
                 configmap("f1", finalizers=["example.com/hold"]))
    assert st == 201
    st, d = call(s, "DELETE", path("configmaps", "f1"))
    assert st == 200 and d["metadata"]["deletionTimestamp"]
    assert d["metadata"]["finalizers"] == ["example.com/hold"]
    st, o = call(s, "GET", path("configmaps", "f1"))
    assert st == 200 and o["metadata"]["deletionTimestamp"]
    # deleting again is harmless; no new finalizers may be added
    assert call(s, "DELETE", path("configmaps", "f1"))[0] == 200
    st, e = call(s, "PATCH", path("configmaps", "f1"),
                 {"metadata": {"finalizers": ["example.com/hold", "x.io/new"]}},
                 "application/merge-patch+json")
    assert st == 422 and "metadata.finalizers" in causes(e)
    # other updates still work while deleting
    st, o = call(s, "PATCH", path("configmaps", "f1"), {"data": {"k": "2"}},
                 "application/merge-patch+json")
    assert st == 200
    st, o = call(s, "PATCH", path("configmaps", "f1"),
                 {"metadata": {"finalizers": None}}, "application/merge-patch+json")
    assert st == 200
    assert call(s, "GET", path("configmaps", "f1"))[0] == 404


def _owner_ref(o):
    return {"apiVersion": o["apiVersion"], "kind": o["kind"],
            "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]}


def test_owner_reference_gc(dpf_server):
    s = dpf_server
    # background: dependents go after the owner
    st, owner = call(s, "POST", path("configmaps"), configmap("owner"))
    for i in range(3):
        st, _ = call(s, "POST", path("configmaps"),
                     configmap(f"dep{i}", ownerReferences=[_owner_ref(owner)]))
        assert st == 201
    st, other = call(s, "POST", path("configmaps"), configmap("other"))
    st, two = call(s, "POST", path("configmaps"), configmap(
        "two-owners", ownerReferences=[_owner_ref(owner), _owner_ref(other)]))
    assert call(s, "DELETE", path("configmaps", "owner"),
                {"propagationPolicy": "Background"})[0] == 200
    wait_for(lambda: all(call(s, "GET", path("configmaps", f"dep{i}"))[0] == 404
                         for i in range(3)), what="dependents collected")
    # a dependent with a live second owner stays (the dangling ref goes)
    st, t = call(s, "GET", path("configmaps", "two-owners"))
    assert st == 200
    wait_for(lambda: [r["name"] for r in call(s, "GET", path(
        "configmaps", "two-owners"))[1]["metadata"]["ownerReferences"]] == ["other"],
        what="dangling owner reference removed")
    # a dependent created after its owner is gone is collected too
    st, _ = call(s, "POST", path("configmaps"),
                 configmap("late", ownerReferences=[_owner_ref(owner)]))
    assert st == 201
    wait_for(lambda: call(s, "GET", path("configmaps", "late"))[0] == 404,
             what="late dependent collected")
    # foreground: the owner waits for its dependents
    st, fo = call(s, "POST", path("configmaps"), configmap("fowner"))
    st, _ = call(s, "POST", path("configmaps"),
                 configmap("fdep", ownerReferences=[_owner_ref(fo)]))
    st, d = call(s, "DELETE", path("configmaps", "fowner"),
                 {"propagationPolicy": "Foreground"})
    assert st == 200 and "foregroundDeletion" in d["metadata"]["finalizers"]
    wait_for(lambda: call(s, "GET", path("configmaps", "fowner"))[0] == 404 and
             call(s, "GET", path("configmaps", "fdep"))[0] == 404,
             what="foreground deletion")
    # orphan: dependents stay without the owner reference
    st, oo = call(s, "POST", path("configmaps"), configmap("oowner"))
    st, _ = call(s, "POST", path("configmaps"),
                 configmap("odep", ownerReferences=[_owner_ref(oo)]))
    st, d = call(s, "DELETE", path("configmaps", "oowner") + "?propagationPolicy=Orphan")
    assert st == 200
    wait_for(lambda: call(s, "GET", path("configmaps", "oowner"))[0] == 404,
             what="orphaning owner gone")
    st, od = call(s, "GET", path("configmaps", "odep"))
    assert st == 200 and not od["metadata"].get("ownerReferences")


def test_namespace_deletion(dpf_server):
    s = dpf_server
    st, _ = call(s, "POST", path("namespaces", ns=None),
                 {"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": "tmp-ns"}})
    assert st == 201
    for i in range(3):
        assert call(s, "POST", path("configmaps", ns="tmp-ns"),
                    configmap(f"c{i}", ns="tmp-ns"))[0] == 201
    st, b = call(s, "POST", path("bfbs", ns="tmp-ns", group=PROV), bfb("bb", ns="tmp-ns"))
    assert st == 201
    st, d = call(s, "DELETE", path("namespaces", "tmp-ns", ns=None))
    assert st == 200 and d["status"]["phase"] == "Terminating"
    wait_for(lambda: call(s, "GET", path("namespaces", "tmp-ns", ns=None))[0] == 404,
             what="namespace deleted")
    st, lst = call(s, "GET", path("configmaps", ns="tmp-ns"))
    assert st == 200 and lst["items"] == []
    st, e = call(s, "DELETE", path("namespaces", "default", ns=None))
    assert st == 403 and e["reason"] == "Forbidden"
    assert call(s, "GET", path("namespaces", "default", ns=None))[0] == 200


def test_namespace_state_gates_creates(dpf_server):
    """Creates see the namespace's current state right after each change
    (the server answers the namespace check from memory)."""
    s = dpf_server
    mkns = {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "gate-ns"}}
    assert call(s, "POST", path("configmaps", ns="gate-ns"),
                configmap("early", ns="gate-ns"))[0] == 404
    assert call(s, "POST", path("namespaces", ns=None), mkns)[0] == 201
    assert call(s, "POST", path("configmaps", ns="gate-ns"),
                configmap("a", ns="gate-ns"))[0] == 201
    assert call(s, "POST", path("configmaps", ns="gate-ns"),
                configmap("held", ns="gate-ns",
                          finalizers=["example.com/hold"]))[0] == 201
    st, d = call(s, "DELETE", path("namespaces", "gate-ns", ns=None))
    assert st == 200 and d["status"]["phase"] == "Terminating"
    st, e = call(s, "POST", path("configmaps", ns="gate-ns"),
                 configmap("b", ns="gate-ns"))
    assert st == 403 and e["reason"] == "Forbidden"
    assert "being terminated" in e["message"]
    wait_for(lambda: call(s, "GET", path("configmaps", "held", ns="gate-ns"))
             [1]["metadata"].get("deletionTimestamp"), what="held terminating")
    st, _ = call(s, "PATCH", path("configmaps", "held", ns="gate-ns"),
                 {"metadata": {"finalizers": None}},
                 ctype="application/merge-patch+json")
    assert st == 200
    wait_for(lambda: call(s, "GET", path("namespaces", "gate-ns", ns=None))[0]
             == 404, what="namespace deleted")
    st, e = call(s, "POST", path("configmaps", ns="gate-ns"),
                 configmap("c", ns="gate-ns"))
    assert st == 404 and e["details"]["name"] == "gate-ns"
    assert call(s, "POST", path("namespaces", ns=None), mkns)[0] == 201
    assert call(s, "POST", path("configmaps", ns="gate-ns"),
                configmap("d", ns="gate-ns"))[0] == 201


def test_selectors(dpf_server):
    s = dpf_server
    for i in range(6):
        labels = {"tier": "a" if i % 2 else "b", "n": str(i)}
        assert call(s, "POST", path("configmaps"),
                    configmap(f"sel{i}", labels=labels))[0] == 201
    def names(q, plural="configmaps", ns="default"):
        st, body = call(s, "GET", path(plural, ns=ns) + q)
        assert st == 200, body
        return sorted(i["metadata"]["name"] for i in body["items"])
    assert names("?labelSelector=tier%3Da") == ["sel1", "sel3", "sel5"]
    assert names("?labelSelector=tier%3Da,n%20in%20(1,5)") == ["sel1", "sel5"]
    assert names("?labelSelector=tier!%3Da,n") == ["sel0", "sel2", "sel4"]
    assert names("?fieldSelector=metadata.name%3Dsel2") == ["sel2"]
    assert names("?fieldSelector=metadata.name!%3Dsel2&labelSelector=tier%3Db") == ["sel0", "sel4"]
    assert names("?fieldSelector=metadata.namespace%3Ddefault&labelSelector=n%3D4",
                 ns=None) == ["sel4"]
    st, e = call(s, "GET", path("configmaps") + "?labelSelector=%3D%3D%3D")
    assert st == 400 and e["reason"] == "BadRequest"
    st, e = call(s, "GET", path("configmaps") + "?fieldSelector=spec.bogus%3D1")
    assert st == 400
    # pods: spec.nodeName and status.phase
    assert call(s, "POST", path("pods"), pod("p-on-1", node="node-1"))[0] == 201
    assert call(s, "POST", path("pods"), pod("p-on-2", node="node-2"))[0] == 201
    assert names("?fieldSelector=spec.nodeName%3Dnode-2", "pods") == ["p-on-2"]
    st, p = call(s, "GET", path("pods", "p-on-1"))
    p["status"] = {"phase": "Running"}
    assert call(s, "PUT", path("pods", "p-on-1", sub="status"), p)[0] == 200
    assert names("?fieldSelector=status.phase%3DRunning", "pods") == ["p-on-1"]


def test_limit_continue(dpf_server):
    s = dpf_server
    want = sorted(f"page{i:02d}" for i in range(25))
    for n in want:
        assert call(s, "POST", path("configmaps"),
                    configmap(n, labels={"paged": "yes"}))[0] == 201
    got, cont, pages = [], None, 0
    while True:
        q = "?labelSelector=paged%3Dyes&limit=10"
        if cont:
            q += "&continue=" + cont
        st, body = call(s, "GET", path("configmaps") + q)
        assert st == 200, body
        pages += 1
        got += [i["metadata"]["name"] for i in body["items"]]
        assert len(body["items"]) <= 10
        # every page, not only the last, names the revision it read: an
        # informer watches from the first page's resourceVersion
        newest = max(int(i["metadata"]["resourceVersion"])
                     for i in body["items"])
        assert int(body["metadata"]["resourceVersion"]) >= newest, body
        cont = body["metadata"].get("continue")
        if not cont:
            break
    assert got == want and pages == 3
    st, e = call(s, "GET", path("configmaps") + "?limit=5&continue=bm90LWEtdG9rZW4")
    assert st == 400


def test_table_output(dpf_server):
    s = dpf_server
    assert call(s, "POST", path("pods"), pod("tp", node="node-1"))[0] == 201
    st, t = call(s, "GET", path("pods"), headers={"Accept": TABLE})
    assert st == 200 and t["kind"] == "Table"
    assert t["apiVersion"] == "meta.k8s.io/v1"
    cols = t["columnDefinitions"]
    assert cols[0]["name"] == "Name" and cols[0]["type"] == "string"
    assert any(c["priority"] == 1 for c in cols) or len(cols) > 1
    row = t["rows"][0]
    assert row["cells"][0] == "tp" and len(row["cells"]) == len(cols)
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "tp"
    assert t["metadata"]["resourceVersion"]
    # date cells are rendered as ages
    assert call(s, "POST", path("configmaps"), configmap("tc"))[0] == 201
    st, t = call(s, "GET", path("configmaps", "tc"), headers={"Accept": TABLE})
    names = [c["name"] for c in t["columnDefinitions"]]
    age = names.index("Age")
    assert t["columnDefinitions"][age]["type"] == "date"
    assert t["rows"][0]["cells"][age].endswith("s")
    st, t = call(s, "GET", path("configmaps") + "?includeObject=Object",
                 headers={"Accept": TABLE})
    assert t["rows"][0]["object"]["kind"] == "ConfigMap"
    # nothing acceptable -> 406
    st, e = call(s, "GET", path("configmaps"),
                 headers={"Accept": "application/vnd.kubernetes.protobuf"})
    assert st == 406 and e["reason"] == "NotAcceptable"
    # YAML output
    st, _, body = s.request("GET", path("configmaps", "tc"),
                            headers={"Accept": "application/yaml"})
    assert st == 200 and yaml.safe_load(body)["metadata"]["name"] == "tc"


def test_events_for_describe(dpf_server):
    s = dpf_server
    st, cm = call(s, "POST", path("configmaps"), configmap("described"))
    ev = {"apiVersion": "v1", "kind": "Event",
          "metadata": {"name": "described.1", "namespace": "default"},
          "involvedObject": {"kind": "ConfigMap", "name": "described",
                             "namespace": "default", "uid": cm["metadata"]["uid"],
                             "apiVersion": "v1"},
          "reason": "Tested", "message": "hello", "type": "Normal",
          "source": {"component": "test"}, "count": 1}
    st, e = call(s, "POST", path("events"), ev)
    assert st == 201, e
    st, lst = call(s, "GET", path("events") +
                   "?fieldSelector=involvedObject.name%3Ddescribed,"
                   "involvedObject.kind%3DConfigMap")
    assert st == 200 and [i["reason"] for i in lst["items"]] == ["Tested"]


def _kc(dpf_server, version, args, **kw):
    r = kubectl(args, dpf_server.kubeconfig, version=version, **kw)
    return r


def test_kubectl_roundtrip(dpf_server, tmp_path):
    manifest = tmp_path / "bfb.yaml"
    manifest.write_text(yaml.safe_dump(bfb("kc-bfb")))
    for version in ("1.32", "1.20"):
        r = _kc(dpf_server, version, ["apply", "-f", str(manifest)])
        assert r.returncode == 0, r.stderr
        r = _kc(dpf_server, version, ["apply", "-f", str(manifest)])
        assert r.returncode == 0 and "unchanged" in r.stdout, r.stdout + r.stderr
        r = _kc(dpf_server, version, ["get", "bfbs"])
        assert r.returncode == 0 and "kc-bfb" in r.stdout, r.stderr
        assert r.stdout.split("\n")[0].split()[0] == "NAME"
        r = _kc(dpf_server, version, ["get", "bfb", "kc-bfb", "-o", "yaml"])
        assert r.returncode == 0 and yaml.safe_load(r.stdout)["spec"]["url"]
        r = _kc(dpf_server, version, ["describe", "bfb", "kc-bfb"])
        assert r.returncode == 0 and "kc-bfb" in r.stdout, r.stderr
        r = _kc(dpf_server, version, ["delete", "-f", str(manifest)])
        assert r.returncode == 0, r.stderr
        r = _kc(dpf_server, version, ["get", "bfb", "kc-bfb"])
        assert r.returncode != 0 and "NotFound" in r.stderr
