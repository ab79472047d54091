"""DPF's validation rules over HTTP: each invalid object is rejected with
422 Invalid (400 BadRequest for the IPAM webhook, as DPF does) and the
Status causes name the offending field. Nothing invalid is stored."""
import copy

import pytest

from apiutil import PROV, SVC, V, call, causes, path

OPER = "operator.dpu.nvidia.com"


def obj(group, kind, name, spec, ns="default", **meta):
    md = {"name": name, "namespace": ns}
    md.update(meta)
    return {"apiVersion": f"{group}/{V}", "kind": kind, "metadata": md,
            "spec": spec}


def bfb(spec=None, name="vb"):
    return obj(PROV, "BFB", name, spec if spec is not None
               else {"url": "http://example.com/os.bfb"})


def cluster(**over):
    spec = {"type": "static", "maxNodes": 10, "version": "v1.30.2"}
    spec.update(over)
    return obj(PROV, "DPUCluster", "vc", {k: v for k, v in spec.items()
                                          if v is not None})


def dpu(spec=None, **meta):
    s = {"nodeName": "host-1", "bfb": "os"}
    if spec is not None:
        s = spec
    return obj(PROV, "DPU", "vd", s, **meta)


def dpuset(strategy=None, node_effect=None):
    tmpl = {"spec": {"bfb": {"name": "os"}}}
    if node_effect is not None:
        tmpl["spec"]["nodeEffect"] = node_effect
    spec = {"dpuTemplate": tmpl}
    if strategy is not None:
        spec["strategy"] = strategy
    return obj(PROV, "DPUSet", "vs", spec)


def flavor(spec):
    return obj(PROV, "DPUFlavor", "vf", spec)


def dpuservice(**over):
    spec = {"helmChart": {"source": {"repoURL": "https://helm.ngc.nvidia.com/nvidia",
                                     "version": "1.0.0", "chart": "doca-hbn"}}}
    for k, v in over.items():
        if k == "source":
            spec["helmChart"]["source"].update(v)
        else:
            spec[k] = v
    return obj(SVC, "DPUService", "vsvc", spec)


def ipam(spec, ns="dpf-operator-system"):
    return obj(SVC, "DPUServiceIPAM", "vi", spec, ns=ns)


def credreq(**over):
    spec = {"serviceAccount": {"name": "sa", "namespace": "default"},
            "duration": "10m", "type": "kubeconfig",
            "secret": {"name": "out", "namespace": "default"}}
    spec.update(over)
    return obj(SVC, "DPUServiceCredentialRequest", "vcr", spec)


def opconfig(**over):
    spec = {"provisioningController": {"bfbPVCName": "bfb-pvc"}}
    for k, v in over.items():
        spec[k] = v
    return obj(OPER, "DPFOperatorConfig", "dpfoperatorconfig", spec,
               ns="dpf-operator-system")


def plural_of(o):
    return {"BFB": "bfbs", "DPUCluster": "dpuclusters", "DPU": "dpus",
            "DPUSet": "dpusets", "DPUFlavor": "dpuflavors",
            "DPUService": "dpuservices", "DPUServiceIPAM": "dpuserviceipams",
            "DPUServiceCredentialRequest": "dpuservicecredentialrequests",
            "DPFOperatorConfig": "dpfoperatorconfigs"}[o["kind"]]


def coll(o):
    return path(plural_of(o), ns=o["metadata"]["namespace"],
                group=o["apiVersion"].split("/")[0])


