/* store-sqlite: see store-sqlite.h and docs/dev/store.md.
 *
 * Schema: kv(key TEXT PRIMARY KEY, value TEXT, mod_rv INTEGER) and
 * meta(k TEXT PRIMARY KEY, v INTEGER) with the rows 'rv' (the global
 * revision, 1 in an empty store) and 'schema' (layout version).
 *
 * Writes use group commit. A caller queues its request; whoever finds no
 * leader running becomes the leader: it takes the queued requests (oldest
 * first), applies them in one transaction on the single writer connection
 * (each successful request gets the next revision), commits, calls the
 * event hook for each in revision order, wakes their callers, and wakes the
 * oldest request still queued. Being the leader is the store's write lock;
 * with one caller the leader simply runs its own request.
 *
 * Reads take a connection from a pool (one per concurrent reader) and see
 * a consistent WAL snapshot, so they never wait for the writer. The writer
 * does not checkpoint (wal_autocheckpoint=0): a background thread with its
 * own connection runs passive checkpoints when the WAL grows, and under a
 * write storm finishes with a short exclusive turn in the write queue so
 * the WAL can restart (docs/dev/store.md, "Durability"). */
#include "lib/store/store-sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <unistd.h>

#include "lib/base/util.h"

/* Requests applied in one transaction at most (URL option batch=N). */
#define SQ_BATCH_MAX 256
#define SQ_BATCH_LIMIT 4096
/* WAL size (pages) that wakes the checkpoint thread (URL option
 * wal_pages=N); the WAL file is truncated back to this size when it
 * restarts. */
#define SQ_CKPT_PAGES 2000
#define SQ_CKPT_PAGES_MIN 64
#define SQ_CKPT_PAGES_MAX 1000000
/* How long a connection waits for a lock held by another process (URL
 * option busy_ms=N): a backup tool, or the sqlite3 shell. */
#define SQ_BUSY_MS 10000
#define SQ_BUSY_LIMIT 600000
/* The WAL restarts only when a checkpoint has copied every frame before a
 * write begins, which a checkpoint racing a steady stream of writes never
 * achieves. Past this multiple of wal_pages the checkpointer therefore
 * finishes its work as a turn in the write queue, with writers held off
 * for the copy of the last frames. */
#define SQ_CKPT_FORCE_FACTOR 8
/* Passive passes before the checkpointer takes its turn anyway. */
#define SQ_CKPT_PASSES 4
/* Longest wait of the checkpointer for a reader or another process. */
#define SQ_CKPT_WAIT_MS 100

enum sq_wstmt {
    W_BEGIN,
    W_COMMIT,
    W_ROLLBACK,
    W_GET,
    W_INSERT,
    W_UPDATE,
    W_DELETE,
    W_GET_RV,
    W_SET_RV,
    W_N,
};

static const char *const sq_wsql[W_N] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_GET] = "SELECT value, mod_rv FROM kv WHERE key = ?1",
    [W_INSERT] = "INSERT INTO kv(key, value, mod_rv) VALUES (?1, ?2, ?3) "
                 "ON CONFLICT(key) DO NOTHING",
    [W_UPDATE] = "UPDATE kv SET value = ?2, mod_rv = ?3 WHERE key = ?1",
    [W_DELETE] = "DELETE FROM kv WHERE key = ?1",
    [W_GET_RV] = "SELECT v FROM meta WHERE k = 'rv'",
    [W_SET_RV] = "UPDATE meta SET v = ?1 WHERE k = 'rv'",
};

enum sq_rstmt {
    R_BEGIN,
    R_COMMIT,
    R_GET,
    R_GET_RV,
    R_LIST_GE_LT,
    R_LIST_GT_LT,
    R_LIST_GE,
    R_LIST_GT,
    R_COUNT_LT,
    R_COUNT,
    R_N,
};

#define SQ_LIST_COLS "SELECT key, value, mod_rv FROM kv WHERE "
static const char *const sq_rsql[R_N] = {
    [R_BEGIN] = "BEGIN",
    [R_COMMIT] = "COMMIT",
    [R_GET] = "SELECT value, mod_rv FROM kv WHERE key = ?1",
    [R_GET_RV] = "SELECT v FROM meta WHERE k = 'rv'",
    [R_LIST_GE_LT] = SQ_LIST_COLS "key >= ?1 AND key < ?2 "
                                  "ORDER BY key LIMIT ?3",
    [R_LIST_GT_LT] = SQ_LIST_COLS "key > ?1 AND key < ?2 "
                                  "ORDER BY key LIMIT ?3",
    [R_LIST_GE] = SQ_LIST_COLS "key >= ?1 ORDER BY key LIMIT ?3",
    [R_LIST_GT] = SQ_LIST_COLS "key > ?1 ORDER BY key LIMIT ?3",
    [R_COUNT_LT] = "SELECT count(*) FROM kv WHERE key >= ?1 AND key < ?2",
    [R_COUNT] = "SELECT count(*) FROM kv WHERE key >= ?1",
};

