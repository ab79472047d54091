"""dts with DOCA's configuration files (issue 11, items 1 and 2).

The files are written from DOCA's documentation: the DTS guide's
dts_config.ini keys and providers, the CollectX option reference DOCA's
collector inherits (units: data-file-size-limit in MB, update in ms),
NetQ's counter-set setup (prometheus-cset-dir, prometheus-fset-dir,
prometheus-fset-indexes) and its whitelist of DTS counter names. dts runs
on a fake sysfs tree so every series is known in advance.
"""
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import NetnsFactory, binary, free_port, wait_for
from dtsio_util import METRIC_RE, Dts, free_udp_port, run_example
from dts_helpers import Dts as NsDts
from dts_helpers import Prometheus, VethPair


def fake_sysfs(root):
    """eth9 statistics, two IB devices (port and hw counters), a hwmon."""
    net = root / "class/net/eth9/statistics"
    net.mkdir(parents=True)
    for name, v in {"rx_bytes": 1000, "tx_bytes": 2000, "tx_packets": 30,
                    "rx_compressed": 0}.items():
        (net / name).write_text(f"{v}\n")
    for dev, hw in (("mlx5_0", "rp_cnp_handled"), ("mlx5_1", "np_cnp_sent")):
        port = root / f"class/infiniband/{dev}/ports/1"
        (port / "counters").mkdir(parents=True)
        (port / "counters/port_rcv_data").write_text("400\n")
        (port / "hw_counters").mkdir()
        (port / "hw_counters" / hw).write_text("7\n")
    hwmon = root / "class/hwmon/hwmon0"
    hwmon.mkdir(parents=True)
    (hwmon / "name").write_text("cpu\n")
    (hwmon / "temp1_input").write_text("42000\n")
    return root


