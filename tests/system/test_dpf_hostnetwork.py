"""dpf-hostnetwork (the <dpu>-hostnetwork pod's command) on a sysfs tree of
our own: VFs created on PF0, VF0 put into br-dpu once the bridge has an
address (in a network namespace of the test's), the ready file, and
SIGTERM taking VF0 out again; a PF without SR-IOV is ready at once."""
import os
import signal
import subprocess
import time
import uuid

import pytest

from conftest import BUILD

SCRIPT = os.path.join(BUILD, "dpf-hostnetwork", "dpf-hostnetwork")


def wait(pred, what, timeout=20):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, what
        time.sleep(0.05)


def start(args, ns=None):
    cmd = ([SCRIPT] + args) if ns is None else \
        ["ip", "netns", "exec", ns, SCRIPT] + args
    return subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def stop(p):
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=20)
    return p.returncode, out


def pf(sysfs, netdev, sriov=True, vf=None):
    d = os.path.join(sysfs, "bus", "pci", "devices", "0000:4b:00.0")
    os.makedirs(os.path.join(d, "net", netdev))
    if sriov:
        with open(os.path.join(d, "sriov_totalvfs"), "w") as f:
            f.write("127\n")
        with open(os.path.join(d, "sriov_numvfs"), "w") as f:
            f.write("0\n")
    if vf:
        os.makedirs(os.path.join(d, "virtfn0", "net", vf))
    return d


def test_no_sriov_is_ready_and_stops_clean(tmp_path):
    sysfs = str(tmp_path / "sys")
    pf(sysfs, "eth0", sriov=False)
    ready = str(tmp_path / "ready")
    p = start(["--pci", "0000:4b:00", "--sysfs", sysfs, "--ready-file",
               ready, "--interval", "0.2"])
    try:
        wait(lambda: os.path.exists(ready), "never ready")
    finally:
        rc, out = stop(p)
    assert rc == 0, out
    assert "no SR-IOV" in out, out
    assert not os.path.exists(ready)


def test_waits_for_pf0(tmp_path):
    sysfs = str(tmp_path / "sys")
    os.makedirs(sysfs)
    ready = str(tmp_path / "ready")
    p = start(["--pci", "0000:4b:00", "--sysfs", sysfs, "--ready-file",
               ready, "--interval", "0.2"])
    try:
        time.sleep(1)
        assert not os.path.exists(ready)
    finally:
        rc, out = stop(p)
    assert "waiting for PF0 (0000:4b:00.0)" in out, out


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.fail("this test needs root (network namespaces)")
    name = "dpfhn-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name])


def nsip(ns, *args):
    return subprocess.run(["ip", "netns", "exec", ns, "ip"] + list(args),
                          capture_output=True, text=True, check=True).stdout


def test_vf0_into_br_dpu(tmp_path, netns):
    sysfs = str(tmp_path / "sys")
    d = pf(sysfs, "pf0", vf="pf0vf0")
    nsip(netns, "link", "add", "pf0vf0", "type", "veth", "peer", "name",
         "pf0vf0-peer")
    ready = str(tmp_path / "ready")
    p = start(["--pci", "0000:4b:00", "--num-vfs", "8", "--mtu", "1400",
               "--sysfs", sysfs, "--ready-file", ready, "--interval", "0.2"],
              ns=netns)
    try:
        # VFs created at once; no bridge yet: not ready
        wait(lambda: open(os.path.join(d, "sriov_numvfs")).read().strip()
             == "8", "VFs not created")
        time.sleep(0.6)
        assert not os.path.exists(ready)
        nsip(netns, "link", "add", "br-dpu", "type", "bridge")
        nsip(netns, "link", "set", "br-dpu", "up")
        time.sleep(0.6)
        assert not os.path.exists(ready)  # no IPv4 on it yet
        nsip(netns, "addr", "add", "10.9.0.1/24", "dev", "br-dpu")
        wait(lambda: os.path.exists(ready), "never ready")
        link = nsip(netns, "-o", "link", "show", "dev", "pf0vf0")
        assert "master br-dpu" in link and "mtu 1400" in link, link
    finally:
        rc, out = stop(p)
    assert rc == 0, out
    assert "pf0vf0 added to br-dpu" in out, out
    assert "master br-dpu" not in nsip(netns, "-o", "link", "show", "dev",
                                       "pf0vf0")
    assert not os.path.exists(ready)
