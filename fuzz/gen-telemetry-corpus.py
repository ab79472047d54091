#!/usr/bin/python3
"""Writes the seed corpora of the telemetry fuzz targets (fluent-forward,
dts-ipc, netflow): valid inputs of every mode plus typical broken ones.
Run from the repository root: /usr/bin/python3 fuzz/gen-telemetry-corpus.py"""
import gzip
import os
import socket
import struct

import msgpack

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def et(sec, nsec):
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


# ---- fluent-forward ----------------------------------------------------
P = lambda o: msgpack.packb(o, use_bin_type=True)
rec = {"name": "eth0", "rx": 123, "ratio": 0.5, "up": True, "none": None,
       "arr": [1, 2], "sub": {"k": "v"}}
entries = [[et(1700000000, 5), rec], [1700000001, {"a": 1}]]
put("fluent-forward", "forward", P(["doca", entries, {"chunk": "c1", "size": 2}]))
put("fluent-forward", "message", P(["app", 1700000000, {"a": "b"}]))
put("fluent-forward", "message-opt", P(["app", et(1, 2), {"a": "b"}, {"chunk": "x"}]))
packed = b"".join(P(e) for e in entries)
put("fluent-forward", "packed-bin", P(["p", packed, {"size": 2}]))
put("fluent-forward", "packed-str", msgpack.packb(["p", packed.decode("latin1")]))
put("fluent-forward", "compressed", P(["z", gzip.compress(packed) + gzip.compress(packed),
                                       {"compressed": "gzip", "size": 4}]))
put("fluent-forward", "heartbeat-then-msg", b"\xc0" + P(["t", 1, {}]))
put("fluent-forward", "two-frames", P(["t", 1, {}]) + P(["u", [[2, {"x": 1}]]]))
put("fluent-forward", "bad-c1", b"\x93\xc1\xc0\xc0")
put("fluent-forward", "bad-ext", b"\x93\xa1t\xd7\x05" + b"\0" * 8 + b"\x80")
put("fluent-forward", "bad-nsec", b"\x93\xa1t\xd7\x00\0\0\0\x01\xff\xff\xff\xff\x80")
put("fluent-forward", "huge-array", b"\xdd\xff\xff\xff\xff" + b"\xc0" * 32)
put("fluent-forward", "deep", b"\x91" * 100 + b"\x80")
put("fluent-forward", "tag-int", b"\x93\x01\x01\x80")
put("fluent-forward", "size-lie", P(["p", packed, {"size": 3}]))
put("fluent-forward", "gzip-bomb", P(["z", gzip.compress(b"\xc0" * 200000), {"compressed": "gzip"}]))
put("fluent-forward", "truncated", P(["doca", entries])[:-5])
put("fluent-forward", "ping", P(["PING", "host", "salt", "digest", "", ""]))

# ---- dts-ipc -----------------------------------------------------------
def frame(t, body):
    return struct.pack("<IBBH", 8 + len(body), 1, t, 0) + body


def s(x):
    x = x.encode()
    return struct.pack("<H", len(x)) + x


hello = frame(1, struct.pack("<IHHI", 0x58535444, 1, 1, 1234) + s("app1") + s("tag"))
fields = [("ts", 15, 1), ("port", 2, 1), ("addr", 12, 1), ("name", 11, 8), ("v", 6, 3)]
tbody = s("ev") + struct.pack("<H", len(fields)) + b"".join(
    s(n) + struct.pack("<BBH", t, 0, c) for n, t, c in fields)
schema = frame(2, s("app") + struct.pack("<H", 1) + tbody)
ev = struct.pack("<QH", 1700000000123456789, 443) + socket.inet_aton("10.0.0.1") + b"eth0\0\0\0\0" + struct.pack("<hhh", -1, 0, 5)
events = frame(3, struct.pack("<HHI", 0, 0, 2) + ev + ev)
counters = frame(4, struct.pack("<qHH", 5, 2, 0) + s("rx_total") + b"\x00" + struct.pack("<Q", 7)
                 + s("temp") + b"\x01" + struct.pack("<d", 36.6))
flow = struct.pack("<BBBBHHII", 4, 6, 0x1b, 0, 40000, 443, 1, 2) + socket.inet_aton("10.1.0.1") + b"\0" * 12 \
    + socket.inet_aton("10.2.0.1") + b"\0" * 12 + struct.pack("<QQQQ", 1500, 10, 1, 2)
netflow = frame(5, struct.pack("<II", 1, 0) + flow)
bye = frame(6, b"")
# first byte of every dts-ipc input is the split position
put("dts-ipc", "session", b"\x00" + hello + schema + events + counters + netflow + bye)
put("dts-ipc", "session-split", b"\x2b" + hello + schema + events + counters + netflow + bye)
put("dts-ipc", "no-hello", b"\x00" + schema + events)
put("dts-ipc", "event-before-schema", b"\x00" + hello + events)
put("dts-ipc", "event-size-mismatch", b"\x00" + hello + schema + frame(3, struct.pack("<HHI", 0, 0, 1) + ev[:-1]))
put("dts-ipc", "bad-type-index", b"\x00" + hello + schema + frame(3, struct.pack("<HHI", 9, 0, 1) + ev))
put("dts-ipc", "unknown-type", b"\x00" + hello + frame(77, b"x"))
put("dts-ipc", "bad-version", b"\x00" + struct.pack("<IBBH", 8, 9, 1, 0))
put("dts-ipc", "oversized", b"\x00" + struct.pack("<IBBH", 1 << 30, 1, 3, 0))
put("dts-ipc", "garbage", b"\x05GET / HTTP/1.1\r\nHost: x\r\n\r\n")
put("dts-ipc", "truncated", b"\x00" + (hello + schema + events)[:-7])
put("dts-ipc", "bad-field-type", b"\x00" + hello + frame(2, s("app") + struct.pack("<H", 1) + s("t") + struct.pack("<H", 1) + s("f") + struct.pack("<BBH", 99, 0, 1)))
# protocol 2: counter samples with labels (kind bit 0x80, then u8 n and
# n name/value strings)
hello2 = frame(1, struct.pack("<IHHI", 0x58535444, 2, 1, 1234) + s("app2") + s("tag"))
def lsample(name, kind, val, labels):
    return (s(name) + bytes([kind | 0x80]) + val + bytes([len(labels)])
            + b"".join(s(k) + s(v) for k, v in labels))
