"""dts under bad input: a prometheus_aggr target that returns junk is
counted in dts_prometheus_aggr_errors_total{source} while a good target
keeps being re-exported and the daemon keeps serving; garbage on the
fluent_aggr port and on the exporter IPC socket is counted in
dts_fluent_aggr_errors_total / dts_ipc_errors_total (the protocol-level
garbage cases are the codec owner's tests; here we check the daemon wires
the counters and survives)."""
import os
import random
import socket
import subprocess
import time

import msgpack
import pytest

from conftest import wait_for
from dts_helpers import Dts, ns_curl, ns_exec, series

TARGETS = r"""
import http.server, sys
GOOD = (b"# HELP app_requests_total Requests served.\n"
        b"# TYPE app_requests_total counter\n"
        b'app_requests_total{code="200",source="inner"} 42\n'
        b"# TYPE app_temp gauge\n"
        b"app_temp 21.5\n")
JUNK = bytes(range(256)) * 4 + b"<html>not metrics</html>\n{{{ = \n"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/good":
            body, code = GOOD, 200
        elif self.path == "/junk":
            body, code = JUNK, 200
        elif self.path == "/half":
            body, code = GOOD + b'broken{label="x} 1\n', 200
        else:
            body, code = b"oops", 500
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@pytest.fixture
def ns(netns):
    return netns("dtb")


@pytest.fixture
def targets(ns):
    port = random.randint(20000, 40000)
    p = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c",
                          TARGETS, str(port)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    wait_for(lambda: ns_curl(ns, f"http://127.0.0.1:{port}/good", 2)[0]
             == 200, 10, what="target server")
    yield port
    p.terminate()
    p.wait(10)


def test_prometheus_aggr_junk_is_counted_and_survived(ns, targets,
                                                      tmp_path):
    dts = Dts(ns, str(tmp_path))
    base = f"http://127.0.0.1:{targets}"
    dts.write_config(
        "update=200\n"
        "enable-provider=prometheus_aggr\n"
        f"prometheus-aggr-endpoints={base}/good,{base}/junk\n"
        f"prometheus-aggr-endpoints={base}/half,{base}/fail\n"
        f"prometheus=http://127.0.0.1:{dts.port}\n")
    try:
        dts.start()
        src = f"127.0.0.1:{targets}/good"

        def errors(path):
            m = dts.metrics()
            v = series(m, "dts_prometheus_aggr_errors_total",
                       source=f"127.0.0.1:{targets}/{path}")
            return v[0] if v else None
        # Every bad endpoint's errors keep growing, the good one has none.
        for path in ("junk", "half", "fail"):
            wait_for(lambda: (errors(path) or 0) >= 2, 15,
                     what=f"{path} errors counted")
        first = errors("junk")
        time.sleep(1)
        assert errors("junk") > first
        assert errors("good") == 0
        m = dts.metrics()
        assert series(m, "dts_prometheus_aggr_up", source=src) == [1.0]
        assert series(m, "dts_prometheus_aggr_up",
                      source=f"127.0.0.1:{targets}/junk") == [0.0]
        text = dts.metrics_text()
        # The good target is re-exported with the source label; its own
        # `source` label was renamed.
        assert (f'app_requests_total{{source="{src}",code="200",'
                f'exported_source="inner"}} 42') in text
        assert f'app_temp{{source="{src}"}} 21.5' in text
        # Nothing of the junk or the half-broken page leaked through.
        assert "broken" not in text and "html" not in text
        assert dts.proc.poll() is None
        assert ns_curl(ns, dts.url + "/healthz")[0] == 200
        r = subprocess.run(["promtool", "check", "metrics"], input=text,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        assert dts.stop() == 0


def test_prometheus_aggr_without_libcurl_is_reported(ns, targets, tmp_path,
                                                     monkeypatch):
    """libcurl is loaded at run time: without it prometheus_aggr is 'not
    available' with a reason naming the library, and dts keeps running."""
    monkeypatch.setenv("DTS_CURL_LIBRARY", "/nonexistent/libcurl.so.4")
    dts = Dts(ns, str(tmp_path))
    dts.write_config(
        "enable-provider=prometheus_aggr\n"
        f"prometheus-aggr-endpoints=http://127.0.0.1:{targets}/good\n"
        f"prometheus=http://127.0.0.1:{dts.port}\n")
    try:
        dts.start()
        m = dts.metrics()
        assert series(m, "dts_provider_up",
                      provider="prometheus_aggr") == [0.0]
        assert not series(m, "app_temp")
        log = dts.log_text()
        assert ("provider=prometheus_aggr reason=\"not available: "
                "/nonexistent/libcurl.so.4 cannot be loaded (install "
                "libcurl4)") in log, log
        assert dts.proc.poll() is None
    finally:
        assert dts.stop() == 0


