"""The DPUSet and DPU controllers in dpf-server, without DMS or a DPU
cluster: fake host Nodes created through the API with DPF's detection
labels, a local HTTP server for BFB URLs.

What needs an install path (OS Installing onwards) is the end-to-end
test's with the emulator; here only test_rolling_update_respects_max_
unavailable marks DPUs Ready by writing their status itself, because the
dpu controller does not run there (it says so where it does it).
"""
import http.server
import json
import os
import threading
import time

import pytest

from conftest import DpfServer, wait_for

PROV = "/apis/provisioning.dpu.nvidia.com/v1alpha1"
NS = "default"
NFD = "feature.node.kubernetes.io/"
L = "provisioning.dpu.nvidia.com/"


class Files:
    def __init__(self):
        self.files = {}


def make_handler(files):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            data = files.files.get(self.path)
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def web():
    files = Files()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            make_handler(files))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    files.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield files
    httpd.shutdown()
    httpd.server_close()


def start(tmp_path, controllers):
    data = tmp_path / "dpf-state"
    data.mkdir()
    srv = DpfServer(str(data), controllers=controllers)
    srv.start()
    return srv


@pytest.fixture
def sets_only(tmp_path):
    srv = start(tmp_path, "dpuset")
    yield srv
    assert srv.stop() == 0, srv.log_text()[-3000:]


@pytest.fixture
def full(tmp_path):
    srv = start(tmp_path, "bfb,dpuset,dpu")
    yield srv
    assert srv.stop() == 0, srv.log_text()[-3000:]


# --- helpers -------------------------------------------------------------

def node(srv, name, dpus=("0000-04-00",), ip="10.0.0.1", labels=None,
         oob=True, annotations=None):
    lab = {NFD + "dpu-enabled": "true"}
    for i, pci in enumerate(dpus):
        lab[NFD + f"dpu-{i}-pci-address"] = pci
        lab[NFD + f"dpu-{i}-pf0-name"] = f"ens{i}f0np0"
    if oob:
        lab[NFD + "dpu-oob-bridge-configured"] = ""
    lab.update(labels or {})
    md = {"name": name, "labels": lab}
    if annotations:
        md["annotations"] = annotations
    srv.json("POST", "/api/v1/nodes",
             {"apiVersion": "v1", "kind": "Node", "metadata": md}, expect=201)
    _, n = srv.json("GET", f"/api/v1/nodes/{name}", expect=200)
    n["status"] = {"addresses": [{"type": "InternalIP", "address": ip},
                                 {"type": "Hostname", "address": name}]}
    srv.json("PUT", f"/api/v1/nodes/{name}/status", n, expect=200)


def get(srv, path):
    st, body = srv.json("GET", path)
    return body if st == 200 else None


def dpus(srv):
    return {d["metadata"]["name"]: d
            for d in get(srv, f"{PROV}/namespaces/{NS}/dpus")["items"]}


def dpuset(srv, name, selector=None, dpu_selector=None, bfb="bf",
           strategy=None, effect=None, node_labels=None, labels=None):
    spec = {"dpuTemplate": {"spec": {"bfb": {"name": bfb},
                                     "dpuFlavor": "flavor"}}}
    if selector is not None:
        spec["nodeSelector"] = selector
    if dpu_selector is not None:
        spec["dpuSelector"] = dpu_selector
    if strategy:
        spec["strategy"] = strategy
    if effect:
        spec["dpuTemplate"]["spec"]["nodeEffect"] = effect
    if node_labels:
        spec["dpuTemplate"]["spec"]["cluster"] = {"nodeLabels": node_labels}
    md = {"name": name, "namespace": NS}
    if labels:
        md["labels"] = labels
    srv.json("POST", f"{PROV}/namespaces/{NS}/dpusets",
             {"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
              "kind": "DPUSet", "metadata": md, "spec": spec}, expect=201)


def patch(srv, path, body):
    st, _, data = srv.request("PATCH", path, json.dumps(body),
                              {"Content-Type": "application/merge-patch+json"})
    assert st == 200, data[:500]


def events(srv, reason):
    items = get(srv, f"/api/v1/namespaces/{NS}/events")["items"]
    return [e["message"] for e in items if e.get("reason") == reason]


def cond(obj, ctype):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return c
    return None


# --- DPUSet --------------------------------------------------------------

