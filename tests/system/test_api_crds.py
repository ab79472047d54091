"""CustomResourceDefinitions (issue 8, item 5): a CRD created with stock
kubectl (1.20 and 1.32, the ones the project installs) serves a resource with discovery (plain and
aggregated), OpenAPI (kubectl explain), structural-schema validation,
defaulting and pruning, status and scale subresources, printer columns,
short names and categories, watch, server-side apply conflicts and the
415 of a strategic merge patch; a @kubernetes/client-node program lists
and watches it; deleting the CRD deletes its objects; `dpfctl crds`
applied to the server round-trips; a restarted server serves the CRD
again. The CRD kind's own checks answer 422 naming the field."""
import copy
import json
import os
import shutil
import subprocess
import time

import pytest
import yaml

from apiutil import Watch, call, path
from conftest import KUBECTL, REPO, DpfServer, dpfctl, kubectl, wait_for
from test_api_watch_semantics import Lines, _node_modules

CRDS = "apiextensions.k8s.io"
GROUP = "example.com"

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget",
                  "kind": "Widget", "shortNames": ["wg"],
                  "categories": ["gadgets"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {
                "status": {},
                "scale": {"specReplicasPath": ".spec.size",
                          "statusReplicasPath": ".status.size"}},
            "additionalPrinterColumns": [
                {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                {"name": "Color", "type": "string",
                 "jsonPath": ".spec.color"}],
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "description": "What the widget should be.",
                        "required": ["size"],
                        "properties": {
                            "size": {"type": "integer", "minimum": 0,
                                     "maximum": 100,
                                     "description":
                                         "How many parts the widget has."},
                            "color": {"type": "string",
                                      "enum": ["red", "green", "blue"],
                                      "default": "red"},
                            "code": {"type": "string",
                                     "pattern": "^[a-z]+$"},
                            "port": {"x-kubernetes-int-or-string": True},
                            "tags": {"type": "array",
                                     "items": {"type": "string"},
                                     "x-kubernetes-list-type": "set"},
                            "values": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True},
                        }},
                    "status": {"type": "object",
                               "properties": {"size": {"type": "integer"}}},
                }}},
        }],
    },
}


def causes(status):
    """The causes of a Status object (field and message)."""
    return ((status or {}).get("details") or {}).get("causes") or []


def widget(name, size=3, **spec):
    return {"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": name}, "spec": dict(size=size, **spec)}


def wpath(name=None, sub=None, ns="default"):
    return path("widgets", name, ns=ns, group=GROUP, version="v1", sub=sub)


def create_crd(s, crd=None):
    st, o = call(s, "POST", path("customresourcedefinitions", ns=None,
                                 group=CRDS, version="v1"),
                 crd or WIDGET_CRD)
    assert st == 201, o
    return o


def k(s, args, version="1.32", input=None):
    return kubectl(args, s.kubeconfig, version=version, input=input)


# ----------------------------------------------------------------------
# the CRD kind itself


def test_crd_status_and_discovery(dpf_server):
    s = dpf_server
    o = create_crd(s)
    conds = {c["type"]: c for c in o["status"]["conditions"]}
    assert conds["Established"]["status"] == "True"
    assert conds["Established"]["reason"] == "InitialNamesAccepted"
    assert conds["NamesAccepted"]["reason"] == "NoConflicts"
    assert o["status"]["acceptedNames"]["kind"] == "Widget"
    assert o["status"]["acceptedNames"]["listKind"] == "WidgetList"
    assert o["status"]["storedVersions"] == ["v1"]
    assert "customresourcecleanup.apiextensions.k8s.io" in \
        o["metadata"]["finalizers"]
    # discovery: the group, its resource list with the subresources
    st, groups = call(s, "GET", "/apis")
    assert GROUP in [g["name"] for g in groups["groups"]]
    st, rl = call(s, "GET", "/apis/example.com/v1")
    assert st == 200, rl
    res = {r["name"]: r for r in rl["resources"]}
    assert res["widgets"]["shortNames"] == ["wg"]
    assert res["widgets"]["categories"] == ["gadgets"]
    assert res["widgets"]["kind"] == "Widget"
    assert "widgets/status" in res and "widgets/scale" in res
    # aggregated discovery (apidiscovery.k8s.io/v2)
    st, _, data = s.request(
        "GET", "/apis", headers={
            "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;"
                      "as=APIGroupDiscoveryList"})
    agg = json.loads(data)
    g = [x for x in agg["items"] if x["metadata"]["name"] == GROUP]
    assert g, agg
    r = g[0]["versions"][0]["resources"][0]
    assert r["resource"] == "widgets" and r["shortNames"] == ["wg"]
    # OpenAPI v2 carries the kind with its field descriptions
    st, _, data = s.request("GET", "/openapi/v2")
    doc = json.loads(data)
    defs = [d for n, d in doc["definitions"].items()
            if n == "com.example.v1.Widget"]
    assert defs, sorted(doc["definitions"])[:5]
    assert defs[0]["properties"]["spec"]["properties"]["size"][
        "description"] == "How many parts the widget has."


