"""Durability: SIGKILL dpf-server in the middle of a write storm; after a
restart on the same data dir every object whose create was acknowledged
(201) is there with its content."""
import threading
import time

from apiutil import call, configmap, path


def test_sigkill_mid_storm_keeps_acknowledged_writes(dpf_server):
    s = dpf_server
    acked = {}
    lock = threading.Lock()
    stop = threading.Event()

    def storm(t):
        i = 0
        while not stop.is_set():
            name = f"crash-{t}-{i}"
            data = {"payload": f"{t}:{i}:" + "x" * (i % 200)}
            try:
                st, o = call(s, "POST", path("configmaps"), configmap(name, data))
            except Exception:  # noqa: BLE001 - the server died under us
                return
            if st == 201:
                with lock:
                    acked[name] = (data, o["metadata"]["uid"])
            i += 1
    threads = [threading.Thread(target=storm, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    s.kill()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 50, "the storm made too little progress"
    s.start()
    st, lst = call(s, "GET", path("configmaps"))
    assert st == 200
    stored = {i["metadata"]["name"]: i for i in lst["items"]}
    missing = [n for n in acked if n not in stored]
    assert not missing, f"{len(missing)} acknowledged creates lost: {missing[:5]}"
    for name, (data, uid) in acked.items():
        assert stored[name]["data"] == data
        assert stored[name]["metadata"]["uid"] == uid
    # the server still works after the crash
    assert call(s, "POST", path("configmaps"), configmap("after-crash"))[0] == 201
