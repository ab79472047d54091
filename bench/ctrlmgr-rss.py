#!/usr/bin/env python3
"""Idle RSS and CPU of dpf-controller-manager running the BFB controller
against dpf-server (docs/benchmarks.md, "Controller manager").

Starts a release dpf-server (--controllers=none) and a local HTTP server
with small BFB files, creates N BFBs, starts dpf-controller-manager with
--leader-elect, waits until every BFB is Ready, then samples the manager's
VmRSS and CPU time over an idle period (the BFB controller re-checks each
Ready file every 5 s and the Lease is renewed every 2 s meanwhile).

usage: bench/ctrlmgr-rss.py [BUILD_DIR] [N_BFBS] [IDLE_SECONDS]
"""
import http.server
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import yaml

from benchutil import cpu_seconds, proc_kb, proc_status

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10
IDLE = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
PROV = "/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/default/bfbs"


def main():
    tmp = tempfile.mkdtemp(prefix="dpf-ctrlmgr-bench-")
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    with open(os.path.join(www, "bf.bfb"), "wb") as f:
        f.write(os.urandom(1 << 20))
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=www)
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/bf.bfb"
    data = os.path.join(tmp, "state")
    kc = os.path.join(data, "admin.kubeconfig")
    srv = subprocess.Popen([os.path.join(BUILD, "dpf-server", "dpf-server"),
                            "--data-dir", data, "--bind-address", "127.0.0.1",
                            "--port", "0", "--controllers", "none",
                            "--log-file", os.path.join(tmp, "server.log")])
    cm = None
    try:
        while not os.path.exists(kc):
            time.sleep(0.1)
        time.sleep(0.5)
        with open(kc) as f:
            k = yaml.safe_load(f)
        base = k["clusters"][0]["cluster"]["server"]
        token = k["users"][0]["user"]["token"]
        ctx = ssl.create_default_context(cafile=os.path.join(data, "pki",
                                                             "ca.crt"))
        ctx.check_hostname = False

        def call(method, path, body=None):
            req = urllib.request.Request(
                base + path, method=method,
                data=json.dumps(body).encode() if body else None,
                headers={"Authorization": "Bearer " + token,
                         "Content-Type": "application/json"})
            with urllib.request.urlopen(req, context=ctx) as r:
                return json.loads(r.read())
        for i in range(N):
            call("POST", PROV, {"apiVersion":
                                "provisioning.dpu.nvidia.com/v1alpha1",
                                "kind": "BFB", "metadata": {"name": f"b{i}"},
                                "spec": {"url": url}})
        cm = subprocess.Popen(
            [os.path.join(BUILD, "dpf-controller-manager",
                          "dpf-controller-manager"),
             "--kubeconfig", kc, "--leader-elect",
             "--bfb-dir", os.path.join(tmp, "bfb"),
             "--metrics-bind-address", "127.0.0.1:0",
             "--health-probe-bind-address", "0",
             "--log-file", os.path.join(tmp, "cm.log")])
        t0 = time.monotonic()
        while True:
            items = call("GET", PROV)["items"]
            if all(i.get("status", {}).get("phase") == "Ready"
                   for i in items):
                break
            time.sleep(0.2)
        ready_s = time.monotonic() - t0
        time.sleep(5)
        a = cpu_seconds(cm.pid)
        t1 = time.monotonic()
        peak = 0
        while time.monotonic() - t1 < IDLE:
            peak = max(peak, proc_kb(cm.pid, "VmRSS"))
            time.sleep(1)
        cpu = (cpu_seconds(cm.pid) - a) / IDLE * 100
        b = proc_status(cm.pid)
        print(f"bfbs={N} ready_after_s={ready_s:.1f} "
              f"rss_kb={b['VmRSS'].split()[0]} peak_rss_kb={peak} "
              f"hwm_kb={b['VmHWM'].split()[0]} threads={b['Threads']} "
              f"idle_cpu_pct={cpu:.2f}")
    finally:
        for p in (cm, srv):
            if p and p.poll() is None:
                p.terminate()
                p.wait(20)
        httpd.shutdown()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
