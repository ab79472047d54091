"""examples/, the repository's own DPF manifests, and the README's tour.

* Every file of examples/ applies with dpfctl and with kubectl (1.32 and
  1.20) as a directory, a second apply changes nothing, objects read back
  with DPF's defaults filled in, and the table view shows each of them.
* examples/README.md describes every file of examples/.
* The README's five-minute tour: its commands are read from README.md and
  run against a server (the `make run` step is the dpf_server fixture);
  what the README says they print is checked against what they print.
* `dpfctl crds` emits valid structural CustomResourceDefinitions.

Nothing here reads the shared folder beside the clone (see
test_fixtures.py for DPF's verbatim manifests)."""
import json
import os
import re
import subprocess
import time

import pytest
import yaml

from conftest import EXAMPLES, REPO, binary, dpfctl, kubectl

TOOLS = ["dpfctl", "kubectl-1.32", "kubectl-1.20"]
SETS = ["hbn", "dpudeployment"]  # in apply order: the second uses the first
NS = "dpf-operator-system"


def run(tool, srv, args, input=None):
    if tool == "dpfctl":
        return dpfctl(args, srv.kubeconfig, input=input)
    return kubectl(args, srv.kubeconfig, version=tool.split("-")[1],
                   input=input)


def files(name):
    d = os.path.join(EXAMPLES, name)
    return [os.path.join(d, f) for f in sorted(os.listdir(d))
            if f.endswith(".yaml")]