@pytest.mark.parametrize("edit,field,text", [
    (lambda c: c["metadata"].update(name="gadgets.example.com"),
     "metadata.name", "must be spec.names.plural"),
    (lambda c: c["spec"].update(scope="Global"), "spec.scope",
     "Unsupported value"),
    (lambda c: c["spec"]["versions"][0].update(storage=False),
     "spec.versions", "exactly one version marked as storage"),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"]["spec"]["properties"]["size"].pop("type"),
     "spec.versions[0].schema.openAPIV3Schema.properties[spec]"
     ".properties[size].type", "Required value"),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"]["spec"]["properties"]["code"].update(pattern="(["),
     "spec.versions[0].schema.openAPIV3Schema.properties[spec]"
     ".properties[code].pattern", "valid regular expression"),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"]["spec"].update(additionalProperties={"type": "string"}),
     "spec.versions[0].schema.openAPIV3Schema.properties[spec]"
     ".additionalProperties", "mutual exclusive"),
    (lambda c: c["spec"]["names"].update(kind="no such kind"),
     "spec.names.kind", "Invalid value"),
])
def test_crd_invalid_is_422_naming_the_field(dpf_server, edit, field, text):
    s = dpf_server
    crd = copy.deepcopy(WIDGET_CRD)
    edit(crd)
    st, o = call(s, "POST", path("customresourcedefinitions", ns=None,
                                 group=CRDS, version="v1"), crd)
    assert st == 422, o
    got = [c for c in causes(o) if c["field"] == field]
    assert got, (field, o)
    assert text in got[0]["message"], got
    assert "CustomResourceDefinition.apiextensions.k8s.io" in o["message"]
    # nothing got served
    st, _ = call(s, "GET", "/apis/example.com/v1")
    assert st == 404


def test_crd_hostile_schema_is_bounded(dpf_server):
    s = dpf_server
    crd = copy.deepcopy(WIDGET_CRD)
    deep = {"type": "string"}
    for _ in range(200):
        deep = {"type": "object", "properties": {"a": deep}}
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"] = deep
    st, o = call(s, "POST", path("customresourcedefinitions", ns=None,
                                 group=CRDS, version="v1"), crd)
    assert st == 422, o
    assert "nested too deeply" in o["message"]
    crd = copy.deepcopy(WIDGET_CRD)
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"]["properties"]["color"]["enum"] = [str(i) for i in range(5000)]
    st, o = call(s, "POST", path("customresourcedefinitions", ns=None,
                                 group=CRDS, version="v1"), crd)
    assert st == 422 and "must have at most 1024 items" in o["message"], o


def test_crd_protected_group_needs_approval(dpf_server):
    s = dpf_server
    crd = copy.deepcopy(WIDGET_CRD)
    crd["spec"]["group"] = "widgets.k8s.io"
    crd["metadata"]["name"] = "widgets.widgets.k8s.io"
    p = path("customresourcedefinitions", ns=None, group=CRDS, version="v1")
    st, o = call(s, "POST", p, crd)
    assert st == 422, o
    assert [c for c in causes(o) if c["field"] ==
            "metadata.annotations[api-approved.kubernetes.io]"], o
    crd["metadata"]["annotations"] = {
        "api-approved.kubernetes.io": "https://github.com/kubernetes/"
                                      "enhancements/pull/1111"}
    st, o = call(s, "POST", p, crd)
    assert st == 201, o
    st, _ = call(s, "GET", "/apis/widgets.k8s.io/v1/namespaces/default/"
                           "widgets")
    assert st == 200


def test_crd_immutable_names(dpf_server):
    s = dpf_server
    o = create_crd(s)
    o["spec"]["scope"] = "Cluster"
    st, r = call(s, "PUT", path("customresourcedefinitions",
                                "widgets.example.com", ns=None, group=CRDS,
                                version="v1"), o)
    assert st == 422 and [c for c in causes(r)
                          if c["field"] == "spec.scope"], r


# ----------------------------------------------------------------------
# custom resources over HTTP


