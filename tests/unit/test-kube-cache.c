/* Unit tests for lib/kube/kube-cache: keys, put/replace/remove, the
 * built-in namespace, label and owner indexes following replacements and
 * removals, a custom index, readers holding objects across a
 * replacement, and noted writes (kube_cache_note_write) winning over an
 * older informer copy until the informer catches up, and let go as soon
 * as the informer delivers their revision; texts by index, whose
 * identity tells a caller which objects changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/kube/kube-cache.h"

static json_t *
obj(const char *ns, const char *name, const char *rv, const char *labels,
    const char *owner_uid)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "metadata", "name", name,
                          "resourceVersion", rv);
    json_t *md = json_object_get(o, "metadata");
    if (ns) {
        json_object_set_new(md, "namespace", json_string(ns));
    }
    if (labels) {
        json_object_set_new(md, "labels", json_loads(labels, 0, NULL));
    }
    if (owner_uid) {
        json_object_set_new(md, "ownerReferences",
                            json_pack("[{s:s,s:s,s:s}]", "kind", "X", "name",
                                      "o", "uid", owner_uid));
    }
    return o;
}

/* Names of the objects in arr, sorted, joined by ','. */
static char *
names(json_t *arr)
{
    static char buf[256];
    const char *v[16];
    size_t n = 0, i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        if (n < 16) {
            v[n++] = json_string_value(
                json_object_get(json_object_get(o, "metadata"), "name"));
        }
    }
    for (size_t a = 0; a < n; a++) {
        for (size_t b = a + 1; b < n; b++) {
            if (strcmp(v[b], v[a]) < 0) {
                const char *t = v[a];
                v[a] = v[b];
                v[b] = t;
            }
        }
    }
    buf[0] = '\0';
    for (size_t a = 0; a < n; a++) {
        strcat(buf, a ? "," : "");
        strcat(buf, v[a]);
    }
    json_decref(arr);
    return buf;
}

static void
test_keys(void **state)
{
    json_t *a = obj("ns1", "a", "1", NULL, NULL);
    json_t *c = obj(NULL, "node-1", "1", NULL, NULL);
    char *k = kube_cache_key(a);
    assert_string_equal(k, "ns1/a");
    free(k);
    k = kube_cache_key(c);
    assert_string_equal(k, "node-1");
    free(k);
    json_t *bad = json_pack("{s:{}}", "metadata");
    assert_null(kube_cache_key(bad));
    struct kube_cache *cache = kube_cache_create();
    int rc;
    assert_null(kube_cache_put(cache, bad, &rc));
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(kube_cache_len(cache), 0);
    kube_cache_destroy(cache);
    json_decref(a);
    json_decref(c);
    json_decref(bad);
}

