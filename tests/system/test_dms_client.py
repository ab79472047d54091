"""The DPU controller's DMS client (controllers/dms-client.c) against a
real dmsd over mutual TLS pushing into dpf-rshim-emu: DPF's whole install
sequence (dpf-spec §2.7.2) through tests/system/dms-client-check, and what
the controller sees when things go wrong (wrong CA, cancellation because
the DPU is deleted mid-install, dmsd killed mid-transfer)."""
import os
import subprocess
import time

import pytest

from bfb_util import sample_bfb
from conftest import binary
from dmsd_util import Dmsd, make_pki
from rshim_util import RshimEmu

CFG = (b"UPDATE_DPU_OS=yes\nbfb_modify_os() {\n"
       b"  echo 'kubeadm join 10.0.0.1:6443 --token a.b'\n}\n")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def env(tmp_path, pki):
    emu = RshimEmu(str(tmp_path), install="300ms", reboot="200ms")
    d = Dmsd(str(tmp_path), pki, emu.dir)
    try:
        yield d, emu
    finally:
        rc = d.stop() if d.proc.poll() is None else 0
        emu_rc = emu.stop()
    assert rc == 0, d.logtext()[-3000:]
    assert emu_rc == 0, emu.logtext()[-3000:]


def check(d, pki, *args, ca="ca", who="client", timeout=120, popen=False):
    cmd = [binary("tests", "system", "dms-client-check"),
           f"127.0.0.1:{d.port}", os.path.join(pki, f"{ca}.crt"),
           os.path.join(pki, f"{who}.crt"), os.path.join(pki, f"{who}.key"),
           "dpu1"] + [str(a) for a in args]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout)


def big_bfb(path, kernel_size):
    data = sample_bfb(version="4.9.1-13542", kernel_size=kernel_size)
    with open(path, "wb") as f:
        f.write(data)
    return data


def test_dpf_install_sequence(env, pki, tmp_path):
    d, emu = env
    bfb = big_bfb(tmp_path / "bf-bundle.bfb", 3 * 1024 * 1024 + 11)
    cfg = tmp_path / "dpu1.cfg.src"
    cfg.write_bytes(CFG)
    r = check(d, pki, "sequence", tmp_path / "bf-bundle.bfb",
              "bf-bundle-4.9.1.bfb", cfg)
    assert r.returncode == 0, r.stdout + r.stderr + d.logtext()[-2000:]
    out = r.stdout.splitlines()
    assert "mode DPU" in out
    # progress is monotonic and ends at the whole file, for both installs
    prog = [tuple(map(int, ln.split()[1:])) for ln in out
            if ln.startswith("progress ")]
    bfb_prog = [p for p in prog if p[1] == len(bfb)]
    assert len(bfb_prog) >= 4, out
    assert [p[0] for p in bfb_prog] == sorted(p[0] for p in bfb_prog)
    assert bfb_prog[-1] == (len(bfb), len(bfb))
    assert (len(CFG), len(CFG)) in prog
    assert "bfb installed already=0" in out
    assert "cfg installed already=0" in out
    assert "activated bf-bundle-4.9.1.bfb;dpu1.cfg" in out
    assert any(ln.startswith("ok reboot active=0 status=SUCCESS")
               for ln in out), out
    # the emulated device booted the BFB with the bf.cfg
    st = emu.state_json()
    assert st["installed"]["version"] == "4.9.1-13542"
    assert st["installed"]["bfcfg"] == CFG.decode()
    assert st["installed"]["bfbBytes"] == len(bfb)
    assert open(os.path.join(d.images, "dpu1.cfg"), "rb").read() == CFG
    # a second run: DMS has the BFB, nothing is sent again
    r = check(d, pki, "install", tmp_path / "bf-bundle.bfb",
              "bf-bundle-4.9.1.bfb")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok installed already=1" in r.stdout
    # gNMI Get of a path DMS does not serve: NotFound naming the DPU
    r = check(d, pki, "get", "/nvidia/nothing/here")
    assert r.returncode == 1
    assert "rc=ENOENT" in r.stdout and "DPU dpf-provisioning/dpu1" in \
        r.stdout, r.stdout