def test_custom_resource_validation_defaulting_pruning(dpf_server):
    s = dpf_server
    create_crd(s)
    st, o = call(s, "POST", wpath(), widget("w1", extra=1,
                                             values={"any": {"x": 1}}))
    assert st == 201, o
    assert o["spec"] == {"size": 3, "color": "red",
                         "values": {"any": {"x": 1}}}
    # Strict rejects the unknown field
    st, o = call(s, "POST", wpath() + "?fieldValidation=Strict",
                 widget("w2", extra=1))
    assert st == 400 and 'unknown field "spec.extra"' in o["message"], o
    for body, field in [(widget("w3", size="x"), "spec.size"),
                        (widget("w3", size=101), "spec.size"),
                        (widget("w3", color="pink"), "spec.color"),
                        (widget("w3", code="A1"), "spec.code"),
                        ({**widget("w3"), "spec": {}}, "spec.size")]:
        st, o = call(s, "POST", wpath(), body)
        assert st == 422, (body, o)
        assert [c for c in causes(o) if c["field"] == field], o
        assert o["message"].startswith('Widget.example.com "w3" is invalid')
    st, o = call(s, "POST", wpath(), widget("w4", port="http"))
    assert st == 201, o
    st, o = call(s, "POST", wpath(), widget("w5", port=80))
    assert st == 201, o
    # status is a subresource: the main resource keeps it as stored
    st, o = call(s, "PUT", wpath("w1", "status"),
                 {**o, "metadata": {"name": "w1"}, "status": {"size": 2}})
    st, cur = call(s, "GET", wpath("w1"))
    st, o = call(s, "PUT", wpath("w1", "status"),
                 {**cur, "status": {"size": 2}})
    assert st == 200 and o["status"] == {"size": 2}, o
    cur = o
    cur["status"] = {"size": 9}
    cur["spec"]["size"] = 4
    st, o = call(s, "PUT", wpath("w1"), cur)
    assert st == 200 and o["status"] == {"size": 2} and \
        o["spec"]["size"] == 4, o
    # strategic merge patch: 415 as for any custom resource
    st, o = call(s, "PATCH", wpath("w1"), {"spec": {"size": 1}},
                 "application/strategic-merge-patch+json")
    assert st == 415, o


def test_custom_resource_ssa_conflict(dpf_server):
    s = dpf_server
    create_crd(s)
    apply = "application/apply-patch+yaml"
    st, o = call(s, "PATCH", wpath("ssa") + "?fieldManager=alice",
                 yaml.safe_dump(widget("ssa", 5)), apply)
    assert st == 201, o
    mf = {m["manager"]: m for m in o["metadata"]["managedFields"]}
    assert mf["alice"]["fieldsV1"]["f:spec"]["f:size"] == {}
    st, o = call(s, "PATCH", wpath("ssa") + "?fieldManager=bob",
                 yaml.safe_dump(widget("ssa", 6)), apply)
    assert st == 409, o
    assert "conflict with \"alice\"" in o["message"] and ".spec.size" in \
        o["message"], o
    st, o = call(s, "PATCH", wpath("ssa") + "?fieldManager=bob&force=true",
                 yaml.safe_dump(widget("ssa", 6)), apply)
    assert st == 200 and o["spec"]["size"] == 6, o


def test_custom_resource_watch_over_http(dpf_server):
    s = dpf_server
    create_crd(s)
    st, lst = call(s, "GET", wpath())
    assert st == 200 and lst["kind"] == "WidgetList", lst
    w = Watch(s, wpath() + "?watch=1&resourceVersion=" +
              lst["metadata"]["resourceVersion"])
    st, o = call(s, "POST", wpath(), widget("wa"))
    assert st == 201
    ev = w.events_until(
        lambda evs: evs and evs[-1]["object"]["metadata"]["name"] == "wa")
    assert ev[-1]["type"] == "ADDED"
    w.close()


# ----------------------------------------------------------------------
# with stock kubectl


def crd_yaml():
    return yaml.safe_dump(WIDGET_CRD)


