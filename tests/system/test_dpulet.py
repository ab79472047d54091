"""dpulet, the node agent: Node registration with DPF's DPU labels from a
fake sysfs, the Lease heartbeat, pods run as processes (env, secret volume,
probes, restart back-off, graceful deletion), static pods with mirror pods,
adoption after a restart, and its memory with 10 pods.

Run as root (mount namespaces). Every process dpulet starts is found from
its state files (<root-dir>/pods/*/.state/*.run) and killed by PID at
teardown."""
import glob
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import (BUILD_RELEASE, DpfServer, binary, free_port, kubectl,
                      wait_for)

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="dpulet needs root for mount namespaces")

LABEL = "feature.node.kubernetes.io/"


class Dpulet:
    def __init__(self, tmp, srv, name="node-a", extra=(), exe=None,
                 kubeconfig=True):
        self.tmp = tmp
        self.srv = srv
        self.name = name
        self.root = os.path.join(tmp, "root-" + name)
        self.sysfs = os.path.join(tmp, "sys-" + name)
        self.extra = list(extra)
        self.exe = exe or binary("dpulet", "dpulet")
        self.kubeconfig = kubeconfig
        self.proc = None
        self.logs = []
        os.makedirs(self.sysfs, exist_ok=True)

    def start(self):
        log = os.path.join(self.tmp, f"dpulet-{self.name}-{len(self.logs)}.log")
        self.logs.append(log)
        args = [self.exe, "--node-name", self.name, "--node-ip", "127.0.0.1",
                "--root-dir", self.root, "--sysfs-root", self.sysfs,
                "--path", "/usr/bin:/bin", "--log-level", "info"]
        if self.kubeconfig:
            args += ["--kubeconfig", self.srv.kubeconfig]
        if "--listen" not in self.extra:
            # not kubelet's 10250: another agent (a kubelet, a test run
            # beside this one) may hold it
            args += ["--listen", f"127.0.0.1:{free_port()}"]
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(args + self.extra, stdout=f,
                                         stderr=f, stdin=subprocess.DEVNULL)
        return self

    def log_text(self):
        return "".join(open(p, errors="replace").read() for p in self.logs)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def runs(self):
        """(state file, shim pid, container pid) of every container."""
        out = []
        for f in glob.glob(os.path.join(self.root, "pods", "*", ".state",
                                        "*.run")):
            try:
                parts = open(f).read().split()
                out.append((f, int(parts[0]), int(parts[2])))
            except (OSError, ValueError, IndexError):
                pass
        return out

    def cleanup(self):
        self.kill()
        for _, shim, pid in self.runs():
            for target in (-pid, pid, shim):
                try:
                    os.kill(target, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


@pytest.fixture
def env(tmp_path):
    data = tmp_path / "dpf-state"
    data.mkdir()
    srv = DpfServer(str(data))
    srv.start()
    srv.json("POST", "/api/v1/namespaces",
             {"metadata": {"name": "kube-node-lease"}})
    agents = []

    def make(**kw):
        d = Dpulet(str(tmp_path), srv, **kw)
        agents.append(d)
        return d
    yield srv, make, str(tmp_path)
    for a in agents:
        code = a.stop()
        a.cleanup()
        assert code in (0, -signal.SIGKILL, None), \
            f"dpulet exited {code}:\n{a.log_text()[-3000:]}"
    srv.stop()


def add_pci(sysfs, addr, devid, netdev=None):
    d = os.path.join(sysfs, "bus", "pci", "devices", addr)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "device"), "w") as f:
        f.write(devid + "\n")
    if netdev:
        os.makedirs(os.path.join(d, "net", netdev), exist_ok=True)


def get(srv, path):
    return srv.json("GET", path)


def node(srv, name):
    st, obj = get(srv, f"/api/v1/nodes/{name}")
    return obj if st == 200 else None


def pod(srv, name, ns="default"):
    st, obj = get(srv, f"/api/v1/namespaces/{ns}/pods/{name}")
    return obj if st == 200 else None


def create_pod(srv, spec, name, node_name="node-a", ns="default"):
    spec = dict(spec)
    spec.setdefault("nodeName", node_name)
    spec.setdefault("hostNetwork", True)
    st, obj = srv.json("POST", f"/api/v1/namespaces/{ns}/pods",
                       {"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "namespace": ns},
                        "spec": spec})
    assert st == 201, obj
    return obj


