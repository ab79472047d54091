"""Watch semantics: resume without loss or duplicates, fan-out to 1,000
watchers, bookmarks, timeoutSeconds, 410 Gone, selectors, kubectl -w."""
import subprocess
import threading
import time

import pytest

from apiutil import Watch, call, configmap, path
from conftest import DpfServer, KUBECTL, wait_for


def _writer(srv, prefix, n, rvs, errors):
    """Create then update n ConfigMaps; record every write's rv."""
    try:
        _write(srv, prefix, n, rvs)
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(repr(e))


def _write(srv, prefix, n, rvs):
    for i in range(n):
        st, o = call(srv, "POST", path("configmaps"),
                     configmap(f"{prefix}{i}", labels={"w": prefix.strip("-")}))
        assert st == 201, o
        rvs.append(int(o["metadata"]["resourceVersion"]))
        st, o = call(srv, "PATCH", path("configmaps", f"{prefix}{i}"),
                     {"data": {"i": str(i)}}, "application/merge-patch+json")
        assert st == 200, o
        rvs.append(int(o["metadata"]["resourceVersion"]))


def test_resume_misses_nothing_and_repeats_nothing(dpf_server):
    s = dpf_server
    st, lst = call(s, "GET", path("configmaps"))
    start = lst["metadata"]["resourceVersion"]
    rvs, errors = [], []
    writers = [threading.Thread(target=_writer, args=(s, f"r{t}-", 40, rvs, errors))
               for t in range(3)]
    for w in writers:
        w.start()
    seen = []
    last = start
    reconnects = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        w = Watch(s, path("configmaps") +
                  f"?watch=1&resourceVersion={last}&labelSelector=w")
        assert w.status == 200
        # read a few events, then drop the connection mid-stream
        evs = w.events_until(lambda e: len(e) >= 7, timeout=3, partial=True)
        w.close()
        for ev in evs:
            assert ev["type"] in ("ADDED", "MODIFIED"), ev
            seen.append(int(ev["object"]["metadata"]["resourceVersion"]))
        if seen:
            last = str(seen[-1])
        reconnects += 1
        if not any(t.is_alive() for t in writers) and len(seen) >= len(rvs):
            break
    for t in writers:
        t.join()
    assert not errors, errors
    assert reconnects > 3
    assert len(seen) == len(set(seen)), "duplicate events after resume"
    assert sorted(seen) == seen, "events out of order"
    assert sorted(seen) == sorted(rvs), "missed events"


