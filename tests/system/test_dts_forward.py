"""Fluent Forward interop with a msgpack peer written in Python:
- records sent into dts's fluent_aggr listener (all four Forward modes,
  with and without acks) arrive and show up on /metrics;
- dts's Forward client delivers its samples and app events to a Python
  Forward server, with the configured tag and EventTime timestamps;
- with the peer down dts keeps collecting, and when the peer comes back it
  delivers what it buffered, bounded by fluent-forward-buffer-records."""
import gzip
import socket
import struct
import threading
import time

import msgpack
import pytest

from conftest import free_port, wait_for
from dtsio_util import Dts, run_example


def event_time(t):
    sec = int(t)
    return msgpack.ExtType(0, struct.pack(">II", sec, int((t - sec) * 1e9)))


def decode_time(v):
    if isinstance(v, msgpack.ExtType):
        assert v.code == 0 and len(v.data) == 8, v
        sec, nsec = struct.unpack(">II", v.data)
        assert nsec < 1_000_000_000
        return sec + nsec / 1e9
    assert isinstance(v, int), v
    return float(v)


class ForwardServer:
    """A minimal Fluentd forward input: decodes every mode, answers acks,
    stores (tag, time, record, raw_time, arrival) tuples."""

    def __init__(self, port=0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.records = []
        self.accepted_at = []
        self.lock = threading.Lock()
        self.stopping = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted_at.append(time.time())
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()

    def _entries(self, tag, entries):
        now = time.time()
        with self.lock:
            for raw_t, rec in entries:
                self.records.append((tag, decode_time(raw_t), rec, raw_t, now))

    def _serve(self, c):
        unp = msgpack.Unpacker(raw=False)
        with c:
            while not self.stopping:
                try:
                    data = c.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                unp.feed(data)
                for msg in unp:
                    if msg is None:
                        continue  # heartbeat
                    tag, second = msg[0], msg[1]
                    opt = {}
                    if isinstance(second, list):
                        self._entries(tag, second)
                        opt = msg[2] if len(msg) > 2 else {}
                    elif isinstance(second, (bytes, str)):
                        opt = msg[2] if len(msg) > 2 else {}
                        raw = second.encode("latin1") if isinstance(second, str) else second
                        if opt.get("compressed") == "gzip":
                            raw = gzip.decompress(raw)
                        self._entries(tag, _unpack_all(raw))
                    else:
                        self._entries(tag, [(second, msg[2])])
                        opt = msg[3] if len(msg) > 3 else {}
                    if opt.get("chunk"):
                        c.sendall(msgpack.packb({"ack": opt["chunk"]}))

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def close(self):
        self.stopping = True
        self.sock.close()


def _unpack_all(raw):
    u = msgpack.Unpacker(raw=False)
    u.feed(raw)
    return list(u)


@pytest.fixture
def peer():
    servers = []

    def make(port=0):
        s = ForwardServer(port)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.close()


def forward_ini(port, tag="dts_test", extra=()):
    return ["disable-provider=sysfs", "fluent-forward-enable=1",
            "fluent-forward-host=127.0.0.1", f"fluent-forward-port={port}",
            f"fluent-forward-tag={tag}"] + list(extra)


def test_fluent_aggr_receives_all_modes(tmp_path):
    fport = free_port()
    dts = Dts(tmp_path, ["disable-provider=sysfs",
                         "enable-provider=fluent_aggr",
                         "fluent-aggr-address=127.0.0.1",
                         f"fluent-aggr-port={fport}"]).start()
    try:
        now = time.time()
        c = socket.create_connection(("127.0.0.1", fport))
        c.settimeout(10)
        # Forward mode with EventTime, ack requested
        c.sendall(msgpack.packb(
            ["app", [[event_time(now), {"port": "p0", "rx": 5}],
                     [event_time(now), {"port": "p1", "rx": 7}]],
             {"chunk": "k1", "size": 2}], use_bin_type=True))
        unp = msgpack.Unpacker(raw=False)
        unp.feed(c.recv(4096))
        assert next(unp) == {"ack": "k1"}
        # Message mode with integer time
        c.sendall(msgpack.packb(["app", int(now), {"port": "p2", "rx": 9}]))
        # PackedForward and CompressedPackedForward
        packed = msgpack.packb([event_time(now), {"port": "p3", "rx": 11}])
        c.sendall(msgpack.packb(["app", packed], use_bin_type=True))
        c.sendall(msgpack.packb(
            ["zapp", gzip.compress(msgpack.packb([int(now), {"tx": 3.5}])),
             {"compressed": "gzip", "chunk": "k2"}], use_bin_type=True))
        unp.feed(c.recv(4096))
        assert next(unp) == {"ack": "k2"}
        want = {('dts_fluent_aggr_rx', '{tag="app",port="p0"}'): 5,
                ('dts_fluent_aggr_rx', '{tag="app",port="p1"}'): 7,
                ('dts_fluent_aggr_rx', '{tag="app",port="p2"}'): 9,
                ('dts_fluent_aggr_rx', '{tag="app",port="p3"}'): 11,
                ('dts_fluent_aggr_tx', '{tag="zapp"}'): 3.5}

        def arrived():
            m = dts.metrics()
            return all(m.get(k) == v for k, v in want.items())
        wait_for(arrived, what="fluent_aggr series on /metrics")
        assert dts.metric("dts_fluent_aggr_events_total") == 5
        assert dts.metric("dts_fluent_aggr_errors_total") in (None, 0)
        c.close()
    finally:
        assert dts.stop() == 0


def test_forward_client_delivers_to_python_server(tmp_path, peer):
    srv = peer()
    dts = Dts(tmp_path, forward_ini(srv.port, tag="dpf.telemetry",
                                    extra=["fluent-forward-require-ack=1"])).start()
    try:
        t0 = time.time()
        wait_for(lambda: len(srv.snapshot()) > 0, what="records at the peer")
        # an app event sent through libdts-exporter is forwarded too
        run_example(dts, "--events", "3", "--source-id", "fwdapp")

        def app_events():
            return [r for r in srv.snapshot()
                    if r[2].get("event_type") == "example_event"]
        wait_for(lambda: len(app_events()) == 3, what="app events at the peer")
        recs = srv.snapshot()
        assert {r[0] for r in recs} == {"dpf.telemetry"}
        for tag, t, rec, raw_t, _ in recs:
            assert isinstance(raw_t, msgpack.ExtType)  # EventTime
            assert t0 - 5 < t < time.time() + 5
        samples = [r[2] for r in recs if "metric" in r[2]]
        assert samples and all("value" in s for s in samples)
        ev = sorted(app_events(), key=lambda r: r[2]["seq"])
        assert [e[2]["name"] for e in ev] == ["ev-0", "ev-1", "ev-2"]
        assert ev[0][2]["source_id"] == "fwdapp"
        assert ev[1][2]["addr"] == "192.0.2.2"
        dts.wait_metric("dts_fluent_forward_connected", lambda v: v == 1)
        # with acks on, everything sent gets acknowledged
        assert dts.metric("dts_fluent_forward_dropped_total") == 0
    finally:
        assert dts.stop() == 0


def test_forward_peer_down_buffers_then_delivers(tmp_path, peer):
    port = free_port()  # nobody listens here yet
    bound = 40
    dts = Dts(tmp_path, forward_ini(
        port, extra=[f"fluent-forward-buffer-records={bound}"])).start()
    try:
        dts.wait_metric("dts_fluent_forward_queued_records",
                        lambda v: v == bound)
        dts.wait_metric("dts_fluent_forward_dropped_total", lambda v: v > 0)
        assert dts.metric("dts_fluent_forward_connected") == 0
        assert dts.metric("dts_fluent_forward_sent_total") == 0
        # collection goes on while the peer is down
        d1 = dts.metric("dts_fluent_forward_dropped_total")
        dts.wait_metric("dts_fluent_forward_dropped_total", lambda v: v > d1)
        srv = peer(port)
        wait_for(lambda: srv.accepted_at, timeout=60, what="reconnect")
        wait_for(lambda: len(srv.snapshot()) >= bound, what="buffered records")
        accepted = srv.accepted_at[0]
        recs = srv.snapshot()
        buffered = [r for r in recs if r[1] < accepted - 0.001]
        # what was queued when the peer came back arrives first, and no
        # more than the bound was kept
        assert bound <= len(buffered) <= bound + 20, len(buffered)
        assert recs[:bound] == sorted(recs[:bound], key=lambda r: r[1])
        dts.wait_metric("dts_fluent_forward_connected", lambda v: v == 1)
    finally:
        assert dts.stop() == 0


def test_two_exp_files_both_receive(tmp_path, peer):
    """Two Fluent Bit forward .exp files: each destination gets every
    record under its own tag (the second used to replace the first)."""
    a, b = peer(), peer()
    fb = tmp_path / "fluent_bit_configs"
    fb.mkdir()
    for name, srv, tag in (("a.exp", a, "tag_a"), ("b.exp", b, "tag_b")):
        (fb / name).write_text("plugin_name=forward\nenable=1\n"
                               f"host=127.0.0.1\nport={srv.port}\n"
                               f"tag={tag}\n")
    dts = Dts(tmp_path, ["disable-provider=sysfs",
                         f"fluentbit-config-dir={fb}"]).start()
    try:
        run_example(dts, "--source-id", "two-exp", "--events", "2")

        def both():
            ta = {t for t, *_ in a.snapshot()}
            tb = {t for t, *_ in b.snapshot()}
            ev_a = [r for t, _, r, *_ in a.snapshot()
                    if r.get("source_id") == "two-exp"]
            ev_b = [r for t, _, r, *_ in b.snapshot()
                    if r.get("source_id") == "two-exp"]
            return ta == {"tag_a"} and tb == {"tag_b"} and \
                len(ev_a) == 2 and len(ev_b) == 2
        wait_for(both, timeout=60, what="records at both destinations")
        assert dts.metric("dts_fluent_forward_destinations") == 2
        dts.wait_metric("dts_fluent_forward_connected", lambda v: v == 2)
    finally:
        assert dts.stop() == 0