@pytest.mark.parametrize("version", ["1.20", "1.30", "1.32"])
def test_kubectl_crd_lifecycle(dpf_server, version):
    s = dpf_server
    r = k(s, ["apply", "-f", "-"], version, crd_yaml())
    assert r.returncode == 0, r.stderr
    r = k(s, ["wait", "--for=condition=Established", "--timeout=30s",
              "crd/widgets.example.com"], version)
    assert r.returncode == 0, r.stderr
    r = k(s, ["apply", "-f", "-"], version,
          yaml.safe_dump(widget("w1", 3)))
    assert r.returncode == 0, r.stderr
    # a wrong type: 422 naming the field
    r = k(s, ["apply", "-f", "-"], version,
          yaml.safe_dump(widget("bad", "three")))
    assert r.returncode != 0
    assert "spec.size" in r.stderr and "integer" in r.stderr, r.stderr
    # an unknown field: rejected with strict validation, pruned without
    if version != "1.20":
        r = k(s, ["apply", "--validate=strict", "-f", "-"], version,
              yaml.safe_dump(widget("unk", extra=1)))
        assert r.returncode != 0 and "extra" in r.stderr, r.stderr
    r = k(s, ["apply", "--validate=false", "-f", "-"], version,
          yaml.safe_dump(widget("unk", extra=1)))
    assert r.returncode == 0, r.stderr
    r = k(s, ["get", "widget", "unk", "-o", "json"], version)
    assert "extra" not in json.loads(r.stdout)["spec"], r.stdout
    # explain from OpenAPI
    r = k(s, ["explain", "widget.spec.size"], version)
    assert r.returncode == 0, r.stderr
    assert "How many parts the widget has." in r.stdout, r.stdout
    # printer columns, short name, category
    for word in ("wg", "gadgets", "widgets.example.com"):
        r = k(s, ["get", word], version)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split("\n")
        assert lines[0].split() == ["NAME", "SIZE", "COLOR"], r.stdout
        assert ["w1", "3", "red"] in [ln.split() for ln in lines], r.stdout
    # scale subresource
    r = k(s, ["scale", "widget", "w1", "--replicas=7"], version)
    assert r.returncode == 0, r.stderr
    r = k(s, ["get", "widget", "w1", "-o", "jsonpath={.spec.size}"], version)
    assert r.stdout == "7"
    # server-side apply conflict with another manager
    if version != "1.20":
        r = k(s, ["apply", "--server-side", "--field-manager=other", "-f",
                  "-"], version, yaml.safe_dump(widget("w1", 9)))
        assert r.returncode != 0 and "conflict" in r.stderr.lower(), r.stderr
        r = k(s, ["apply", "--server-side", "--force-conflicts",
                  "--field-manager=other", "-f", "-"], version,
              yaml.safe_dump(widget("w1", 9)))
        assert r.returncode == 0, r.stderr
    # kubectl patch defaults to strategic: 415 from the server
    r = k(s, ["patch", "widget", "w1", "-p", '{"spec":{"size":2}}'], version)
    assert r.returncode != 0, r.stdout
    assert "application/merge-patch+json" in r.stderr, r.stderr


