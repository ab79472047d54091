"""dmsd --targets -: many DMS endpoints in one process (dpf-emu's fast
mode). Three targets on 127.0.0.2-4, each with its own CA, server and
client certificates and its own emulated rshim device; DPF's install
sequence through two of them at once; remove, re-add, bad lines, EOF and
SIGTERM. The client is the DPU controller's (tests/system/dms-client-check),
as in test_dms_client.py."""
import os
import resource
import socket
import subprocess
import time

import pytest

from bfb_util import sample_bfb
from conftest import binary, free_port
from dmsd_util import DmsdTargets, make_ca, make_cert
from rshim_util import RshimEmu

CFG = b"UPDATE_DPU_OS=yes\n"


class Target:
    """One DPU: its certificates (own CA), rshim emulator, folders."""

    def __init__(self, root, i):
        self.id = f"dpf-provisioning.dpu{i}"
        self.ip = f"127.0.0.{2 + i}"
        self.port = free_port()
        self.dir = os.path.join(root, f"dpu{i}")
        os.makedirs(self.dir)
        self.pki = os.path.join(self.dir, "pki")
        os.makedirs(self.pki)
        make_ca(self.pki, "ca")
        make_cert(self.pki, "ca", "server", f"dpu{i}-dms", server=True,
                  ip=self.ip)
        make_cert(self.pki, "ca", "client", "dpf-provisioning-client")
        self.images = os.path.join(self.dir, "bfb")
        self.emu = RshimEmu(self.dir, install="300ms", reboot="200ms")

    def pem(self, name):
        with open(os.path.join(self.pki, name)) as f:
            return f.read()

    def add(self):
        return {"op": "add", "id": self.id,
                "bind_address": f"{self.ip}:{self.port}",
                "ca_pem": self.pem("ca.crt"),
                "cert_pem": self.pem("server.crt"),
                "key_pem": self.pem("server.key"),
                "rshim": self.emu.dir, "target_pci": "4b:00",
                "image_folder": self.images,
                "state_dir": os.path.join(self.dir, "state")}

    def check(self, *args, client=None, popen=False, timeout=120):
        """dms-client-check against this target, with this target's CA and
        the client certificate of client (default: this target)."""
        client = client or self
        cmd = [binary("tests", "system", "dms-client-check"),
               f"{self.ip}:{self.port}", os.path.join(self.pki, "ca.crt"),
               os.path.join(client.pki, "client.crt"),
               os.path.join(client.pki, "client.key"),
               "dpu1"] + [str(a) for a in args]
        if popen:
            return subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout)

    def get_mode(self, **kw):
        return self.check("get", "/nvidia/mode/config/mode", **kw)

    def refuses(self):
        try:
            socket.create_connection((self.ip, self.port), timeout=5).close()
        except ConnectionRefusedError:
            return True
        return False


@pytest.fixture
def fleet(tmp_path):
    targets = []
    d = None
    try:
        for i in range(3):
            targets.append(Target(str(tmp_path), i))
        d = DmsdTargets(str(tmp_path))
        yield d, targets
    finally:
        if d:
            d.stop()
        for t in targets:
            assert t.emu.stop() == 0, t.emu.logtext()[-2000:]


