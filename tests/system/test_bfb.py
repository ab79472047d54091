"""dpfctl bfb build / inspect and the BFB reader against streams made from
the documented mlx-mkbfb layout (tests/system/bfb_util.py)."""
import json
import os
import subprocess

import pytest

from conftest import binary
from bfb_util import make_bfb, parse_bfb, sample_bfb


def bfb(*args):
    return subprocess.run([binary("dpfctl", "dpfctl"), "bfb"] + list(args),
                          capture_output=True, text=True, timeout=60)


def inspect_json(path):
    r = bfb("inspect", "-o", "json", path)
    return r, json.loads(r.stdout) if r.stdout else None


def test_reader_accepts_documented_layout(tmp_path):
    # two versions of boot-args (next-version field), an odd-length kernel
    # (padding in the CRC), an empty image and a bf.cfg appended after it
    cfg = b"UPDATE_DPU_OS=yes\nWITH_NIC_FW_UPDATE=yes\n"
    blob = make_bfb([(57, b"Linux from rshim", 0),
                     (59, b"console=ttyAMA0", 0),
                     (59, b"console=hvc0 initrd=initramfs", 2),
                     (60, b"", 0),
                     (50, b'{"Name":"BFB","Version":"2.5.0-9"}', 0),
                     (62, b"\x7fELF" + b"k" * 1001, 0),
                     (63, b"i" * 4096, 0)], cfg)
    path = tmp_path / "nvidia-layout.bfb"
    path.write_bytes(blob)
    r, doc = inspect_json(str(path))
    assert r.returncode == 0, r.stderr
    assert doc["crcOk"] is True
    assert doc["version"] == "2.5.0-9"
    assert [(i["name"], i["version"]) for i in doc["images"]] == [
        ("boot-desc", 0), ("boot-args", 0), ("boot-args", 2),
        ("boot-timeout", 0), ("info", 0), ("image", 0), ("initramfs", 0)]
    ref, trailer = parse_bfb(blob)
    for mine, theirs in zip(doc["images"], ref):
        assert mine["offset"] == theirs["offset"]
        assert mine["length"] == theirs["length"]
        assert mine["crc"] == "0x%08x" % theirs["crc"]
        assert mine["nextVersion"] == theirs["nextVersion"]
        assert mine["crcOk"] is True
    assert doc["images"][1]["nextVersion"] == 2
    assert trailer == cfg
    assert doc["bfcfg"] == {"offset": len(blob) - len(cfg),
                            "length": len(cfg), "content": cfg.decode()}

    # the table says the same
    r = bfb("inspect", "--show-cfg", str(path))
    assert r.returncode == 0, r.stderr
    assert "Version:  2.5.0-9" in r.stdout
    assert "CRC:      all 7 images ok" in r.stdout
    assert f"bf.cfg:   {len(cfg)} bytes appended" in r.stdout
    assert "WITH_NIC_FW_UPDATE=yes" in r.stdout


def test_build_inspect_round_trip(tmp_path):
    kernel = tmp_path / "Image"
    kernel.write_bytes(bytes(range(256)) * 397 + b"odd")
    initramfs = tmp_path / "initramfs"
    initramfs.write_bytes(b"\x1f\x8b" + b"z" * 65537)
    info = tmp_path / "info.json"
    info.write_text('{"Name":"dpf-test","Version":"4.9.1-13542"}')
    out = tmp_path / "out.bfb"
    r = bfb("build", "--kernel", str(kernel), "--initramfs", str(initramfs),
            "--boot-args", "console=hvc0 initrd=initramfs",
            "--info", str(info), str(out))
    assert r.returncode == 0, r.stderr
    r, doc = inspect_json(str(out))
    assert r.returncode == 0, r.stderr
    assert doc["version"] == "4.9.1-13542"
    assert doc["bfcfg"] is None
    assert [(i["id"], i["name"], i["length"]) for i in doc["images"]] == [
        (59, "boot-args", 29), (50, "info", info.stat().st_size),
        (62, "image", kernel.stat().st_size),
        (63, "initramfs", initramfs.stat().st_size)]
    assert doc["images"][0]["version"] == 2
    # our writer's output checked by the independent reader: layout, CRCs,
    # bitmaps (the last header's is 0), and the bytes of each image
    images, trailer = parse_bfb(out.read_bytes())
    assert trailer == b""
    assert [i["id"] for i in images] == [59, 50, 62, 63]
    assert images[2]["data"] == kernel.read_bytes()
    assert images[3]["data"] == initramfs.read_bytes()
    assert images[0]["following"] == (1 << 50) | (1 << 62) | (1 << 63)
    assert images[-1]["following"] == 0

    # --bfb-version writes the info JSON itself
    r = bfb("build", "--kernel", str(kernel), "--bfb-version", "9.9.9",
            str(tmp_path / "v.bfb"))
    assert r.returncode == 0, r.stderr
    r, doc = inspect_json(str(tmp_path / "v.bfb"))
    assert doc["version"] == "9.9.9"


def test_flipped_byte_names_image_and_offset(tmp_path):
    blob = bytearray(sample_bfb())
    images, _ = parse_bfb(bytes(blob))
    initrd = images[3]
    assert initrd["id"] == 63
    blob[initrd["offset"] + 24 + 1000] ^= 0x01
    path = tmp_path / "flipped.bfb"
    path.write_bytes(bytes(blob))
    r, doc = inspect_json(str(path))
    assert r.returncode == 1
    want = (f'image #3 "initramfs" (ID 63, version 0) at offset '
            f'{initrd["offset"]}: CRC-32 mismatch')
    assert want in r.stderr
    assert doc["crcOk"] is False and want in doc["error"]
    assert [i["crcOk"] for i in doc["images"]] == [True, True, True, False]

    # a flipped bit in a header's magic names that header
    blob = bytearray(sample_bfb())
    blob[images[2]["offset"] + 1] ^= 0x20
    path.write_bytes(bytes(blob))
    r = bfb("inspect", str(path))
    assert r.returncode == 1
    assert (f'header of image #2 at offset {images[2]["offset"]}: bad magic'
            in r.stderr)

    # a cut stream names where it ends
    path.write_bytes(sample_bfb()[:images[2]["offset"] + 100])
    r = bfb("inspect", str(path))
    assert r.returncode == 1
    assert 'image #2 "image" (ID 62' in r.stderr
    assert f'ends at offset {images[2]["offset"] + 100}' in r.stderr


def test_build_errors(tmp_path):
    out = tmp_path / "out.bfb"
    r = bfb("build", "--kernel", str(tmp_path / "missing"), str(out))
    assert r.returncode == 1
    assert "missing: No such file or directory" in r.stderr
    assert os.listdir(tmp_path) == []  # no partial output left behind

    bad = tmp_path / "info.json"
    bad.write_text('{"Name":"x"}')
    r = bfb("build", "--info", str(bad), str(out))
    assert r.returncode == 1
    assert '"Version"' in r.stderr
    r = bfb("build", "--add", "no-such-image=x", str(out))
    assert r.returncode == 1
    assert 'unknown image name "no-such-image"' in r.stderr
    r = bfb("build", str(out))
    assert r.returncode == 1 and "no images" in r.stderr
    assert not out.exists()
