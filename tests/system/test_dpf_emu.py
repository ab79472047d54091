"""dpf-emu: an emulated fleet of hosts with DPUs in network namespaces.

Runs as root (it creates namespaces). Every test uses its own fleet name
and management network; the fixture takes the fleet down with `dpf-emu
down` and checks that no namespace, link or process of it remains, then
removes any leftover by name and PID itself so a failure does not leak.

dpulet is another program (its own branch); these tests use a stand-in
(STANDIN below, written into the test's directory as `standin-dpulet`)
that records its argv and its network namespace and stays alive, and for
`join` writes the kubeconfig it was asked for and exits 0."""
import base64
import json
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import binary, free_mgmt_octet, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="dpf-emu needs root (namespaces)")

STANDIN = r"""#!/bin/sh
# test stand-in for dpulet: records argv and netns, stays alive
d=$(dirname "$0")
echo "$$|$(readlink /proc/$$/ns/net)|$*" >> "$d/standin-argv.log"
if [ "$1" = join ]; then
    while [ $# -gt 0 ]; do
        [ "$1" = --kubeconfig ] && { mkdir -p "$(dirname "$2")"; echo joined > "$2"; }
        shift
    done
    exit 0
fi
exec sleep 3600
"""

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:%d
    insecure-skip-tls-verify: true
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
users:
- name: u
  user: {token: t0ken}
"""


def emu(*args, timeout=60):
    return subprocess.run([binary("dpf-emu", "dpf-emu")] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def netns_list():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True,
                         text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ns_ip(ns, *args):
    return subprocess.run(["ip", "-n", ns, "-j"] + list(args),
                          capture_output=True, text=True)


def links(ns):
    r = ns_ip(ns, "-d", "link", "show")
    assert r.returncode == 0, r.stderr
    return {l["ifname"]: l for l in json.loads(r.stdout)}


def ns_inode(ns):
    return os.stat(f"/run/netns/{ns}").st_ino


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


class Fleet:
    def __init__(self, tmp, hosts=2, dpus=1, kubeconfig=None, extra=()):
        self.tmp = tmp
        self.name = "t%03d" % random.randrange(1000)
        self.octet = free_mgmt_octet(160, 190)
        self.cidr = f"10.{self.octet}.0.0/16"
        self.state = os.path.join(tmp, "state")
        self.dpulet = os.path.join(tmp, "standin-dpulet")
        with open(self.dpulet, "w") as f:
            f.write(STANDIN)
        os.chmod(self.dpulet, 0o755)
        self.kubeconfig = kubeconfig or os.path.join(tmp, "kc")
        if not kubeconfig:
            with open(self.kubeconfig, "w") as f:
                f.write(KUBECONFIG % 1)
        self.log = os.path.join(tmp, "emu.log")
        self.args = ["up", "--state-dir", self.state, "--hosts", str(hosts),
                     "--dpus-per-host", str(dpus), "--fleet", self.name,
                     "--mgmt-cidr", self.cidr, "--dpulet", self.dpulet,
                     "--kubeconfig", self.kubeconfig,
                     "--server", f"https://10.{self.octet}.0.1:6443",
                     "--install-time", "300ms", "--reboot-time", "200ms"] \
            + list(extra)
        self.proc = None
        self.hosts, self.dpus = hosts, dpus

    def up(self):
        self.proc = subprocess.Popen(
            [binary("dpf-emu", "dpf-emu")] + self.args,
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        wait_for(lambda: self.proc.poll() is not None or
                 "fleet up" in self.logtext(), 120, what="fleet up")
        assert self.proc.poll() is None, self.logtext()
        return self

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def host(self, i):
        return f"dpfemu-{self.name}-h{i}"

    def dpu(self, i, j=0):
        return f"dpfemu-{self.name}-h{i}-d{j}"

    def names(self):
        return [n for n in netns_list() if n.startswith(f"dpfemu-{self.name}-")]

    def status(self):
        with open(os.path.join(self.state, "status.json")) as f:
            return json.load(f)

    def argv_lines(self):
        p = os.path.join(self.tmp, "standin-argv.log")
        if not os.path.exists(p):
            return []
        out = []
        with open(p) as f:
            for line in f:
                pid, ns, args = line.rstrip("\n").split("|", 2)
                inode = int(ns.split("[")[1].rstrip("]"))
                out.append((int(pid), inode, args.split()))
        return out

    def recorded_pids(self):
        p = os.path.join(self.state, "fleet.record")
        pids = []
        if os.path.exists(p):
            with open(p) as f:
                pids = [int(l.split()[1]) for l in f if l.startswith("pid ")]
        return pids

    def cleanup(self):
        """Whatever down left (should be nothing): removed by name/PID."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid, _, _ in self.argv_lines():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        for n in self.names():
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        subprocess.run(["ip", "link", "del", f"dpfemu{self.name}"],
                       capture_output=True)


