#!/usr/bin/env python3
"""Write the seed corpora of dmsd's fuzz targets: fuzz/corpus/rshim-misc
(misc texts as the device shows them, and commands clients write) and
fuzz/corpus/dmsd-parse (gNMI GetRequests, File-service paths and
InstallRequest messages, protobuf written by hand from the field numbers
in lib/gnmi/proto so the seeds do not depend on any generator).

usage: fuzz/gen-dmsd-corpus.py   (from the repository root)"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def elem(name, keys=()):
    # PathElem: name = 1, map<string,string> key = 2 (entries: key 1, value 2)
    out = field(1, name.encode())
    for k, v in keys:
        out += field(2, field(1, k.encode()) + field(2, v.encode()))
    return out


def path(*elems):
    # Path: elem = 3
    return b"".join(field(3, e) for e in elems)


def get_request(*paths, prefix=None):
    # GetRequest: prefix = 1, path = 2
    out = field(1, prefix) if prefix is not None else b""
    return out + b"".join(field(2, p) for p in paths)


MISC0 = """DISPLAY_LEVEL   0 (0:basic, 1:advanced, 2:log)
BF_MODE         DPU mode
BOOT_MODE       1 (0:rshim, 1:emmc, 2:emmc-boot-swap)
BOOT_TIMEOUT    300 (seconds)
USB_TIMEOUT     40 (seconds)
DROP_MODE       0 (0:normal, 1:drop)
SW_RESET        0 (1: reset)
DEV_NAME        pcie-0000:4b:00.2
DEV_INFO        BlueField-3(Rev 1)
OPN_STR         900-9D3B6-00CV-AA0
UP_TIME         42(s)
SECURE_NIC_MODE 0 (0:no, 1:yes)
FORCE_CMD       0 (1: send Force command)
"""
LEVEL1 = """BOOT_RESET_SKIP 0 (1: skip)
PEER_MAC        00:1a:ca:ff:ff:01 (rw)
PXE_ID          0x00000000 (rw)
VLAN_ID         0 0 (rw)
CLEAR_ON_READ   0 (0:no, 1:yes)
"""
LOG = """---------------------------------------
             Log Messages
---------------------------------------
 INFO[PSC]: PSC BL1 START
 INFO[BL2]: boot mode (rshim)
 INFO[UEFI]: Linux from rshim
 INFO[MISC]: Installation finished
 INFO[MISC]: Rebooting...
 INFO[MISC]: BFB version 4.9.1-13542
 INFO[MISC]: Linux up
 INFO[MISC]: DPU is ready
"""
ERR = (" INFO[PSC]: PSC BL1 START\n ERR[BL2]: corrupt BFB: image #3 "
       "\"initramfs\" (ID 63, version 0) at offset 100152: CRC-32 mismatch\n")

MISC = {
    "level0.txt": MISC0,
    "level1.txt": MISC0 + LEVEL1,
    "level2-ready.txt": MISC0 + LEVEL1 + LOG,
    "level2-error.txt": MISC0 + LEVEL1 + LOG.split(" INFO")[0] + ERR,
    "rebooting.txt": MISC0 + " INFO[MISC]: Rebooting...\n",
    "half-rewritten.txt": (MISC0 + LOG)[:333],
    "commands.txt": "DISPLAY_LEVEL 2\nSW_RESET 1\n",
    "commands-appended.txt": MISC0 + "BOOT_MODE 0x1\nVLAN_ID 1 2\n",
    "no-newline.txt": "DEV_INFO BlueField-2(Rev 1)",
    "long-key.txt": "A" * 40 + " 1\n" + "DEV_NAME " + "x" * 400 + "\n",
    "crlf.txt": MISC0.replace("\n", "\r\n"),
    "binary.bin": "DEV_NAME \x00\xff\x01 pcie\n\x00\x00UP_TIME 9\n",
    "empty.txt": "",
}

FILE_PATHS = {
    "file-relative.txt": "notes/a.txt",
    "file-absolute.txt": "/srv/dms/bfb/os.bfb",
    "file-dotdot.txt": "../x",
    "file-inner-dotdot.txt": "notes/../../x",
    "file-outside.txt": "/srv/dms/bfbx/y",
    "file-hidden.txt": ".dmsd/mode",
    "file-double-slash.txt": "a//b",
    "file-folder-itself.txt": "/srv/dms/bfb/",
    "file-folder-noslash.txt": "/srv/dms/bfb",
    "file-trailing-slash.txt": "notes/",
}

IFACE = ("interfaces", ()), ("interface", (("name", "p0"),))


def main():
    d = os.path.join(HERE, "corpus", "rshim-misc")
    os.makedirs(d, exist_ok=True)
    for name, text in MISC.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(text.encode("latin-1"))

    d = os.path.join(HERE, "corpus", "dmsd-parse")
    os.makedirs(d, exist_ok=True)
    seeds = dict((k, v.encode()) for k, v in FILE_PATHS.items())
    mode = path(*(elem(n) for n in ("nvidia", "mode", "config", "mode")))
    seeds["get-mode.pb"] = get_request(mode)
    seeds["get-iface.pb"] = get_request(
        path(elem("interfaces"), elem("interface", [("name", "p0")]),
             elem("state"), elem("oper-status")))
    seeds["get-iface-key-only.pb"] = get_request(
        path(elem("interfaces"), elem("interface", [("name", "p]1\\")])))
    seeds["get-iface-escape.pb"] = get_request(
        path(elem("interfaces"),
             elem("interface", [("name", "../../etc]/state/mtu")]),
             elem("state"), elem("mtu")))
    seeds["get-component.pb"] = get_request(
        path(elem("components"), elem("component", [("name", "DPU")]),
             elem("state"), elem("software-version")))
    seeds["get-prefix.pb"] = get_request(
        path(elem("mode")), prefix=path(elem("nvidia"), elem("mode")))
    seeds["get-element.pb"] = get_request(
        b"".join(field(1, s) for s in (b"nvidia", b"os", b"a/b")))
    seeds["get-long.pb"] = get_request(path(*(elem("x" * 60),) * 12))
    chunk = bytes(range(256)) * 4
    seeds["install-content.pb"] = field(2, chunk)
    seeds["install-content-empty.pb"] = field(2, b"")
    seeds["install-request.pb"] = field(
        1, field(1, b"os.bfb") + varint(3 << 3) + varint(1024))
    seeds["install-end.pb"] = field(3, b"")
    seeds["install-two-fields.pb"] = field(2, b"abc") + field(2, b"def")
    seeds["install-overlong-len.pb"] = b"\x12\x83\x80\x80\x80\x00abc"
    seeds["install-wrapping-len.pb"] = (
        b"\x12" + b"\xfd\xff\xff\xff\xff\xff\xff\xff\xff\x01" + b"abc")
    seeds["install-short.pb"] = b"\x12\x05ab"
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