def test_kubectl_watch_sees_added_object(dpf_server):
    s = dpf_server
    create_crd(s)
    exe = [KUBECTL["1.32"]]
    p = subprocess.Popen(exe + ["--kubeconfig", s.kubeconfig, "get", "wg",
                                "-w", "--no-headers"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        out = Lines(p.stdout)
        time.sleep(1)
        st, o = call(s, "POST", wpath(), widget("seen", 4))
        assert st == 201, o
        deadline = time.monotonic() + 30
        seen = []
        while time.monotonic() < deadline:
            line = out.get(deadline)
            if line is None:
                break
            seen.append(line)
            if line.split()[:2] == ["seen", "4"]:
                break
        assert seen and seen[-1].split()[:2] == ["seen", "4"], seen
    finally:
        p.kill()
        p.wait()


def test_client_node_lists_and_watches(dpf_server, tmp_path):
    s = dpf_server
    create_crd(s)
    st, o = call(s, "POST", wpath(), widget("first", 1))
    assert st == 201, o
    mods = _node_modules()
    d = tmp_path / "node"
    d.mkdir()
    shutil.copy(os.path.join(REPO, "tests", "system", "node",
                             "crd-client.mjs"), d)
    os.symlink(mods, d / "node_modules")
    p = subprocess.Popen(["node", str(d / "crd-client.mjs"), s.kubeconfig,
                          GROUP, "v1", "widgets", "default"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        out = Lines(p.stdout)
        deadline = time.monotonic() + 60
        got = []

        def until(pred):
            while time.monotonic() < deadline:
                line = out.get(deadline)
                if line is None:
                    break
                got.append(json.loads(line))
                if pred(got[-1]):
                    return got[-1]
            raise AssertionError(f"client-node saw {got}; stderr "
                                 f"{p.stderr.read() if p.poll() is not None else ''}")
        assert until(lambda o: "list" in o)["list"] == ["first"]
        until(lambda o: o.get("ev") == "started")
        st, o = call(s, "POST", wpath(), widget("second", 2))
        assert st == 201, o
        ev = until(lambda o: o.get("name") == "second")
        assert ev["ev"] == "ADDED" and ev["size"] == 2
    finally:
        p.kill()
        p.wait()


# ----------------------------------------------------------------------
# deletion, dpfctl crds, restart


def test_deleting_crd_deletes_its_objects(dpf_server):
    s = dpf_server
    create_crd(s)
    st, ns = call(s, "POST", "/api/v1/namespaces",
                  {"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "other"}})
    for n, namespace in [("a", "default"), ("b", "default"), ("c", "other")]:
        st, o = call(s, "POST", wpath(ns=namespace), widget(n))
        assert st == 201, o
    r = k(s, ["delete", "crd", "widgets.example.com", "--timeout=60s"])
    assert r.returncode == 0, r.stderr
    st, o = call(s, "GET", path("customresourcedefinitions",
                                "widgets.example.com", ns=None, group=CRDS,
                                version="v1"))
    assert st == 404, o
    st, o = call(s, "GET", wpath())
    assert st == 404, o
    # the objects went with it: a new CRD of the same name starts empty
    create_crd(s)
    st, o = call(s, "GET", "/apis/example.com/v1/widgets")
    assert st == 200 and o["items"] == [], o


def test_deleting_crd_shows_terminating_while_objects_have_finalizers(
        dpf_server):
    s = dpf_server
    create_crd(s)
    w = widget("held")
    w["metadata"]["finalizers"] = ["example.com/hold"]
    st, o = call(s, "POST", wpath(), w)
    assert st == 201, o
    p = path("customresourcedefinitions", "widgets.example.com", ns=None,
             group=CRDS, version="v1")
    st, o = call(s, "DELETE", p)
    assert st == 200, o

    def terminating():
        st, o = call(s, "GET", p)
        c = {c["type"]: c for c in o["status"]["conditions"]}
        return c.get("Terminating", {}).get("status") == "True"
    wait_for(terminating, 30, what="Terminating condition")
    st, o = call(s, "GET", wpath("held"))
    assert st == 200 and o["metadata"].get("deletionTimestamp"), o
    st, o = call(s, "POST", wpath(), widget("late"))
    assert st == 405, o
    assert "custom resource definition is terminating" in o["message"], o
    st, o = call(s, "PATCH", wpath("held"), {"metadata": {"finalizers": []}},
                 "application/merge-patch+json")
    assert st in (200, 404), o
    wait_for(lambda: call(s, "GET", p)[0] == 404, 30, what="CRD gone")


def test_dpfctl_crds_round_trip(dpf_server):
    s = dpf_server
    out = dpfctl(["crds"], s.kubeconfig)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert len(docs) >= 10
    r = k(s, ["apply", "-f", "-"], input=out.stdout)
    assert r.returncode == 0, r.stderr
    for d in docs:
        name = d["metadata"]["name"]
        r = k(s, ["get", "crd", name, "-o", "json"])
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        assert got["spec"]["versions"] == d["spec"]["versions"], name
        assert got["spec"]["names"]["kind"] == d["spec"]["names"]["kind"]
        conds = {c["type"]: c["status"] for c in got["status"]["conditions"]}
        assert conds["Established"] == "True", got["status"]
    # the built-in kinds keep being served, with their own rules
    r = k(s, ["apply", "-f", "-"], input=yaml.safe_dump({
        "apiVersion": "provisioning.dpu.nvidia.com/v1alpha1", "kind": "BFB",
        "metadata": {"name": "bf"},
        "spec": {"url": "http://example.invalid/bf.bfb"}}))
    assert r.returncode == 0, r.stderr
    r = k(s, ["get", "bfb", "bf", "-o", "jsonpath={.spec.fileName}"])
    assert r.stdout == "default-bf.bfb", r.stdout
    r = k(s, ["apply", "-f", "-"], input=out.stdout)
    assert r.returncode == 0 and "unchanged" in r.stdout, r.stdout


def test_restart_keeps_serving_the_crd(tmp_path):
    data = tmp_path / "state"
    data.mkdir()
    s = DpfServer(str(data))
    s.start()
    try:
        create_crd(s)
        st, o = call(s, "POST", wpath(), widget("kept", 5))
        assert st == 201, o
        assert s.stop() == 0
        s.proc = None
        s.start()
        st, o = call(s, "GET", wpath("kept"))
        assert st == 200 and o["spec"]["size"] == 5, o
        st, o = call(s, "POST", wpath(), widget("after", size="x"))
        assert st == 422, o
        r = k(s, ["get", "wg", "kept"])
        assert r.returncode == 0 and "kept" in r.stdout, r.stderr
    finally:
        code = s.stop()
    assert code == 0, s.log_text()[-3000:]
