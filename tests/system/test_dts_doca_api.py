"""DOCA's telemetry exporter API, end to end: an application written from
DOCA's documentation (tests/system/doca-app/doca_telemetry_app.c), built
unchanged with `cc app.c $(pkg-config --cflags --libs
doca-telemetry-exporter)` against the build tree's uninstalled .pc, sends
events, labelled metrics and NetFlow records through dpf's library to a real
dts. They must arrive at

  - a real Prometheus scraping dts's /metrics (counters with their
    constant label and label set, the running total of the *_increment
    calls, gauges),
  - a Fluent Forward receiver (the events, field by field),
  - nfcapd (the flows, decoded by nfdump).

Everything listens on 127.0.0.1; every process is stopped by PID."""
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request

import pytest

from conftest import BUILD, binary, free_port, wait_for
from dtsio_util import Dts, free_udp_port, terminate
from test_dts_forward import ForwardServer
from test_dts_netflow import nfdump_flows

APP_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "doca-app", "doca_telemetry_app.c")


def _sanitize_flags():
    """-fsanitize=... when the build's libraries are sanitized (build-asan):
    the app is linked against them, so it needs the same runtime."""
    opts = os.path.join(BUILD, "meson-info", "intro-buildoptions.json")
    with open(opts) as f:
        for o in json.load(f):
            if o["name"] == "b_sanitize" and o["value"] not in ("none", []):
                v = o["value"]
                return ["-fsanitize=" + (",".join(v) if isinstance(v, list)
                                         else v)]
    return []


def build_app(tmp_path):
    """Compile the DOCA app with pkg-config, as a DOCA user would."""
    env = dict(os.environ,
               PKG_CONFIG_PATH=os.path.join(BUILD, "meson-uninstalled"))
    pc = subprocess.run(["pkg-config", "--cflags", "--libs",
                         "doca-telemetry-exporter"], env=env,
                        capture_output=True, text=True)
    assert pc.returncode == 0, f"pkg-config: {pc.stderr}"
    exe = str(tmp_path / "doca_telemetry_app")
    cc = subprocess.run(["cc", "-Wall", "-Wextra", "-Werror",
                         "-DDOCA_ALLOW_EXPERIMENTAL_API", APP_SRC, "-o", exe]
                        + _sanitize_flags() + pc.stdout.split(),
                        capture_output=True, text=True)
    assert cc.returncode == 0, f"cc failed:\n{cc.stderr}"
    return exe


class HostPrometheus:
    """A real Prometheus on 127.0.0.1 scraping one target every second."""

    def __init__(self, workdir, target):
        self.dir = os.path.join(workdir, "prometheus")
        os.makedirs(self.dir)
        self.port = free_port()
        self.cfg = os.path.join(self.dir, "prometheus.yml")
        with open(self.cfg, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "scrape_configs:\n"
                    "  - job_name: dts\n"
                    f"    static_configs: [{{targets: [\"{target}\"]}}]\n")
        self.logf = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file", self.cfg,
             "--storage.tsdb.path", os.path.join(self.dir, "tsdb"),
             "--web.listen-address", f"127.0.0.1:{self.port}"],
            stdout=self.logf, stderr=self.logf, stdin=subprocess.DEVNULL)
        wait_for(self._ready, 30, interval=0.2, what="prometheus ready")

    def _ready(self):
        with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
            return r.status == 200

    def query(self, expr):
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=5) as r:
            data = json.loads(r.read())
        assert data["status"] == "success", data
        return [(res["metric"], float(res["value"][1]))
                for res in data["data"]["result"]]

    def stop(self):
        terminate(self.proc)
        self.logf.close()


@pytest.fixture
def nfcapd(tmp_path):
    port = free_udp_port()
    nfdir = tmp_path / "nf"
    nfdir.mkdir()
    log = open(tmp_path / "nfcapd.log", "w")
    proc = subprocess.Popen(
        ["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", str(nfdir),
         "-t", "60", "-S", "0"], stdout=log, stderr=subprocess.STDOUT)
    yield {"port": port, "dir": nfdir, "proc": proc}
    terminate(proc)
    log.close()


