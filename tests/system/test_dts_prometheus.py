"""dts scraped by a real Prometheus: counters of a veth pair match the
traffic we send (totals and rate()), tc/htb and ethtool series appear, and
promtool finds nothing wrong with /metrics.

Topology: netns A runs dts and Prometheus and holds veth end `dev_a`;
netns B holds `dev_b` and generates traffic towards A."""
import os
import subprocess
import time

import pytest

from conftest import NetnsFactory, wait_for
from dts_helpers import (Dts, Prometheus, VethPair, ns_exec, parse_metrics,
                         series, start_udp_blaster)

# A 1000-byte ICMP echo payload travels as 14 (Ethernet) + 20 (IPv4) +
# 8 (ICMP) + 1000 bytes on a veth.
PING_PAYLOAD = 1000
PING_FRAME = 14 + 20 + 8 + PING_PAYLOAD
UDP_PAYLOAD = 1000
UDP_FRAME = 14 + 20 + 8 + UDP_PAYLOAD


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("dtsprom"))
    factory = NetnsFactory()
    dts = prom = None
    try:
        pair = VethPair(factory)
        # An htb qdisc with one class on dev_a: its stats must show up.
        ns_exec(pair.ns_a, ["tc", "qdisc", "add", "dev", pair.dev_a, "root",
                            "handle", "1:", "htb", "default", "10"],
                check=True)
        ns_exec(pair.ns_a, ["tc", "class", "add", "dev", pair.dev_a,
                            "parent", "1:", "classid", "1:10", "htb", "rate",
                            "1gbit"], check=True)
        # update=250: a short period keeps rate() within a few percent of
        # the truth even when Prometheus' scrape phase drifts against it.
        dts = Dts(pair.ns_a, work)
        dts.write_config(
            "update=250\n"
            "enable-provider=sysfs\n"
            "enable-provider=ethtool\n"
            "enable-provider=tc\n"
            "enable-provider=ifconfig\n"
            f"prometheus=http://127.0.0.1:{dts.port}\n")
        dts.start()
        prom = Prometheus(pair.ns_a, work, [f"127.0.0.1:{dts.port}"])
        prom.start()
        # The first scrape comes a few seconds after Prometheus is ready.
        wait_for(lambda: prom.value(
            f'dts_net_rx_bytes_total{{device="{pair.dev_a}"}}') is not None,
            40, interval=0.5, what="first scrape of dts")
        yield pair, dts, prom
    finally:
        if prom:
            prom.stop()
        code = dts.stop() if dts else 0
        factory.cleanup()
        assert code == 0, f"dts exited {code}:\n{dts.log_text()[-3000:]}"


def _wait_delta(prom, expr, base, expected):
    """Wait until expr has grown by at least 97% of expected; return the
    growth."""
    def grown():
        v = prom.value(expr)
        return v is not None and v - base >= 0.97 * expected and v - base
    return wait_for(grown, 30, interval=0.5, what=f"{expr} to grow")


