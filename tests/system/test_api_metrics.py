"""/metrics as a Prometheus scraper and kubectl see it.

dpf-server serves kube-apiserver's series in the text exposition format
0.0.4: apiserver_request_total and apiserver_request_duration_seconds by
verb, group, version, resource, subresource and scope (and code),
apiserver_longrunning_requests, apiserver_current_inflight_requests,
apiserver_storage_objects and the process_* series. Reading it is a
non-resource `get` on /metrics: system:masters and cluster-admin may, the
group system:monitoring may (kube-apiserver's default role), anonymous
clients get 401 and other users 403.
"""
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
import json
import uuid

import pytest

from conftest import DpfServer, free_port, kubectl, wait_for
from test_api_rbac import User, issue_cert

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
CM = "/api/v1/namespaces/default/configmaps"


def parse(text):
    """{(name, sorted label pairs): value}; fails on a line that is not
    the format or on a series that appears twice."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, f"not exposition format: {line!r}"
        key = (m.group(1), tuple(sorted(LABEL.findall(m.group(2) or ""))))
        assert key not in out, f"series twice: {line!r}"
        out[key] = float(m.group(3))
    return out


def scrape(srv):
    status, hdrs, body = srv.request("GET", "/metrics",
                                     headers={"Accept": "text/plain"})
    assert status == 200, body[:300]
    assert hdrs["content-type"].startswith("text/plain; version=0.0.4"), hdrs
    return parse(body.decode())


def req_labels(verb, resource="", scope="", code="200", group="",
               version="v1", subresource="", dry_run=""):
    if not resource:
        version = ""
    return tuple(sorted({
        "verb": verb, "dry_run": dry_run, "group": group, "version": version,
        "resource": resource, "subresource": subresource, "scope": scope,
        "component": "apiserver", "code": code}.items()))


def total(m, verb, **kw):
    return m.get(("apiserver_request_total", req_labels(verb, **kw)), 0)


def hist_count(m, verb, **kw):
    labels = dict(req_labels(verb, **kw))
    del labels["code"]
    return m.get(("apiserver_request_duration_seconds_count",
                  tuple(sorted(labels.items()))), 0)


def make_cm(srv, name, ns="default"):
    srv.json("POST", f"/api/v1/namespaces/{ns}/configmaps",
             {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": name}, "data": {"a": "b"}}, expect=201)


def test_gets_lists_and_writes_count_exactly(dpf_server):
    srv = dpf_server
    make_cm(srv, "m1")
    before = scrape(srv)
    for _ in range(3):
        srv.json("GET", CM + "/m1", expect=200)
    for _ in range(2):
        srv.json("GET", CM, expect=200)
    srv.json("PUT", CM + "/m1", {"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "m1"},
                                 "data": {"a": "c"}}, expect=200)
    srv.json("POST", CM + "?dryRun=All",
             {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "dry"}}, expect=201)
    st, _, body = srv.request(
        "PATCH", CM + "/m1?fieldManager=metrics-test",
        body='{"apiVersion":"v1","kind":"ConfigMap","metadata":'
             '{"name":"m1"},"data":{"x":"y"}}',
        headers={"Content-Type": "application/apply-patch+yaml"})
    assert st == 200, body[:300]
    srv.json("DELETE", CM + "/m1", expect=200)
    after = scrape(srv)

    def delta(verb, **kw):
        return total(after, verb, **kw) - total(before, verb, **kw)
    assert delta("GET", resource="configmaps", scope="resource") == 3
    assert hist_count(after, "GET", resource="configmaps",
                      scope="resource") - hist_count(
        before, "GET", resource="configmaps", scope="resource") == 3
    assert delta("LIST", resource="configmaps", scope="namespace") == 2
    assert delta("PUT", resource="configmaps", scope="resource") == 1
    assert delta("POST", resource="configmaps", scope="namespace",
                 code="201", dry_run="All") == 1
    assert delta("APPLY", resource="configmaps", scope="resource") == 1
    assert delta("DELETE", resource="configmaps", scope="resource") == 1
    # the histogram's buckets add up: +Inf equals the count
    labels = dict(req_labels("GET", resource="configmaps", scope="resource"))
    del labels["code"]
    inf = tuple(sorted({**labels, "le": "+Inf"}.items()))
    assert after[("apiserver_request_duration_seconds_bucket", inf)] == \
        hist_count(after, "GET", resource="configmaps", scope="resource")
    # the scrape in between counts as the non-resource path /metrics
    assert total(after, "GET", subresource="/metrics") >= 1


def test_not_found_counts_with_its_code_and_bounded_labels(dpf_server):
    srv = dpf_server
    before = scrape(srv)
    for _ in range(2):
        srv.json("GET", CM + "/missing", expect=404)
    junk = [uuid.uuid4().hex for _ in range(5)]
    for j in junk:
        st, _, _ = srv.request("GET", f"/api/v1/namespaces/default/{j}/x")
        assert st == 404
        st, _, _ = srv.request("GET", f"/apis/{j}.example.com/v1/{j}")
        assert st == 404
        st, _, _ = srv.request("GET", f"/{j}")
        assert st == 404
    st, text_after = 0, None
    st, _, body = srv.request("GET", "/metrics")
    assert st == 200
    text_after = body.decode()
    after = parse(text_after)
    assert total(after, "GET", resource="configmaps", scope="resource",
                 code="404") - total(before, "GET", resource="configmaps",
                                     scope="resource", code="404") == 2
    # every made-up path in one fixed series, none of its words a label
    assert total(after, "GET", subresource="other", code="404") - \
        total(before, "GET", subresource="other", code="404") == 15
    for j in junk:
        assert j not in text_after


def test_anonymous_and_unprivileged_users_may_not_read_it(dpf_server,
                                                          tmp_path):
    srv = dpf_server
    st, _, body = srv.request("GET", "/metrics", auth=False)
    assert st == 401, body[:300]
    assert b"Unauthorized" in body
    alice = User(srv, tmp_path, "alice")
    st, body = alice.request("GET", "/metrics")
    assert st == 403, body
    assert body["message"] == (
        'forbidden: User "alice" cannot get path "/metrics"')
    mon = User(srv, tmp_path, "scraper", groups=("system:monitoring",))
    st, body = mon.request("GET", "/metrics")
    assert st == 200
    assert b"\napiserver_request_total{" in body
    # the refusals are counted too
    m = scrape(srv)
    assert total(m, "GET", subresource="/metrics", code="401") == 1
    assert total(m, "GET", subresource="/metrics", code="403") == 1


def test_kubectl_get_raw_metrics(dpf_server):
    r = kubectl(["get", "--raw", "/metrics"], dpf_server.kubeconfig)
    assert r.returncode == 0, r.stderr
    m = parse(r.stdout)
    assert m[("apiserver_storage_objects",
              (("resource", "namespaces"),))] >= 5
    assert ("apiserver_current_inflight_requests",
            (("request_kind", "mutating"),)) in m
    assert ("apiserver_current_inflight_requests",
            (("request_kind", "readOnly"),)) in m


def test_storage_objects_follow_creates(dpf_server):
    srv = dpf_server
    key = ("apiserver_storage_objects", (("resource", "configmaps"),))
    before = scrape(srv)[key]
    make_cm(srv, "s1")
    make_cm(srv, "s2")
    assert scrape(srv)[key] == before + 2
    key = ("apiserver_storage_objects",
           (("resource", "bfbs.provisioning.dpu.nvidia.com"),))
    assert scrape(srv)[key] == 0


def test_store_commits_and_writes(dpf_server):
    """Each sequential create is one durable commit; the counters follow."""
    srv = dpf_server
    m0 = scrape(srv)
    make_cm(srv, "c1")
    make_cm(srv, "c2")
    m1 = scrape(srv)
    w = ("dpf_store_writes_total", ())
    c = ("dpf_store_commits_total", ())
    # the controllers of the server may write too; ours are two of them
    assert m1[w] - m0[w] >= 2
    assert 1 <= m1[c] - m0[c] <= m1[w] - m0[w]


def test_process_series(dpf_server):
    m = scrape(dpf_server)
    with open(f"/proc/{dpf_server.pid}/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as f:
        btime = next(int(line.split()[1]) for line in f
                     if line.startswith("btime "))
    start = btime + start_ticks / os.sysconf("SC_CLK_TCK")
    assert abs(m[("process_start_time_seconds", ())] - start) < 2
    assert 0 < m[("process_open_fds", ())] <= m[("process_max_fds", ())]
    assert m[("process_resident_memory_bytes", ())] > 1 << 20
    assert m[("process_virtual_memory_bytes", ())] >= \
        m[("process_resident_memory_bytes", ())]
    assert m[("process_cpu_seconds_total", ())] >= 0


def test_a_watch_is_long_running_and_counted_when_it_ends(dpf_server):
    srv = dpf_server
    lr = ("apiserver_longrunning_requests", tuple(sorted({
        "verb": "WATCH", "group": "", "version": "v1",
        "resource": "configmaps", "subresource": "", "scope": "namespace",
        "component": "apiserver"}.items())))
    before = scrape(srv)
    conn = srv.connection()
    try:
        conn.request("GET", CM + "?watch=true&timeoutSeconds=2",
                     headers={"Authorization": "Bearer " + srv.token})
        resp = conn.getresponse()
        assert resp.status == 200
        mid = scrape(srv)
        assert mid[lr] == 1
        assert total(mid, "WATCH", resource="configmaps",
                     scope="namespace") == total(
            before, "WATCH", resource="configmaps", scope="namespace")
        resp.read()  # the server ends the watch after 2 s
    finally:
        conn.close()

    def ended():
        m = scrape(srv)
        return m[lr] == 0 and total(
            m, "WATCH", resource="configmaps", scope="namespace") == total(
            before, "WATCH", resource="configmaps", scope="namespace") + 1
    wait_for(ended, 20, what="the watch counted as ended")
    m = scrape(srv)
    labels = dict(req_labels("WATCH", resource="configmaps",
                             scope="namespace"))
    del labels["code"]
    # 2 s long: not in the 1 s bucket, in the 3 s one
    le = lambda v: ("apiserver_request_duration_seconds_bucket",
                    tuple(sorted({**labels, "le": v}.items())))
    assert m[le("1")] == before.get(le("1"), 0)
    assert m[le("3")] == before.get(le("3"), 0) + 1


def test_in_process_controllers_are_counted(tmp_path):
    data = tmp_path / "state"
    data.mkdir()
    srv = DpfServer(str(data), controllers="all").start()
    try:
        # their leader election reads and writes a Lease over loopback
        def leases():
            m = scrape(srv)
            return sum(v for (name, labels), v in m.items()
                       if name == "apiserver_request_total" and
                       ("resource", "leases") in labels and
                       ("group", "coordination.k8s.io") in labels)
        wait_for(lambda: leases() >= 2, 30, what="controllers' Lease calls")
        # and the controllers' own series come with the server's, as
        # dpf-controller-manager's /metrics serves them
        def reconciles(ctl):
            m = scrape(srv)
            return sum(v for (name, labels), v in m.items()
                       if name == "controller_runtime_reconcile_total" and
                       ("controller", ctl) in labels)
        srv.json("POST", "/apis/provisioning.dpu.nvidia.com/v1alpha1/"
                 "namespaces/default/dpusets",
                 {"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
                  "kind": "DPUSet", "metadata": {"name": "m"},
                  "spec": {"dpuTemplate": {"spec": {"bfb": {"name": "b"}}}}},
                 expect=201)
        wait_for(lambda: reconciles("dpuset") >= 1, 30,
                 what="a dpuset reconcile counted")
        m = scrape(srv)
        assert any(name == "workqueue_depth" and ("name", "dpu") in labels
                   for (name, labels) in m), "no workqueue_depth{name=dpu}"
    finally:
        assert srv.stop() == 0


PROMETHEUS = shutil.which("prometheus")


@pytest.mark.parametrize("credential", ["token", "monitoring-cert"])
def test_prometheus_scrapes_it(dpf_server, tmp_path, credential):
    """A real Prometheus scrapes /metrics over HTTPS with the admin bearer
    token, or with a client certificate in the group system:monitoring."""
    assert PROMETHEUS, "prometheus missing: run scripts/install-deps"
    srv = dpf_server
    d = tmp_path / "prom"
    d.mkdir()
    if credential == "token":
        (d / "token").write_text(srv.token)
        os.chmod(d / "token", 0o600)
        auth = f"    authorization: {{credentials_file: {d / 'token'}}}\n"
        tls_extra = ""
    else:
        crt, key = issue_cert(srv, tmp_path, "prometheus",
                              ("system:monitoring",))
        auth = ""
        tls_extra = f", cert_file: {crt}, key_file: {key}"
    port = free_port()
    (d / "prom.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: dpf-server\n"
        "    scheme: https\n"
        f"    tls_config: {{ca_file: {srv.ca}{tls_extra}}}\n"
        f"{auth}"
        f"    static_configs: [{{targets: ['127.0.0.1:{srv.port}']}}]\n")
    log = open(d / "prom.log", "wb")
    proc = subprocess.Popen(
        [PROMETHEUS, "--config.file", str(d / "prom.yml"),
         "--storage.tsdb.path", str(d / "data"),
         "--web.listen-address", f"127.0.0.1:{port}"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=d)
    log.close()

    def query(q):
        url = (f"http://127.0.0.1:{port}/api/v1/query?" +
               urllib.parse.urlencode({"query": q}))
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)["data"]["result"]

    def up():
        assert proc.poll() is None, (d / "prom.log").read_text()[-2000:]
        try:
            res = query('up{job="dpf-server"}')
        except OSError:
            return False
        return bool(res) and res[0]["value"][1] == "1"
    try:
        wait_for(up, 60, interval=0.5, what="prometheus up == 1")
        res = query('apiserver_storage_objects{resource="namespaces"}')
        assert res and float(res[0]["value"][1]) >= 5, res
        # a scrape counts itself once answered: seen from the next one on
        wait_for(lambda: query('apiserver_request_total{subresource='
                               '"/metrics",code="200"} >= 1'),
                 30, interval=0.5, what="the scrapes counted")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


from test_pod_proxy import agent, kc  # noqa: E402,F401 (the node agent)


def test_exec_is_a_connect_counted_when_it_ends(dpf_server, agent):
    srv = dpf_server
    kw = dict(resource="pods", scope="resource", subresource="exec",
              code="101")
    before = scrape(srv)
    r = kc(srv, "exec", "web", "--", "true")
    assert r.returncode == 0, r.stderr
    lr = ("apiserver_longrunning_requests", tuple(sorted({
        "verb": "CONNECT", "group": "", "version": "v1", "resource": "pods",
        "subresource": "exec", "scope": "resource",
        "component": "apiserver"}.items())))

    def counted():
        m = scrape(srv)
        return total(m, "CONNECT", **kw) == total(before, "CONNECT", **kw) + 1 \
            and m[lr] == 0
    wait_for(counted, 20, what="the exec counted as a finished CONNECT")
