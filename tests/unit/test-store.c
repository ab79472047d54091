/* Unit tests for the store interface and its SQLite backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lib/store/store.h"
#include "lib/base/util.h"

/* Options that let a test create its store. */
static const struct store_options create_opts = {.create = true};

/* A fresh database in a temporary directory for each test. */
struct fixture {
    char dir[64];
    char *path;
    char *url;
};

static int
setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/dpf-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->path = xasprintf("%s/state.db", f->dir);
    f->url = xasprintf("sqlite:%s", f->path);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    char *cmd = xasprintf("rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f->path);
    free(f->url);
    free(f);
    return 0;
}

static struct store *
open_ok(const char *url)
{
    struct dpf_error err = {0};
    struct store *s = store_open(url, &create_opts, &err);
    if (!s) {
        fail_msg("store_open(%s): %s", url, err.message);
    }
    return s;
}

static int
create_str(struct store *s, const char *key, const char *value, int64_t *rv)
{
    return store_create(s, key, value, strlen(value), rv, NULL);
}

/* Mutation that replaces the value with arg (a string). */
static int
mutate_set(void *arg, const char *old, size_t old_len, int64_t old_rv,
           char **out, size_t *out_len)
{
    *out = xstrdup(arg);
    *out_len = strlen(arg);
    return 0;
}

/* Mutation that leaves the value unchanged. */
static int
mutate_noop(void *arg, const char *old, size_t old_len, int64_t old_rv,
            char **out, size_t *out_len)
{
    *out = NULL;
    return 0;
}

/* Mutation that refuses (like a Conflict from the API layer). */
static int
mutate_refuse(void *arg, const char *old, size_t old_len, int64_t old_rv,
              char **out, size_t *out_len)
{
    return -EPERM;
}

/* Mutation that fails with -EIO of its own (not a backend failure). */
static int
mutate_eio(void *arg, const char *old, size_t old_len, int64_t old_rv,
           char **out, size_t *out_len)
{
    return -EIO;
}

/* Mutation that appends "+" to the old value (checks old is passed). */
static int
mutate_append(void *arg, const char *old, size_t old_len, int64_t old_rv,
              char **out, size_t *out_len)
{
    *out = xasprintf("%.*s+", (int) old_len, old);
    *out_len = old_len + 1;
    return 0;
}

static void
test_open_errors(void **state)
{
    struct fixture *f = *state;
    struct dpf_error err = {0};
    assert_null(store_open("etcdx:127.0.0.1:2379", &create_opts, &err));
    assert_non_null(strstr(err.message, "unknown scheme \"etcdx\""));
    dpf_error_clear(&err);
    assert_null(store_open("/var/lib/dpf/state.db", &create_opts, &err));
    assert_non_null(strstr(err.message, "expected <scheme>:"));
    dpf_error_clear(&err);
    assert_null(store_open("sqlite:", &create_opts, &err));
    assert_non_null(strstr(err.message, "missing database path"));
    dpf_error_clear(&err);
    char *bad = xasprintf("%s?sync=sometimes", f->url);
    assert_null(store_open(bad, &create_opts, &err));
    assert_non_null(strstr(err.message, "sync=off|normal|full|extra"));
    free(bad);
    dpf_error_clear(&err);
    bad = xasprintf("%s?cache_kib=16", f->url);
    assert_null(store_open(bad, &create_opts, &err));
    assert_non_null(strstr(err.message, "cache_kib=256..1048576"));
    free(bad);
    dpf_error_clear(&err);
    assert_null(
        store_open("sqlite:/nonexistent-dir/x/state.db", &create_opts, &err));
    assert_true(dpf_error_is_set(&err));
    assert_non_null(strstr(err.message, "/nonexistent-dir/x/state.db"));

    /* A second open of the same database is refused clearly. */
    struct store *s = open_ok(f->url);
    dpf_error_clear(&err);
    assert_null(store_open(f->url, &create_opts, &err));
    assert_non_null(strstr(err.message, "in use by another process"));
    store_close(s);

    char *full = xasprintf("%s?sync=full", f->url);
    s = open_ok(full);
    assert_int_equal(create_str(s, "/k", "{}", NULL), 0);
    store_close(s);
    free(full);
}

static void
test_crud(void **state)
{
    struct fixture *f = *state;
    struct store *s = open_ok(f->url);
    assert_int_equal(store_current_rv(s), 1);

    int64_t rv1 = 0, rv2 = 0, rv3 = 0, rv4 = 0;
    assert_int_equal(create_str(s, "/core/pods/ns/a", "{\"a\":1}", &rv1), 0);
    assert_int_equal(rv1, 2);
    assert_int_equal(store_current_rv(s), 2);
    assert_int_equal(create_str(s, "/core/pods/ns/a", "{}", &rv2), -EEXIST);
    assert_int_equal(store_current_rv(s), 2);

    struct store_kv kv;
    assert_int_equal(store_get(s, "/core/pods/ns/a", &kv, NULL), 0);
    assert_string_equal(kv.key, "/core/pods/ns/a");
    assert_string_equal(kv.value, "{\"a\":1}");
    assert_int_equal(kv.len, 7);
    assert_int_equal(kv.rv, rv1);
    store_kv_free(&kv);
    assert_int_equal(store_get(s, "/core/pods/ns/b", &kv, NULL), -ENOENT);

    /* update: new value, old value visible to the mutation, new rv */
    assert_int_equal(
        store_update(s, "/core/pods/ns/a", mutate_append, NULL, &rv2, NULL), 0);
    assert_int_equal(rv2, 3);
    assert_int_equal(store_get(s, "/core/pods/ns/a", &kv, NULL), 0);
    assert_string_equal(kv.value, "{\"a\":1}+");
    assert_int_equal(kv.rv, 3);
    store_kv_free(&kv);
    /* no-op mutation: 0, old rv, no revision consumed */
    rv3 = 0;
    assert_int_equal(
        store_update(s, "/core/pods/ns/a", mutate_noop, NULL, &rv3, NULL), 0);
    assert_int_equal(rv3, 3);
    assert_int_equal(store_current_rv(s), 3);
    /* refusing mutation: its error, nothing changes */
    assert_int_equal(
        store_update(s, "/core/pods/ns/a", mutate_refuse, NULL, &rv3, NULL),
        -EPERM);
    assert_int_equal(store_current_rv(s), 3);
    /* a mutation's own -EIO is its result, not a backend failure */
    struct dpf_error err = {0};
    assert_int_equal(
        store_update(s, "/core/pods/ns/a", mutate_eio, NULL, &rv3, &err), -EIO);
    assert_false(dpf_error_is_set(&err));
    assert_int_equal(store_current_rv(s), 3);
    assert_int_equal(
        store_update(s, "/core/pods/ns/zz", mutate_set, "x", &rv3, NULL),
        -ENOENT);

    /* delete with a wrong expected rv, with the right one, then missing */
    assert_int_equal(store_delete(s, "/core/pods/ns/a", 2, &rv4, NULL),
                     -ESTALE);
    assert_int_equal(store_delete(s, "/core/pods/ns/a", 3, &rv4, NULL), 0);
    assert_int_equal(rv4, 4);
    assert_int_equal(store_delete(s, "/core/pods/ns/a", 0, &rv4, NULL),
                     -ENOENT);
    assert_int_equal(store_get(s, "/core/pods/ns/a", &kv, NULL), -ENOENT);
    /* unconditional delete */
    assert_int_equal(create_str(s, "/core/pods/ns/a", "{}", &rv1), 0);
    assert_int_equal(rv1, 5);
    assert_int_equal(store_delete(s, "/core/pods/ns/a", 0, &rv4, NULL), 0);
    assert_int_equal(rv4, 6);
    assert_int_equal(store_count(s, ""), 0);

    /* empty values are values */
    assert_int_equal(create_str(s, "/e", "", &rv1), 0);
    assert_int_equal(store_get(s, "/e", &kv, NULL), 0);
    assert_string_equal(kv.value, "");
    assert_int_equal(kv.len, 0);
    store_kv_free(&kv);
    store_close(s);
}