/* Statement slots per connection (max of W_N and R_N). */
#define SQ_MAX_STMTS ((int) W_N > (int) R_N ? (int) W_N : (int) R_N)

/* One SQLite connection with its lazily prepared statements. */
struct sq_conn {
    sqlite3 *db;            /* owned */
    const char *const *sql; /* statement texts (sq_wsql or sq_rsql) */
    sqlite3_stmt *stmts[SQ_MAX_STMTS]; /* prepared on first use */
    struct sq_conn *next;              /* free list link in the reader pool */
};

enum sq_op {
    SQ_CREATE,
    SQ_UPDATE,
    SQ_DELETE,
    SQ_CHECKPOINT, /* the checkpointer's exclusive turn */
};

/* One queued write; lives on the caller's stack until it is done. */
struct sq_req {
    enum sq_op op;            /* what to do */
    const char *key;          /* caller's key */
    const char *value;        /* SQ_CREATE: caller's value */
    size_t len;               /* SQ_CREATE: strlen(value) */
    store_mutate_fn fn;       /* SQ_UPDATE: mutation */
    void *fn_arg;             /* SQ_UPDATE: its argument */
    int64_t expected_rv;      /* SQ_DELETE: required mod revision or 0 */
    int rc;                   /* result: 0 or negative errno */
    int64_t rv;               /* result revision */
    bool wrote;               /* a revision was consumed */
    enum store_event_type ev; /* event type for the hook */
    const char *ev_value;     /* value passed to the hook */
    size_t ev_len;            /* its length */
    char *ev_owned;           /* ev_value when the store owns it */
    char errmsg[256];         /* backend failure text for -EIO */
    bool backend_failed;      /* errmsg is SQLite's */
    bool done;                /* set by the leader when finished */
    pthread_cond_t cond;      /* signalled on done or leader handover */
    struct sq_req *next;      /* queue link */
};

/* The backend's state. */
struct store_sqlite {
    struct store up;       /* must be first */
    char *path;            /* database file */
    const char *sync;      /* synchronous pragma value */
    int batch_max;         /* requests per group commit (1 = no grouping) */
    int busy_ms;           /* SQLite busy timeout */
    int wal_pages;         /* WAL size that triggers a checkpoint */
    atomic_int wal_frames; /* WAL frames after the latest commit */
    int lock_fd;           /* flock()ed database file: one process only */
    struct sq_conn writer; /* used only by the current leader */

    pthread_mutex_t qlock; /* protects the queue, leader flag and hook */
    struct sq_req *qhead;  /* queued requests, oldest first */
    struct sq_req **qtail; /* where to link the next request */
    bool leader_busy;      /* a leader is running a batch */
    store_event_fn hook;   /* event hook or NULL */
    void *hook_arg;        /* its argument */
    _Atomic int64_t rv;    /* latest committed revision */

    pthread_mutex_t pool_lock; /* protects readers */
    struct sq_conn *readers;   /* idle read connections */

    pthread_t ckpt_thread;     /* background checkpointer */
    bool ckpt_started;         /* ckpt_thread is running */
    sqlite3 *ckpt_db;          /* its connection */
    pthread_mutex_t ckpt_lock; /* protects ckpt_wanted, ckpt_stop */
    pthread_cond_t ckpt_cond;  /* wakes the checkpointer */
    bool ckpt_wanted;          /* the WAL passed SQ_CKPT_PAGES */
    bool ckpt_stop;            /* close() asks the thread to exit */
};

static struct store_sqlite *
sq_from(struct store *s)
{
    return (struct store_sqlite *) s;
}

static void
sq_set_eio(struct store_sqlite *s, struct dpf_error *err, const char *what,
           const char *detail)
{
    dpf_error_set(err, 500, "InternalError", "store %s: %s: %s", s->path, what,
                  detail);
}

