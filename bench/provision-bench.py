#!/usr/bin/env python3
"""Provisioning at scale (docs/benchmarks.md, "Provisioning"): a fleet of
emulated DPUs in dpf-emu's fast mode, provisioned by dpf-server's
controllers from one DPUSet, with install and reboot times zero.

Starts a release dpf-server (every controller in-process, embedded DPU
clusters of 1,000 DPUs each, DPF's maxNodes bound), a local HTTP server
with a small BFB built by `dpfctl bfb build`, and `dpf-emu fast`; waits
until the BFB and the DPU clusters are Ready and the host Nodes are
registered, then creates the DPUSet and follows its status.dpuStatistics
until every DPU is Ready. Prints:
  - DPUs Ready per minute, over the whole run and between 10 % and 90 %;
  - API requests per DPU to dpf-server (its /metrics,
    apiserver_request_total) and to the DPU clusters' servers, with the
    biggest contributors;
  - CPU seconds and peak RSS of dpf-server, of its DPU-cluster children
    and of dpf-emu (the emulator is not part of the control plane).

usage: bench/provision-bench.py [--build DIR] [--hosts N]
       [--dpus-per-host M] [--lease-renew DUR] [--max-installs N]
       [--timeout S]
Anchor: NVIDIA's infrastructure-controller simulator, 63.9 machines/min
(1,000 hosts x 2 DPUs, default concurrency). Goal here: >= 1,000 DPUs/min,
<= 60 API requests per DPU, control-plane RSS <= 500 MB at 10,000 DPUs.
"""
import argparse
import base64
import http.server
import json
import os
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from benchutil import (children, cpu_seconds, kubeconfig_tls, proc_status,
                       status_kb, thread_cpu)

PROV = "/apis/provisioning.dpu.nvidia.com/v1alpha1"
NS = "dpf-operator-system"
CNS = "dpu-cluster-bench"
PER_CLUSTER = 1000


def proc_sample(pid):
    """(cpu seconds, rss kB, private kB, file kB) of pid, or None when it
    is gone. Private is RssAnon + RssShmem: the process's own pages; file
    pages are mostly shared libraries, the same pages in every dpf-server
    process."""
    try:
        cpu = cpu_seconds(pid)
        st = proc_status(pid)
    except (OSError, ValueError, IndexError):
        return None
    if "VmRSS" not in st:
        return None  # a zombie
    return (cpu, status_kb(st, "VmRSS"),
            status_kb(st, "RssAnon") + status_kb(st, "RssShmem"),
            status_kb(st, "RssFile"))


class Api:
    def __init__(self, kubeconfig_text, ca_file=None):
        self.base, self.ctx, self.headers = kubeconfig_tls(kubeconfig_text,
                                                           ca_file)

    def call(self, method, path, body=None, raw=False):
        req = urllib.request.Request(
            self.base + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers=self.headers)
        with urllib.request.urlopen(req, context=self.ctx, timeout=60) as r:
            data = r.read()
        return data.decode() if raw else json.loads(data)

    def requests(self):
        """apiserver_request_total by (verb, resource, subresource), or
        None when the server has no /metrics."""
        try:
            text = self.call("GET", "/metrics", raw=True)
        except (urllib.error.HTTPError, urllib.error.URLError):
            return None
        out = {}
        for line in text.splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels, value = line[len("apiserver_request_total{"):].rsplit(
                "} ", 1)
            lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            key = (lab.get("verb", ""), lab.get("resource", ""),
                   lab.get("subresource", ""))
            out[key] = out.get(key, 0) + float(value)
        return out


def delta(a, b):
    if a is None or b is None:
        return None
    return {k: b.get(k, 0) - a.get(k, 0) for k in b
            if b.get(k, 0) - a.get(k, 0) > 0}


