"""Provisioning end to end on an emulated fleet (issue 10).

dpf-server runs with every controller in-process; a local HTTP server
serves a BFB built with `dpfctl bfb build`; dpf-emu builds 2 hosts x 1
BlueField in network namespaces, each host with a real dpulet and an
emulated rshim device, so the DPU controller's DMS pod runs the real dmsd
on the host and the install goes over gNOI with mutual TLS into the
emulated device, whose bf.cfg makes the emulated DPU join the embedded
DPU cluster with `dpulet join`. The manifests are the project's own
examples/fleet and, when the shared folder is there, DPF's hbn_only
use case verbatim (its variables filled in, kamaji served as embedded).

Runs as root (namespaces). Each test has its own fleet name and
management network; teardown takes the fleet down and checks that no
namespace of it is left."""
import functools
import http.server
import json
import os
import random
import re
import signal
import subprocess
import threading
import time

import pytest
import yaml

from conftest import (BUILD, EXAMPLES, FIXTURES_ABSENT, DpfServer, binary,
                      dpf_fixtures, dpfctl, free_mgmt_octet,
                      mgmt_octet_routed, wait_for)

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="provisioning e2e needs root "
                                "(network namespaces)")

CONDITIONS = ("Initialized", "NodeEffectReady", "BFBReady", "DMSRunning",
              "OSInstalled", "Rebooted", "HostNetworkReady", "Ready")
BFB_NAME = "bf-bundle-lab-1.0.bfb"


