"""NetFlow v9 / IPFIX re-export: flow records an app sends through
libdts-exporter into dts come out of dts as NetFlow v9 or IPFIX, and two
independent decoders (nfcapd/nfdump 1.7.1 and tshark's cflow dissector)
see the right addresses, ports, protocol, bytes and packets."""
import csv
import glob
import io
import os
import re
import subprocess

import pytest

from conftest import wait_for
from dtsio_util import (Dts, free_udp_port, run_example, terminate,
                        wait_file_text)

FLOWS = [
    # src, dst, sport, dport, proto, bytes, packets
    ("10.203.0.1", "10.203.1.1", 40000, 443, 6, 1500, 10),
    ("10.203.0.2", "10.203.1.1", 40001, 80, 6, 123456, 99),
    ("192.0.2.7", "198.51.100.9", 5353, 53, 17, 300, 3),
    ("2001:db8::1", "2001:db8::2", 40002, 8443, 6, 7000, 7),
]


def flow_args():
    out = []
    for f in FLOWS:
        out += ["--flow", ",".join(str(x) for x in f)]
    return out


@pytest.fixture
def collector(tmp_path):
    """nfcapd on 127.0.0.1:<free port> plus a tshark capture of that port."""
    port = free_udp_port()
    nfdir = tmp_path / "nf"
    nfdir.mkdir()
    nflog = open(tmp_path / "nfcapd.log", "w")
    nfcapd = subprocess.Popen(
        ["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", str(nfdir),
         "-t", "60", "-S", "0"], stdout=nflog, stderr=subprocess.STDOUT)
    pcap = tmp_path / "cap.pcap"
    tlog_path = tmp_path / "tshark.log"
    tlog = open(tlog_path, "w")
    tshark = subprocess.Popen(
        ["tshark", "-i", "lo", "-f", f"udp port {port}", "-w", str(pcap)],
        stdout=tlog, stderr=subprocess.STDOUT)
    wait_file_text(str(tlog_path), "Capture started", timeout=60)
    info = {"port": port, "nfdir": nfdir, "pcap": pcap,
            "nfcapd": nfcapd, "tshark": tshark}
    yield info
    for p in (tshark, nfcapd):
        terminate(p)
    nflog.close()
    tlog.close()


def nfdump_flows(nfdir):
    # Every file: nfcapd rotates on the minute (-t 60), so a test that runs
    # across a minute boundary leaves an early file without the flows.
    files = sorted(glob.glob(os.path.join(str(nfdir), "nfcapd.*")))
    assert files, "nfcapd wrote no file"
    rows = []
    for f in files:
        out = subprocess.run(["nfdump", "-r", f, "-q", "-o", "csv"],
                             capture_output=True, text=True,
                             check=True).stdout
        rows += [r for r in csv.reader(io.StringIO(out))]
    # nfdump 1.7.1 csv: ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,...
    got = set()
    for r in rows:
        if len(r) < 13 or r[0] == "ts":
            continue
        got.add((r[3], r[4], int(r[5]), int(r[6]), r[7], int(r[12]),
                 int(r[11])))
    return got


def tshark_flows(text):
    """(src, dst, sport, dport, proto, bytes, packets) of every decoded
    flow record in tshark -V output."""
    flows, cur = set(), None
    keys = {"SrcAddr": "s", "DstAddr": "d", "SrcPort": "sp", "DstPort": "dp",
            "Protocol": "p", "Octets": "b", "Packets": "n"}
    for line in text.splitlines() + ["Flow end"]:
        m = re.match(r"^\s+(\w+): (\S+)", line)
        if re.match(r"^\s+Flow \d+$", line) or line == "Flow end":
            if cur and len(cur) == 7:
                flows.add((cur["s"], cur["d"], int(cur["sp"]), int(cur["dp"]),
                           cur["p"], int(cur["b"]), int(cur["n"])))
            cur = {}
        elif m and cur is not None and m.group(1) in keys:
            cur[keys[m.group(1)]] = m.group(2)
    return flows


def tshark_text(pcap, port):
    return subprocess.run(
        ["tshark", "-r", str(pcap), "-d", f"udp.port=={port},cflow", "-V"],
        capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("version", [9, 10])
def test_netflow_reexport_decoded_by_nfdump_and_tshark(tmp_path, collector,
                                                       version):
    port = collector["port"]
    dts = Dts(tmp_path, ["disable-provider=sysfs",
                         "netflow-collector-ip=127.0.0.1",
                         f"netflow-collector-port={port}",
                         f"netflow-version={version}"]).start()
    try:
        r = run_example(dts, "--events", "2", *flow_args())
        assert f"netflow={len(FLOWS)} dropped=0" in r.stdout
        dts.wait_metric("dts_ipc_records_total", lambda v: v == len(FLOWS),
                        labels='{kind="netflow"}')
        # dts flushes its datagram at the end of a collection cycle
        dts.wait_metric("dts_netflow_records_total",
                        lambda v: v == len(FLOWS))
        assert dts.metric("dts_netflow_errors_total") == 0
        # tshark must have every datagram on disk before we stop it (it
        # drops what it has not read yet). dumpcap writes each packet as it
        # comes, so poll the capture until all flows decode; a size check
        # passed as soon as the first of the datagrams was written.
        protos = {6: "TCP", 17: "UDP"}
        want = {(s, d, sp, dp, protos[p], b, n)
                for s, d, sp, dp, p, b, n in FLOWS}
        wait_for(lambda: os.path.exists(collector["pcap"])
                 and tshark_flows(tshark_text(collector["pcap"], port))
                 == want, what="all flows in the capture")
    finally:
        assert dts.stop() == 0
    terminate(collector["tshark"])
    terminate(collector["nfcapd"])  # SIGTERM flushes the nfcapd file

    got = nfdump_flows(collector["nfdir"])
    assert got == want

    text = tshark_text(collector["pcap"], port)
    assert re.search(rf"^\s+Version: {version}$", text, re.M)
    assert tshark_flows(text) == want
    # the templates went out before the data
    assert "Template Id: 256" in text
    assert "Template Id: 257" in text