def test_dpus_get_dpf_names_labels_and_owner(sets_only):
    srv = sets_only
    node(srv, "host-a", ip="10.0.0.11", labels={"role": "worker"})
    node(srv, "host-b", dpus=("0000-04-00", "0000-05-00"), ip="10.0.0.12",
         labels={"role": "worker"})
    node(srv, "host-c", labels={"role": "infra"})
    dpuset(srv, "workers", selector={"matchLabels": {"role": "worker"}},
           labels={"team": "net"})
    # a second set takes DPU 1 of host-b by its PCI label
    dpuset(srv, "second",
           dpu_selector={NFD + "dpu-1-pci-address": "0000-05-00"})
    want = {"host-a-0000-04-00", "host-b-0000-04-00", "host-b-0000-05-00"}
    wait_for(lambda: set(dpus(srv)) == want, 20, what="DPUs of both sets")
    d = dpus(srv)
    a = d["host-a-0000-04-00"]
    s = get(srv, f"{PROV}/namespaces/{NS}/dpusets/workers")
    assert a["spec"]["nodeName"] == "host-a"
    assert a["spec"]["bfb"] == "bf"
    assert a["spec"]["dpuFlavor"] == "flavor"
    lab = a["metadata"]["labels"]
    assert lab[L + "dpuset-name"] == "workers"
    assert lab[L + "dpuset-namespace"] == NS
    assert lab[L + "dpu-pciAddress"] == "0000-04-00"
    assert lab[L + "dpu-pf-name"] == "ens0f0np0"
    assert lab[L + "dpu-host-ip"] == "10.0.0.11"
    assert lab["team"] == "net"
    ref = a["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == \
        ("DPUSet", "workers", s["metadata"]["uid"], True)
    b1 = d["host-b-0000-05-00"]
    assert b1["metadata"]["labels"][L + "dpuset-name"] == "second"
    assert b1["metadata"]["labels"][L + "dpu-pf-name"] == "ens1f0np0"
    assert L + "dpuset-protection" in s["metadata"]["finalizers"]
    wait_for(lambda: get(srv, f"{PROV}/namespaces/{NS}/dpusets/workers")
             .get("status", {}).get("dpuStatistics") == {"Initializing": 2},
             20, what="dpuStatistics")
    assert any("host-a-0000-04-00" in m for m in events(srv,
                                                        "SuccessfulCreate"))


def test_node_selector_change_deletes(sets_only):
    srv = sets_only
    node(srv, "h1", labels={"role": "worker"})
    node(srv, "h2", labels={"role": "worker"})
    dpuset(srv, "s", selector={"matchLabels": {"role": "worker"}})
    wait_for(lambda: set(dpus(srv)) == {"h1-0000-04-00", "h2-0000-04-00"},
             20, what="two DPUs")
    patch(srv, "/api/v1/nodes/h2", {"metadata": {"labels": {"role": None}}})
    wait_for(lambda: set(dpus(srv)) == {"h1-0000-04-00"}, 20,
             what="h2's DPU deleted")
    # the event is recorded after the delete, asynchronously
    wait_for(lambda: any("h2-0000-04-00" in m
                         for m in events(srv, "SuccessfulDelete")),
             20, what="the SuccessfulDelete event")
    # the set's selector itself changes: h1 goes too, h2 comes back
    patch(srv, f"{PROV}/namespaces/{NS}/dpusets/s",
          {"spec": {"nodeSelector": {"matchLabels": {"role": None,
                                                     "kubernetes.io/x": None},
                                     "matchExpressions": [
                                         {"key": "role",
                                          "operator": "DoesNotExist"}]}}})
    wait_for(lambda: set(dpus(srv)) == {"h2-0000-04-00"}, 20,
             what="DPUs follow the new selector")


def mark_ready(srv, name):
    """Test-only: stands in for the dpu controller, which does not run in
    this test, and says the DPU is Ready."""
    d = get(srv, f"{PROV}/namespaces/{NS}/dpus/{name}")
    d["status"] = {"phase": "Ready", "conditions": [{
        "type": "Ready", "status": "True", "reason": "DPUNodeReady",
        "message": "test", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    srv.json("PUT", f"{PROV}/namespaces/{NS}/dpus/{name}/status", d,
             expect=200)


def test_rolling_update_respects_max_unavailable(sets_only):
    srv = sets_only
    names = [f"r{i}" for i in range(4)]
    for n in names:
        node(srv, n)
    dpuset(srv, "roll", strategy={"type": "RollingUpdate",
                                  "rollingUpdate": {"maxUnavailable": "50%"}},
           node_labels={"a": "1"})
    want = {f"{n}-0000-04-00" for n in names}
    wait_for(lambda: set(dpus(srv)) == want, 20, what="4 DPUs")
    for n in want:
        mark_ready(srv, n)
    uids = {n: d["metadata"]["uid"] for n, d in dpus(srv).items()}
    # nodeLabels change in place: same objects, new labels
    patch(srv, f"{PROV}/namespaces/{NS}/dpusets/roll",
          {"spec": {"dpuTemplate": {"spec": {"cluster": {
              "nodeLabels": {"a": "2", "b": "x"}}}}}})
    wait_for(lambda: all(d["spec"]["cluster"]["nodeLabels"] ==
                         {"a": "2", "b": "x"} for d in dpus(srv).values()),
             20, what="nodeLabels propagated")
    assert {n: d["metadata"]["uid"] for n, d in dpus(srv).items()} == uids
    # a new BFB: 50% of 4 = 2 DPUs at a time
    patch(srv, f"{PROV}/namespaces/{NS}/dpusets/roll",
          {"spec": {"dpuTemplate": {"spec": {"bfb": {"name": "bf2"}}}}})

    def new_ones():
        return {n for n, d in dpus(srv).items() if d["spec"]["bfb"] == "bf2"}
    wait_for(lambda: len(new_ones()) == 2, 20, what="first 2 replaced")
    time.sleep(3)  # the set must not take a third while 2 are unavailable
    assert len(new_ones()) == 2
    assert len(dpus(srv)) == 4
    for n in new_ones():
        mark_ready(srv, n)
    wait_for(lambda: len(new_ones()) == 4, 20, what="all replaced")
    assert all(uids[n] != d["metadata"]["uid"] for n, d in dpus(srv).items())


def test_dpuset_deletion_removes_its_dpus(sets_only):
    srv = sets_only
    node(srv, "d1")
    node(srv, "d2")
    dpuset(srv, "gone")
    wait_for(lambda: len(dpus(srv)) == 2, 20, what="2 DPUs")
    srv.json("DELETE", f"{PROV}/namespaces/{NS}/dpusets/gone", expect=200)
    wait_for(lambda: not dpus(srv) and
             get(srv, f"{PROV}/namespaces/{NS}/dpusets/gone") is None,
             20, what="set and DPUs gone")


# --- DPU phases ----------------------------------------------------------

def dpucluster_ready(srv, name="dc"):
    srv.json("POST", f"{PROV}/namespaces/{NS}/dpuclusters",
             {"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
              "kind": "DPUCluster", "metadata": {"name": name},
              "spec": {"type": "static", "version": "v1.30.2",
                       "kubeconfig": f"{name}-admin-conf"}}, expect=201)
    dc = get(srv, f"{PROV}/namespaces/{NS}/dpuclusters/{name}")
    dc["status"] = {"phase": "Ready"}
    srv.json("PUT", f"{PROV}/namespaces/{NS}/dpuclusters/{name}/status", dc,
             expect=200)


def bfb(srv, name, url):
    srv.json("POST", f"{PROV}/namespaces/{NS}/bfbs",
             {"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
              "kind": "BFB", "metadata": {"name": name},
              "spec": {"url": url}}, expect=201)


def taints(srv, name):
    return [t["key"] for t in
            get(srv, f"/api/v1/nodes/{name}").get("spec", {}).get("taints")
            or []]


def test_node_effect_applied_and_bfb_404_named(full, web):
    srv = full
    node(srv, "t1")
    node(srv, "no-oob", oob=False, labels={"x": "y"})
    dpucluster_ready(srv)
    bfb(srv, "bf", web.base + "/doca.bfb")  # 404 until served
    dpuset(srv, "s", selector={"matchExpressions": [
        {"key": "x", "operator": "DoesNotExist"}]},
        effect={"taint": {"key": "dpu.example/provisioning",
                          "value": "yes", "effect": "NoSchedule"}})
    dpuset(srv, "o", selector={"matchLabels": {"x": "y"}})
    name = "t1-0000-04-00"

    def pending_with_404():
        d = get(srv, f"{PROV}/namespaces/{NS}/dpus/{name}")
        c = cond(d, "BFBReady")
        return (d["status"]["phase"] == "Pending" and c and
                c["status"] == "False" and "HTTP 404" in c["message"] and d)
    d = wait_for(pending_with_404, 30, what="Pending with the 404")
    assert "dpu.example/provisioning" in taints(srv, "t1")
    assert cond(d, "Initialized")["status"] == "True"
    assert cond(d, "NodeEffectReady")["status"] == "True"
    ready = cond(d, "Ready")
    assert ready["status"] == "False" and "HTTP 404" in ready["message"]
    assert d["spec"]["cluster"]["name"] == "dc"
    # the node without the OOB bridge label stays Initializing, saying why
    o = wait_for(lambda: (lambda x: cond(x, "Initialized") and x)(
        get(srv, f"{PROV}/namespaces/{NS}/dpus/no-oob-0000-04-00")), 20,
        what="no-oob condition")
    c = cond(o, "Initialized")
    assert c["reason"] == "DPUOOBBridgeNotConfigured"
    assert "dpu-oob-bridge-configured" in c["message"]
    assert o["status"]["phase"] == "Initializing"
    # served: the BFB becomes Ready and the DPU goes on to DMS Deployment,
    # whose pod no kubelet runs here
    web.files["/doca.bfb"] = b"x" * 4096
    d = wait_for(lambda: (lambda x: x["status"]["phase"] == "DMS Deployment"
                          and cond(x, "DMSRunning") and x)(
        get(srv, f"{PROV}/namespaces/{NS}/dpus/{name}")), 30,
        what="DMS Deployment")
    pod = wait_for(lambda: get(srv, f"/api/v1/namespaces/{NS}/pods/"
                                    f"{name}-dms"), 20, what="DMS pod")
    assert pod["spec"]["nodeName"] == "t1"
    assert pod["spec"]["hostNetwork"] is True
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "DPU"
    assert cond(d, "DMSRunning")["status"] == "False"
    # deleting the DPUSet removes everything and lifts the taint
    srv.json("DELETE", f"{PROV}/namespaces/{NS}/dpusets/s", expect=200)
    t0 = time.monotonic()
    wait_for(lambda: get(srv, f"{PROV}/namespaces/{NS}/dpus/{name}") is None,
             20, what="DPU gone")
    assert time.monotonic() - t0 < 15
    assert get(srv, f"/api/v1/namespaces/{NS}/pods/{name}-dms") is None
    assert "dpu.example/provisioning" not in taints(srv, "t1")
    wait_for(lambda: get(srv, f"{PROV}/namespaces/{NS}/dpusets/s") is None,
             20, what="DPUSet gone")


def test_custom_label_and_drain(full, web):
    srv = full
    node(srv, "c1", labels={"grp": "c"})
    node(srv, "dr1", labels={"grp": "d"})
    dpucluster_ready(srv)
    bfb(srv, "bf", web.base + "/missing.bfb")
    # a workload pod on dr1, a mirror (static) pod that a drain leaves
    for pname, mirror in (("web", False), ("static-pod", True)):
        md = {"name": pname, "namespace": NS}
        if mirror:
            md["annotations"] = {"kubernetes.io/config.mirror": "abc"}
        srv.json("POST", f"/api/v1/namespaces/{NS}/pods",
                 {"apiVersion": "v1", "kind": "Pod", "metadata": md,
                  "spec": {"nodeName": "dr1",
                           "terminationGracePeriodSeconds": 0,
                           "containers": [{"name": "c", "image": "x"}]}},
                 expect=201)
    dpuset(srv, "c", selector={"matchLabels": {"grp": "c"}},
           effect={"customLabel": {"dpu.example/state": "provisioning"}})
    dpuset(srv, "d", selector={"matchLabels": {"grp": "d"}},
           effect={"drain": {"automaticNodeReboot": True}})

    def phase(n):
        d = get(srv, f"{PROV}/namespaces/{NS}/dpus/{n}")
        return d and d["status"]["phase"]
    wait_for(lambda: phase("c1-0000-04-00") == "Pending", 30,
             what="c1 Pending")
    lab = get(srv, "/api/v1/nodes/c1")["metadata"]["labels"]
    assert lab["dpu.example/state"] == "provisioning"
    wait_for(lambda: phase("dr1-0000-04-00") == "Pending", 30,
             what="dr1 drained and Pending")
    n = get(srv, "/api/v1/nodes/dr1")
    assert n["spec"]["unschedulable"] is True
    assert get(srv, f"/api/v1/namespaces/{NS}/pods/web") is None
    assert get(srv, f"/api/v1/namespaces/{NS}/pods/static-pod") is not None
    # deleting the DPUs lifts the effects
    for s in ("c", "d"):
        srv.json("DELETE", f"{PROV}/namespaces/{NS}/dpusets/{s}", expect=200)
    wait_for(lambda: not dpus(srv), 20, what="DPUs gone")
    assert "dpu.example/state" not in \
        get(srv, "/api/v1/nodes/c1")["metadata"]["labels"]
    assert not get(srv, "/api/v1/nodes/dr1")["spec"].get("unschedulable")


def test_dpu_deletion_cleans_up_and_error_retries(full, web):
    srv = full
    node(srv, "e1")
    dpucluster_ready(srv)
    web.files["/ok.bfb"] = b"y" * 1024
    bfb(srv, "bf", web.base + "/ok.bfb")
    dpuset(srv, "s")
    name = "e1-0000-04-00"
    pod = wait_for(lambda: get(srv, f"/api/v1/namespaces/{NS}/pods/"
                                    f"{name}-dms"), 30, what="DMS pod")
    # the pod fails: Error with the reason, then a retry with attempts 1
    pod["status"] = {"phase": "Failed", "message": "rshim busy"}
    srv.json("PUT", f"/api/v1/namespaces/{NS}/pods/{name}-dms/status", pod,
             expect=200)

    def dpu():
        return get(srv, f"{PROV}/namespaces/{NS}/dpus/{name}")
    d = wait_for(lambda: (lambda x: x["status"]["phase"] == "Error" and x)(
        dpu()), 60, what="Error")
    assert cond(d, "DMSRunning")["reason"] == "DMSPodFailed"
    assert "rshim busy" in d["status"]["lastError"]
    assert cond(d, "Ready")["status"] == "False"
    wait_for(lambda: dpu()["status"].get("attempts") == 1, 60,
             what="a retry after the backoff")
    # cleanup: the DMS server certificate's Secret (issued by the
    # controller through the dms signer) and a bf.cfg of this DPU go too
    wait_for(lambda: get(srv, f"/api/v1/namespaces/{NS}/secrets/"
                              f"{name}-server-secret"), 30,
             what="DMS server Secret")
    cfg = os.path.join(srv.data_dir, "bfb", f"{name}.cfg")
    with open(cfg, "w") as f:
        f.write("bf.cfg\n")
    wait_for(lambda: get(srv, f"/api/v1/namespaces/{NS}/pods/{name}-dms"),
             30, what="DMS pod again")
    srv.json("DELETE", f"{PROV}/namespaces/{NS}/dpus/{name}", expect=200)
    t0 = time.monotonic()
    wait_for(lambda: dpu() is None or dpu()["metadata"]["uid"] !=
             d["metadata"]["uid"], 20, what="DPU deleted")
    assert time.monotonic() - t0 < 10
    assert get(srv, f"/api/v1/namespaces/{NS}/secrets/"
                    f"{name}-server-secret") is None
    assert not os.path.exists(cfg)
    ev = events(srv, "DMSPodFailed")
    assert any("rshim busy" in m for m in ev)


def test_dms_running_leads_to_os_installing_which_names_what_it_lacks(full,
                                                                      web):
    """A DMS pod reported Running whose port answers (a listener on
    127.0.0.2 stands in for dmsd; no kubelet runs here) moves the DPU to
    OS Installing, which says which input it still waits for."""
    import socket
    srv = full
    lsock = socket.socket()
    lsock.bind(("127.0.0.2", 9339))
    lsock.listen(8)
    try:
        node(srv, "i1", ip="127.0.0.2")
        dpucluster_ready(srv)
        web.files["/ok.bfb"] = b"z" * 1024
        bfb(srv, "bf", web.base + "/ok.bfb")
        dpuset(srv, "s")
        name = "i1-0000-04-00"
        pod = wait_for(lambda: get(srv, f"/api/v1/namespaces/{NS}/pods/"
                                        f"{name}-dms"), 30, what="DMS pod")
        assert "127.0.0.2:9339" in pod["spec"]["containers"][0]["command"]
        pod["status"] = {"phase": "Running", "podIP": "127.0.0.2",
                         "hostIP": "127.0.0.2"}
        srv.json("PUT", f"/api/v1/namespaces/{NS}/pods/{name}-dms/status",
                 pod, expect=200)

        def installing():
            d = get(srv, f"{PROV}/namespaces/{NS}/dpus/{name}")
            c = cond(d, "OSInstalled")
            return d["status"]["phase"] == "OS Installing" and c and d
        d = wait_for(installing, 30, what="OS Installing")
        assert cond(d, "DMSRunning")["status"] == "True"
        c = cond(d, "OSInstalled")
        assert c["status"] == "False"
        assert c["reason"] == "WaitingForInstallInputs"
        assert "DPUFlavor default/flavor" in c["message"]
        assert "DPUFlavor default/flavor" in cond(d, "Ready")["message"]
        # with the flavor, the next missing input: the DPU cluster's
        # kubeconfig Secret the join token would come from
        srv.json("POST", f"{PROV}/namespaces/{NS}/dpuflavors",
                 {"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
                  "kind": "DPUFlavor", "metadata": {"name": "flavor"},
                  "spec": {}}, expect=201)
        wait_for(lambda: "dc-admin-conf" in cond(
            get(srv, f"{PROV}/namespaces/{NS}/dpus/{name}"),
            "OSInstalled")["message"], 30, what="join data named")
    finally:
        lsock.close()
