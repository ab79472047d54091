"""The DPUCluster controller, run in-process by dpf-server
(--controllers=dpucluster), and the allocator's API side.

embedded (and kamaji, served by the same implementation): the controller
runs a child dpf-server per DPUCluster under <data-dir>/dpuclusters and
publishes its admin kubeconfig in Secret <name>-admin-kubeconfig; static:
DPF's contract (spec.kubeconfig, key admin.conf). Each test finds the
child's PID in its data directory's lock file and checks, at teardown,
that no child outlived the server's clean stop.
"""
import base64
import copy
import glob
import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from conftest import (EXAMPLES, FIXTURES_ABSENT, DpfServer, binary,
                      dpf_fixtures, dpfctl, free_port, kubectl, wait_for)

PROV = "/apis/provisioning.dpu.nvidia.com/v1alpha1"
FINALIZER = "provisioning.dpu.nvidia.com/cluster-manager-clean-up"
START = 90  # seconds for a child dpf-server (ASan, shared machine)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not yet reaped by its parent) is gone for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def lock_pids(data_dir):
    """PIDs written in the children's lock files (held or not)."""
    pids = {}
    for lock in glob.glob(os.path.join(data_dir, "dpuclusters", "*",
                                       "dpf-server.lock")):
        try:
            txt = open(lock).read().strip()
        except FileNotFoundError:
            continue
        if txt:
            pids[os.path.dirname(lock)] = int(txt)
    return pids


@pytest.fixture
def server(tmp_path):
    data = tmp_path / "dpf-state"
    data.mkdir()
    srv = DpfServer(str(data), controllers="dpucluster",
                    extra_args=["--dpu-cluster-address", "127.0.0.1"])
    srv.start()
    yield srv
    code = srv.stop()
    leftover = [p for p in lock_pids(str(data)).values() if pid_alive(p)]
    for p in leftover:  # clean up before failing
        os.kill(p, signal.SIGKILL)
    assert code in (0, -signal.SIGKILL, None), srv.log_text()[-3000:]
    assert not leftover, f"children outlived dpf-server's clean stop: " \
                         f"{leftover}"


def create_ns(srv, name):
    st, _ = srv.json("POST", "/api/v1/namespaces",
                     {"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": name}})
    assert st in (201, 409)


def create(srv, obj):
    ns = obj["metadata"]["namespace"]
    srv.json("POST", f"{PROV}/namespaces/{ns}/dpuclusters", obj, expect=201)


def get(srv, ns, name):
    st, obj = srv.json("GET", f"{PROV}/namespaces/{ns}/dpuclusters/{name}")
    return obj if st == 200 else None


def cond(obj, typ):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == typ:
            return c
    return None


def wait_phase(srv, ns, name, phase, timeout=START):
    def ok():
        o = get(srv, ns, name)
        return o if o and (o.get("status") or {}).get("phase") == phase \
            else None
    try:
        return wait_for(ok, timeout, interval=0.1,
                        what=f"DPUCluster {ns}/{name} phase {phase}")
    except TimeoutError:
        o = get(srv, ns, name)
        raise AssertionError(f"{ns}/{name} not {phase}: "
                             f"{json.dumps((o or {}).get('status'))}\n"
                             + srv.log_text()[-2000:])


def child_dir(srv, obj):
    md = obj["metadata"]
    return os.path.join(srv.data_dir, "dpuclusters",
                        f"{md['namespace']}_{md['name']}_{md['uid']}")


def child_pid(srv, obj):
    with open(os.path.join(child_dir(srv, obj), "dpf-server.lock")) as f:
        return int(f.read().strip())


def admin_conf(srv, ns, secret, tmp_path):
    _, s = srv.json("GET", f"/api/v1/namespaces/{ns}/secrets/{secret}",
                    expect=200)
    text = base64.b64decode(s["data"]["admin.conf"]).decode()
    path = tmp_path / f"{ns}-{secret}.conf"
    path.write_text(text)
    return str(path), yaml.safe_load(text)


def events(srv, ns, name):
    _, ev = srv.json("GET", f"/api/v1/namespaces/{ns}/events", expect=200)
    return [e for e in ev["items"]
            if e["involvedObject"].get("name") == name]