def assert_nothing_left(fl, pids):
    assert fl.names() == [], fl.names()
    assert not os.path.exists(f"/sys/class/net/dpfemu{fl.name}")
    root_links = os.listdir("/sys/class/net")
    assert [l for l in root_links if l.startswith(f"dfe{fl.name}")] == []
    assert [p for p in pids if alive(p)] == []


@pytest.fixture
def fleet(tmp_path):
    fl = Fleet(str(tmp_path)).up()
    try:
        yield fl
        pids = fl.recorded_pids() + [fl.proc.pid]
        r = emu("down", "--state-dir", fl.state)
        assert r.returncode == 0, r.stderr
        assert "fleet down: nothing left" in r.stdout
        fl.proc.wait(30)
        assert fl.proc.returncode == 0, fl.logtext()[-3000:]
        assert_nothing_left(fl, pids)
        # idempotent
        r = emu("down", "--state-dir", fl.state)
        assert r.returncode == 0 and "nothing to take down" in r.stdout
    finally:
        fl.cleanup()


def scan_labels(sysfs):
    """dpf-spec §2.8's scan, written from the spec: device IDs 0xa2dc /
    0xa2d6, functions grouped by domain:bus:dev, PF0's first netdev."""
    devs = os.path.join(sysfs, "bus/pci/devices")
    labels, seen = {}, []
    for fn in sorted(os.listdir(devs)):
        with open(os.path.join(devs, fn, "device")) as f:
            if f.read().strip() not in ("0xa2dc", "0xa2d6"):
                continue
        base = fn.rsplit(".", 1)[0]
        if base in seen:
            continue
        seen.append(base)
        i = len(seen) - 1
        labels[f"dpu-{i}-pci-address"] = base.replace(":", "-")
        labels[f"dpu-{i}-pf0-name"] = os.listdir(
            os.path.join(devs, base + ".0", "net"))[0]
    return labels