def test_wrong_ca_refused_with_a_clear_message(env, pki, tmp_path):
    d, emu = env
    # our CA does not know the server's certificate
    r = check(d, pki, "get", "/nvidia/mode/config/mode", ca="otherca",
              timeout=60)
    assert r.returncode == 1, r.stdout
    line = r.stdout.strip().splitlines()[-1]
    assert "rc=EACCES retriable=0" in line, line
    assert "DPU dpf-provisioning/dpu1 on host host-1" in line, line
    assert f"DMS at 127.0.0.1:{d.port}" in line, line
    assert "TLS handshake failed" in line and "server-secret" in line, line
    # a client certificate from another CA: dmsd refuses it
    r = check(d, pki, "get", "/nvidia/mode/config/mode", who="foreign",
              timeout=60)
    assert r.returncode == 1, r.stdout
    line = r.stdout.strip().splitlines()[-1]
    assert "rc=EACCES retriable=0" in line, line
    assert "dpf-provisioning-client-secret" in line, line
    # a server name the certificate does not carry
    r = check(d, pki, "get", "/nvidia/mode/config/mode",
              "--server-name", "10.9.9.9", timeout=60)
    assert r.returncode == 1 and "rc=EACCES" in r.stdout, r.stdout
    # and the right CA works
    r = check(d, pki, "get", "/nvidia/mode/config/mode")
    assert r.returncode == 0 and r.stdout.startswith("ok value "), r.stdout


def test_cancel_mid_install_returns_quickly(env, pki, tmp_path):
    d, emu = env
    path = tmp_path / "big.bfb"
    bfb = big_bfb(path, 8 * 1024 * 1024)
    r = check(d, pki, "install", path, "big.bfb", "--cancel-at",
              1024 * 1024)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout.splitlines()
    assert "rc=ECANCELED retriable=0" in out[-1], out
    assert "cancelled" in out[-1] and "dpu1" in out[-1]
    ms = int([ln for ln in out if ln.startswith("cancel-return-ms")][0]
             .split()[1])
    assert ms < 2000, out  # the flag is polled every 100 ms
    # nothing half-written stays, and dmsd serves the next install
    def leftovers():
        return [f for f in os.listdir(d.images) if "big.bfb" in f]
    deadline = time.time() + 10
    while leftovers() and time.time() < deadline:
        time.sleep(0.05)
    assert leftovers() == []
    r = check(d, pki, "install", path, "big.bfb")
    assert r.returncode == 0, r.stdout + r.stderr + d.logtext()[-2000:]
    assert "ok installed already=0" in r.stdout
    assert os.path.getsize(os.path.join(d.images, "big.bfb")) == len(bfb)


def test_dmsd_killed_mid_transfer_is_retriable(env, pki, tmp_path):
    d, emu = env
    path = tmp_path / "big.bfb"
    big_bfb(path, 6 * 1024 * 1024)
    resume = tmp_path / "resume"
    p = check(d, pki, "install", path, "big.bfb", "--pause-at",
              2 * 1024 * 1024, "--resume-file", resume, popen=True)
    try:
        deadline = time.time() + 60
        lines = []
        while "paused" not in lines:
            ln = p.stdout.readline()
            assert ln or p.poll() is None, "".join(lines) + p.stderr.read()
            lines.append(ln.strip())
            assert time.time() < deadline
        d.kill()  # SIGKILL in the middle of the transfer
        resume.write_text("go")
        out, errs = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1, out + errs
    last = out.strip().splitlines()[-1]
    assert "rc=EAGAIN retriable=1" in last, last
    assert "DMS is unreachable or the connection broke" in last, last
    assert "OS.Install of big.bfb" in last, last
    # dmsd back: the same install works from the start
    d.start()
    r = check(d, pki, "install", path, "big.bfb")
    assert r.returncode == 0, r.stdout + r.stderr + d.logtext()[-2000:]
    assert "ok installed already=0" in r.stdout


def test_two_dmsds_share_an_image_folder(tmp_path, pki):
    """Two DPUs on a host (or emulated hosts on one disk): their dmsds use
    one image folder and may take the same BFB at the same moment."""
    shared = str(tmp_path / "bfb")
    os.makedirs(shared)
    procs = []
    started = []
    try:
        for i in range(2):
            w = tmp_path / f"dpu{i}"
            w.mkdir()
            emu = RshimEmu(str(w))
            d = Dmsd(str(w), pki, emu.dir, images=shared,
                     extra=["-state_dir", str(w / "state")])
            started.append((d, emu))
        path = tmp_path / "same.bfb"
        bfb = big_bfb(path, 4 * 1024 * 1024)
        for d, _ in started:
            procs.append(check(d, pki, "install", path, "same.bfb",
                               "--chunk", 16 * 1024, popen=True))
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, out + err
            assert "ok installed" in out
        with open(os.path.join(shared, "same.bfb"), "rb") as f:
            assert f.read() == bfb
        assert [f for f in os.listdir(shared) if "partial" in f] == []
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for d, emu in started:
            assert d.stop() == 0, d.logtext()[-2000:]
            assert emu.stop() == 0
