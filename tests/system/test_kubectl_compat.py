"""Stock kubectl against dpf-server with the server's admin kubeconfig:
the machine's kubectl (1.32) and Debian's kubectl 1.20. Verbs: get
(table), get -o yaml, apply (create, then update of the same file), get -w
(sees a later change), delete, describe. Each kubectl run uses a fresh
--cache-dir (the conftest helper makes one per call). Also checks that
kubectl and dpfctl applies of the same file interoperate through the
last-applied-configuration annotation."""
import json
import re
import signal
import subprocess

import pytest
import yaml

from conftest import KUBECTL, dpfctl, kubectl

NS = "dpf-operator-system"
GROUP = "provisioning.dpu.nvidia.com"

VERSIONS = ["1.32", "1.20"]


def bfb_yaml(name, labels=None):
    md = {"name": name, "namespace": NS}
    if labels:
        md["labels"] = labels
    return yaml.safe_dump({"apiVersion": f"{GROUP}/v1alpha1", "kind": "BFB",
                           "metadata": md,
                           "spec": {"url": f"http://127.0.0.1:8080/{name}.bfb"}})


def k(srv, version, *args, ok=True, input=None):
    r = kubectl(list(args), srv.kubeconfig, version=version, input=input)
    if ok:
        assert r.returncode == 0, \
            f"kubectl {version} {args}: {r.returncode}\n{r.stderr}"
    return r


