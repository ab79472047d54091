#!/usr/bin/env python3
"""dmsd --targets: what N idle targets cost one process (docs/benchmarks.md,
"DMS, many targets").

Starts a release `dmsd --targets -` with the open-file soft limit at 1024
(dmsd raises it to the hard limit), adds N targets on 127.1.X.Y:PORT (the
addresses dpf-emu's fast mode gives host nodes), each with its own rshim
and image folders and the same CA and server certificate, and prints:
the time to add them all, the process's RSS, threads and open
descriptors once idle; that a few of them answer a gNMI Get over mutual
TLS (bench's dmsd-install-client is not needed: tests/system's
dms-client-check does the Get); the time to remove them all by EOF.

usage: bench/dmsd-targets-bench.py [BUILD_DIR] [N] [PORT]
"""
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
PORT = int(sys.argv[3]) if len(sys.argv) > 3 else 19339
os.environ["DPF_BUILD"] = BUILD
sys.path.insert(0, os.path.join(REPO, "tests", "system"))

from dmsd_util import make_ca, make_cert  # noqa: E402

from benchutil import cpu_seconds, proc_kb  # noqa: E402


def addr(i):
    return f"127.{1 + i // 65536}.{(i // 256) % 256}.{i % 256}"


def low_nofile():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))


def main():
    work = tempfile.mkdtemp(prefix="dmsd-targets-bench-")
    proc = None
    try:
        pki = os.path.join(work, "pki")
        os.makedirs(pki)
        make_ca(pki, "ca")
        make_cert(pki, "ca", "server", "dms", server=True)  # DNS:localhost
        make_cert(pki, "ca", "client", "dpf-provisioning-client")
        pem = {n: open(os.path.join(pki, n)).read()
               for n in ("ca.crt", "server.crt", "server.key")}
        lines = []
        for i in range(1, N + 1):
            d = os.path.join(work, "t", str(i))
            os.makedirs(os.path.join(d, "rshim"))
            lines.append(json.dumps({
                "op": "add", "id": f"ns.dpu-{i}",
                "bind_address": f"{addr(i)}:{PORT}",
                "ca_pem": pem["ca.crt"], "cert_pem": pem["server.crt"],
                "key_pem": pem["server.key"],
                "rshim": os.path.join(d, "rshim"),
                "image_folder": os.path.join(d, "bfb")}) + "\n")
        log = open(os.path.join(work, "dmsd.log"), "wb")
        proc = subprocess.Popen(
            [os.path.join(BUILD, "dmsd", "dmsd"), "--targets", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            preexec_fn=low_nofile, text=True, bufsize=1)
        time.sleep(0.5)
        base_rss = proc_kb(proc.pid, "VmRSS")
        base_threads = proc_kb(proc.pid, "Threads")
        perf = None
        if os.environ.get("BENCH_PERF"):  # profile dmsd during the adds
            perf = subprocess.Popen(["perf", "record", "-g", "-o",
                                     os.environ["BENCH_PERF"], "-p",
                                     str(proc.pid)],
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(1)
        t0, c0 = time.monotonic(), cpu_seconds(proc.pid)
        for ln in lines:
            proc.stdin.write(ln)
            proc.stdin.flush()
            r = json.loads(proc.stdout.readline())
            assert r["ok"], r
        t_add, c_add = time.monotonic() - t0, cpu_seconds(proc.pid) - c0
        if perf:
            perf.send_signal(2)
            perf.wait()
        time.sleep(2)
        rss = proc_kb(proc.pid, "VmRSS")
        threads = proc_kb(proc.pid, "Threads")
        fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
        with open(f"/proc/{proc.pid}/limits") as f:
            nofile = [ln for ln in f if ln.startswith("Max open files")][0]
        print(f"targets {N}: added in {t_add:.2f} s "
              f"({t_add / N * 1000:.2f} ms each), dmsd CPU {c_add:.2f} s; "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"idle: RSS {rss / 1024:.1f} MiB ({(rss - base_rss) / N:.1f} "
              f"KiB per target; {base_rss / 1024:.1f} MiB before any), "
              f"threads {threads} ({base_threads} before any), open fds "
              f"{fds}")
        print("limit: " + " ".join(nofile.split()[3:5]) + " (soft hard; "
              "started with soft 1024)")
        check = os.path.join(BUILD, "tests", "system", "dms-client-check")
        for i in random.sample(range(1, N + 1), 3):
            t = time.monotonic()
            out = subprocess.run(
                [check, f"{addr(i)}:{PORT}", os.path.join(pki, "ca.crt"),
                 os.path.join(pki, "client.crt"),
                 os.path.join(pki, "client.key"), "dpu", "get",
                 "/nvidia/mode/config/mode", "--server-name", "localhost"],
                capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stdout + out.stderr
            print(f"target {i} ({addr(i)}:{PORT}): {out.stdout.strip()} in "
                  f"{(time.monotonic() - t) * 1000:.0f} ms; threads now "
                  f"{proc_kb(proc.pid, 'Threads')}")
        t = time.monotonic()
        proc.stdin.close()
        rc = proc.wait(timeout=600)
        print(f"EOF: all stopped, exit {rc}, in {time.monotonic() - t:.2f} s")
        proc = None
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