class BfbServer:
    """A local HTTP server for the BFB, answering 404 until told to serve."""

    def __init__(self, directory):
        self.serving = False
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                if not outer.serving:
                    self.send_error(404)
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        handler = functools.partial(Handler, directory=directory)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/{name}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Lab:
    """dpf-server + BFB server + dpf-emu fleet, torn down in reverse."""

    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.name = "p%03d" % random.randrange(1000)
        self.octet = free_mgmt_octet(200, 230)
        self.gw = f"10.{self.octet}.0.1"
        data = os.path.join(self.tmp, "dpf-state")
        os.makedirs(data)
        self.srv = DpfServer(data, controllers="all", extra_args=[
            "--bind-address", "0.0.0.0", "--server-name", self.gw,
            "--dpu-cluster-address", self.gw])
        www = os.path.join(self.tmp, "www")
        os.makedirs(www)
        kernel = os.path.join(self.tmp, "kernel")
        initrd = os.path.join(self.tmp, "initramfs")
        with open(kernel, "wb") as f:
            f.write(os.urandom(65536))
        with open(initrd, "wb") as f:
            f.write(os.urandom(262144))
        r = subprocess.run([binary("dpfctl", "dpfctl"), "bfb", "build",
                            "--kernel", kernel, "--initramfs", initrd,
                            "--bfb-version", "lab-1.0",
                            os.path.join(www, BFB_NAME)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        self.bfb = BfbServer(www)
        self.emu_log = os.path.join(self.tmp, "emu.log")
        self.state = os.path.join(self.tmp, "emu")
        self.emu = None

    def start(self, hosts=2, install_time="1s", reboot_hosts=False,
              extra=()):
        self.srv.start()
        env = dict(os.environ)
        env["PATH"] = ":".join([os.path.join(BUILD, "dmsd"),
                                os.path.join(BUILD, "dpf-hostnetwork"),
                                env.get("PATH", "/usr/bin:/bin")])
        self.emu = subprocess.Popen(
            [binary("dpf-emu", "dpf-emu"), "up", "--state-dir", self.state,
             "--hosts", str(hosts), "--dpus-per-host", "1",
             "--fleet", self.name,
             "--mgmt-cidr", f"10.{self.octet}.0.0/16",
             "--kubeconfig", self.srv.kubeconfig,
             "--server", f"https://{self.gw}:{self.srv.port}",
             "--dpulet", binary("dpulet", "dpulet"),
             "--install-time", install_time, "--reboot-time", "1s",
             "--log-file", self.emu_log] +
            (["--reboot-hosts"] if reboot_hosts else []) + list(extra),
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        wait_for(lambda: self.emu.poll() is not None or
                 "fleet up" in self.text(self.emu_log), 120,
                 what="fleet up")
        assert self.emu.poll() is None, self.text(self.emu_log)[-3000:]

    @staticmethod
    def text(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def host(self, i):
        return f"dpfemu-{self.name}-h{i}"

    def stop(self):
        if self.emu and self.emu.poll() is None:
            self.emu.send_signal(signal.SIGTERM)
            try:
                self.emu.wait(60)
            except subprocess.TimeoutExpired:
                self.emu.kill()
                self.emu.wait()
        subprocess.run([binary("dpf-emu", "dpf-emu"), "down", "--state-dir",
                        self.state], capture_output=True, timeout=120)
        code = self.srv.stop(timeout=60)
        self.bfb.stop()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True,
                              text=True).stdout
        assert f"dpfemu-{self.name}-" not in left, left
        assert not mgmt_octet_routed(self.octet), \
            f"a route to 10.{self.octet}.0.0/16 is left"
        return code

    def diagnose(self, lines=60):
        """Where the fleet stood: each DPU's phase and the conditions not
        True, the DPUSets' status, the hosts' taints, the pods, and the
        last lines of the server's and the emulator's logs."""
        out = [f"fleet {self.name} on 10.{self.octet}.0.0/16"]
        ns = "dpf-operator-system"
        for d in self.dpus(ns):
            st = d.get("status", {})
            bad = [f"{c['type']}={c.get('status')}({c.get('reason', '')}: "
                   f"{c.get('message', '')[:160]})"
                   for c in st.get("conditions", [])
                   if c.get("status") != "True"]
            out.append(f"DPU {d['metadata']['name']} phase="
                       f"{st.get('phase')} bfb={d['spec'].get('bfb')} "
                       f"deleting={bool(d['metadata'].get('deletionTimestamp'))}"
                       f" hostReboot={st.get('hostReboot')} {' '.join(bad)}")
        sets = self.get(f"/apis/provisioning.dpu.nvidia.com/v1alpha1/"
                        f"namespaces/{ns}/dpusets") or {}
        for s in sets.get("items", []):
            out.append(f"DPUSet {s['metadata']['name']} gen="
                       f"{s['metadata'].get('generation')} status="
                       f"{json.dumps(s.get('status', {}))[:300]}")
        nodes = self.get("/api/v1/nodes") or {}
        for n in nodes.get("items", []):
            out.append(f"Node {n['metadata']['name']} taints="
                       f"{json.dumps(n.get('spec', {}).get('taints', []))}")
        pods = self.get(f"/api/v1/namespaces/{ns}/pods") or {}
        for p in pods.get("items", []):
            out.append(f"Pod {p['metadata']['name']} node="
                       f"{p['spec'].get('nodeName')} phase="
                       f"{p.get('status', {}).get('phase')}")
        for title, path in (("server log", self.srv.log),
                            ("emulator log", self.emu_log)):
            tail = self.text(path).splitlines()[-lines:]
            out.append(f"--- {title}, last {len(tail)} lines")
            out.extend(line[:300] for line in tail)
        return "\n".join(out)

    # --- API helpers ---

    def get(self, path):
        code, obj = self.srv.json("GET", path)
        return obj if code == 200 else None

    def dpus(self, ns):
        obj = self.get(f"/apis/provisioning.dpu.nvidia.com/v1alpha1/"
                       f"namespaces/{ns}/dpus")
        return obj["items"] if obj else []

    def apply(self, text):
        r = dpfctl(["apply", "-f", "-"], self.srv.kubeconfig, input=text)
        assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def lab(tmp_path, request):
    lb = Lab(tmp_path)
    lb.start(install_time=getattr(request, "param", "1s"))
    yield lb
    code = lb.stop()
    assert code in (0, None), \
        f"dpf-server exited with {code}:\n{lb.srv.log_text()[-3000:]}"


def conditions(dpu):
    return {c["type"]: c for c in dpu.get("status", {}).get("conditions", [])}


def dpu_cluster_kubeconfig(lab, ns, secret, path):
    import base64
    obj = lab.get(f"/api/v1/namespaces/{ns}/secrets/{secret}")
    assert obj, f"Secret {ns}/{secret}"
    with open(path, "wb") as f:
        f.write(base64.b64decode(obj["data"]["admin.conf"]))
    return path


def dpu_cluster_nodes(kubeconfig):
    r = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "get",
                        "nodes", "-o", "yaml"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {n["metadata"]["name"]: n for n in yaml.safe_load(r.stdout)["items"]}


def provision_and_check(lab, ns, cluster_ns, secret, bfb_version,
                        node_labels, taint_key, tmp_path):
    """The DPUs of the applied DPUSet wait with the 404 named, then, once
    the BFB is served, reach Ready with every DPF condition True, as Ready
    Nodes of the DPU cluster with DPF's labels; the hosts carry the
    node-effect taint while their DPU is provisioned and lose it at
    Ready."""
    # 1. the BFB URL answers 404: the DPUs wait in Pending and say why
    def pending_with_404():
        ds = lab.dpus(ns)
        if len(ds) != 2:
            return False
        return all(d.get("status", {}).get("phase") == "Pending" and
                   "404" in conditions(d).get("BFBReady", {}).get("message", "")
                   for d in ds)
    wait_for(pending_with_404, 120, interval=1,
             what="DPUs Pending with the BFB's HTTP 404 in BFBReady")
    taints_seen = set()
    for i in (1, 2):
        node = lab.get(f"/api/v1/nodes/{lab.host(i)}")
        for t in node["spec"].get("taints", []):
            if t["key"] == taint_key:
                taints_seen.add(lab.host(i))
    assert taints_seen == {lab.host(1), lab.host(2)}, \
        "the node-effect taint is on both hosts while their DPUs wait"

    # 2. served: every DPU reaches Ready, nobody touched any object
    lab.bfb.serving = True
    phases = set()

    def all_ready():
        ds = lab.dpus(ns)
        for d in ds:
            phases.add(d.get("status", {}).get("phase"))
        return len(ds) == 2 and all(
            d.get("status", {}).get("phase") == "Ready" for d in ds)
    served = time.monotonic()
    wait_for(all_ready, 300, interval=0.5, what="both DPUs Ready")
    print(f"\nprovisioning: 2 DPUs Ready {time.monotonic() - served:.1f} s "
          "after the BFB was served")
    ds = lab.dpus(ns)
    for d in ds:
        cs = conditions(d)
        for t in CONDITIONS:
            assert cs.get(t, {}).get("status") == "True", \
                f"{d['metadata']['name']}: {t} {cs.get(t)}"
    assert "OS Installing" in phases or "Rebooting" in phases or \
        "Host Network Configuration" in phases, phases

    # 3. Ready Nodes of the DPU cluster with DPF's labels
    kc = dpu_cluster_kubeconfig(lab, cluster_ns, secret,
                                str(tmp_path / "dpu-cluster.conf"))
    nodes = dpu_cluster_nodes(kc)
    for d in ds:
        name = d["metadata"]["name"]
        assert name in nodes, f"{name} not a Node of the DPU cluster"
        n = nodes[name]
        ready = [c for c in n["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", n["status"]
        labels = n["metadata"]["labels"]
        assert labels.get("provisioning.dpu.nvidia.com/DOCA-BFB-version") \
            == bfb_version, labels
        assert labels.get("provisioning.dpu.nvidia.com/host") == \
            d["spec"]["nodeName"], labels
        for k, v in node_labels.items():
            assert labels.get(k) == v, (k, labels)

    # 4. the hosts lost the taint at Ready
    for i in (1, 2):
        node = lab.get(f"/api/v1/nodes/{lab.host(i)}")
        assert not [t for t in node["spec"].get("taints", [])
                    if t["key"] == taint_key], node["spec"]
    return ds, kc


def test_examples_fleet_provisions_and_deletes(lab, tmp_path):
    with open(os.path.join(EXAMPLES, "fleet", "01-bfb.yaml")) as f:
        assert "http://127.0.0.1:8099/" + BFB_NAME in f.read()
    text = ""
    for name in sorted(os.listdir(os.path.join(EXAMPLES, "fleet"))):
        with open(os.path.join(EXAMPLES, "fleet", name)) as f:
            text += "---\n" + f.read()
    text = text.replace("http://127.0.0.1:8099/" + BFB_NAME,
                        lab.bfb.url(BFB_NAME))
    lab.apply(text)
    ds, kc = provision_and_check(
        lab, "dpf-operator-system", "dpu-cluster-lab",
        "lab-admin-kubeconfig", "bf-bundle-lab-1.0",
        {"lab.example.com/role": "dpu-worker"}, "dpu", tmp_path)

    # each DPU's install went through DMS into its emulated device: its
    # disk got the flavor's files from the bf.cfg
    disks = []
    for i in (1, 2):
        disk = os.path.join(lab.state, "dpus", f"h{i}-d0", "disk")
        assert os.path.exists(os.path.join(disk, "etc", "mellanox",
                                           "mlnx-ovs.conf")), disk
        disks.append(disk)

    # the describe output shows the conditions and the install's progress
    r = dpfctl(["describe", "dpu", "-n", "dpf-operator-system",
                ds[0]["metadata"]["name"]], lab.srv.kubeconfig)
    assert r.returncode == 0, r.stderr
    assert "DPUNodeReady" in r.stdout and "Bytes Sent" in r.stdout, r.stdout
    # and the way through the phases, as events
    assert "PhaseChanged" in r.stdout and "OS Installing -> Rebooting" in \
        r.stdout, r.stdout

    # DPUSet deletion removes everything it created: DPUs, their pods and
    # Secrets, the bf.cfg files, the Nodes in the DPU cluster
    bfb_dir = os.path.join(lab.srv.data_dir, "bfb")
    cfgs = [f for f in os.listdir(bfb_dir) if f.endswith(".cfg")]
    start = time.monotonic()
    code, _ = lab.srv.json(
        "DELETE", "/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/"
        "dpf-operator-system/dpusets/lab")
    assert code in (200, 202), code
    wait_for(lambda: not lab.dpus("dpf-operator-system"), 120, interval=0.5,
             what="the DPUs gone")
    took = time.monotonic() - start
    pods = lab.get("/api/v1/namespaces/dpf-operator-system/pods")["items"]
    assert [p["metadata"]["name"] for p in pods] == [], pods
    secrets = lab.get("/api/v1/namespaces/dpf-operator-system/secrets")
    assert not [s["metadata"]["name"] for s in secrets["items"]
                if s["metadata"]["name"].endswith("-server-secret")]
    left = [f for f in os.listdir(bfb_dir) if f.endswith(".cfg")]
    assert cfgs and left == [], (cfgs, left)
    assert dpu_cluster_nodes(kc) == {}, "DPU Nodes left in the DPU cluster"
    print(f"\nprovisioning: DPUSet deleted, everything gone in {took:.1f} s")


def test_dpf_hbn_only_manifests_provision(tmp_path):
    src = dpf_fixtures("hbn_only")
    if src is None:
        pytest.skip(FIXTURES_ABSENT)
    lab = Lab(tmp_path)
    lab.start()
    try:
        text = "apiVersion: v1\nkind: Namespace\nmetadata:\n" \
               "  name: dpu-cplane-tenant1\n"
        for name in ("bfb.yaml", "dpucluster.yaml", "hbn-dpuflavor.yaml",
                     "dpuset.yaml"):
            with open(os.path.join(src, name)) as f:
                text += "---\n" + f.read()
        # DPF's variables, as its guide has the user set them
        text = text.replace("$BLUEFIELD_BITSTREAM", lab.bfb.url(BFB_NAME))
        text = text.replace("$DPUCLUSTER_INTERFACE", "mgmt0")
        text = text.replace("$DPUCLUSTER_VIP", lab.gw)
        assert not re.search(r"\$[A-Z_]+", text), "a variable left unset"
        lab.apply(text)
        provision_and_check(lab, "dpf-operator-system", "dpu-cplane-tenant1",
                            "dpu-cplane-tenant1-admin-kubeconfig",
                            "bf-bundle-lab-1.0", {}, "dpu", tmp_path)
    finally:
        code = lab.stop()
    assert code in (0, None), lab.srv.log_text()[-3000:]


def examples_fleet(lab, only=None, skip=()):
    text = ""
    for name in sorted(os.listdir(os.path.join(EXAMPLES, "fleet"))):
        if name in skip or (only is not None and name not in only):
            continue
        with open(os.path.join(EXAMPLES, "fleet", name)) as f:
            text += "---\n" + f.read()
    return text.replace("http://127.0.0.1:8099/" + BFB_NAME,
                        lab.bfb.url(BFB_NAME))


def all_ready(lab, ns="dpf-operator-system", n=2):
    ds = lab.dpus(ns)
    return len(ds) == n and all(
        d.get("status", {}).get("phase") == "Ready" and
        all(conditions(d).get(t, {}).get("status") == "True"
            for t in CONDITIONS) for d in ds)


def test_dpus_wait_for_their_flavor(lab):
    """A DPUSet whose DPUFlavor does not exist yet: its DPUs stop before
    the install and say which flavor they wait for; the flavor's creation
    takes them on to Ready, nothing deleted."""
    lab.bfb.serving = True
    flavor = "03-dpuflavor.yaml"
    lab.apply(examples_fleet(lab, skip=(flavor,)))

    def waiting():
        ds = lab.dpus("dpf-operator-system")
        return len(ds) == 2 and all(
            d.get("status", {}).get("phase") != "Ready" and any(
                "waiting for DPUFlavor dpf-operator-system/" in
                c.get("message", "") and c.get("status") != "True"
                for c in d.get("status", {}).get("conditions", []))
            for d in ds)
    wait_for(waiting, 120, interval=0.5,
             what="both DPUs waiting for their DPUFlavor")
    lab.apply(examples_fleet(lab, only=(flavor,)))
    wait_for(lambda: all_ready(lab), 300, interval=0.5, what="DPUs Ready")


def test_rolling_update_respects_max_unavailable(lab, tmp_path):
    lab.bfb.serving = True
    lab.apply(examples_fleet(lab))
    wait_for(lambda: all_ready(lab), 300, interval=0.5, what="DPUs Ready")
    # a second bundle; the DPUSet's template moves to it
    www = os.path.join(lab.tmp, "www")
    new = "bf-bundle-lab-2.0.bfb"
    r = subprocess.run([binary("dpfctl", "dpfctl"), "bfb", "build",
                        "--kernel", os.path.join(lab.tmp, "kernel"),
                        "--initramfs", os.path.join(lab.tmp, "initramfs"),
                        "--bfb-version", "lab-2.0", os.path.join(www, new)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lab.apply(f"""apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: BFB
metadata:
  name: bf-bundle-lab-2
  namespace: dpf-operator-system
spec:
  url: {lab.bfb.url(new)}
""")
    code, _ = lab.srv.json(
        "PATCH", "/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/"
        "dpf-operator-system/dpusets/lab",
        {"spec": {"dpuTemplate": {"spec": {"bfb": {"name":
                                                   "bf-bundle-lab-2"}}}}},
        headers={"Content-Type": "application/merge-patch+json"})
    assert code == 200, code
    # never more than maxUnavailable (1) of the 2 DPUs missing or not Ready
    worst = 0

    def done():
        nonlocal worst
        ds = lab.dpus("dpf-operator-system")
        ready = [d for d in ds
                 if d.get("status", {}).get("phase") == "Ready" and
                 not d["metadata"].get("deletionTimestamp")]
        worst = max(worst, 2 - len(ready))
        return len(ds) == 2 and len(ready) == 2 and all(
            d["spec"]["bfb"] == "bf-bundle-lab-2" for d in ds)
    wait_for(done, 400, interval=0.2, what="both DPUs on the new BFB")
    assert worst == 1, f"at most 1 unavailable, saw {worst}"
    kc = dpu_cluster_kubeconfig(lab, "dpu-cluster-lab",
                                "lab-admin-kubeconfig",
                                str(tmp_path / "dpu-cluster.conf"))

    def relabelled():
        nodes = dpu_cluster_nodes(kc)
        return len(nodes) == 2 and all(
            n["metadata"]["labels"].get(
                "provisioning.dpu.nvidia.com/DOCA-BFB-version")
            == "bf-bundle-lab-2.0" for n in nodes.values())
    wait_for(relabelled, 120, interval=1,
             what="DPU Nodes labelled with the new BFB version")


def pkill(pattern):
    subprocess.run(["pkill", "-KILL", "-f", pattern], capture_output=True)


@pytest.mark.parametrize("lab", ["8s"], indirect=True)
def test_faults_recover_without_deleting_objects(lab):
    """A DPU deleted mid-install goes in seconds (its DPUSet makes it
    again); dpf-server SIGKILLed during OS Installing, a host's dpulet and
    the dmsd processes killed with it: the install resumes and both DPUs
    reach Ready with nobody touching an object."""
    lab.bfb.serving = True
    lab.apply(examples_fleet(lab))
    ns = "dpf-operator-system"

    def installing():
        for d in lab.dpus(ns):
            if d.get("status", {}).get("phase") == "OS Installing":
                return d
        return None
    d = wait_for(installing, 300, interval=0.1, what="a DPU OS Installing")
    name, uid = d["metadata"]["name"], d["metadata"]["uid"]
    start = time.monotonic()
    code, _ = lab.srv.json("DELETE", f"/apis/provisioning.dpu.nvidia.com/"
                           f"v1alpha1/namespaces/{ns}/dpus/{name}")
    assert code in (200, 202), code

    def gone():
        cur = lab.get(f"/apis/provisioning.dpu.nvidia.com/v1alpha1/"
                      f"namespaces/{ns}/dpus/{name}")
        return cur is None or cur["metadata"]["uid"] != uid
    wait_for(gone, 30, interval=0.1, what=f"DPU {name} deleted mid-install")
    took = time.monotonic() - start
    assert took < 20, took
    print(f"\nprovisioning: DPU deleted mid-install, gone in {took:.1f} s")

    # the next install: kill the server, the agents of host 1, every dmsd
    wait_for(installing, 300, interval=0.1, what="a DPU OS Installing again")
    lab.srv.kill()
    pkill(f"dpulet --kubeconfig .* --node-name {lab.host(1)} ")
    pkill(f"dmsd --bind_address 10.{lab.octet}.")
    time.sleep(2)
    lab.srv.start(timeout=60)
    wait_for(lambda: all_ready(lab), 400, interval=0.5,
             what="both DPUs Ready after the faults")
    # the deleted DPU came back as a new object, made by its DPUSet
    again = lab.get(f"/apis/provisioning.dpu.nvidia.com/v1alpha1/"
                    f"namespaces/{ns}/dpus/{name}")
    assert again and again["metadata"]["uid"] != uid


def bfb_object(lab, ns="dpf-operator-system", name="bf-bundle-lab"):
    return lab.get(f"/apis/provisioning.dpu.nvidia.com/v1alpha1/"
                   f"namespaces/{ns}/bfbs/{name}")


def sha256_of(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def events_of(lab, ns, name):
    obj = lab.get(f"/api/v1/namespaces/{ns}/events")
    return [e for e in (obj or {}).get("items", [])
            if e.get("involvedObject", {}).get("name") == name]


def emu_states(lab):
    """Every emulated rshim device's emu-state.json, by path."""
    out = {}
    for root, _, files in os.walk(lab.state):
        if "emu-state.json" in files:
            import json
            with open(os.path.join(root, "emu-state.json")) as f:
                out[root] = json.load(f)
    return out


def test_corrupt_cached_bfb_is_refused_and_downloaded_again(lab):
    """The BFB controller's cached copy rots in place after it was Ready
    (bytes inside the initramfs change; size and mtime stay, so nothing a
    stat shows): the install is refused for its content, the DPU's status
    names the image and the CRC, the DPU controller asks the BFB to check
    its cache, the BFB controller parses the file, finds the bad CRC and
    downloads it again, and the DPUs' own retry reaches Ready, with nobody
    touching an object."""
    ns = "dpf-operator-system"
    lab.bfb.serving = True
    text = examples_fleet(lab)
    docs = [d for d in text.split("---\n") if d.strip()]
    first = [d for d in docs if "kind: Namespace" in d or "kind: BFB" in d]
    lab.apply("---\n".join(first))

    def bfb_ready():
        b = bfb_object(lab)
        return b if b and b.get("status", {}).get("phase") == "Ready" \
            else None
    b = wait_for(bfb_ready, 120, interval=0.5, what="the BFB Ready")
    served = os.path.join(lab.tmp, "www", BFB_NAME)
    cached = os.path.join(lab.srv.data_dir, "bfb", b["spec"]["fileName"])
    assert sha256_of(cached) == sha256_of(served) == b["status"]["sha256"]

    # bit rot: 16 bytes in the middle (the initramfs image) change
    st = os.stat(cached)
    with open(cached, "r+b") as f:
        f.seek(st.st_size // 2)
        old = f.read(16)
        f.seek(st.st_size // 2)
        f.write(bytes(x ^ 0x5A for x in old))
    os.utime(cached, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(cached).st_mtime_ns == st.st_mtime_ns
    # the size check every 5 s sees nothing
    time.sleep(6)
    assert bfb_ready(), bfb_object(lab)["status"]

    lab.apply(text)
    refused = {}

    def watch():
        for d in lab.dpus(ns):
            last = d.get("status", {}).get("lastError", "")
            if "CRC" in last:
                refused[d["metadata"]["name"]] = last
        return all_ready(lab)
    wait_for(watch, 400, interval=0.5,
             what="both DPUs Ready after the corrupt BFB")
    assert refused, "no DPU said its install was refused for a bad CRC"
    fname = b["spec"]["fileName"]
    for name, last in refused.items():
        # what went wrong, where, and what was done about it
        assert last.startswith("InstallationFailed:"), last
        assert fname in last and "CRC-32 mismatch" in last, last
        assert f"BFB {ns}/bf-bundle-lab was asked to check its cached " \
            "file" in last, last
        print(f"\nprovisioning: {name} lastError: {last}")
    for d in lab.dpus(ns):
        if d["metadata"]["name"] in refused:
            assert d["status"].get("attempts", 0) >= 1, d["status"]
    # the BFB controller found the bad CRC and downloaded the file again
    reasons = [e["reason"] for e in events_of(lab, ns, "bf-bundle-lab")]
    assert "CorruptCache" in reasons, reasons
    corrupt = [e for e in events_of(lab, ns, "bf-bundle-lab")
               if e["reason"] == "CorruptCache"][0]
    assert fname in corrupt["message"] and "CRC-32 mismatch" in \
        corrupt["message"], corrupt["message"]
    b = bfb_object(lab)
    assert "provisioning.dpu.nvidia.com/verify-cache" not in \
        b["metadata"].get("annotations", {}), b["metadata"]
    assert b["status"]["phase"] == "Ready"
    assert sha256_of(cached) == sha256_of(served) == b["status"]["sha256"]
    # dmsd checks every CRC of the image before it writes a byte into the
    # rshim boot device: no emulated device ever got the corrupt stream
    states = emu_states(lab)
    assert len(states) == 2, states
    for path, s in states.items():
        assert s["refusedSessions"] == 0 and s["bootSessions"] >= 1, \
            (path, s)


def dmsd_pid(lab, dpu):
    """PID of the dmsd serving DPU dpu of this lab (its --state_dir names
    the DPU, its --bind_address the lab's network)."""
    state = f"/bfb/.dms/dpf-operator-system.{dpu}"
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"dmsd"):
            continue
        args = [a.decode(errors="replace") for a in argv]
        if state in args and any(a.startswith(f"10.{lab.octet}.")
                                 for a in args):
            return int(pid)
    return None


def big_bundle(lab, mib=192):
    """Replace the lab's bundle with one whose initramfs is mib MiB, so
    dmsd's push into the rshim boot device takes a while."""
    www = os.path.join(lab.tmp, "www")
    initrd = os.path.join(lab.tmp, "initramfs-big")
    with open(initrd, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    r = subprocess.run([binary("dpfctl", "dpfctl"), "bfb", "build",
                        "--kernel", os.path.join(lab.tmp, "kernel"),
                        "--initramfs", initrd, "--bfb-version", "lab-1.0",
                        os.path.join(www, BFB_NAME)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    os.unlink(initrd)


def activation(lab, dpu, ns="dpf-operator-system"):
    """dmsd's persisted activation state for dpu, or {}."""
    import json
    path = os.path.join(lab.srv.data_dir, "bfb", ".dms", f"{ns}.{dpu}",
                        "activation.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def read_offset(pid, path):
    """Where process pid is in its open file path (by inode), or None."""
    ino = os.stat(path).st_ino
    fds = f"/proc/{pid}/fd"
    for fd in os.listdir(fds):
        try:
            if os.stat(os.path.join(fds, fd)).st_ino != ino:
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("pos:"):
                        return int(line.split()[1])
        except OSError:
            continue
    return None


def test_corrupt_bfb_refused_by_the_device(lab):
    """The bytes change after dmsd checked them, while it pushes them into
    the rshim boot device (the emulator is held with SIGSTOP, so the push
    waits on the full FIFO and the test knows how far dmsd has read): the
    emulated device refuses the stream for the bad CRC, dmsd reports the
    DPU refused it, the DPU's status says so and asks the BFB to check its
    cache, which is found corrupt and downloaded again, and both DPUs reach
    Ready with nobody touching an object."""
    ns = "dpf-operator-system"
    big_bundle(lab)
    lab.bfb.serving = True
    lab.apply(examples_fleet(lab))

    def installing():
        return [d["metadata"]["name"] for d in lab.dpus(ns)
                if d.get("status", {}).get("phase") == "OS Installing"]
    names = wait_for(installing, 300, interval=0.05,
                     what="a DPU OS Installing")
    cached = None
    os.kill(lab.emu.pid, signal.SIGSTOP)
    try:
        # dmsd checks the whole file, then blocks writing into the FIFO
        # nobody reads
        name = wait_for(lambda: next((n for n in names if activation(
            lab, n).get("phase") == "pushing"), None), 120, interval=0.05,
            what="dmsd pushing into the held device")
        fname = bfb_object(lab)["spec"]["fileName"]
        cached = os.path.join(lab.srv.data_dir, "bfb", fname)
        pid = dmsd_pid(lab, name)
        assert pid, f"no dmsd process for {name}"
        time.sleep(1)  # dmsd reaches the full FIFO and stays there
        pos = read_offset(pid, cached)
        size = os.path.getsize(cached)
        assert pos is not None and pos < size - (16 << 20), (pos, size)
        # bit rot near the end of the initramfs, size and mtime kept
        st = os.stat(cached)
        with open(cached, "r+b") as f:
            f.seek(size - (8 << 20))
            old = f.read(16)
            f.seek(size - (8 << 20))
            f.write(bytes(x ^ 0x5A for x in old))
        os.utime(cached, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.kill(lab.emu.pid, signal.SIGCONT)
    print(f"\nprovisioning: corrupted {fname} while dmsd of {name} had "
          f"pushed {pos} of {size} bytes")

    refused = {}

    def watch():
        for d in lab.dpus(ns):
            last = d.get("status", {}).get("lastError", "")
            if "the DPU refused" in last:
                refused[d["metadata"]["name"]] = last
        return all_ready(lab)
    wait_for(watch, 400, interval=0.5,
             what="both DPUs Ready after the device refused the BFB")
    assert name in refused, refused
    last = refused[name]
    assert last.startswith("InstallationFailed:"), last
    assert fname in last and "CRC-32 mismatch" in last, last
    assert f"BFB {ns}/bf-bundle-lab was asked to check its cached file" \
        in last, last
    print(f"provisioning: {name} lastError: {last}")
    # the device itself refused a stream (its words are the ones dmsd
    # passed on above: misc's ERR line); a later good session cleared
    # its lastError
    states = emu_states(lab)
    assert any(s["refusedSessions"] >= 1 for s in states.values()), states
    reasons = [e["reason"] for e in events_of(lab, ns, "bf-bundle-lab")]
    assert "CorruptCache" in reasons, reasons
    served = os.path.join(lab.tmp, "www", BFB_NAME)
    assert sha256_of(cached) == sha256_of(served) == \
        bfb_object(lab)["status"]["sha256"]


@pytest.mark.parametrize("lab", ["8s"], indirect=True)
def test_dmsd_killed_mid_transfer_recovers(lab):
    """dmsd is SIGKILLed while it pushes the BFB into the emulated rshim
    boot device (or, if the push is over, while it waits for the device to
    install it): the DPU's status names the interrupted activation, dpulet
    restarts the DMS pod's process, the DPU's retry activates again and the
    DPU reaches Ready, with nobody touching an object."""
    ns = "dpf-operator-system"
    big_bundle(lab)
    lab.bfb.serving = True
    lab.apply(examples_fleet(lab))
    dms = os.path.join(lab.srv.data_dir, "bfb", ".dms")

    def activating():
        import json
        for d in lab.dpus(ns):
            name = d["metadata"]["name"]
            try:
                with open(os.path.join(dms, f"{ns}.{name}",
                                       "activation.json")) as f:
                    a = json.load(f)
            except (OSError, ValueError):
                continue
            if a.get("phase") in ("pushing", "waiting"):
                return name, a["phase"], d.get("status", {}).get(
                    "installProgress")
        return None
    name, act_phase, progress = wait_for(activating, 300, interval=0.05,
                                         what="a dmsd activating a BFB")
    pid = dmsd_pid(lab, name)
    assert pid, f"no dmsd process for {name}"
    pod_path = f"/api/v1/namespaces/{ns}/pods/{name}-dms"
    pod = lab.get(pod_path)
    restarts = pod["status"]["containerStatuses"][0].get("restartCount", 0)
    os.kill(pid, signal.SIGKILL)
    print(f"\nprovisioning: dmsd of {name} killed while its activation was "
          f"{act_phase} (installProgress {progress})")

    # the status names what happened
    def named():
        d = lab.get(f"/apis/provisioning.dpu.nvidia.com/v1alpha1/"
                    f"namespaces/{ns}/dpus/{name}")
        last = d.get("status", {}).get("lastError", "")
        return last if "dmsd restarted while activating" in last else None
    last = wait_for(named, 180, interval=0.5,
                    what=f"{name}'s lastError naming the interrupted "
                    "activation")
    fname = bfb_object(lab)["spec"]["fileName"]
    assert last.startswith("InstallationFailed:") and fname in last, last
    assert "was asked to check its cached file" not in last, last
    print(f"provisioning: {name} lastError: {last}")
    # dpulet restarted the DMS pod's process (or the retry made a new pod)
    wait_for(lambda: dmsd_pid(lab, name) not in (None, pid), 60,
             what=f"a new dmsd for {name}")

    def pod_restarted():
        p = lab.get(pod_path)
        return p and (p["metadata"]["uid"] != pod["metadata"]["uid"] or
                      p["status"]["containerStatuses"][0].get(
                          "restartCount", 0) > restarts)
    wait_for(pod_restarted, 60, interval=0.5,
             what=f"pod {name}-dms restarted or recreated")

    wait_for(lambda: all_ready(lab), 400, interval=0.5,
             what="both DPUs Ready after dmsd was killed")
    d = lab.get(f"/apis/provisioning.dpu.nvidia.com/v1alpha1/"
                f"namespaces/{ns}/dpus/{name}")
    assert d["status"].get("attempts", 0) >= 1, d["status"]
    assert "dmsd restarted while activating" in d["status"]["lastError"]