/* Records every hook call. */
struct hook_log {
    pthread_mutex_t lock;
    size_t n;
    int64_t last_rv;
    bool ordered;
    enum store_event_type types[16];
    char values[16][32];
    int64_t rvs[16];
};

static void
hook_record(void *arg, enum store_event_type type, const char *key,
            const char *value, size_t len, int64_t rv)
{
    struct hook_log *h = arg;
    pthread_mutex_lock(&h->lock);
    if (rv != h->last_rv + 1 && h->last_rv != 0) {
        h->ordered = false;
    }
    h->last_rv = rv;
    if (h->n < 16) {
        h->types[h->n] = type;
        h->rvs[h->n] = rv;
        snprintf(h->values[h->n], sizeof h->values[0], "%.*s", (int) len,
                 value);
    }
    h->n++;
    pthread_mutex_unlock(&h->lock);
}

static void
test_hook(void **state)
{
    struct fixture *f = *state;
    struct store *s = open_ok(f->url);
    struct hook_log h = {.lock = PTHREAD_MUTEX_INITIALIZER, .ordered = true};
    store_set_event_hook(s, hook_record, &h);
    int64_t rv;
    assert_int_equal(create_str(s, "/k", "v1", &rv), 0);
    assert_int_equal(create_str(s, "/k", "dup", &rv), -EEXIST);
    assert_int_equal(store_update(s, "/k", mutate_set, "v2", &rv, NULL), 0);
    assert_int_equal(store_update(s, "/k", mutate_noop, NULL, &rv, NULL), 0);
    assert_int_equal(store_delete(s, "/k", 99, &rv, NULL), -ESTALE);
    assert_int_equal(store_delete(s, "/k", 0, &rv, NULL), 0);
    assert_int_equal(h.n, 3);
    assert_int_equal(h.types[0], STORE_EVENT_ADDED);
    assert_string_equal(h.values[0], "v1");
    assert_int_equal(h.rvs[0], 2);
    assert_int_equal(h.types[1], STORE_EVENT_MODIFIED);
    assert_string_equal(h.values[1], "v2");
    assert_int_equal(h.rvs[1], 3);
    /* DELETED carries the last value and the deletion revision */
    assert_int_equal(h.types[2], STORE_EVENT_DELETED);
    assert_string_equal(h.values[2], "v2");
    assert_int_equal(h.rvs[2], 4);
    assert_int_equal(rv, 4);
    store_set_event_hook(s, NULL, NULL);
    assert_int_equal(create_str(s, "/k2", "v", &rv), 0);
    assert_int_equal(h.n, 3);
    store_close(s);
}

/* Collects listed keys into a buffer "k1,k2,...". */
struct collect {
    struct dbuf keys;
    size_t n;
    int64_t max_rv;
    int stop_after;
};

static int
collect_cb(void *arg, const struct store_kv *kv)
{
    struct collect *c = arg;
    dbuf_printf(&c->keys, "%s,", kv->key);
    assert_int_equal(kv->len, strlen(kv->value));
    c->max_rv = DPF_MAX(c->max_rv, kv->rv);
    c->n++;
    if (c->stop_after && (int) c->n == c->stop_after) {
        return 42;
    }
    return 0;
}

