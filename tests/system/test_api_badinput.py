"""Bad input: each malformed request gets the right Status code and
reason, and the store is unchanged afterwards (verified by listing)."""
import json

import pytest

from apiutil import PROV, bfb, call, configmap, path, snapshot

CM = path("configmaps")
BFBS = path("bfbs", group=PROV)


def _yaml_cm(extra=""):
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y1\n"
            "data:\n  a: b\n" + extra)


CASES = [
    # (id, method, path, body, content type, status, reason)
    ("json-truncated", "POST", CM, '{"apiVersion": "v1", "kind": "Conf',
     "application/json", 400, "BadRequest"),
    ("json-not-object", "POST", CM, '["a", "b"]', "application/json", 400,
     "BadRequest"),
    ("json-garbage", "POST", CM, "\x00\x01\x02 not json", "application/json",
     400, "BadRequest"),
    ("yaml-bad-indent", "POST", CM, "apiVersion: v1\n kind: ConfigMap\n  x: [",
     "application/yaml", 400, "BadRequest"),
    ("yaml-tab", "POST", CM, "apiVersion: v1\nkind:\tConfigMap\nmetadata: {name: [}",
     "application/yaml", 400, "BadRequest"),
    ("yaml-two-docs", "POST", CM, _yaml_cm() + "---\n" + _yaml_cm(),
     "application/yaml", 400, "BadRequest"),
    ("wrong-kind", "POST", CM,
     json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}),
     "application/json", 400, "BadRequest"),
    ("wrong-apiversion", "POST", CM,
     json.dumps({"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "x"}}),
     "application/json", 400, "BadRequest"),
    # A built-in kind's body may leave kind out (test_api_gaps.py); a
    # custom resource's may not.
    ("missing-kind", "POST", BFBS,
     json.dumps({k: v for k, v in bfb("x").items() if k != "kind"}),
     "application/json", 400, "BadRequest"),
    ("crd-wrong-group", "POST", BFBS,
     json.dumps(dict(bfb("x"), apiVersion="svc.dpu.nvidia.com/v1alpha1")),
     "application/json", 400, "BadRequest"),
    ("invalid-name-upper", "POST", CM, json.dumps(configmap("Bad_Name")),
     "application/json", 422, "Invalid"),
    ("invalid-name-long", "POST", CM, json.dumps(configmap("a" * 300)),
     "application/json", 422, "Invalid"),
    ("no-name", "POST", CM,
     json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
     "application/json", 422, "Invalid"),
    ("rv-on-create", "POST", CM,
     json.dumps(configmap("rv", resourceVersion="5")), "application/json", 400,
     "BadRequest"),
    ("content-type-text", "POST", CM, json.dumps(configmap("ct")), "text/plain",
     415, "UnsupportedMediaType"),
    ("content-type-protobuf", "POST", CM, json.dumps(configmap("ct")),
     "application/vnd.kubernetes.protobuf", 415, "UnsupportedMediaType"),
    ("strict-unknown-field", "POST", CM + "?fieldValidation=Strict",
     json.dumps(dict(configmap("strict"), bogus=1)), "application/json", 400,
     "BadRequest"),
    ("strict-unknown-nested", "POST", BFBS + "?fieldValidation=Strict",
     json.dumps({**bfb("strict2"), "spec": {"url": "http://a/b.bfb", "foo": 1}}),
     "application/json", 400, "BadRequest"),
    ("strict-duplicate-field", "POST", CM + "?fieldValidation=Strict",
     '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},'
     '"data":{"a":"1"},"data":{"a":"2"}}', "application/json", 400,
     "BadRequest"),
    ("bad-field-validation", "POST", CM + "?fieldValidation=Loud",
     json.dumps(configmap("fv")), "application/json", 400, "BadRequest"),
    ("bad-dry-run", "POST", CM + "?dryRun=Some", json.dumps(configmap("dr")),
     "application/json", 400, "BadRequest"),
    ("put-name-mismatch", "PUT", path("configmaps", "base"),
     json.dumps(configmap("other")), "application/json", 400, "BadRequest"),
    ("put-missing", "PUT", path("configmaps", "nope"),
     json.dumps(configmap("nope")), "application/json", 404, "NotFound"),
    ("merge-patch-not-object", "PATCH", path("configmaps", "base"), "[1,2]",
     "application/merge-patch+json", 400, "BadRequest"),
    ("json-patch-not-array", "PATCH", path("configmaps", "base"), "{}",
     "application/json-patch+json", 400, "BadRequest"),
    ("json-patch-bad-path", "PATCH", path("configmaps", "base"),
     '[{"op":"remove","path":"/data/nope/deeper"}]',
     "application/json-patch+json", 422, None),
    ("patch-to-invalid", "PATCH", path("configmaps", "base"),
     '{"metadata":{"name":"renamed"}}', "application/merge-patch+json", 400,
     "BadRequest"),
    ("delete-bad-policy", "DELETE", path("configmaps", "base"),
     '{"propagationPolicy":"Sideways"}', "application/json", 422, "Invalid"),
    ("delete-body-garbage", "DELETE", path("configmaps", "base"), "{nope",
     "application/json", 400, "BadRequest"),
    ("method-not-allowed", "POST", path("configmaps", "base"),
     json.dumps(configmap("base")), "application/json", 405,
     "MethodNotAllowed"),
    ("bad-label-selector", "GET", CM + "?labelSelector=a%20in%20(", None, None,
     400, "BadRequest"),
]


@pytest.fixture
def seeded(dpf_server):
    assert call(dpf_server, "POST", CM, configmap("base", {"k": "v"}))[0] == 201
    assert call(dpf_server, "POST", BFBS, bfb("base-bfb"))[0] == 201
    return dpf_server


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_changes_nothing(seeded, case):
    _, method, p, body, ctype, code, reason = case
    before = snapshot(seeded)
    headers = {"Content-Type": ctype} if ctype else {}
    st, _, data = seeded.request(method, p, body, headers)
    assert st == code, data[:400]
    status = json.loads(data)
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert status["code"] == code
    if reason:
        assert status["reason"] == reason, status
    assert snapshot(seeded) == before


def test_strict_message_names_the_field(seeded):
    st, _, data = seeded.request(
        "POST", CM + "?fieldValidation=Strict",
        json.dumps(dict(configmap("strict"), bogus=1)),
        {"Content-Type": "application/json"})
    assert st == 400
    msg = json.loads(data)["message"]
    assert "strict decoding error" in msg and 'unknown field "bogus"' in msg


def test_warn_and_ignore_prune_unknown_fields(seeded):
    st, hdrs, data = seeded.request(
        "POST", CM + "?fieldValidation=Warn",
        json.dumps(dict(configmap("warned"), bogus=1)),
        {"Content-Type": "application/json"})
    assert st == 201 and "bogus" in hdrs.get("warning", "")
    assert "bogus" not in json.loads(data)
    st, hdrs, data = seeded.request(
        "POST", CM, json.dumps(dict(configmap("ignored"), bogus=1)),
        {"Content-Type": "application/json"})
    assert st == 201 and "bogus" not in json.loads(data)
    assert "warning" not in hdrs


def _post_big(srv, p, body):
    """POST a body the server may refuse before reading it all (early
    413 + close): tolerate the failed send and read the answer."""
    conn = srv.connection()
    try:
        conn.putrequest("POST", p)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("Authorization", "Bearer " + srv.token)
        conn.endheaders()
        try:
            for i in range(0, len(body), 65536):
                conn.send(body[i:i + 65536])
        except OSError:
            pass
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_body_over_limit(seeded):
    before = snapshot(seeded)
    big = json.dumps(configmap("huge", {"blob": "x" * (3 * 1024 * 1024 + 100)}))
    st, data = _post_big(seeded, CM, big.encode())
    assert st == 413
    assert json.loads(data)["reason"] == "RequestEntityTooLarge"
    assert snapshot(seeded) == before
    # just under the limit is fine when the decoded object also fits
    ok = json.dumps(configmap("big-ok", {"blob": "x" * (1024 * 1024)}))
    st, _, data = seeded.request("POST", CM, ok, {"Content-Type": "application/json"})
    assert st == 201


def test_yaml_body_accepted(seeded):
    st, _, data = seeded.request("POST", CM, _yaml_cm(),
                                 {"Content-Type": "application/yaml"})
    assert st == 201 and json.loads(data)["data"] == {"a": "b"}
