"""dts configuration: telemetry-init writes a default config, changes to
dts_config.ini apply at run time without a restart, a malformed file is
rejected (logged with its line, counted) while the old config keeps
running, the DPF YAML form works, and the command line behaves."""
import json
import os
import random
import re
import subprocess
import time

import pytest

from conftest import binary, wait_for
from dts_helpers import Dts, VethPair, ns_curl, series


def _cfg(dts, *lines):
    return "\n".join(lines + (f"prometheus=http://127.0.0.1:{dts.port}",)) \
        + "\n"


@pytest.fixture
def pair(netns):
    return VethPair(netns, prefix="dtc")


def test_help_and_version():
    r = subprocess.run([binary("dts", "dts"), "--help"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0
    for opt in ("--config-dir", "--sysfs-root", "--log-level", "--version"):
        assert opt in r.stdout
    r = subprocess.run([binary("dts", "dts"), "--version"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and re.match(r"dts \d+\.\d+\.\d+", r.stdout)
    r = subprocess.run([binary("dts", "dts"), "--bogus"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2


def test_empty_config_dir_gets_default_config(netns, tmp_path):
    """telemetry-init writes the default file: sysfs on, Prometheus off as
    DOCA ships it; uncommenting its prometheus line turns the endpoint on
    at run time."""
    ns = netns("dtcd")
    dts = Dts(ns, str(tmp_path), port=9100)  # the default config's port
    try:
        dts.start(wait=False)
        wait_for(lambda: "prometheus endpoint off" in dts.log_text(), 20,
                 what="dts up without an endpoint")
        ini = os.path.join(dts.config_dir, "dts_config.ini")
        text = open(ini).read()
        assert "update=1000" in text
        assert "enable-provider=sysfs" in text
        assert "\n#prometheus=http://0.0.0.0:9100\n" in text
        assert "telemetry-init" in dts.log_text()
        assert ns_curl(ns, dts.url + "/healthz", 2)[0] == 0
        dts.write_config(text.replace("#prometheus=", "prometheus="))
        wait_for(dts._healthy, 20, what="endpoint after uncommenting")
        m = dts.metrics()
        assert series(m, "dts_net_rx_bytes_total", device="lo")
        assert series(m, "dts_update_period_seconds") == [1.0]
    finally:
        assert dts.stop() == 0


def test_update_period_change_applies_without_restart(pair, tmp_path):
    dts = Dts(pair.ns_a, str(tmp_path))
    dts.write_config(_cfg(dts, "update=1000"))
    try:
        dts.start()
        m = dts.metrics()
        start = series(m, "dts_start_time_seconds")
        assert series(m, "dts_update_period_seconds") == [1.0]
        dts.write_config(_cfg(dts, "update=100"))
        wait_for(lambda: series(dts.metrics(), "dts_update_period_seconds")
                 == [0.1], 10, what="update=100 applied")
        # Collections now run ~10 per second.
        c0 = series(dts.metrics(), "dts_collections_total")[0]
        time.sleep(2)
        c1 = series(dts.metrics(), "dts_collections_total")[0]
        assert c1 - c0 >= 12, (c0, c1)
        # Same process: no restart happened.
        assert dts.proc.poll() is None
        assert series(dts.metrics(), "dts_start_time_seconds") == start
        assert series(dts.metrics(), "dts_config_last_reload_successful") \
            == [1.0]
    finally:
        assert dts.stop() == 0


def test_include_names_change_applies(pair, tmp_path):
    dts = Dts(pair.ns_a, str(tmp_path))
    dts.write_config(_cfg(dts, "update=200", "include-names=lo"))
    try:
        dts.start()
        m = dts.metrics()
        assert series(m, "dts_net_rx_bytes_total", device="lo")
        assert not series(m, "dts_net_rx_bytes_total", device=pair.dev_a)
        dts.write_config(_cfg(dts, "update=200",
                              f"include-names={pair.dev_a}"))

        def switched():
            m = dts.metrics()
            return (series(m, "dts_net_rx_bytes_total", device=pair.dev_a)
                    and not series(m, "dts_net_rx_bytes_total", device="lo"))
        wait_for(switched, 10, what="include-names switch")
        # exclude-names with a regex also applies.
        dts.write_config(_cfg(dts, "update=200", "name-match=regex",
                              "exclude-names=^dtc.*a$"))

        def excluded():
            m = dts.metrics()
            return (series(m, "dts_net_rx_bytes_total", device="lo")
                    and not series(m, "dts_net_rx_bytes_total",
                                   device=pair.dev_a))
        wait_for(excluded, 10, what="exclude-names regex")
    finally:
        assert dts.stop() == 0


def test_malformed_config_rejected_old_one_kept(pair, tmp_path):
    dts = Dts(pair.ns_a, str(tmp_path))
    dts.write_config(_cfg(dts, "update=300", "enable-provider=tc"))
    try:
        dts.start()
        wait_for(lambda: series(dts.metrics(), "dts_provider_up",
                                provider="tc") == [1.0], 10)
        dts.write_config("update=100\n"
                         "enable-provider=ethtool\n"
                         "this is not a key value line\n")
        wait_for(lambda: series(dts.metrics(), "dts_config_errors_total")
                 == [1.0], 10, what="rejection counted")
        m = dts.metrics()
        assert series(m, "dts_config_last_reload_successful") == [0.0]
        # The old configuration still runs: period, providers, endpoint.
        assert series(m, "dts_update_period_seconds") == [0.3]
        assert series(m, "dts_provider_up", provider="tc") == [1.0]
        assert not series(m, "dts_provider_up", provider="ethtool")
        log = dts.log_text()
        assert re.search(r"level=error .*configuration rejected.*"
                         r"dts_config\.ini:3: expected key=value", log), log
        # A bad value is rejected the same way, naming the key.
        dts.write_config(_cfg(dts, "update=soon"))
        wait_for(lambda: series(dts.metrics(), "dts_config_errors_total")
                 == [2.0], 10)
        # The newest rejection names the key. (Not simply the last log
        # line: at debug level the HTTP thread logs each scrape, and the
        # scrape that saw the count may be logged after the rejection.)
        rejected = [ln for ln in dts.log_text().splitlines()
                    if "configuration rejected" in ln]
        assert "update" in rejected[-1], rejected
        # Fixing the file applies it.
        dts.write_config(_cfg(dts, "update=100", "enable-provider=ethtool"))
        wait_for(lambda: series(dts.metrics(), "dts_provider_up",
                                provider="ethtool") == [1.0], 10)
        m = dts.metrics()
        assert series(m, "dts_config_last_reload_successful") == [1.0]
        assert not series(m, "dts_provider_up", provider="tc")
        assert dts.proc.poll() is None
    finally:
        assert dts.stop() == 0


def test_forward_enabled_without_host_rejected(pair, tmp_path):
    """fluent-forward-enable=1 with no fluent-forward-host: dts refuses to
    start on it, and a running dts rejects it on reload, naming the key,
    and keeps its old configuration (no forward output is started)."""
    first = Dts(pair.ns_a, str(tmp_path / "a"))
    first.write_config(_cfg(first, "update=200", "fluent-forward-enable=1",
                            "fluent-forward-port=24224"))
    first.start(wait=False)
    try:
        code = first.proc.wait(20)
    finally:
        first.stop()
    assert code != 0
    assert "fluent-forward-host: required when forwarding is enabled" in \
        first.log_text(), first.log_text()

    dts = Dts(pair.ns_a, str(tmp_path / "b"))
    dts.write_config(_cfg(dts, "update=300"))
    try:
        dts.start()
        dts.write_config(_cfg(dts, "update=100", "fluent-forward-enable=1",
                              "fluent-forward-port=24224"))
        wait_for(lambda: series(dts.metrics(), "dts_config_errors_total")
                 == [1.0], 10, what="rejection counted")
        m = dts.metrics()
        assert series(m, "dts_config_last_reload_successful") == [0.0]
        assert series(m, "dts_update_period_seconds") == [0.3]
        assert "fluent forward output" not in dts.log_text()
        rejected = [ln for ln in dts.log_text().splitlines()
                    if "configuration rejected" in ln]
        assert rejected and "fluent-forward-host: required when " \
            "forwarding is enabled" in rejected[-1], rejected
        assert dts.proc.poll() is None
    finally:
        assert dts.stop() == 0


def test_dpf_yaml_configmapdata(pair, tmp_path):
    dts = Dts(pair.ns_a, str(tmp_path), port=9100)
    dts.write_config("configMapData:\n"
                     "  providers: \"sysfs,ethtool\"\n"
                     "  general:\n"
                     "    update: 400\n"
                     "    sync-time-limit: 10000\n"
                     "  prometheus:\n"
                     "    enable: 1\n", name="dts_config.yaml")
    try:
        dts.start()
        m = dts.metrics()
        assert series(m, "dts_update_period_seconds") == [0.4]
        assert series(m, "dts_provider_up", provider="ethtool") == [1.0]
        assert series(m, "dts_ethtool_peer_ifindex", device=pair.dev_a)
    finally:
        assert dts.stop() == 0


def test_level_labels_and_sighup(pair, tmp_path):
    dts = Dts(pair.ns_a, str(tmp_path))
    labels = os.path.join(dts.config_dir, "level_labels.ini")
    with open(labels, "w") as f:
        f.write("[global_labels]\npod=pod7\nrack=r1\n"
                f"[device_labels]\n{pair.dev_a}=rail|3\n")
    dts.write_config(_cfg(dts, "update=200", f"level-labels-file={labels}"))
    try:
        dts.start()
        text = dts.metrics_text()
        assert (f'dts_net_rx_bytes_total{{device="{pair.dev_a}",rail="3",'
                f'pod="pod7",rack="r1"}}') in text
        assert 'dts_net_rx_bytes_total{device="lo",pod="pod7",rack="r1"}' \
            in text
        # Changing the labels file is picked up too.
        with open(labels + ".new", "w") as f:
            f.write("[global_labels]\npod=pod8\n")
        os.rename(labels + ".new", labels)
        wait_for(lambda: 'pod="pod8"' in dts.metrics_text(), 10)
        # SIGHUP reloads as well (and does not kill the daemon).
        subprocess.run(["kill", "-HUP", str(dts.proc.pid)], check=True)
        wait_for(lambda: 'msg="reloading"' in dts.log_text(), 10)
        assert dts.proc.poll() is None
    finally:
        assert dts.stop() == 0


def test_sigterm_exits_cleanly(pair, tmp_path):
    dts = Dts(pair.ns_a, str(tmp_path))
    dts.write_config(_cfg(dts, "update=100", "enable-provider=tc",
                          "enable-provider=ethtool",
                          "enable-provider=ifconfig"))
    dts.start()
    assert dts.stop() == 0
    assert 'msg="stopped" program=dts rc=0' in dts.log_text()
    assert "ERROR: AddressSanitizer" not in dts.log_text()
    assert ns_curl(pair.ns_a, dts.url + "/healthz", 2)[0] == 0


FORWARD_RECEIVER = r"""
import socket, sys, msgpack, json
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(4)
out = open(sys.argv[2], "a")
while True:
    c, _ = srv.accept()
    u = msgpack.Unpacker(raw=False, strict_map_key=False,
                         ext_hook=lambda code, data: data.hex())
    while True:
        data = c.recv(65536)
        if not data:
            break
        u.feed(data)
        for msg in u:
            tag, entries = msg[0], msg[1]
            for e in entries:
                out.write(json.dumps({"tag": tag, "record": e[1]}) + "\n")
            out.flush()
"""


def test_forward_output_from_exp_file(pair, tmp_path):
    dts = Dts(pair.ns_a, str(tmp_path))
    fport = random.randint(20000, 40000)
    got = os.path.join(str(tmp_path), "forward.jsonl")
    rx = subprocess.Popen(["ip", "netns", "exec", pair.ns_a,
                           "/usr/bin/python3", "-c", FORWARD_RECEIVER,
                           str(fport), got], stderr=subprocess.PIPE)
    fb = os.path.join(dts.config_dir, "fluent_bit_configs")
    os.makedirs(fb)
    with open(os.path.join(fb, "forward.exp"), "w") as f:
        f.write("name=forward\nplugin_name=forward\nenable=1\n"
                f"host=127.0.0.1\nport={fport}\ntag=dts_test\n")
    dts.write_config(_cfg(dts, "update=200", f"fluentbit-config-dir={fb}",
                          f"include-names={pair.dev_a}"))
    try:
        dts.start()

        def records():
            if not os.path.exists(got):
                return []
            return [json.loads(l) for l in open(got) if l.strip()]

        def have_rx_bytes():
            return [r for r in records()
                    if r["record"].get("metric") == "dts_net_rx_bytes_total"
                    and r["record"].get("device") == pair.dev_a]
        recs = wait_for(have_rx_bytes, 15, what="forward records")
        assert recs[0]["tag"] == "dts_test"
        assert isinstance(recs[0]["record"]["value"], float)
        # The sent-records counter moves.
        wait_for(lambda: series(dts.metrics(),
                                "dts_fluent_forward_sent_total")[0] > 0, 10)
    finally:
        rx.kill()
        rx.wait()
        assert dts.stop() == 0


def test_static_pod_manifest_is_a_valid_pod_running_dts():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    import yaml
    with open(os.path.join(repo, "deploy", "dts",
                           "doca_telemetry_standalone.yaml")) as f:
        pod = yaml.safe_load(f)
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    spec = pod["spec"]
    assert spec["hostNetwork"] is True
    (c,) = spec["containers"]
    assert c["securityContext"]["privileged"] is True
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert set(mounts) == {"/config", "/data", "/tmp/ipc_sockets",
                           "/opt/mellanox/doca/telemetry/config-dpu"}
    assert all(n in vols for n in mounts.values())
    assert vols[mounts["/config"]]["hostPath"]["path"] == \
        "/opt/mellanox/doca/services/telemetry/config"
    assert c["ports"][0]["containerPort"] == 9100
    # Every option the pod passes is one dts understands.
    help_text = subprocess.run([binary("dts", "dts"), "--help"],
                               capture_output=True, text=True).stdout
    for a in c["args"]:
        assert a.split("=")[0] in help_text, a


UDP_SINK = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.settimeout(30)
print("ready", flush=True)
while True:
    d, _ = s.recvfrom(65535)
    print(int.from_bytes(d[0:2], "big"), len(d), flush=True)
"""


def test_app_counters_netflow_and_data_files(netns, tmp_path):
    """Keys netflow-collector-* and output wire the exporter-library
    intake to NetFlow and data files; app counters become dts_app_*."""
    ns = netns("dtco")
    dts = Dts(ns, str(tmp_path))
    nport = random.randint(20000, 40000)
    data = os.path.join(str(tmp_path), "data")
    dts.write_config(_cfg(dts, "update=200", "include-names=lo",
                          "netflow-collector-ip=127.0.0.1",
                          f"netflow-collector-port={nport}",
                          f"output={data}"))
    sink = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/bin/python3",
                             "-c", UDP_SINK, str(nport)],
                            stdout=subprocess.PIPE, text=True)
    try:
        # The collector must be bound before the first flow is sent.
        assert sink.stdout.readline().strip() == "ready"
        dts.start()
        app = subprocess.run(
            ["ip", "netns", "exec", ns, binary("dts", "dts-exporter-example"),
             "--ipc-dir", os.path.join(dts.dir, "ipc"), "--source-id",
             "app1", "--events", "5"], capture_output=True, text=True,
            timeout=30)
        assert app.returncode == 0, app.stderr
        wait_for(lambda: series(dts.metrics(), "dts_netflow_records_total")
                 == [2.0], 10, what="flows exported")
        m = dts.metrics()
        assert series(m, "dts_ipc_records_total", kind="event") == [5.0]
        assert [n for (n, ls) in m if n.startswith("dts_app_")
                and ("source_id", "app1") in ls]
        line = sink.stdout.readline().split()
        assert int(line[0]) == 9  # NetFlow v9 datagram
        files = [f for f in os.listdir(data) if f.endswith(".dtsd")]
        assert files
        with open(os.path.join(data, files[0]), "rb") as f:
            assert f.read(8) == b"DTSDATA1"
        assert series(m, "dts_datafile_records_total")[0] > 0
    finally:
        sink.kill()
        sink.wait()
        assert dts.stop() == 0