def get(d, path):
    """(status, content type, body) of GET path on dts's endpoint."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{d.port}{path}",
                                    timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def names_of(text):
    """Metric names of a text exposition."""
    out = set()
    for line in text.splitlines():
        m = METRIC_RE.match(line)
        if m and not line.startswith("#"):
            out.add(m.group(1))
    return out


def series_of(text):
    """{name + labels text: value} of a text exposition."""
    out = {}
    for line in text.splitlines():
        m = METRIC_RE.match(line)
        if m and not line.startswith("#"):
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


# Keys DOCA documents that configure outputs or tuning this build does not
# have: accepted and named in the log, never "unknown".
NOTED_KEYS = {
    "sync-time-limit": "10000", "counter-buffer-size": "65536",
    "event-buffer-size": "65536",
    "pedantic": "false", "collect-on-idle": "false", "standalone": "false",
    "spread-workload": "false", "idle-time-limit": "0",
    "comm-time-limit": "0", "port": "27500", "run-over-tcp": "false",
    "runtime-configuration-folder": "/tmp/none", "exporters-dir": "/tmp",
    "metadata-file": "/tmp/none", "schema-path": "/tmp/none",
    "data-template": "x", "data-events-template": "x",
    "influx-db": "collectx", "influx-bulk": "300",
    "open-telemetry-counter-set": "netq", "open-telemetry-field-set": "netq",
}
# Keys whose output cannot exist here: a warning names each.
WARNED_KEYS = {
    "prometheus-cert": "/config/certs/srv.pem",
    "prometheus-key": "/config/certs/srv.key",
    "open-telemetry-receiver": "http://127.0.0.1:9/v1/metrics",
    "influx": "http://127.0.0.1:9/write",
    "diagnostic-data-yml-file": "/config/diag.yml",
    "hcaperf.mlx5_0": "sample",
}


@pytest.fixture
def doca_setup(tmp_path):
    """A DOCA-style config directory: dts_config.ini with every documented
    key, prometheus_configs/cset with a .cset and a .fset, a Forward .exp,
    level_labels.ini."""
    sysfs = fake_sysfs(tmp_path / "sys")
    conf = tmp_path / "config"
    cset = conf / "prometheus_configs" / "cset"
    cset.mkdir(parents=True)
    (cset / "netq.cset").write_text(
        "# counters a NetQ dashboard reads\nrx_bytes\n^hw_\nport_rcv_data\n")
    (cset / "netq.fset").write_text("# fields kept\ndevice\n")
    (cset / "ib.cset").write_text("cnp\n")
    fb = conf / "fluent_bit_configs"
    fb.mkdir()
    fwd_port = free_port()
    (fb / "forward.exp").write_text(
        f"name=forward\nplugin_name=forward\nenable=1\nhost=127.0.0.1\n"
        f"port={fwd_port}\ntag=netq\n")
    (conf / "level_labels.ini").write_text("[global_labels]\nrack=r7\n")
    data = tmp_path / "data"
    data.mkdir()
    lines = [
        "enable-provider=sysfs",
        "enable-provider=hcaperf",
        "enable-provider=grpc.ethtool",
        "enable-provider=ngauge",
        "enable-provider=tc",
        "disable-provider=tc",
        "enable-provider=fluent_aggr",
        f"fluent-aggr-port={free_port()}",
        "enable-provider=prometheus_aggr",
        "exit-on-plugin-load-error=false",
        "name-match=1",
        "include-names=eth9,mlx5_*,cpu,*cnp*",
        "exclude-names=*compressed*",
        f"output={data}",
        "data-file-size-limit=1",
        "data-file-time-limit=3600",
        f"fluentbit-config-dir={fb}",
        f"level-labels-file={conf / 'level_labels.ini'}",
        f"netflow-collector-ip=127.0.0.1",
        f"netflow-collector-port={free_udp_port()}",
        f"prometheus-cset-dir={cset}",
        f"prometheus-fset-dir={cset}",
        "prometheus-fset-indexes=device_name,^id$,@id",
        "prometheus-indexes=device,provider,rack,^source,part",
        "prometheus-ignore-names=tx_bytes",
        "prometheus-ignore-tagss=hidden",
        "sysfs.component.hwmon=0",
        "sysfs.component.mlx5_1=ib_port",
    ]
    lines += [f"{k}={v}" for k, v in NOTED_KEYS.items()]
    lines += [f"{k}={v}" for k, v in WARNED_KEYS.items()]
    d = Dts(tmp_path, lines, update_ms=300,
            extra_args=["--sysfs-root", str(sysfs)])
    with open(d.conf / "dts_config.ini", "a") as f:
        f.write(f"prometheus-aggr-endpoint.1="
                f"http://127.0.0.1:{d.port}/ib\n")
    return d, data, cset


def test_doca_config_every_key_has_its_effect(doca_setup):
    d, data, _ = doca_setup
    d.start()
    try:
        # update (ms)
        d.wait_metric("dts_update_period_seconds", lambda v: v == 0.3)
        # enable-provider / disable-provider; hardware and remote
        # providers are reported, not fatal
        for p in ("hcaperf", "grpc.ethtool", "ngauge"):
            d.wait_metric("dts_provider_up", lambda v: v == 0,
                          labels=f'{{provider="{p}"}}')
        d.wait_metric("dts_provider_up", lambda v: v == 1,
                      labels='{provider="sysfs"}')
        d.wait_metric("dts_provider_up", lambda v: v == 1,
                      labels='{provider="fluent_aggr"}')
        text = d.metrics_text()
        assert 'provider="tc"' not in text
        s = series_of(text)
        # counter selection (wildcard by number) and level labels; the
        # index list dropped `port`
        assert s['dts_net_rx_bytes_total{device="eth9",rack="r7"}'] == 1000
        assert 'dts_ib_port_rcv_data_total{device="mlx5_0",rack="r7"}' in s
        assert not any("compressed" in k for k in s)
        assert "port=" not in text
        # prometheus-ignore-names
        assert "dts_net_tx_bytes_total" not in names_of(text)
        assert "dts_net_tx_packets_total" in names_of(text)
        # sysfs.component.hwmon=0 and sysfs.component.mlx5_1=ib_port
        assert not any(n.startswith("dts_hwmon") for n in names_of(text))
        assert 'dts_ib_hw_rp_cnp_handled_total{device="mlx5_0",rack="r7"}' \
            in s
        assert "dts_ib_hw_np_cnp_sent_total" not in names_of(text)
        assert 'dts_ib_port_rcv_data_total{device="mlx5_1",rack="r7"}' in s
        # prometheus-aggr-endpoint.1 scrapes our own /ib set (its status
        # series have no device, so include-names leaves only the data)
        src = f'source="127.0.0.1:{d.port}/ib"'
        wait_for(lambda: any(k.startswith("dts_ib_hw_rp_cnp_handled_total{")
                             and src in k
                             for k in series_of(d.metrics_text())),
                 timeout=20, what="series re-exported from /ib")
        # Forward .exp, NetFlow target, data files (output)
        d.wait_metric("dts_fluent_forward_destinations", lambda v: v == 1)
        assert "dts_netflow_packets_total" in names_of(d.metrics_text())
        wait_for(lambda: any(f.endswith(".dtsd") for f in os.listdir(data)),
                 timeout=20, what="a data file in output")
        # prometheus-ignore-tagss: an app's series under an ignored tag
        # are not exported, another tag's are
        run_example(d, "--source-tag", "hidden", "--source-id", "h1")
        run_example(d, "--source-tag", "shown", "--source-id", "s1")
        wait_for(lambda: '"source_tag":"shown"' in d.metrics_text("/json"),
                 timeout=20, what="the shown app's series")
        assert '"hidden"' not in d.metrics_text("/json")
        log = d.log.read_text()
        assert "configuration rejected" not in log
        assert "unknown key" not in log, log
        for k in NOTED_KEYS:
            assert f"key {k} is accepted but not implemented" in log, k
        for k in WARNED_KEYS:
            assert "config key not available" in log
            assert f'{k}' in log and "has no effect" in log, k
        assert "hcaperf.mlx5_0=sample has no effect" in log
    finally:
        assert d.stop() == 0


def test_cset_fset_endpoints(doca_setup):
    d, _, _ = doca_setup
    d.start()
    try:
        d.wait_metric("dts_provider_up", lambda v: v == 1,
                      labels='{provider="sysfs"}')
        wait_for(lambda: "dts_ib_hw_rp_cnp_handled_total" in
                 d.metrics_text(), timeout=20, what="sysfs series")
        full = names_of(d.metrics_text())
        # /cset/<name>: only the counters a token matches, all labels of
        # the index list
        code, ctype, body = get(d, "/cset/netq")
        assert code == 200 and ctype.startswith("text/plain")
        assert names_of(body) == {"dts_net_rx_bytes_total",
                                  "dts_ib_port_rcv_data_total",
                                  "dts_ib_hw_rp_cnp_handled_total"}
        assert 'rack="r7"' in body
        assert len(names_of(body)) < len(full)
        # /<name>: the .cset and the .fset of that name -> fields kept are
        # the fset's (device) plus the fset indexes
        code, _, body = get(d, "/netq")
        assert code == 200
        assert 'dts_net_rx_bytes_total{device="eth9"} 1000' in body
        assert "rack=" not in body
        # /fset/<name>: every counter, labels narrowed to the fset's
        code, _, body = get(d, "/fset/netq")
        assert code == 200 and "rack=" not in body
        assert "dts_net_tx_packets_total" in names_of(body)
        # formats: /json and /csv prefixes, for the sets and everything
        code, ctype, body = get(d, "/json/cset/netq")
        assert code == 200 and ctype == "application/json"
        doc = json.loads(body)
        assert {m["name"] for m in doc["metrics"]} == {
            "dts_net_rx_bytes_total", "dts_ib_port_rcv_data_total",
            "dts_ib_hw_rp_cnp_handled_total"}
        rx = [m for m in doc["metrics"]
              if m["name"] == "dts_net_rx_bytes_total"][0]
        assert rx["labels"] == {"device": "eth9", "rack": "r7"}
        assert rx["value"] == 1000 and rx["type"] == "counter"
        code, _, body = get(d, "/json")
        assert code == 200 and len(json.loads(body)["metrics"]) > 10
        code, ctype, body = get(d, "/csv/netq")
        assert code == 200 and ctype.startswith("text/csv")
        rows = body.splitlines()
        assert rows[0] == "metric,value,labels"
        assert 'dts_net_rx_bytes_total,1000,"device=""eth9"""' in rows
        code, _, body = get(d, "/csv/metrics")
        assert code == 200 and len(body.splitlines()) > 10
        # ib.cset has no .fset: /fset/ib is unknown, /ib and /cset/ib work
        assert get(d, "/fset/ib")[0] == 404
        assert names_of(get(d, "/ib")[2]) == {
            "dts_ib_hw_rp_cnp_handled_total"}
        # unknown sets answer 404 naming the set
        code, _, body = get(d, "/nosuch")
        assert code == 404 and '"nosuch"' in body
        assert get(d, "/cset/nosuch")[0] == 404
    finally:
        assert d.stop() == 0


