#!/usr/bin/env python3
"""Informer benchmark: dpf's lib/kube informer side by side with
@kubernetes/client-node's, against one dpf-server (docs/benchmarks.md,
"Informers").

usage: bench/informer-bench.py [--build DIR] [--objects N] [--updates N]
           [--concurrency N] [--data-bytes N] [--idle S]
           [--order dpf,client-node] [--json] [--keep]

Starts ONE release dpf-server (durable store: the default sync=full) in a
temporary directory on 127.0.0.1, port 0, --controllers=none, and reads
the admin kubeconfig (bearer token, CA) it writes. Then, for each informer
in --order, one after the other (the machine has two cores: two informers
at once would share them with the server and the loader, so each side
gets the same quiet machine), in a fresh namespace:

  sync     start the informer process (build/bench/informer-bench watch,
           or node informer.mjs) on the empty namespace; wait until it
           has listed;
  create   the loader (informer-bench load, 32 requests in flight on 32
           keep-alive HTTPS connections) creates --objects ConfigMaps;
           figure: time from the first create sent to the handler's last
           add (and the lag after the last create's reply);
  RSS      2 s later, VmRSS of the informer process with every object in
           its cache (and VmHWM, its peak so far);
  storm    --updates merge patches round-robin over the objects, as fast
           as the server takes them; figure: update events per second the
           handler received (first to last), and the informer's CPU time
           per event. The server's write rate bounds this rate for any
           informer that keeps up, so:
  backlog  the informer process is stopped (SIGSTOP) while another
           --updates patches go in, then continued (SIGCONT); figure:
           events per second from the continue to the last update handler
           call: the informer's own rate, not the server's write rate.

Last, dpf-controller-manager --controllers=all --leader-elect against the
same server: VmRSS after --idle seconds.

As root the script and everything it starts run at nice -10 (--nice), so
other work on a shared machine takes less of the benchmark's CPU.

The informer processes report their counters, monotonic timestamps
(CLOCK_MONOTONIC, shared with this script), VmRSS/VmHWM and CPU time as
JSON lines (protocol in bench/informer-bench.c). client-node's
node_modules are installed with `npm ci` from
bench/informer-node/package-lock.json into BUILD/bench/informer-node; when
that fails (no registry), the script says so and exits 77.

Prints a table with both sides and the ratios dpf / client-node, or with
--json one JSON object. A benchmark: it never judges its figures.
"""
import argparse
import base64
import json
import os
import queue
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import http.client

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
# the tests load this file by path (importlib), so its folder may not be
# on sys.path yet
sys.path.insert(0, HERE)
from benchutil import cpu_seconds, proc_status, status_kb  # noqa: E402

NODE_SRC = os.path.join(HERE, "informer-node")
NODE_FILES = ("package.json", "package-lock.json", "informer.mjs")
EXIT_NO_NPM = 77
GOALS = {"events_ratio": 3.0, "rss_ratio": 0.2, "cm_idle_mb": 30.0}


def log(msg):
    print(f"informer-bench: {msg}", file=sys.stderr, flush=True)


def die(msg, code=1):
    log(msg)
    sys.exit(code)


# ---- client-node installation ----

def node_setup(build):
    """Copy the Node side into BUILD/bench/informer-node and install its
    node_modules from the lockfile (again only when the lockfile changed).
    Returns the path of informer.mjs there; exits 77 if npm fails."""
    dst = os.path.join(build, "bench", "informer-node")
    os.makedirs(dst, exist_ok=True)
    for f in NODE_FILES:
        shutil.copyfile(os.path.join(NODE_SRC, f), os.path.join(dst, f))
    with open(os.path.join(NODE_SRC, "package-lock.json"), "rb") as f:
        lock = f.read()
    stamp = os.path.join(dst, "node_modules", ".dpf-installed-lock")
    try:
        with open(stamp, "rb") as f:
            if f.read() == lock:
                return os.path.join(dst, "informer.mjs")
    except OSError:
        pass
    if not shutil.which("npm") or not shutil.which("node"):
        die("node and npm are needed for the client-node side", EXIT_NO_NPM)
    p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund",
                        "--prefer-offline", "--fetch-retries=1",
                        "--fetch-timeout=30000"],
                       cwd=dst, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        why = [ln.removeprefix("npm error ").strip()
               for ln in p.stderr.splitlines()
               if ln.startswith("npm error") and "complete log" not in ln]
        die(f"npm ci in {dst} failed (registry unreachable?): "
            + ("; ".join(why[:2]) or "no message"), EXIT_NO_NPM)
    with open(stamp, "wb") as f:
        f.write(lock)
    return os.path.join(dst, "informer.mjs")