static void
test_put_replace_remove_indexes(void **state)
{
    struct kube_cache *c = kube_cache_create();
    /* no index until one is added; built-ins by name, unknown names
     * need a function */
    assert_null(kube_cache_by_index(c, KUBE_INDEX_LABEL, "app=web"));
    assert_int_equal(kube_cache_add_index(c, "nope", NULL, NULL), -EINVAL);
    assert_int_equal(kube_cache_add_index(c, KUBE_INDEX_NAMESPACE, NULL, NULL),
                     0);
    assert_int_equal(kube_cache_add_index(c, KUBE_INDEX_LABEL, NULL, NULL), 0);
    assert_int_equal(kube_cache_add_index(c, KUBE_INDEX_OWNER, NULL, NULL), 0);
    assert_int_equal(kube_cache_add_index(c, KUBE_INDEX_OWNER, NULL, NULL),
                     -EEXIST);
    json_t *a1 =
        obj("ns1", "a", "1", "{\"app\":\"web\",\"tier\":\"fe\"}", "uid-1");
    json_t *b1 = obj("ns1", "b", "2", "{\"app\":\"web\"}", NULL);
    json_t *x1 = obj("ns2", "x", "3", "{\"app\":\"db\"}", "uid-1");
    assert_null(kube_cache_put(c, a1, NULL));
    assert_null(kube_cache_put(c, b1, NULL));
    assert_null(kube_cache_put(c, x1, NULL));
    assert_int_equal(kube_cache_len(c), 3);
    assert_string_equal(
        names(kube_cache_by_index(c, KUBE_INDEX_NAMESPACE, "ns1")), "a,b");
    assert_string_equal(
        names(kube_cache_by_index(c, KUBE_INDEX_LABEL, "app=web")), "a,b");
    assert_string_equal(
        names(kube_cache_by_index(c, KUBE_INDEX_OWNER, "uid-1")), "a,x");
    assert_null(kube_cache_by_index(c, "nope", "x"));

    /* a reader keeps its object across the replacement; reads are
     * values parsed from the cached text, equal to what was put */
    json_t *held = kube_cache_get_name(c, "ns1", "a");
    assert_true(json_equal(held, a1));
    json_t *keys_web = kube_cache_keys_by_index(c, KUBE_INDEX_LABEL, "app=web");
    assert_int_equal(json_array_size(keys_web), 2);
    json_decref(keys_web);
    assert_null(kube_cache_keys_by_index(c, "nope", "x"));

    /* replace a: labels and owner change, indexes follow */
    json_t *a2 = obj("ns1", "a", "4", "{\"app\":\"db\"}", NULL);
    json_t *old = kube_cache_put(c, a2, NULL);
    assert_true(json_equal(old, a1));
    json_decref(old);
    assert_string_equal(
        names(kube_cache_by_index(c, KUBE_INDEX_LABEL, "app=web")), "b");
    assert_string_equal(
        names(kube_cache_by_index(c, KUBE_INDEX_LABEL, "app=db")), "a,x");
    assert_string_equal(
        names(kube_cache_by_index(c, KUBE_INDEX_LABEL, "tier=fe")), "");
    assert_string_equal(
        names(kube_cache_by_index(c, KUBE_INDEX_OWNER, "uid-1")), "x");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(held, "metadata"), "name")),
                        "a");
    json_decref(held);

    /* replace a again with the same labels, namespace and (no) owner: the
     * index entries stay and lead to the new object */
    json_t *a3 = obj("ns1", "a", "5", "{\"app\":\"db\"}", NULL);
    old = kube_cache_put(c, a3, NULL);
    assert_true(json_equal(old, a2));
    json_decref(old);
    assert_string_equal(
        names(kube_cache_by_index(c, KUBE_INDEX_LABEL, "app=db")), "a,x");
    assert_string_equal(
        names(kube_cache_by_index(c, KUBE_INDEX_NAMESPACE, "ns1")), "a,b");
    json_t *in_ns = kube_cache_by_index(c, KUBE_INDEX_NAMESPACE, "ns1");
    bool found = false;
    size_t i;
    json_t *o;
    json_array_foreach(in_ns, i, o)
    {
        found = found || json_equal(o, a3);
    }
    json_decref(in_ns);
    assert_true(found);

    /* remove */
    old = kube_cache_remove(c, "ns2/x");
    assert_true(json_equal(old, x1));
    json_decref(old);
    assert_null(kube_cache_remove(c, "ns2/x"));
    assert_null(kube_cache_get(c, "ns2/x"));
    assert_string_equal(
        names(kube_cache_by_index(c, KUBE_INDEX_NAMESPACE, "ns2")), "");
    assert_string_equal(names(kube_cache_list(c)), "a,b");
    json_t *keys = kube_cache_keys(c);
    assert_int_equal(json_array_size(keys), 2);
    json_decref(keys);
    kube_cache_destroy(c);
    json_decref(a1);
    json_decref(a2);
    json_decref(a3);
    json_decref(b1);
    json_decref(x1);
}

/* The cache keeps the object's text: the caller's object stays its own,
 * and an edit of it or of a read changes nothing cached. */
static void
test_values_not_shared(void **state)
{
    (void) state;
    struct kube_cache *c = kube_cache_create();
    kube_cache_add_index(c, KUBE_INDEX_LABEL, NULL, NULL);
    json_t *o = obj("ns", "a", "1", "{\"app\":\"web\"}", NULL);
    json_decref(kube_cache_put(c, o, NULL));
    assert_int_equal(o->refcount, 1);
    json_object_set_new(json_object_get(o, "metadata"), "name",
                        json_string("changed"));
    json_t *got = kube_cache_get(c, "ns/a");
    json_object_set_new(json_object_get(got, "metadata"), "labels",
                        json_object());
    json_decref(got);
    got = kube_cache_get(c, "ns/a");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(got, "metadata"), "name")),
                        "a");
    assert_string_equal(
        names(kube_cache_by_index(c, KUBE_INDEX_LABEL, "app=web")), "a");
    json_decref(got);
    json_decref(o);
    kube_cache_destroy(c);
}