def test_bad_set_files_are_refused(tmp_path):
    """A .cset with a bad regex, or a FIFO as .cset, stops dts at start
    with the file (and line) named; a missing set directory too."""
    for case in ("regex", "fifo", "missing"):
        work = tmp_path / case
        work.mkdir()
        cset = work / "cset"
        if case != "missing":
            cset.mkdir()
        if case == "regex":
            (cset / "bad.cset").write_text("rx_bytes\n(open\n")
        elif case == "fifo":
            os.mkfifo(cset / "pipe.cset")
        d = Dts(work, [f"prometheus-cset-dir={cset}"])
        r = subprocess.run(
            [binary("dts", "dts"), "--config-dir", str(d.conf), "--ipc-dir",
             str(d.ipc_dir)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, (case, r.stderr)
        want = {"regex": "bad.cset:2:", "fifo": "pipe.cset: not a regular",
                "missing": "prometheus-cset-dir"}[case]
        assert want in r.stderr, (case, r.stderr)


def test_doca_naming_scraped_by_prometheus(tmp_path):
    """metric-naming=doca: a real Prometheus finds the counters under the
    names NetQ's whitelist uses (rx_bytes, tx_packets, hw_rp_cnp_handled,
    ethtool's own names) with a provider label, and /metrics passes
    promtool's parser."""
    factory = NetnsFactory()
    dts = prom = None
    sysfs = fake_sysfs(tmp_path / "sys")
    try:
        pair = VethPair(factory, prefix="dtn")
        dts = NsDts(pair.ns_a, str(tmp_path / "w"),
                    extra_args=["--sysfs-root", str(sysfs)])
        dts.write_config(
            "update=250\nenable-provider=sysfs\nenable-provider=ethtool\n"
            "metric-naming=doca\n"
            f"prometheus=http://127.0.0.1:{dts.port}\n")
        dts.start()
        prom = Prometheus(pair.ns_a, str(tmp_path / "w"),
                          [f"127.0.0.1:{dts.port}"])
        prom.start()
        wait_for(lambda: prom.value('hw_rp_cnp_handled{device="mlx5_0"}')
                 is not None, 40, interval=0.5, what="a scrape of dts")
        assert prom.value('hw_rp_cnp_handled{device="mlx5_0",'
                          'provider="sysfs"}') == 7
        assert prom.value('rx_bytes{device="eth9",provider="sysfs"}') == 1000
        assert prom.value('tx_packets{device="eth9"}') == 30
        assert prom.value('port_rcv_data{device="mlx5_0",port="1"}') == 400
        # ethtool on the veth in dts's namespace: the driver's own name
        assert prom.value(f'peer_ifindex{{device="{pair.dev_a}",'
                          f'provider="ethtool"}}') is not None
        # no dts_ names for those counters any more; status series keep
        # theirs
        assert prom.value('dts_net_rx_bytes_total{device="eth9"}') is None
        assert prom.value('dts_provider_up{provider="ethtool"}') == 1
        assert prom.value('up{job="dts"}') == 1
        body = dts.metrics_text()
        r = subprocess.run(["promtool", "check", "metrics"], input=body,
                           capture_output=True, text=True)
        # promtool lints DOCA's counter names (no _total) but must find no
        # parse error
        assert "error while linting" not in (r.stdout + r.stderr)
    finally:
        if prom:
            prom.stop()
        code = dts.stop() if dts else 0
        factory.cleanup()
        assert code == 0


def test_counter_file_and_exit_on_plugin_load_error(tmp_path):
    """counter-file (DOCA: the counter names to collect, one per line)
    selects like include-names; exit-on-plugin-load-error=true makes a
    provider that cannot start stop dts at start-up, naming it."""
    sysfs = fake_sysfs(tmp_path / "sys")
    names = tmp_path / "counters.txt"
    names.write_text("# DOCA counter names\nrx_bytes\nport_rcv_data\n")
    work = tmp_path / "run"
    work.mkdir()
    d = Dts(work, [f"counter-file={names}", "name-match=0"],
            extra_args=["--sysfs-root", str(sysfs)])
    d.start()
    try:
        wait_for(lambda: "dts_net_rx_bytes_total" in d.metrics_text(),
                 timeout=20, what="rx_bytes selected by counter-file")
        got = names_of(d.metrics_text())
        assert "dts_ib_port_rcv_data_total" in got
        assert "dts_net_tx_bytes_total" not in got
        assert "dts_ib_hw_rp_cnp_handled_total" not in got
    finally:
        assert d.stop() == 0
    work = tmp_path / "exit"
    work.mkdir()
    d = Dts(work, ["enable-provider=hcaperf", "exit-on-plugin-load-error=1"])
    r = subprocess.run(
        [binary("dts", "dts"), "--config-dir", str(d.conf), "--ipc-dir",
         str(d.ipc_dir)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    assert "provider hcaperf could not be started" in r.stderr