static void
test_list_paging(void **state)
{
    struct fixture *f = *state;
    struct store *s = open_ok(f->url);
    /* 25 keys under /g/r/ns/, neighbours that share a textual prefix */
    for (int i = 0; i < 25; i++) {
        char key[64];
        snprintf(key, sizeof key, "/g/r/ns/o%02d", i);
        assert_int_equal(create_str(s, key, "{}", NULL), 0);
    }
    assert_int_equal(create_str(s, "/g/r/nsx/o", "{}", NULL), 0);
    assert_int_equal(create_str(s, "/g/r/ns", "{}", NULL), 0);
    assert_int_equal(create_str(s, "/g/r/nr/o", "{}", NULL), 0);
    assert_int_equal(create_str(s, "/g/rr/ns/o", "{}", NULL), 0);
    int64_t now = store_current_rv(s);

    /* pages of 10 */
    struct collect c = {0};
    dbuf_init(&c.keys);
    bool more = false;
    int64_t lrv = 0;
    assert_int_equal(
        store_list(s, "/g/r/ns/", NULL, 10, collect_cb, &c, &lrv, &more, NULL),
        0);
    assert_int_equal(c.n, 10);
    assert_true(more);
    assert_int_equal(lrv, now);
    assert_true(str_has_suffix(c.keys.data, "/g/r/ns/o09,"));
    assert_true(str_has_prefix(c.keys.data, "/g/r/ns/o00,"));
    c.n = 0;
    assert_int_equal(store_list(s, "/g/r/ns/", "/g/r/ns/o09", 10, collect_cb,
                                &c, &lrv, &more, NULL),
                     0);
    assert_int_equal(c.n, 10);
    assert_true(more);
    c.n = 0;
    assert_int_equal(store_list(s, "/g/r/ns/", "/g/r/ns/o19", 10, collect_cb,
                                &c, &lrv, &more, NULL),
                     0);
    assert_int_equal(c.n, 5);
    assert_false(more);
    assert_true(str_has_suffix(c.keys.data, "/g/r/ns/o24,"));
    /* exactly-full last page reports no more */
    c.n = 0;
    assert_int_equal(store_list(s, "/g/r/ns/", "/g/r/ns/o14", 10, collect_cb,
                                &c, NULL, &more, NULL),
                     0);
    assert_int_equal(c.n, 10);
    assert_false(more);
    dbuf_free(&c.keys);

    /* prefix isolation: "/g/r/ns/" never matches "/g/r/nsx/..." */
    struct collect all = {0};
    dbuf_init(&all.keys);
    assert_int_equal(
        store_list(s, "/g/r/ns/", NULL, 0, collect_cb, &all, NULL, &more, NULL),
        0);
    assert_int_equal(all.n, 25);
    assert_false(more);
    assert_null(strstr(all.keys.data, "nsx"));
    assert_null(strstr(all.keys.data, "/g/rr/"));
    assert_int_equal(store_count(s, "/g/r/ns/"), 25);
    assert_int_equal(store_count(s, "/g/r/"), 28);
    assert_int_equal(store_count(s, "/g/"), 29);
    assert_int_equal(store_count(s, ""), 29);
    assert_int_equal(store_count(s, "/none/"), 0);
    dbuf_free(&all.keys);

    /* after_key before the prefix range starts at the prefix; after the
     * range gives nothing */
    struct collect c2 = {0};
    dbuf_init(&c2.keys);
    assert_int_equal(
        store_list(s, "/g/r/ns/", "/a", 3, collect_cb, &c2, NULL, &more, NULL),
        0);
    assert_string_equal(c2.keys.data, "/g/r/ns/o00,/g/r/ns/o01,/g/r/ns/o02,");
    c2.n = 0;
    assert_int_equal(
        store_list(s, "/g/r/ns/", "/z", 3, collect_cb, &c2, NULL, &more, NULL),
        0);
    assert_int_equal(c2.n, 0);
    assert_false(more);
    dbuf_free(&c2.keys);

    /* the callback can stop the listing; its value is returned */
    struct collect c3 = {.stop_after = 4};
    dbuf_init(&c3.keys);
    assert_int_equal(
        store_list(s, "", NULL, 0, collect_cb, &c3, NULL, NULL, NULL), 42);
    assert_int_equal(c3.n, 4);
    dbuf_free(&c3.keys);

    /* empty store range still reports the revision */
    lrv = 0;
    assert_int_equal(
        store_list(s, "/empty/", NULL, 5, collect_cb, &c3, &lrv, &more, NULL),
        0);
    assert_int_equal(lrv, now);
    store_close(s);
}

static void
test_reopen(void **state)
{
    struct fixture *f = *state;
    struct store *s = open_ok(f->url);
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof key, "/k/%03d", i);
        assert_int_equal(create_str(s, key, key, NULL), 0);
    }
    int64_t rv;
    assert_int_equal(store_delete(s, "/k/050", 0, &rv, NULL), 0);
    assert_int_equal(rv, 102);
    store_close(s);

    s = open_ok(f->url);
    /* the deletion's revision is not lost although no row carries it */
    assert_int_equal(store_current_rv(s), 102);
    assert_int_equal(store_count(s, "/k/"), 99);
    struct store_kv kv;
    assert_int_equal(store_get(s, "/k/007", &kv, NULL), 0);
    assert_string_equal(kv.value, "/k/007");
    assert_int_equal(kv.rv, 9);
    store_kv_free(&kv);
    assert_int_equal(create_str(s, "/k/new", "{}", &rv), 0);
    assert_int_equal(rv, 103);
    store_close(s);
}

/* ---- concurrency ---- */

struct writer_arg {
    struct store *s;
    int id;
    int n;
};

static void *
writer_main(void *p)
{
    struct writer_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        char key[64];
        snprintf(key, sizeof key, "/w/%d/%04d", a->id, i);
        int64_t rv1, rv2, rv3;
        if (create_str(a->s, key, "{\"v\":0}", &rv1) != 0) {
            return (void *) 1;
        }
        if (store_update(a->s, key, mutate_append, NULL, &rv2, NULL) != 0 ||
            rv2 <= rv1) {
            return (void *) 2;
        }
        if (i % 2 == 0) {
            if (store_delete(a->s, key, rv2, &rv3, NULL) != 0 || rv3 <= rv2) {
                return (void *) 3;
            }
        }
    }
    return NULL;
}

/* Reader thread: lists must be consistent snapshots while writers run. */
static void *
reader_main(void *p)
{
    struct writer_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        struct collect c = {0};
        dbuf_init(&c.keys);
        int64_t lrv = 0;
        if (store_list(a->s, "/w/", NULL, 0, collect_cb, &c, &lrv, NULL,
                       NULL) != 0) {
            return (void *) 1;
        }
        dbuf_free(&c.keys);
        /* no row may be newer than the revision the list reports */
        if (c.max_rv > lrv) {
            return (void *) 2;
        }
    }
    return NULL;
}

static void
run_concurrent_writers(const char *url)
{
    struct store *s = open_ok(url);
    struct hook_log h = {.lock = PTHREAD_MUTEX_INITIALIZER, .ordered = true};
    store_set_event_hook(s, hook_record, &h);
    enum { THREADS = 8, PER = 150 };
    pthread_t th[THREADS + 2];
    struct writer_arg args[THREADS + 2];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct writer_arg){.s = s, .id = i, .n = PER};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &args[i]),
                         0);
    }
    for (int i = THREADS; i < THREADS + 2; i++) {
        args[i] = (struct writer_arg){.s = s, .id = i, .n = 30};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &args[i]),
                         0);
    }
    for (int i = 0; i < THREADS + 2; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    /* 8 x 150 creates + updates + 75 deletes each, strictly in order */
    size_t writes = THREADS * (PER * 2 + PER / 2);
    assert_int_equal(h.n, writes);
    assert_true(h.ordered);
    assert_int_equal(h.last_rv, 1 + (int64_t) writes);
    assert_int_equal(store_current_rv(s), 1 + (int64_t) writes);
    assert_int_equal(store_count(s, "/w/"), THREADS * PER / 2);
    store_close(s);
}

static void
test_concurrent_writers(void **state)
{
    struct fixture *f = *state;
    run_concurrent_writers(f->url);
}