static sqlite3 *
sq_open_db(const char *path, bool create, int busy_ms, const char *pragmas,
           struct dpf_error *err)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        dpf_error_set(err, 500, "InternalError", "store %s: open: %s", path,
                      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, busy_ms);
    char *msg = NULL;
    if (pragmas && sqlite3_exec(db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
        dpf_error_set(err, 500, "InternalError", "store %s: setup: %s", path,
                      msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static sqlite3_stmt *
sq_stmt(struct sq_conn *c, int i)
{
    if (!c->stmts[i]) {
        if (sqlite3_prepare_v3(c->db, c->sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &c->stmts[i], NULL) != SQLITE_OK) {
            c->stmts[i] = NULL;
        }
    }
    return c->stmts[i];
}

static void
sq_conn_close(struct sq_conn *c)
{
    for (size_t i = 0; i < ARRAY_SIZE(c->stmts); i++) {
        sqlite3_finalize(c->stmts[i]);
        c->stmts[i] = NULL;
    }
    sqlite3_close(c->db);
    c->db = NULL;
}

/* Run a statement without parameters or result rows (BEGIN, COMMIT). */
static int
sq_exec_simple(struct sq_conn *c, int i)
{
    sqlite3_stmt *st = sq_stmt(c, i);
    if (!st) {
        return -EIO;
    }
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Read meta.rv through connection c with statement i. */
static int
sq_read_rv(struct sq_conn *c, int i, int64_t *rv)
{
    sqlite3_stmt *st = sq_stmt(c, i);
    if (!st) {
        return -EIO;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *rv = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : -EIO;
}

static void
sq_bind_text(sqlite3_stmt *st, int i, const char *s, size_t n)
{
    sqlite3_bind_text64(st, i, s, n, SQLITE_STATIC, SQLITE_UTF8);
}

/* ---- write path ---- */

static int
sq_req_fail(struct store_sqlite *s, struct sq_req *r, const char *what)
{
    snprintf(r->errmsg, sizeof r->errmsg, "%s: %s", what,
             sqlite3_errmsg(s->writer.db));
    r->backend_failed = true;
    return -EIO;
}

static int
sq_apply_create(struct store_sqlite *s, struct sq_req *r, int64_t rv)
{
    sqlite3_stmt *st = sq_stmt(&s->writer, W_INSERT);
    if (!st) {
        return sq_req_fail(s, r, "prepare insert");
    }
    sq_bind_text(st, 1, r->key, strlen(r->key));
    sq_bind_text(st, 2, r->value, r->len);
    sqlite3_bind_int64(st, 3, rv);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return sq_req_fail(s, r, "insert");
    }
    if (sqlite3_changes(s->writer.db) == 0) {
        return -EEXIST;
    }
    r->ev = STORE_EVENT_ADDED;
    r->ev_value = r->value;
    r->ev_len = r->len;
    return 0;
}

/* Look up key on the writer; 0 with the row current in *stp (the caller
 * resets it), -ENOENT, or -EIO. */
static int
sq_writer_get(struct store_sqlite *s, struct sq_req *r, sqlite3_stmt **stp)
{
    sqlite3_stmt *st = sq_stmt(&s->writer, W_GET);
    if (!st) {
        return sq_req_fail(s, r, "prepare select");
    }
    sq_bind_text(st, 1, r->key, strlen(r->key));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *stp = st;
        return 0;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? -ENOENT : sq_req_fail(s, r, "select");
}

/* 0 when written, 1 when the mutation left the key unchanged, or < 0. */
static int
sq_apply_update(struct store_sqlite *s, struct sq_req *r, int64_t rv)
{
    sqlite3_stmt *st;
    int rc = sq_writer_get(s, r, &st);
    if (rc < 0) {
        return rc;
    }
    const char *old = (const char *) sqlite3_column_text(st, 0);
    size_t old_len = (size_t) sqlite3_column_bytes(st, 0);
    int64_t old_rv = sqlite3_column_int64(st, 1);
    char *out = NULL;
    size_t out_len = 0;
    rc = r->fn(r->fn_arg, old ? old : "", old_len, old_rv, &out, &out_len);
    sqlite3_reset(st);
    if (rc < 0) {
        free(out);
        return rc;
    }
    if (!out) {
        r->rv = old_rv;
        return 1;
    }
    st = sq_stmt(&s->writer, W_UPDATE);
    if (!st) {
        free(out);
        return sq_req_fail(s, r, "prepare update");
    }
    sq_bind_text(st, 1, r->key, strlen(r->key));
    sq_bind_text(st, 2, out, out_len);
    sqlite3_bind_int64(st, 3, rv);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        free(out);
        return sq_req_fail(s, r, "update");
    }
    r->ev = STORE_EVENT_MODIFIED;
    r->ev_owned = out;
    r->ev_value = out;
    r->ev_len = out_len;
    return 0;
}

static int
sq_apply_delete(struct store_sqlite *s, struct sq_req *r)
{
    sqlite3_stmt *st;
    int rc = sq_writer_get(s, r, &st);
    if (rc < 0) {
        return rc;
    }
    int64_t old_rv = sqlite3_column_int64(st, 1);
    if (r->expected_rv > 0 && old_rv != r->expected_rv) {
        sqlite3_reset(st);
        return -ESTALE;
    }
    const char *old = (const char *) sqlite3_column_text(st, 0);
    size_t old_len = (size_t) sqlite3_column_bytes(st, 0);
    char *copy = xstrndup(old ? old : "", old_len);
    sqlite3_reset(st);
    st = sq_stmt(&s->writer, W_DELETE);
    if (!st) {
        free(copy);
        return sq_req_fail(s, r, "prepare delete");
    }
    sq_bind_text(st, 1, r->key, strlen(r->key));
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        free(copy);
        return sq_req_fail(s, r, "delete");
    }
    r->ev = STORE_EVENT_DELETED;
    r->ev_owned = copy;
    r->ev_value = copy;
    r->ev_len = old_len;
    return 0;
}

static int
sq_apply(struct store_sqlite *s, struct sq_req *r, int64_t rv)
{
    switch (r->op) {
    case SQ_CREATE:
        return sq_apply_create(s, r, rv);
    case SQ_UPDATE:
        return sq_apply_update(s, r, rv);
    case SQ_DELETE:
        return sq_apply_delete(s, r);
    case SQ_CHECKPOINT:
        break;
    }
    return -EINVAL;
}

/* Fail every request of the batch after a backend error: the transaction
 * is rolled back, so nothing of it happened. */
static void
sq_batch_fail(struct store_sqlite *s, struct sq_req *batch, const char *what)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s", what, sqlite3_errmsg(s->writer.db));
    if (!sqlite3_get_autocommit(s->writer.db)) {
        sq_exec_simple(&s->writer, W_ROLLBACK);
    }
    for (struct sq_req *r = batch; r; r = r->next) {
        if (r->rc != -EIO) {
            snprintf(r->errmsg, sizeof r->errmsg, "%s", msg);
        }
        r->rc = -EIO;
        r->wrote = false;
        free(r->ev_owned);
        r->ev_owned = NULL;
    }
}

/* Apply a batch in one transaction; called by the leader only. */
static void
sq_run_batch(struct store_sqlite *s, struct sq_req *batch, store_event_fn hook,
             void *hook_arg)
{
    int64_t base;
    if (sq_exec_simple(&s->writer, W_BEGIN) < 0) {
        sq_batch_fail(s, batch, "begin");
        return;
    }
    /* Read the revision inside the transaction rather than trusting the
     * cached one: it costs one cached page and keeps the counter right. */
    if (sq_read_rv(&s->writer, W_GET_RV, &base) < 0) {
        sq_batch_fail(s, batch, "read revision");
        return;
    }
    int64_t rv = base;
    for (struct sq_req *r = batch; r; r = r->next) {
        int rc = sq_apply(s, r, rv + 1);
        if (rc == 0) {
            r->rv = ++rv;
            r->wrote = true;
        } else if (r->backend_failed) {
            /* (a mutation's own -EIO is just that request's result) */
            r->rc = -EIO;
            sq_batch_fail(s, batch, "write");
            return;
        }
        r->rc = rc < 0 ? rc : 0;
    }
    if (rv == base) {
        sq_exec_simple(&s->writer, W_ROLLBACK);
        return;
    }
    sqlite3_stmt *st = sq_stmt(&s->writer, W_SET_RV);
    if (!st) {
        sq_batch_fail(s, batch, "prepare revision update");
        return;
    }
    sqlite3_bind_int64(st, 1, rv);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        sq_batch_fail(s, batch, "revision update");
        return;
    }
    if (sq_exec_simple(&s->writer, W_COMMIT) < 0) {
        sq_batch_fail(s, batch, "commit");
        return;
    }
    atomic_store(&s->rv, rv);
    for (struct sq_req *r = batch; r; r = r->next) {
        if (r->wrote && hook) {
            hook(hook_arg, r->ev, r->key, r->ev_value, r->ev_len, r->rv);
        }
        free(r->ev_owned);
        r->ev_owned = NULL;
    }
}

