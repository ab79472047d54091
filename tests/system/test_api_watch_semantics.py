"""Watch and list semantics as kube-apiserver has them (issue 8, item 3):
selector transitions (an object that stops matching is DELETED with its
previous content, one that starts is ADDED), sendInitialEvents with the
k8s.io/initial-events-end bookmark, paginated lists that keep the first
page's snapshot (410 once it is gone), and the ListOptions combinations
kube-apiserver refuses. Checked with raw streams, stock kubectl 1.32 and
1.20, and a label-selected @kubernetes/client-node informer."""
import base64
import importlib.util
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from apiutil import Watch, call, configmap, path
from conftest import BUILD, DpfServer, KUBECTL, REPO, wait_for

Q = "%3D"  # "=" in a query value


def _relabel(s, name, labels):
    st, o = call(s, "PATCH", path("configmaps", name),
                 {"metadata": {"labels": labels}},
                 "application/merge-patch+json")
    assert st == 200, o
    return o


def _rv(o):
    return o["metadata"]["resourceVersion"]


def test_label_selected_watch_sees_objects_leave_and_arrive(dpf_server):
    s = dpf_server
    st, lst = call(s, "GET", path("configmaps"))
    w = Watch(s, path("configmaps") +
              f"?watch=1&labelSelector=team{Q}a&resourceVersion={_rv(lst)}")
    assert w.status == 200
    st, o = call(s, "POST", path("configmaps"),
                 configmap("mover", {"k": "1"}, labels={"team": "a"}))
    assert st == 201, o
    call(s, "POST", path("configmaps"),
         configmap("other", labels={"team": "b"}))
    st, o = call(s, "PATCH", path("configmaps", "mover"), {"data": {"k": "2"}},
                 "application/merge-patch+json")
    assert st == 200
    left = _relabel(s, "mover", {"team": "b"})        # stops matching
    st, o = call(s, "PATCH", path("configmaps", "mover"), {"data": {"k": "3"}},
                 "application/merge-patch+json")       # unseen: not matching
    back = _relabel(s, "mover", {"team": "a"})        # starts again
    evs = w.events_until(lambda e: len(e) >= 4, timeout=15)
    got = [(e["type"], e["object"]["metadata"]["name"]) for e in evs]
    assert got == [("ADDED", "mover"), ("MODIFIED", "mover"),
                   ("DELETED", "mover"), ("ADDED", "mover")], got
    gone = evs[2]["object"]
    # kube-apiserver: the previous content, with the event's revision
    assert gone["metadata"]["labels"] == {"team": "a"}, gone
    assert gone["data"] == {"k": "2"}, gone
    assert _rv(gone) == _rv(left), (gone, left)
    assert evs[3]["object"]["data"] == {"k": "3"}
    assert _rv(evs[3]["object"]) == _rv(back)
    # a deletion of an object that does not match is not sent
    call(s, "DELETE", path("configmaps", "other"))
    call(s, "DELETE", path("configmaps", "mover"))
    evs = w.events_until(lambda e: len(e) >= 1, timeout=10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == \
        [("DELETED", "mover")]
    w.close()


def test_field_selected_watch_sees_pod_phase_transitions(dpf_server):
    s = dpf_server
    st, o = call(s, "POST", path("pods"), {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p1"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    assert st == 201, o
    w = Watch(s, path("pods") + f"?watch=1&fieldSelector=status.phase{Q}"
              f"Running&resourceVersion={_rv(o)}")

    def phase(p):
        st, o = call(s, "PATCH", path("pods", "p1", sub="status"),
                     {"status": {"phase": p}}, "application/merge-patch+json")
        assert st == 200, o
        return o
    phase("Running")
    done = phase("Succeeded")
    evs = w.events_until(lambda e: len(e) >= 2, timeout=15)
    assert [e["type"] for e in evs] == ["ADDED", "DELETED"], evs
    assert evs[1]["object"]["status"]["phase"] == "Running"
    assert _rv(evs[1]["object"]) == _rv(done)
    w.close()


class Lines:
    """A child's stdout, one line at a time, read by a thread (a select()
    on a buffered pipe misses lines already in the buffer)."""

    def __init__(self, stream):
        self.q = queue.Queue()
        threading.Thread(target=self._read, args=(stream,),
                         daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.q.put(line)
        self.q.put(None)

    def get(self, deadline):
        """The next line, or None at EOF or the deadline."""
        try:
            return self.q.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None


def _kubectl_watch_events(s, version, selector, actions, want):
    """Run kubectl get -w with --output-watch-events -o json; do actions;
    return the (type, name, team label) of the events it printed."""
    cache = tempfile.mkdtemp(prefix="dpf-kubectl-cache-")
    p = subprocess.Popen(
        [KUBECTL[version], "--kubeconfig", s.kubeconfig, "--cache-dir",
         cache, "get", "configmaps", "-l", selector, "--watch-only",
         "--output-watch-events", "-o", "json", "-v=6"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = Lines(p.stdout)
        log = Lines(p.stderr)
        # -v=6 logs each request once its answer started: act only once
        # the watch is open (a loaded machine may take seconds to get
        # there)
        deadline = time.monotonic() + 60
        while True:
            line = log.get(deadline)
            assert line is not None, "kubectl never opened its watch"
            if "watch=true" in line and " 200 OK" in line:
                break
        actions()
        dec = json.JSONDecoder()
        buf, out = "", []
        deadline = time.monotonic() + 30
        while len(out) < want and time.monotonic() < deadline:
            line = lines.get(deadline)
            if line is None:
                break
            buf += line
            try:
                obj, end = dec.raw_decode(buf.strip())
            except ValueError:
                continue
            buf = buf.strip()[end:]
            out.append((obj["type"], obj["object"]["metadata"]["name"],
                        obj["object"]["metadata"].get("labels", {})
                        .get("team")))
        return out
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.parametrize("version", ["1.32", "1.30", "1.20"])
def test_kubectl_watch_by_label_sees_leave_and_arrive(dpf_server, version):
    s = dpf_server
    name = f"kw{version.replace('.', '')}"

    def actions():
        call(s, "POST", path("configmaps"),
             configmap(name, labels={"team": "a"}))
        _relabel(s, name, {"team": "b"})
        _relabel(s, name, {"team": "a"})
    got = _kubectl_watch_events(s, version, "team=a", actions, 3)
    assert got == [("ADDED", name, "a"), ("DELETED", name, "a"),
                   ("ADDED", name, "a")], got


def _node_modules():
    """client-node from the project's own setup (bench/informer-bench.py
    installs the pinned lockfile into the build directory)."""
    spec = importlib.util.spec_from_file_location(
        "informer_bench", os.path.join(REPO, "bench", "informer-bench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        mjs = mod.node_setup(BUILD)
    except SystemExit as e:
        pytest.skip(f"client-node not installable here (exit {e.code})")
    return os.path.join(os.path.dirname(mjs), "node_modules")


class NodeInformer:
    def __init__(self, s, selector, tmp_path):
        mods = _node_modules()
        d = tmp_path / "node"
        d.mkdir()
        shutil.copy(os.path.join(REPO, "tests", "system", "node",
                                 "label-informer.mjs"), d)
        os.symlink(mods, d / "node_modules")
        self.p = subprocess.Popen(
            ["node", str(d / "label-informer.mjs"), s.kubeconfig, "default",
             selector], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.out = Lines(self.p.stdout)

    def read_until(self, pred, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.out.get(deadline)
            if line is None:
                break
            self.lines.append(json.loads(line))
            if pred(self.lines[-1]):
                return self.lines[-1]
        raise AssertionError(f"informer: no match; saw {self.lines}; stderr "
                             f"{self.p.stderr.read() if self.p.poll() is not None else ''}")

    def cache(self):
        self.p.stdin.write("dump\n")
        self.p.stdin.flush()
        return self.read_until(lambda o: "cache" in o)["cache"]

    def close(self):
        self.p.kill()
        self.p.wait()


def test_client_node_label_informer_evicts_and_adds(dpf_server, tmp_path):
    s = dpf_server
    for n, team in (("in1", "a"), ("in2", "a"), ("out1", "b")):
        assert call(s, "POST", path("configmaps"),
                    configmap(n, labels={"team": team}))[0] == 201
    inf = NodeInformer(s, "team=a", tmp_path)
    try:
        inf.read_until(lambda o: o.get("ev") == "started")
        wait_for(lambda: inf.cache() == ["in1", "in2"], 20,
                 what="informer synced")
        # in1 leaves the selection: the informer's delete handler runs
        # and the object is evicted from its cache
        _relabel(s, "in1", {"team": "b"})
        ev = inf.read_until(lambda o: o.get("name") == "in1")
        assert ev["ev"] == "delete", ev
        assert inf.cache() == ["in2"]
        # out1 arrives: add handler, cached
        _relabel(s, "out1", {"team": "a"})
        ev = inf.read_until(lambda o: o.get("name") == "out1")
        assert ev["ev"] == "add" and ev["labels"] == {"team": "a"}, ev
        assert inf.cache() == ["in2", "out1"]
        assert not [o for o in inf.lines if o.get("ev") == "error"], inf.lines
    finally:
        inf.close()


def test_send_initial_events_ends_with_the_bookmark(dpf_server):
    s = dpf_server
    for i in range(3):
        call(s, "POST", path("configmaps"),
             configmap(f"sie{i}", labels={"grp": "x" if i < 2 else "y"}))
    st, lst = call(s, "GET", path("configmaps"))
    w = Watch(s, path("configmaps") +
              "?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
              f"&resourceVersionMatch=NotOlderThan&labelSelector=grp{Q}x")
    assert w.status == 200
    evs = w.events_until(lambda e: e and e[-1]["type"] == "BOOKMARK",
                         timeout=15)
    assert [e["type"] for e in evs] == ["ADDED", "ADDED", "BOOKMARK"], evs
    assert sorted(e["object"]["metadata"]["name"] for e in evs[:2]) == \
        ["sie0", "sie1"]
    bm = evs[2]["object"]
    assert bm["metadata"]["annotations"] == \
        {"k8s.io/initial-events-end": "true"}, bm
    assert int(_rv(bm)) >= int(_rv(lst))
    # then the changes after the bookmark's revision
    st, o = call(s, "POST", path("configmaps"),
                 configmap("sie3", labels={"grp": "x"}))
    evs = w.events_until(lambda e: len(e) >= 1, timeout=10)
    assert (evs[0]["type"], evs[0]["object"]["metadata"]["name"]) == \
        ("ADDED", "sie3")
    assert int(_rv(evs[0]["object"])) > int(_rv(bm))
    w.close()
    # sendInitialEvents=false: no initial state, only what follows
    w = Watch(s, path("configmaps") +
              "?watch=1&sendInitialEvents=false&allowWatchBookmarks=true"
              "&resourceVersionMatch=NotOlderThan")
    assert w.status == 200
    call(s, "POST", path("configmaps"), configmap("sie4"))
    evs = w.events_until(lambda e: len(e) >= 1, timeout=10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == \
        [("ADDED", "sie4")], evs
    w.close()


def test_pages_keep_the_first_pages_snapshot(dpf_server):
    s = dpf_server
    for i in range(6):
        call(s, "POST", path("configmaps"),
             configmap(f"pg{i}", {"v": "old"}, labels={"pg": "1"}))
    st, p1 = call(s, "GET", path("configmaps") + f"?labelSelector=pg{Q}1"
                  "&limit=2")
    assert st == 200 and len(p1["items"]) == 2
    snap = _rv(p1)
    tok = p1["metadata"]["continue"]
    assert json.loads(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)))
    # change the rest of the collection behind the cursor's back
    call(s, "DELETE", path("configmaps", "pg3"))
    call(s, "PATCH", path("configmaps", "pg4"), {"data": {"v": "new"}},
         "application/merge-patch+json")
    call(s, "POST", path("configmaps"), configmap("pg9", labels={"pg": "1"}))
    _relabel(s, "pg5", {"pg": "2"})
    names, datas = [], {}
    page = p1
    while page["metadata"].get("continue"):
        st, page = call(s, "GET", path("configmaps") +
                        f"?labelSelector=pg{Q}1&limit=2&continue="
                        + page["metadata"]["continue"])
        assert st == 200, page
        # every page carries the snapshot's resourceVersion
        assert _rv(page) == snap, (page["metadata"], snap)
        for it in page["items"]:
            names.append(it["metadata"]["name"])
            datas[it["metadata"]["name"]] = it["data"]["v"]
    # the snapshot: pg3 still there, pg4 old, pg5 still selected, no pg9
    assert names == ["pg2", "pg3", "pg4", "pg5"], names
    assert datas["pg4"] == "old"
    # a fresh list sees the present
    st, now = call(s, "GET", path("configmaps") + f"?labelSelector=pg{Q}1")
    assert sorted(i["metadata"]["name"] for i in now["items"]) == \
        ["pg0", "pg1", "pg2", "pg4", "pg9"]
    assert int(_rv(now)) > int(snap)
    # resourceVersionMatch=Exact lists that same snapshot
    st, ex = call(s, "GET", path("configmaps") + f"?labelSelector=pg{Q}1"
                  f"&resourceVersion={snap}&resourceVersionMatch=Exact")
    assert st == 200, ex
    assert _rv(ex) == snap
    assert [i["metadata"]["name"] for i in ex["items"]] == \
        ["pg0", "pg1", "pg2", "pg3", "pg4", "pg5"]


def test_continue_is_gone_once_the_snapshot_is_compacted(tmp_path):
    data = tmp_path / "state"
    data.mkdir()
    srv = DpfServer(str(data), extra_args=["--watch-cache-size", "20"])
    srv.start()
    try:
        for i in range(5):
            call(srv, "POST", path("configmaps"), configmap(f"c{i}"))
        st, p1 = call(srv, "GET", path("configmaps") + "?limit=2")
        assert p1["metadata"].get("continue")
        for i in range(40):
            call(srv, "POST", path("configmaps"), configmap(f"z{i}"))
        st, o = call(srv, "GET", path("configmaps") + "?limit=2&continue="
                     + p1["metadata"]["continue"])
        assert st == 410, o
        assert o["reason"] == "Expired"
        assert "continue parameter is too old" in o["message"]
    finally:
        assert srv.stop() == 0


INVALID = 'ListOptions.meta.k8s.io "" is invalid: '


@pytest.mark.parametrize("query,message", [
    # list
    ("resourceVersionMatch=NotOlderThan",
     "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden "
     "unless resourceVersion is provided"),
    ("resourceVersion=0&resourceVersionMatch=Exact",
     'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is '
     'forbidden for resourceVersion "0"'),
    ("resourceVersion=1&resourceVersionMatch=Newest",
     'resourceVersionMatch: Unsupported value: "Newest": supported values: '
     '"Exact", "NotOlderThan", ""'),
    ("sendInitialEvents=true",
     "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"),
    # watch
    ("watch=1&sendInitialEvents=true",
     "resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
     "resourceVersionMatch to NotOlderThan"),
    ("watch=1&resourceVersionMatch=NotOlderThan",
     "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden "
     "for watch unless sendInitialEvents is provided"),
])
def test_list_options_kube_apiserver_refuses(dpf_server, query, message):
    st, o = call(dpf_server, "GET", path("configmaps") + "?" + query)
    assert st == 422, o
    assert o["kind"] == "Status" and o["reason"] == "Invalid"
    assert o["message"] == INVALID + message, o["message"]
    assert o["details"]["kind"] == "ListOptions"
    assert o["details"]["group"] == "meta.k8s.io"
    assert o["details"]["causes"][0]["field"] == message.split(":")[0]


def test_kubectl_reports_the_refusal(dpf_server):
    r = subprocess.run(
        [KUBECTL["1.32"], "--kubeconfig", dpf_server.kubeconfig, "get",
         "--raw", "/api/v1/namespaces/default/configmaps?"
         "resourceVersionMatch=NotOlderThan"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "resourceVersionMatch is forbidden unless resourceVersion is " \
        "provided" in r.stderr, r.stderr