/* Same with group commit off and no fsync: the ordering must not depend on
 * batching. */
static void
test_concurrent_writers_unbatched(void **state)
{
    struct fixture *f = *state;
    char *url = xasprintf("%s?batch=1&sync=off", f->url);
    run_concurrent_writers(url);
    free(url);
}

/* Backend failure: another process holds SQLite's write lock. */
/* store_stats(): every committed write counted once; a sequence of
 * writes is a sequence of commits; concurrent writers share commits
 * (never more commits than writes). */
static void
test_commit_stats(void **state)
{
    struct fixture *f = *state;
    struct store *s = open_ok(f->url);
    struct store_stats st0, st1;
    store_stats(s, &st0);
    assert_int_equal(st0.commits, 0);
    assert_int_equal(st0.writes, 0);
    int64_t rv;
    for (int i = 0; i < 5; i++) {
        char key[64];
        snprintf(key, sizeof key, "/c/seq-%d", i);
        assert_int_equal(create_str(s, key, "{}", &rv), 0);
    }
    assert_int_equal(store_delete(s, "/c/seq-0", rv - 4, NULL, NULL), 0);
    /* a refused write commits nothing */
    assert_int_equal(create_str(s, "/c/seq-1", "{}", NULL), -EEXIST);
    store_stats(s, &st1);
    assert_int_equal(st1.writes, 6);
    assert_int_equal(st1.commits, 6);

    enum { THREADS = 8, PER = 40 };
    pthread_t th[THREADS];
    struct writer_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct writer_arg){.s = s, .id = i, .n = PER};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &args[i]),
                         0);
    }
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    store_stats(s, &st0);
    /* creates, updates and half as many deletes per thread */
    assert_int_equal(st0.writes - st1.writes, THREADS * (PER * 2 + PER / 2));
    assert_true(st0.commits - st1.commits >= 1);
    assert_true(st0.commits - st1.commits <= st0.writes - st1.writes);
    assert_int_equal(store_current_rv(s), 1 + st0.writes);
    store_close(s);
}

static void
test_backend_failure(void **state)
{
    struct fixture *f = *state;
    char *url = xasprintf("%s?busy_ms=50", f->url);
    struct store *s = open_ok(url);
    struct hook_log h = {.lock = PTHREAD_MUTEX_INITIALIZER, .ordered = true};
    store_set_event_hook(s, hook_record, &h);
    int64_t rv = 0;
    assert_int_equal(create_str(s, "/a", "{}", &rv), 0);
    assert_int_equal(rv, 2);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
    struct dpf_error err = {0};
    rv = 0;
    assert_int_equal(store_create(s, "/b", "{}", 2, &rv, &err), -EIO);
    assert_int_equal(rv, 0);
    assert_true(dpf_error_is_set(&err));
    assert_non_null(strstr(err.message, f->path));
    assert_non_null(strstr(err.message, "locked"));
    dpf_error_clear(&err);
    assert_int_equal(store_update(s, "/a", mutate_set, "x", &rv, &err), -EIO);
    assert_true(dpf_error_is_set(&err));
    assert_int_equal(store_delete(s, "/a", 0, &rv, NULL), -EIO);
    /* reads are not blocked by a writer */
    struct store_kv kv;
    assert_int_equal(store_get(s, "/a", &kv, NULL), 0);
    assert_string_equal(kv.value, "{}");
    store_kv_free(&kv);
    assert_int_equal(store_count(s, ""), 1);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    /* nothing of the failed writes happened */
    assert_int_equal(h.n, 1);
    assert_int_equal(store_current_rv(s), 2);
    assert_int_equal(create_str(s, "/b", "{}", &rv), 0);
    assert_int_equal(rv, 3);
    assert_int_equal(store_get(s, "/a", &kv, NULL), 0);
    assert_string_equal(kv.value, "{}");
    assert_int_equal(kv.rv, 2);
    store_kv_free(&kv);
    store_close(s);
    free(url);
}

/* Checkpoints run in the background: the WAL does not grow with the data
 * written, and readers see correct data throughout. */
static void
test_checkpoint(void **state)
{
    struct fixture *f = *state;
    /* checkpoint from 1 MB of WAL, force at 8 MB; a writer's cache far
     * smaller than the data */
    char *url = xasprintf("%s?wal_pages=256&cache_kib=256", f->url);
    struct store *s = open_ok(url);
    free(url);
    enum { N = 4000, SIZE = 4000 };
    char *value = xmalloc(SIZE + 1);
    memset(value, 'x', SIZE);
    value[0] = '"';
    value[SIZE - 1] = '"';
    value[SIZE] = 0;
    char *wal = xasprintf("%s-wal", f->path);
    off_t wal_max = 0;
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "/big/%05d", i);
        assert_int_equal(create_str(s, key, value, NULL), 0);
        if (i % 500 == 0) {
            struct store_kv kv;
            assert_int_equal(store_get(s, "/big/00000", &kv, NULL), 0);
            assert_int_equal(kv.len, SIZE);
            store_kv_free(&kv);
            struct stat st;
            if (stat(wal, &st) == 0) {
                wal_max = DPF_MAX(wal_max, st.st_size);
            }
        }
    }
    assert_int_equal(store_count(s, "/big/"), N);
    /* ~16 MB of objects, several times that in WAL frames; the WAL
     * restarts (and is truncated to 1 MB) once a checkpoint copied it;
     * without checkpoints it reaches ~75 MB */
    print_message("checkpoint: WAL peaked at %.1f MB for %.1f MB written\n",
                  wal_max / 1e6, (double) N * SIZE / 1e6);
    assert_true(wal_max < 40 * 1000 * 1000);
    store_close(s);
    /* a clean close checkpoints and removes the WAL */
    struct stat st;
    assert_int_equal(stat(wal, &st), -1);
    free(wal);
    free(value);
}

/* ---- crash safety ---- */

/* What the child reports for each acknowledged write. */
struct ack {
    int64_t rv;
    char key[40];
};

/* One writer thread of the crashing child. */
struct storm {
    struct store *s;
    int fd;
    int id;
};

static void *
storm_main(void *p)
{
    struct storm *st = p;
    for (int i = 0;; i++) {
        struct ack a = {0};
        snprintf(a.key, sizeof a.key, "/crash/%d/%08d", st->id, i);
        char value[96];
        snprintf(value, sizeof value, "{\"k\":\"%s\"}", a.key);
        if (store_create(st->s, a.key, value, strlen(value), &a.rv, NULL) !=
            0) {
            _exit(4);
        }
        /* one record per write(): atomic on a pipe (< PIPE_BUF) */
        if (write(st->fd, &a, sizeof a) != (ssize_t) sizeof a) {
            _exit(5);
        }
    }
    return NULL;
}