/* The checkpointer's turn: no write runs meanwhile, so a passive
 * checkpoint copies every frame and the next write restarts the WAL. Runs
 * on the leader's thread with the checkpointer's connection (leadership
 * makes that exclusive). */
static void
sq_run_checkpoint(struct store_sqlite *s, struct sq_req *r)
{
    if (atomic_load(&s->wal_frames) < s->wal_pages) {
        r->rc = 0; /* writes paused meanwhile and the WAL restarted */
        return;
    }
    int rc = sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL,
                                       SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    r->rc = rc == SQLITE_OK ? 0 : -EIO;
}

/* Queue r, run or wait for its batch; returns r->rc.
 *
 * Whoever finds no leader running becomes the leader, whether it just
 * arrived or was woken: a thread already on a CPU does not wait for a
 * sleeping one to be scheduled. When a leader finishes, it wakes the oldest
 * waiter so the queue never stalls when nobody new arrives. */
static int
sq_submit(struct store_sqlite *s, struct sq_req *r, int64_t *rv_out,
          struct dpf_error *err)
{
    pthread_cond_init(&r->cond, NULL);
    pthread_mutex_lock(&s->qlock);
    r->next = NULL;
    *s->qtail = r;
    s->qtail = &r->next;
    while (!r->done) {
        if (s->leader_busy) {
            pthread_cond_wait(&r->cond, &s->qlock);
            continue;
        }
        /* Lead: take up to batch_max requests, oldest first. */
        s->leader_busy = true;
        struct sq_req *batch = s->qhead, *last = batch;
        for (int n = 1; n < s->batch_max && batch->op != SQ_CHECKPOINT &&
                        last->next && last->next->op != SQ_CHECKPOINT;
             n++) {
            last = last->next;
        }
        s->qhead = last->next;
        if (!s->qhead) {
            s->qtail = &s->qhead;
        }
        last->next = NULL;
        store_event_fn hook = s->hook;
        void *hook_arg = s->hook_arg;
        pthread_mutex_unlock(&s->qlock);

        if (batch->op == SQ_CHECKPOINT) {
            sq_run_checkpoint(s, batch);
        } else {
            sq_run_batch(s, batch, hook, hook_arg);
        }

        pthread_mutex_lock(&s->qlock);
        for (struct sq_req *q = batch; q; q = q->next) {
            q->done = true;
            if (q != r) {
                pthread_cond_signal(&q->cond);
            }
        }
        s->leader_busy = false;
        /* If r is still queued (more than batch_max ahead of it), the loop
         * leads again; otherwise hand over to the oldest waiter. */
        if (r->done && s->qhead) {
            pthread_cond_signal(&s->qhead->cond);
        }
    }
    pthread_mutex_unlock(&s->qlock);
    pthread_cond_destroy(&r->cond);
    if (r->rc == 0 && rv_out) {
        *rv_out = r->rv;
    }
    if (r->rc == -EIO && r->errmsg[0]) {
        sq_set_eio(s, err, "write", r->errmsg);
    }
    return r->rc;
}