def test_three_targets_install_remove_readd(fleet, tmp_path):
    d, (t0, t1, t2) = fleet
    for t in (t0, t1, t2):
        r = d.request(t.add())
        assert r == {"id": t.id, "ok": True, "port": t.port}, r
    for t in (t0, t1, t2):
        r = t.get_mode()
        assert r.returncode == 0 and r.stdout.startswith("ok value "), \
            r.stdout + r.stderr
    # each target has its own certificates: t0's client is a stranger to
    # t1 (another CA)
    r = t1.get_mode(client=t0, timeout=60)
    assert r.returncode == 1 and "rc=EACCES" in r.stdout, r.stdout

    # DPF's install sequence through t0 and t1 at the same time, each with
    # a BFB of its own version; each lands on its own rshim device
    procs = []
    bfbs = {}
    for t, version in ((t0, "4.9.1-100"), (t1, "4.9.2-200")):
        path = tmp_path / f"{t.id}.bfb"
        bfbs[t.id] = sample_bfb(version=version,
                                kernel_size=2 * 1024 * 1024 + 7)
        path.write_bytes(bfbs[t.id])
        cfg = tmp_path / f"{t.id}.cfg"
        cfg.write_bytes(CFG)
        procs.append((t, version, t.check("sequence", path,
                                          f"bf-bundle-{version}.bfb", cfg,
                                          popen=True)))
    for t, version, p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, out + err + d.logtext()[-3000:]
        assert "activated" in out and "status=SUCCESS" in out, out
        st = t.emu.state_json()
        assert st["installed"]["version"] == version, st
        assert st["installed"]["bfbBytes"] == len(bfbs[t.id]), st
        assert st["installed"]["bfcfg"] == CFG.decode(), st
        with open(os.path.join(t.images, f"bf-bundle-{version}.bfb"),
                  "rb") as f:
            assert f.read() == bfbs[t.id]
    # the third device saw nothing
    assert t2.emu.state_json()["bootSessions"] == 0
    assert not os.path.exists(os.path.join(t2.images,
                                           "bf-bundle-4.9.1-100.bfb"))

    # remove t1: its port refuses, the others still answer
    assert d.request({"op": "remove", "id": t1.id}) == \
        {"id": t1.id, "ok": True}
    assert t1.refuses()
    for t in (t0, t2):
        r = t.get_mode()
        assert r.returncode == 0, r.stdout + r.stderr
    r = d.request({"op": "remove", "id": t1.id})
    assert r["ok"] is False and r["id"] == t1.id
    assert "no target" in r["error"] and t1.id in r["error"], r

    # re-add it: same port, and its image folder still has the BFB
    assert d.request(t1.add()) == {"id": t1.id, "ok": True, "port": t1.port}
    r = t1.check("install", tmp_path / f"{t1.id}.bfb",
                 "bf-bundle-4.9.2-200.bfb")
    assert r.returncode == 0 and "ok installed already=1" in r.stdout, \
        r.stdout + r.stderr
    # an add of an id present replaces it
    assert d.request(t2.add()) == {"id": t2.id, "ok": True, "port": t2.port}
    assert t2.get_mode().returncode == 0

    # a port already served by another target: refused, naming it
    dup = dict(t0.add(), id="dpf-provisioning.dup",
               bind_address=f"{t2.ip}:{t2.port}")
    r = d.request(dup)
    assert r == {"id": "dpf-provisioning.dup", "ok": False,
                 "error": f"bind {t2.ip}:{t2.port}: Address already in use"}

    # bad lines get an error naming the line and the field; the process
    # goes on
    lines_before = d.lines
    assert lines_before == 8
    r = d.request("{not json")
    assert r["ok"] is False and "id" not in r
    assert r["error"].startswith(f"line {lines_before + 1}: not JSON"), r
    bad = t0.add()
    del bad["rshim"]
    r = d.request(bad)
    assert r == {"id": t0.id, "ok": False,
                 "error": f"line {lines_before + 2}: field \"rshim\": "
                          "required for op \"add\""}
    r = d.request({"op": "add", "id": "x", "auth": "none"})
    assert r["error"] == f"line {lines_before + 3}: field \"auth\": not " \
        "known for op \"add\"", r
    r = d.request({"op": "stop", "id": "x"})
    assert "field \"op\"" in r["error"], r
    r = d.request("x" * (70 * 1024))
    assert r == {"ok": False,
                 "error": f"line {lines_before + 5}: longer than 65536 "
                          "bytes"}
    # t0 was not touched by its bad lines
    assert t0.get_mode().returncode == 0

    # EOF: every target stops, exit 0
    assert d.close() == 0, d.logtext()[-3000:]
    for t in (t0, t1, t2):
        assert t.refuses()