def test_initial_events_and_selectors(dpf_server):
    s = dpf_server
    for i in range(3):
        call(s, "POST", path("configmaps"),
             configmap(f"init{i}", labels={"grp": "x" if i < 2 else "y"}))
    w = Watch(s, path("configmaps") + "?watch=true&labelSelector=grp%3Dx")
    evs = w.events_until(lambda e: len(e) >= 2, timeout=10)
    assert sorted(e["object"]["metadata"]["name"] for e in evs) == ["init0", "init1"]
    assert all(e["type"] == "ADDED" for e in evs)
    call(s, "POST", path("configmaps"), configmap("init3", labels={"grp": "y"}))
    call(s, "POST", path("configmaps"), configmap("init4", labels={"grp": "x"}))
    call(s, "DELETE", path("configmaps", "init0"))
    evs = w.events_until(lambda e: len(e) >= 2, timeout=10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == \
        [("ADDED", "init4"), ("DELETED", "init0")]
    w.close()
    # the delete-wait watch kubectl uses: one name from a resourceVersion
    st, o = call(s, "GET", path("configmaps", "init1"))
    rv = o["metadata"]["resourceVersion"]
    w = Watch(s, path("configmaps") +
              f"?fieldSelector=metadata.name%3Dinit1&resourceVersion={rv}&watch=true")
    call(s, "DELETE", path("configmaps", "init2"))
    call(s, "DELETE", path("configmaps", "init1"))
    evs = w.events_until(lambda e: len(e) >= 1, timeout=10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == \
        [("DELETED", "init1")]
    w.close()


def test_timeout_and_bookmarks(dpf_server):
    s = dpf_server
    st, lst = call(s, "GET", path("configmaps"))
    rv = lst["metadata"]["resourceVersion"]
    w = Watch(s, path("configmaps") +
              f"?watch=1&resourceVersion={rv}&timeoutSeconds=2&allowWatchBookmarks=true")
    call(s, "POST", path("configmaps"), configmap("bm1"))
    t0 = time.monotonic()
    evs = w.events_until(lambda e: False, timeout=15)  # until the server ends it
    took = time.monotonic() - t0
    assert w.closed and took < 12
    assert evs[0]["type"] == "ADDED"
    assert evs[-1]["type"] == "BOOKMARK"
    bm = evs[-1]["object"]
    assert bm["kind"] == "ConfigMap"
    assert int(bm["metadata"]["resourceVersion"]) >= \
        int(evs[0]["object"]["metadata"]["resourceVersion"])
    w.close()


def test_gone_for_too_old_resource_version(tmp_path):
    data = tmp_path / "state"
    data.mkdir()
    srv = DpfServer(str(data), extra_args=["--watch-cache-size", "20"])
    srv.start()
    try:
        st, lst = call(srv, "GET", path("configmaps"))
        old = lst["metadata"]["resourceVersion"]
        for i in range(40):
            assert call(srv, "POST", path("configmaps"), configmap(f"g{i}"))[0] == 201
        w = Watch(srv, path("configmaps") + f"?watch=1&resourceVersion={old}")
        evs = w.events_until(lambda e: len(e) >= 1, timeout=10)
        assert evs[0]["type"] == "ERROR"
        st = evs[0]["object"]
        assert st["kind"] == "Status" and st["code"] == 410
        assert st["reason"] == "Expired"
        assert "too old resource version" in st["message"]
        w.close()
        # a recent resourceVersion still works
        st, lst = call(srv, "GET", path("configmaps"))
        w = Watch(srv, path("configmaps") +
                  f"?watch=1&resourceVersion={lst['metadata']['resourceVersion']}")
        call(srv, "POST", path("configmaps"), configmap("fresh"))
        evs = w.events_until(lambda e: len(e) >= 1, timeout=10)
        assert evs[0]["type"] == "ADDED"
        w.close()
    finally:
        assert srv.stop() == 0


def test_thousand_watchers_receive_every_event(dpf_server):
    s = dpf_server
    n_watchers, n_events = 1000, 20
    st, lst = call(s, "GET", path("configmaps"))
    rv = lst["metadata"]["resourceVersion"]
    watches = [None] * n_watchers
    errors = []

    def connect(lo, hi):
        for i in range(lo, hi):
            try:
                watches[i] = Watch(s, path("configmaps") +
                                   f"?watch=1&resourceVersion={rv}&labelSelector=fan",
                                   timeout=60)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
    threads = [threading.Thread(target=connect, args=(k * 50, (k + 1) * 50))
               for k in range(n_watchers // 50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    for i in range(n_events):
        assert call(s, "POST", path("configmaps"),
                    configmap(f"fan{i}", labels={"fan": "1"}))[0] == 201
    counts = [0] * n_watchers

    def drain(lo, hi):
        for i in range(lo, hi):
            try:
                evs = watches[i].events_until(lambda e: len(e) >= n_events,
                                              timeout=40)
                counts[i] = len({e["object"]["metadata"]["name"] for e in evs})
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
            finally:
                watches[i].close()
    threads = [threading.Thread(target=drain, args=(k * 50, (k + 1) * 50))
               for k in range(n_watchers // 50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert counts == [n_events] * n_watchers


@pytest.mark.parametrize("version", ["1.32", "1.20"])
def test_kubectl_get_watch(dpf_server, tmp_path, version):
    s = dpf_server
    call(s, "POST", path("configmaps"), configmap("kw-before"))
    cache = str(tmp_path / "cache")
    proc = subprocess.Popen(
        [KUBECTL[version], "--kubeconfig", s.kubeconfig, "--cache-dir", cache,
         "get", "configmaps", "-w", "--request-timeout=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = []

        def reader():
            for line in proc.stdout:
                out.append(line)
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        wait_for(lambda: any("kw-before" in l for l in out), timeout=30,
                 what="initial list")
        call(s, "POST", path("configmaps"), configmap("kw-after"))
        wait_for(lambda: any("kw-after" in l for l in out), timeout=30,
                 what="watched ADDED")
        assert out[0].split()[0] == "NAME"
    finally:
        proc.kill()
        proc.wait()