static int
sq_create(struct store *st, const char *key, const char *value, size_t len,
          int64_t *rv_out, struct dpf_error *err)
{
    struct sq_req r = {.op = SQ_CREATE, .key = key, .value = value, .len = len};
    return sq_submit(sq_from(st), &r, rv_out, err);
}

static int
sq_update(struct store *st, const char *key, store_mutate_fn fn, void *arg,
          int64_t *rv_out, struct dpf_error *err)
{
    struct sq_req r = {.op = SQ_UPDATE, .key = key, .fn = fn, .fn_arg = arg};
    return sq_submit(sq_from(st), &r, rv_out, err);
}

static int
sq_delete(struct store *st, const char *key, int64_t expected_rv,
          int64_t *rv_out, struct dpf_error *err)
{
    struct sq_req r = {.op = SQ_DELETE, .key = key, .expected_rv = expected_rv};
    return sq_submit(sq_from(st), &r, rv_out, err);
}

static void
sq_set_event_hook(struct store *st, store_event_fn fn, void *arg)
{
    struct store_sqlite *s = sq_from(st);
    pthread_mutex_lock(&s->qlock);
    s->hook = fn;
    s->hook_arg = arg;
    pthread_mutex_unlock(&s->qlock);
}

/* ---- read path ---- */

/* No mmap and a small cache: a reader whose next transaction sees a
 * changed WAL clears its page cache and unmaps the whole mapping (SQLite's
 * pagerBeginReadTransaction), so under writes a big cache only cost the
 * time to clear it, and mmap a munmap of the database size plus TLB
 * shootdowns per read (16% of the server's CPU at 100k objects). */
#define SQ_READER_PRAGMAS                            \
    "PRAGMA query_only=1; PRAGMA cache_size=-2048; " \
    "PRAGMA mmap_size=0; PRAGMA temp_store=MEMORY;"

static struct sq_conn *
sq_reader_get(struct store_sqlite *s, struct dpf_error *err)
{
    pthread_mutex_lock(&s->pool_lock);
    struct sq_conn *c = s->readers;
    if (c) {
        s->readers = c->next;
    }
    pthread_mutex_unlock(&s->pool_lock);
    if (c) {
        return c;
    }
    sqlite3 *db =
        sq_open_db(s->path, false, s->busy_ms, SQ_READER_PRAGMAS, err);
    if (!db) {
        return NULL;
    }
    c = xcalloc(1, sizeof *c);
    c->db = db;
    c->sql = sq_rsql;
    return c;
}

static void
sq_reader_put(struct store_sqlite *s, struct sq_conn *c)
{
    pthread_mutex_lock(&s->pool_lock);
    c->next = s->readers;
    s->readers = c;
    pthread_mutex_unlock(&s->pool_lock);
}

static int
sq_reader_fail(struct store_sqlite *s, struct sq_conn *c, const char *what,
               struct dpf_error *err)
{
    sq_set_eio(s, err, what, sqlite3_errmsg(c->db));
    return -EIO;
}

static int
sq_get(struct store *st, const char *key, struct store_kv *out,
       struct dpf_error *err)
{
    struct store_sqlite *s = sq_from(st);
    memset(out, 0, sizeof *out);
    struct sq_conn *c = sq_reader_get(s, err);
    if (!c) {
        return -EIO;
    }
    sqlite3_stmt *q = sq_stmt(c, R_GET);
    int ret;
    if (!q) {
        ret = sq_reader_fail(s, c, "prepare get", err);
    } else {
        sq_bind_text(q, 1, key, strlen(key));
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            const char *v = (const char *) sqlite3_column_text(q, 0);
            out->len = (size_t) sqlite3_column_bytes(q, 0);
            out->value = xstrndup(v ? v : "", out->len);
            out->key = xstrdup(key);
            out->rv = sqlite3_column_int64(q, 1);
            ret = 0;
        } else if (rc == SQLITE_DONE) {
            ret = -ENOENT;
        } else {
            ret = sq_reader_fail(s, c, "get", err);
        }
        sqlite3_reset(q);
    }
    sq_reader_put(s, c);
    return ret;
}