static json_t *
index_rv_parity(void *arg, const json_t *o)
{
    const char *rv = json_string_value(
        json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
    int *calls = arg;
    (*calls)++;
    return json_pack("[s]", atoi(rv) % 2 ? "odd" : "even");
}

static void
test_custom_index(void **state)
{
    struct kube_cache *c = kube_cache_create();
    int calls = 0;
    assert_int_equal(kube_cache_add_index(c, "parity", index_rv_parity, &calls),
                     0);
    assert_int_equal(kube_cache_add_index(c, "parity", index_rv_parity, &calls),
                     -EEXIST);
    json_t *a = obj("n", "a", "1", NULL, NULL);
    json_t *b = obj("n", "b", "2", NULL, NULL);
    json_t *c3 = obj("n", "c", "3", NULL, NULL);
    json_decref(kube_cache_put(c, a, NULL));
    json_decref(kube_cache_put(c, b, NULL));
    json_decref(kube_cache_put(c, c3, NULL));
    assert_true(calls >= 3);
    assert_string_equal(names(kube_cache_by_index(c, "parity", "odd")), "a,c");
    assert_string_equal(names(kube_cache_by_index(c, "parity", "even")), "b");
    /* no new index once objects are in */
    assert_int_equal(kube_cache_add_index(c, "late", index_rv_parity, &calls),
                     -EBUSY);
    kube_cache_destroy(c);
    json_decref(a);
    json_decref(b);
    json_decref(c3);
}

static const char *
rv_got(struct kube_cache *c, const char *key)
{
    static char buf[32];
    json_t *o = kube_cache_get(c, key);
    const char *rv = o ? json_string_value(json_object_get(
                             json_object_get(o, "metadata"), "resourceVersion"))
                       : NULL;
    snprintf(buf, sizeof buf, "%s", rv ? rv : "none");
    json_decref(o);
    return buf;
}

static void
test_note_write(void **state)
{
    (void) state;
    struct kube_cache *c = kube_cache_create();
    json_t *o = obj("ns", "a", "9", NULL, NULL);
    json_decref(kube_cache_put(c, o, NULL));
    json_decref(o);
    /* a write's reply newer than the informer's copy wins ("10" > "9" as
     * numbers, not as strings) */
    json_t *w = obj("ns", "a", "10", NULL, NULL);
    json_object_set_new(json_object_get(w, "metadata"), "managedFields",
                        json_array());
    kube_cache_note_write(c, w);
    json_decref(w);
    assert_int_equal(kube_cache_notes(c), 1);
    assert_string_equal(rv_got(c, "ns/a"), "10");
    /* read back without managedFields, as the informer keeps objects */
    json_t *got = kube_cache_get(c, "ns/a");
    assert_null(
        json_object_get(json_object_get(got, "metadata"), "managedFields"));
    json_decref(got);
    /* an older write changes nothing */
    w = obj("ns", "a", "8", NULL, NULL);
    kube_cache_note_write(c, w);
    json_decref(w);
    assert_string_equal(rv_got(c, "ns/a"), "10");
    /* lists show the informer's view */
    json_t *all = kube_cache_list(c);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(all, 0), "metadata"),
                            "resourceVersion")),
                        "9");
    json_decref(all);
    /* the informer catches up and goes past: its copy again */
    o = obj("ns", "a", "11", NULL, NULL);
    json_decref(kube_cache_put(c, o, NULL));
    json_decref(o);
    assert_string_equal(rv_got(c, "ns/a"), "11");
    /* a created object seen before its ADDED event; then deleted */
    w = obj("ns", "b", "12", NULL, NULL);
    kube_cache_note_write(c, w);
    json_decref(w);
    assert_string_equal(rv_got(c, "ns/b"), "12");
    json_decref(kube_cache_remove(c, "ns/b"));
    assert_string_equal(rv_got(c, "ns/b"), "none");
    /* a resourceVersion that is not a number is never noted */
    w = obj("ns", "a", "abc", NULL, NULL);
    kube_cache_note_write(c, w);
    json_decref(w);
    assert_string_equal(rv_got(c, "ns/a"), "11");
    kube_cache_note_write(c, NULL);
    /* the informer delivering the noted revision lets the note go at
     * once, not at the next read (nobody may read the object again) */
    assert_int_equal(kube_cache_notes(c), 0);
    w = obj("ns", "c", "20", NULL, NULL);
    kube_cache_note_write(c, w);
    assert_int_equal(kube_cache_notes(c), 1);
    json_decref(kube_cache_put(c, w, NULL));
    assert_int_equal(kube_cache_notes(c), 0);
    /* an older delivery keeps it */
    json_t *w2 = obj("ns", "c", "22", NULL, NULL);
    kube_cache_note_write(c, w2);
    o = obj("ns", "c", "21", NULL, NULL);
    json_decref(kube_cache_put(c, o, NULL));
    json_decref(o);
    assert_int_equal(kube_cache_notes(c), 1);
    assert_string_equal(rv_got(c, "ns/c"), "22");
    json_decref(w);
    json_decref(w2);
    kube_cache_destroy(c);
}