def test_doca_api_app_reaches_prometheus_forward_and_nfcapd(tmp_path, nfcapd):
    for tool in ("prometheus", "nfcapd", "nfdump", "pkg-config", "cc"):
        assert shutil.which(tool), f"{tool} is not installed"
    exe = build_app(tmp_path)
    fwd = ForwardServer()
    dts = Dts(tmp_path, [
        "disable-provider=sysfs",
        "fluent-forward-enable=1", "fluent-forward-host=127.0.0.1",
        f"fluent-forward-port={fwd.port}", "fluent-forward-tag=doca_api",
        "netflow-collector-ip=127.0.0.1",
        f"netflow-collector-port={nfcapd['port']}", "netflow-version=9",
    ]).start()
    prom = None
    try:
        prom = HostPrometheus(str(tmp_path), f"127.0.0.1:{dts.port}")
        run = subprocess.run(
            [exe, str(dts.ipc_dir)], capture_output=True, text=True,
            timeout=60, env=dict(os.environ, LD_LIBRARY_PATH=os.path.join(
                BUILD, "libdoca-telemetry-exporter")))
        assert run.returncode == 0, f"app failed: {run.stdout}{run.stderr}"
        assert "ipc_status=0" in run.stdout  # CONNECTED
        assert "netflow_sent=4" in run.stdout

        # -- Prometheus: every series with the constant label and the set
        base = ('source_id="doca_app_src",source_tag="doca_app_tag",'
                'hostname="doca-test-host"')

        def value(expr):
            res = prom.query(expr)
            return res[0][1] if len(res) == 1 else None

        for iface, mult in (("eth0", 1), ("eth1", 2)):
            sel = f'{{{base},interface="{iface}"}}'
            # absolute counter: the last value (1000 + 2*100) * mult
            wait_for(lambda: value("dts_app_packets_sent_total" + sel)
                     == 1200 * mult, 40, interval=0.5,
                     what=f"packets_sent_total of {iface} in Prometheus")
            # three increments of 5: the running total
            assert value("dts_app_requests_total" + sel) == 15
            # gauge: the last value
            assert value("dts_app_bandwidth_mbps" + sel) == \
                pytest.approx((50.0 + 2 * 5.5) * mult)

        # -- Forward: the ten events, field by field
        def events():
            return [r[2] for r in fwd.snapshot()
                    if r[2].get("event_type") == "example_event"]
        wait_for(lambda: len(events()) == 10, 30,
                 what="10 example_event records at the Forward receiver")
        evs = sorted(events(), key=lambda r: r["event_number"])
        for i, r in enumerate(evs):
            assert r["event_number"] == i
            assert r["iter_num"] == i // 5
            assert r["string_number"] == i * 1000
            assert r["example_string"] == f"example_str_{i}"
            assert r["source_id"] == "doca_app_src"
            assert r["source_tag"] == "doca_app_tag"
            assert r["timestamp"] > 1_600_000_000 * 10**9  # ns since epoch
        assert all(r[0] == "doca_api" for r in fwd.snapshot())

        # -- NetFlow: dts sends its datagram at the end of a cycle
        dts.wait_metric("dts_netflow_records_total", lambda v: v == 4)
        assert dts.metric("dts_netflow_errors_total") == 0
    finally:
        if prom:
            prom.stop()
        fwd.close()
        assert dts.stop() == 0
    terminate(nfcapd["proc"])  # SIGTERM writes the nfcapd file
    got = nfdump_flows(nfcapd["dir"])
    want = {(f"192.168.120.{i + 1}", "192.168.121.9", 5353 + i, 8000,
             "TCP" if i % 2 else "UDP", 1909 + 100 * i, 9 + i)
            for i in range(4)}
    assert got == want


def test_sixteen_longest_labels_are_exported_and_reserved_refused(tmp_path):
    """The largest labelled sample the protocol allows (16 labels, 63-byte
    names, 127-byte values) is exported with every label; a reserved label
    name is refused by the library before it reaches dts."""
    dts = Dts(tmp_path, ["disable-provider=sysfs"]).start()
    try:
        r = subprocess.run([binary("tests", "system", "dts-labels-check"),
                            dts.socket_path], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ok rc=0 bad=-22" in r.stdout  # -EINVAL for __name__

        def line():
            return [ln for ln in dts.metrics_text().splitlines()
                    if ln.startswith("dts_app_max_labels_total{")]
        got = wait_for(line, 20, what="dts_app_max_labels_total")
        assert len(got) == 1
        for i in range(16):
            name = chr(ord("a") + i) * 63
            value = str(i % 10) * 127
            assert f'{name}="{value}"' in got[0]
        assert got[0].endswith(" 7")
        assert dts.metric("dts_ipc_errors_total") == 0
        assert "dts_app_bad" not in dts.metrics_text()
    finally:
        assert dts.stop() == 0