# (id, invalid object, expected code, field path the causes must name)
CREATE_RULES = [
    ("bfb-url-pattern", bfb({"url": "ftp://example.com/os.bfb"}), 422, "spec.url"),
    ("bfb-url-suffix", bfb({"url": "http://example.com/os.img"}), 422, "spec.url"),
    ("bfb-url-required", bfb({}), 422, "spec.url"),
    ("bfb-filename-pattern", bfb({"url": "http://e.com/a.bfb",
                                  "fileName": "bad name.img"}), 422, "spec.fileName"),
    ("cluster-type-pattern", cluster(type="custom"), 422, "spec.type"),
    ("cluster-maxnodes-high", cluster(maxNodes=1001), 422, "spec.maxNodes"),
    ("cluster-maxnodes-zero", cluster(maxNodes=0), 422, "spec.maxNodes"),
    ("cluster-version-required", cluster(version=None), 422, "spec.version"),
    ("cluster-vrid-range", cluster(clusterEndpoint={"keepalived": {
        "vip": "10.0.0.5", "virtualRouterID": 300, "interface": "eth0"}}),
     422, "spec.clusterEndpoint.keepalived.virtualRouterID"),
    ("dpu-nodename-required", dpu({"bfb": "os"}), 422, "spec.nodeName"),
    ("dpu-bfb-required", dpu({"nodeName": "host-1"}), 422, "spec.bfb"),
    ("dpu-single-node-effect", dpu({"nodeName": "h", "bfb": "os", "nodeEffect": {
        "noEffect": True, "customLabel": {"a": "b"}}}), 422, "spec.nodeEffect"),
    ("dpu-power-cycle-annotation", dpu(annotations={
        "provisioning.dpu.nvidia.com/host-power-cycle-required": "maybe"}),
     422, "metadata.annotations"),
    ("dpu-name", obj(PROV, "DPU", "Not_A_Name", {"nodeName": "h", "bfb": "os"}),
     422, "metadata.name"),
    ("dpuset-strategy-enum", dpuset(strategy={"type": "Sometimes"}), 422,
     "spec.strategy.type"),
    ("dpuset-maxunavailable-zero", dpuset(strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}), 422,
     "spec.strategy.rollingUpdate.maxUnavailable"),
    ("dpuset-maxunavailable-percent", dpuset(strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%"}}),
     422, "spec.strategy.rollingUpdate.maxUnavailable"),
    ("dpuset-node-effect", dpuset(node_effect={
        "taint": {"key": "k", "effect": "NoSchedule"}, "noEffect": True}), 422,
     "spec.dpuTemplate.spec.nodeEffect"),
    ("flavor-nvconfig-count", flavor({"nvconfig": [
        {"device": "*", "parameters": ["A=1"]},
        {"device": "*", "parameters": ["B=1"]}]}), 422, "spec.nvconfig"),
    ("flavor-nvconfig-device", flavor({"nvconfig": [
        {"device": "mt41692", "parameters": ["A=1"]}]}), 422, "spec.nvconfig"),
    ("flavor-reserved-without-total", flavor({
        "systemReservedResources": {"cpu": "1"}}), 422,
     "spec.systemReservedResources"),
    ("flavor-reserved-exceeds", flavor({
        "dpuResources": {"cpu": "2", "memory": "4Gi"},
        "systemReservedResources": {"cpu": "3"}}), 422,
     "spec.systemReservedResources"),
    ("dpuservice-repourl", dpuservice(source={"repoURL": "ftp://charts"}), 422,
     "spec.helmChart.source.repoURL"),
    ("dpuservice-version-empty", dpuservice(source={"version": ""}), 422,
     "spec.helmChart.source.version"),
    ("dpuservice-interfaces-need-serviceid", dpuservice(interfaces=["p0"]), 422,
     "spec"),
    ("credreq-duration", credreq(duration="ten minutes"), 422, "spec.duration"),
    ("credreq-type", credreq(type="pem"), 422, "spec.type"),
    ("opconfig-mtu", opconfig(networking={"controlPlaneMTU": 10000}), 422,
     "spec.networking.controlPlaneMTU"),
    ("opconfig-pvc-name", opconfig(provisioningController={"bfbPVCName": ""}),
     422, "spec.provisioningController.bfbPVCName"),
    ("ipam-namespace", ipam({"ipv4Subnet": {"subnet": "10.0.0.0/16",
                                            "gateway": "10.0.0.1",
                                            "perNodeIPCount": 256}},
                            ns="default"), 400, ""),
    ("ipam-both", ipam({"ipv4Subnet": {"subnet": "10.0.0.0/16",
                                       "gateway": "10.0.0.1", "perNodeIPCount": 8},
                        "ipv4Network": {"network": "10.1.0.0/16",
                                        "prefixSize": 24}}), 400, "spec"),
    ("ipam-neither", ipam({}), 400, "spec"),
    ("ipam-gateway-outside", ipam({"ipv4Subnet": {"subnet": "10.0.0.0/16",
                                                  "gateway": "10.9.0.1",
                                                  "perNodeIPCount": 8}}), 400,
     "spec.ipv4Subnet"),
    ("ipam-prefix-size", ipam({"ipv4Network": {"network": "10.1.0.0/16",
                                               "prefixSize": 8}}), 400,
     "spec.ipv4Network"),
]