lcounters = frame(4, struct.pack("<qHH", 5, 2, 0)
                  + lsample("ops_total", 0, struct.pack("<Q", 15), [("iface", "eth0"), ("host", "h1")])
                  + lsample("temp", 1, struct.pack("<d", 36.6), [("zone", "r\u00e9x")]))
put("dts-ipc", "v2-labels", b"\x00" + hello2 + schema + events + lcounters + netflow + bye)
put("dts-ipc", "v2-labels-split", b"\x31" + hello2 + lcounters + bye)
put("dts-ipc", "v1-labels-refused", b"\x00" + hello + lcounters)
put("dts-ipc", "v2-reserved-label", b"\x00" + hello2 + frame(4, struct.pack("<qHH", 5, 1, 0)
    + lsample("x", 0, struct.pack("<Q", 1), [("__name__", "y")])))
put("dts-ipc", "v2-dup-label", b"\x00" + hello2 + frame(4, struct.pack("<qHH", 5, 1, 0)
    + lsample("x", 0, struct.pack("<Q", 1), [("a", "1"), ("a", "2")])))
put("dts-ipc", "v2-bad-utf8", b"\x00" + hello2 + frame(4, struct.pack("<qHH", 5, 1, 0)
    + s("x") + b"\x80" + struct.pack("<Q", 1) + b"\x01" + s("a") + struct.pack("<H", 2) + b"\xff\xfe"))
put("dts-ipc", "v2-too-many-labels", b"\x00" + hello2 + frame(4, struct.pack("<qHH", 5, 1, 0)
    + lsample("x", 0, struct.pack("<Q", 1), [("l%d" % i, "v") for i in range(17)])))
put("dts-ipc", "v3-hello", b"\x00" + frame(1, struct.pack("<IHHI", 0x58535444, 3, 1, 1) + s("a") + s("b")))

# ---- netflow -------------------------------------------------------------
def v9_packet(seq, with_t=True):
    fl = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (1, 8), (2, 8), (10, 4), (14, 4), (22, 4), (21, 4)]
    tmpl = struct.pack("!HH", 256, len(fl)) + b"".join(struct.pack("!HH", a, b) for a, b in fl)
    tfs = struct.pack("!HH", 0, 4 + len(tmpl)) + tmpl
    r = socket.inet_aton("10.0.0.1") + socket.inet_aton("10.0.0.2") + struct.pack("!HHBBQQIIII", 1, 2, 6, 0x1b, 1500, 10, 1, 2, 1000, 2000)
    pad = (4 - (4 + len(r)) % 4) % 4
    dfs = struct.pack("!HH", 256, 4 + len(r) + pad) + r + b"\0" * pad
    body = (tfs if with_t else b"") + dfs
    return struct.pack("!HHIIII", 9, 2 if with_t else 1, 5000, 1700000000, seq, 42) + body


def ipfix_packet():
    fl = [(27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (1, 8), (2, 8), (152, 8), (153, 8), (0x8001, 4), (96, 0xffff)]
    tmpl = struct.pack("!HH", 300, len(fl))
    for a, b in fl:
        tmpl += struct.pack("!HH", a, b) + (struct.pack("!I", 9999) if a & 0x8000 else b"")
    ts = struct.pack("!HH", 2, 4 + len(tmpl)) + tmpl
    r = socket.inet_pton(socket.AF_INET6, "2001:db8::1") + socket.inet_pton(socket.AF_INET6, "2001:db8::2") \
        + struct.pack("!HHBQQQQ", 5353, 53, 17, 300, 3, 1700000000000, 1700000001000) + b"\0\0\0\0" + b"\x03abc"
    ds = struct.pack("!HH", 300, 4 + len(r)) + r
    body = ts + ds
    return struct.pack("!HHIII", 10, 16 + len(body), 1700000000, 0, 7) + body


def seq(*pkts):
    return b"".join(struct.pack("!H", len(p)) + p for p in pkts)


put("netflow", "v9", seq(v9_packet(0), v9_packet(1, False)))
put("netflow", "ipfix", seq(ipfix_packet()))
put("netflow", "v9-no-template", seq(v9_packet(0, False)))
put("netflow", "truncated", seq(v9_packet(0)[:-9]))
put("netflow", "bad-set-len", seq(v9_packet(0)[:22] + b"\xff\xff" + v9_packet(0)[24:]))
put("netflow", "v5", seq(struct.pack("!HH", 5, 1) + b"\0" * 40))
