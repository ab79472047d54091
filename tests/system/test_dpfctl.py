"""dpfctl end to end against a real dpf-server: every command, output
format and exit code a user relies on (kubectl's conventions)."""
import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest
import yaml

from conftest import (DpfServer, TlsListener, binary, dpfctl, kubectl,
                      make_cert, wait_for)

NS = "dpf-operator-system"
GROUP = "provisioning.dpu.nvidia.com"
BFB_PATH = f"/apis/{GROUP}/v1alpha1/namespaces/{NS}/bfbs"
AGE = re.compile(r"^\d+(s|m\d*s?|h\d*m?|d\d*h?|y\d*d?)$")


def bfb(name, url=None, labels=None, ns=NS):
    md = {"name": name, "namespace": ns}
    if labels:
        md["labels"] = labels
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "BFB", "metadata": md,
            "spec": {"url": url or f"http://127.0.0.1:8080/{name}.bfb"}}


def cluster(name, ns=NS):
    """A DPUCluster: a kind whose status has conditions."""
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "DPUCluster",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"type": "static", "version": "v1.30.2"}}


def write_yaml(path, *docs):
    with open(path, "w") as f:
        yaml.safe_dump_all(list(docs), f, sort_keys=False)
    return str(path)


def ctl(srv, *args, input=None, ok=True):
    """Run dpfctl; assert the exit code when ok is True/False."""
    r = dpfctl(list(args), srv.kubeconfig, input=input)
    if ok is True:
        assert r.returncode == 0, f"dpfctl {args}: {r.returncode}\n{r.stderr}"
    elif ok is False:
        assert r.returncode == 1, f"dpfctl {args}: {r.returncode}\n{r.stdout}"
    return r


def table(text):
    """Split a kubectl-style table into rows of cells (3+ spaces apart)."""
    return [re.split(r"\s{2,}", line.strip())
            for line in text.splitlines() if line.strip()]


CLUSTER_PATH = f"/apis/{GROUP}/v1alpha1/namespaces/{NS}/dpuclusters"


def live(srv, name, path=BFB_PATH):
    status, obj = srv.json("GET", f"{path}/{name}")
    return obj if status == 200 else None


def set_status(srv, name, status, path=BFB_PATH):
    obj = live(srv, name, path)
    obj["status"] = status
    srv.json("PUT", f"{path}/{name}/status", obj, expect=200)


def ready(status="True"):
    return {"phase": "Ready", "conditions": [
        {"type": "Ready", "status": status, "reason": "Downloaded",
         "message": "file is cached", "lastTransitionTime":
         time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]}


# --- no server needed -------------------------------------------------------

def test_help_version_and_usage_errors(tmp_path):
    kc = str(tmp_path / "none")
    r = dpfctl(["--version"], kc)
    assert r.returncode == 0 and re.match(r"^dpfctl v\d+\.\d+\.\d+\n$", r.stdout)
    r = dpfctl(["--help"], kc)
    assert r.returncode == 0
    for cmd in ("apply", "get", "describe", "delete", "wait", "crds",
                "api-resources", "version"):
        assert cmd in r.stdout
        h = dpfctl([cmd, "-h"], kc)
        assert h.returncode == 0, cmd
        assert f"dpfctl {cmd}" in h.stdout and "--kubeconfig" in h.stdout
        h2 = dpfctl([cmd, "--help"], kc)
        assert h2.stdout == h.stdout
    r = dpfctl(["frob"], kc)
    assert r.returncode == 1 and 'unknown command "frob"' in r.stderr
    r = dpfctl(["get", "--frob", "bfb"], kc)
    assert r.returncode == 1 and "unknown flag: --frob" in r.stderr
    r = dpfctl(["get", "bfb"], kc)
    assert r.returncode == 1 and kc in r.stderr
    r = dpfctl(["apply"], kc)
    assert r.returncode == 1 and "must specify one of -f" in r.stderr


def test_api_resources():
    r = subprocess.run([binary("dpfctl", "dpfctl"), "api-resources"],
                       capture_output=True, text=True)
    assert r.returncode == 0
    rows = table(r.stdout)
    assert rows[0] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    byname = {row[0]: row for row in rows[1:]}
    assert byname["bfbs"][-3:] == [f"{GROUP}/v1alpha1", "true", "BFB"]
    assert byname["namespaces"][-2:] == ["false", "Namespace"]


# --- apply --------------------------------------------------------------------

def test_apply_create_configure_unchanged(dpf_server, tmp_path):
    f = write_yaml(tmp_path / "bfb.yaml", bfb("a"))
    r = ctl(dpf_server, "apply", "-f", f)
    assert r.stdout == f"bfb.{GROUP}/a created\n"
    obj = live(dpf_server, "a")
    ann = obj["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"]
    assert json.loads(ann)["spec"]["url"].endswith("/a.bfb")
    assert ann.endswith("\n")
    r = ctl(dpf_server, "apply", "-f", f)
    assert r.stdout == f"bfb.{GROUP}/a unchanged\n"
    write_yaml(f, bfb("a", labels={"tier": "x"}))
    r = ctl(dpf_server, "apply", "-f", f)
    assert r.stdout == f"bfb.{GROUP}/a configured\n"
    assert live(dpf_server, "a")["metadata"]["labels"] == {"tier": "x"}
    # dropping the label from the file removes it (three-way merge)
    write_yaml(f, bfb("a"))
    r = ctl(dpf_server, "apply", "-f", f)
    assert r.stdout == f"bfb.{GROUP}/a configured\n"
    assert not live(dpf_server, "a")["metadata"].get("labels")
    # status is never touched by apply
    set_status(dpf_server, "a", {"phase": "Ready"})
    r = ctl(dpf_server, "apply", "-f", f)
    assert r.stdout == f"bfb.{GROUP}/a unchanged\n"
    assert live(dpf_server, "a")["status"]["phase"] == "Ready"


def test_bfb_empty_filename_defaulted(dpf_server, tmp_path):
    """DPF's BFB webhook: spec.fileName "" (like an unset one) becomes
    <namespace>-<name>.bfb, over the REST API and through dpfctl apply."""
    raw = bfb("raw")
    raw["spec"]["fileName"] = ""
    status, obj = dpf_server.json("POST", BFB_PATH, raw)
    assert status == 201, obj
    assert obj["spec"]["fileName"] == f"{NS}-raw.bfb"
    assert live(dpf_server, "raw")["spec"]["fileName"] == f"{NS}-raw.bfb"
    # an update that sends "" again is defaulted to the same value, so the
    # immutable spec is unchanged and the update is accepted
    obj["spec"]["fileName"] = ""
    status, upd = dpf_server.json("PUT", f"{BFB_PATH}/raw", obj)
    assert status == 200, upd
    assert upd["spec"]["fileName"] == f"{NS}-raw.bfb"

    doc = bfb("applied")
    doc["spec"]["fileName"] = ""
    f = write_yaml(tmp_path / "empty-name.yaml", doc)
    r = ctl(dpf_server, "apply", "-f", f)
    assert r.stdout == f"bfb.{GROUP}/applied created\n"
    r = ctl(dpf_server, "-n", NS, "get", "bfb", "applied", "-o",
            "jsonpath={.spec.fileName}")
    assert r.stdout == f"{NS}-applied.bfb"
    # applying the file again sends fileName "" once more (the live value
    # differs from the file): kubectl calls that "configured" too, and the
    # server defaults it to the same name
    r = ctl(dpf_server, "apply", "-f", f)
    k = kubectl(["apply", "-f", f], dpf_server.kubeconfig)
    assert k.returncode == 0, k.stderr
    assert r.stdout == k.stdout == f"bfb.{GROUP}/applied configured\n"
    assert live(dpf_server, "applied")["spec"]["fileName"] == \
        f"{NS}-applied.bfb"
    # a name given by the user is kept
    doc = bfb("named")
    doc["spec"]["fileName"] = "mine.bfb"
    ctl(dpf_server, "apply", "-f", write_yaml(tmp_path / "named.yaml", doc))
    assert live(dpf_server, "named")["spec"]["fileName"] == "mine.bfb"


def test_apply_sources(dpf_server, tmp_path):
    d = tmp_path / "manifests"
    (d / "sub").mkdir(parents=True)
    write_yaml(d / "a.yaml", bfb("d1"), bfb("d2"))
    (d / "b.json").write_text(json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [bfb("d3")]}))
    (d / "ignored.txt").write_text("not: a manifest\n")
    write_yaml(d / "sub" / "c.yml", bfb("d4"))
    r = ctl(dpf_server, "apply", "-f", str(d))
    assert r.stdout.splitlines() == [f"bfb.{GROUP}/d{i} created"
                                     for i in (1, 2, 3)]
    assert live(dpf_server, "d4") is None
    r = ctl(dpf_server, "apply", "-R", "-f", str(d))
    assert r.stdout.splitlines()[-1] == f"bfb.{GROUP}/d4 created"
    # stdin, several -f, namespace from the flag when the object has none
    doc = bfb("s1")
    del doc["metadata"]["namespace"]
    one = write_yaml(tmp_path / "one.yaml", bfb("s2"))
    r = ctl(dpf_server, "-n", NS, "apply", "-f", "-", "-f", one,
            input=yaml.safe_dump(doc))
    assert r.stdout.splitlines() == [f"bfb.{GROUP}/s1 created",
                                     f"bfb.{GROUP}/s2 created"]
    # a namespace flag that contradicts the object is refused
    r = ctl(dpf_server, "-n", "default", "apply", "-f", one, ok=False)
    assert 'the namespace from the provided object "dpf-operator-system" ' \
           'does not match the namespace "default"' in r.stderr


