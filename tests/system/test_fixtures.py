"""DPF's own example manifests, verbatim (<shared>/fixtures/dpf-v24.10-
usecases/hbn_only/, the shared folder beside the clone or DPF_SHARED_DIR),
apply unchanged with dpfctl and with kubectl (1.32 and 1.20), and read back
with DPF's defaults filled in. Without the shared folder this module is
skipped with one line saying so; test_examples.py covers examples/.

The files carry $BLUEFIELD_BITSTREAM, $DPUCLUSTER_VIP and
$DPUCLUSTER_INTERFACE placeholders that DPF's guide fills with envsubst;
the test substitutes them the same way into a temporary copy (the fixture
files are never edited). dpf-operator-system exists by default;
dpu-cplane-tenant1 is created first with a Namespace object, as the guide
does."""
import json
import os
import re
import string

import pytest
import yaml

from conftest import FIXTURES_ABSENT, dpf_fixtures, dpfctl, kubectl

HBN = dpf_fixtures("hbn_only")
if HBN is None:
    pytest.skip(FIXTURES_ABSENT, allow_module_level=True)
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