def test_up_builds_hosts_dpus_and_networks(fleet):
    h1, h2, d1, d2 = fleet.host(1), fleet.host(2), fleet.dpu(1), fleet.dpu(2)
    assert sorted(fleet.names()) == sorted(
        [h1, h2, d1, d2, f"dpfemu-{fleet.name}-fabric"])

    # host: PF/VF netdevs, br-dpu with the management port
    hl = links(h1)
    for n in ("ens1f0np0", "ens1f1np1", "ens1f0v0", "ens1f0v1", "tmfifo_net0",
              "mgmt0", "br-dpu"):
        assert n in hl, sorted(hl)
    assert hl["br-dpu"]["linkinfo"]["info_kind"] == "bridge"
    assert hl["mgmt0"]["master"] == "br-dpu"
    # dpu-oob-bridge-configured: an IPv4 default route via br-dpu (metric > 2)
    routes = json.loads(ns_ip(h1, "route", "show", "default").stdout)
    assert [(r["dev"], r.get("metric", 0) > 2) for r in routes] == \
        [("br-dpu", True)]
    # DPU: uplinks, OOB, representors, tmfifo
    dl = links(d1)
    for n in ("p0", "p1", "oob_net0", "pf0hpf", "pf1hpf", "pf0vf0", "pf0vf1",
              "tmfifo_net0"):
        assert n in dl, sorted(dl)
        assert dl[n]["linkinfo"]["info_kind"] == "veth"
    # the pairs: host PF0 <-> pf0hpf, VF1 <-> pf0vf1 carry traffic
    for host_if, dpu_if, net in (("ens1f0np0", "pf0hpf", "169.254.10"),
                                 ("ens1f0v1", "pf0vf1", "169.254.11")):
        subprocess.run(["ip", "-n", h1, "addr", "add", f"{net}.1/24", "dev",
                        host_if], check=True)
        subprocess.run(["ip", "-n", d1, "addr", "add", f"{net}.2/24", "dev",
                        dpu_if], check=True)
        r = subprocess.run(["ip", "netns", "exec", h1, "ping", "-c1", "-W2",
                            f"{net}.2"], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    # p0 of two DPUs meet on the fabric bridge
    subprocess.run(["ip", "-n", d1, "addr", "add", "169.254.20.1/24", "dev",
                    "p0"], check=True)
    subprocess.run(["ip", "-n", d2, "addr", "add", "169.254.20.2/24", "dev",
                    "p0"], check=True)
    r = subprocess.run(["ip", "netns", "exec", d1, "ping", "-c1", "-W2",
                        "169.254.20.2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout

    # management network: host <-> root bridge <-> DPU OOB
    o = fleet.octet
    for ns, dst in ((h1, f"10.{o}.0.1"), (h1, f"10.{o}.2.10"),
                    (d2, f"10.{o}.1.1"), (d1, f"10.{o}.0.1")):
        r = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W2",
                            dst], capture_output=True, text=True)
        assert r.returncode == 0, f"{ns} -> {dst}: {r.stdout}"
    r = subprocess.run(["ping", "-c1", "-W2", f"10.{o}.1.10"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout

    # the host's sysfs tree scans to DPF's detection labels
    st = fleet.status()
    sysfs = st["hosts"][0]["sysfs"]
    assert scan_labels(sysfs) == {"dpu-0-pci-address": "0000-4b-00",
                                  "dpu-0-pf0-name": "ens1f0np0"}
    dev = os.path.join(sysfs, "bus/pci/devices/0000:4b:00.0")
    assert open(os.path.join(dev, "vendor")).read().strip() == "0x15b3"
    assert open(os.path.join(dev, "sriov_numvfs")).read().strip() == "2"

    # a host dpulet per host, in its namespace, with the contract's flags
    runs = [(pid, ino, a) for pid, ino, a in fleet.argv_lines()
            if a[0] != "join"]
    by_ns = {ino: a for _, ino, a in runs}
    a = by_ns[ns_inode(h1)]
    flags = dict(zip(a[::2], a[1::2]))
    assert flags["--node-name"] == h1
    assert flags["--node-ip"] == f"10.{o}.1.1"
    assert flags["--sysfs-root"] == sysfs
    with open(flags["--kubeconfig"]) as f:
        kc = f.read()
    assert f"server: https://10.{o}.0.1:6443" in kc
    assert "tls-server-name: 127.0.0.1" in kc
    assert ns_inode(h2) in by_ns
    # status shows both hosts
    r = emu("status", "--state-dir", fleet.state)
    assert r.returncode == 0, r.stderr
    assert "emulator: running" in r.stdout and f"host {h2}" in r.stdout


BFCFG = """UPDATE_DPU_OS=yes
WITH_NIC_FW_UPDATE=yes

bfb_modify_os()
{
  mkdir -p /mnt/opt/dpf
  cat << 'EOF' > /mnt/var/lib/cloud/seed/nocloud-net/user-data
#cloud-config
users:
  - name: ubuntu
write_files:
  - path: /etc/netplan/99-dpf-comm-ch.yaml
    permissions: '0600'
    content: |
      network:
        bridges:
          br-comm-ch:
            dhcp4: yes
            interfaces: [pf0vf0]
  - path: /etc/dpf/flavor.conf
    encoding: b64
    content: %s
  - path: /opt/dpf/join_k8s_cluster.sh
    permissions: '0755'
    content: |
      #!/bin/bash
      if [ -f /opt/dpf/joined_cluster_successfully ]; then exit 0; fi
      while true; do
        if kubeadm join 10.%d.0.1:7443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:%s --v=5; then
          touch /opt/dpf/joined_cluster_successfully; break
        fi
        sleep 5
      done
runcmd:
  - [ hostnamectl, set-hostname, dpu-node-a ]
  - systemctl enable kubeadm-join.service
EOF
}
"""

HASH = "ab" * 32


def build_bfb(tmp, version="4.9.1-emu"):
    kernel = os.path.join(tmp, "Image")
    with open(kernel, "wb") as f:
        f.write(bytes(range(256)) * 300)
    out = os.path.join(tmp, "os.bfb")
    r = subprocess.run([binary("dpfctl", "dpfctl"), "bfb", "build",
                        "--kernel", kernel, "--bfb-version", version, out],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as f:
        return f.read()


def push(rshim_dir, data):
    with open(os.path.join(rshim_dir, "boot"), "wb") as f:
        f.write(data)


def dpu_status(fleet, i=0, j=0):
    return fleet.status()["hosts"][i]["dpus"][j]


def test_bfb_install_applies_bfcfg_and_boots(fleet, tmp_path):
    o = fleet.octet
    flavor = b"MTU=9000\n"
    cfg = BFCFG % (base64.b64encode(flavor).decode(), o, HASH)
    bfb = build_bfb(str(tmp_path))
    d = dpu_status(fleet)
    push(d["rshim"], bfb + cfg.encode())

    def joined_and_running():
        st = dpu_status(fleet)
        return st["state"] == "running" and st["dpuletPid"] > 0
    wait_for(joined_and_running, 60, what="DPU running its dpulet")
    d = dpu_status(fleet)
    disk = d["disk"]
    # write_files under the disk directory, with modes and decoding
    netplan = os.path.join(disk, "etc/netplan/99-dpf-comm-ch.yaml")
    assert "br-comm-ch" in open(netplan).read()
    assert os.stat(netplan).st_mode & 0o777 == 0o600
    assert open(os.path.join(disk, "etc/dpf/flavor.conf"), "rb").read() == \
        flavor
    assert os.stat(os.path.join(disk, "opt/dpf/join_k8s_cluster.sh")
                   ).st_mode & 0o777 == 0o755
    assert open(os.path.join(disk, "etc/hostname")).read() == "dpu-node-a\n"
    assert d["hostname"] == "dpu-node-a"

    # dpulet join with the join line's arguments, then dpulet, both in the
    # DPU's namespace
    dns = ns_inode(fleet.dpu(1))

    def mine_lines():
        return [(pid, a) for pid, ino, a in fleet.argv_lines() if ino == dns]
    # the stand-in writes its line a moment after it was started
    wait_for(lambda: len(mine_lines()) >= 2, 20, what="join and dpulet")
    mine = mine_lines()
    assert len(mine) == 2, mine
    join, run = mine[0][1], mine[1][1]
    kc = os.path.join(disk, "etc/kubernetes/kubelet.conf")
    assert join == ["join", f"10.{o}.0.1:7443", "--token",
                    "abcdef.0123456789abcdef",
                    "--discovery-token-ca-cert-hash", f"sha256:{HASH}",
                    "--node-name", "dpu-node-a", "--kubeconfig", kc]
    flags = dict(zip(run[::2], run[1::2]))
    assert flags == {"--kubeconfig": kc, "--node-name": "dpu-node-a",
                     "--node-ip": f"10.{o}.1.10",
                     "--root-dir": os.path.join(disk, "var/lib/dpulet")}
    assert alive(mine[1][0])
    # the token never reaches the log
    assert "0123456789abcdef" not in fleet.logtext()

    # SW_RESET: the DPU goes down (its dpulet stops) and comes back up
    # with the kubeconfig it has (no second join)
    first = mine[1][0]
    with open(os.path.join(d["rshim"], "misc"), "w") as f:
        f.write("SW_RESET 1\n")
    wait_for(lambda: not alive(first), 20, what="dpulet stopped by reset")
    wait_for(lambda: len([1 for _, ino, _ in fleet.argv_lines()
                          if ino == dns]) == 3, 30, what="dpulet restarted")
    last = [a for _, ino, a in fleet.argv_lines() if ino == dns][-1]
    assert last[0] == "--kubeconfig"
    wait_for(joined_and_running, 30, what="running after reset")

    # a dpulet that dies is started again
    pid = dpu_status(fleet)["dpuletPid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: dpu_status(fleet)["dpuletPid"] not in (0, pid), 30,
             what="dpulet restarted after a crash")


def test_corrupt_bfb_rejected(fleet, tmp_path):
    bfb = bytearray(build_bfb(str(tmp_path)))
    bfb[200] ^= 0xFF  # inside the first image: its CRC fails
    d = dpu_status(fleet, 1)
    push(d["rshim"], bytes(bfb) + b"bfb_modify_os() { :; }\n")
    state = os.path.join(d["rshim"], "emu-state.json")
    wait_for(lambda: json.load(open(state)).get("refusedSessions") == 1, 30,
             what="refused push")
    st = json.load(open(state))
    assert "CRC" in st["lastError"] or "crc" in st["lastError"].lower(), st
    with open(os.path.join(d["rshim"], "misc"), "w") as f:
        f.write("DISPLAY_LEVEL 2\n")
    wait_for(lambda: " ERR[" in open(os.path.join(d["rshim"], "misc")).read(),
             10, what="ERR line in misc")
    time.sleep(1)  # install+reboot time of a good push, with headroom
    assert dpu_status(fleet, 1)["state"] != "running"
    dns = ns_inode(fleet.dpu(2))
    assert [a for _, ino, a in fleet.argv_lines() if ino == dns] == []


def test_host_nodes_annotated(tmp_path, dpf_server):
    fl = Fleet(str(tmp_path), hosts=1, kubeconfig=dpf_server.kubeconfig)
    try:
        fl.up()
        # dpf-emu makes the host's Node, annotated, before it starts the
        # host's dpulet (a stand-in here), which then adopts it: the DMS
        # pod of a DPU never sees the host without its device paths

        def annotated():
            code, n = dpf_server.json("GET", f"/api/v1/nodes/{fl.host(1)}",
                                      expect=None)
            return code == 200 and n["metadata"].get("annotations")
        ann = wait_for(annotated, 30, what="host Node annotations")
        st = fl.status()["hosts"][0]
        assert ann == {"dpu.emu/sysfs": st["sysfs"],
                       "dpu.emu/rshim-0": st["dpus"][0]["rshim"],
                       # emulated hosts have no power control
                       "provisioning.dpu.nvidia.com/reboot-command": "skip"}
        assert os.path.exists(os.path.join(ann["dpu.emu/rshim-0"], "boot"))
    finally:
        pids = fl.recorded_pids()
        r = emu("down", "--state-dir", fl.state)
        fl.cleanup()
    assert r.returncode == 0, r.stderr
    assert_nothing_left(fl, pids)


def test_down_after_crash_removes_everything(tmp_path):
    fl = Fleet(str(tmp_path), hosts=1)
    # with --kubeconfig a host's agent waits for its Node to be annotated,
    # and this fleet has no API server: a bootstrap kubeconfig starts the
    # agents at once, so there are processes for down to kill
    fl.args[fl.args.index("--kubeconfig")] = "--bootstrap-kubeconfig"
    try:
        fl.up()
        pids = fl.recorded_pids()
        assert pids and all(alive(p) for p in pids)
        fl.proc.kill()  # dpf-emu crashes: nothing cleaned by it
        fl.proc.wait()
        assert fl.names() != []
        r = emu("down", "--state-dir", fl.state)
        assert r.returncode == 0, r.stderr
        assert f"deleted netns {fl.host(1)}" in r.stdout
        assert_nothing_left(fl, pids)
    finally:
        fl.cleanup()


def test_up_errors(tmp_path):
    fl = Fleet(str(tmp_path), hosts=1)
    # a missing dpulet
    args = list(fl.args)
    args[args.index("--dpulet") + 1] = "/nonexistent/dpulet"
    r = emu(*args)
    assert r.returncode == 1
    assert "/nonexistent/dpulet" in r.stderr and "--dpulet" in r.stderr
    # not root
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--clear-groups", binary("dpf-emu", "dpf-emu")]
                       + fl.args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "must run as root" in r.stderr, r.stderr
    # a clash with a fleet of the same name
    try:
        fl.up()
        other = list(fl.args)
        other[other.index("--state-dir") + 1] = str(tmp_path / "other")
        r = emu(*other)
        assert r.returncode == 1
        assert f"dpfemu{fl.name}" in r.stderr and "already exists" in r.stderr
        assert fl.proc.poll() is None and fl.host(1) in fl.names()
        # and a second up on the same state dir
        r = emu(*fl.args)
        assert r.returncode == 1 and "dpf-emu down" in r.stderr
        # a fleet of another name on the same management network: its
        # hosts could not reach their gateway, so it is refused
        other[other.index("--fleet") + 1] = "x" + fl.name[1:]
        r = emu(*other)
        assert r.returncode == 1, r.stderr
        assert f"--mgmt-cidr {fl.cidr} overlaps the route to {fl.cidr} " \
            f"on dpfemu{fl.name}" in r.stderr, r.stderr
        assert not os.path.exists(f"/sys/class/net/dpfemux{fl.name[1:]}")
    finally:
        pids = fl.recorded_pids()
        r = emu("down", "--state-dir", fl.state)
        fl.cleanup()
    assert r.returncode == 0, r.stderr
    assert_nothing_left(fl, pids)


def test_help():
    r = emu("--help")
    assert r.returncode == 0 and "up " in r.stdout and "down" in r.stdout
    r = emu("up", "--help")
    assert r.returncode == 0
    for flag in ("--hosts", "--dpus-per-host", "--state-dir", "--server",
                 "--kubeconfig", "--install-time", "--reboot-time",
                 "--dpulet", "--mgmt-cidr"):
        assert flag in r.stdout
