"""The schema's group registry and per-kind delete hooks, as a user sees
them through dpf-server: discovery (/api, /apis, kubectl api-versions)
lists exactly the registry's groups, versions and preferred versions
(tests/system/schema-groups prints the registry); Kubernetes' protected
namespaces and a DPUFlavor still in use cannot be deleted, over HTTP and
with stock kubectl, and nothing is deleted when refused."""
import json
import subprocess

import pytest

from apiutil import PROV, V, call, path
from conftest import binary, kubectl

PROTECTED = ["default", "kube-system", "kube-public"]


def registry():
    out = subprocess.run([binary("tests", "system", "schema-groups")],
                         capture_output=True, text=True, check=True,
                         timeout=30).stdout
    return json.loads(out)


def test_discovery_lists_exactly_the_registry_groups(dpf_server):
    groups = registry()
    core = [g for g in groups if g["name"] == ""]
    named = [g for g in groups if g["name"] != ""]
    assert len(core) == 1 and len(named) == len(groups) - 1

    st, api = call(dpf_server, "GET", "/api")
    assert st == 200, api
    assert api["versions"] == core[0]["versions"]

    st, apis = call(dpf_server, "GET", "/apis")
    assert st == 200, apis
    served = [(g["name"], [v["version"] for v in g["versions"]],
               g["preferredVersion"]["version"]) for g in apis["groups"]]
    # preferred version first, as kube-apiserver lists it
    want = [(g["name"],
             [g["preferredVersion"]] + [v for v in g["versions"]
                                        if v != g["preferredVersion"]],
             g["preferredVersion"]) for g in named]
    assert served == want
    for g in named:
        st, one = call(dpf_server, "GET", f"/apis/{g['name']}")
        assert st == 200 and one["name"] == g["name"], one

    r = kubectl(["api-versions"], dpf_server.kubeconfig)
    assert r.returncode == 0, r.stderr
    listed = set(r.stdout.split())
    want_gv = {f"{g['name']}/{v}" if g["name"] else v
               for g in groups for v in g["versions"]}
    assert listed == want_gv


@pytest.mark.parametrize("name", PROTECTED)
def test_protected_namespace_delete_over_http(dpf_server, name):
    st, body = call(dpf_server, "DELETE", f"/api/v1/namespaces/{name}")
    assert st == 403, body
    assert body["kind"] == "Status" and body["reason"] == "Forbidden"
    assert body["message"] == (f'namespaces "{name}" is forbidden: this '
                               "namespace may not be deleted")
    assert body["details"]["name"] == name
    assert body["details"]["kind"] == "namespaces"
    st, ns = call(dpf_server, "GET", f"/api/v1/namespaces/{name}")
    assert st == 200 and "deletionTimestamp" not in ns["metadata"], ns


def test_other_namespace_delete_allowed(dpf_server):
    body = {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "kube-systems"}}
    assert call(dpf_server, "POST", "/api/v1/namespaces", body)[0] == 201
    st, out = call(dpf_server, "DELETE", "/api/v1/namespaces/kube-systems")
    assert st == 200, out


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_protected_namespace_delete_with_kubectl(dpf_server, version):
    r = kubectl(["delete", "namespace", "kube-system"], dpf_server.kubeconfig,
                version=version)
    assert r.returncode != 0
    assert ('Error from server (Forbidden): namespaces "kube-system" is '
            "forbidden: this namespace may not be deleted") in r.stderr
    r = kubectl(["get", "namespace", "kube-system", "-o", "name"],
                dpf_server.kubeconfig, version=version)
    assert r.returncode == 0 and r.stdout.strip() == "namespace/kube-system"


def test_flavor_in_use_delete_with_kubectl(dpf_server):
    s = dpf_server
    flavor = {"apiVersion": f"{PROV}/{V}", "kind": "DPUFlavor",
              "metadata": {"name": "busy", "namespace": "default"},
              "spec": {"grub": {"kernelParameters": ["a=1"]}}}
    dpuset = {"apiVersion": f"{PROV}/{V}", "kind": "DPUSet",
              "metadata": {"name": "user", "namespace": "default"},
              "spec": {"dpuTemplate": {"spec": {"bfb": {"name": "os"},
                                                "dpuFlavor": "busy"}}}}
    assert call(s, "POST", path("dpuflavors", group=PROV), flavor)[0] == 201
    assert call(s, "POST", path("dpusets", group=PROV), dpuset)[0] == 201
    want = ('admission webhook "vdpuflavor.kb.io" denied the request: '
            "DPUFlavor is being referred to by DPUSet(s) [user], you must "
            "delete the DPUSet(s) first")
    st, body = call(s, "DELETE", path("dpuflavors", "busy", group=PROV))
    assert st == 403 and body["message"] == want, body
    r = kubectl(["-n", "default", "delete", "dpuflavor", "busy"],
                s.kubeconfig)
    assert r.returncode != 0
    assert f"Error from server (Forbidden): {want}" in r.stderr
    assert call(s, "GET", path("dpuflavors", "busy", group=PROV))[0] == 200
    r = kubectl(["-n", "default", "delete", "dpuset", "user"], s.kubeconfig)
    assert r.returncode == 0, r.stderr
    r = kubectl(["-n", "default", "delete", "dpuflavor", "busy"],
                s.kubeconfig)
    assert r.returncode == 0, r.stderr
    assert call(s, "GET", path("dpuflavors", "busy", group=PROV))[0] == 404