/* The smallest string greater than every string starting with prefix, in
 * *upper (malloc'd); false when there is none (empty or all 0xff). */
static bool
sq_prefix_upper(const char *prefix, char **upper)
{
    size_t n = strlen(prefix);
    while (n > 0 && (unsigned char) prefix[n - 1] == 0xff) {
        n--;
    }
    if (n == 0) {
        *upper = NULL;
        return false;
    }
    char *u = xstrndup(prefix, n);
    u[n - 1] = (char) ((unsigned char) u[n - 1] + 1);
    *upper = u;
    return true;
}

static int
sq_list(struct store *st, const char *prefix, const char *after_key,
        size_t limit, store_list_fn cb, void *arg, int64_t *list_rv, bool *more,
        struct dpf_error *err)
{
    struct store_sqlite *s = sq_from(st);
    if (more) {
        *more = false;
    }
    if (!prefix) {
        prefix = "";
    }
    struct sq_conn *c = sq_reader_get(s, err);
    if (!c) {
        return -EIO;
    }
    char *upper = NULL;
    bool has_upper = sq_prefix_upper(prefix, &upper);
    bool after = after_key && strcmp(after_key, prefix) >= 0;
    int which = has_upper ? (after ? R_LIST_GT_LT : R_LIST_GE_LT)
                          : (after ? R_LIST_GT : R_LIST_GE);
    int ret = 0;
    int64_t rv = 0;
    sqlite3_stmt *q = sq_stmt(c, which);
    if (!q) {
        ret = sq_reader_fail(s, c, "prepare list", err);
        goto out;
    }
    /* One read transaction: the revision and the rows come from the same
     * snapshot. */
    if (sq_exec_simple(c, R_BEGIN) < 0) {
        ret = sq_reader_fail(s, c, "begin", err);
        goto out;
    }
    if (sq_read_rv(c, R_GET_RV, &rv) < 0) {
        ret = sq_reader_fail(s, c, "read revision", err);
        goto end;
    }
    const char *lower = after ? after_key : prefix;
    sq_bind_text(q, 1, lower, strlen(lower));
    if (has_upper) {
        sq_bind_text(q, 2, upper, strlen(upper));
    }
    sqlite3_bind_int64(q, 3, limit ? (sqlite3_int64) limit + 1 : -1);
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (limit && n == limit) {
            if (more) {
                *more = true;
            }
            break;
        }
        const char *v = (const char *) sqlite3_column_text(q, 1);
        struct store_kv kv = {
            .key = (char *) sqlite3_column_text(q, 0),
            .value = (char *) (v ? v : ""),
            .len = (size_t) sqlite3_column_bytes(q, 1),
            .rv = sqlite3_column_int64(q, 2),
        };
        n++;
        int cbrc = cb ? cb(arg, &kv) : 0;
        if (cbrc) {
            ret = cbrc;
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        ret = sq_reader_fail(s, c, "list", err);
    }
    sqlite3_reset(q);
end:
    sq_exec_simple(c, R_COMMIT);
out:
    if (ret == 0 && list_rv) {
        *list_rv = rv;
    }
    free(upper);
    sq_reader_put(s, c);
    return ret;
}

static int64_t
sq_count(struct store *st, const char *prefix)
{
    struct store_sqlite *s = sq_from(st);
    if (!prefix) {
        prefix = "";
    }
    struct sq_conn *c = sq_reader_get(s, NULL);
    if (!c) {
        return -EIO;
    }
    char *upper = NULL;
    bool has_upper = sq_prefix_upper(prefix, &upper);
    int64_t ret = -EIO;
    sqlite3_stmt *q = sq_stmt(c, has_upper ? R_COUNT_LT : R_COUNT);
    if (q) {
        sq_bind_text(q, 1, prefix, strlen(prefix));
        if (has_upper) {
            sq_bind_text(q, 2, upper, strlen(upper));
        }
        if (sqlite3_step(q) == SQLITE_ROW) {
            ret = sqlite3_column_int64(q, 0);
        }
        sqlite3_reset(q);
    }
    free(upper);
    sq_reader_put(s, c);
    return ret;
}

static int64_t
sq_current_rv(struct store *st)
{
    return atomic_load(&sq_from(st)->rv);
}

/* ---- checkpoints ---- */

static int
sq_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct store_sqlite *s = arg;
    atomic_store(&s->wal_frames, pages);
    if (pages >= s->wal_pages) {
        pthread_mutex_lock(&s->ckpt_lock);
        if (!s->ckpt_wanted) {
            s->ckpt_wanted = true;
            pthread_cond_signal(&s->ckpt_cond);
        }
        pthread_mutex_unlock(&s->ckpt_lock);
    }
    return SQLITE_OK;
}

