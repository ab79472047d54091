"""The guaranteed update: every write of a stored object (update, each
patch type, delete, the garbage collector's edits) is one read-modify-write
with a compare-and-swap on the store revision, retried on a lost race
unless the client pinned a resourceVersion. These tests race writers
against each other and against the garbage collector and check that no
write is lost, none is applied twice, and the collector never deletes an
object a client just gave a live owner."""
import threading

from apiutil import call, configmap, path
from conftest import wait_for

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSONPATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


def _owner_ref(o):
    return {"apiVersion": o["apiVersion"], "kind": o["kind"],
            "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]}


def _patch_body(kind, key):
    """A patch of the given content type that adds data[key]."""
    if kind == JSONPATCH:
        return [{"op": "add", "path": f"/data/{key}", "value": key}]
    if kind == APPLY:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "hot"}, "data": {key: key}}
    return {"data": {key: key}}


def _run(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_patches_of_every_type_all_land(dpf_server):
    """8 threads, 4 patch types, 240 patches of one object, none naming a
    resourceVersion: every one answers 200, every key is there at the end,
    and generation counts each write exactly once (a lost or doubled
    write would show in both)."""
    s = dpf_server
    assert call(s, "POST", path("configmaps"), configmap("hot"))[0] == 201
    kinds = [MERGE, STRATEGIC, JSONPATCH, APPLY]
    per_thread = 30
    failures = []

    def patcher(t):
        kind = kinds[t % len(kinds)]
        for i in range(per_thread):
            key = f"t{t}-{i}"
            # each apply is its own field manager: one manager applying
            # a new key each time would drop its previous ones
            q = f"?fieldManager={key}" if kind == APPLY else ""
            st, body = call(s, "PATCH", path("configmaps", "hot") + q,
                            _patch_body(kind, key), kind)
            if st != 200:
                failures.append((kind, key, st, body))
            elif body["data"].get(key) != key:
                failures.append((kind, key, "answer lacks its own key"))
    _run([threading.Thread(target=patcher, args=(t,)) for t in range(8)])
    assert failures == []
    st, o = call(s, "GET", path("configmaps", "hot"))
    want = {f"t{t}-{i}" for t in range(8) for i in range(per_thread)}
    assert want <= set(o["data"]), sorted(want - set(o["data"]))[:10]
    assert o["metadata"]["generation"] == 1 + 8 * per_thread


def test_pinned_resource_version_is_not_retried(dpf_server):
    """A patch naming the resourceVersion it read loses a race with 409
    instead of being re-applied to the newer object."""
    s = dpf_server
    st, o = call(s, "POST", path("configmaps"), configmap("pin"))
    rv = o["metadata"]["resourceVersion"]
    assert call(s, "PATCH", path("configmaps", "pin"),
                {"data": {"a": "1"}}, MERGE)[0] == 200
    st, e = call(s, "PATCH", path("configmaps", "pin"),
                 {"metadata": {"resourceVersion": rv}, "data": {"b": "2"}},
                 MERGE)
    assert st == 409 and e["reason"] == "Conflict"
    assert e["details"] == {"name": "pin", "kind": "configmaps"}
    assert "b" not in call(s, "GET", path("configmaps", "pin"))[1]["data"]


def test_gc_edits_and_client_patches_race(dpf_server):
    """Owner A goes while clients patch its dependents, which also have a
    live owner B: the collector drops A's reference from every dependent
    and every client patch survives (the collector's edit and the
    client's patch are both read-modify-writes of the same object)."""
    s = dpf_server
    st, a = call(s, "POST", path("configmaps"), configmap("owner-a"))
    st, b = call(s, "POST", path("configmaps"), configmap("owner-b"))
    n, rounds = 20, 6
    for i in range(n):
        assert call(s, "POST", path("configmaps"), configmap(
            f"dep{i}", ownerReferences=[_owner_ref(a), _owner_ref(b)]))[0] == 201
    failures = []
    started = threading.Event()

    def patcher(t):
        for r in range(rounds):
            for i in range(t, n, 4):
                st, body = call(s, "PATCH", path("configmaps", f"dep{i}"),
                                {"metadata": {"labels": {f"r{r}": "x"}}},
                                MERGE)
                if st != 200:
                    failures.append((i, r, st, body))
            started.set()

    def deleter():
        started.wait(30)
        st, _ = call(s, "DELETE", path("configmaps", "owner-a"))
        if st != 200:
            failures.append(("delete owner-a", st))
    _run([threading.Thread(target=patcher, args=(t,)) for t in range(4)]
         + [threading.Thread(target=deleter)])
    assert failures == []

    def refs(i):
        o = call(s, "GET", path("configmaps", f"dep{i}"))[1]
        return [r["name"] for r in o["metadata"].get("ownerReferences", [])]
    wait_for(lambda: all(refs(i) == ["owner-b"] for i in range(n)),
             what="owner-a's references dropped")
    for i in range(n):
        o = call(s, "GET", path("configmaps", f"dep{i}"))[1]
        assert set(o["metadata"]["labels"]) == {f"r{r}" for r in range(rounds)}


def test_gc_sees_an_owner_added_in_the_race(dpf_server):
    """Owner A goes while clients give its dependents a second, live
    owner B. The collector decides on the object as it is when it writes:
    a dependent whose client patch answered 200 has B as its owner and is
    never deleted; one deleted first answers the patch with 404."""
    s = dpf_server
    st, a = call(s, "POST", path("configmaps"), configmap("owner-a"))
    st, b = call(s, "POST", path("configmaps"), configmap("owner-b"))
    n = 40
    for i in range(n):
        assert call(s, "POST", path("configmaps"), configmap(
            f"dep{i}", ownerReferences=[_owner_ref(a)]))[0] == 201
    both = [_owner_ref(a), _owner_ref(b)]
    answers = {}
    go = threading.Event()

    def adopter(t):
        go.wait(30)
        for i in range(t, n, 4):
            st, _ = call(s, "PATCH", path("configmaps", f"dep{i}"),
                         {"metadata": {"ownerReferences": both}}, MERGE)
            answers[i] = st

    def deleter():
        go.set()
        assert call(s, "DELETE", path("configmaps", "owner-a"))[0] == 200
    _run([threading.Thread(target=adopter, args=(t,)) for t in range(4)]
         + [threading.Thread(target=deleter)])
    assert set(answers.values()) <= {200, 404}, answers
    adopted = [i for i in range(n) if answers[i] == 200]

    def settled():
        for i in range(n):
            st, o = call(s, "GET", path("configmaps", f"dep{i}"))
            if i in adopted:
                assert st == 200, f"dep{i} was adopted by owner-b, then deleted"
                names = [r["name"] for r in o["metadata"]["ownerReferences"]]
                if names != ["owner-b"]:
                    return False
            elif st != 404:
                return False
        return True
    wait_for(settled, what="collector settled")
    # the collector had nothing more to do with the adopted ones
    for i in adopted:
        assert call(s, "GET", path("configmaps", f"dep{i}"))[0] == 200


def test_finalizer_removal_races_with_patches(dpf_server):
    """An object being deleted waits for its finalizer; clients patch it
    while one of them removes the finalizer: every patch before the
    removal answers 200, and the update that removes the last finalizer
    also removes the object (later patches answer 404)."""
    s = dpf_server
    assert call(s, "POST", path("configmaps"), configmap(
        "fin", finalizers=["example.com/hold"]))[0] == 201
    st, d = call(s, "DELETE", path("configmaps", "fin"))
    assert st == 200 and d["metadata"]["deletionTimestamp"]
    answers = []

    def patcher(t):
        for i in range(10):
            st, _ = call(s, "PATCH", path("configmaps", "fin"),
                         {"metadata": {"labels": {f"t{t}-{i}": "x"}}}, MERGE)
            answers.append(st)

    def releaser():
        st, _ = call(s, "PATCH", path("configmaps", "fin"),
                     [{"op": "remove", "path": "/metadata/finalizers"}],
                     JSONPATCH)
        answers.append(("release", st))
    _run([threading.Thread(target=patcher, args=(t,)) for t in range(3)]
         + [threading.Thread(target=releaser)])
    assert ("release", 200) in answers
    assert set(a for a in answers if not isinstance(a, tuple)) <= {200, 404}
    assert call(s, "GET", path("configmaps", "fin"))[0] == 404