def objects(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def applied_line(o, verb):
    """kubectl's line for one applied object: kind.group/name verb."""
    api = o["apiVersion"]
    kind = o["kind"].lower()
    if "/" in api:
        kind += "." + api.split("/")[0]
    return f"{kind}/{o['metadata']['name']} {verb}"


def get(srv, kind, name, ns=NS):
    r = dpfctl(["-n", ns, "get", kind, name, "-o", "json"], srv.kubeconfig)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("tool", TOOLS)
def test_examples_apply(dpf_server, tool):
    for name in SETS:
        want = [applied_line(o, "created")
                for path in files(name) for o in objects(path)]
        assert len(want) >= 5, f"examples/{name} has too few objects"
        d = os.path.join(EXAMPLES, name)
        r = run(tool, dpf_server, ["apply", "-f", d])
        assert r.returncode == 0, f"{tool} apply -f {d}:\n{r.stderr}"
        assert r.stdout.splitlines() == want, r.stdout
    # a second apply of the same directories changes nothing
    for name in SETS:
        r = run(tool, dpf_server, ["apply", "-f",
                                   os.path.join(EXAMPLES, name)])
        assert r.returncode == 0, r.stderr
        assert all(line.endswith(" unchanged")
                   for line in r.stdout.splitlines()), r.stdout

    # read back with DPF's defaults filled in
    bfb = get(dpf_server, "bfb", "doca-bundle")
    assert bfb["spec"]["fileName"] == "dpf-operator-system-doca-bundle.bfb"
    assert bfb["status"]["phase"] == "Initializing"
    cl = get(dpf_server, "dpucluster", "rack-a", "dpu-rack-a")
    assert cl["spec"]["maxNodes"] == 1000
    assert cl["spec"]["clusterEndpoint"]["keepalived"]["vip"] == \
        "192.168.100.10"
    workers = get(dpf_server, "dpuset", "rack-a-workers")
    tmpl = workers["spec"]["dpuTemplate"]["spec"]
    assert tmpl["nodeEffect"] == {"taint": {"key": "dpu",
                                            "value": "installing",
                                            "effect": "NoSchedule"}}
    assert tmpl["automaticNodeReboot"] is True
    assert workers["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] \
        == "25%"
    canary = get(dpf_server, "dpuset", "rack-a-canary")
    assert canary["spec"]["strategy"] == {"type": "Recreate"}
    assert canary["spec"]["dpuTemplate"]["spec"]["nodeEffect"] == \
        {"drain": {"automaticNodeReboot": True}}
    oc = get(dpf_server, "dpfoperatorconfig", "dpfoperatorconfig")
    assert oc["spec"]["networking"] == {"controlPlaneMTU": 1500,
                                        "highSpeedMTU": 1500}
    assert oc["spec"]["provisioningController"]["dmsTimeout"] == 1200
    svc = get(dpf_server, "dpuservice", "hbn")
    # "labels:" with no value was null and is gone; "|-" text kept as is
    assert "labels" not in svc["spec"]["serviceDaemonSet"]
    nets = svc["spec"]["serviceDaemonSet"]["annotations"][
        "k8s.v1.cni.cncf.io/networks"]
    assert [n["cni-args"]["poolNames"] for n in json.loads(nets)] == \
        [["hbn-loopback"], ["hbn-red"], ["hbn-blue"]]
    chain = get(dpf_server, "dpuservicechain", "fabric-to-hbn")
    assert "nodeSelector" not in chain["spec"]["template"]["spec"]
    dd = get(dpf_server, "dpudeployment", "rack-b")
    assert sorted(dd["spec"]["services"]) == ["dts", "hbn"]

    # the table view works for every object of examples/
    for name in SETS:
        for path in files(name):
            for o in objects(path):
                ns = o["metadata"].get("namespace", "default")
                r = dpfctl(["-n", ns, "get", o["kind"],
                            o["metadata"]["name"]], dpf_server.kubeconfig)
                assert r.returncode == 0, r.stderr
                assert r.stdout.splitlines()[1].split()[0] == \
                    o["metadata"]["name"]


def test_examples_readme_describes_every_file():
    with open(os.path.join(EXAMPLES, "README.md")) as f:
        text = f.read()
    found = []
    for root, _, names in os.walk(EXAMPLES):
        for n in names:
            if n.endswith(".yaml"):
                rel = os.path.relpath(os.path.join(root, n), EXAMPLES)
                found.append(rel)
                assert f"`{rel}`" in text, \
                    f"examples/README.md does not describe {rel}"
    assert len(found) >= 10
    # and names no file that is not there
    for rel in re.findall(r"`([\w./-]+\.yaml)`", text):
        assert os.path.exists(os.path.join(EXAMPLES, rel)), \
            f"examples/README.md names {rel}, which does not exist"


# --- the README's five-minute tour ------------------------------------------

def tour():
    """(command, notes) for each command of the README's tour, in order.
    Continuation lines are joined; notes are the comment lines after a
    command (what the README says it prints)."""
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    assert "## A five-minute tour" in text
    section = text.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    out, cur = [], ""
    for line in section.splitlines():
        if not line.startswith("    "):
            continue
        code = line[4:].strip()
        if code.startswith("#"):
            assert out and not cur, f"comment with no command: {line}"
            out[-1][1].append(code.lstrip("#").strip())
            continue
        cur = f"{cur} {code}" if cur else code
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        out.append((cur, []))
        cur = ""
    return out


def squash(s):
    return " ".join(s.split())


# How each command of the tour is run and checked, and how many of the
# comment lines after it (what the README says it prints) the test checks.
# "skip" names what covers the command instead; a README change that adds,
# drops or alters a command fails test_readme_tour until this list follows.
TOUR = {
    "make run": ("skip: the dpf_server fixture starts the same server", 0),
    "export KUBECONFIG=$PWD/.dpf-state/admin.kubeconfig": ("env", 0),
    # the fleet's part: tests/system/test_provisioning.py runs the same
    # fleet (dpf-emu, examples/fleet) and checks the phases, describe's
    # conditions, progress and events, and the DPU cluster's Nodes
    "build/dpfctl/dpfctl get dpus -n dpf-operator-system -w": ("watch", 0),
    "build/dpfctl/dpfctl describe dpu -n dpf-operator-system":
        ("skip: tests/system/test_provisioning.py describes a DPU", 0),
    "kubectl get nodes,pods -A -o wide":
        ("skip: the fixture's server has no nodes; "
         "tests/system/test_pod_proxy.py checks -o wide", 0),
    "kubectl logs -n dpf-operator-system dpfemu-e-h1-0000-4b-00-dms":
        ("skip: tests/system/test_pod_proxy.py reads logs through the "
         "API server", 0),
    "kubectl get secret -n dpu-cluster-lab lab-admin-kubeconfig "
    "-o jsonpath='{.data.admin\\.conf}' | base64 -d > dpu-cluster.conf":
        ("skip: tests/system/test_provisioning.py reads the DPU cluster's "
         "kubeconfig Secret", 0),
    "kubectl --kubeconfig dpu-cluster.conf get nodes --show-labels":
        ("skip: tests/system/test_provisioning.py checks the DPU Nodes' "
         "labels", 0),
    "kubectl get namespaces": ("ok", 0),
    "kubectl api-resources | grep dpu": ("ok", 0),
    "build/dpfctl/dpfctl apply -f examples/hbn": ("ok", 0),
    "build/dpfctl/dpfctl get bfb,dpuset,dpuserviceipam -A": ("ok", 0),
    # the lines after the first describe the BFB controller, which the test
    # server runs without (its download would leave the loopback);
    # tests/system/test_bfb_controller.py covers a failing download, its
    # condition and the retry
    "build/dpfctl/dpfctl get bfb doca-bundle -n dpf-operator-system -o yaml":
        ("ok", 1),
    "build/dpfctl/dpfctl apply -f examples/dpudeployment": ("ok", 0),
    "kubectl -n dpf-operator-system patch dpuset rack-a-workers --type merge "
    "-p '{\"spec\":{\"strategy\":{\"rollingUpdate\":{\"maxUnavailable\":"
    "\"0%\"}}}}'": ("refused", 2),
    "build/dpfctl/dpfctl get dpus -A -w": ("watch", 0),
    "build/dpfctl/dpfctl wait dpuset/rack-a-workers -n dpf-operator-system "
    "--for=jsonpath='{.spec.strategy.type}'=RollingUpdate": ("ok", 0),
    "build/dpfctl/dpfctl crds > dpf-crds.yaml": ("ok", 0),
    "mkdir -p /tmp/dts && echo prometheus=http://127.0.0.1:9100 > "
    "/tmp/dts/dts_config.ini":
        ("skip: tests/system/test_dts_*.py run dts", 0),
    "build/dts/dts --config-dir /tmp/dts &":
        ("skip: tests/system/test_dts_*.py run dts", 0),
    "curl -s http://127.0.0.1:9100/metrics | grep dts_net_rx_bytes_total":
        ("skip: tests/system/test_dts_prometheus.py scrapes dts", 0),
}


def test_readme_tour(dpf_server, tmp_path):
    steps = tour()
    assert [c for c, _ in steps] == list(TOUR), \
        "README's tour changed: update TOUR in this test"
    # a directory that looks like the clone: the build under test, examples/
    # and .dpf-state/admin.kubeconfig of the running server
    work = tmp_path / "clone"
    (work / "build" / "dpfctl").mkdir(parents=True)
    os.symlink(binary("dpfctl", "dpfctl"), work / "build/dpfctl/dpfctl")
    os.symlink(EXAMPLES, work / "examples")
    (work / ".dpf-state").mkdir()
    os.symlink(dpf_server.kubeconfig, work / ".dpf-state/admin.kubeconfig")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path),
           "LANG": "C.UTF-8"}
    exports = []

    def sh(cmd):
        return ["bash", "-c", "; ".join(exports + [cmd])]

    for cmd, notes in steps:
        how, checked = TOUR[cmd]
        assert len(notes) >= checked, f"{cmd}: README lost its notes"
        notes = notes[:checked]
        if how.startswith("skip"):
            continue
        if how == "env":
            exports.append(cmd)
            continue
        if how == "watch":
            # a watch keeps running and reports no error
            p = subprocess.Popen(sh(cmd), cwd=work, env=env,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            time.sleep(2)
            assert p.poll() is None, p.communicate()
            p.terminate()
            p.communicate(timeout=20)
            continue
        r = subprocess.run(sh(cmd), cwd=work, env=env, capture_output=True,
                           text=True, timeout=120)
        output = r.stdout + r.stderr
        if how == "refused":
            assert r.returncode != 0, f"{cmd}: accepted\n{output}"
        else:
            assert r.returncode == 0, f"{cmd}: exit {r.returncode}\n{output}"
            assert r.stdout.strip() or ">" in cmd, f"{cmd}: no output"
        if notes:
            # what the README says the command prints, minus a trailing
            # "(remark)", appears in what it printed
            said = squash(re.sub(r"\s*\([^()]*\)$", "", " ".join(notes)))
            assert said in squash(output), \
                f"{cmd}: README says\n  {said}\nbut it printed\n{output}"
    # the checks of the tour's outputs that a note cannot express
    crds = [d for d in yaml.safe_load_all((work / "dpf-crds.yaml").read_text())
            if d]
    assert {c["spec"]["names"]["kind"] for c in crds} >= {"BFB", "DPUSet"}
    r = dpfctl(["get", "dpuservices,dpudeployments", "-A", "-o", "name"],
               dpf_server.kubeconfig)
    assert r.stdout.split() == ["dpuservice.svc.dpu.nvidia.com/hbn",
                                "dpudeployment.svc.dpu.nvidia.com/rack-b"]


# --- dpfctl crds ---------------------------------------------------------------

def walk_structural(node, path, errors, root=False):
    """Check the structural-schema rules of apiextensions.k8s.io/v1."""
    if not isinstance(node, dict):
        errors.append(f"{path}: not an object")
        return
    has_type = "type" in node
    escape = node.get("x-kubernetes-int-or-string") or \
        node.get("x-kubernetes-preserve-unknown-fields")
    if not has_type and not escape:
        errors.append(f"{path}: no type")
    for key in ("properties",):
        for name, sub in (node.get(key) or {}).items():
            if root and name == "metadata":
                allowed = {"type", "description"}
                if set(sub) - allowed or sub.get("type") != "object":
                    errors.append(f"{path}.metadata: only type: object "
                                  f"allowed, got {sorted(sub)}")
                continue
            walk_structural(sub, f"{path}.{name}", errors)
    if "items" in node:
        walk_structural(node["items"], f"{path}[]", errors)
    ap = node.get("additionalProperties")
    if isinstance(ap, dict):
        walk_structural(ap, f"{path}{{}}", errors)
    if "properties" in node and isinstance(ap, dict):
        errors.append(f"{path}: properties and additionalProperties")


def test_crds_are_valid_structural_crds():
    exe = binary("dpfctl", "dpfctl")
    r = subprocess.run([exe, "crds"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert docs, "no CRDs"
    kinds = set()
    for crd in docs:
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["kind"] == "CustomResourceDefinition"
        spec = crd["spec"]
        names = spec["names"]
        assert crd["metadata"]["name"] == f"{names['plural']}.{spec['group']}"
        assert spec["scope"] in ("Namespaced", "Cluster")
        assert spec["versions"], crd["metadata"]["name"]
        assert sum(1 for v in spec["versions"] if v.get("storage")) == 1
        for v in spec["versions"]:
            schema = v["schema"]["openAPIV3Schema"]
            assert schema.get("type") == "object"
            errors = []
            walk_structural(schema, f"{names['kind']}", errors, root=True)
            assert not errors, "\n".join(errors[:20])
        kinds.add((spec["group"], names["kind"]))
    for want in [("provisioning.dpu.nvidia.com", "BFB"),
                 ("provisioning.dpu.nvidia.com", "DPUSet"),
                 ("provisioning.dpu.nvidia.com", "DPUCluster")]:
        assert want in kinds
    # -o json: one List with the same CRDs
    r = subprocess.run([exe, "crds", "-o", "json"], capture_output=True,
                       text=True)
    lst = json.loads(r.stdout)
    assert lst["kind"] == "List" and len(lst["items"]) == len(docs)