/* The child: 4 writer threads (so group commit and the checkpointer are
 * in play) until it is killed. */
static void
child_storm(const char *url, int fd)
{
    struct dpf_error err = {0};
    struct store *s = store_open(url, &create_opts, &err);
    if (!s) {
        _exit(3);
    }
    pthread_t th[4];
    struct storm st[4];
    for (int i = 0; i < 4; i++) {
        st[i] = (struct storm){.s = s, .fd = fd, .id = i};
        pthread_create(&th[i], NULL, storm_main, &st[i]);
    }
    pthread_join(th[0], NULL);
    _exit(6);
}

static void
test_crash_safety(void **state)
{
    struct fixture *f = *state;
    /* Seed some data first so the storm runs against an existing DB. */
    struct store *s = open_ok(f->url);
    assert_int_equal(create_str(s, "/seed", "{}", NULL), 0);
    store_close(s);

    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child_storm(f->url, p[1]);
    }
    close(p[1]);
    size_t cap = 1024, n = 0;
    struct ack *acks = xmalloc(cap * sizeof *acks);
    int64_t start = time_mono_ms();
    bool killed = false;
    for (;;) {
        if (!killed && time_mono_ms() - start > 700 && n > 50) {
            kill(pid, SIGKILL);
            killed = true;
        }
        if (n == cap) {
            cap *= 2;
            acks = xrealloc(acks, cap * sizeof *acks);
        }
        ssize_t r = read(p[0], &acks[n], sizeof *acks);
        if (r == 0) {
            break;
        }
        assert_int_equal(r, sizeof *acks);
        n++;
    }
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_true(n > 50);
    print_message("crash: %zu acknowledged writes before SIGKILL\n", n);

    s = open_ok(f->url);
    int64_t max_rv = 0;
    for (size_t i = 0; i < n; i++) {
        struct store_kv kv;
        assert_int_equal(store_get(s, acks[i].key, &kv, NULL), 0);
        char value[96];
        snprintf(value, sizeof value, "{\"k\":\"%s\"}", acks[i].key);
        assert_string_equal(kv.value, value);
        assert_int_equal(kv.rv, acks[i].rv);
        store_kv_free(&kv);
        max_rv = DPF_MAX(max_rv, acks[i].rv);
    }
    assert_true(store_current_rv(s) >= max_rv);
    /* writes continue from the recovered revision */
    int64_t rv;
    assert_int_equal(create_str(s, "/after", "{}", &rv), 0);
    assert_true(rv > max_rv);
    store_close(s);
    free(acks);
}

/* ---- hardening: open refusals, integrity, revisions, space, health ---- */

/* XOR 64 bytes at the start of the middle pages of a database file: page
 * headers, so a b-tree page among them is certainly damaged. */
static void
flip_middle_pages(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    off_t pages = st.st_size / 4096;
    assert_true(pages >= 8);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    for (off_t p = pages / 2 - 1; p <= pages / 2 + 1; p++) {
        unsigned char buf[64];
        assert_int_equal(fseeko(f, p * 4096, SEEK_SET), 0);
        assert_int_equal(fread(buf, 1, sizeof buf, f), sizeof buf);
        for (size_t i = 0; i < sizeof buf; i++) {
            buf[i] ^= 0xff;
        }
        assert_int_equal(fseeko(f, p * 4096, SEEK_SET), 0);
        assert_int_equal(fwrite(buf, 1, sizeof buf, f), sizeof buf);
    }
    assert_int_equal(fclose(f), 0);
}

static void
fill_keys(struct store *s, const char *prefix, int n, size_t size)
{
    char *value = xmalloc(size + 1);
    memset(value, 'v', size);
    value[size] = 0;
    for (int i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s%05d", prefix, i);
        assert_int_equal(create_str(s, key, value, NULL), 0);
    }
    free(value);
}

static void
exec_sql(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fail_msg("%s: %s", sql, msg);
    }
    sqlite3_close(db);
}

/* Without options.create a missing or empty store is refused, and the
 * refusal creates nothing. */
static void
test_open_refuses_missing_or_empty(void **state)
{
    struct fixture *f = *state;
    struct dpf_error err = {0};
    struct stat st;
    assert_null(store_open(f->url, NULL, &err));
    assert_int_equal(err.code, 404);
    assert_non_null(strstr(err.message, f->path));
    assert_non_null(strstr(err.message, "does not exist"));
    assert_int_equal(stat(f->path, &st), -1);

    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fclose(fp);
    dpf_error_clear(&err);
    struct store_options none = {0};
    assert_null(store_open(f->url, &none, &err));
    assert_int_equal(err.code, 404);
    assert_non_null(strstr(err.message, "empty (0 bytes)"));
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_size, 0);

    /* create = true makes the empty file a store */
    struct store *s = open_ok(f->url);
    assert_int_equal(store_current_rv(s), 1);
    assert_int_equal(create_str(s, "/a", "{}", NULL), 0);
    store_close(s);
    /* and from then on it opens without create */
    s = store_open(f->url, NULL, &err);
    assert_non_null(s);
    assert_int_equal(store_count(s, ""), 1);
    store_close(s);

    /* an SQLite file with no tables counts as empty */
    char *other = xasprintf("%s/blank.db", f->dir);
    exec_sql(other, "PRAGMA user_version = 7");
    char *url = xasprintf("sqlite:%s", other);
    dpf_error_clear(&err);
    assert_null(store_open(url, NULL, &err));
    assert_int_equal(err.code, 404);
    assert_non_null(strstr(err.message, "no tables"));
    free(url);
    free(other);

    /* another program's database is never taken over */
    other = xasprintf("%s/foreign.db", f->dir);
    exec_sql(other, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    url = xasprintf("sqlite:%s", other);
    dpf_error_clear(&err);
    assert_null(store_open(url, &create_opts, &err));
    assert_int_equal(err.code, 500);
    assert_non_null(strstr(err.message, "not a dpf store"));
    free(url);
    free(other);

    /* nor is a file that is not a database */
    other = xasprintf("%s/junk.db", f->dir);
    fp = fopen(other, "w");
    assert_non_null(fp);
    for (int i = 0; i < 2000; i++) {
        fputs("not a database ", fp);
    }
    fclose(fp);
    url = xasprintf("sqlite:%s", other);
    dpf_error_clear(&err);
    assert_null(store_open(url, &create_opts, &err));
    assert_int_equal(err.code, 500);
    assert_non_null(strstr(err.message, "is damaged"));
    assert_non_null(strstr(err.message, other));
    free(url);
    free(other);
}