def node_version():
    return subprocess.run(["node", "--version"], capture_output=True,
                          text=True).stdout.strip()


def client_node_version(mjs):
    path = os.path.join(os.path.dirname(mjs), "node_modules", "@kubernetes",
                        "client-node", "package.json")
    with open(path) as f:
        return json.load(f)["version"]


# ---- processes ----

def proc_memory(pid):
    st = proc_status(pid)
    return {k: status_kb(st, k) for k in ("VmRSS", "VmHWM", "Threads")}


def proc_cpu_ms(pid):
    """User + system CPU time of a process (all its threads), in ms."""
    return cpu_seconds(pid) * 1000


class Server:
    """dpf-server on a fresh data directory (the store's defaults)."""

    def __init__(self, build, tmp):
        self.data = os.path.join(tmp, "state")
        self.kubeconfig = os.path.join(self.data, "admin.kubeconfig")
        self.log = os.path.join(tmp, "server.log")
        self.proc = subprocess.Popen(
            [os.path.join(build, "dpf-server", "dpf-server"),
             "--data-dir", self.data, "--bind-address", "127.0.0.1",
             "--port", "0", "--controllers", "none",
             "--log-file", self.log],
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not os.path.exists(self.kubeconfig):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                die(f"dpf-server did not start; see {self.log}")
            time.sleep(0.1)
        time.sleep(0.3)  # the file is written atomically; the token is in
        with open(self.kubeconfig) as f:
            kc = yaml.safe_load(f)
        cluster = kc["clusters"][0]["cluster"]
        self.token = kc["users"][0]["user"]["token"]
        self.port = int(cluster["server"].rsplit(":", 1)[1].rstrip("/"))
        self.ctx = ssl.create_default_context(
            cadata=base64.b64decode(
                cluster["certificate-authority-data"]).decode())
        self.ctx.check_hostname = False
        while self.request("GET", "/readyz", auth=False)[0] != 200:
            if time.monotonic() > deadline:
                die("dpf-server never became ready")
            time.sleep(0.1)

    def request(self, method, path, body=None, auth=True):
        c = http.client.HTTPSConnection("127.0.0.1", self.port,
                                        context=self.ctx, timeout=30)
        hdrs = {"Content-Type": "application/json"}
        if auth:
            hdrs["Authorization"] = "Bearer " + self.token
        try:
            c.request(method, path, body=json.dumps(body) if body else None,
                      headers=hdrs)
            r = c.getresponse()
            return r.status, r.read()
        except OSError as e:
            return 0, str(e).encode()
        finally:
            c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Informer:
    """One informer process and its line protocol."""

    def __init__(self, argv, logpath):
        self.logf = open(logpath, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=self.logf, text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def get(self, tag, timeout):
        """The JSON line with this tag; on timeout a report marked so."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.send(f"report {tag}-timeout")
                r = self.get(f"{tag}-timeout", 30) if tag[-8:] != "-timeout" \
                    else None
                if r is None:
                    raise TimeoutError(f"informer: no answer for {tag}")
                r["timed_out"] = True
                return r
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"informer exited {self.proc.wait()} "
                                   f"(see {self.logf.name})")
            r = json.loads(line)
            if r.get("tag") == tag:
                return r

    def wait(self, field, n, tag, timeout):
        self.send(f"wait {field} {n} {tag}")
        return self.get(tag, timeout)

    def report(self, tag):
        self.send(f"report {tag}")
        return self.get(tag, 30)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.send("quit")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def load(args, kubeconfig, ns, op, n, base=0):
    argv = [os.path.join(args.build, "bench", "informer-bench"), "load",
            "--kubeconfig", kubeconfig, "--namespace", ns,
            f"--{op}", str(n), "--objects", str(args.objects),
            "--concurrency", str(args.concurrency),
            "--data-bytes", str(args.data_bytes), "--value-base", str(base)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        die(f"loader failed ({p.returncode}): {p.stdout.strip()} "
            f"{p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---- one side ----

def run_side(args, srv, impl, argv, tmp):
    ns = f"inf-{impl}"
    st, body = srv.request("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    if st != 201:
        die(f"namespace {ns}: HTTP {st}: {body[:300]!r}")
    inf = Informer(argv + ["--kubeconfig", srv.kubeconfig, "--namespace", ns],
                   os.path.join(tmp, f"{impl}.log"))
    out = {"impl": impl, "namespace": ns}
    try:
        r = inf.wait("synced", 1, "synced", 60)
        if r.get("timed_out"):
            die(f"{impl} informer did not sync (see {tmp}/{impl}.log)")
        out["rss_empty_kb"] = r["rss_kb"]
        # watch requests started so far (client-node: "connect" callbacks)
        watches = lambda r: r.get("watches", r.get("connects", 0))  # noqa

        timeout = max(120, args.objects / 50)

        # create
        c = load(args, srv.kubeconfig, ns, "create", args.objects)
        r = inf.wait("adds", args.objects, "created", timeout)
        out["create"] = {
            "objects": r["adds"], "loader_per_s": c["per_s"],
            "first_create_to_last_add_s":
                (r["last_add_ns"] - c["first_ns"]) / 1e9,
            "lag_after_last_reply_ms": (r["last_add_ns"] - c["last_ns"]) / 1e6,
            "timed_out": r.get("timed_out", False)}

        # RSS with every object cached
        time.sleep(2)
        r = inf.report("cached")
        out["rss_cached_kb"] = r["rss_kb"]
        out["hwm_cached_kb"] = r["hwm_kb"]
        out["anon_cached_kb"] = r["anon_kb"]
        out["cached"] = r["cached"]
        out["heap_used_kb"] = r["heap_used_kb"]

        # storm, informer running
        cpu0 = r["cpu_ms"]
        u = load(args, srv.kubeconfig, ns, "update", args.updates, 0)
        r = inf.wait("updates", args.updates, "storm", timeout)
        span = (r["last_update_ns"] - r["first_update_ns"]) / 1e9
        out["storm"] = {
            "updates": r["updates"], "loader_per_s": u["per_s"],
            "events_per_s": r["updates"] / span if span > 0 else 0,
            "cpu_us_per_event": (r["cpu_ms"] - cpu0) * 1e3 / max(
                1, r["updates"]),
            "lag_after_last_reply_ms":
                (r["last_update_ns"] - u["last_ns"]) / 1e6,
            "timed_out": r.get("timed_out", False)}

        # backlog: the informer stopped while the updates go in
        w0 = watches(r)
        os.kill(inf.proc.pid, signal.SIGSTOP)
        u = load(args, srv.kubeconfig, ns, "update", args.updates,
                 args.updates)
        time.sleep(0.5)
        cpu0 = proc_cpu_ms(inf.proc.pid)
        t_cont = time.monotonic_ns()
        os.kill(inf.proc.pid, signal.SIGCONT)
        r = inf.wait("updates", 2 * args.updates, "backlog", timeout)
        got = r["updates"] - args.updates
        span = (r["last_update_ns"] - t_cont) / 1e9
        out["backlog"] = {
            "updates": got, "stopped_s": (t_cont - u["first_ns"]) / 1e9,
            "events_per_s": got / span if span > 0 else 0,
            "cpu_us_per_event": (r["cpu_ms"] - cpu0) * 1e3 / max(1, got),
            "cpu_share": (r["cpu_ms"] - cpu0) / 1e3 / span if span > 0 else 0,
            "rewatches": watches(r) - w0,
            "timed_out": r.get("timed_out", False)}
        out["rss_after_kb"] = r["rss_kb"]
        out["hwm_after_kb"] = r["hwm_kb"]
        out["anon_after_kb"] = r["anon_kb"]
        out["cached_after"] = r["cached"]
        out["deletes"] = r["deletes"]
    finally:
        inf.stop()
    return out


def controller_manager_idle(args, srv, tmp):
    cm = subprocess.Popen(
        [os.path.join(args.build, "dpf-controller-manager",
                      "dpf-controller-manager"),
         "--kubeconfig", srv.kubeconfig, "--controllers", "all",
         "--leader-elect", "--bfb-dir", os.path.join(tmp, "bfb"),
         "--metrics-bind-address", "127.0.0.1:0",
         "--health-probe-bind-address", "0",
         "--log-file", os.path.join(tmp, "cm.log")],
        stdin=subprocess.DEVNULL)
    try:
        time.sleep(args.idle)
        if cm.poll() is not None:
            die(f"dpf-controller-manager exited {cm.returncode}; "
                f"see {tmp}/cm.log")
        m = proc_memory(cm.pid)
        return {"idle_s": args.idle, "rss_kb": m["VmRSS"],
                "hwm_kb": m["VmHWM"], "threads": m["Threads"]}
    finally:
        if cm.poll() is None:
            cm.terminate()
            try:
                cm.wait(30)
            except subprocess.TimeoutExpired:
                cm.kill()
                cm.wait()


# ---- output ----

def ratios(res):
    d, n = res["sides"].get("dpf"), res["sides"].get("client-node")
    if not d or not n:
        return {}

    def div(a, b):
        return a / b if b else None
    return {
        "create_time": div(d["create"]["first_create_to_last_add_s"],
                           n["create"]["first_create_to_last_add_s"]),
        "storm_events_per_s": div(d["storm"]["events_per_s"],
                                  n["storm"]["events_per_s"]),
        "storm_cpu_per_event": div(d["storm"]["cpu_us_per_event"],
                                   n["storm"]["cpu_us_per_event"]),
        "backlog_events_per_s": div(d["backlog"]["events_per_s"],
                                    n["backlog"]["events_per_s"]),
        "rss_cached": div(d["rss_cached_kb"], n["rss_cached_kb"]),
        "anon_cached": div(d["anon_cached_kb"], n["anon_cached_kb"]),
        "rss_after": div(d["rss_after_kb"], n["rss_after_kb"]),
    }


def print_table(res):
    sides = [res["sides"][k] for k in res["order"]]
    rt = res["ratios"]
    rows = [
        ("objects in cache", lambda s: f"{s['cached']}", None),
        ("create: first create -> last add (s)",
         lambda s: f"{s['create']['first_create_to_last_add_s']:.2f}",
         "create_time"),
        ("  loader creates/s", lambda s: f"{s['create']['loader_per_s']:.0f}",
         None),
        ("  last add - last create reply (ms)",
         lambda s: f"{s['create']['lag_after_last_reply_ms']:.1f}", None),
        ("storm: update events/s received",
         lambda s: f"{s['storm']['events_per_s']:.0f}", "storm_events_per_s"),
        ("  loader updates/s", lambda s: f"{s['storm']['loader_per_s']:.0f}",
         None),
        ("  informer CPU per event (us)",
         lambda s: f"{s['storm']['cpu_us_per_event']:.1f}",
         "storm_cpu_per_event"),
        ("backlog: events/s after SIGCONT",
         lambda s: f"{s['backlog']['events_per_s']:.0f}",
         "backlog_events_per_s"),
        ("  informer CPU per event (us)",
         lambda s: f"{s['backlog']['cpu_us_per_event']:.1f}", None),
        ("  informer CPU while draining (cores)",
         lambda s: f"{s['backlog']['cpu_share']:.2f}", None),
        ("RSS, empty cache (MiB)", lambda s: f"{s['rss_empty_kb'] / 1024:.1f}",
         None),
        ("RSS, 10,000-object cache (MiB)" if res["objects"] == 10000 else
         f"RSS, {res['objects']}-object cache (MiB)",
         lambda s: f"{s['rss_cached_kb'] / 1024:.1f}", "rss_cached"),
        ("  of which private (RssAnon, MiB)",
         lambda s: f"{s['anon_cached_kb'] / 1024:.1f}", "anon_cached"),
        ("  malloc'd / JS heap in use (MiB)",
         lambda s: f"{s['heap_used_kb'] / 1024:.1f}", None),
        ("RSS after the storms (MiB)",
         lambda s: f"{s['rss_after_kb'] / 1024:.1f}", "rss_after"),
        ("VmHWM after the storms (MiB)",
         lambda s: f"{s['hwm_after_kb'] / 1024:.1f}", None),
    ]
    names = [s["impl"] for s in sides]
    print(f"{'figure':40} " + " ".join(f"{n:>12}" for n in names)
          + f" {'dpf/node':>9}")
    for label, fn, rkey in rows:
        r = rt.get(rkey) if rkey else None
        print(f"{label:40} " + " ".join(f"{fn(s):>12}" for s in sides)
              + (f" {r:>9.2f}" if r is not None else ""))
    cm = res["controller_manager"]
    if cm:
        print(f"dpf-controller-manager --controllers=all idle "
              f"{cm['idle_s']:.0f} s: RSS {cm['rss_kb'] / 1024:.1f} MiB "
              f"(peak {cm['hwm_kb'] / 1024:.1f} MiB, {cm['threads']} "
              "threads)")
    v = res["versions"]
    print(f"versions: dpf {v['dpf']}, node {v['node']}, "
          f"@kubernetes/client-node {v['client_node']}")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build",
                    help="meson build directory (default: build)")
    ap.add_argument("--objects", type=int, default=10000)
    ap.add_argument("--updates", type=int, default=20000,
                    help="updates per storm (two storms per informer)")
    ap.add_argument("--concurrency", type=int, default=32,
                    help="loader requests in flight")
    ap.add_argument("--data-bytes", type=int, default=512,
                    help="bytes in each ConfigMap's data.payload")
    ap.add_argument("--idle", type=float, default=10.0,
                    help="seconds dpf-controller-manager idles before its "
                         "RSS is read (0 = skip it)")
    ap.add_argument("--order", default="dpf,client-node",
                    help="informers to run, in this order")
    ap.add_argument("--nice", type=int,
                    default=-10 if os.geteuid() == 0 else 0,
                    help="niceness added to this script and so to every "
                         "process it starts: server, loader, informers, "
                         "controller manager (default -10 as root, so other "
                         "work on the machine takes less of their CPU; 0 "
                         "otherwise)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (logs)")
    args = ap.parse_args()
    order = args.order.split(",")
    if any(o not in ("dpf", "client-node") for o in order) or \
            args.objects < 1 or args.updates < 1:
        ap.error("bad --order, --objects or --updates")
    args.build = os.path.abspath(args.build)
    if args.nice:
        os.nice(args.nice)
    mjs = node_setup(args.build) if "client-node" in order else None

    tmp = tempfile.mkdtemp(prefix="dpf-informer-bench-")
    srv = None
    res = {"objects": args.objects, "updates": args.updates,
           "concurrency": args.concurrency, "data_bytes": args.data_bytes,
           "order": order, "nice": args.nice, "sides": {}, "controller_manager": None,
           "load_start": os.getloadavg()[0],
           "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    try:
        srv = Server(args.build, tmp)
        for impl in order:
            argv = [os.path.join(args.build, "bench", "informer-bench"),
                    "watch"] if impl == "dpf" else ["node", mjs]
            log(f"{impl}: {args.objects} creates, 2 x {args.updates} updates")
            res["sides"][impl] = run_side(args, srv, impl, argv, tmp)
        if args.idle > 0:
            log(f"dpf-controller-manager: {args.idle:.0f} s idle")
            res["controller_manager"] = controller_manager_idle(args, srv,
                                                                tmp)
    finally:
        if srv:
            srv.stop()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    res["load_end"] = os.getloadavg()[0]
    ver = subprocess.run([os.path.join(args.build, "dpf-server",
                                       "dpf-server"), "--version"],
                         capture_output=True, text=True).stdout.strip()
    res["versions"] = {"dpf": ver,
                       "node": node_version() if mjs else None,
                       "client_node": client_node_version(mjs) if mjs
                       else None}
    res["ratios"] = ratios(res)
    res["goals"] = GOALS
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print_table(res)


if __name__ == "__main__":
    main()
