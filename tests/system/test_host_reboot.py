"""The Rebooting phase against hosts that really reboot (dpf-spec §2.7.4).

dpf-emu runs with --reboot-hosts: the host Nodes carry no reboot-command
skip annotation, each host's dpulet (and so its pods) runs in a time
namespace of its own, and the ipmitool first in its pods' PATH asks the
emulator to power-cycle the host (dpulet and pods killed, started again
after --reboot-time in a fresh time namespace: /proc/uptime from 0).

The DPU controller reads the host's uptime with `cat /proc/uptime` in the
DMS pod through pods/exec (lib/kube/kube-exec.c) and, with
automaticNodeReboot, runs `ipmitool chassis power reset` there itself,
once; without it, the DPU waits with WaitingForManualPowerCycleOrReboot
until someone reboots the host.

Runs as root (namespaces), one host per test."""
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from apiutil import Watch
from conftest import binary, kubectl, wait_for
from test_provisioning import CONDITIONS, Lab, conditions, examples_fleet

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root (network namespaces)")

NS = "dpf-operator-system"


@pytest.fixture
def lab(tmp_path, request):
    lb = Lab(tmp_path)
    lb.start(hosts=1, reboot_hosts=True, extra=getattr(request, "param", ()))
    yield lb
    code = lb.stop()
    assert code in (0, None), \
        f"dpf-server exited with {code}:\n{lb.srv.log_text()[-3000:]}"


def emu_host(lab):
    with open(os.path.join(lab.state, "status.json")) as f:
        return json.load(f)["hosts"][0]


def the_dpu(lab):
    ds = lab.dpus(NS)
    return ds[0] if len(ds) == 1 else None


def phase(d):
    return (d or {}).get("status", {}).get("phase")


def host_uptime(lab, dpu_name):
    """The host's uptime as a user reads it: stock kubectl exec in the
    DMS pod."""
    r = kubectl(["-n", NS, "exec", f"{dpu_name}-dms", "-c", "dms", "--",
                 "cat", "/proc/uptime"], lab.srv.kubeconfig)
    assert r.returncode == 0, r.stderr
    return float(r.stdout.split()[0])


def ready(d):
    return phase(d) == "Ready" and all(
        conditions(d).get(t, {}).get("status") == "True" for t in CONDITIONS)


class DpuFollower:
    """Follows the namespace's DPUs through a watch in a thread, keeping
    every version in `out` and the monotonic time it arrived."""

    def __init__(self, lab, out):
        self.lab, self.out, self.at = lab, out, {}
        self.done = threading.Event()
        self.rv = None
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        p = f"/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/{NS}/dpus"
        try:
            while not self.done.is_set():
                q = "?watch=1&allowWatchBookmarks=true"
                if self.rv:
                    q += f"&resourceVersion={self.rv}"
                w = Watch(self.lab.srv, p + q)
                assert w.status == 200, w.status
                w.sock.settimeout(1)
                while not self.done.is_set():
                    try:
                        ev = w.next()
                    except (socket.timeout, TimeoutError):
                        continue
                    if ev is None:
                        break
                    obj = ev["object"]
                    self.rv = obj["metadata"]["resourceVersion"]
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self.at[self.rv] = time.monotonic()
                        self.out.append(obj)
                w.close()
        except Exception as e:  # noqa: BLE001 - raised by stop()
            self.error = e

    def first_seen(self, obj):
        return self.at[obj["metadata"]["resourceVersion"]]

    def wait_for_rv(self, rv):
        wait_for(lambda: self.error is not None or (
            self.rv is not None and int(self.rv) >= int(rv)), 30,
            what=f"the watch to reach resourceVersion {rv}")

    def stop(self):
        self.done.set()
        self.thread.join(10)
        if self.error is not None:
            raise self.error