def cstatus(p, i=0):
    return ((p or {}).get("status") or {}).get("containerStatuses", [{}])[i]


def cond(p, t):
    for c in ((p or {}).get("status") or {}).get("conditions", []):
        if c["type"] == t:
            return c["status"]
    return None


def test_node_registration_labels_conditions(env):
    srv, make, tmp = env
    port = free_port()
    d = make(extra=["--node-labels", "site=lab,tier=edge",
                    "--register-with-taints", "dpu=host:NoSchedule",
                    "--listen", f"127.0.0.1:{port}",
                    "--detect-interval", "1s",
                    "--status-interval", "1s"])
    add_pci(d.sysfs, "0000:4b:00.0", "0xa2dc", "ens1f0np0")
    add_pci(d.sysfs, "0000:4b:00.1", "0xa2dc", "ens1f1np1")
    add_pci(d.sysfs, "0000:3a:00.0", "0x1017", "eno1")       # a plain NIC
    add_pci(d.sysfs, "0000:b1:00.0", "0xa2d6", "enp177s0f0")
    d.start()
    n = wait_for(lambda: node(srv, "node-a"), 30, what="Node registered")
    labels = n["metadata"]["labels"]
    assert labels[LABEL + "dpu-enabled"] == "true"
    assert labels[LABEL + "dpu-0-pci-address"] == "0000-4b-00"
    assert labels[LABEL + "dpu-0-pf0-name"] == "ens1f0np0"
    assert labels[LABEL + "dpu-1-pci-address"] == "0000-b1-00"
    assert labels[LABEL + "dpu-1-pf0-name"] == "enp177s0f0"
    assert LABEL + "dpu-2-pci-address" not in labels
    # no br-dpu in this namespace: no OOB bridge label
    assert LABEL + "dpu-oob-bridge-configured" not in labels
    assert labels["site"] == "lab" and labels["tier"] == "edge"
    assert labels["kubernetes.io/hostname"] == "node-a"
    assert n["spec"]["taints"] == [{"key": "dpu", "value": "host",
                                    "effect": "NoSchedule"}]
    n = wait_for(lambda: (lambda x: x if x and x.get("status", {}).get(
        "conditions") else None)(node(srv, "node-a")), 30,
        what="Node status")
    st = n["status"]
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Ready"]["status"] == "True"
    assert conds["Ready"]["reason"] == "KubeletReady"
    assert conds["MemoryPressure"]["reason"] == "KubeletHasSufficientMemory"
    assert conds["DiskPressure"]["reason"] == "KubeletHasNoDiskPressure"
    assert conds["PIDPressure"]["reason"] == "KubeletHasSufficientPID"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in st["addresses"]
    assert {"type": "Hostname", "address": "node-a"} in st["addresses"]
    assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == port
    assert int(st["capacity"]["cpu"]) == os.cpu_count()
    assert st["capacity"]["memory"].endswith("Ki")
    assert st["nodeInfo"]["operatingSystem"] == "linux"
    assert st["nodeInfo"]["kernelVersion"] == os.uname().release
    # kubectl sees a Ready node with its IP
    out = kubectl(["get", "nodes", "-o", "wide"], srv.kubeconfig).stdout
    assert "node-a" in out and "Ready" in out and "127.0.0.1" in out

    # the rescan: a DPU disappears, its labels go; one appears, it is added
    import shutil
    shutil.rmtree(os.path.join(d.sysfs, "bus/pci/devices/0000:b1:00.0"))
    wait_for(lambda: LABEL + "dpu-1-pci-address" not in
             node(srv, "node-a")["metadata"]["labels"], 20,
             what="stale DPU label removed")
    labels = node(srv, "node-a")["metadata"]["labels"]
    assert labels[LABEL + "dpu-0-pci-address"] == "0000-4b-00"
    assert LABEL + "dpu-1-pf0-name" not in labels
    assert labels["site"] == "lab"   # our other labels stay

    # the heartbeat moves every --status-interval
    hb = {c["type"]: c for c in node(srv, "node-a")["status"][
        "conditions"]}["Ready"]["lastHeartbeatTime"]
    wait_for(lambda: {c["type"]: c for c in node(srv, "node-a")["status"][
        "conditions"]}["Ready"]["lastHeartbeatTime"] > hb, 20,
        what="heartbeat moved")


