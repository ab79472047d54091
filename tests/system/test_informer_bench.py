"""bench/informer-bench.py runs end to end (a smoke run, so the benchmark
cannot rot): tiny counts, both informers, the controller manager, JSON
output and the table. No figure is judged here; the benchmark's results
are in docs/benchmarks.md.

client-node's node_modules come from the npm registry (npm ci from
bench/informer-node/package-lock.json into the build directory, once):
without node/npm or the registry the driver exits 77 and this test skips
with one line saying so."""
import importlib.util
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout

import pytest

from conftest import BUILD, REPO

DRIVER = os.path.join(REPO, "bench", "informer-bench.py")
OBJECTS = 50
UPDATES = 100


def load_driver():
    spec = importlib.util.spec_from_file_location("informer_bench", DRIVER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_informer_bench_smoke():
    p = subprocess.run(
        [sys.executable, DRIVER, "--build", BUILD, "--objects", str(OBJECTS),
         "--updates", str(UPDATES), "--idle", "1", "--nice", "0", "--json"],
        capture_output=True, text=True, timeout=900)
    if p.returncode == 77:
        pytest.skip("informer-bench: client-node not installable here: "
                    + (p.stderr.strip().splitlines() or ["?"])[-1])
    assert p.returncode == 0, p.stderr[-4000:]
    res = json.loads(p.stdout)
    with open(os.path.join(REPO, "bench", "informer-node",
                           "package.json")) as f:
        pinned = json.load(f)["dependencies"]["@kubernetes/client-node"]
    assert res["versions"]["client_node"] == pinned
    assert res["order"] == ["dpf", "client-node"]
    for impl in ("dpf", "client-node"):
        s = res["sides"][impl]
        # every create reached the add handler, every patch the update
        # handler, in both storms; nothing was deleted or lost
        assert s["create"]["objects"] == OBJECTS, s
        assert s["cached"] == OBJECTS and s["cached_after"] == OBJECTS, s
        assert s["storm"]["updates"] == UPDATES, s
        assert s["backlog"]["updates"] == UPDATES, s
        assert s["deletes"] == 0, s
        for phase in ("create", "storm", "backlog"):
            assert not s[phase]["timed_out"], (phase, s)
        assert s["storm"]["events_per_s"] > 0
        assert s["backlog"]["events_per_s"] > 0
        assert s["create"]["first_create_to_last_add_s"] > 0
        assert 0 < s["rss_cached_kb"] <= s["hwm_after_kb"], s
        assert 0 < s["anon_cached_kb"] <= s["rss_cached_kb"], s
    for key in ("create_time", "storm_events_per_s", "backlog_events_per_s",
                "rss_cached", "anon_cached"):
        assert res["ratios"][key] > 0, res["ratios"]
    cm = res["controller_manager"]
    assert cm["rss_kb"] > 0 and cm["threads"] >= 1, cm
    # The table is printed from the same result.
    out = io.StringIO()
    with redirect_stdout(out):
        load_driver().print_table(res)
    table = out.getvalue()
    assert "dpf/node" in table and "backlog: events/s" in table, table
    assert f"RSS, {OBJECTS}-object cache" in table, table
    assert "dpf-controller-manager --controllers=all idle" in table, table