@pytest.mark.parametrize("case", CREATE_RULES, ids=[c[0] for c in CREATE_RULES])
def test_invalid_create_rejected(dpf_server, case):
    _, o, code, field = case
    st, body = call(dpf_server, "POST", coll(o), o)
    assert st == code, body
    assert body["kind"] == "Status" and body["reason"] == (
        "Invalid" if code == 422 else "BadRequest"), body
    fields = causes(body)
    assert fields, body
    assert any(f.startswith(field) for f in fields), (field, fields, body["message"])
    name = o["metadata"]["name"]
    p = coll(o) + "/" + name
    assert call(dpf_server, "GET", p)[0] == 404


# (id, valid object, mutation applied on update, field)
def _set(path_, value):
    def f(o):
        cur = o
        keys = path_.split(".")
        for k in keys[:-1]:
            cur = cur.setdefault(k, {})
        cur[keys[-1]] = value
    return f


UPDATE_RULES = [
    ("bfb-spec-immutable", bfb(), _set("spec.url", "http://example.com/new.bfb"),
     "spec"),
    ("dpu-nodename-immutable", dpu(), _set("spec.nodeName", "host-2"),
     "spec.nodeName"),
    ("cluster-kubeconfig-once", cluster(kubeconfig="kc-a"),
     _set("spec.kubeconfig", "kc-b"), "spec.kubeconfig"),
    ("flavor-immutable", flavor({"grub": {"kernelParameters": ["a=1"]}}),
     _set("spec.grub.kernelParameters", ["a=2"]), "spec"),
]


@pytest.mark.parametrize("case", UPDATE_RULES, ids=[c[0] for c in UPDATE_RULES])
def test_invalid_update_rejected(dpf_server, case):
    _, o, mutate, field = case
    st, created = call(dpf_server, "POST", coll(o), o)
    assert st == 201, created
    p = coll(o) + "/" + o["metadata"]["name"]
    upd = copy.deepcopy(created)
    mutate(upd)
    st, body = call(dpf_server, "PUT", p, upd)
    assert st == 422, body
    assert any(f.startswith(field) for f in causes(body)), body
    st, now = call(dpf_server, "GET", p)
    assert now["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    # the same change as a merge patch is rejected the same way
    st, body = call(dpf_server, "PATCH", p, {"spec": upd["spec"]},
                    "application/merge-patch+json")
    assert st == 422, body


def test_delete_protection_of_referenced_flavor(dpf_server):
    s = dpf_server
    f = flavor({"grub": {"kernelParameters": ["a=1"]}})
    assert call(s, "POST", coll(f), f)[0] == 201
    ds = dpuset()
    ds["spec"]["dpuTemplate"]["spec"]["dpuFlavor"] = "vf"
    assert call(s, "POST", coll(ds), ds)[0] == 201
    st, body = call(s, "DELETE", coll(f) + "/vf")
    assert st == 403 and body["reason"] == "Forbidden", body
    assert call(s, "GET", coll(f) + "/vf")[0] == 200
    assert call(s, "DELETE", coll(ds) + "/vs")[0] == 200
    assert call(s, "DELETE", coll(f) + "/vf")[0] == 200


def test_defaults_applied(dpf_server):
    s = dpf_server
    st, o = call(s, "POST", coll(bfb()), bfb())
    assert st == 201 and o["spec"]["fileName"] == "default-vb.bfb"
    st, o = call(s, "POST", coll(cluster()), dict(cluster(), spec={
        "type": "static", "version": "v1.30.2"}))
    assert st == 201 and o["spec"]["maxNodes"] == 1000
    st, o = call(s, "POST", coll(dpuset()), dpuset())
    assert st == 201 and o["spec"]["strategy"]["type"] == "Recreate"
