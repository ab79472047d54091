"""Helpers for the dts system tests: a dts daemon and a real Prometheus,
both running inside a test network namespace, plus a veth pair whose
traffic the tests generate and then look for in PromQL.

Everything is started by PID and stopped by PID; netns are removed by the
conftest `netns` factory (deleting a netns removes its veths)."""
import json
import os
import random
import signal
import subprocess
import tempfile
import time
import urllib.parse
import uuid

from conftest import binary, wait_for


def ns_exec(ns, args, **kw):
    """Run a command inside netns ns."""
    return subprocess.run(["ip", "netns", "exec", ns] + list(args),
                          capture_output=True, text=True, **kw)


def ns_curl(ns, url, timeout=10):
    """GET url from inside ns; returns (http_status, body)."""
    r = ns_exec(ns, ["curl", "-s", "-m", str(timeout), "-w", "\n%{http_code}",
                     url], timeout=timeout + 5)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels.items())): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
            labels_txt, value = rest.rsplit("} ", 1)
            labels = {}
            # Our label values never contain '",' in these tests.
            for part in labels_txt.split('",'):
                if not part:
                    continue
                k, v = part.split('="', 1)
                labels[k] = v.rstrip('"')
        else:
            name, value = line.split(" ", 1)
            labels = {}
        out[(name, frozenset(labels.items()))] = float(value)
    return out


def series(metrics, name, **labels):
    """Values of every series of name whose labels include `labels`."""
    want = set(labels.items())
    return [v for (n, ls), v in metrics.items()
            if n == name and want <= set(ls)]


class VethPair:
    """A veth pair between two netns with IPv4 addresses; IPv6 is off so
    no background neighbour discovery traffic disturbs byte counts."""

    def __init__(self, netns_factory, prefix="dtp"):
        tag = uuid.uuid4().hex[:5]
        self.ns_a = netns_factory(prefix + "a")
        self.ns_b = netns_factory(prefix + "b")
        self.dev_a = f"{prefix}{tag}a"
        self.dev_b = f"{prefix}{tag}b"
        self.ip_a = "10.251.7.1"
        self.ip_b = "10.251.7.2"
        for ns in (self.ns_a, self.ns_b):
            ns_exec(ns, ["sysctl", "-qw",
                         "net.ipv6.conf.all.disable_ipv6=1"], check=True)
            ns_exec(ns, ["sysctl", "-qw",
                         "net.ipv6.conf.default.disable_ipv6=1"], check=True)
        subprocess.run(["ip", "link", "add", self.dev_a, "type", "veth",
                        "peer", "name", self.dev_b], check=True)
        subprocess.run(["ip", "link", "set", self.dev_a, "netns", self.ns_a],
                       check=True)
        subprocess.run(["ip", "link", "set", self.dev_b, "netns", self.ns_b],
                       check=True)
        for ns, dev, ip in ((self.ns_a, self.dev_a, self.ip_a),
                            (self.ns_b, self.dev_b, self.ip_b)):
            subprocess.run(["ip", "-n", ns, "addr", "add", ip + "/24", "dev",
                            dev], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"],
                           check=True)

    def sysfs_counter(self, name):
        r = ns_exec(self.ns_a, ["cat",
                                f"/sys/class/net/{self.dev_a}/statistics/{name}"],
                    check=True)
        return int(r.stdout)


class Dts:
    """A dts process inside netns ns with its own config dir."""

    def __init__(self, ns, workdir, config_text=None, port=None,
                 extra_args=()):
        self.ns = ns
        self.dir = workdir
        self.config_dir = os.path.join(workdir, "config")
        os.makedirs(self.config_dir, exist_ok=True)
        self.port = port or random.randint(20000, 40000)
        self.log = os.path.join(workdir, "dts.log")
        self.proc = None
        self.extra_args = list(extra_args)
        if config_text is not None:
            self.write_config(config_text)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def write_config(self, text, name="dts_config.ini"):
        """Replace the config file atomically (as an operator's tool would)."""
        path = os.path.join(self.config_dir, name)
        tmp = path + ".tmp~"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)

    def start(self, wait=True):
        args = ["ip", "netns", "exec", self.ns, binary("dts", "dts"),
                "--config-dir", self.config_dir,
                "--ipc-dir", os.path.join(self.dir, "ipc"),
                "--log-level", "debug"] + self.extra_args
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdout=logf, stderr=logf,
                                     stdin=subprocess.DEVNULL)
        logf.close()
        if wait:
            wait_for(self._healthy, 20, what="dts /healthz")
        return self

    def _healthy(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"dts exited {self.proc.returncode}: "
                               + self.log_text()[-3000:])
        return ns_curl(self.ns, self.url + "/healthz", 2)[0] == 200

    def metrics_text(self):
        code, body = ns_curl(self.ns, self.url + "/metrics")
        assert code == 200, f"/metrics answered {code}"
        return body

    def metrics(self):
        return parse_metrics(self.metrics_text())

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None


class Prometheus:
    """A real Prometheus inside netns ns scraping targets every second."""

    def __init__(self, ns, workdir, targets):
        self.ns = ns
        self.dir = os.path.join(workdir, "prometheus")
        os.makedirs(self.dir, exist_ok=True)
        self.port = random.randint(40001, 60000)
        self.cfg = os.path.join(self.dir, "prometheus.yml")
        with open(self.cfg, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "scrape_configs:\n"
                    "  - job_name: dts\n"
                    f"    static_configs: [{{targets: {json.dumps(targets)}}}]\n")
        self.log = os.path.join(self.dir, "prometheus.log")
        self.proc = None

    def start(self):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "prometheus",
             "--config.file", self.cfg,
             "--storage.tsdb.path", os.path.join(self.dir, "tsdb"),
             "--web.listen-address", f"127.0.0.1:{self.port}"],
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        logf.close()
        wait_for(lambda: ns_curl(self.ns, self.base + "/-/ready", 2)[0] == 200,
                 30, what="prometheus ready")
        return self

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def query(self, expr):
        """Instant query -> list of (labels dict, float value)."""
        url = self.base + "/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr})
        code, body = ns_curl(self.ns, url)
        assert code == 200, f"query {expr}: {code} {body[:300]}"
        data = json.loads(body)
        assert data["status"] == "success", data
        return [(r["metric"], float(r["value"][1]))
                for r in data["data"]["result"]]

    def value(self, expr):
        """The single value of expr, or None if it has no result."""
        res = self.query(expr)
        assert len(res) <= 1, f"{expr}: several series {res}"
        return res[0][1] if res else None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


UDP_BLASTER = r"""
import socket, sys, time
dst, port, size, pps, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"x" * size
start = time.monotonic()
sent = 0
while True:
    now = time.monotonic() - start
    if now >= secs:
        break
    due = int(now * pps) + 1
    while sent < due:
        s.sendto(payload, (dst, port))
        sent += 1
    time.sleep(0.002)
print(sent)
"""


def start_udp_blaster(ns, dst, size, pps, secs):
    """Send UDP datagrams of `size` payload bytes at `pps` for `secs`
    from inside ns; returns the Popen (stdout: number sent)."""
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", UDP_BLASTER,
         dst, "9", str(size), str(pps), str(secs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
