"""Bad input on dts's exporter-library IPC socket and on its Fluent
Forward listener (fluent_aggr): every bad connection is closed, counted in
a dts_*_errors_total series on /metrics, and the daemon keeps serving good
clients."""
import socket
import struct

import msgpack
import pytest

from conftest import free_port
from dtsio_util import Dts, run_example, wait_port_closed_by_peer


def frame(t, body, version=1):
    return struct.pack("<IBBH", 8 + len(body), version, t, 0) + body


def s16(x):
    x = x.encode()
    return struct.pack("<H", len(x)) + x


HELLO = frame(1, struct.pack("<IHHI", 0x58535444, 1, 1, 42)
              + s16("badapp") + s16(""))
SCHEMA = frame(2, s16("app") + struct.pack("<H", 1) + s16("ev")
               + struct.pack("<H", 1) + s16("port") + struct.pack("<BBH", 2, 0, 1))

BAD_IPC = {
    "http-garbage": b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    "oversized-frame": struct.pack("<IBBH", 1 << 30, 1, 3, 0),
    "unknown-version": struct.pack("<IBBH", 8, 7, 1, 0),
    "no-hello": SCHEMA,
    "event-before-schema": HELLO + frame(3, struct.pack("<HHI", 0, 0, 1) + b"\1\0"),
    "event-size-mismatch": HELLO + SCHEMA + frame(3, struct.pack("<HHI", 0, 0, 1) + b"\1\0\0"),
    "unknown-frame-type": HELLO + frame(99, b""),
    "bad-field-type": HELLO + frame(2, s16("app") + struct.pack("<H", 1) + s16("ev")
                                    + struct.pack("<H", 1) + s16("f")
                                    + struct.pack("<BBH", 200, 0, 1)),
}


@pytest.fixture
def dts(tmp_path):
    fport = free_port()
    d = Dts(tmp_path, ["disable-provider=sysfs", "enable-provider=fluent_aggr",
                       "fluent-aggr-address=127.0.0.1",
                       f"fluent-aggr-port={fport}"])
    d.fluent_port = fport
    d.start()
    yield d
    assert d.stop() == 0, d.log.read_text()


def send_ipc(path, data):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    try:
        c.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return c


def test_ipc_garbage_is_rejected_and_counted(dts):
    before = dts.metric("dts_ipc_errors_total") or 0
    for name, data in BAD_IPC.items():
        c = send_ipc(dts.socket_path, data)
        assert wait_port_closed_by_peer(c), f"{name}: connection not closed"
        c.close()
    dts.wait_metric("dts_ipc_errors_total",
                    lambda v: v == before + len(BAD_IPC))
    # a truncated frame followed by a close is not a protocol error, and
    # does not hurt either
    c = send_ipc(dts.socket_path, HELLO + SCHEMA[:5])
    c.close()
    assert dts.alive()
    # good clients are still served
    run_example(dts, "--events", "5")
    dts.wait_metric("dts_ipc_records_total", lambda v: v == 5,
                    labels='{kind="event"}')
    assert dts.metric("dts_ipc_errors_total") == before + len(BAD_IPC)


BAD_FORWARD = {
    "never-used-byte": b"\x93\xc1\xc0\xc0",
    "tag-not-string": msgpack.packb([1, 2, {}]),
    "record-not-map": msgpack.packb(["t", 1, [1, 2]]),
    "bad-ext-type": msgpack.packb(["t", msgpack.ExtType(5, b"\0" * 8), {}]),
    "size-lie": msgpack.packb(["t", [[1, {"a": 1}]], {"size": 5}]),
    "deep-nesting": b"\x93\xa1t\x01" + b"\x81\xa1k" * 40 + b"\x80",
    # 16 M entries announced; more than the 8 MiB frame bound is sent
    "oversized": b"\x93\xa1t\xdd\x00\xff\xff\xff" + b"\x92\x01\x80" * 3_000_000,
}


def test_forward_malformed_frames_rejected_and_counted(dts):
    def errors():
        return dts.metric("dts_fluent_aggr_errors_total") or 0
    before = errors()
    for name, data in BAD_FORWARD.items():
        c = socket.create_connection(("127.0.0.1", dts.fluent_port))
        try:
            c.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert wait_port_closed_by_peer(c), f"{name}: connection not closed"
        c.close()
    dts.wait_metric("dts_fluent_aggr_errors_total",
                    lambda v: v == before + len(BAD_FORWARD))
    assert dts.alive()
    # a good message with an ack request still works on a new connection
    c = socket.create_connection(("127.0.0.1", dts.fluent_port))
    c.sendall(msgpack.packb(["ok", [[1, {"a": 1}]], {"chunk": "c9"}]))
    c.settimeout(10)
    unp = msgpack.Unpacker(raw=False)
    unp.feed(c.recv(4096))
    assert next(unp) == {"ack": "c9"}
    c.close()
