"""The controller runtime's informer against a real dpf-server.

tests/system/kube-informer-check (built from kube-informer-check.c) runs an
informer on the ConfigMaps of the default namespace while its writer
threads create 10,000 ConfigMaps and then make 20,000 random creates,
updates and deletes. The server keeps only 1,000 events for watch resume,
and the program stalls the informer's loop thread midway until its watch
has ended and 2,000 more writes went by, so the informer's resume point is
gone and the server answers 410: the informer must list again. At the end
the program compares the informer's cache with a fresh list (names,
resourceVersions, data) and with what the event handlers were told.
"""
import re
import subprocess

from conftest import DpfServer, binary

WATCH_CACHE = 1000


def run_check(srv, *args, timeout=600):
    cmd = [binary("tests", "system", "kube-informer-check"),
           "--kubeconfig", srv.kubeconfig] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout)


def counters(text, label):
    """Parse 'label: a=1 b=2' into a dict of ints."""
    m = re.search(rf"^{label}: (.*)$", text, re.M)
    assert m, f"no '{label}:' line in:\n{text}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def test_informer_cache_exact_through_storm_and_410(tmp_path):
    data = tmp_path / "dpf-state"
    data.mkdir()
    srv = DpfServer(str(data),
                    extra_args=["--watch-cache-size", str(WATCH_CACHE)])
    srv.start()
    try:
        p = run_check(srv, "--initial", "10000", "--ops", "20000",
                      "--writers", "4", "--watch-timeout", "2",
                      "--stall-events", str(2 * WATCH_CACHE))
        out = p.stdout + p.stderr
        assert p.returncode == 0, f"informer check failed:\n{out[-6000:]}"
        result = counters(p.stdout, "result")
        inf = counters(p.stdout, "informer")
        handlers = counters(p.stdout, "handlers")
        # The cache is exactly the server's state, object for object...
        assert result["diffs"] == 0
        assert result["server"] == result["cache"]
        # ...and so is what the handlers were told, with no add of a known
        # object or update/delete of an unknown one.
        assert result["handler_diffs"] == 0
        assert handlers["anomalies"] == 0
        # The storm left thousands of objects (10,000 created, then random
        # creates and deletes over 15,000 names).
        assert result["server"] > 5000
        # The stall forced a 410 Gone and the informer listed again.
        assert inf["relists"] >= 1, out
        assert inf["lists"] >= 2
        writes = re.search(r"^writes: (\d+) .*stall covered (\d+)",
                           p.stdout, re.M)
        assert int(writes.group(1)) == 30000
        assert int(writes.group(2)) >= 2 * WATCH_CACHE
        # The server logged no failure of ours.
        assert "level=error" not in srv.log_text()
    finally:
        code = srv.stop()
    assert code == 0, srv.log_text()[-3000:]


def test_controller_copies_converge(dpf_server):
    """A controller written on lib/kube (kube-controller-check.c) keeps a
    copy of every labelled ConfigMap: it converges on create, follows an
    update of the source, puts back a deleted copy (secondary watch mapped
    to the owner), and never runs one key on two workers at once."""
    p = subprocess.run([binary("tests", "system", "kube-controller-check"),
                        "--kubeconfig", dpf_server.kubeconfig,
                        "--sources", "30", "--timeout", "90"],
                       capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    for step in ("create", "update", "recreate"):
        assert f"step {step}: converged" in p.stdout, out
    ctl = counters(p.stdout, "controller")
    assert ctl["overlaps"] == 0
    assert ctl["errors"] == 0
    assert ctl["reconciles"] >= 30
    # The copies are on the server, owned by their sources.
    st, body = dpf_server.json(
        "GET", "/api/v1/namespaces/default/configmaps?labelSelector=copy%3Ddst",
        expect=200)
    copies = {o["metadata"]["name"]: o for o in body["items"]}
    assert len(copies) == 30
    ref = copies["src-000-copy"]["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "ConfigMap" and ref["name"] == "src-000"
    assert ref["controller"] is True
    assert copies["src-000-copy"]["data"] == {"v": "2"}