static void *
sq_ckpt_main(void *arg)
{
    struct store_sqlite *s = arg;
    pthread_mutex_lock(&s->ckpt_lock);
    for (;;) {
        while (!s->ckpt_wanted && !s->ckpt_stop) {
            pthread_cond_wait(&s->ckpt_cond, &s->ckpt_lock);
        }
        if (s->ckpt_stop) {
            break;
        }
        s->ckpt_wanted = false;
        pthread_mutex_unlock(&s->ckpt_lock);
        /* Passive: never blocks the writer or readers. The writer restarts
         * the WAL from its beginning once every frame is copied, which
         * happens by itself whenever writes pause. */
        for (int pass = 1;; pass++) {
            int log = 0, done = 0;
            sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL,
                                      SQLITE_CHECKPOINT_PASSIVE, &log, &done);
            int now = atomic_load(&s->wal_frames);
            if (log < s->wal_pages * SQ_CKPT_FORCE_FACTOR ||
                now < s->wal_pages) {
                break;
            }
            /* Writes never paused. Shrink what they appended during the
             * pass with more passes, then copy the rest as a turn of the
             * write queue: writers wait only for that short tail. */
            if (now - done <= s->wal_pages / 4 || pass >= SQ_CKPT_PASSES) {
                struct sq_req r = {.op = SQ_CHECKPOINT, .key = ""};
                sq_submit(s, &r, NULL, NULL);
                break;
            }
        }
        pthread_mutex_lock(&s->ckpt_lock);
    }
    pthread_mutex_unlock(&s->ckpt_lock);
    return NULL;
}

/* ---- open/close ---- */

static void
sq_close(struct store *st)
{
    struct store_sqlite *s = sq_from(st);
    if (!s) {
        return;
    }
    if (s->ckpt_started) {
        pthread_mutex_lock(&s->ckpt_lock);
        s->ckpt_stop = true;
        pthread_cond_signal(&s->ckpt_cond);
        pthread_mutex_unlock(&s->ckpt_lock);
        pthread_join(s->ckpt_thread, NULL);
    }
    sqlite3_close(s->ckpt_db);
    while (s->readers) {
        struct sq_conn *c = s->readers;
        s->readers = c->next;
        sq_conn_close(c);
        free(c);
    }
    if (s->writer.db) {
        sqlite3_wal_hook(s->writer.db, NULL, NULL);
    }
    /* The last connection to close checkpoints and removes the WAL. */
    sq_conn_close(&s->writer);
    if (s->lock_fd >= 0) {
        close(s->lock_fd);
    }
    pthread_mutex_destroy(&s->qlock);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_mutex_destroy(&s->ckpt_lock);
    pthread_cond_destroy(&s->ckpt_cond);
    free(s->path);
    free(s);
}

/* Parse "<path>[?sync=...]" into s->path and s->sync. */
static int
sq_parse_url(struct store_sqlite *s, const char *rest, struct dpf_error *err)
{
    const char *q = strchr(rest, '?');
    s->path = q ? xstrndup(rest, (size_t) (q - rest)) : xstrdup(rest);
    s->sync = "NORMAL";
    s->batch_max = SQ_BATCH_MAX;
    s->busy_ms = SQ_BUSY_MS;
    s->wal_pages = SQ_CKPT_PAGES;
    if (!s->path[0]) {
        dpf_error_set(err, 400, "Invalid",
                      "store URL \"sqlite:%s\": missing database path", rest);
        return -EINVAL;
    }
    static const char *const syncs[] = {"OFF", "NORMAL", "FULL", "EXTRA"};
    while (q && q[1]) {
        const char *opt = q + 1;
        q = strchr(opt, '&');
        size_t n = q ? (size_t) (q - opt) : strlen(opt);
        bool ok = false;
        if (n > 10 && !strncmp(opt, "wal_pages=", 10)) {
            char *end;
            long v = strtol(opt + 10, &end, 10);
            ok = end == opt + n && v >= SQ_CKPT_PAGES_MIN &&
                 v <= SQ_CKPT_PAGES_MAX;
            s->wal_pages = (int) v;
        } else if (n > 8 && !strncmp(opt, "busy_ms=", 8)) {
            char *end;
            long v = strtol(opt + 8, &end, 10);
            ok = end == opt + n && v >= 0 && v <= SQ_BUSY_LIMIT;
            s->busy_ms = (int) v;
        } else if (n > 6 && !strncmp(opt, "batch=", 6)) {
            char *end;
            long v = strtol(opt + 6, &end, 10);
            ok = end == opt + n && v >= 1 && v <= SQ_BATCH_LIMIT;
            s->batch_max = (int) v;
        } else if (n > 5 && !strncmp(opt, "sync=", 5)) {
            for (size_t i = 0; i < ARRAY_SIZE(syncs); i++) {
                if (strlen(syncs[i]) == n - 5 &&
                    !strncasecmp(opt + 5, syncs[i], n - 5)) {
                    s->sync = syncs[i];
                    ok = true;
                }
            }
        }
        if (!ok) {
            dpf_error_set(
                err, 400, "Invalid",
                "store URL \"sqlite:%s\": unsupported option "
                "\"%.*s\" (expected sync=off|normal|full|extra "
                "or batch=1..%d or busy_ms=0..%d or wal_pages=%d..%d)",
                rest, (int) n, opt, SQ_BATCH_LIMIT, SQ_BUSY_LIMIT,
                SQ_CKPT_PAGES_MIN, SQ_CKPT_PAGES_MAX);
            return -EINVAL;
        }
    }
    return 0;
}