@pytest.mark.parametrize("version", VERSIONS)
def test_apply_get_describe_delete(dpf_server, tmp_path, version):
    f = tmp_path / "bfb.yaml"
    f.write_text(bfb_yaml("kc"))
    r = k(dpf_server, version, "apply", "-f", str(f))
    assert r.stdout.strip() == f"bfb.{GROUP}/kc created"
    r = k(dpf_server, version, "apply", "-f", str(f))
    assert r.stdout.strip() == f"bfb.{GROUP}/kc unchanged"
    f.write_text(bfb_yaml("kc", labels={"tier": "a"}))
    r = k(dpf_server, version, "apply", "-f", str(f))
    assert r.stdout.strip() == f"bfb.{GROUP}/kc configured"

    # table from the server's Table response
    r = k(dpf_server, version, "-n", NS, "get", "bfbs")
    lines = r.stdout.splitlines()
    assert lines[0].split()[0] == "NAME" and lines[0].split()[-1] == "AGE"
    assert lines[1].split()[0] == "kc"
    assert re.match(r"^\d+s$", lines[1].split()[-1])
    r = k(dpf_server, version, "-n", NS, "get", "bfb", "kc", "-o", "yaml")
    obj = yaml.safe_load(r.stdout)
    assert obj["kind"] == "BFB" and obj["metadata"]["labels"] == {"tier": "a"}
    assert obj["spec"]["fileName"] == f"{NS}-kc.bfb"

    r = k(dpf_server, version, "-n", NS, "describe", "bfb", "kc")
    assert re.search(r"^Name:\s+kc$", r.stdout, re.M)
    assert re.search(r"^Labels:\s+tier=a$", r.stdout, re.M)
    assert re.search(r"File Name:\s+" + NS + "-kc.bfb", r.stdout)

    r = k(dpf_server, version, "-n", NS, "delete", "bfb", "kc")
    assert r.stdout.strip() == f'bfb.{GROUP} "kc" deleted'
    r = k(dpf_server, version, "-n", NS, "get", "bfb", "kc", ok=False)
    assert r.returncode == 1 and "NotFound" in r.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_watch_sees_later_change(dpf_server, tmp_path, version):
    f = tmp_path / "w.yaml"
    f.write_text(bfb_yaml("w1"))
    k(dpf_server, version, "apply", "-f", str(f))
    cache = str(tmp_path / "kubectl-cache")
    cmd = [KUBECTL[version], "--kubeconfig", dpf_server.kubeconfig,
           "--cache-dir", cache, "-n", NS, "get", "bfbs", "-w",
           "--request-timeout=30s"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        header = p.stdout.readline()
        assert header.split()[0] == "NAME", header + p.stderr.read()
        assert p.stdout.readline().split()[0] == "w1"
        # a later change: another object appears, an existing one changes
        f2 = tmp_path / "w2.yaml"
        f2.write_text(bfb_yaml("w2"))
        dpfctl(["apply", "-f", str(f2)], dpf_server.kubeconfig, check=True)
        line = p.stdout.readline()
        assert line.split()[0] == "w2", line
        dpfctl(["-n", NS, "delete", "bfb", "w1"], dpf_server.kubeconfig,
               check=True)
        line = p.stdout.readline()
        assert line.split()[0] == "w1", line
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.mark.parametrize("version", VERSIONS)
def test_apply_interoperates_with_dpfctl(dpf_server, tmp_path, version):
    f = tmp_path / "i.yaml"
    f.write_text(bfb_yaml("mix"))
    r = dpfctl(["apply", "-f", str(f)], dpf_server.kubeconfig)
    assert r.stdout == f"bfb.{GROUP}/mix created\n", r.stderr
    r = k(dpf_server, version, "apply", "-f", str(f))
    assert r.stdout.strip() == f"bfb.{GROUP}/mix unchanged"
    f.write_text(bfb_yaml("mix", labels={"by": "kubectl"}))
    r = k(dpf_server, version, "apply", "-f", str(f))
    assert r.stdout.strip() == f"bfb.{GROUP}/mix configured"
    r = dpfctl(["apply", "-f", str(f)], dpf_server.kubeconfig)
    assert r.stdout == f"bfb.{GROUP}/mix unchanged\n", r.stderr
    # a field removed from the file is removed by either tool
    f.write_text(bfb_yaml("mix"))
    r = dpfctl(["apply", "-f", str(f)], dpf_server.kubeconfig)
    assert r.stdout == f"bfb.{GROUP}/mix configured\n", r.stderr
    r = k(dpf_server, version, "-n", NS, "get", "bfb", "mix", "-o", "yaml")
    assert not yaml.safe_load(r.stdout)["metadata"].get("labels")
    r = k(dpf_server, version, "apply", "-f", str(f))
    assert r.stdout.strip() == f"bfb.{GROUP}/mix unchanged"
    # dpfctl reads what kubectl wrote
    r = dpfctl(["-n", NS, "get", "bfb", "mix", "-o", "name"],
               dpf_server.kubeconfig)
    assert r.stdout == f"bfb.{GROUP}/mix\n"


@pytest.mark.parametrize("version", VERSIONS)
def test_describe_matches_kubectl(dpf_server, tmp_path, version):
    """Without status conditions (which dpfctl shows as a table), dpfctl
    describe prints what kubectl describe prints, byte for byte."""
    docs = [
        {"apiVersion": f"{GROUP}/v1alpha1", "kind": "DPUSet",
         "metadata": {"name": "ds", "namespace": NS, "labels": {"a": "b"},
                      "annotations": {"note": "x"}},
         "spec": {"nodeSelector": {"matchLabels": {"x": "y"}},
                  "dpuTemplate": {"spec": {"bfb": {"name": "bf"},
                                           "dpuFlavor": "f"}}}},
        {"apiVersion": f"{GROUP}/v1alpha1", "kind": "DPUFlavor",
         "metadata": {"name": "f", "namespace": NS,
                      "labels": {"a": "b", "c": "d"}},
         "spec": {"bfcfgParameters": ["A=1", "B=2"],
                  "nvconfig": [{"device": "*", "parameters": ["X=1"]}]}},
    ]
    f = tmp_path / "d.yaml"
    f.write_text(yaml.safe_dump_all(docs))
    r = dpfctl(["apply", "-f", str(f)], dpf_server.kubeconfig)
    assert r.returncode == 0, r.stderr
    for kind, name in (("dpuset", "ds"), ("dpuflavor", "f")):
        ours = dpfctl(["-n", NS, "describe", kind, name],
                      dpf_server.kubeconfig)
        theirs = k(dpf_server, version, "-n", NS, "describe", kind, name)
        assert ours.returncode == 0, ours.stderr
        if version == "1.20":
            # kubectl 1.20 still prints metadata.managedFields (later ones
            # and dpfctl leave them out), and its longer keys widen the
            # metadata section's columns
            assert _squeeze(ours.stdout) == \
                _squeeze(_drop_managed_fields(theirs.stdout))
        else:
            assert ours.stdout == theirs.stdout


def _drop_managed_fields(text):
    """kubectl 1.20's describe without its "Managed Fields:" block (the
    lines indented deeper than it)."""
    out, skip = [], None
    for line in text.splitlines(keepends=True):
        indent = len(line) - len(line.lstrip(" "))
        if skip is not None and indent > skip:
            continue
        skip = None
        if line.strip() == "Managed Fields:":
            skip = indent
            continue
        out.append(line)
    return "".join(out)


def _squeeze(text):
    """text with runs of spaces after a colon collapsed to one."""
    return re.sub(r":  +", ": ", text)


def _mask_ages(text):
    """Table text with each age in seconds ("7s") as "Ns" and runs of
    spaces collapsed to one."""
    return re.sub(r" +", " ", re.sub(r"\b\d+s\b", "Ns", text))


@pytest.mark.parametrize("version", VERSIONS)
def test_get_output_matches_kubectl(dpf_server, tmp_path, version):
    """dpfctl get prints what kubectl get prints: tables (several kinds,
    -A, -o wide, --show-labels), -o json, -o name, -o jsonpath, errors."""
    docs = [yaml.safe_load(bfb_yaml("g1", labels={"app": "x"})),
            yaml.safe_load(bfb_yaml("g2")),
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "p1", "namespace": "default",
                          "labels": {"run": "p1"}},
             "spec": {"nodeName": "worker1",
                      "containers": [{"name": "c", "image": "busybox"}]}}]
    f = tmp_path / "g.yaml"
    f.write_text(yaml.safe_dump_all(docs))
    r = dpfctl(["apply", "-f", str(f)], dpf_server.kubeconfig)
    assert r.returncode == 0, r.stderr
    commands = [
        ["get", "bfb,dpuset", "-A"],
        ["-n", NS, "get", "bfbs", "--show-labels"],
        ["get", "pods", "-o", "wide"],
        ["get", "ns"],
        ["-n", NS, "get", "bfb", "g1", "-o", "json"],
        ["-n", NS, "get", "bfb", "-o", "json"],
        ["get", "bfb", "-A", "-o", "name"],
        ["-n", NS, "get", "bfb", "-o",
         "jsonpath={range .items[*]}{.metadata.name}={.spec.fileName};{end}"],
        ["-n", NS, "get", "bfb", "missing"],
        ["-n", "default", "get", "bfb"],
    ]
    for args in commands:
        for attempt in range(3):  # an AGE may tick between the two runs
            ours = dpfctl(args, dpf_server.kubeconfig)
            theirs = kubectl(args, dpf_server.kubeconfig, version=version)
            if version == "1.20" and '"selfLink": ""' in theirs.stdout:
                # kubectl 1.20 still printed the since-removed
                # metadata.selfLink of a List; 1.32's output is the model
                lst = json.loads(theirs.stdout)
                del lst["metadata"]["selfLink"]
                theirs.stdout = json.dumps(lst, indent=4) + "\n"
            if version == "1.20" and '"managedFields"' in theirs.stdout:
                # and metadata.managedFields, which 1.21 and later (and
                # dpfctl) leave out of -o json
                doc = json.loads(theirs.stdout)
                for o in doc.get("items", [doc]):
                    del o["metadata"]["managedFields"]
                theirs.stdout = json.dumps(doc, indent=4) + "\n"
            if (ours.stdout, ours.stderr) == (theirs.stdout, theirs.stderr):
                break
        if ours.stdout != theirs.stdout:
            # Under load an AGE in seconds can tick between the two runs on
            # every attempt; then compare with ages in seconds masked and the
            # column padding (which follows the age's width) collapsed.
            assert _mask_ages(ours.stdout) == _mask_ages(theirs.stdout), args
        else:
            assert ours.stdout == theirs.stdout, args
        assert ours.stderr == theirs.stderr, args
        assert ours.returncode == theirs.returncode, args
