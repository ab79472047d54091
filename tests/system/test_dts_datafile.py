"""Binary data files: with `output` set, dts writes samples and app events
to *.dtsd files, rotates them by size, and `dts-dump` prints every record
as a JSON line; corrupt files are reported, not crashed on."""
import glob
import json
import os
import subprocess

from conftest import binary
from dtsio_util import Dts, run_example


def dump(*args):
    return subprocess.run([binary("dts", "dts-dump")] + list(args),
                          capture_output=True, text=True, timeout=60)


def test_dts_dump_reads_what_dts_wrote(tmp_path):
    out = tmp_path / "data"
    dts = Dts(tmp_path, ["disable-provider=sysfs", f"output={out}",
                         "data-file-size-limit=20000B"]).start()
    try:
        run_example(dts, "--events", "4", "--source-id", "dfapp")
        dts.wait_metric("dts_ipc_records_total", lambda v: v == 4,
                        labels='{kind="event"}')
        # a few cycles of samples so that the size limit rotates files
        dts.wait_metric("dts_datafile_files_total", lambda v: v >= 2,
                        timeout=60)
    finally:
        assert dts.stop() == 0
    files = sorted(glob.glob(str(out / "*.dtsd")))
    assert len(files) >= 2
    assert all(os.path.getsize(f) <= 20000 for f in files)
    r = dump(*files)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert all("time_ns" in x and isinstance(x["record"], dict) for x in lines)
    events = [x["record"] for x in lines
              if x["record"].get("event_type") == "example_event"]
    assert sorted(e["seq"] for e in events) == [0, 1, 2, 3]
    assert {e["source_id"] for e in events} == {"dfapp"}
    assert any("metric" in x["record"] for x in lines)

    # corrupt: truncated last record, bad magic
    data = open(files[0], "rb").read()
    bad = tmp_path / "trunc.dtsd"
    bad.write_bytes(data[:-3])
    r = dump(str(bad))
    assert r.returncode == 1 and "truncated" in r.stderr
    bad.write_bytes(b"XXXX" + data[4:])
    r = dump(str(bad))
    assert r.returncode == 1 and "magic" in r.stderr
    r = dump("--help")
    assert r.returncode == 0 and "Usage: dts-dump" in r.stdout