def test_controller_reboots_the_host_through_exec(lab):
    wait_for(lambda: lab.get(f"/api/v1/nodes/{lab.host(1)}"), 60,
             what="the host Node")
    node = lab.get(f"/api/v1/nodes/{lab.host(1)}")
    ann = node["metadata"].get("annotations", {})
    assert ann.get("dpu.emu/sysfs"), ann  # annotated by dpf-emu
    assert "provisioning.dpu.nvidia.com/reboot-command" not in ann, ann
    # Every version of the DPU the server writes, followed through a
    # watch: the Rebooting phase and status.hostReboot can last less than
    # any poll interval on a loaded machine.
    versions = []
    follower = DpuFollower(lab, versions)
    lab.bfb.serving = True
    lab.apply(examples_fleet(lab))
    uptime_before = None

    def until_ready():
        nonlocal uptime_before
        d = the_dpu(lab)
        if uptime_before is None and phase(d) == "Rebooting" and \
                emu_host(lab)["reboots"] == 0:
            try:
                uptime_before = host_uptime(lab, d["metadata"]["name"])
            except AssertionError:
                pass
        return ready(d)
    try:
        wait_for(until_ready, 300, interval=0.3, what="the DPU Ready")
        d = the_dpu(lab)
        follower.wait_for_rv(d["metadata"]["resourceVersion"])
    finally:
        follower.stop()
    name = d["metadata"]["name"]
    rebooting = [v for v in versions if phase(v) == "Rebooting"]
    assert rebooting, ("the DPU never showed Rebooting",
                       [phase(v) for v in versions])
    rebooting_at = follower.first_seen(rebooting[0])
    seen = {}  # Rebooted reasons -> message, while the DPU was Rebooting
    for v in rebooting:
        c = conditions(v).get("Rebooted")
        if c:
            seen.setdefault(c["reason"], c["message"])
    records = [v["status"]["hostReboot"] for v in rebooting
               if v["status"].get("hostReboot")]

    # the controller asked the host's BMC once, and the host rebooted
    h = emu_host(lab)
    assert h["reboots"] == 1 and h["bmcRequests"] == 1, h
    assert records and all(r == records[0] for r in records), records
    assert records[0]["command"] == "ipmitool chassis power reset"
    # what the DPU said meanwhile (the host goes down 0.5 s after the
    # request, so the controller may only have seen it down)
    if "Rebooting" in seen:
        assert "ipmitool chassis power reset" in seen["Rebooting"], seen
    else:
        assert "(the host is rebooting)" in seen["HostUptimeUnknown"], seen
        assert f"{name}-dms" in seen["HostUptimeUnknown"], seen
    rb = conditions(d)["Rebooted"]
    assert rb["status"] == "True" and rb["reason"] == "Rebooted", rb
    assert "the host rebooted" in rb["message"], rb
    assert "hostReboot" not in d["status"], d["status"]
    r = lab.srv.json("GET", f"/api/v1/namespaces/{NS}/events")[1]
    assert any(e.get("reason") == "HostRebootRequested" and
               e["involvedObject"]["name"] == name
               for e in r["items"]), [e.get("reason") for e in r["items"]]

    # the host's uptime counts from the reboot: less than the time since
    # the DPU entered Rebooting, where before it counted from fleet up
    up = host_uptime(lab, name)
    since = time.monotonic() - rebooting_at
    assert up < since, (up, since)
    if uptime_before is not None:
        assert up < uptime_before + since, (up, uptime_before, since)
    with open("/proc/uptime") as f:
        assert float(f.read().split()[0]) > up + 60

    # Ready for good: no second reboot later
    time.sleep(6)
    h = emu_host(lab)
    assert h["reboots"] == 1 and h["bmcRequests"] == 1, h


@pytest.mark.parametrize("lab", [("--power-off-delay", "30s")],
                         indirect=True)