def test_byte_and_packet_totals_match_ping_traffic(env):
    pair, dts, prom = env
    dev = pair.dev_a
    exprs = {
        "rx_bytes": f'dts_net_rx_bytes_total{{device="{dev}"}}',
        "tx_bytes": f'dts_net_tx_bytes_total{{device="{dev}"}}',
        "rx_packets": f'dts_net_rx_packets_total{{device="{dev}"}}',
        "tx_packets": f'dts_net_tx_packets_total{{device="{dev}"}}',
    }
    # Settle: the counters must be still before we take the baseline.
    time.sleep(1.5)
    base = {k: prom.value(e) for k, e in exprs.items()}
    n = 200
    r = ns_exec(pair.ns_b, ["ping", "-q", "-c", str(n), "-i", "0.005",
                            "-s", str(PING_PAYLOAD), pair.ip_a], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{n} received" in r.stdout
    # Requests arrive on dev_a (rx), replies leave it (tx). ARP adds two
    # 42-byte frames at most.
    expected = {"rx_bytes": n * PING_FRAME, "tx_bytes": n * PING_FRAME,
                "rx_packets": n, "tx_packets": n}
    for k, e in exprs.items():
        got = _wait_delta(prom, e, base[k], expected[k])
        assert abs(got - expected[k]) <= 0.10 * expected[k], \
            f"{k}: Prometheus saw {got}, sent {expected[k]}"
    # And dts reports what the kernel counts.
    m = dts.metrics()
    assert series(m, "dts_net_rx_packets_total", device=dev)[0] <= \
        pair.sysfs_counter("rx_packets")


def test_rate_matches_udp_traffic(env):
    pair, dts, prom = env
    dev = pair.dev_a
    pps, secs = 400, 14
    blaster = start_udp_blaster(pair.ns_b, pair.ip_a, UDP_PAYLOAD, pps, secs)
    try:
        # Query while the blast is in steady state and the 8 s window lies
        # entirely inside it.
        time.sleep(12)
        rx_rate = prom.value(f'rate(dts_net_rx_bytes_total{{device="{dev}"}}'
                             f'[8s])')
        pkt_rate = prom.value(
            f'rate(dts_net_rx_packets_total{{device="{dev}"}}[8s])')
    finally:
        out, err = blaster.communicate(timeout=30)
    assert blaster.returncode == 0, err
    sent = int(out.strip())
    assert abs(sent - pps * secs) <= 0.02 * pps * secs, f"blaster sent {sent}"
    want_bytes = pps * UDP_FRAME
    assert rx_rate is not None and pkt_rate is not None
    assert abs(rx_rate - want_bytes) <= 0.10 * want_bytes, \
        f"rate() {rx_rate:.0f} B/s, sent {want_bytes} B/s"
    assert abs(pkt_rate - pps) <= 0.10 * pps, \
        f"rate() {pkt_rate:.1f} pkt/s, sent {pps} pkt/s"


def test_promtool_check_metrics_is_clean(env):
    pair, dts, prom = env
    text = dts.metrics_text()
    r = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == "", \
        r.stdout + r.stderr
    # Every family has HELP and TYPE, counters end in _total.
    helps = {l.split()[2] for l in text.splitlines()
             if l.startswith("# HELP ")}
    types = {l.split()[2]: l.split()[3] for l in text.splitlines()
             if l.startswith("# TYPE ")}
    assert helps == set(types)
    for name, t in types.items():
        if t == "counter":
            assert name.endswith("_total"), name


def test_tc_htb_class_stats_appear(env):
    pair, dts, prom = env
    dev = pair.dev_a
    cls = (f'dts_tc_class_bytes_total{{device="{dev}",kind="htb",'
           f'classid="1:10"}}')
    qd = (f'dts_tc_qdisc_packets_total{{device="{dev}",kind="htb",'
          f'handle="1:",parent="root"}}')
    base = prom.value(cls) or 0
    # Egress of dev_a goes through the htb: ping from A to B.
    n = 50
    r = ns_exec(pair.ns_a, ["ping", "-q", "-c", str(n), "-i", "0.01", "-s",
                            str(PING_PAYLOAD), pair.ip_b], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    got = _wait_delta(prom, cls, base, n * PING_FRAME)
    assert got <= 1.10 * n * PING_FRAME + 2000, got
    assert prom.value(qd) >= n
    tc = ns_exec(pair.ns_a, ["tc", "-s", "class", "show", "dev", dev],
                 check=True).stdout
    assert "htb 1:10" in tc


def test_ethtool_counters_of_veth_appear(env):
    pair, dts, prom = env
    dev = pair.dev_a
    out = ns_exec(pair.ns_a, ["ethtool", "-S", dev], check=True).stdout
    stats = {}
    for line in out.splitlines()[1:]:
        k, _, v = line.strip().partition(":")
        stats[k.strip()] = int(v)
    assert "peer_ifindex" in stats and len(stats) >= 5, out
    m = dts.metrics()
    for k, v in stats.items():
        name = f"dts_ethtool_{k}" + ("" if k == "peer_ifindex" else "_total")
        vals = series(m, name, device=dev)
        assert vals, f"{name} missing"
    assert series(m, "dts_ethtool_peer_ifindex", device=dev) == \
        [float(stats["peer_ifindex"])]
    # And it reached Prometheus.
    assert prom.value(f'dts_ethtool_peer_ifindex{{device="{dev}"}}') == \
        stats["peer_ifindex"]


def test_ifconfig_and_provider_series(env):
    pair, dts, prom = env
    dev = pair.dev_a
    res = prom.query(f'dts_ifconfig_address_info{{device="{dev}"}}')
    assert any(r[0].get("address") == pair.ip_a for r in res), res
    assert prom.value(f'dts_ifconfig_mtu_bytes{{device="{dev}"}}') == 1500
    up = {r[0]["provider"]: r[1] for r in prom.query("dts_provider_up")}
    assert up == {"sysfs": 1, "ethtool": 1, "tc": 1, "ifconfig": 1}
