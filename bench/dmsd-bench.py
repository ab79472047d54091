#!/usr/bin/env python3
"""dmsd throughput, CPU and memory (docs/benchmarks.md, "DMS").

Builds a BFB of SIZE MiB, at least 17 (random kernel and initramfs,
dpfctl bfb build), starts a release dpf-rshim-emu (install and reboot
0 s) and dmsd with mutual TLS on loopback, then measures:
  1. OS.Install of the BFB from the Python gRPC client (Debian's grpcio,
     64 KiB chunks): MB/s, dmsd CPU seconds per GB, dmsd RSS idle/peak;
     then the same from bench/dmsd-install-client (gRPC core, C), which
     does not spend a core of its own per message as Python does;
  2. OS.Activate into the emulated boot FIFO until RebootStatus is done,
     against `cat bfb > boot` on the same device in the same run.

usage: bench/dmsd-bench.py [BUILD_DIR] [SIZE_MIB] [IMAGE_FOLDER_PARENT]

IMAGE_FOLDER_PARENT (e.g. /dev/shm) puts dmsd's image folder there: on a
tmpfs the Install figures are dmsd's own, not the disk's (an Install
ends with fsync(), and a disk that writes 200 MB/s caps it at that).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
try:
    SIZE = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
except ValueError:
    SIZE = -1
if SIZE < 17:
    # the BFB is a 16 MiB kernel plus an initramfs of the rest
    sys.exit("dmsd-bench: SIZE_MIB must be a whole number of at least 17, "
             f"not {sys.argv[2]!r}")
IMAGES_PARENT = sys.argv[3] if len(sys.argv) > 3 else None
os.environ["DPF_BUILD"] = BUILD
sys.path.insert(0, os.path.join(REPO, "tests", "system"))

import grpc  # noqa: E402
from dmsd_util import Dmsd, gen_client, make_pki  # noqa: E402
from rshim_util import RshimEmu  # noqa: E402

from benchutil import cpu_seconds, proc_kb  # noqa: E402

CHUNK = 64 * 1024


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, False

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, proc_kb(self.pid, "VmRSS"))
            time.sleep(0.05)


def main():
    work = tempfile.mkdtemp(prefix="dmsd-bench-")
    procs, cleanup = [], []
    try:
        os.makedirs(os.path.join(work, "pki"))
        pki = make_pki(os.path.join(work, "pki"))
        os.makedirs(os.path.join(work, "py"))
        pb = gen_client(os.path.join(work, "py"))
        kernel = os.path.join(work, "Image")
        initrd = os.path.join(work, "initramfs")
        subprocess.run(["head", "-c", str(16 << 20), "/dev/urandom"],
                       stdout=open(kernel, "wb"), check=True)
        subprocess.run(["head", "-c", str((SIZE - 16) << 20),
                        "/dev/urandom"], stdout=open(initrd, "wb"),
                       check=True)
        bfb = os.path.join(work, "os.bfb")
        subprocess.run([os.path.join(BUILD, "dpfctl", "dpfctl"), "bfb",
                        "build", "--kernel", kernel, "--initramfs", initrd,
                        "--bfb-version", "bench-1", bfb], check=True,
                       capture_output=True)
        os.unlink(kernel)
        os.unlink(initrd)
        size = os.path.getsize(bfb)
        emu = RshimEmu(work, install="0s", reboot="0s")
        images = None
        if IMAGES_PARENT:
            images = tempfile.mkdtemp(prefix="dmsd-bench-", dir=IMAGES_PARENT)
            cleanup.append(images)
        d = Dmsd(work, pki, emu.dir, images=images, start=False)
        if os.environ.get("BENCH_DMSD"):  # another dmsd binary, to compare
            d.args[0] = os.environ["BENCH_DMSD"]
        d.start()
        procs.extend([d, emu])
        print(f"image folder {d.images}")
        time.sleep(1)
        idle = proc_kb(d.proc.pid, "VmRSS")
        rd = lambda n: open(os.path.join(pki, n), "rb").read()  # noqa
        creds = grpc.ssl_channel_credentials(rd("ca.crt"), rd("client.key"),
                                             rd("client.crt"))
        ch = grpc.secure_channel(f"127.0.0.1:{d.port}", creds)
        o = pb["gnoi_os_pb2"]

        def reqs():
            yield o.InstallRequest(transfer_request=o.TransferRequest(
                version="os.bfb", package_size=size))
            with open(bfb, "rb") as f:
                while True:
                    b = f.read(CHUNK)
                    if not b:
                        break
                    yield o.InstallRequest(transfer_content=b)
            yield o.InstallRequest(transfer_end=o.TransferEnd())

        os_stub = pb["gnoi_os_pb2_grpc"].OSStub(ch)
        sampler = Sampler(d.proc.pid)
        sampler.start()
        c0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
        resp = list(os_stub.Install(reqs(), timeout=3600))
        t1, c1 = time.monotonic(), cpu_seconds(d.proc.pid)
        assert resp[-1].WhichOneof("response") == "validated", resp[-1]
        peak_install = sampler.peak
        gb = size / 1e9
        print(f"BFB {size / 2**20:.0f} MiB")
        print(f"install: {size / (t1 - t0) / 1e6:.0f} MB/s, dmsd CPU "
              f"{(c1 - c0) / gb:.2f} s/GB, wall {t1 - t0:.2f} s")
        print(f"dmsd RSS idle {idle / 1024:.1f} MiB, peak during install "
              f"{peak_install / 1024:.1f} MiB")

        # the same Install from the gRPC-core client (bench/
        # dmsd-install-client): what dmsd does when the client keeps up
        client = os.path.join(BUILD, "bench", "dmsd-install-client")
        perf = None
        if os.environ.get("BENCH_PERF"):  # profile dmsd during the C client's Install
            perf = subprocess.Popen(["perf", "record", "-g", "-o",
                                     os.environ["BENCH_PERF"], "-p",
                                     str(d.proc.pid)],
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(1)
        sampler.peak = 0
        c0 = cpu_seconds(d.proc.pid)
        out = subprocess.run(
            [client, f"127.0.0.1:{d.port}", os.path.join(pki, "ca.crt"),
             os.path.join(pki, "client.crt"), os.path.join(pki, "client.key"),
             bfb, "os-c.bfb"], check=True, capture_output=True, text=True)
        c1 = cpu_seconds(d.proc.pid)
        if perf:
            perf.send_signal(2)
            perf.wait()
        sent, secs = out.stdout.split()
        assert int(sent) == size
        secs = float(secs)
        print(f"install (C client): {size / secs / 1e6:.0f} MB/s, dmsd CPU "
              f"{(c1 - c0) / gb:.2f} s/GB, wall {secs:.2f} s, peak RSS "
              f"{sampler.peak / 1024:.1f} MiB")
        os.unlink(os.path.join(d.images, "os-c.bfb"))
        rss = proc_kb(d.proc.pid, "VmRSS")
        print(f"dmsd RSS after the installs {rss / 1024:.1f} MiB;"
              f" load average {os.getloadavg()[0]:.1f}")

        # cat bfb > boot on the same device
        s = pb["gnoi_system_pb2"]
        sys_stub = pb["gnoi_system_pb2_grpc"].SystemStub(ch)
        emu.command("DISPLAY_LEVEL 2")
        emu.wait_misc("DISPLAY_LEVEL   2")
        t0 = time.monotonic()
        subprocess.run(f"cat {bfb} > {emu.boot}", shell=True, check=True)
        emu.wait_misc("DPU is ready", timeout=600)
        t_cat = time.monotonic() - t0
        # Activate (CRC check, then the push) until RebootStatus is done
        sampler.peak = 0
        c0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
        r = os_stub.Activate(o.ActivateRequest(version="os.bfb"),
                             timeout=600)
        assert r.WhichOneof("response") == "activate_ok", r
        t_ok = time.monotonic() - t0
        while True:
            st = sys_stub.RebootStatus(s.RebootStatusRequest(), timeout=60)
            if not st.active:
                break
            time.sleep(0.02)
        t_act = time.monotonic() - t0
        c1 = cpu_seconds(d.proc.pid)
        assert st.status.status == s.RebootStatus.STATUS_SUCCESS, st
        sampler.stop = True
        print(f"cat > boot: {size / t_cat / 1e6:.0f} MB/s ({t_cat:.2f} s)")
        print(f"activate:   {size / t_act / 1e6:.0f} MB/s ({t_act:.2f} s, "
              f"of which the CRC check before ActivateOK {t_ok:.2f} s), "
              f"{t_cat / t_act:.2f}x cat; dmsd CPU {(c1 - c0) / gb:.2f} s/GB,"
              f" peak RSS {sampler.peak / 1024:.1f} MiB")
        ch.close()
        d.stop()
        emu.stop()
    finally:
        for p in procs:  # also when a step failed
            p.stop()
        for c in cleanup + [work]:
            shutil.rmtree(c, ignore_errors=True)


if __name__ == "__main__":
    main()