/* A damaged database is refused at open by the integrity check, with the
 * file and what to do in the message. Damage that appears while the store
 * runs fails the first read of a damaged page, and the store stays
 * unhealthy from then on. */
static void
test_open_refuses_damaged(void **state)
{
    struct fixture *f = *state;
    struct store *s = open_ok(f->url);
    fill_keys(s, "/d/", 300, 1000);
    store_close(s);
    char *clean = xasprintf("%s/clean.db", f->dir);
    char *cmd = xasprintf("cp '%s' '%s'", f->path, clean);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    flip_middle_pages(f->path);

    struct dpf_error err = {0};
    assert_null(store_open(f->url, NULL, &err));
    assert_int_equal(err.code, 500);
    assert_non_null(strstr(err.message, f->path));
    assert_non_null(strstr(err.message, "is damaged"));
    assert_non_null(strstr(err.message, "integrity_check found"));
    assert_non_null(strstr(err.message, "backup"));
    char *url = xasprintf("%s?check=quick", f->url);
    dpf_error_clear(&err);
    assert_null(store_open(url, NULL, &err));
    assert_non_null(strstr(err.message, "quick_check found"));
    free(url);
    /* create = true never overwrites a damaged store either */
    dpf_error_clear(&err);
    assert_null(store_open(f->url, &create_opts, &err));
    assert_non_null(strstr(err.message, "is damaged"));

    /* damage while open */
    assert_int_equal(rename(clean, f->path), 0);
    free(clean);
    s = open_ok(f->url);
    char why[192] = "";
    assert_int_equal(store_health(s, why, sizeof why), 0);
    flip_middle_pages(f->path);
    /* a write makes the readers drop their caches and read the file */
    assert_int_equal(create_str(s, "/e/x", "{}", NULL), 0);
    dpf_error_clear(&err);
    assert_int_equal(
        store_list(s, "/d/", NULL, 0, NULL, NULL, NULL, NULL, &err), -EIO);
    assert_non_null(strstr(err.message, "malformed"));
    assert_int_equal(store_health(s, why, sizeof why), -EIO);
    assert_string_equal(why, "database disk image is malformed");
    store_close(s);
}

/* meta's revision rolled back while stopped, or rewritten behind an open
 * store: revisions still never go backwards. */
static void
test_revision_never_goes_backwards(void **state)
{
    struct fixture *f = *state;
    struct store *s = open_ok(f->url);
    fill_keys(s, "/r/", 20, 10);
    assert_int_equal(store_current_rv(s), 21);
    store_close(s);
    exec_sql(f->path, "UPDATE meta SET v = 2 WHERE k = 'rv'");

    s = store_open(f->url, NULL, NULL);
    assert_non_null(s);
    assert_int_equal(store_current_rv(s), 21);
    int64_t rv;
    assert_int_equal(create_str(s, "/r/new", "{}", &rv), 0);
    assert_int_equal(rv, 22);
    int64_t lrv = 0;
    assert_int_equal(
        store_list(s, "/r/", NULL, 0, NULL, NULL, &lrv, NULL, NULL), 0);
    assert_int_equal(lrv, 22);

    /* meta rewritten while the store is open */
    exec_sql(f->path, "UPDATE meta SET v = 3 WHERE k = 'rv'");
    assert_int_equal(store_update(s, "/r/00001", mutate_set, "x", &rv, NULL),
                     0);
    assert_int_equal(rv, 23);
    store_close(s);
    s = store_open(f->url, NULL, NULL);
    assert_int_equal(store_current_rv(s), 23);
    store_close(s);
}

/* What a hook saw of the store from inside the hook. */
struct committed_probe {
    struct store *s;
    const char *path;
    int calls;
    int store_rc[4];     /* store_get() of the key */
    int64_t store_rv[4]; /* its revision */
    char store_value[4][16];
    int64_t sql_rv[4]; /* a separate connection's mod_rv, -1 if none */
};