def test_apply_errors_keep_going(dpf_server, tmp_path):
    bad = bfb("bad")
    del bad["spec"]["url"]
    unknown = {"apiVersion": "example.com/v1", "kind": "Gizmo",
               "metadata": {"name": "g", "namespace": NS}}
    f = write_yaml(tmp_path / "mixed.yaml", bad, unknown, bfb("good"))
    r = ctl(dpf_server, "apply", "-f", f, ok=False)
    assert r.stdout == f"bfb.{GROUP}/good created\n"
    lines = r.stderr.splitlines()
    # kubectl's wording for validation failures names kind, object, field
    assert lines[0] == 'The BFB "bad" is invalid: spec.url: Required value'
    # several problems: one line each
    worse = bfb("worse", url="ftp://x")
    worse["spec"]["fileName"] = "no spaces.bfb"
    r2 = ctl(dpf_server, "apply", "-f",
             write_yaml(tmp_path / "worse.yaml", worse), ok=False)
    assert r2.stderr.splitlines()[0] == 'The BFB "worse" is invalid: '
    assert [line.split(":")[0] for line in r2.stderr.splitlines()[1:]] == \
        ["* spec.fileName", "* spec.url"]
    # other server errors: Error from server (<Reason>): error when ...
    nons = write_yaml(tmp_path / "nons.yaml", bfb("n1", ns="nonexistent"))
    r3 = ctl(dpf_server, "apply", "-f", nons, ok=False)
    assert r3.stderr == (f'Error from server (NotFound): error when creating '
                         f'"{nons}": namespaces "nonexistent" not found\n')
    assert f'no matches for kind "Gizmo" in version "example.com/v1"' \
        in r.stderr
    assert live(dpf_server, "bad") is None
    # a YAML syntax error names the file
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: BFB\nmetadata: [unclosed\n")
    r = ctl(dpf_server, "apply", "-f", str(broken), ok=False)
    assert str(broken) in r.stderr
    r = ctl(dpf_server, "apply", "-f", str(tmp_path / "missing.yaml"),
            ok=False)
    assert "does not exist" in r.stderr


# --- get ------------------------------------------------------------------------

@pytest.fixture
def three(dpf_server, tmp_path):
    f = write_yaml(tmp_path / "three.yaml",
                   bfb("b1", labels={"app": "x"}), bfb("b2", labels={"app": "y"}),
                   bfb("b3"))
    ctl(dpf_server, "apply", "-f", f)
    return dpf_server


def test_get_table(three):
    r = ctl(three, "-n", NS, "get", "bfbs")
    rows = table(r.stdout)
    assert rows[0][0] == "NAME" and rows[0][-1] == "AGE"
    assert [row[0] for row in rows[1:]] == ["b1", "b2", "b3"]
    assert all(AGE.match(row[-1]) for row in rows[1:]), rows
    # header cells align with the values (kubectl's tabwriter)
    lines = r.stdout.splitlines()
    col = lines[0].index("AGE")
    assert all(len(line) > col and line[col - 1] == " " for line in lines[1:])
    # every spelling of the type resolves to the same kind
    for word in ("bfb", "BFB", "bfbs.provisioning.dpu.nvidia.com", "BFBs"):
        other = table(ctl(three, "-n", NS, "get", word).stdout)
        assert [row[0] for row in other] == [row[0] for row in rows]
    # -A adds NAMESPACE; --show-labels adds LABELS; -l and --field-selector
    rows = table(ctl(three, "get", "bfb", "-A").stdout)
    assert rows[0][:2] == ["NAMESPACE", "NAME"] and rows[1][0] == NS
    rows = table(ctl(three, "-n", NS, "get", "bfb", "--show-labels").stdout)
    assert rows[0][-1] == "LABELS"
    assert [r_[-1] for r_ in rows[1:]] == ["app=x", "app=y", "<none>"]
    rows = table(ctl(three, "-n", NS, "get", "bfb", "-l", "app=y").stdout)
    assert [row[0] for row in rows[1:]] == ["b2"]
    rows = table(ctl(three, "-n", NS, "get", "bfb", "-l", "app").stdout)
    assert [row[0] for row in rows[1:]] == ["b1", "b2"]
    rows = table(ctl(three, "-n", NS, "get", "bfb", "--field-selector",
                     "metadata.name=b3").stdout)
    assert [row[0] for row in rows[1:]] == ["b3"]
    # named objects and TYPE/NAME form
    rows = table(ctl(three, "-n", NS, "get", "bfb", "b3", "b1").stdout)
    assert [row[0] for row in rows[1:]] == ["b3", "b1"]
    rows = table(ctl(three, "-n", NS, "get", "bfb/b2").stdout)
    assert [row[0] for row in rows[1:]] == ["b2"]
    # -o wide adds the priority-1 columns (a Pod has IP and NODE)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p1", "namespace": "default"},
           "spec": {"nodeName": "worker1",
                    "containers": [{"name": "c", "image": "busybox"}]}}
    assert ctl(three, "apply", "-f", "-", input=json.dumps(pod)).stdout == \
        "pod/p1 created\n"
    narrow = table(ctl(three, "get", "pods").stdout)
    wide = table(ctl(three, "get", "pods", "-o", "wide").stdout)
    assert "NODE" not in narrow[0] and "IP" not in narrow[0]
    assert wide[0][:len(narrow[0])] == narrow[0]
    assert wide[0][-4:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert wide[1][-3] == "worker1"


def test_get_several_types(three):
    r = ctl(three, "-n", NS, "get", "bfb,dpuset")
    rows = table(r.stdout)
    assert rows[0][0] == "NAME"
    assert rows[1][0] == f"bfb.{GROUP}/b1"
    assert "No resources found" not in r.stderr


def test_get_formats(three):
    r = ctl(three, "-n", NS, "get", "bfb", "b1", "-o", "yaml")
    obj = yaml.safe_load(r.stdout)
    assert obj["kind"] == "BFB" and obj["metadata"]["name"] == "b1"
    assert obj["spec"]["fileName"] == f"{NS}-b1.bfb"
    r = ctl(three, "-n", NS, "get", "bfb", "-o", "yaml")
    lst = yaml.safe_load(r.stdout)
    assert lst["kind"] == "List" and len(lst["items"]) == 3
    r = ctl(three, "-n", NS, "get", "bfb", "b2", "-o", "json")
    assert json.loads(r.stdout)["metadata"]["labels"] == {"app": "y"}
    assert r.stdout.startswith('{\n    "apiVersion"')  # 4-space, sorted
    lst = json.loads(ctl(three, "-n", NS, "get", "bfb", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in lst["items"]] == ["b1", "b2", "b3"]
    r = ctl(three, "-n", NS, "get", "bfb", "-o", "name")
    assert r.stdout == "".join(f"bfb.{GROUP}/b{i}\n" for i in (1, 2, 3))
    r = ctl(three, "-n", NS, "get", "bfb", "-o",
            "jsonpath={.items[*].metadata.name}")
    assert r.stdout == "b1 b2 b3"
    r = ctl(three, "-n", NS, "get", "bfb", "-o",
            'jsonpath={range .items[*]}{.metadata.name}:{.spec.fileName}'
            '{"\\n"}{end}')
    assert r.stdout.splitlines() == [f"b{i}:{NS}-b{i}.bfb" for i in (1, 2, 3)]
    r = ctl(three, "-n", NS, "get", "bfb", "b3", "-o",
            "jsonpath={.metadata.namespace}/{.items[0]}")
    assert r.stdout == f"{NS}/"
    r = ctl(three, "-n", NS, "get", "bfb", "-o", "jsonpath={.items[",
            ok=False)
    assert "jsonpath" in r.stderr
    r = ctl(three, "-n", NS, "get", "bfb", "-o", "xml", ok=False)
    assert 'output format "xml"' in r.stderr


def test_get_empty_notfound_and_unknown(dpf_server):
    r = ctl(dpf_server, "-n", NS, "get", "bfb")
    assert r.stdout == "" and \
        r.stderr == f"No resources found in {NS} namespace.\n"
    r = ctl(dpf_server, "get", "bfb", "-A")
    assert r.stderr == "No resources found\n"
    # a watch on an empty list prints nothing until something happens
    r = ctl(dpf_server, "-n", NS, "get", "bfb", "-w", "--request-timeout=1s")
    assert (r.stdout, r.stderr) == ("", "")
    r = ctl(dpf_server, "-n", NS, "get", "bfb", "nope", ok=False)
    assert r.stderr.startswith("Error from server (NotFound): ")
    assert '"nope" not found' in r.stderr
    assert "bfb" in r.stderr.lower()
    r = ctl(dpf_server, "get", "gizmos", ok=False)
    assert r.stderr == \
        'error: the server doesn\'t have a resource type "gizmos"\n'


def test_get_from_file(three, tmp_path):
    f = write_yaml(tmp_path / "q.yaml", bfb("b2"), bfb("b3"))
    rows = table(ctl(three, "get", "-f", f).stdout)
    assert [row[0] for row in rows[1:]] == ["b2", "b3"]


def test_get_watch(three):
    cmd = [binary("dpfctl", "dpfctl"), "--kubeconfig", three.kubeconfig,
           "-n", NS, "get", "bfb", "-w", "--request-timeout", "20s"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        first = [p.stdout.readline() for _ in range(4)]
        assert first[0].split()[0] == "NAME"
        assert [l_.split()[0] for l_ in first[1:]] == ["b1", "b2", "b3"]
        set_status(three, "b2", {"phase": "Ready"})
        line = p.stdout.readline()
        assert line.split()[:2] == ["b2", "Ready"], line
        ctl(three, "-n", NS, "delete", "bfb", "b3")
        line = p.stdout.readline()
        assert line.split()[0] == "b3"
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)
    # --request-timeout ends a watch with exit 0
    r = ctl(three, "-n", NS, "get", "bfb", "b1", "-w", "--request-timeout=2s")
    assert table(r.stdout)[1][0] == "b1"
    r = ctl(three, "-n", NS, "get", "bfb", "-w", "-o", "name",
            "--request-timeout=2s")
    assert r.stdout == f"bfb.{GROUP}/b1\nbfb.{GROUP}/b2\n"
    r = ctl(three, "-n", NS, "get", "bfb", "--watch-only", "--no-headers",
            "--request-timeout=1s")
    assert r.stdout == ""


# --- describe ---------------------------------------------------------------

def test_describe(three, tmp_path):
    set_status(three, "b1", {"phase": "Ready"})
    uid = live(three, "b1")["metadata"]["uid"]
    three.json("POST", f"/api/v1/namespaces/{NS}/events", {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "b1.1", "namespace": NS},
        "involvedObject": {"apiVersion": f"{GROUP}/v1alpha1", "kind": "BFB",
                           "name": "b1", "namespace": NS, "uid": uid},
        "reason": "SuccessfulDownload", "message": "downloaded the BFB",
        "type": "Normal", "source": {"component": "bfb-controller"},
        "count": 1, "firstTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                    time.gmtime()),
        "lastTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        expect=201)
    r = ctl(three, "-n", NS, "describe", "bfb", "b1")
    out = r.stdout
    assert re.search(r"^Name:\s+b1$", out, re.M)
    assert re.search(rf"^Namespace:\s+{NS}$", out, re.M)
    assert re.search(r"^Labels:\s+app=x$", out, re.M)
    assert re.search(r"^Annotations:\s+<none>$", out, re.M)
    assert re.search(rf"^API Version:\s+{GROUP}/v1alpha1$", out, re.M)
    assert re.search(r"^Kind:\s+BFB$", out, re.M)
    assert re.search(r"^  Creation Timestamp:\s+\d{4}-", out, re.M)
    assert re.search(r"^  UID:\s+" + uid, out, re.M)
    assert re.search(rf"^  File Name:\s+{NS}-b1.bfb$", out, re.M)
    assert re.search(r"^  Phase:\s+Ready$", out, re.M)
    assert re.search(r"^Events:\n\s+Type\s+Reason\s+Age\s+From\s+Message\n"
                     r"\s+----.*\n\s+Normal\s+SuccessfulDownload\s+\d+s\s+"
                     r"bfb-controller\s+downloaded the BFB$", out, re.M)
    r = ctl(three, "-n", NS, "describe", "bfb/b2")
    assert re.search(r"^Events:\s+<none>$", r.stdout, re.M)
    # status.conditions as a table
    ctl(three, "apply", "-f", write_yaml(tmp_path / "c.yaml", cluster("c1")))
    set_status(three, "c1", ready(), CLUSTER_PATH)
    out = ctl(three, "-n", NS, "describe", "dpucluster", "c1").stdout
    assert re.search(r"^  Conditions:\n\s+Type\s+Status\s+Reason\s+Message"
                     r"\s+Last Transition\n\s+----.*\n\s+Ready\s+True\s+"
                     r"Downloaded\s+file is cached\s+\d+s$", out, re.M), out
    r = ctl(three, "-n", NS, "describe", "bfb")
    assert r.stdout.count("\nKind:") == 3
    r = ctl(three, "-n", NS, "describe", "bfb", "nope", ok=False)
    assert r.stderr.startswith("Error from server (NotFound)")


# --- delete -----------------------------------------------------------------

def add_finalizer(srv, name):
    srv.json("PATCH", f"{BFB_PATH}/{name}",
             {"metadata": {"finalizers": ["test.dpf/hold"]}},
             headers={"Content-Type": "application/merge-patch+json"},
             expect=200)


def drop_finalizer(srv, name):
    srv.json("PATCH", f"{BFB_PATH}/{name}", {"metadata": {"finalizers": None}},
             headers={"Content-Type": "application/merge-patch+json"},
             expect=200)


def test_delete(three, tmp_path):
    r = ctl(three, "-n", NS, "delete", "bfb", "b1")
    assert r.stdout == f'bfb.{GROUP} "b1" deleted\n'
    assert live(three, "b1") is None
    r = ctl(three, "-n", NS, "delete", "bfb", "b1", ok=False)
    assert r.stderr.startswith("Error from server (NotFound)")
    r = ctl(three, "-n", NS, "delete", "bfb", "b1", "--ignore-not-found")
    assert r.stdout == ""
    f = write_yaml(tmp_path / "b2.yaml", bfb("b2"))
    r = ctl(three, "delete", "-f", f)
    assert r.stdout == f'bfb.{GROUP} "b2" deleted\n'
    r = ctl(three, "-n", NS, "delete", "bfb", "-l", "app=nothing")
    assert "No resources found" in r.stderr


def test_delete_waits_for_finalizers(three):
    add_finalizer(three, "b1")
    # --wait=false returns while the object is still terminating
    r = ctl(three, "-n", NS, "delete", "bfb", "b1", "--wait=false")
    assert r.stdout == f'bfb.{GROUP} "b1" deleted\n'
    assert live(three, "b1")["metadata"].get("deletionTimestamp")
    # --timeout gives up with kubectl's message
    r = ctl(three, "-n", NS, "delete", "bfb", "b1", "--timeout=1s", ok=False)
    assert "timed out waiting for the condition on bfbs/b1" in r.stderr
    # the default waits until the finalizer goes
    cmd = [binary("dpfctl", "dpfctl"), "--kubeconfig", three.kubeconfig,
           "-n", NS, "delete", "bfb", "b1", "--timeout=30s"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        time.sleep(1.0)
        assert p.poll() is None, "delete returned before the finalizer went"
        drop_finalizer(three, "b1")
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert live(three, "b1") is None


# --- wait ---------------------------------------------------------------------

def test_wait(three, tmp_path):
    r = ctl(three, "-n", NS, "wait", "bfb/b1",
            "--for=jsonpath={.spec.fileName}=" + f"{NS}-b1.bfb")
    assert r.stdout == f"bfb.{GROUP}/b1 condition met\n"
    ctl(three, "apply", "-f", write_yaml(tmp_path / "c.yaml", cluster("c1"),
                                         cluster("c2")))
    cmd = [binary("dpfctl", "dpfctl"), "--kubeconfig", three.kubeconfig,
           "-n", NS, "wait", "dpucluster", "c1", "c2", "--for=condition=Ready",
           "--timeout=30s"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        time.sleep(0.5)
        for n in ("c1", "c2"):
            set_status(three, n, ready(), CLUSTER_PATH)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert out == (f"dpucluster.{GROUP}/c1 condition met\n"
                   f"dpucluster.{GROUP}/c2 condition met\n")
    r = ctl(three, "-n", NS, "wait", "bfb/b3", "--for=condition=Ready",
            "--timeout=1s", ok=False)
    assert r.stderr == \
        "error: timed out waiting for the condition on bfbs/b3\n"
    r = ctl(three, "-n", NS, "wait", "dpucluster/c1",
            "--for=condition=Ready=false", "--timeout=0", ok=False)
    assert "timed out" in r.stderr
    r = ctl(three, "-n", NS, "wait", "dpucluster/c1",
            "--for=jsonpath={.status.phase}=Ready")
    assert r.stdout == f"dpucluster.{GROUP}/c1 condition met\n"
    r = ctl(three, "-n", NS, "wait", "bfb/nope", "--for=condition=Ready",
            ok=False)
    assert r.stderr.startswith("Error from server (NotFound)")
    p = subprocess.Popen(cmd[:6] + ["bfb/b3", "--for=delete",
                                    "--timeout=30s"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    time.sleep(0.5)
    ctl(three, "-n", NS, "delete", "bfb", "b3", "--wait=false")
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0 and out == f"bfb.{GROUP}/b3 condition met\n", err
    # already gone: nothing to print, success (kubectl)
    r = ctl(three, "-n", NS, "wait", "bfb/b3", "--for=delete")
    assert r.stdout == ""
    r = ctl(three, "-n", NS, "wait", "bfb/b1", "--for=bogus", ok=False)
    assert "unrecognized condition" in r.stderr


# --- version, connection errors ---------------------------------------------

def test_version_and_unreachable_server(dpf_server):
    r = ctl(dpf_server, "version")
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Client Version: v")
    assert lines[1].startswith("Server Version: ")
    dpf_server.stop()
    r = ctl(dpf_server, "get", "bfb", ok=False)
    assert r.stderr == (f"The connection to the server 127.0.0.1:"
                        f"{dpf_server.port} was refused - did you specify "
                        f"the right host or port?\n")


# --- kubeconfig variants --------------------------------------------------------

def test_kubeconfig_auth_variants(dpf_server, tmp_path):
    """Client certificate only, token only, CA from a file, insecure
    skip-verify, a wrong CA, no credentials, $KUBECONFIG and a context."""
    with open(dpf_server.kubeconfig) as f:
        base = yaml.safe_load(f)

    def variant(name, edit):
        kc = json.loads(json.dumps(base))
        edit(kc["clusters"][0]["cluster"], kc["users"][0]["user"], kc)
        path = tmp_path / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(kc))
        return str(path)

    def get(kc, *extra, env=None):
        return subprocess.run([binary("dpfctl", "dpfctl"), *extra, "get",
                               "ns", "default", "-o", "name"] +
                              (["--kubeconfig", kc] if kc else []),
                              capture_output=True, text=True, env=env)

    def drop(d, *keys):
        for k_ in keys:
            d.pop(k_, None)

    cert_only = variant("cert", lambda c, u, kc: drop(u, "token"))
    token_only = variant("token", lambda c, u, kc: drop(
        u, "client-certificate-data", "client-key-data"))
    (tmp_path / "ca.crt").write_bytes(open(dpf_server.ca, "rb").read())

    def ca_file(c, u, kc):
        drop(c, "certificate-authority-data")
        c["certificate-authority"] = "ca.crt"  # relative to the kubeconfig
    ca_from_file = variant("cafile", ca_file)

    def insecure(c, u, kc):
        drop(c, "certificate-authority-data")
        c["insecure-skip-tls-verify"] = True
    skip_verify = variant("insecure", insecure)
    for kc in (cert_only, token_only, ca_from_file, skip_verify):
        r = get(kc)
        assert (r.returncode, r.stdout) == (0, "namespace/default\n"), \
            f"{kc}: {r.stderr}"

    # the system CAs do not know the server's CA: a TLS error, exit 1
    no_ca = variant("noca", lambda c, u, kc: drop(
        c, "certificate-authority-data"))
    r = get(no_ca)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("Unable to connect to the server: "), r.stderr
    assert "certificate" in r.stderr
    # no credentials: the server's 401
    anon = variant("anon", lambda c, u, kc: drop(
        u, "token", "client-certificate-data", "client-key-data"))
    r = get(anon)
    assert r.returncode == 1
    assert r.stderr == \
        "error: You must be logged in to the server (Unauthorized)\n"
    # $KUBECONFIG (first existing file of a list) and --context
    env = dict(os.environ, KUBECONFIG=f"/nonexistent/x:{token_only}")
    r = get(None, env=env)
    assert (r.returncode, r.stdout) == (0, "namespace/default\n"), r.stderr
    r = get(token_only, "--context", "nope")
    assert r.returncode == 1
    assert 'context "nope" not found' in r.stderr and token_only in r.stderr
    broken = variant("broken", lambda c, u, kc: drop(c, "server"))
    r = get(broken)
    assert r.returncode == 1
    assert "clusters[0].cluster.server is missing" in r.stderr


# --- credential handling (exec plugins, TLS names, refusals) ----------------

EXEC_V1 = "client.authentication.k8s.io/v1"
EXEC_V1BETA1 = "client.authentication.k8s.io/v1beta1"

# A credential plugin: logs each run (its KUBERNETES_EXEC_INFO, argv and
# environment) as a JSON line, says something on stderr and prints an
# ExecCredential with the token read from a file. PLUGIN_MODE changes
# what it does: "fail" exits 3, "crlf" returns a token with CR/LF,
# "wrong-first" returns a bad token on its first run, "cert" returns the
# client certificate and key from $PLUGIN_CERT / $PLUGIN_KEY.
PLUGIN = r'''#!/usr/bin/python3
import json, os, sys
log, token_file = sys.argv[1], sys.argv[2]
with open(log, "a") as f:
    f.write(json.dumps({"info": os.environ.get("KUBERNETES_EXEC_INFO"),
                        "argv": sys.argv[1:],
                        "extra": os.environ.get("PLUGIN_EXTRA")}) + "\n")
runs = sum(1 for _ in open(log))
mode = os.environ.get("PLUGIN_MODE", "")
if mode == "fail":
    sys.stderr.write("sso: session expired, run 'sso login'\n")
    sys.exit(3)
tok = open(token_file).read().strip()
if mode == "cert":
    status = {"clientCertificateData": open(os.environ["PLUGIN_CERT"]).read(),
              "clientKeyData": open(os.environ["PLUGIN_KEY"]).read()}
    print(json.dumps({"apiVersion": os.environ["PLUGIN_API"],
                      "kind": "ExecCredential", "status": status}))
    sys.exit(0)
if mode == "crlf":
    tok += "\r\nX-Injected: 1"
if mode == "wrong-first" and runs == 1:
    tok = "not-" + tok
sys.stderr.write("plugin: token issued\n")
status = {"token": tok}
if os.environ.get("PLUGIN_EXPIRY"):
    status["expirationTimestamp"] = os.environ["PLUGIN_EXPIRY"]
print(json.dumps({"apiVersion": os.environ.get("PLUGIN_API", "%s"),
                  "kind": "ExecCredential", "status": status}))
''' % EXEC_V1


class Plugin:
    """The plugin script plus its token file and run log in tmp_path."""

    def __init__(self, tmp_path, token):
        self.dir = tmp_path / "plugin"
        self.dir.mkdir(exist_ok=True)
        self.path = self.dir / "get-token"
        self.path.write_text(PLUGIN)
        self.path.chmod(0o755)
        self.token = self.dir / "token"
        self.token.write_text(token + "\n")
        self.token.chmod(0o600)

    def log(self, name):
        return str(self.dir / f"{name}.log")

    def runs(self, name):
        p = self.log(name)
        if not os.path.exists(p):
            return []
        return [json.loads(line) for line in open(p)]


def exec_kubeconfig(srv, tmp_path, name, plugin, api=EXEC_V1, mode="Never",
                    env=(), cluster_info=False, server=None, extra_cluster=None,
                    install_hint=None):
    """A kubeconfig for srv whose only credential is the plugin; its runs
    are logged to plugin.log(name)."""
    with open(srv.kubeconfig) as f:
        kc = yaml.safe_load(f)
    cl = kc["clusters"][0]["cluster"]
    if server:
        cl["server"] = server
    cl.update(extra_cluster or {})
    ex = {"apiVersion": api, "command": str(plugin.path),
          "args": [plugin.log(name), str(plugin.token)],
          "env": [{"name": "PLUGIN_API", "value": api}] +
                 [{"name": k, "value": v} for k, v in env],
          "provideClusterInfo": cluster_info}
    if mode:
        ex["interactiveMode"] = mode
    if install_hint:
        ex["installHint"] = install_hint
    kc["users"][0]["user"] = {"exec": ex}
    path = tmp_path / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(kc))
    return str(path)


def both(args, kc):
    """Run dpfctl and kubectl 1.32 with the same kubeconfig."""
    d = dpfctl(list(args), kc, input="")
    k = kubectl(list(args), kc, input="")
    return d, k


def test_exec_plugin_like_kubectl(dpf_server, tmp_path):
    """An exec plugin (client.authentication.k8s.io/v1 and v1beta1) gives
    dpfctl and kubectl the same access; the plugin gets the same
    KUBERNETES_EXEC_INFO from both, with the cluster when asked for, and
    its stderr reaches the user."""
    plugin = Plugin(tmp_path, dpf_server.token)
    ca_b64 = base64.b64encode(open(dpf_server.ca, "rb").read()).decode()
    for api, mode, info in (
            (EXEC_V1, "Never", False),
            (EXEC_V1, "IfAvailable", True),
            (EXEC_V1BETA1, None, True)):
        tag = f"{api.rsplit('/', 1)[1]}-{mode}-{info}"
        kc = exec_kubeconfig(
            dpf_server, tmp_path, tag, plugin, api=api, mode=mode,
            env=[("PLUGIN_EXTRA", "from kubeconfig")], cluster_info=info,
            extra_cluster={"extensions": [{
                "name": "client.authentication.k8s.io/exec",
                "extension": {"audience": "dpf", "level": 2}}]})
        d, k = both(["get", "ns", "default", "-o", "name"], kc)
        assert (d.returncode, d.stdout) == (0, "namespace/default\n"), d.stderr
        assert (k.returncode, k.stdout) == (0, "namespace/default\n"), k.stderr
        # client-go passes the plugin's stderr through; so does dpfctl
        assert "plugin: token issued\n" in d.stderr
        assert "plugin: token issued\n" in k.stderr
        runs = plugin.runs(tag)
        assert len(runs) >= 2  # dpfctl's run, then kubectl's
        mine, theirs = runs[0], runs[-1]
        assert mine["info"] == theirs["info"], (mine["info"], theirs["info"])
        assert mine["argv"] == [plugin.log(tag), str(plugin.token)]
        assert mine["extra"] == "from kubeconfig"
        req = json.loads(mine["info"])
        want = {"kind": "ExecCredential", "apiVersion": api,
                "spec": {"interactive": False}}
        if info:
            want["spec"]["cluster"] = {
                "server": dpf_server.url,
                "certificate-authority-data": ca_b64,
                "config": {"audience": "dpf", "level": 2}}
        assert req == want


def test_exec_plugin_client_certificate(dpf_server, tmp_path):
    """A plugin may return a client certificate and key instead of a
    token; dpfctl and kubectl both authenticate with it."""
    plugin = Plugin(tmp_path, "unused")
    (tmp_path / "admin.crt").write_bytes(dpf_server.client_cert)
    key = tmp_path / "admin.key"
    key.write_bytes(dpf_server.client_key)
    key.chmod(0o600)
    kc = exec_kubeconfig(dpf_server, tmp_path, "cert", plugin,
                         env=[("PLUGIN_MODE", "cert"),
                              ("PLUGIN_CERT", str(tmp_path / "admin.crt")),
                              ("PLUGIN_KEY", str(key))])
    d, k = both(["get", "ns", "default", "-o", "name"], kc)
    assert (d.returncode, d.stdout) == (0, "namespace/default\n"), d.stderr
    assert (k.returncode, k.stdout) == (0, "namespace/default\n"), k.stderr
    assert len(plugin.runs("cert")) >= 2


def test_exec_plugin_expiry_and_401(dpf_server, tmp_path):
    """A credential is reused until its expirationTimestamp; once expired
    the plugin runs again before the next request (kubectl too); a 401
    runs it again and the request is repeated once."""
    plugin = Plugin(tmp_path, dpf_server.token)
    names = ["get", "ns", "default", "kube-system", "kube-public", "-o",
             "name"]
    want = "namespace/default\nnamespace/kube-system\nnamespace/kube-public\n"
    runs = {}
    for label, expiry in (("future", "2099-01-01T00:00:00Z"),
                          ("past", "2001-01-01T00:00:00Z")):
        for tool in ("dpfctl", "kubectl"):
            tag = f"{label}-{tool}"
            kc = exec_kubeconfig(dpf_server, tmp_path, tag, plugin,
                                 env=[("PLUGIN_EXPIRY", expiry)])
            r = (dpfctl if tool == "dpfctl" else kubectl)(names, kc, input="")
            assert (r.returncode, r.stdout) == (0, want), r.stderr
            runs[tag] = len(plugin.runs(tag))
    # dpfctl: one run while valid; one per request (three GETs) once expired
    assert runs["future-dpfctl"] == 1
    assert runs["past-dpfctl"] == 3
    # kubectl re-runs an expired plugin too
    assert runs["past-kubectl"] > runs["future-kubectl"]

    kc = exec_kubeconfig(dpf_server, tmp_path, "wrong-first", plugin,
                         env=[("PLUGIN_MODE", "wrong-first")])
    r = dpfctl(["get", "ns", "default", "-o", "name"], kc, input="")
    assert (r.returncode, r.stdout) == (0, "namespace/default\n"), r.stderr
    assert len(plugin.runs("wrong-first")) == 2


def test_exec_plugin_failure(dpf_server, tmp_path):
    """A failing plugin: its exit code, stderr and installHint are shown,
    with the kubeconfig user; a missing one shows the installHint."""
    plugin = Plugin(tmp_path, dpf_server.token)
    hint = "Install the SSO helper: apt install sso-helper"
    kc = exec_kubeconfig(dpf_server, tmp_path, "fail", plugin,
                         env=[("PLUGIN_MODE", "fail")], install_hint=hint)
    d, k = both(["get", "ns", "default"], kc)
    assert d.returncode == 1 and k.returncode == 1
    assert d.stdout == ""
    assert d.stderr == (
        f'error: getting credentials for user "dpf-admin": exec: executable '
        f"{plugin.path} failed with exit code 3\n"
        f"plugin stderr: sso: session expired, run 'sso login'\n{hint}\n")
    assert f"executable {plugin.path} failed with exit code 3" in k.stderr

    with open(kc) as f:
        doc = yaml.safe_load(f)
    doc["users"][0]["user"]["exec"]["command"] = str(tmp_path / "no-such")
    (tmp_path / "missing.kubeconfig").write_text(yaml.safe_dump(doc))
    r = dpfctl(["get", "ns", "default"], str(tmp_path / "missing.kubeconfig"))
    assert r.returncode == 1
    assert f"exec: executable {tmp_path / 'no-such'} not found" in r.stderr
    assert r.stderr.endswith(f"{hint}\n")


class Listener:
    """A TCP listener on 127.0.0.1 that records whether anyone connected
    (and what they sent), answering each request with a plain 401."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.connections = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    conn.sendall(b"HTTP/1.1 401 Unauthorized\r\n"
                                 b"Content-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
            except OSError:
                pass
            self.received.append(data)
            conn.close()

    def close(self):
        self._stop = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def listener():
    lis = Listener()
    yield lis
    lis.close()


def plain_kubeconfig(tmp_path, name, server, user, cluster_extra=None):
    cl = {"server": server}
    cl.update(cluster_extra or {})
    kc = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
          "contexts": [{"name": "c",
                        "context": {"cluster": "lab", "user": "eve"}}],
          "clusters": [{"name": "lab", "cluster": cl}],
          "users": [{"name": "eve", "user": user}]}
    path = tmp_path / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(kc))
    return str(path)


def test_token_with_control_characters_never_sent(tmp_path, listener):
    """A token with CR/LF (inline, from tokenFile, from an exec plugin) is
    refused naming the user, before any connection; kubectl does not
    send the inline one either."""
    server = f"https://127.0.0.1:{listener.port}"
    tls = {"insecure-skip-tls-verify": True}
    tokfile = tmp_path / "token"
    tokfile.write_text("abc\nX-Injected: 1\n")
    plugin = Plugin(tmp_path, "abc")
    cases = {
        "inline": ({"token": "abc\r\nX-Injected: 1"},
                   'users[0].user.token of user "eve" contains a control '
                   "character (CR at offset 3); refusing to send it"),
        "file": ({"tokenFile": str(tokfile)},
                 'users[0].user.tokenFile of user "eve" contains a control '
                 "character (LF at offset 3)"),
        "lf-only": ({"token": "abc\nX-Injected: 1"},
                    'token of user "eve" contains a control character (LF'),
        "plugin": ({"exec": {
            "apiVersion": EXEC_V1, "command": str(plugin.path),
            "args": [plugin.log("crlf"), str(plugin.token)],
            "interactiveMode": "Never",
            "env": [{"name": "PLUGIN_MODE", "value": "crlf"}]}},
            'getting credentials for user "eve": exec plugin returned a '
            "token with a control character (CR at offset 3); refusing to "
            "send it"),
    }
    for name, (user, msg) in cases.items():
        kc = plain_kubeconfig(tmp_path, name, server, user, tls)
        r = dpfctl(["get", "ns"], kc)
        assert r.returncode == 1, r.stdout
        assert msg in r.stderr, r.stderr
        assert "X-Injected" not in r.stderr  # the secret is not echoed
    assert len(plugin.runs("crlf")) == 1
    time.sleep(0.3)  # let the listener thread see a late connection
    assert listener.connections == 0 and listener.received == []
    kc = plain_kubeconfig(tmp_path, "kubectl", server, cases["inline"][0],
                          tls)
    k = kubectl(["get", "ns"], kc)
    assert k.returncode == 1
    assert 'invalid header field value for "Authorization"' in k.stderr
    # (kubectl's packaged dispatcher may ask /version, without the token)
    time.sleep(0.3)
    assert not [r for r in listener.received if b"X-Injected" in r]


def test_credentials_not_sent_over_plain_http(tmp_path, listener):
    """http:// with a token, basic auth or an exec plugin is refused before
    any connection (client-go would send them); the cluster extension
    allows it; without credentials http:// works as before."""
    server = f"http://127.0.0.1:{listener.port}"
    plugin = Plugin(tmp_path, "plugin-token")
    users = {
        "token": ({"token": "sekrit-token"}, "a bearer token"),
        "basic": ({"username": "eve", "password": "sekrit"},
                  "a username and password"),
        "exec": ({"exec": {"apiVersion": EXEC_V1,
                           "command": str(plugin.path),
                           "args": [plugin.log("http"), str(plugin.token)],
                           "interactiveMode": "Never"}},
                 "an exec credential plugin"),
    }
    for name, (user, what) in users.items():
        kc = plain_kubeconfig(tmp_path, name, server, user)
        r = dpfctl(["get", "ns"], kc)
        assert r.returncode == 1
        assert r.stderr == (
            f'error: kubeconfig {kc}: user "eve" has {what}, but cluster '
            f'"lab" is reached over plain http ({server}): refusing to send '
            f"credentials in clear text; use an https:// server, or add the "
            f'cluster extension "dpfctl.dpu.nvidia.com/allow-plaintext-'
            f'credentials" to allow it\n')
    assert plugin.runs("http") == []  # the plugin did not even run
    time.sleep(0.3)
    assert listener.connections == 0

    # the explicit opt-in: a kubeconfig kubectl reads as well
    allow = {"extensions": [{
        "name": "dpfctl.dpu.nvidia.com/allow-plaintext-credentials",
        "extension": {"reason": "lab network"}}]}
    kc = plain_kubeconfig(tmp_path, "allowed", server, users["token"][0],
                          allow)
    assert kubectl(["config", "view"], kc).returncode == 0

    def ours():
        return [r for r in listener.received if b"\r\nUser-Agent: dpf/" in r]
    r = dpfctl(["get", "ns"], kc)
    assert r.returncode == 1
    assert r.stderr.startswith("error: You must be logged in to the server")
    wait_for(ours, 10, what="request on the listener")
    assert b"\r\nAuthorization: Bearer sekrit-token\r\n" in ours()[0]
    # no credentials: http:// is used as before
    kc = plain_kubeconfig(tmp_path, "anon", server, {})
    r = dpfctl(["get", "ns"], kc)
    assert r.returncode == 1 and "logged in" in r.stderr
    wait_for(lambda: len(ours()) >= 2, 10, what="second request")
    assert b"Authorization" not in ours()[1]


def test_insecure_with_ca_refused(dpf_server, tmp_path):
    """insecure-skip-tls-verify with a CA is an error, as in client-go."""
    with open(dpf_server.kubeconfig) as f:
        base = yaml.safe_load(f)
    (tmp_path / "ca.crt").write_bytes(open(dpf_server.ca, "rb").read())
    for name, edit in (
            ("data", lambda c: None),
            ("file", lambda c: (c.pop("certificate-authority-data"),
                                c.update({"certificate-authority":
                                          str(tmp_path / "ca.crt")})))):
        kc = json.loads(json.dumps(base))
        cl = kc["clusters"][0]["cluster"]
        edit(cl)
        cl["insecure-skip-tls-verify"] = True
        path = tmp_path / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(kc))
        d, k = both(["get", "ns", "default"], str(path))
        assert d.returncode == 1 and k.returncode == 1
        msg = ("specifying a root certificates file with the insecure flag "
               "is not allowed")
        assert msg in k.stderr
        field = "certificate-authority-data" if name == "data" \
            else "certificate-authority"
        assert d.stderr == (
            f"error: kubeconfig {path}: clusters[0].cluster (cluster "
            f'"dpf"): {msg} (insecure-skip-tls-verify is true and {field} '
            f"is set)\n")


def test_tls_server_name_real_server(tmp_path):
    """tls-server-name against dpf-server: the server URL is 127.0.0.1, the
    name comes from --server-name; a name the certificate has works, any
    other is a certificate error (the URL's host is not what is checked)."""
    data = tmp_path / "srv"
    data.mkdir()
    srv = DpfServer(str(data), extra_args=["--server-name", "api.dpf.test"])
    srv.start()
    try:
        with open(srv.kubeconfig) as f:
            base = yaml.safe_load(f)
        assert base["clusters"][0]["cluster"]["server"].startswith(
            "https://127.0.0.1:")
        for name, want_ok in (("api.dpf.test", True),
                              ("wrong.dpf.test", False)):
            kc = json.loads(json.dumps(base))
            kc["clusters"][0]["cluster"]["tls-server-name"] = name
            path = tmp_path / f"{name}.kubeconfig"
            path.write_text(yaml.safe_dump(kc))
            d, k = both(["get", "ns", "default", "-o", "name"], str(path))
            if want_ok:
                assert (d.returncode, d.stdout) == (0, "namespace/default\n"), \
                    d.stderr
                assert (k.returncode, k.stdout) == (0, "namespace/default\n"), \
                    k.stderr
            else:
                assert d.returncode == 1 and k.returncode == 1
                assert d.stderr == (
                    "Unable to connect to the server: SSL: no alternative "
                    "certificate subject name matches target host name "
                    "'wrong.dpf.test'\n")
                assert "x509: certificate is valid for" in k.stderr and \
                    "not wrong.dpf.test" in k.stderr
    finally:
        assert srv.stop() == 0


class TlsVersionServer(TlsListener):
    """HTTPS on 127.0.0.1 with a certificate for one DNS name only; records
    the SNI name and Host header of each request and answers /version."""

    def __init__(self, pki):
        self.hosts = []
        super().__init__(pki)

    def handle(self, conn):
        body = json.dumps({"major": "1", "minor": "32",
                           "gitVersion": "v1.32.0-sni"}).encode()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        for line in data.split(b"\r\n"):
            if line.lower().startswith(b"host:"):
                self.hosts.append(line[5:].strip().decode())
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: "
                     b"application/json\r\nContent-Length: "
                     + str(len(body)).encode() +
                     b"\r\nConnection: close\r\n\r\n" + body)
        conn.close()


def test_tls_server_name_is_sni_and_verified_name(tmp_path):
    """The server URL is 127.0.0.1 and the certificate carries only
    only.dpf.test: without tls-server-name the certificate is refused;
    with it, only.dpf.test is sent as SNI and verified, while the Host
    header keeps the URL's authority, for dpfctl and kubectl alike."""
    pki = make_cert(tmp_path, "only.dpf.test")
    srv = TlsVersionServer(pki)
    try:
        ca = base64.b64encode((pki / "ca.crt").read_bytes()).decode()
        server = f"https://127.0.0.1:{srv.port}"
        cl = {"certificate-authority-data": ca}
        user = {"token": "t"}  # (no user at all makes kubectl prompt)
        kc = plain_kubeconfig(tmp_path, "nosni", server, user, cl)
        d, k = both(["version"], kc)
        assert d.returncode == 1 and k.returncode == 1
        assert "no alternative certificate subject name matches target " \
            "host name '127.0.0.1'" in d.stderr
        assert "x509: cannot validate certificate for 127.0.0.1" in k.stderr

        srv.sni.clear()
        srv.hosts.clear()
        kc = plain_kubeconfig(tmp_path, "sni", server, user,
                              dict(cl, **{"tls-server-name": "only.dpf.test"}))
        d, k = both(["version"], kc)
        assert d.returncode == 0, d.stderr
        assert "Server Version: v1.32.0-sni" in d.stdout
        assert k.returncode == 0, k.stderr
        assert "Server Version: v1.32.0-sni" in k.stdout
        assert srv.sni and set(srv.sni) == {"only.dpf.test"}
        assert srv.hosts and set(srv.hosts) == {f"127.0.0.1:{srv.port}"}
    finally:
        srv.close()
