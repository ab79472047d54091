"""dpfctl end to end against a real dpf-server: every command, output
format and exit code a user relies on (kubectl's conventions)."""
import json
import os
import re
import signal
import subprocess
import time

import pytest
import yaml

from conftest import binary, dpfctl, kubectl, wait_for

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
    assert wide[0][-2:] == ["IP", "NODE"] and wide[1][-1] == "worker1"


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