static void
hook_probe(void *arg, enum store_event_type type, const char *key,
           const char *value, size_t len, int64_t rv)
{
    struct committed_probe *p = arg;
    int i = p->calls++;
    if (i >= 4) {
        return;
    }
    struct store_kv kv;
    p->store_rc[i] = store_get(p->s, key, &kv, NULL);
    if (p->store_rc[i] == 0) {
        p->store_rv[i] = kv.rv;
        snprintf(p->store_value[i], sizeof p->store_value[i], "%s", kv.value);
        store_kv_free(&kv);
    }
    sqlite3 *db;
    sqlite3_stmt *st;
    p->sql_rv[i] = -1;
    if (sqlite3_open_v2(p->path, &db, SQLITE_OPEN_READONLY, NULL) ==
            SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT mod_rv FROM kv WHERE key = ?1", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            p->sql_rv[i] = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

/* The event hook runs after COMMIT: from inside it, a read through the
 * store's readers and through a separate connection sees the new state. */
static void
test_hook_sees_committed_state(void **state)
{
    struct fixture *f = *state;
    struct store *s = open_ok(f->url);
    struct committed_probe p = {.s = s, .path = f->path};
    store_set_event_hook(s, hook_probe, &p);
    int64_t rv1, rv2, rv3;
    assert_int_equal(create_str(s, "/h/k", "v1", &rv1), 0);
    assert_int_equal(store_update(s, "/h/k", mutate_set, "v2", &rv2, NULL), 0);
    assert_int_equal(store_delete(s, "/h/k", 0, &rv3, NULL), 0);
    assert_int_equal(p.calls, 3);
    assert_int_equal(p.store_rc[0], 0);
    assert_string_equal(p.store_value[0], "v1");
    assert_int_equal(p.store_rv[0], rv1);
    assert_int_equal(p.sql_rv[0], rv1);
    assert_int_equal(p.store_rc[1], 0);
    assert_string_equal(p.store_value[1], "v2");
    assert_int_equal(p.store_rv[1], rv2);
    assert_int_equal(p.sql_rv[1], rv2);
    assert_int_equal(p.store_rc[2], -ENOENT);
    assert_int_equal(p.sql_rv[2], -1);
    store_close(s);
}

/* A VFS over SQLite's default one whose writes to WAL files fail with
 * shim_fail (an SQLite error code) while it is non-zero: a commit that
 * cannot reach the disk. */
struct shim_file {
    sqlite3_file base;
    sqlite3_file *real; /* the default VFS's file, right after this */
    bool wal;
};
static sqlite3_vfs shim_vfs;
static sqlite3_vfs *shim_real;
static _Atomic int shim_fail;

#define SHIM_REAL(f) (((struct shim_file *) (f))->real)
static int
shim_close(sqlite3_file *f)
{
    return SHIM_REAL(f)->pMethods->xClose(SHIM_REAL(f));
}
static int
shim_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    return SHIM_REAL(f)->pMethods->xRead(SHIM_REAL(f), b, n, o);
}
static int
shim_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    int fail = shim_fail;
    if (fail && ((struct shim_file *) f)->wal) {
        return fail;
    }
    return SHIM_REAL(f)->pMethods->xWrite(SHIM_REAL(f), b, n, o);
}
static int
shim_truncate(sqlite3_file *f, sqlite3_int64 n)
{
    return SHIM_REAL(f)->pMethods->xTruncate(SHIM_REAL(f), n);
}
static int
shim_sync(sqlite3_file *f, int flags)
{
    return SHIM_REAL(f)->pMethods->xSync(SHIM_REAL(f), flags);
}
static int
shim_size(sqlite3_file *f, sqlite3_int64 *n)
{
    return SHIM_REAL(f)->pMethods->xFileSize(SHIM_REAL(f), n);
}
static int
shim_lock(sqlite3_file *f, int l)
{
    return SHIM_REAL(f)->pMethods->xLock(SHIM_REAL(f), l);
}
static int
shim_unlock(sqlite3_file *f, int l)
{
    return SHIM_REAL(f)->pMethods->xUnlock(SHIM_REAL(f), l);
}
static int
shim_reserved(sqlite3_file *f, int *r)
{
    return SHIM_REAL(f)->pMethods->xCheckReservedLock(SHIM_REAL(f), r);
}
static int
shim_fcntl(sqlite3_file *f, int op, void *a)
{
    return SHIM_REAL(f)->pMethods->xFileControl(SHIM_REAL(f), op, a);
}
static int
shim_sector(sqlite3_file *f)
{
    return SHIM_REAL(f)->pMethods->xSectorSize(SHIM_REAL(f));
}
static int
shim_devchar(sqlite3_file *f)
{
    return SHIM_REAL(f)->pMethods->xDeviceCharacteristics(SHIM_REAL(f));
}
static int
shim_shm_map(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp)
{
    return SHIM_REAL(f)->pMethods->xShmMap(SHIM_REAL(f), pg, sz, ext, pp);
}
static int
shim_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return SHIM_REAL(f)->pMethods->xShmLock(SHIM_REAL(f), off, n, flags);
}
static void
shim_shm_barrier(sqlite3_file *f)
{
    SHIM_REAL(f)->pMethods->xShmBarrier(SHIM_REAL(f));
}
static int
shim_shm_unmap(sqlite3_file *f, int del)
{
    return SHIM_REAL(f)->pMethods->xShmUnmap(SHIM_REAL(f), del);
}
static int
shim_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp)
{
    return SHIM_REAL(f)->pMethods->xFetch(SHIM_REAL(f), o, n, pp);
}
static int
shim_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
    return SHIM_REAL(f)->pMethods->xUnfetch(SHIM_REAL(f), o, p);
}

static const sqlite3_io_methods shim_io = {
    .iVersion = 3,
    .xClose = shim_close,
    .xRead = shim_read,
    .xWrite = shim_write,
    .xTruncate = shim_truncate,
    .xSync = shim_sync,
    .xFileSize = shim_size,
    .xLock = shim_lock,
    .xUnlock = shim_unlock,
    .xCheckReservedLock = shim_reserved,
    .xFileControl = shim_fcntl,
    .xSectorSize = shim_sector,
    .xDeviceCharacteristics = shim_devchar,
    .xShmMap = shim_shm_map,
    .xShmLock = shim_shm_lock,
    .xShmBarrier = shim_shm_barrier,
    .xShmUnmap = shim_shm_unmap,
    .xFetch = shim_fetch,
    .xUnfetch = shim_unfetch,
};

static int
shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
          int *out_flags)
{
    struct shim_file *p = (struct shim_file *) f;
    p->real = (sqlite3_file *) (p + 1);
    p->wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc = shim_real->xOpen(shim_real, name, p->real, flags, out_flags);
    p->base.pMethods = rc == SQLITE_OK ? &shim_io : NULL;
    return rc;
}

static void
shim_install(void)
{
    shim_real = sqlite3_vfs_find(NULL);
    assert_non_null(shim_real);
    shim_vfs = *shim_real;
    shim_vfs.zName = "dpf-test-shim";
    shim_vfs.szOsFile = (int) sizeof(struct shim_file) + shim_real->szOsFile;
    shim_vfs.xOpen = shim_open;
    shim_vfs.pNext = NULL;
    assert_int_equal(sqlite3_vfs_register(&shim_vfs, 1), SQLITE_OK);
}

static void
shim_remove(void)
{
    shim_fail = 0;
    sqlite3_vfs_unregister(&shim_vfs);
    sqlite3_vfs_register(shim_real, 1);
}

/* A commit that fails fires no event and consumes no revision; an I/O
 * error makes the store unhealthy, a full disk refuses creates with a
 * clear 507. */