def check_embedded_ready(srv, ns, name, tmp_path):
    """Ready, its conditions, the Secret and stock kubectl through it."""
    obj = wait_phase(srv, ns, name, "Ready")
    secret = f"{name}-admin-kubeconfig"
    assert obj["spec"]["kubeconfig"] == secret  # set by the controller
    assert FINALIZER in obj["metadata"]["finalizers"]
    c = cond(obj, "Created")
    assert c["status"] == "True" and c["reason"] == "Created", c
    r = cond(obj, "Ready")
    assert r["status"] == "True" and r["reason"] == "HealthCheckPassed", r
    path, kc = admin_conf(srv, ns, secret, tmp_path)
    assert len(kc["clusters"]) == 1 and len(kc["users"]) == 1
    server = kc["clusters"][0]["cluster"]["server"]
    assert server.startswith("https://127.0.0.1:"), server
    port = int(server.rsplit(":", 1)[1])
    assert port != srv.port  # its own endpoint
    # Its own CA, not the host server's.
    ca = base64.b64decode(kc["clusters"][0]["cluster"]
                          ["certificate-authority-data"])
    assert ca != open(srv.ca, "rb").read()
    v = kubectl(["version", "-o", "json"], path)
    assert v.returncode == 0, v.stderr
    assert json.loads(v.stdout)["serverVersion"]["gitVersion"]
    n = kubectl(["get", "nodes"], path)
    assert n.returncode == 0, n.stderr
    # Its own store: the host's DPUCluster is not in it.
    d = kubectl(["get", "dpuclusters", "-A", "-o", "name"], path)
    assert d.returncode == 0 and name not in d.stdout, d.stdout
    # The child runs, in its own data directory, with its own PID.
    pid = child_pid(srv, obj)
    assert pid_alive(pid) and pid != srv.pid
    assert os.path.exists(os.path.join(child_dir(srv, obj), "pki", "ca.crt"))
    reasons = {e["reason"] for e in events(srv, ns, name)}
    assert {"Creating", "ClusterProcessStarted",
            "HealthCheckPassed"} <= reasons, reasons
    return obj, path


def test_examples_kamaji_is_embedded(server, tmp_path):
    """The project's example (type kamaji, which we serve with the embedded
    implementation) becomes Ready with a working admin kubeconfig."""
    docs = []
    for f in ("00-namespace.yaml", "03-dpucluster.yaml"):
        docs += list(yaml.safe_load_all(open(os.path.join(EXAMPLES, "hbn",
                                                         f))))
    create_ns(server, docs[0]["metadata"]["name"])
    dc = docs[1]
    assert dc["spec"]["type"] == "kamaji"
    create(server, dc)
    ns, name = dc["metadata"]["namespace"], dc["metadata"]["name"]
    obj, _ = check_embedded_ready(server, ns, name, tmp_path)
    # The printer columns show it.
    t = dpfctl(["get", "dpuclusters", "-n", ns], server.kubeconfig)
    assert t.returncode == 0, t.stderr
    line = [x for x in t.stdout.splitlines() if x.startswith(name)][0]
    assert "Ready" in line and "kamaji" in line and "1000" in line, t.stdout


def test_dpf_fixture_as_embedded(server, tmp_path):
    """DPF's hbn_only dpucluster.yaml with type embedded (its $VARIABLES
    filled in; keepalived is not acted on)."""
    fx = dpf_fixtures("hbn_only")
    if fx is None:
        pytest.skip(FIXTURES_ABSENT)
    text = open(os.path.join(fx, "dpucluster.yaml")).read()
    text = text.replace("$DPUCLUSTER_INTERFACE", "lo") \
               .replace("$DPUCLUSTER_VIP", "127.0.0.1")
    dc = [d for d in yaml.safe_load_all(text) if d][0]
    dc["spec"]["type"] = "embedded"
    ns, name = dc["metadata"]["namespace"], dc["metadata"]["name"]
    create_ns(server, ns)
    create(server, dc)
    obj, _ = check_embedded_ready(server, ns, name, tmp_path)
    assert obj["spec"]["maxNodes"] == 10


def static_dc(ns, name, secret):
    spec = {"type": "static", "version": "v1.30.2", "maxNodes": 3}
    if secret:
        spec["kubeconfig"] = secret
    return {"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
            "kind": "DPUCluster", "metadata": {"namespace": ns, "name": name},
            "spec": spec}


def put_secret(srv, ns, name, conf):
    srv.json("POST", f"/api/v1/namespaces/{ns}/secrets",
             {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": name, "namespace": ns},
              "data": {"admin.conf":
                       base64.b64encode(conf.encode()).decode()}},
             expect=201)


def wait_reason(srv, ns, name, typ, reason, timeout=30):
    def ok():
        o = get(srv, ns, name)
        c = cond(o, typ) if o else None
        return o if c and c["reason"] == reason else None
    try:
        return wait_for(ok, timeout, interval=0.1,
                        what=f"{ns}/{name} {typ} reason {reason}")
    except TimeoutError:
        raise AssertionError(json.dumps(get(srv, ns, name).get("status")))


