"""dpf-rshim-emu: the emulated rshim device directory (boot FIFO, misc,
state file) parses what is pushed into boot, as a DPU would."""
import os
import stat

import pytest

from bfb_util import parse_bfb, sample_bfb
from rshim_util import RshimEmu

CFG = b"UPDATE_DPU_OS=yes\nBOOT0=DISK\n"


@pytest.fixture
def emu(tmp_path):
    e = RshimEmu(str(tmp_path))
    yield e
    assert e.stop() == 0, e.logtext()


def test_device_files_and_misc_keys(emu):
    assert stat.S_ISFIFO(os.stat(emu.boot).st_mode)
    m = emu.misc()
    for key in ("DISPLAY_LEVEL   0", "BOOT_MODE       1", "BF_MODE",
                "DEV_NAME        pcie-0000:4b:00.2",
                "DEV_INFO        BlueField-3(Rev 1)", "UP_TIME"):
        assert key in m
    assert "Log Messages" not in m and "BOOT_RESET_SKIP" not in m
    # DPF's preflight: DISPLAY_LEVEL 1, then grep the PCI address
    emu.command("DISPLAY_LEVEL 1")
    m = emu.wait_misc("DISPLAY_LEVEL   1")
    assert "BOOT_RESET_SKIP" in m and "4b:00.2" in m
    emu.command("DISPLAY_LEVEL 2")
    emu.wait_misc("Log Messages")


def test_install_records_version_and_cfg(emu):
    emu.command("DISPLAY_LEVEL 2")
    emu.wait_misc("DISPLAY_LEVEL   2")
    emu.push(sample_bfb(version="4.9.1-13542") + CFG)
    m = emu.wait_misc("DPU is ready")
    lines = [l.strip() for l in m.splitlines() if "INFO[" in l]
    assert lines[0] == "INFO[PSC]: PSC BL1 START"
    assert "INFO[MISC]: Found bf.cfg" in lines
    assert lines.index("INFO[MISC]: Installation finished") < \
        lines.index("INFO[MISC]: Rebooting...") < \
        lines.index("INFO[MISC]: DPU is ready")
    st = emu.state_json()
    assert st["phase"] == "ready"
    assert st["bootSessions"] == 1 and st["refusedSessions"] == 0
    assert st["installed"]["version"] == "4.9.1-13542"
    assert st["installed"]["bfcfg"] == CFG.decode()
    assert st["installed"]["bfbBytes"] == len(sample_bfb())
    assert "BOOT_MODE       1" in m  # back to eMMC after the install


def test_corrupt_streams_refused_with_image_named(emu):
    emu.push(sample_bfb(version="1.0-good") + CFG)
    emu.command("DISPLAY_LEVEL 2")
    emu.wait_misc("DPU is ready")

    blob = bytearray(sample_bfb(version="2.0-bad"))
    images, _ = parse_bfb(bytes(blob))
    off = images[3]["offset"]
    blob[off + 24 + 77] ^= 0x80
    emu.push(bytes(blob) + CFG)
    m = emu.wait_misc("ERR[BL2]")
    assert (f'ERR[BL2]: corrupt BFB: image #3 "initramfs" (ID 63, '
            f'version 0) at offset {off}: CRC-32 mismatch') in m
    assert "DPU is ready" not in m
    st = emu.state_json()
    assert st["refusedSessions"] == 1 and st["bootSessions"] == 2
    assert "initramfs" in st["lastError"]
    # what the DPU had before is still what it has
    assert st["installed"]["version"] == "1.0-good"

    emu.push(b"this is not a boot stream at all")
    m = emu.wait_misc("bad magic")
    assert "header of image #0 at offset 0: bad magic" in m

    cut = sample_bfb()[:images[2]["offset"] + 500]
    emu.push(cut)
    m = emu.wait_misc("ends at offset")
    assert f'ends at offset {len(cut)}' in m
    assert emu.state_json()["refusedSessions"] == 3

    # and a good push afterwards installs
    emu.push(sample_bfb(version="3.0-again"))
    emu.wait_misc("DPU is ready")
    st = emu.state_json()
    assert st["installed"]["version"] == "3.0-again"
    assert st["installed"]["bfcfg"] is None


def test_installed_state_survives_restart(tmp_path):
    e = RshimEmu(str(tmp_path))
    try:
        e.push(sample_bfb(version="5.5.5") + CFG)
        e.command("DISPLAY_LEVEL 2")
        e.wait_misc("DPU is ready")
    finally:
        assert e.stop() == 0
    e = RshimEmu(str(tmp_path))
    try:
        st = e.state_json()
        assert st["installed"]["version"] == "5.5.5"
        assert st["bootSessions"] == 0
    finally:
        assert e.stop() == 0
    assert not os.path.exists(e.boot)  # the FIFO is removed at stop


def test_ports_in_sysfs_follow_the_boot(tmp_path):
    """--sysfs: the DPU's ports as the host sees them, down while the DPU
    boots, up when it is ready; fw_ver and OPN_STR as given; the log of a
    DPU that came up names the BFB it runs."""
    sysfs = tmp_path / "sys"
    e = RshimEmu(str(tmp_path), install="600ms", reboot="600ms",
                 extra=["--sysfs", str(sysfs), "--opn", "900-9D3B6-00CV-AA0",
                        "--fw-version", "32.41.1000"])
    dev = sysfs / "bus" / "pci" / "devices"
    try:
        assert sorted(os.listdir(dev)) == ["0000:4b:00.0", "0000:4b:00.1"]
        for fn in (0, 1):
            net = dev / f"0000:4b:00.{fn}" / "net" / f"p{fn}"
            assert (net / "operstate").read_text() == "up\n"
            assert (net / "mtu").read_text() == "1500\n"
            ib = dev / f"0000:4b:00.{fn}" / "infiniband" / f"mlx5_{fn}"
            assert (ib / "fw_ver").read_text() == "32.41.1000\n"
        assert "OPN_STR         900-9D3B6-00CV-AA0" in e.misc()
        oper = dev / "0000:4b:00.0" / "net" / "p0" / "operstate"
        (dev / "0000:4b:00.1" / "net" / "p1" / "mtu").write_text("9000\n")
        e.command("DISPLAY_LEVEL 2")
        e.wait_misc("DISPLAY_LEVEL   2")
        e.push(sample_bfb(version="6.1.0") + CFG)
        assert oper.read_text() == "down\n"  # booting from rshim
        m = e.wait_misc("DPU is ready")
        assert " INFO[MISC]: BFB version 6.1.0" in m
        assert oper.read_text() == "up\n"
        # SW_RESET reboots: down, then up again, still naming the BFB
        e.command("SW_RESET 1")
        e.wait_misc("Rebooting...")
        assert oper.read_text() == "down\n"
        m = e.wait_misc("DPU is ready")
        assert " INFO[MISC]: BFB version 6.1.0" in m
        assert oper.read_text() == "up\n"
    finally:
        assert e.stop() == 0
    # a restart keeps an MTU someone changed
    e = RshimEmu(str(tmp_path), extra=["--sysfs", str(sysfs)])
    try:
        assert (dev / "0000:4b:00.1" / "net" / "p1" / "mtu").read_text() == \
            "9000\n"
    finally:
        assert e.stop() == 0