def test_sigterm_exits_0(tmp_path):
    t = Target(str(tmp_path), 0)
    d = DmsdTargets(str(tmp_path))
    try:
        assert d.request(t.add())["ok"] is True
        assert t.get_mode().returncode == 0
    finally:
        rc = d.stop()
        assert t.emu.stop() == 0
    assert rc == 0, d.logtext()[-3000:]
    assert t.refuses()


def test_single_target_flags_refused(tmp_path):
    r = subprocess.run([binary("dmsd", "dmsd"), "--targets", "-",
                        "-bind_address", f"127.0.0.1:{free_port()}"],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    assert "-bind_address is not allowed with it" in r.stderr, r.stderr
    r = subprocess.run([binary("dmsd", "dmsd"), "--targets", "file.json"],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert "only - (stdin)" in r.stderr, r.stderr


def test_remove_cancels_a_call_in_flight(fleet, tmp_path):
    d, (t0, t1, _) = fleet
    for t in (t0, t1):
        assert d.request(t.add())["ok"] is True
    path = tmp_path / "big.bfb"
    path.write_bytes(sample_bfb(version="4.9.3-1",
                                kernel_size=6 * 1024 * 1024))
    resume = tmp_path / "resume"
    p = t0.check("install", path, "big.bfb", "--pause-at", 2 * 1024 * 1024,
                 "--resume-file", resume, popen=True)
    try:
        deadline = time.time() + 60
        lines = []
        while "paused" not in lines:
            ln = p.stdout.readline()
            assert ln or p.poll() is None, "".join(lines) + p.stderr.read()
            lines.append(ln.strip())
            assert time.time() < deadline
        # the Install is in flight on t0: remove waits for nothing of it
        t = time.monotonic()
        assert d.request({"op": "remove", "id": t0.id}, timeout=60) == \
            {"id": t0.id, "ok": True}
        took = time.monotonic() - t
        resume.write_text("go")
        out, errs = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert took < 30, took
    assert p.returncode == 1, out + errs
    assert "rc=E" in out.strip().splitlines()[-1], out
    assert t0.refuses()
    # nothing of the cancelled transfer is left in the image folder
    assert [f for f in os.listdir(t0.images) if f != ".dmsd"] == [], \
        os.listdir(t0.images)
    assert t1.get_mode().returncode == 0
    assert d.close() == 0, d.logtext()[-3000:]


def test_open_file_limit_raised(tmp_path):
    """Each target holds a listening socket: dmsd raises its soft limit
    on open files to the hard one, so 100 targets fit under a soft limit
    of 64."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard < 256:
        pytest.fail(f"hard open-file limit {hard}: too low for this test")
    pem_dir = tmp_path / "pki"
    pem_dir.mkdir()
    make_ca(str(pem_dir), "ca")
    make_cert(str(pem_dir), "ca", "server", "dms", server=True)
    pem = {n: (pem_dir / n).read_text()
           for n in ("ca.crt", "server.crt", "server.key")}

    def low():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

    d = DmsdTargets(str(tmp_path), preexec_fn=low)
    try:
        for i in range(100):
            w = tmp_path / f"t{i}"
            r = d.request({"op": "add", "id": f"t{i}",
                           "bind_address": "127.0.0.1:0",
                           "ca_pem": pem["ca.crt"],
                           "cert_pem": pem["server.crt"],
                           "key_pem": pem["server.key"],
                           "rshim": str(w / "rshim"),
                           "image_folder": str(w / "bfb")})
            assert r["ok"] is True, r
        with open(f"/proc/{d.proc.pid}/limits") as f:
            soft = [ln for ln in f if ln.startswith("Max open files")][0]
        assert soft.split()[3] == str(hard), soft
        assert len(os.listdir(f"/proc/{d.proc.pid}/fd")) > 100
        assert "raised the open-file limit" in d.logtext()
    finally:
        rc = d.close()
    assert rc == 0, d.logtext()[-3000:]