static void
test_failed_commit_fires_no_event(void **state)
{
    struct fixture *f = *state;
    shim_install();
    struct store *s = open_ok(f->url);
    struct hook_log h = {.lock = PTHREAD_MUTEX_INITIALIZER, .ordered = true};
    store_set_event_hook(s, hook_record, &h);
    int64_t rv = 0;
    assert_int_equal(create_str(s, "/c/ok", "{}", &rv), 0);
    assert_int_equal(rv, 2);
    assert_int_equal(h.n, 1);
    char why[192];
    assert_int_equal(store_health(s, why, sizeof why), 0);

    shim_fail = SQLITE_IOERR_WRITE;
    struct dpf_error err = {0};
    rv = 0;
    assert_int_equal(store_create(s, "/c/lost", "{}", 2, &rv, &err), -EIO);
    assert_int_equal(rv, 0);
    assert_non_null(strstr(err.message, "commit"));
    assert_int_equal(store_update(s, "/c/ok", mutate_set, "x", &rv, NULL),
                     -EIO);
    assert_int_equal(store_delete(s, "/c/ok", 0, &rv, NULL), -EIO);
    shim_fail = 0;
    assert_int_equal(h.n, 1); /* no event for what did not commit */
    assert_int_equal(store_current_rv(s), 2);
    struct store_kv kv;
    assert_int_equal(store_get(s, "/c/lost", &kv, NULL), -ENOENT);
    assert_int_equal(store_get(s, "/c/ok", &kv, NULL), 0);
    assert_string_equal(kv.value, "{}");
    store_kv_free(&kv);
    /* the I/O error stays reported: the disk under the store is suspect */
    assert_int_equal(store_health(s, why, sizeof why), -EIO);
    assert_non_null(strstr(why, "I/O error"));
    /* writes work again when the disk does, at the next revision */
    assert_int_equal(create_str(s, "/c/later", "{}", &rv), 0);
    assert_int_equal(rv, 3);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.rvs[1], 3);
    store_close(s);

    /* a full disk: -ENOSPC with the reason, no event, still healthy */
    s = open_ok(f->url);
    store_set_event_hook(s, hook_record, &h);
    shim_fail = SQLITE_FULL;
    dpf_error_clear(&err);
    assert_int_equal(store_create(s, "/c/full", "{}", 2, &rv, &err), -ENOSPC);
    assert_int_equal(err.code, 507);
    assert_string_equal(err.reason, "InsufficientStorage");
    assert_non_null(strstr(err.message, "disk is full"));
    assert_non_null(strstr(err.message, "deletes still work"));
    assert_int_equal(h.n, 2);
    assert_int_equal(store_health(s, why, sizeof why), 0);
    shim_fail = 0;
    /* space is back (the test's disk has room): creates resume */
    assert_int_equal(create_str(s, "/c/room", "{}", &rv), 0);
    assert_int_equal(rv, 4);
    assert_int_equal(h.n, 3);
    store_close(s);
    shim_remove();
}

static int mutations_run;

static int
mutate_grow(void *arg, const char *old, size_t old_len, int64_t old_rv,
            char **out, size_t *out_len)
{
    mutations_run++;
    size_t n = (size_t) (uintptr_t) arg;
    *out = xmalloc(n + 1);
    memset(*out, 'g', n);
    (*out)[n] = 0;
    *out_len = n;
    return 0;
}

/* Past the quota creates and growing updates fail with a clear -ENOSPC
 * (507) naming the setting; deletes pass and make room again. */
static void
test_quota(void **state)
{
    struct fixture *f = *state;
    struct store_options o = {.create = true,
                              .quota_bytes = 512 * 1024,
                              .quota_setting = "--quota-test"};
    struct dpf_error err = {0};
    struct store *s = store_open(f->url, &o, &err);
    assert_non_null(s);
    char *value = xmalloc(8001);
    memset(value, 'q', 8000);
    value[8000] = 0;
    int made = 0, rc = 0;
    for (; made < 200; made++) {
        char key[32];
        snprintf(key, sizeof key, "/q/%04d", made);
        dpf_error_clear(&err);
        rc = store_create(s, key, value, 8000, NULL, &err);
        if (rc != 0) {
            break;
        }
    }
    assert_int_equal(rc, -ENOSPC);
    assert_true(made >= 30 && made < 80);
    assert_int_equal(err.code, 507);
    assert_string_equal(err.reason, "InsufficientStorage");
    assert_non_null(strstr(err.message, "database space exceeded"));
    assert_non_null(strstr(err.message, "(--quota-test)"));
    assert_non_null(strstr(err.message, "524288 bytes"));
    int64_t rv_before = store_current_rv(s);

    /* an update that grows is refused; its mutation did not run when the
     * store was already full */
    mutations_run = 0;
    int64_t rv;
    assert_int_equal(store_update(s, "/q/0000", mutate_grow,
                                  (void *) (uintptr_t) 64000, &rv, &err),
                     -ENOSPC);
    assert_true(mutations_run <= 1);
    assert_int_equal(store_current_rv(s), rv_before);

    /* deletes pass, and then there is room again */
    for (int i = 0; i < 4; i++) {
        char key[32];
        snprintf(key, sizeof key, "/q/%04d", i);
        assert_int_equal(store_delete(s, key, 0, NULL, NULL), 0);
    }
    assert_int_equal(store_create(s, "/q/again", value, 8000, NULL, NULL), 0);
    free(value);
    char why[192];
    assert_int_equal(store_health(s, why, sizeof why), 0);
    store_close(s);
}

static mode_t
file_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

/* The database and its -wal/-shm are 0600 whatever the umask, and an
 * older, looser database is tightened at open. */
static void
test_file_modes(void **state)
{
    struct fixture *f = *state;
    mode_t old = umask(022);
    struct store *s = open_ok(f->url);
    assert_int_equal(create_str(s, "/m", "{}", NULL), 0);
    char *wal = xasprintf("%s-wal", f->path);
    char *shm = xasprintf("%s-shm", f->path);
    char *reserve = xasprintf("%s-reserve", f->path);
    assert_int_equal(file_mode(f->path), 0600);
    assert_int_equal(file_mode(wal), 0600);
    assert_int_equal(file_mode(shm), 0600);
    assert_int_equal(file_mode(reserve), 0600);
    store_close(s);
    assert_int_equal(chmod(f->path, 0644), 0);
    s = open_ok(f->url);
    assert_int_equal(file_mode(f->path), 0600);
    assert_int_equal(file_mode(wal), 0600);
    store_close(s);
    umask(old);
    free(wal);
    free(shm);
    free(reserve);
}

/* Health follows the file: gone or replaced fails, back is fine. */
static void
test_health_file_identity(void **state)
{
    struct fixture *f = *state;
    struct store *s = open_ok(f->url);
    char why[192] = "";
    assert_int_equal(store_health(s, why, sizeof why), 0);
    char *moved = xasprintf("%s/moved.db", f->dir);
    assert_int_equal(rename(f->path, moved), 0);
    assert_int_equal(store_health(s, why, sizeof why), -EIO);
    assert_non_null(strstr(why, "the database file is gone"));
    FILE *fp = fopen(f->path, "w");
    fclose(fp);
    assert_int_equal(store_health(s, why, sizeof why), -EIO);
    assert_non_null(strstr(why, "replaced"));
    assert_int_equal(rename(moved, f->path), 0);
    assert_int_equal(store_health(s, why, sizeof why), 0);
    free(moved);
    store_close(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_unbatched,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_safety, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_missing_or_empty,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_damaged, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_revision_never_goes_backwards,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_hook_sees_committed_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_fires_no_event,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_file_identity, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