def test_reboot_asked_once_across_requeues_and_a_restart(lab):
    """The host takes 30 s to go down after ipmitool answers (as a real
    one shuts down): meanwhile its uptime still says it has not rebooted,
    the DPU is looked at again every 5 s and dpf-server (with the
    controller) is SIGKILLed and restarted; status.hostReboot keeps the
    controller from asking the BMC a second time."""
    lab.bfb.serving = True
    lab.apply(examples_fleet(lab))

    def asked():
        d = the_dpu(lab)
        return d if (d or {}).get("status", {}).get("hostReboot") else None
    d = wait_for(asked, 300, interval=0.2, what="a host reboot asked for")
    rec = d["status"]["hostReboot"]
    assert rec["command"] == "ipmitool chassis power reset", rec
    assert rec["osInstalledAt"] == \
        conditions(d)["OSInstalled"]["lastTransitionTime"], rec
    assert emu_host(lab)["bmcRequests"] == 1
    lab.srv.kill()
    time.sleep(1)
    lab.srv.start(timeout=60)

    # the controller is back and the host still up: it waits, says why
    def waiting_again():
        c = conditions(the_dpu(lab)).get("Rebooted", {})
        return c.get("reason") == "Rebooting" and \
            "waiting for the host to come back" in c.get("message", "") and \
            "requested at" in c.get("message", "")
    wait_for(waiting_again, 60, interval=0.3,
             what="Rebooting, waiting for the host after the restart")
    assert not emu_host(lab)["poweredOff"]
    wait_for(lambda: ready(the_dpu(lab)), 300, interval=0.5,
             what="the DPU Ready")
    h = emu_host(lab)
    assert h["bmcRequests"] == 1 and h["reboots"] == 1, h


def test_manual_reboot_waits_for_the_owner(lab):
    lab.bfb.serving = True
    lab.apply(examples_fleet(lab).replace("automaticNodeReboot: true",
                                          "automaticNodeReboot: false"))

    def waiting():
        d = the_dpu(lab)
        c = conditions(d).get("Rebooted", {})
        return phase(d) == "Rebooting" and \
            c.get("reason") == "WaitingForManualPowerCycleOrReboot"
    wait_for(waiting, 300, interval=0.5,
             what="the DPU waiting for a manual reboot")
    d = the_dpu(lab)
    assert d["spec"]["automaticNodeReboot"] is False
    msg = conditions(d)["Rebooted"]["message"]
    assert "automaticNodeReboot is false" in msg, msg
    assert "reboot-command" in msg, msg

    # it keeps waiting: nothing reboots the host on its own
    time.sleep(12)
    d = the_dpu(lab)
    assert phase(d) == "Rebooting", d["status"]
    assert emu_host(lab)["reboots"] == 0

    # the owner reboots the host through its BMC (the emulator's)
    r = subprocess.run([binary("dpf-emu", "dpf-emu"), "ipmitool",
                        "--state-dir", lab.state, "--host", "1", "chassis",
                        "power", "cycle"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Chassis Power Control: Cycle\n"
    wait_for(lambda: ready(the_dpu(lab)), 300, interval=0.5,
             what="the DPU Ready after the manual reboot")
    assert emu_host(lab)["reboots"] == 1
    rb = conditions(the_dpu(lab))["Rebooted"]
    assert rb["status"] == "True" and "the host rebooted" in rb["message"]


def test_emulated_bmc_refuses_what_it_cannot_do(lab):
    base = [binary("dpf-emu", "dpf-emu"), "ipmitool", "--state-dir",
            lab.state]
    r = subprocess.run(base + ["--host", "1", "chassis", "power", "status"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == "Chassis Power is on\n", r
    r = subprocess.run(base + ["--host", "1", "chassis", "power", "off"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "not \"off\"" in r.stderr, r
    r = subprocess.run(base + ["--host", "7", "chassis", "power", "cycle"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "no such host" in r.stderr, r
    r = subprocess.run(base + ["--host", "1", "sel", "list"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "chassis power" in r.stderr, r
    # the host's own ipmitool is first in its pods' PATH
    script = os.path.join(lab.state, "hosts", "h1", "bin", "ipmitool")
    assert os.access(script, os.X_OK)
    assert emu_host(lab)["reboots"] == 0