def test_error_counters_exist_from_start(ns, tmp_path):
    dts = Dts(ns, str(tmp_path))
    dts.write_config(f"prometheus=http://127.0.0.1:{dts.port}\n")
    try:
        dts.start()
        m = dts.metrics()
        for part in ("config", "prometheus_aggr", "fluent_aggr", "ipc",
                     "fluent_forward", "netflow", "datafile"):
            assert series(m, f"dts_{part}_errors_total") == [0.0], part
    finally:
        assert dts.stop() == 0


FORWARD_CLIENT = r"""
import socket, sys, msgpack, time
port = int(sys.argv[1])
def send(data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    time.sleep(0.2)
    s.close()
# A good Forward message, then garbage on new connections.
send(msgpack.packb(["app.metrics", [[int(time.time()),
                    {"port": "p0", "rx": 5, "ok": True, "nested": {"a": 1}}]]]))
send(b"\xc1\xc1\xc1 this is not msgpack \xff" * 10)
send(msgpack.packb([1, 2, 3]))
"""


def test_fluent_aggr_records_and_garbage(ns, tmp_path):
    dts = Dts(ns, str(tmp_path))
    fport = random.randint(20000, 40000)
    dts.write_config(
        "update=200\n"
        "enable-provider=fluent_aggr\n"
        "fluent-aggr-address=127.0.0.1\n"
        f"fluent-aggr-port={fport}\n"
        f"prometheus=http://127.0.0.1:{dts.port}\n")
    try:
        dts.start()
        assert series(dts.metrics(), "dts_provider_up",
                      provider="fluent_aggr") == [1.0], dts.log_text()
        r = ns_exec(ns, ["/usr/bin/python3", "-c", FORWARD_CLIENT,
                         str(fport)], timeout=30)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: series(dts.metrics(), "dts_fluent_aggr_rx",
                                tag="app.metrics", port="p0") == [5.0], 10,
                 what="record became a gauge")
        m = dts.metrics()
        assert series(m, "dts_fluent_aggr_ok", tag="app.metrics") == [1.0]
        wait_for(lambda: series(dts.metrics(),
                                "dts_fluent_aggr_errors_total")[0] >= 2, 10,
                 what="garbage counted")
        assert dts.proc.poll() is None
    finally:
        assert dts.stop() == 0


def test_ipc_garbage_counted(ns, tmp_path):
    dts = Dts(ns, str(tmp_path))
    dts.write_config(f"update=200\nprometheus=http://127.0.0.1:{dts.port}\n")
    try:
        dts.start()
        sock = os.path.join(dts.dir, "ipc", "dts.sock")
        wait_for(lambda: os.path.exists(sock), 10, what="IPC socket")
        for junk in (b"\x00" * 64, b"GET / HTTP/1.0\r\n\r\n" * 3,
                     b"\xff\xff\xff\xff" + b"x" * 100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock)
            s.sendall(junk)
            time.sleep(0.1)
            s.close()
        wait_for(lambda: series(dts.metrics(), "dts_ipc_errors_total")[0]
                 >= 3, 10, what="IPC garbage counted")
        assert dts.proc.poll() is None
        assert ns_curl(ns, dts.url + "/healthz")[0] == 200
    finally:
        assert dts.stop() == 0
