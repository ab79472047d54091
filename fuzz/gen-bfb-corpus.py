#!/usr/bin/env python3
"""Write the seed corpus of the BFB reader's fuzz target (fuzz/corpus/bfb).

The streams are built here from the documented header layout
(docs/services/dms.md), independently of lib/codecs/bfb's writer: good
streams, streams with a bf.cfg appended, and the corruptions the reader
must name (bad magic, version, header length, CRC, truncation, an image
the previous header did not announce)."""
import binascii
import os
import struct
import sys

MAGIC = 0x13026642


def header(image_id, data, following, version=0, next_version=0, major=1,
           minor=2, words=3, crc=None):
    pad = (-len(data)) % 8
    if crc is None:
        crc = binascii.crc32(data + b"\0" * pad) & 0xFFFFFFFF
    w0 = (MAGIC | major << 32 | minor << 36 | next_version << 44 |
          version << 48 | words << 52 | image_id << 56)
    w1 = len(data) | crc << 32
    return struct.pack("<QQQ", w0, w1, following)


def stream(images, trailer=b""):
    """images: list of (id, data, version); bitmap as mlx-mkbfb sets it."""
    fol = 0
    for i, _, _ in images:
        fol |= 1 << i
    out = b""
    for n, (i, data, ver) in enumerate(images):
        later = [v for (j, _, v) in images[n + 1:] if j == i]
        if not later:
            fol &= ~(1 << i)
        out += header(i, data, fol, ver, later[0] if later else 0)
        out += data + b"\0" * ((-len(data)) % 8)
    return out + trailer


def main(dest):
    os.makedirs(dest, exist_ok=True)
    info = b'{"Name":"BFB","Version":"4.9.1-seed"}'
    good = stream([(59, b"console=hvc0 initrd=initramfs", 2), (50, info, 0),
                   (62, b"K" * 301, 0), (63, b"I" * 64, 0)])
    cases = {
        "good.bfb": good,
        "good-cfg.bfb": good + b"UPDATE_DPU_OS=yes\nBOOT0=DISK\n",
        "one-image.bfb": stream([(62, b"kernel", 0)]),
        "empty-image.bfb": stream([(57, b"", 0), (62, b"x", 0)]),
        "versions.bfb": stream([(59, b"v0", 0), (59, b"v2 args", 2),
                                (62, b"k", 0)]),
        "unknown-id.bfb": stream([(20, b"?", 0), (62, b"k", 0)]),
        "bad-magic.bfb": b"XX" + good[2:],
        "bad-major.bfb": good[:4] + bytes([good[4] ^ 0x02]) + good[5:],
        "bad-words.bfb": good[:6] + bytes([good[6] ^ 0x10]) + good[7:],
        "bad-crc.bfb": good[:200] + bytes([good[200] ^ 1]) + good[201:],
        "cut-data.bfb": good[:150],
        "cut-header.bfb": good[:10],
        "cut-between.bfb": good[:56],
        "unannounced.bfb": (header(62, b"k" * 8, 1 << 50) + b"k" * 8 +
                            header(63, b"i" * 8, 0) + b"i" * 8),
        "empty.bfb": b"",
    }
    for name, data in cases.items():
        with open(os.path.join(dest, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "corpus", "bfb"))