/* A write's reply noted as the server sent it (kube_cache_note_text):
 * namespaced and cluster-scoped keys, managedFields dropped when read,
 * and texts that name no object or no numeric revision ignored. */
static void
test_note_text(void **state)
{
    (void) state;
    struct kube_cache *c = kube_cache_create();
    static const char pod[] =
        "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"namespace\":"
        "\"ns\",\"resourceVersion\":\"41\",\"managedFields\":[{\"manager\":"
        "\"x\"}]},\"spec\":{\"nodeName\":\"n1\"}}";
    kube_cache_note_text(c, pod, strlen(pod));
    json_t *got = kube_cache_get(c, "ns/p");
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(got, "spec"), "nodeName")),
                        "n1");
    assert_null(
        json_object_get(json_object_get(got, "metadata"), "managedFields"));
    json_decref(got);
    static const char node[] =
        "{\"metadata\":{\"name\":\"n1\",\"resourceVersion\":\"7\"}}";
    kube_cache_note_text(c, node, strlen(node));
    assert_string_equal(rv_got(c, "n1"), "7");
    static const char bad[][64] = {
        "{\"metadata\":{\"resourceVersion\":\"8\"}}",
        "{\"metadata\":{\"name\":\"q\",\"resourceVersion\":\"x\"}}", "not json",
        ""};
    for (size_t i = 0; i < 4; i++) {
        kube_cache_note_text(c, bad[i], strlen(bad[i]));
    }
    kube_cache_note_text(c, NULL, 0);
    assert_int_equal(kube_cache_notes(c), 2);
    assert_string_equal(rv_got(c, "q"), "none");
    kube_cache_destroy(c);
}

static void
test_texts_by_index(void **state)
{
    struct kube_cache *c = kube_cache_create();
    assert_null(kube_cache_texts_by_index(c, KUBE_INDEX_OWNER, "u"));
    assert_int_equal(kube_cache_add_index(c, KUBE_INDEX_OWNER, NULL, NULL), 0);
    json_t *a = obj("ns", "a", "1", NULL, "u");
    json_t *b = obj("ns", "b", "2", NULL, "u");
    json_t *x = obj("ns", "x", "3", NULL, "v");
    kube_cache_put(c, a, NULL);
    kube_cache_put(c, b, NULL);
    kube_cache_put(c, x, NULL);
    json_t *t1 = kube_cache_texts_by_index(c, KUBE_INDEX_OWNER, "u");
    assert_int_equal(json_object_size(t1), 2);
    json_t *ta = json_object_get(t1, "ns/a");
    json_t *tb = json_object_get(t1, "ns/b");
    assert_true(json_is_string(ta) && json_is_string(tb));
    json_t *pa = kube_cache_text_load(ta);
    assert_true(json_equal(pa, a));
    json_decref(pa);
    assert_null(kube_cache_text_load(NULL));
    /* a replaced object has another text; an untouched one the same */
    json_t *a2 = obj("ns", "a", "4", NULL, "u");
    json_decref(kube_cache_put(c, a2, NULL));
    json_t *t2 = kube_cache_texts_by_index(c, KUBE_INDEX_OWNER, "u");
    assert_ptr_not_equal(json_object_get(t2, "ns/a"), ta);
    assert_ptr_equal(json_object_get(t2, "ns/b"), tb);
    /* the old text stays valid while held */
    pa = kube_cache_text_load(ta);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(pa, "metadata"),
                                          "resourceVersion")),
        "1");
    json_decref(pa);
    json_decref(t1);
    json_decref(t2);
    json_decref(a);
    json_decref(a2);
    json_decref(b);
    json_decref(x);
    kube_cache_destroy(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_put_replace_remove_indexes),
        cmocka_unit_test(test_custom_index),
        cmocka_unit_test(test_note_write),
        cmocka_unit_test(test_note_text),
        cmocka_unit_test(test_values_not_shared),
        cmocka_unit_test(test_texts_by_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