static int
sq_setup_schema(struct store_sqlite *s, struct dpf_error *err)
{
    static const char schema[] =
        "BEGIN IMMEDIATE;"
        "CREATE TABLE IF NOT EXISTS kv ("
        "  key TEXT PRIMARY KEY NOT NULL,"
        "  value TEXT NOT NULL,"
        "  mod_rv INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS meta ("
        "  k TEXT PRIMARY KEY NOT NULL,"
        "  v INTEGER NOT NULL);"
        "INSERT OR IGNORE INTO meta(k, v) VALUES ('rv', 1);"
        "INSERT OR IGNORE INTO meta(k, v) VALUES ('schema', 1);"
        "COMMIT;";
    char *msg = NULL;
    if (sqlite3_exec(s->writer.db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        sq_set_eio(s, err, "create schema",
                   msg ? msg : sqlite3_errmsg(s->writer.db));
        sqlite3_free(msg);
        return -EIO;
    }
    int64_t rv;
    if (sq_read_rv(&s->writer, W_GET_RV, &rv) < 0) {
        sq_set_eio(s, err, "read revision", sqlite3_errmsg(s->writer.db));
        return -EIO;
    }
    atomic_store(&s->rv, rv);
    return 0;
}

static struct store *
sq_open(const char *rest, struct dpf_error *err)
{
    struct store_sqlite *s = xcalloc(1, sizeof *s);
    s->up.ops = &store_sqlite_ops;
    s->lock_fd = -1;
    s->writer.sql = sq_wsql;
    s->qtail = &s->qhead;
    pthread_mutex_init(&s->qlock, NULL);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_mutex_init(&s->ckpt_lock, NULL);
    pthread_cond_init(&s->ckpt_cond, NULL);
    if (sq_parse_url(s, rest, err) < 0) {
        goto fail;
    }
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; "
             "PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=-8192; "
             "PRAGMA temp_store=MEMORY; PRAGMA journal_size_limit=%lld;",
             s->sync, (long long) s->wal_pages * 4096);
    s->writer.db = sq_open_db(s->path, true, s->busy_ms, pragmas, err);
    if (!s->writer.db) {
        goto fail;
    }
    /* Two processes writing one database would each cache the revision
     * and feed their own watchers; refuse the second one clearly. */
    s->lock_fd = open(s->path, O_RDWR | O_CLOEXEC);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        dpf_error_set(err, 409, "Conflict", "store %s: %s", s->path,
                      errno == EWOULDBLOCK ? "in use by another process"
                                           : strerror(errno));
        goto fail;
    }
    sqlite3_stmt *jm;
    if (sqlite3_prepare_v2(s->writer.db, "PRAGMA journal_mode", -1, &jm,
                           NULL) == SQLITE_OK) {
        bool wal = sqlite3_step(jm) == SQLITE_ROW &&
                   !strcmp((const char *) sqlite3_column_text(jm, 0), "wal");
        sqlite3_finalize(jm);
        if (!wal) {
            sq_set_eio(s, err, "setup", "could not enable WAL mode");
            goto fail;
        }
    }
    if (sq_setup_schema(s, err) < 0) {
        goto fail;
    }
    /* A RESTART checkpoint holds the write lock while it waits for
     * readers: give up after SQ_CKPT_WAIT_MS rather than stall writers. */
    s->ckpt_db = sq_open_db(s->path, false, SQ_CKPT_WAIT_MS,
                            "PRAGMA wal_autocheckpoint=0;"
                            /* a first read attaches the connection to the
                             * WAL; until then checkpoints are no-ops */
                            "SELECT v FROM meta WHERE k = 'rv';",
                            err);
    if (!s->ckpt_db) {
        goto fail;
    }
    if (pthread_create(&s->ckpt_thread, NULL, sq_ckpt_main, s) != 0) {
        sq_set_eio(s, err, "start checkpoint thread", strerror(errno));
        goto fail;
    }
    s->ckpt_started = true;
    sqlite3_wal_hook(s->writer.db, sq_wal_hook, s);
    return &s->up;

fail:
    sq_close(&s->up);
    return NULL;
}

const struct store_ops store_sqlite_ops = {
    .scheme = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .set_event_hook = sq_set_event_hook,
    .create = sq_create,
    .update = sq_update,
    .delete_ = sq_delete,
    .get = sq_get,
    .list = sq_list,
    .count = sq_count,
    .current_rv = sq_current_rv,
};