def test_lease_renews(env):
    srv, make, tmp = env
    d = make(extra=["--lease-renew-interval", "1s"]).start()
    lease = wait_for(lambda: get(srv, "/apis/coordination.k8s.io/v1/"
                                 "namespaces/kube-node-lease/leases/node-a")[1]
                     if get(srv, "/apis/coordination.k8s.io/v1/namespaces/"
                            "kube-node-lease/leases/node-a")[0] == 200
                     else None, 30, what="node Lease")
    assert lease["spec"]["holderIdentity"] == "node-a"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    owners = lease["metadata"].get("ownerReferences", [])
    assert owners and owners[0]["kind"] == "Node" and \
        owners[0]["name"] == "node-a"
    first = lease["spec"]["renewTime"]

    def renewed():
        _, l2 = get(srv, "/apis/coordination.k8s.io/v1/namespaces/"
                    "kube-node-lease/leases/node-a")
        return l2["spec"]["renewTime"] != first and l2
    l2 = wait_for(renewed, 20, what="Lease renewed")
    assert l2["spec"]["renewTime"] > first


def running_ready(srv, name):
    p = pod(srv, name)
    if p and p.get("status", {}).get("phase") == "Running" and \
            cond(p, "Ready") == "True":
        return p
    return None


def test_pod_env_secret_volume_runs_ready(env):
    srv, make, tmp = env
    mnt = os.path.join(tmp, "mnt")
    srv.json("POST", "/api/v1/namespaces/default/secrets",
             {"metadata": {"name": "creds"},
              "data": {"token": "c2VrcmV0LXZhbHVl"}}, expect=201)
    d = make().start()
    create_pod(srv, {
        "terminationGracePeriodSeconds": 10,
        "volumes": [{"name": "creds", "secret": {"secretName": "creds"}},
                    {"name": "scratch", "emptyDir": {}}],
        "containers": [{
            "name": "app", "image": "example/app:1",
            "command": ["sh", "-c"],
            "args": ["echo A=$A NODE=$NODE POD=$POD; cat $MNT/creds/token; "
                     "echo; touch $MNT/scratch/ready; exec sleep 600"],
            "env": [{"name": "A", "value": "42"},
                    {"name": "MNT", "value": mnt},
                    {"name": "NODE", "valueFrom": {"fieldRef": {
                        "fieldPath": "spec.nodeName"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {
                        "fieldPath": "metadata.name"}}}],
            "volumeMounts": [
                {"name": "creds", "mountPath": mnt + "/creds"},
                {"name": "scratch", "mountPath": mnt + "/scratch"}],
            "readinessProbe": {"exec": {"command": [
                "test", "-f", mnt + "/scratch/ready"]},
                "periodSeconds": 1}}]}, "web")
    p = wait_for(lambda: running_ready(srv, "web"), 40, what="web Ready")
    cs = cstatus(p)
    assert cs["ready"] is True and cs["started"] is True
    assert cs["restartCount"] == 0 and "running" in cs["state"]
    assert cs["image"] == "example/app:1"
    assert p["status"]["podIP"] == "127.0.0.1"
    assert p["status"]["hostIP"] == "127.0.0.1"
    assert cond(p, "Initialized") == "True"
    assert cond(p, "ContainersReady") == "True"
    uid = p["metadata"]["uid"]
    logf = os.path.join(d.root, "pods", f"default_web_{uid}", "app", "0.log")
    text = wait_for(lambda: "sekret" in open(logf).read() and
                    open(logf).read(), 10, what="log lines")
    lines = text.splitlines()
    # CRI format: <RFC3339Nano> stdout F <line>
    first = lines[0].split(" ", 3)
    assert first[1] == "stdout" and first[2] == "F"
    assert first[0].endswith("Z") and "." in first[0]
    assert first[3] == "A=42 NODE=node-a POD=web"
    assert any(line.endswith(" stdout F sekret-value") for line in lines)
    # the secret is a 0600 file under the pod's directory; the mount is
    # private to the container (the host's mount point stays empty)
    sec = os.path.join(d.root, "pods", f"default_web_{uid}", "volumes",
                       "creds", "token")
    assert oct(os.stat(sec).st_mode & 0o777) == "0o600"
    assert not os.path.exists(os.path.join(mnt, "creds", "token"))
    # kubectl get pods -o wide shows it running on the node
    out = kubectl(["get", "pods", "-o", "wide"], srv.kubeconfig).stdout
    assert "web" in out and "Running" in out and "node-a" in out


def test_bad_pod_spec_fails_with_field(env):
    srv, make, tmp = env
    make().start()
    create_pod(srv, {"containers": [{"name": "x", "image": "i",
                                     "command": ["true"],
                                     "envFrom": [{"secretRef": {
                                         "name": "s"}}]}]}, "bad")
    p = wait_for(lambda: (lambda x: x if x.get("status", {}).get("phase") ==
                          "Failed" else None)(pod(srv, "bad")), 30,
                 what="bad pod Failed")
    assert p["status"]["reason"] == "UnsupportedPodSpec"
    assert "pod default/bad: spec.containers[0].envFrom" in \
        p["status"]["message"]


def test_crash_backoff_and_restart_count(env):
    srv, make, tmp = env
    make().start()
    create_pod(srv, {"containers": [{
        "name": "crash", "image": "i",
        "command": ["sh", "-c", "echo boom; exit 3"]}]}, "crasher")
    seen = {}

    def count(n):
        def f():
            p = pod(srv, "crasher")
            rc = cstatus(p).get("restartCount", 0)
            for k in range(rc + 1):
                seen.setdefault(k, time.monotonic())
            return rc >= n and p
        return f
    wait_for(count(1), 30, what="first restart")
    p = wait_for(count(2), 60, what="second restart")
    # kubelet's back-off: the second restart waits 10 s
    assert seen[2] - seen[1] >= 8, seen
    p = wait_for(lambda: (lambda x: x if "waiting" in cstatus(x).get(
        "state", {}) else None)(pod(srv, "crasher")), 30,
        what="CrashLoopBackOff")
    cs = cstatus(p)
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "back-off" in cs["state"]["waiting"]["message"]
    assert "crash" in cs["state"]["waiting"]["message"]
    last = cs["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["reason"] == "Error"
    assert cs["ready"] is False
    assert p["status"]["phase"] == "Running"


def test_liveness_failure_restarts(env):
    srv, make, tmp = env
    make().start()
    # a grace long enough that only a SIGTERM ends sleep: with 2 s, a run
    # under heavy load once saw the SIGKILL after the grace win (137)
    create_pod(srv, {"terminationGracePeriodSeconds": 20, "containers": [{
        "name": "live", "image": "i", "command": ["sleep", "600"],
        "livenessProbe": {"exec": {"command": ["test", "-f",
                                               "/nonexistent-dpulet"]},
                          "periodSeconds": 1, "failureThreshold": 2}}]},
        "sick")
    p = wait_for(lambda: (lambda x: x if cstatus(x).get("restartCount", 0)
                          >= 1 else None)(pod(srv, "sick")), 60,
                 what="liveness restart")
    last = cstatus(p)["lastState"]["terminated"]
    assert last["exitCode"] == 128 + signal.SIGTERM   # stopped with SIGTERM
    assert last["reason"] == "Error"


def test_readiness_failure_not_ready(env):
    srv, make, tmp = env
    make().start()
    create_pod(srv, {"containers": [{
        "name": "r", "image": "i", "command": ["sleep", "600"],
        "readinessProbe": {"tcpSocket": {"port": 1},
                           "periodSeconds": 1}}]}, "unready")
    p = wait_for(lambda: (lambda x: x if x.get("status", {}).get("phase") ==
                          "Running" else None)(pod(srv, "unready")), 30,
                 what="Running")
    time.sleep(3)
    p = pod(srv, "unready")
    assert cond(p, "Ready") == "False"
    assert cstatus(p)["ready"] is False
    assert cstatus(p)["restartCount"] == 0


def test_init_containers_and_restart_policies(env):
    srv, make, tmp = env
    make().start()
    done = os.path.join(tmp, "init-done")
    create_pod(srv, {"restartPolicy": "Never",
                     "initContainers": [
                         {"name": "first", "image": "i",
                          "command": ["sh", "-c", f"echo 1 > {done}"]},
                         {"name": "second", "image": "i",
                          "command": ["sh", "-c", f"echo 2 >> {done}"]}],
                     "containers": [{"name": "main", "image": "i",
                                     "command": ["sh", "-c",
                                                 f"test \"$(cat {done})\" = "
                                                 "\"$(printf '1\\n2')\""]}]},
               "job")
    create_pod(srv, {"restartPolicy": "Never", "containers": [{
        "name": "fail", "image": "i", "command": ["sh", "-c", "exit 7"]}]},
        "failjob")
    create_pod(srv, {"restartPolicy": "OnFailure", "containers": [{
        "name": "ok", "image": "i", "command": ["true"]}]}, "onfail")

    def phase(name, want):
        return lambda: (lambda x: x if x.get("status", {}).get("phase") ==
                        want else None)(pod(srv, name))
    p = wait_for(phase("job", "Succeeded"), 40, what="job Succeeded")
    ics = p["status"]["initContainerStatuses"]
    assert [c["name"] for c in ics] == ["first", "second"]
    assert all(c["state"]["terminated"]["reason"] == "Completed"
               for c in ics)
    assert cstatus(p)["state"]["terminated"]["exitCode"] == 0
    p = wait_for(phase("failjob", "Failed"), 40, what="failjob Failed")
    t = cstatus(p)["state"]["terminated"]
    assert t["exitCode"] == 7 and t["reason"] == "Error"
    assert cstatus(p)["restartCount"] == 0
    p = wait_for(phase("onfail", "Succeeded"), 40, what="onfail Succeeded")
    assert cstatus(p)["restartCount"] == 0


def proc_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_delete_terminates_gracefully(env):
    srv, make, tmp = env
    d = make().start()
    mark = os.path.join(tmp, "got-term")
    create_pod(srv, {"terminationGracePeriodSeconds": 20, "containers": [{
        "name": "c", "image": "i", "command": ["sh", "-c",
                                               f"trap 'echo x > {mark}; "
                                               "exit 0' TERM; while :; do "
                                               "sleep 0.2; done"]}]},
        "polite")
    create_pod(srv, {"terminationGracePeriodSeconds": 2, "containers": [{
        "name": "c", "image": "i", "command": ["sh", "-c",
                                               "trap '' TERM; while :; do "
                                               "sleep 0.2; done"]}]},
        "stubborn")
    wait_for(lambda: running_ready(srv, "polite") and
             running_ready(srv, "stubborn"), 40, what="both Running")
    pids = {os.path.basename(os.path.dirname(os.path.dirname(f))): pid
            for f, _, pid in d.runs()}
    polite_uid = pod(srv, "polite")["metadata"]["uid"]
    logf = os.path.join(d.root, "pods", f"default_polite_{polite_uid}", "c",
                        "0.log")
    t0 = time.monotonic()
    st, _ = srv.json("DELETE", "/api/v1/namespaces/default/pods/polite")
    assert st == 200
    wait_for(lambda: pod(srv, "polite") is None, 20, what="polite removed")
    # it stopped on SIGTERM, well before its 20 s grace period
    assert time.monotonic() - t0 < 10
    assert os.path.exists(mark), "the container never saw SIGTERM"
    pid = [v for k, v in pids.items() if k.startswith("default_polite_")][0]
    assert not proc_alive(pid)
    # the pod directory (and its log) is gone with the pod
    assert not os.path.exists(logf)
    # a container that ignores SIGTERM is killed after the grace period
    pid = [v for k, v in pids.items() if k.startswith("default_stubborn_")][0]
    srv.json("DELETE", "/api/v1/namespaces/default/pods/stubborn")
    time.sleep(1.0)
    assert proc_alive(pid), "killed before its 2 s grace period"
    wait_for(lambda: not proc_alive(pid), 15, what="stubborn killed")
    wait_for(lambda: pod(srv, "stubborn") is None, 30, what="stubborn gone")


def test_static_pod_mirror_and_change(env):
    srv, make, tmp = env
    sdir = os.path.join(tmp, "manifests")
    os.makedirs(sdir)
    marker = os.path.join(tmp, "static-out")
    manifest = """apiVersion: v1
kind: Pod
metadata:
  name: agent
  namespace: kube-system
spec:
  hostNetwork: true
  containers:
  - name: agent
    image: example/agent:1
    command: ["sh", "-c", "echo VERSION=%s; exec sleep 600"]
"""
    with open(os.path.join(sdir, "agent.yaml"), "w") as f:
        f.write(manifest % "one")
    srv.json("POST", "/api/v1/namespaces",
             {"metadata": {"name": "kube-system"}})
    d = make(extra=["--static-pod-path", sdir]).start()
    m = wait_for(lambda: (lambda x: x if x and x.get("status", {}).get(
        "phase") == "Running" else None)(pod(srv, "agent-node-a",
                                             "kube-system")), 40,
        what="mirror pod Running")
    ann = m["metadata"]["annotations"]
    assert "kubernetes.io/config.mirror" in ann
    assert ann["kubernetes.io/config.source"] == "file"
    assert m["spec"]["nodeName"] == "node-a"
    first_hash = ann["kubernetes.io/config.mirror"]
    runs = d.runs()
    assert len(runs) == 1
    first_pid = runs[0][2]
    # a changed manifest restarts the pod (new hash, new process)
    with open(os.path.join(sdir, "agent.yaml"), "w") as f:
        f.write(manifest % "two")

    def changed():
        x = pod(srv, "agent-node-a", "kube-system")
        return x and x["metadata"]["annotations"].get(
            "kubernetes.io/config.mirror") != first_hash and \
            x.get("status", {}).get("phase") == "Running" and x
    wait_for(changed, 60, what="mirror pod replaced")
    wait_for(lambda: not proc_alive(first_pid), 30, what="old process gone")
    logs = glob.glob(os.path.join(d.root, "pods", "kube-system_agent-node-a_*",
                                  "agent", "0.log"))
    assert len(logs) == 1 and "VERSION=two" in open(logs[0]).read()
    # removing the manifest stops the pod and deletes its mirror
    os.unlink(os.path.join(sdir, "agent.yaml"))
    wait_for(lambda: pod(srv, "agent-node-a", "kube-system") is None, 40,
             what="mirror pod deleted")
    wait_for(lambda: not d.runs(), 30, what="static pod stopped")
    assert not os.path.exists(marker)


def test_standalone_static_pod(env):
    srv, make, tmp = env
    sdir = os.path.join(tmp, "manifests-standalone")
    os.makedirs(sdir)
    with open(os.path.join(sdir, "solo.yaml"), "w") as f:
        f.write("apiVersion: v1\nkind: Pod\nmetadata: {name: solo}\n"
                "spec:\n  containers:\n  - name: c\n    image: i\n"
                "    command: [sh, -c, 'echo standalone-ok; exec sleep 600']\n")
    with open(os.path.join(sdir, "broken.yaml"), "w") as f:
        f.write("apiVersion: v1\nkind: Pod\nmetadata: {name: broken}\n"
                "spec: {containers: [{name: c}]}\n")
    d = make(name="solo-node", kubeconfig=False,
             extra=["--static-pod-path", sdir]).start()
    logf = wait_for(lambda: glob.glob(os.path.join(
        d.root, "pods", "default_solo-solo-node_*", "c", "0.log")), 30,
        what="standalone log")[0]
    wait_for(lambda: "standalone-ok" in open(logf).read(), 10,
             what="output")
    # the broken manifest is refused with the pod and the field named
    wait_for(lambda: "pod default/broken-solo-node: spec.containers[0]."
             "command" in d.log_text(), 20, what="error naming the field")
    assert node(srv, "solo-node") is None   # no API without a kubeconfig


def test_restart_adopts_running_pods(env):
    srv, make, tmp = env
    d = make().start()
    for i in range(2):
        create_pod(srv, {"containers": [{
            "name": "c", "image": "i",
            "command": ["sh", "-c", f"exec sleep 6{i}1"]}]}, f"keep{i}")
    for i in range(2):
        wait_for(lambda: running_ready(srv, f"keep{i}"), 40,
                 what=f"keep{i} Running")
    before = sorted(pid for _, _, pid in d.runs())
    assert len(before) == 2
    d.kill()
    # an orphan: a state file for a pod that no longer exists
    time.sleep(0.5)
    st, _ = srv.json("DELETE", "/api/v1/namespaces/default/pods/keep1?"
                     "gracePeriodSeconds=0")
    assert st == 200
    d.start()
    wait_for(lambda: "adopted running container" in d.log_text(), 30,
             what="adoption")
    wait_for(lambda: len(d.runs()) == 1, 30, what="orphan removed")
    after = [pid for _, _, pid in d.runs()]
    assert after[0] in before and proc_alive(after[0])
    # no duplicate: one sleep 601 process, and the removed pod's is gone
    def argv(path):
        try:
            with open(path, "rb") as f:
                return f.read().split(b"\0")[:2]
        except OSError:   # the process ended while we looked
            return []
    n = sum(1 for p in glob.glob("/proc/[0-9]*/cmdline")
            if argv(p) == [b"sleep", b"601"])
    assert n == 1
    gone = [p for p in before if p != after[0]][0]
    wait_for(lambda: not proc_alive(gone), 10, what="orphan killed")
    time.sleep(2)
    p = pod(srv, "keep0")
    assert cstatus(p)["restartCount"] == 0
    assert p["status"]["phase"] == "Running"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_rss_with_10_pods(env):
    srv, make, tmp = env
    exe = os.path.join(BUILD_RELEASE, "dpulet", "dpulet")
    if not os.path.exists(exe):
        pytest.fail(f"{exe} not built (the release build measures memory)")
    d = make(exe=exe).start()
    for i in range(10):
        create_pod(srv, {"containers": [{
            "name": "c", "image": "i", "command": ["sleep", "600"],
            "readinessProbe": {"exec": {"command": ["true"]},
                               "periodSeconds": 2}}]}, f"p{i}")
    for i in range(10):
        wait_for(lambda: running_ready(srv, f"p{i}"), 60, what=f"p{i}")
    time.sleep(5)
    kb = rss_kb(d.proc.pid)
    hz = os.sysconf("SC_CLK_TCK")

    def cpu():
        f = open(f"/proc/{d.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / hz
    c0, t0 = cpu(), time.monotonic()
    time.sleep(10)
    pct = 100 * (cpu() - c0) / (time.monotonic() - t0)
    print(f"\ndpulet RSS with 10 pods: {kb} KiB; CPU {pct:.1f} %")
    with open(os.path.join(tmp, "rss.txt"), "w") as f:
        f.write(str(kb))
    assert kb <= 20 * 1024, f"dpulet RSS {kb} KiB > 20 MiB"


def test_join_then_run_as_the_node(env):
    """dpulet join: kubeadm's TLS bootstrap with a bootstrap token; the
    kubeconfig it writes lets dpulet register its Node and Lease as
    system:node:<name>."""
    srv, make, tmp = env
    from conftest import dpfctl
    r = dpfctl(["token", "create", "--print-join-command"], srv.kubeconfig)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert words[:2] == ["kubeadm", "join"], r.stdout
    endpoint = words[2]
    token = words[words.index("--token") + 1]
    pin = words[words.index("--discovery-token-ca-cert-hash") + 1]
    kc = os.path.join(tmp, "joined.kubeconfig")
    j = subprocess.run([binary("dpulet", "dpulet"), "join", endpoint,
                        "--token", token, "--discovery-token-ca-cert-hash",
                        pin, "--node-name", "dpu-joined", "--kubeconfig",
                        kc], capture_output=True, text=True, timeout=120)
    assert j.returncode == 0, j.stderr
    assert token not in j.stderr and token.split(".")[1] not in j.stderr
    assert oct(os.stat(kc).st_mode & 0o777) == "0o600"
    # a wrong pin is refused before anything is sent
    bad = subprocess.run([binary("dpulet", "dpulet"), "join", endpoint,
                          "--token", token, "--discovery-token-ca-cert-hash",
                          "sha256:" + "0" * 64, "--node-name", "x",
                          "--kubeconfig", os.path.join(tmp, "bad.kc")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "dpulet join:" in bad.stderr
    assert not os.path.exists(os.path.join(tmp, "bad.kc"))

    d = make(name="dpu-joined")
    d.srv = type("S", (), {"kubeconfig": kc})()
    d.start()
    n = wait_for(lambda: node(srv, "dpu-joined"), 60,
                 what="joined Node registered")
    assert n["metadata"]["labels"]["kubernetes.io/hostname"] == "dpu-joined"
    wait_for(lambda: get(srv, "/apis/coordination.k8s.io/v1/namespaces/"
                         "kube-node-lease/leases/dpu-joined")[0] == 200, 30,
             what="joined node's Lease")


def test_client_certificate_rotation(env):
    """A node client certificate with 7 of its 24 h left is renewed by
    dpulet (a self-node CSR, approved automatically) and dpulet goes on
    with the new one."""
    import base64
    import datetime
    import yaml
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    srv, make, tmp = env
    ca_key = serialization.load_pem_private_key(
        open(os.path.join(srv.data_dir, "pki", "ca.key"), "rb").read(), None)
    ca = x509.load_pem_x509_certificate(open(srv.ca, "rb").read())
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime.utcnow() - datetime.timedelta(hours=17)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME,
                                   "system:node:dpu-rot")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(hours=24))
            .add_extension(x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))

    def b64(b):
        return base64.b64encode(b).decode()
    kc = {"apiVersion": "v1", "kind": "Config", "current-context": "n",
          "clusters": [{"name": "c", "cluster": {
              "server": srv.url,
              "certificate-authority-data": b64(open(srv.ca, "rb").read())}}],
          "contexts": [{"name": "n", "context": {"cluster": "c",
                                                 "user": "u"}}],
          "users": [{"name": "u", "user": {
              "client-certificate-data": b64(cert.public_bytes(
                  serialization.Encoding.PEM)),
              "client-key-data": b64(key.private_bytes(
                  serialization.Encoding.PEM,
                  serialization.PrivateFormat.PKCS8,
                  serialization.NoEncryption()))}}]}
    path = os.path.join(tmp, "dpu-rot.kubeconfig")
    with open(path, "w") as f:
        yaml.safe_dump(kc, f)
    os.chmod(path, 0o600)

    def serial():
        u = yaml.safe_load(open(path))["users"][0]["user"]
        return x509.load_pem_x509_certificate(base64.b64decode(
            u["client-certificate-data"])).serial_number
    d = make(name="dpu-rot", extra=["--status-interval", "1s"])
    d.srv = type("S", (), {"kubeconfig": path})()
    d.start()
    wait_for(lambda: serial() != cert.serial_number, 90,
             what="certificate renewed")
    wait_for(lambda: "renewed the node's client certificate" in
             d.log_text(), 10, what="renewal logged")

    def heartbeat():
        return {c["type"]: c for c in node(srv, "dpu-rot")["status"][
            "conditions"]}["Ready"]["lastHeartbeatTime"]
    first = wait_for(heartbeat, 30, what="status")
    # still talking to the API with the new certificate
    wait_for(lambda: heartbeat() > first, 20, what="heartbeat after renewal")


def test_bootstrap_kubeconfig(env):
    """--bootstrap-kubeconfig (a bootstrap token) + --kubeconfig (absent):
    dpulet gets its node certificate through a CSR, writes the kubeconfig
    0600 and registers its Node as system:node:<name>."""
    import yaml
    from conftest import dpfctl
    srv, make, tmp = env
    r = dpfctl(["token", "create", "--print-join-command"], srv.kubeconfig)
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    token = words[words.index("--token") + 1]
    boot = os.path.join(tmp, "bootstrap.kubeconfig")
    with open(srv.kubeconfig) as f:
        admin = yaml.safe_load(f)
    admin["users"][0]["user"] = {"token": token}
    with open(boot, "w") as f:
        yaml.safe_dump(admin, f)
    kc = os.path.join(tmp, "node.kubeconfig")
    d = make(name="dpu-boot", extra=["--bootstrap-kubeconfig", boot])
    d.srv = type("S", (), {"kubeconfig": kc})()
    d.start()
    wait_for(lambda: node(srv, "dpu-boot"), 60, what="Node registered")
    assert oct(os.stat(kc).st_mode & 0o777) == "0o600"
    user = yaml.safe_load(open(kc))["users"][0]["user"]
    assert "client-certificate-data" in user and "token" not in user
    r = kubectl(["auth", "whoami", "-o", "json"], kc)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"]["userInfo"]["username"] == \
        "system:node:dpu-boot"
    assert token.split(".")[1] not in d.log_text()