def test_static_good_and_broken(server, tmp_path):
    ns = "static-test"
    create_ns(server, ns)
    good = open(server.kubeconfig).read()  # one cluster, one user, inline
    put_secret(server, ns, "good", good)
    create(server, static_dc(ns, "good", "good"))
    obj = wait_phase(server, ns, "good", "Ready", 30)
    assert cond(obj, "Created")["reason"] == "Created"
    assert cond(obj, "Ready")["reason"] == "HealthCheckPassed"
    assert "answers" in cond(obj, "Ready")["message"]

    # No spec.kubeconfig: DPF's EmptyKubeconfig, and Ready says so too.
    create(server, static_dc(ns, "empty", None))
    obj = wait_reason(server, ns, "empty", "Created", "EmptyKubeconfig")
    assert cond(obj, "Created")["message"] == "spec.kubeconfig is empty"
    obj = wait_reason(server, ns, "empty", "Ready", "EmptyKubeconfig")
    assert cond(obj, "Ready")["status"] == "False"
    assert obj["status"]["phase"] == "Creating"

    # Two clusters in admin.conf: refused with the counts.
    kc = yaml.safe_load(good)
    kc2 = copy.deepcopy(kc)
    extra = copy.deepcopy(kc["clusters"][0])
    extra["name"] = "other"
    kc2["clusters"].append(extra)
    put_secret(server, ns, "two", yaml.safe_dump(kc2))
    create(server, static_dc(ns, "two", "two"))
    obj = wait_reason(server, ns, "two", "Ready", "HealthCheckFailed")
    msg = cond(obj, "Ready")["message"]
    assert "exactly one cluster and one user" in msg and \
        "2 clusters" in msg and f"{ns}/two" in msg, msg
    assert obj["status"]["phase"] == "NotReady"

    # A server nobody listens on: the URL in the message.
    kc3 = copy.deepcopy(kc)
    dead = f"https://127.0.0.1:{free_port()}"
    kc3["clusters"][0]["cluster"]["server"] = dead
    put_secret(server, ns, "dead", yaml.safe_dump(kc3))
    create(server, static_dc(ns, "dead", "dead"))
    obj = wait_reason(server, ns, "dead", "Ready", "HealthCheckFailed")
    assert f"GET {dead}/version" in cond(obj, "Ready")["message"]

    # A Secret that does not exist, then is created: recovers by itself.
    create(server, static_dc(ns, "later", "later"))
    obj = wait_reason(server, ns, "later", "Ready", "HealthCheckFailed")
    assert f"Secret {ns}/later (spec.kubeconfig) not found" in \
        cond(obj, "Ready")["message"]
    put_secret(server, ns, "later", good)
    wait_phase(server, ns, "later", "Ready", 30)

    # Deleting a static cluster leaves its Secret alone (it is the user's).
    server.json("DELETE", f"{PROV}/namespaces/{ns}/dpuclusters/good",
                expect=200)
    wait_for(lambda: get(server, ns, "good") is None, 30,
             what="static DPUCluster gone")
    server.json("GET", f"/api/v1/namespaces/{ns}/secrets/good", expect=200)


def embedded(ns, name, max_nodes=None):
    spec = {"type": "embedded", "version": "v1.30.2"}
    if max_nodes:
        spec["maxNodes"] = max_nodes
    return {"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
            "kind": "DPUCluster", "metadata": {"namespace": ns, "name": name},
            "spec": spec}


def test_child_killed_recovers(server, tmp_path):
    ns = "kill-test"
    create_ns(server, ns)
    create(server, embedded(ns, "c1"))
    obj = wait_phase(server, ns, "c1", "Ready")
    pid = child_pid(server, obj)
    os.kill(pid, signal.SIGKILL)
    # NotReady, saying why, without anybody touching the object. (The
    # restart waits at least 1 s, so the window is wide enough to poll.)
    obj = wait_reason(server, ns, "c1", "Created", "ClusterNotReady", 30)
    assert obj["status"]["phase"] == "NotReady"
    assert cond(obj, "Created")["status"] == "False"
    r = cond(obj, "Ready")
    assert r["status"] == "False" and r["reason"] == "ClusterNotReady", r
    assert "condition Created is not True: the API server" in r["message"]
    wait_for(lambda: "ClusterProcessExited" in
             {e["reason"] for e in events(server, ns, "c1")}, 30,
             what="ClusterProcessExited event")
    ev = [e for e in events(server, ns, "c1")
          if e["reason"] == "ClusterProcessExited"][0]
    assert "signal 9" in ev["message"], ev
    # Back to Ready by itself, with a new process.
    obj = wait_phase(server, ns, "c1", "Ready")
    assert child_pid(server, obj) != pid
    assert pid_alive(child_pid(server, obj))
    path, _ = admin_conf(server, ns, "c1-admin-kubeconfig", tmp_path)
    assert kubectl(["get", "nodes"], path).returncode == 0