def wait(what, fn, timeout, interval=0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    raise SystemExit(f"provision-bench: timed out waiting for {what}")


def objects_breakdown(db):
    """What dpf-server stores (and its object index holds), by resource."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        rows = con.execute("SELECT key, length(value) FROM kv").fetchall()
        con.close()
    except sqlite3.Error as e:
        print(f"stored objects: cannot read {db}: {e}")
        return
    by = {}
    for key, size in rows:
        parts = key.strip("/").split("/")
        res = "/".join(parts[:2]) if len(parts) > 1 else parts[0]
        c, b = by.get(res, (0, 0))
        by[res] = (c + 1, b + size)
    total = sum(b for _, b in by.values())
    print(f"stored objects: {len(rows)}, {total / 1e6:.1f} MB of JSON text")
    for res, (c, b) in sorted(by.items(), key=lambda kv: -kv[1][1])[:10]:
        print(f"    {b / 1e6:7.1f} MB  {c:7d}  {res}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--hosts", type=int, default=500)
    ap.add_argument("--dpus-per-host", type=int, default=2)
    ap.add_argument("--lease-renew", default="10s")
    ap.add_argument("--max-installs", type=int, default=16)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--emu-processes", type=int, default=0,
                    help="dpf-emu processes (default: one per 4,000 DPUs)")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--server-log-level", default="info")
    ap.add_argument("--perf", metavar="FILE",
                    help="record dpf-server with perf (call graphs) while "
                    "the DPUs provision")
    ap.add_argument("--server-wrap", metavar="CMD", default="",
                    help="run dpf-server under CMD (split on spaces), "
                    "e.g. 'heaptrack -o /var/tmp/srv' for a heap profile")
    ap.add_argument("--keep", action="store_true",
                    help="keep the state directory")
    ap.add_argument("--hold", type=float, default=0, metavar="S",
                    help="after the figures, leave the fleet running S "
                    "seconds (to inspect the processes)")
    a = ap.parse_args()
    n = a.hosts * a.dpus_per_host
    # an emulator needs five open files per DPU (dpf-emu fast checks):
    # it gets no more DPUs than its descriptor limit allows
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    per_emu = 4000
    if soft != resource.RLIM_INFINITY:
        per_emu = max(1, min(per_emu, (soft - 256) // 5))
    build = os.path.abspath(a.build)
    tmp = tempfile.mkdtemp(prefix="dpf-provision-bench-", dir="/var/tmp")
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    for name, size in (("kernel", 65536), ("initramfs", 262144)):
        with open(os.path.join(www, name), "wb") as f:
            f.write(os.urandom(size))
    subprocess.run([os.path.join(build, "dpfctl", "dpfctl"), "bfb", "build",
                    "--kernel", os.path.join(www, "kernel"),
                    "--initramfs", os.path.join(www, "initramfs"),
                    "--bfb-version", "bench-1.0",
                    os.path.join(www, "bf-bundle-bench-1.0.bfb")],
                   check=True, stdout=subprocess.DEVNULL)
    http.server.SimpleHTTPRequestHandler.log_message = lambda *x: None
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0),
        lambda *x: http.server.SimpleHTTPRequestHandler(*x, directory=www))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/bf-bundle-bench-1.0.bfb"

    data = os.path.join(tmp, "server")
    kc = os.path.join(data, "admin.kubeconfig")
    procs = []
    srv = subprocess.Popen(
        a.server_wrap.split() +
        [os.path.join(build, "dpf-server", "dpf-server"), "--data-dir", data,
         "--bind-address", "127.0.0.1", "--port", "0",
         "--dpu-cluster-address", "127.0.0.1",
         "--max-concurrent-installs", str(a.max_installs),
         "--log-level", a.server_log_level,
         "--log-file", os.path.join(tmp, "server.log")])
    procs.append(srv)
    try:
        wait("dpf-server's kubeconfig", lambda: os.path.exists(kc), 120)
        time.sleep(0.5)
        with open(kc) as f:
            api = Api(f.read(), os.path.join(data, "pki", "ca.crt"))
        wait("dpf-server", lambda: api.call("GET", "/readyz", raw=True), 60)
        api.call("POST", "/api/v1/namespaces",
                 {"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": CNS}})
        clusters = (n + PER_CLUSTER - 1) // PER_CLUSTER
        for c in range(clusters):
            api.call("POST", f"{PROV}/namespaces/{CNS}/dpuclusters",
                     {"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
                      "kind": "DPUCluster",
                      "metadata": {"name": f"bench-{c:02d}"},
                      "spec": {"type": "embedded", "maxNodes": PER_CLUSTER,
                               "version": "v1.30.2"}})
        api.call("POST", f"{PROV}/namespaces/{NS}/bfbs",
                 {"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
                  "kind": "BFB", "metadata": {"name": "bf-bundle-bench"},
                  "spec": {"url": url}})
        api.call("POST", f"{PROV}/namespaces/{NS}/dpuflavors",
                 {"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
                  "kind": "DPUFlavor", "metadata": {"name": "bench"},
                  "spec": {"bfcfgParameters": ["UPDATE_DPU_OS=yes"]}})

        def ready(path, want):
            items = api.call("GET", path)["items"]
            return len(items) >= want and all(
                i.get("status", {}).get("phase") == "Ready" for i in items)
        wait("the DPU clusters", lambda: ready(
            f"{PROV}/namespaces/{CNS}/dpuclusters", clusters), 300)
        wait("the BFB", lambda: ready(f"{PROV}/namespaces/{NS}/bfbs", 1), 300)

        # one emulator per 4,000 DPUs: each DPU holds four open files (its
        # rshim boot and misc devices, its kept-alive Lease connection and
        # its node client's) and the hard limit here is 20,000; at 5,000
        # DPUs a process ran out of descriptors and its DPUs stopped
        # joining
        n_emu = a.emu_processes or max(1, -(-n // per_emu))
        per = -(-a.hosts // n_emu)
        emus, emu_dirs = [], []
        for k in range(n_emu):
            first, count = k * per, min(per, a.hosts - k * per)
            if count <= 0:
                break
            emu_dir = os.path.join(tmp, f"emu{k}")
            emu_dirs.append(emu_dir)
            emus.append(subprocess.Popen(
                [os.path.join(build, "dpf-emu", "dpf-emu"), "fast",
                 "--state-dir", emu_dir, "--hosts", str(count),
                 "--first-host", str(first),
                 "--dpus-per-host", str(a.dpus_per_host), "--kubeconfig", kc,
                 "--dmsd", os.path.join(build, "dmsd", "dmsd"),
                 "--workers", str(a.workers), "--lease-renew", a.lease_renew,
                 "--log-file", os.path.join(tmp, f"emu{k}.log")]))
        procs.extend(emus)
        t_emu = time.monotonic()

        def registered():
            total = 0
            for d in emu_dirs:
                try:
                    with open(os.path.join(d, "status.json")) as f:
                        total += json.load(f).get("hostsRegistered", 0)
                except (OSError, ValueError):
                    pass
            return total
        wait("the host Nodes", lambda: registered() == a.hosts, 1800, 1)
        print(f"fleet: {a.hosts} hosts x {a.dpus_per_host} DPUs = {n} DPUs, "
              f"{clusters} DPU cluster(s), {len(emus)} emulator(s); hosts "
              f"registered in {time.monotonic() - t_emu:.1f} s", flush=True)

        kids = children(srv.pid)
        capi = []
        for c in range(clusters):
            sec = api.call("GET", f"/api/v1/namespaces/{CNS}/secrets/"
                           f"bench-{c:02d}-admin-kubeconfig")
            capi.append(Api(base64.b64decode(
                sec["data"]["admin.conf"]).decode()))
        m0 = api.requests()
        c0 = [x.requests() for x in capi]
        s0 = {p: proc_sample(p) for p in [srv.pid] + [e.pid for e in emus] + kids}
        t0cpu = thread_cpu(srv.pid)

        perf = None
        if a.perf:
            perf = subprocess.Popen(["perf", "record", "-F", "199",
                                     "--call-graph", "dwarf,16384",
                                     "-p", str(srv.pid), "-o", a.perf],
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        # DPF's DPUSet makes one DPU per host, of the index its dpuSelector
        # picks: one DPUSet per DPU index
        for j in range(a.dpus_per_host):
            api.call("POST", f"{PROV}/namespaces/{NS}/dpusets", {
                "apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
                "kind": "DPUSet", "metadata": {"name": f"bench-{j}"},
                "spec": {
                    "nodeSelector": {"matchLabels": {
                        "feature.node.kubernetes.io/dpu-enabled": "true"}},
                    "dpuSelector": {
                        f"feature.node.kubernetes.io/dpu-{j}-pci-address":
                        "0000-%02x-00" % (0x4b + j)},
                    "strategy": {"type": "RollingUpdate",
                                 "rollingUpdate": {"maxUnavailable": "10%"}},
                    "dpuTemplate": {"spec": {
                        "dpuFlavor": "bench",
                        "bfb": {"name": "bf-bundle-bench"},
                        "nodeEffect": {"taint": {
                            "key": "dpu", "value": "provisioning",
                            "effect": "NoSchedule"}},
                        "automaticNodeReboot": True}}}})
        marks = {}
        peak = {}
        ppeak = {}  # private (anonymous) pages
        fpeak = {}  # file pages
        last_print = 0
        while True:
            now = time.monotonic()
            if now - t0 > a.timeout:
                print("provision-bench: timeout", file=sys.stderr)
                break
            for p in [srv.pid] + [e.pid for e in emus] + kids:
                s = proc_sample(p)
                if s:
                    peak[p] = max(peak.get(p, 0), s[1])
                    ppeak[p] = max(ppeak.get(p, 0), s[2])
                    fpeak[p] = max(fpeak.get(p, 0), s[3])
            stats = {}
            for ds in api.call("GET", f"{PROV}/namespaces/{NS}/dpusets")[
                    "items"]:
                for k, v in (ds.get("status", {}).get("dpuStatistics")
                             or {}).items():
                    stats[k] = stats.get(k, 0) + v
            ready_n = stats.get("Ready", 0)
            for frac in (0.1, 0.5, 0.9, 1.0):
                if frac not in marks and ready_n >= frac * n:
                    marks[frac] = now - t0
            if now - last_print > 10:
                ss = proc_sample(srv.pid)
                rss = f"  dpf-server RSS {ss[1] / 1024:.0f} MB" if ss else ""
                print(f"  {now - t0:6.0f} s  {json.dumps(stats)}{rss}",
                      flush=True)
                last_print = now
            if ready_n >= n:
                break
            time.sleep(1)
        t_end = time.monotonic()
        if perf:
            perf.send_signal(2)
            perf.wait(60)
        s1 = {p: proc_sample(p) for p in [srv.pid] + [e.pid for e in emus] + kids}
        t1cpu = thread_cpu(srv.pid)
        m1 = api.requests()
        c1 = [x.requests() for x in capi]
        took = t_end - t0
        print(f"\nDPUs Ready: {ready_n} of {n} in {took:.1f} s -> "
              f"{ready_n / took * 60:.0f} DPUs/min overall"
              f"{'' if ready_n >= n else ' (timed out)'}")
        if 0.1 in marks and 0.9 in marks and marks[0.9] > marks[0.1]:
            print(f"  10%..90%: {0.8 * n / (marks[0.9] - marks[0.1]) * 60:.0f}"
                  f" DPUs/min; first 10% after {marks[0.1]:.1f} s")
        d = delta(m0, m1)
        if d is None:
            print("API requests: dpf-server has no /metrics")
        else:
            tot = sum(d.values())
            hb = sum(v for k, v in d.items() if k[1] == "leases")
            print(f"API requests to dpf-server: {tot:.0f} = "
                  f"{tot / n:.1f} per DPU; without the host Leases' "
                  f"renewals (heartbeats): {(tot - hb) / n:.1f} per DPU")
            for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:12]:
                print(f"    {v / n:6.2f}/DPU  {k[0]} {k[1]}"
                      f"{'/' + k[2] if k[2] else ''}")
        cd = [delta(x, y) for x, y in zip(c0, c1)]
        if all(x is not None for x in cd):
            tot = sum(sum(x.values()) for x in cd)
            hb = sum(sum(v for k, v in x.items() if k[1] == "leases")
                     for x in cd)
            print(f"API requests to the DPU clusters: {tot:.0f} = "
                  f"{tot / n:.1f} per DPU; without Lease renewals: "
                  f"{(tot - hb) / n:.1f} per DPU")
        names = {srv.pid: "dpf-server"}
        for e in emus:
            names[e.pid] = f"dpf-emu {e.pid} (not control plane)"
        cp_cpu = cp_peak = cp_private = cp_file = 0
        for p in [srv.pid] + kids + [e.pid for e in emus]:
            if not s0.get(p) or not s1.get(p):
                continue
            cpu = s1[p][0] - s0[p][0]
            label = names.get(p, f"DPU cluster server {p}")
            print(f"  {label}: CPU {cpu:.1f} s ({cpu / took * 100:.0f}% of "
                  f"one core), RSS now {s1[p][1] / 1024:.0f} MB, peak "
                  f"{peak.get(p, 0) / 1024:.0f} MB (private "
                  f"{ppeak.get(p, 0) / 1024:.0f} MB)")
            if p == srv.pid:
                th = {k: v - t0cpu.get(k, 0) for k, v in t1cpu.items()}
                top = sorted(th.items(), key=lambda kv: -kv[1])[:8]
                print("    by thread (live ones): " + ", ".join(
                    f"{k} {v:.1f} s" for k, v in top))
            if p not in [e.pid for e in emus]:
                cp_cpu += cpu
                cp_peak += peak.get(p, 0)
                cp_private += ppeak.get(p, 0)
                cp_file = max(cp_file, fpeak.get(p, 0))
        print(f"control plane (dpf-server + DPU cluster servers): CPU "
              f"{cp_cpu:.1f} s, {cp_cpu / n * 1000:.1f} ms per DPU; RSS sum "
              f"of peaks {cp_peak / 1024:.0f} MB; memory used "
              f"{(cp_private + cp_file) / 1024:.0f} MB (private pages "
              f"{cp_private / 1024:.0f} MB + the shared library pages "
              f"counted once, {cp_file / 1024:.0f} MB)")
        objects_breakdown(os.path.join(data, "state.db"))
        if a.hold > 0:
            print(f"holding for {a.hold:.0f} s: dpf-server is pid {srv.pid}",
                  flush=True)
            time.sleep(a.hold)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        # a --server-wrap program may not pass SIGTERM on: whatever still
        # runs on this state directory goes now
        subprocess.run(["pkill", "-TERM", "-f", "--", f"--data-dir {data}"])
        httpd.shutdown()
        if a.keep:
            print(f"state kept in {tmp}")
        else:
            subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
