#!/usr/bin/env python3
"""dpf-server's CPU per request, for the requests a fleet repeats most
(docs/benchmarks.md, "Provisioning at scale"): a node's Lease renewal (a
merge PATCH of spec.renewTime, as kubelet and dpf-emu send it) and a GET
of one object.

Starts a release dpf-server on a free loopback port with a fresh store,
registers N Nodes with their Leases in kube-node-lease, then has T client
threads (kept-alive TLS connections with the admin credentials) renew
every Lease R times, and read every Lease R times. Prints the server's
CPU time (utime + stime from /proc) per request for each, and the wall
time. The client runs in this Python process on the same machine, so
the wall time says little; the server's CPU per request is the figure.

usage: bench/request-cost.py [--build DIR] [--nodes N] [--rounds R]
                             [--threads T]
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from benchutil import cpu_seconds, free_port, kubeconfig_tls

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"


class Client:
    def __init__(self, port, ctx):
        self.h = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                             timeout=60)

    def call(self, method, path, body=None, ctype="application/json"):
        data = json.dumps(body) if body is not None else None
        self.h.request(method, path, body=data,
                       headers={"Content-Type": ctype})
        r = self.h.getresponse()
        out = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {r.status}: "
                               f"{out[:200]!r}")
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    exe = os.path.join(a.build, "dpf-server", "dpf-server")
    if not os.access(exe, os.X_OK):
        sys.exit(f"request-cost: {exe} missing: build first (make build)")
    d = tempfile.mkdtemp(prefix="dpf-request-cost-")
    port = free_port()
    log = open(os.path.join(d, "server.log"), "w")
    srv = subprocess.Popen([exe, "--data-dir", os.path.join(d, "server"),
                            "--init-store", "--bind-address", "127.0.0.1",
                            "--port", str(port)],
                           stdout=log, stderr=subprocess.STDOUT)
    try:
        kc = os.path.join(d, "server", "admin.kubeconfig")
        for _ in range(300):
            if os.path.exists(kc) or srv.poll() is not None:
                break
            time.sleep(0.1)
        if not os.path.exists(kc):
            sys.exit("request-cost: dpf-server did not start (see "
                     f"{d}/server.log)")
        time.sleep(0.5)
        with open(kc) as f:
            _, ctx, _ = kubeconfig_tls(f.read())

        c = Client(port, ctx)
        for i in range(a.nodes):
            node = json.loads(c.call("POST", "/api/v1/nodes", {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": f"node-{i}"}}))
            c.call("POST", LEASES, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": f"node-{i}",
                             "namespace": "kube-node-lease",
                             "ownerReferences": [{
                                 "apiVersion": "v1", "kind": "Node",
                                 "name": f"node-{i}",
                                 "uid": node["metadata"]["uid"]}]},
                "spec": {"holderIdentity": f"node-{i}",
                         "leaseDurationSeconds": 40,
                         "renewTime": "2026-01-01T00:00:00.000000Z"}})

        def run(what):
            errors = []

            def work(t):
                cl = Client(port, ctx)
                try:
                    for _ in range(a.rounds):
                        for i in range(t, a.nodes, a.threads):
                            path = f"{LEASES}/node-{i}"
                            if what == "renew":
                                now = time.strftime(
                                    "%Y-%m-%dT%H:%M:%S.000000Z",
                                    time.gmtime())
                                cl.call("PATCH", path + "?fieldManager=bench",
                                        {"spec": {"renewTime": now}},
                                        "application/merge-patch+json")
                            else:
                                cl.call("GET", path)
                except Exception as e:  # reported below, fails the run
                    errors.append(str(e))

            c0, t0 = cpu_seconds(srv.pid), time.monotonic()
            th = [threading.Thread(target=work, args=(t,))
                  for t in range(a.threads)]
            for x in th:
                x.start()
            for x in th:
                x.join()
            c1, t1 = cpu_seconds(srv.pid), time.monotonic()
            if errors:
                sys.exit(f"request-cost: {len(errors)} failed: {errors[0]}")
            n = a.nodes * a.rounds
            print(f"{what:6s} {n:7d} requests in {t1 - t0:6.1f} s: "
                  f"dpf-server CPU {c1 - c0:5.2f} s = "
                  f"{(c1 - c0) * 1e3 / n:.3f} ms per request")

        print(f"dpf-server {exe}: {a.nodes} Nodes and Leases, "
              f"{a.threads} client threads, {a.rounds} rounds")
        run("renew")
        run("get")
    finally:
        srv.kill()
        srv.wait()
        log.close()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