def test_server_restart_keeps_cluster(server, tmp_path):
    ns = "restart-test"
    create_ns(server, ns)
    create(server, embedded(ns, "c1"))
    obj = wait_phase(server, ns, "c1", "Ready")
    pid = child_pid(server, obj)
    path, kc = admin_conf(server, ns, "c1-admin-kubeconfig", tmp_path)
    ca = kc["clusters"][0]["cluster"]["certificate-authority-data"]
    url = kc["clusters"][0]["cluster"]["server"]
    r = kubectl(["create", "configmap", "marker", "--from-literal=a=b"], path)
    assert r.returncode == 0, r.stderr

    # A crash of dpf-server: the DPU cluster keeps running, the restarted
    # controller adopts the same process.
    server.kill()
    time.sleep(0.5)
    assert pid_alive(pid)
    assert kubectl(["get", "configmap", "marker"], path).returncode == 0
    server.start()
    obj = wait_phase(server, ns, "c1", "Ready")
    assert child_pid(server, obj) == pid
    wait_for(lambda: "adopted the running DPU cluster API server"
             in server.log_text(), 30, what="adoption logged")

    # A clean stop stops the child; the next start runs a new one on the
    # same data: same CA, endpoint and objects.
    assert server.stop() == 0
    assert not pid_alive(pid)
    server.start()
    # The status still says Ready from before the stop: wait for the new
    # process, then for the status naming it.
    pid2 = wait_for(lambda: child_pid(server, obj) != pid and
                    pid_alive(child_pid(server, obj)) and
                    child_pid(server, obj), START, what="new child")

    def ready_with_new_pid():
        o = get(server, ns, "c1")
        c = cond(o, "Created")
        return o["status"]["phase"] == "Ready" and \
            f"pid {pid2}," in c["message"]
    wait_for(ready_with_new_pid, START, what="Ready with the new process")
    path2, kc2 = admin_conf(server, ns, "c1-admin-kubeconfig", tmp_path)
    assert kc2["clusters"][0]["cluster"]["certificate-authority-data"] == ca
    assert kc2["clusters"][0]["cluster"]["server"] == url
    r = kubectl(["get", "configmap", "marker", "-o",
                 "jsonpath={.data.a}"], path2)
    assert r.returncode == 0 and r.stdout == "b", r.stderr


def test_delete_removes_everything(server, tmp_path):
    ns = "delete-test"
    create_ns(server, ns)
    create(server, embedded(ns, "c1"))
    obj = wait_phase(server, ns, "c1", "Ready")
    pid = child_pid(server, obj)
    d = child_dir(server, obj)
    assert os.path.isdir(d)
    server.json("DELETE", f"{PROV}/namespaces/{ns}/dpuclusters/c1",
                expect=200)
    wait_for(lambda: get(server, ns, "c1") is None, 60,
             what="DPUCluster gone")
    assert not pid_alive(pid)
    assert not os.path.exists(d)
    st, _ = server.json("GET",
                        f"/api/v1/namespaces/{ns}/secrets/c1-admin-kubeconfig")
    assert st == 404


def test_controller_manager_runs_children(tmp_path):
    """dpf-controller-manager --controllers=dpucluster: the children run
    under the manager's --dpu-cluster-dir and stop with it."""
    data = tmp_path / "srv"
    data.mkdir()
    srv = DpfServer(str(data), controllers="none")
    srv.start()
    cdir = tmp_path / "cm-dpuclusters"
    log = open(tmp_path / "cm.log", "ab")
    cm = subprocess.Popen(
        [binary("dpf-controller-manager", "dpf-controller-manager"),
         "--kubeconfig", srv.kubeconfig, "--controllers=dpucluster",
         "--dpu-cluster-dir", str(cdir), "--dpu-cluster-address",
         "127.0.0.1", "--metrics-bind-address", "0",
         "--health-probe-bind-address", "0"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    pid = None
    try:
        create_ns(srv, "cm-test")
        create(srv, embedded("cm-test", "c1"))
        obj = wait_phase(srv, "cm-test", "c1", "Ready")
        md = obj["metadata"]
        lock = cdir / f"cm-test_c1_{md['uid']}" / "dpf-server.lock"
        pid = int(lock.read_text().strip())
        assert pid_alive(pid)
        cm.send_signal(signal.SIGTERM)
        assert cm.wait(30) == 0
        assert not pid_alive(pid)
    finally:
        if cm.poll() is None:
            cm.kill()
            cm.wait()
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        srv.stop()
