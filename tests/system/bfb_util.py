"""An independent BlueField boot stream writer and reader for the tests.

Written from the documented header layout (doca-services.md §10.1,
docs/services/dms.md), not from lib/codecs/bfb: three little-endian u64
words per header (magic 0x13026642, major 1, minor 2, next/current image
version, header length 3 words, image ID; length and CRC-32 over image plus
padding; the following-images bitmap), images padded to 8 bytes, the ID's
bit cleared on its last image as mlx-mkbfb does."""
import binascii
import struct

MAGIC = 0x13026642


def pad(n):
    return (-n) % 8


def make_bfb(images, trailer=b""):
    """images: list of (image_id, bytes, version) in stream order."""
    following = 0
    for image_id, _, _ in images:
        following |= 1 << image_id
    out = bytearray()
    for n, (image_id, data, ver) in enumerate(images):
        later = [v for (i, _, v) in images[n + 1:] if i == image_id]
        if not later:
            following &= ~(1 << image_id)
        padded = data + b"\0" * pad(len(data))
        crc = binascii.crc32(padded) & 0xFFFFFFFF
        w0 = (MAGIC | 1 << 32 | 2 << 36 | (later[0] if later else 0) << 44 |
              ver << 48 | 3 << 52 | image_id << 56)
        out += struct.pack("<QQQ", w0, len(data) | crc << 32, following)
        out += padded
    return bytes(out + trailer)


def parse_bfb(blob):
    """Headers of a BFB as dicts (checks magic and CRC), and the trailer."""
    off, images = 0, []
    while True:
        w0, w1, w2 = struct.unpack_from("<QQQ", blob, off)
        assert w0 & 0xFFFFFFFF == MAGIC, f"bad magic at {off}"
        length, crc = w1 & 0xFFFFFFFF, w1 >> 32
        image_id = w0 >> 56
        data = blob[off + 24:off + 24 + length + pad(length)]
        assert binascii.crc32(data) & 0xFFFFFFFF == crc, f"bad CRC at {off}"
        images.append({"offset": off, "id": image_id,
                       "version": (w0 >> 48) & 0xF,
                       "nextVersion": (w0 >> 44) & 0xF, "length": length,
                       "crc": crc, "following": w2,
                       "data": data[:length]})
        off += 24 + length + pad(length)
        if w2 == 0:
            return images, blob[off:]


def sample_bfb(version="4.9.1-test", kernel_size=70001, trailer=b""):
    """A small OS BFB as DPF would push: boot-args v2, info, kernel,
    initramfs (canonical order)."""
    info = ('{"Name":"BFB","Version":"%s"}' % version).encode()
    kernel = bytes((i * 7 + 3) & 0xFF for i in range(kernel_size))
    initramfs = bytes((i * 13) & 0xFF for i in range(5003))
    return make_bfb([(59, b"console=hvc0 initrd=initramfs", 2),
                     (50, info, 0), (62, kernel, 0), (63, initramfs, 0)],
                    trailer)
