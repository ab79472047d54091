"""DPF's own example manifests (../shared/fixtures/dpf-v24.10-usecases/
hbn_only/) apply unchanged with dpfctl and with kubectl (1.32 and 1.20),
and read back with DPF's defaults filled in.

The files carry $BLUEFIELD_BITSTREAM, $DPUCLUSTER_VIP and
$DPUCLUSTER_INTERFACE placeholders that DPF's guide fills with envsubst;
the test substitutes them the same way into a temporary copy (the fixture
files are never edited). dpf-operator-system exists by default;
dpu-cplane-tenant1 is created first with a Namespace object, as the guide
does. Also: `dpfctl crds` emits valid structural CustomResourceDefinitions."""
import json
import os
import re
import string

import pytest
import yaml

from conftest import FIXTURES, binary, dpfctl, kubectl

HBN = os.path.join(FIXTURES, "hbn_only")
ENV = {
    "BLUEFIELD_BITSTREAM": "http://127.0.0.1:8080/bf-bundle.bfb",
    "DPUCLUSTER_VIP": "10.0.110.200",
    "DPUCLUSTER_INTERFACE": "eth0",
}
# the order of DPF's hbn_only guide
ORDER = ["operatorconfig.yaml", "bfb.yaml", "dpucluster.yaml",
         "hbn-dpuflavor.yaml", "dpuset.yaml", "hbn-dpuservice.yaml",
         "hbn-ipam.yaml", "hbn-loopback-ipam.yaml", "physical-ifaces.yaml",
         "hbn-ifaces.yaml", "hbn-chain.yaml"]
TOOLS = ["dpfctl", "kubectl-1.32", "kubectl-1.20"]
NAMESPACE = ("apiVersion: v1\nkind: Namespace\nmetadata:\n"
             "  name: dpu-cplane-tenant1\n")


def envsubst(text):
    """envsubst: replace $VAR and ${VAR} with ENV values."""
    return string.Template(text).safe_substitute(ENV)


def run(tool, srv, args, input=None):
    if tool == "dpfctl":
        return dpfctl(args, srv.kubeconfig, input=input)
    return kubectl(args, srv.kubeconfig, version=tool.split("-")[1],
                   input=input)


def substituted(tmp_path):
    """Copies of the fixtures with the placeholders filled in."""
    out = tmp_path / "hbn_only"
    out.mkdir()
    assert sorted(ORDER) == sorted(os.listdir(HBN)), \
        "fixture directory changed: update ORDER"
    for name in ORDER:
        with open(os.path.join(HBN, name)) as f:
            text = envsubst(f.read())
        assert not re.search(r"\$\{?[A-Z_]+", text), \
            f"placeholder left in {name}"
        (out / name).write_text(text)
    return out


def objects(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


@pytest.mark.parametrize("tool", TOOLS)
def test_hbn_only_applies_unchanged(dpf_server, tmp_path, tool):
    d = substituted(tmp_path)
    r = run(tool, dpf_server, ["apply", "-f", "-"], input=NAMESPACE)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "namespace/dpu-cplane-tenant1 created"
    for name in ORDER:
        r = run(tool, dpf_server, ["apply", "-f", str(d / name)])
        assert r.returncode == 0, f"{tool} apply {name}:\n{r.stderr}"
        want = [f"{o['kind'].lower()}.{o['apiVersion'].split('/')[0]}/"
                f"{o['metadata']['name']} created" for o in objects(d / name)]
        assert r.stdout.splitlines() == want, r.stdout
    # a second apply of the same files changes nothing
    for name in ORDER:
        r = run(tool, dpf_server, ["apply", "-f", str(d / name)])
        assert r.returncode == 0, r.stderr
        assert all(line.endswith(" unchanged")
                   for line in r.stdout.splitlines()), r.stdout

    # read back with DPF's defaults filled in
    def get(kind, name, ns="dpf-operator-system"):
        r = dpfctl(["-n", ns, "get", kind, name, "-o", "json"],
                   dpf_server.kubeconfig)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    bfb = get("bfb", "bf-bundle")
    assert bfb["spec"]["fileName"] == "dpf-operator-system-bf-bundle.bfb"
    assert bfb["spec"]["url"] == ENV["BLUEFIELD_BITSTREAM"]
    cl = get("dpucluster", "dpu-cplane-tenant1", "dpu-cplane-tenant1")
    assert cl["spec"]["maxNodes"] == 10
    assert cl["spec"]["clusterEndpoint"]["keepalived"]["vip"] == \
        ENV["DPUCLUSTER_VIP"]
    ds = get("dpuset", "dpuset")
    tmpl = ds["spec"]["dpuTemplate"]["spec"]
    assert tmpl["nodeEffect"]["taint"] == {"key": "dpu",
                                           "value": "provisioning",
                                           "effect": "NoSchedule"}
    assert tmpl["automaticNodeReboot"] is True
    assert ds["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == "10%"
    oc = get("dpfoperatorconfig", "dpfoperatorconfig")
    assert oc["spec"]["networking"]["controlPlaneMTU"] == 1500
    assert oc["spec"]["provisioningController"]["dmsTimeout"] == 900
    # the table view works for every kind the fixtures created
    for name in ORDER:
        for o in objects(d / name):
            ns = o["metadata"].get("namespace", "default")
            r = dpfctl(["-n", ns, "get", o["kind"], o["metadata"]["name"]],
                       dpf_server.kubeconfig)
            assert r.returncode == 0, r.stderr
            assert r.stdout.splitlines()[1].split()[0] == o["metadata"]["name"]


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
    import subprocess
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
