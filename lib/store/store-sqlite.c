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
 * the WAL can restart (docs/dev/store.md, "Durability").
 *
 * Opening refuses a missing, empty or damaged database unless asked to
 * create one, checks integrity, and starts the revision at no less than
 * the newest mod_rv in kv. A create or update is refused with -ENOSPC past
 * the quota, and after the disk filled up (SQLITE_FULL) until space is
 * back; deletes pass in both cases, with a preallocated reserve file given
 * back to the filesystem on SQLITE_FULL so that they find room. */
#include "lib/store/store-sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/base/util.h"

LOG_MODULE(store);

/* Requests applied in one transaction at most (URL option batch=N). */
#define SQ_BATCH_MAX 256
#define SQ_BATCH_LIMIT 4096
/* WAL size (pages) that wakes the checkpoint thread (URL option
 * wal_pages=N); the WAL file is truncated back to this size when it
 * restarts. */
#define SQ_CKPT_PAGES 2000
#define SQ_CKPT_PAGES_MIN 64
#define SQ_CKPT_PAGES_MAX 1000000
/* The writer's page cache (URL option cache_kib=N): 8 MiB keeps a large
 * store's B-tree interior pages hot; a small store (a DPU cluster's)
 * fills it with its whole file, which the OS caches anyway. */
#define SQ_CACHE_KIB 8192
#define SQ_CACHE_KIB_MIN 256
#define SQ_CACHE_KIB_MAX (1024 * 1024)
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
/* Spare file given back to the filesystem when the disk is full, so that
 * deletes and checkpoints find room (URL option reserve=BYTES, 0 = none):
 * a few hundred deletes and one checkpoint's growth of the database. */
#define SQ_RESERVE_BYTES (4LL * 1024 * 1024)
#define SQ_RESERVE_LIMIT (1LL << 30)
/* Free space beyond the reserve needed to leave the disk-full state. */
#define SQ_FULL_MARGIN (1LL * 1024 * 1024)
/* Integrity checks at open (URL option check=full|quick|off). */
#define SQ_CHECK_ERRORS 5

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
    W_PAGE_COUNT,
    W_FREE_COUNT,
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
    [W_PAGE_COUNT] = "PRAGMA page_count",
    [W_FREE_COUNT] = "PRAGMA freelist_count",
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
    char errmsg[256];         /* text for -EIO and -ENOSPC */
    bool backend_failed;      /* errmsg is SQLite's */
    bool refused;             /* rc is final before the batch runs */
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
    int cache_kib;         /* the writer's page cache */
    const char *check;     /* integrity pragma at open, NULL = none */
    atomic_int wal_frames; /* WAL frames after the latest commit */
    int lock_fd;           /* flock()ed database file: one process only */
    struct sq_conn writer; /* used only by the current leader */

    /* Space; the leader alone touches these after open. */
    int64_t quota;       /* bytes the objects may take */
    char *quota_setting; /* how the user sets it, or NULL */
    int64_t page_size;   /* database page size */
    bool quota_alarm;    /* the latest create/update did not fit */
    int64_t reserve;     /* reserve file size (0 = none) */
    char *reserve_path;  /* <path>-reserve */
    bool reserve_held;   /* the reserve's blocks are allocated */
    bool disk_full;      /* SQLITE_FULL seen, no space back yet */

    pthread_mutex_t health_lock; /* protects failure */
    char failure[160];           /* first damage/I/O error, "" = none */

    pthread_mutex_t qlock; /* protects the queue, leader flag and hook */
    struct sq_req *qhead;  /* queued requests, oldest first */
    struct sq_req **qtail; /* where to link the next request */
    bool leader_busy;      /* a leader is running a batch */
    store_event_fn hook;   /* event hook or NULL */
    void *hook_arg;        /* its argument */
    _Atomic int64_t rv;    /* latest committed revision */

    pthread_mutex_t pool_lock; /* protects readers */
    struct sq_conn *readers;   /* idle read connections */

    struct worker ckpt; /* background checkpointer; its lock
                                * protects ckpt_wanted */
    sqlite3 *ckpt_db;   /* its connection */
    bool ckpt_wanted;   /* the WAL passed SQ_CKPT_PAGES */
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

/* Remember the first error that says the database is damaged or cannot
 * be read or written (not a full disk, not a lock held by another
 * process): store_health() fails from then on. Call before anything else
 * runs on db (its error message is read here). */
static void
sq_note_failure(struct store_sqlite *s, sqlite3 *db)
{
    int code = sqlite3_extended_errcode(db);
    int primary = code & 0xff;
    if (primary != SQLITE_CORRUPT && primary != SQLITE_NOTADB &&
        primary != SQLITE_IOERR && code != SQLITE_READONLY_DBMOVED) {
        return;
    }
    pthread_mutex_lock(&s->health_lock);
    bool first = !s->failure[0];
    if (first) {
        snprintf(s->failure, sizeof s->failure, "%s", sqlite3_errmsg(db));
    }
    pthread_mutex_unlock(&s->health_lock);
    if (first) {
        log_error("store failed; readiness reports it until a restart",
                  "path=%s error=\"%s\" code=%d", s->path, sqlite3_errmsg(db),
                  code);
    }
}

static bool
sq_is_full(sqlite3 *db)
{
    return (sqlite3_extended_errcode(db) & 0xff) == SQLITE_FULL;
}

/* The -ENOSPC text for a full disk: for a create or update refused in
 * the disk-full state, or for a write that hit it (then, if the reserve
 * was already given back, deletes fail too and it says so). */
static void
sq_full_message(struct store_sqlite *s, char *buf, size_t n, bool refused)
{
    snprintf(buf, n, "store %s: the disk is full (no space left on device)%s",
             s->path,
             refused ? ": creates and updates are refused until space is "
                       "freed on it; deletes still work"
             : s->disk_full ? " and the store's reserve for deletes is used "
                              "up: free space on the disk"
                            : "");
}

/* Open a connection to an existing database and run pragmas; NULL + err
 * (and SQLite's error code in *code if given) on failure. */
static sqlite3 *
sq_open_db(const char *path, int busy_ms, const char *pragmas, int *code,
           struct dpf_error *err)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        dpf_error_set(err, 500, "InternalError", "store %s: open: %s", path,
                      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        if (code) {
            *code = db ? sqlite3_extended_errcode(db) : rc;
        }
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, busy_ms);
    char *msg = NULL;
    if (pragmas && sqlite3_exec(db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
        dpf_error_set(err, 500, "InternalError", "store %s: setup: %s", path,
                      msg ? msg : sqlite3_errmsg(db));
        if (code) {
            *code = sqlite3_extended_errcode(db);
        }
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

/* Bytes the objects take, as seen inside the writer's transaction: pages
 * in use (freed pages are reused before the file grows). */
static int
sq_space_used(struct store_sqlite *s, struct sq_req *r, int64_t *used)
{
    int64_t pages, free_pages;
    if (sq_read_rv(&s->writer, W_PAGE_COUNT, &pages) < 0 ||
        sq_read_rv(&s->writer, W_FREE_COUNT, &free_pages) < 0) {
        return sq_req_fail(s, r, "page count");
    }
    *used = (pages - free_pages) * s->page_size;
    return 0;
}

/* Leave the disk-full state once the filesystem has room for the reserve
 * again and it could be allocated. */
static bool
sq_space_back(struct store_sqlite *s)
{
    struct statvfs vfs;
    if (fstatvfs(s->lock_fd, &vfs) < 0 ||
        (int64_t) vfs.f_bavail * (int64_t) vfs.f_frsize <
            s->reserve + SQ_FULL_MARGIN) {
        return false;
    }
    if (s->reserve > 0) {
        int fd = open(s->reserve_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            return false;
        }
        int rc = posix_fallocate(fd, 0, s->reserve);
        if (rc != 0 && ftruncate(fd, 0) < 0) {
            rc = errno; /* (the blocks stay taken; retried later) */
        }
        close(fd);
        if (rc != 0) {
            return false;
        }
        s->reserve_held = true;
    }
    s->disk_full = false;
    log_info("store: disk space is back, creates and updates resume", "path=%s",
             s->path);
    return true;
}

/* The disk filled up: give the reserve back so deletes and checkpoints
 * find room, and refuse creates and updates until space is back. */
static void
sq_enter_disk_full(struct store_sqlite *s)
{
    if (s->reserve_held && truncate(s->reserve_path, 0) == 0) {
        s->reserve_held = false;
    }
    s->disk_full = true;
    log_error("store: the disk is full; creates and updates are refused, "
              "deletes still work: free space on the disk",
              "path=%s reserve_released=%s", s->path,
              s->reserve_held ? "no" : "yes");
}

/* May a create or update of about cost bytes be applied? 0, or -ENOSPC
 * with the reason in r->errmsg (quota exceeded or disk full), or -EIO.
 * pre: the check before an update's mutation (cost 0), which does not
 * clear the alarm. */
static int
sq_space_check(struct store_sqlite *s, struct sq_req *r, size_t cost, bool pre)
{
    if (s->disk_full && !sq_space_back(s)) {
        sq_full_message(s, r->errmsg, sizeof r->errmsg, true);
        return -ENOSPC;
    }
    int64_t used;
    int rc = sq_space_used(s, r, &used);
    if (rc < 0) {
        return rc;
    }
    if (used + (int64_t) cost <= s->quota) {
        if (s->quota_alarm && !pre) {
            s->quota_alarm = false;
            /* (rate-limited: a client can make the alarm flap) */
            log_warn_rl("store: quota alarm cleared",
                        "path=%s used=%" PRId64 " quota=%" PRId64, s->path,
                        used, s->quota);
        }
        return 0;
    }
    snprintf(r->errmsg, sizeof r->errmsg,
             "database space exceeded: the store's objects take %" PRId64
             " bytes and this write needs about %zu more, over the quota "
             "of %" PRId64 " bytes%s%s%s; delete objects to free space or "
             "raise the quota",
             used, cost, s->quota, s->quota_setting ? " (" : "",
             s->quota_setting ? s->quota_setting : "",
             s->quota_setting ? ")" : "");
    if (!s->quota_alarm) {
        s->quota_alarm = true;
        log_warn_rl("store: quota alarm raised; creates and updates that "
                    "do not fit are refused, deletes still work",
                    "path=%s used=%" PRId64 " quota=%" PRId64, s->path, used,
                    s->quota);
    }
    return -ENOSPC;
}

static int
sq_apply_create(struct store_sqlite *s, struct sq_req *r, int64_t rv)
{
    int rc = sq_space_check(s, r, strlen(r->key) + r->len, false);
    if (rc < 0) {
        return rc;
    }
    sqlite3_stmt *st = sq_stmt(&s->writer, W_INSERT);
    if (!st) {
        return sq_req_fail(s, r, "prepare insert");
    }
    sq_bind_text(st, 1, r->key, strlen(r->key));
    sq_bind_text(st, 2, r->value, r->len);
    sqlite3_bind_int64(st, 3, rv);
    rc = sqlite3_step(st);
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
    /* Refuse before the mutation runs: it runs once per call, and a
     * refused update must not have run it. */
    int rc = sq_space_check(s, r, 0, true);
    if (rc < 0) {
        return rc;
    }
    rc = sq_writer_get(s, r, &st);
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
    if (out_len > old_len &&
        (rc = sq_space_check(s, r, out_len - old_len, false)) < 0) {
        free(out);
        return rc;
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
 * is rolled back, so nothing of it happened. A full disk fails them with
 * -ENOSPC; returns true then. */
static bool
sq_batch_fail(struct store_sqlite *s, struct sq_req *batch, const char *what)
{
    char msg[256];
    bool full = sq_is_full(s->writer.db);
    sq_note_failure(s, s->writer.db);
    if (full) {
        sq_full_message(s, msg, sizeof msg, false);
    } else {
        snprintf(msg, sizeof msg, "%s: %s", what, sqlite3_errmsg(s->writer.db));
    }
    if (!sqlite3_get_autocommit(s->writer.db)) {
        sq_exec_simple(&s->writer, W_ROLLBACK);
    }
    for (struct sq_req *r = batch; r; r = r->next) {
        if (r->rc != -EIO || full) {
            snprintf(r->errmsg, sizeof r->errmsg, "%s", msg);
        }
        r->rc = full ? -ENOSPC : -EIO;
        r->wrote = false;
        free(r->ev_owned);
        r->ev_owned = NULL;
    }
    return full;
}

/* Apply a batch in one transaction; called by the leader only. Returns
 * true if it failed because the disk is full. */
static bool
sq_try_batch(struct store_sqlite *s, struct sq_req *batch, store_event_fn hook,
             void *hook_arg)
{
    int64_t base;
    if (sq_exec_simple(&s->writer, W_BEGIN) < 0) {
        return sq_batch_fail(s, batch, "begin");
    }
    /* Read the revision inside the transaction, and never go below the
     * one this process already handed out (open() started it at no less
     * than any stored mod_rv): a revision never goes backwards, even if
     * something rewrote meta behind our back. */
    if (sq_read_rv(&s->writer, W_GET_RV, &base) < 0) {
        return sq_batch_fail(s, batch, "read revision");
    }
    base = DPF_MAX(base, atomic_load(&s->rv));
    int64_t rv = base;
    for (struct sq_req *r = batch; r; r = r->next) {
        if (r->refused) {
            continue;
        }
        int rc = sq_apply(s, r, rv + 1);
        if (rc == 0) {
            r->rv = ++rv;
            r->wrote = true;
        } else if (r->backend_failed) {
            /* (a mutation's own -EIO is just that request's result) */
            r->rc = -EIO;
            return sq_batch_fail(s, batch, "write");
        }
        r->rc = rc < 0 ? rc : 0;
    }
    if (rv == base) {
        sq_exec_simple(&s->writer, W_ROLLBACK);
        return false;
    }
    sqlite3_stmt *st = sq_stmt(&s->writer, W_SET_RV);
    if (!st) {
        return sq_batch_fail(s, batch, "prepare revision update");
    }
    sqlite3_bind_int64(st, 1, rv);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return sq_batch_fail(s, batch, "revision update");
    }
    /* With sync=full (the default) COMMIT returns after the WAL frames
     * were fsynced: only now is the batch acknowledged and published. */
    if (sq_exec_simple(&s->writer, W_COMMIT) < 0) {
        return sq_batch_fail(s, batch, "commit");
    }
    atomic_store(&s->rv, rv);
    atomic_fetch_add(&s->up.commits, 1);
    atomic_fetch_add(&s->up.writes, rv - base);
    for (struct sq_req *r = batch; r; r = r->next) {
        if (r->wrote && hook) {
            hook(hook_arg, r->ev, r->key, r->ev_value, r->ev_len, r->rv);
        }
        free(r->ev_owned);
        r->ev_owned = NULL;
    }
    return false;
}

/* Apply a batch; if the disk turned out full, enter the disk-full state
 * (which gives the reserve back) and run the batch once more: its creates
 * and updates are then refused before they run (an update's mutation has
 * not run either: the full disk showed at COMMIT, and the refusal comes
 * first), and its deletes find the reserve's room. */
static void
sq_run_batch(struct store_sqlite *s, struct sq_req *batch, store_event_fn hook,
             void *hook_arg)
{
    if (!sq_try_batch(s, batch, hook, hook_arg) || s->disk_full) {
        return;
    }
    sq_enter_disk_full(s);
    for (struct sq_req *r = batch; r; r = r->next) {
        r->rv = 0;
        r->wrote = false;
        r->backend_failed = false;
        /* only deletes run again: an update's mutation already ran */
        r->refused = r->op != SQ_DELETE;
        if (r->refused) {
            r->rc = -ENOSPC;
            sq_full_message(s, r->errmsg, sizeof r->errmsg, true);
        } else {
            r->rc = 0;
            r->errmsg[0] = '\0';
        }
    }
    sq_try_batch(s, batch, hook, hook_arg);
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
    if (rc != SQLITE_OK) {
        sq_note_failure(s, s->ckpt_db);
    }
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
    } else if (r->rc == -ENOSPC) {
        dpf_error_set(err, 507, "InsufficientStorage", "%s", r->errmsg);
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
    sqlite3 *db = sq_open_db(s->path, s->busy_ms, SQ_READER_PRAGMAS, NULL, err);
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
    sq_note_failure(s, c->db);
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
    /* Also when the callback stopped the walk (a page is full): a paged
     * list's every page carries its snapshot's revision. */
    if (ret >= 0 && list_rv) {
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
        } else {
            sq_note_failure(s, c->db);
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

static int
sq_health(struct store *st, char *why, size_t n)
{
    struct store_sqlite *s = sq_from(st);
    pthread_mutex_lock(&s->health_lock);
    bool failed = s->failure[0] != '\0';
    if (failed) {
        snprintf(why, n, "%s", s->failure);
    }
    pthread_mutex_unlock(&s->health_lock);
    if (failed) {
        return -EIO;
    }
    /* The database we write must still be the file at our path: SQLite
     * goes on writing an unlinked file, and nobody would find it again. */
    struct stat at_path, ours;
    if (stat(s->path, &at_path) < 0) {
        snprintf(why, n, "the database file is gone (%s)", strerror(errno));
        return -EIO;
    }
    if (fstat(s->lock_fd, &ours) < 0 || at_path.st_dev != ours.st_dev ||
        at_path.st_ino != ours.st_ino) {
        snprintf(why, n, "the database file was replaced behind the store");
        return -EIO;
    }
    /* One small read through a reader connection. */
    struct sq_conn *c = sq_reader_get(s, NULL);
    if (!c) {
        snprintf(why, n, "cannot open a reader connection");
        return -EIO;
    }
    int64_t rv;
    int rc = 0;
    if (sq_read_rv(c, R_GET_RV, &rv) < 0) {
        sq_note_failure(s, c->db);
        snprintf(why, n, "cannot read the store: %s", sqlite3_errmsg(c->db));
        rc = -EIO;
    }
    sq_reader_put(s, c);
    return rc;
}

/* ---- checkpoints ---- */

static int
sq_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct store_sqlite *s = arg;
    atomic_store(&s->wal_frames, pages);
    if (pages >= s->wal_pages) {
        worker_lock(&s->ckpt);
        if (!s->ckpt_wanted) {
            s->ckpt_wanted = true;
            worker_wake(&s->ckpt);
        }
        worker_unlock(&s->ckpt);
    }
    return SQLITE_OK;
}

static void *
sq_ckpt_main(void *arg)
{
    struct store_sqlite *s = arg;
    worker_lock(&s->ckpt);
    for (;;) {
        while (!s->ckpt_wanted && worker_wait(&s->ckpt, -1)) {
        }
        if (worker_stopping(&s->ckpt)) {
            break;
        }
        s->ckpt_wanted = false;
        worker_unlock(&s->ckpt);
        /* Passive: never blocks the writer or readers. The writer restarts
         * the WAL from its beginning once every frame is copied, which
         * happens by itself whenever writes pause. */
        for (int pass = 1;; pass++) {
            int log = 0, done = 0;
            if (sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL,
                                          SQLITE_CHECKPOINT_PASSIVE, &log,
                                          &done) != SQLITE_OK) {
                /* damage or I/O errors show in health; busy is normal */
                sq_note_failure(s, s->ckpt_db);
            }
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
        worker_lock(&s->ckpt);
    }
    worker_unlock(&s->ckpt);
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
    worker_stop(&s->ckpt);
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
    pthread_mutex_destroy(&s->health_lock);
    worker_destroy(&s->ckpt);
    free(s->path);
    free(s->reserve_path);
    free(s->quota_setting);
    free(s);
}

/* "name=<integer in [min, max]>" of length n: true and *v if it matches. */
static bool
sq_parse_int(const char *opt, size_t n, const char *name, long long min,
             long long max, long long *v)
{
    size_t k = strlen(name);
    if (n <= k || strncmp(opt, name, k) != 0) {
        return false;
    }
    char *end;
    errno = 0;
    *v = strtoll(opt + k, &end, 10);
    return errno == 0 && end == opt + n && *v >= min && *v <= max;
}

/* Parse "<path>[?opt=value&...]" into s. */
static int
sq_parse_url(struct store_sqlite *s, const char *rest, struct dpf_error *err)
{
    const char *q = strchr(rest, '?');
    s->path = q ? xstrndup(rest, (size_t) (q - rest)) : xstrdup(rest);
    s->sync = "FULL";
    s->check = "integrity_check";
    s->batch_max = SQ_BATCH_MAX;
    s->busy_ms = SQ_BUSY_MS;
    s->wal_pages = SQ_CKPT_PAGES;
    s->cache_kib = SQ_CACHE_KIB;
    s->reserve = SQ_RESERVE_BYTES;
    if (!s->path[0]) {
        dpf_error_set(err, 400, "Invalid",
                      "store URL \"sqlite:%s\": missing database path", rest);
        return -EINVAL;
    }
    static const char *const syncs[] = {"OFF", "NORMAL", "FULL", "EXTRA"};
    static const char *const checks[][2] = {
        {"full", "integrity_check"}, {"quick", "quick_check"}, {"off", NULL}};
    while (q && q[1]) {
        const char *opt = q + 1;
        q = strchr(opt, '&');
        size_t n = q ? (size_t) (q - opt) : strlen(opt);
        bool ok = false;
        long long v;
        if (sq_parse_int(opt, n, "wal_pages=", SQ_CKPT_PAGES_MIN,
                         SQ_CKPT_PAGES_MAX, &v)) {
            s->wal_pages = (int) v;
            ok = true;
        } else if (sq_parse_int(opt, n, "cache_kib=", SQ_CACHE_KIB_MIN,
                                SQ_CACHE_KIB_MAX, &v)) {
            s->cache_kib = (int) v;
            ok = true;
        } else if (sq_parse_int(opt, n, "busy_ms=", 0, SQ_BUSY_LIMIT, &v)) {
            s->busy_ms = (int) v;
            ok = true;
        } else if (sq_parse_int(opt, n, "batch=", 1, SQ_BATCH_LIMIT, &v)) {
            s->batch_max = (int) v;
            ok = true;
        } else if (sq_parse_int(opt, n, "reserve=", 0, SQ_RESERVE_LIMIT, &v)) {
            s->reserve = v;
            ok = true;
        } else if (n > 5 && !strncmp(opt, "sync=", 5)) {
            for (size_t i = 0; i < ARRAY_SIZE(syncs); i++) {
                if (strlen(syncs[i]) == n - 5 &&
                    !strncasecmp(opt + 5, syncs[i], n - 5)) {
                    s->sync = syncs[i];
                    ok = true;
                }
            }
        } else if (n > 6 && !strncmp(opt, "check=", 6)) {
            for (size_t i = 0; i < ARRAY_SIZE(checks); i++) {
                if (strlen(checks[i][0]) == n - 6 &&
                    !strncmp(opt + 6, checks[i][0], n - 6)) {
                    s->check = checks[i][1];
                    ok = true;
                }
            }
        }
        if (!ok) {
            dpf_error_set(
                err, 400, "Invalid",
                "store URL \"sqlite:%s\": unsupported option "
                "\"%.*s\" (expected sync=off|normal|full|extra "
                "or check=full|quick|off or batch=1..%d or busy_ms=0..%d "
                "or wal_pages=%d..%d or cache_kib=%d..%d or "
                "reserve=0..%lld)",
                rest, (int) n, opt, SQ_BATCH_LIMIT, SQ_BUSY_LIMIT,
                SQ_CKPT_PAGES_MIN, SQ_CKPT_PAGES_MAX, SQ_CACHE_KIB_MIN,
                SQ_CACHE_KIB_MAX, (long long) SQ_RESERVE_LIMIT);
            return -EINVAL;
        }
    }
    return 0;
}

static void
sq_set_damaged(struct store_sqlite *s, struct dpf_error *err,
               const char *detail)
{
    dpf_error_set(err, 500, "InternalError",
                  "store %s is damaged (%s); it was not opened: restore the "
                  "file from a backup, or salvage what is readable with "
                  "\"sqlite3 %s .recover\", or move it and its -wal file "
                  "away to start with an empty store",
                  s->path, detail, s->path);
}

/* Make path owner-only if it exists with group or other bits. */
static int
sq_make_private(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    if ((st.st_mode & 077) && chmod(path, st.st_mode & 0700) < 0) {
        return -errno;
    }
    return 0;
}

/* Open the database file (creating it if allowed), take the process lock
 * on it and make its files owner-only. *empty: it has 0 bytes. */
static int
sq_lock_file(struct store_sqlite *s, bool create, bool *empty,
             struct dpf_error *err)
{
    int fd = open(s->path, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        /* 0600 whatever the umask: the store holds every Secret, and
         * SQLite gives its -wal and -shm files the database's mode. */
        fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) {
            fd = open(s->path, O_RDWR | O_CLOEXEC);
        }
    }
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT) {
            dpf_error_set(err, 404, "NotFound",
                          "store %s: the database does not exist", s->path);
        } else {
            dpf_error_set(err, 500, "InternalError", "store %s: open: %s",
                          s->path, strerror(e));
        }
        return -e;
    }
    s->lock_fd = fd;
    /* Two processes writing one database would each cache the revision
     * and feed their own watchers; refuse the second one clearly. */
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        dpf_error_set(err, 409, "Conflict", "store %s: %s", s->path,
                      e == EWOULDBLOCK ? "in use by another process"
                                       : strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || ((st.st_mode & 077) && fchmod(fd, 0600) < 0)) {
        int e = errno;
        dpf_error_set(err, 500, "InternalError", "store %s: chmod 0600: %s",
                      s->path, strerror(e));
        return -e;
    }
    *empty = st.st_size == 0;
    static const char *const sidecars[] = {"-wal", "-shm"};
    for (size_t i = 0; i < ARRAY_SIZE(sidecars); i++) {
        char *p = xasprintf("%s%s", s->path, sidecars[i]);
        /* A -wal or -shm beside an empty database belongs to a database
         * that is gone: SQLite must not replay it into the new one. */
        int r = *empty && create
                    ? (unlink(p) < 0 && errno != ENOENT ? -errno : 0)
                    : sq_make_private(p);
        if (r < 0) {
            dpf_error_set(err, 500, "InternalError", "store %s: %s", p,
                          strerror(-r));
        }
        free(p);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

/* One integer from a one-row query on the writer; -EIO on failure. */
static int
sq_query_int(struct store_sqlite *s, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->writer.db, sql, -1, &st, NULL) != SQLITE_OK) {
        return -EIO;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -EIO;
}

/* PRAGMA integrity_check or quick_check: 0 if "ok", else -EIO with the
 * damage described in err. */
static int
sq_check_integrity(struct store_sqlite *s, struct dpf_error *err)
{
    if (!s->check) {
        return 0;
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA %s(%d)", s->check, SQ_CHECK_ERRORS);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->writer.db, sql, -1, &st, NULL) != SQLITE_OK) {
        sq_set_damaged(s, err, sqlite3_errmsg(s->writer.db));
        return -EIO;
    }
    struct dbuf found;
    dbuf_init(&found);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *line = (const char *) sqlite3_column_text(st, 0);
        dbuf_printf(&found, "%s%s", found.len ? "; " : "", line ? line : "?");
    }
    if (rc != SQLITE_DONE) {
        dbuf_printf(&found, "%s%s", found.len ? "; " : "",
                    sqlite3_errmsg(s->writer.db));
    }
    sqlite3_finalize(st);
    int ret = 0;
    if (rc != SQLITE_DONE || !found.data || strcmp(found.data, "ok") != 0) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s found: %s", s->check,
                 found.data ? found.data : "nothing");
        sq_set_damaged(s, err, detail);
        ret = -EIO;
    }
    dbuf_free(&found);
    return ret;
}

/* Check what is in the file, create the schema where allowed, and start
 * the revision at no less than any stored mod_rv. */
static int
sq_setup_schema(struct store_sqlite *s, bool create, struct dpf_error *err)
{
    int64_t tables = 0, kv_tables = 0;
    if (sq_query_int(s, "SELECT count(*) FROM sqlite_master", &tables) < 0 ||
        sq_query_int(s,
                     "SELECT count(*) FROM sqlite_master WHERE type = "
                     "'table' AND name = 'kv'",
                     &kv_tables) < 0) {
        sq_set_damaged(s, err, sqlite3_errmsg(s->writer.db));
        return -EIO;
    }
    if (tables == 0 && !create) {
        dpf_error_set(err, 404, "NotFound",
                      "store %s: the database holds no tables (an empty "
                      "file)",
                      s->path);
        return -ENOENT;
    }
    if (tables > 0 && kv_tables == 0) {
        dpf_error_set(err, 500, "InternalError",
                      "store %s: the file is an SQLite database without a "
                      "kv table, not a dpf store; point the store at "
                      "another file",
                      s->path);
        return -EIO;
    }
    if (tables > 0 && sq_check_integrity(s, err) < 0) {
        return -EIO;
    }
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
    int64_t rv, max_mod = 0;
    if (sq_read_rv(&s->writer, W_GET_RV, &rv) < 0 ||
        sq_query_int(s, "SELECT coalesce(max(mod_rv), 0) FROM kv", &max_mod) <
            0) {
        sq_set_eio(s, err, "read revision", sqlite3_errmsg(s->writer.db));
        return -EIO;
    }
    if (max_mod > rv) {
        /* meta was rolled back (restored alone, edited, damaged): handing
         * out revisions below stored ones would send every watcher
         * backwards. Move it to the newest object's revision. */
        log_warn("store revision was behind its objects; moved forward",
                 "path=%s meta_rv=%" PRId64 " max_mod_rv=%" PRId64, s->path, rv,
                 max_mod);
        char sql[96];
        snprintf(sql, sizeof sql,
                 "UPDATE meta SET v = %" PRId64 " WHERE k = 'rv'", max_mod);
        if (sqlite3_exec(s->writer.db, sql, NULL, NULL, &msg) != SQLITE_OK) {
            sq_set_eio(s, err, "repair revision",
                       msg ? msg : sqlite3_errmsg(s->writer.db));
            sqlite3_free(msg);
            return -EIO;
        }
        rv = max_mod;
    }
    atomic_store(&s->rv, rv);
    if (sq_query_int(s, "PRAGMA page_size", &s->page_size) < 0) {
        sq_set_eio(s, err, "page size", sqlite3_errmsg(s->writer.db));
        return -EIO;
    }
    return 0;
}

/* Allocate the reserve file; a disk too full for it only costs the
 * reserve (logged). */
static void
sq_reserve_setup(struct store_sqlite *s)
{
    s->reserve_path = xasprintf("%s-reserve", s->path);
    if (s->reserve == 0) {
        unlink(s->reserve_path);
        return;
    }
    int fd = open(s->reserve_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int rc = fd < 0 ? errno : posix_fallocate(fd, 0, s->reserve);
    if (rc == 0) {
        s->reserve_held = true;
    } else {
        if (fd >= 0 && ftruncate(fd, 0) < 0) {
            rc = errno;
        }
        log_warn("store: cannot allocate the disk-full reserve; deletes "
                 "may fail when the disk fills up",
                 "path=%s bytes=%" PRId64 " error=\"%s\"", s->reserve_path,
                 s->reserve, strerror(rc));
    }
    if (fd >= 0) {
        close(fd);
    }
}

static struct store *
sq_open(const char *rest, const struct store_options *opts,
        struct dpf_error *err)
{
    struct store_sqlite *s = xcalloc(1, sizeof *s);
    s->up.ops = &store_sqlite_ops;
    s->lock_fd = -1;
    s->writer.sql = sq_wsql;
    s->qtail = &s->qhead;
    pthread_mutex_init(&s->qlock, NULL);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_mutex_init(&s->health_lock, NULL);
    worker_init(&s->ckpt);
    s->quota = opts->quota_bytes > 0 ? opts->quota_bytes : STORE_QUOTA_DEFAULT;
    s->quota_setting =
        opts->quota_setting ? xstrdup(opts->quota_setting) : NULL;
    if (sq_parse_url(s, rest, err) < 0) {
        goto fail;
    }
    bool empty = false;
    if (sq_lock_file(s, opts->create, &empty, err) < 0) {
        goto fail;
    }
    if (empty && !opts->create) {
        dpf_error_set(err, 404, "NotFound",
                      "store %s: the database is empty (0 bytes)", s->path);
        goto fail;
    }
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; "
             "PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=-%d; "
             "PRAGMA temp_store=MEMORY; PRAGMA journal_size_limit=%lld;",
             s->sync, s->cache_kib, (long long) s->wal_pages * 4096);
    int code = SQLITE_OK;
    s->writer.db = sq_open_db(s->path, s->busy_ms, pragmas, &code, err);
    if (!s->writer.db) {
        if ((code & 0xff) == SQLITE_NOTADB || (code & 0xff) == SQLITE_CORRUPT) {
            sq_set_damaged(s, err, sqlite3_errstr(code));
        }
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
    if (sq_setup_schema(s, opts->create, err) < 0) {
        goto fail;
    }
    sq_reserve_setup(s);
    /* A RESTART checkpoint holds the write lock while it waits for
     * readers: give up after SQ_CKPT_WAIT_MS rather than stall writers. */
    s->ckpt_db = sq_open_db(s->path, SQ_CKPT_WAIT_MS,
                            "PRAGMA wal_autocheckpoint=0;"
                            /* a first read attaches the connection to the
                             * WAL; until then checkpoints are no-ops */
                            "SELECT v FROM meta WHERE k = 'rv';",
                            NULL, err);
    if (!s->ckpt_db) {
        goto fail;
    }
    int trc = worker_start(&s->ckpt, "store-ckpt", sq_ckpt_main, s);
    if (trc < 0) {
        sq_set_eio(s, err, "start checkpoint thread", strerror(-trc));
        goto fail;
    }
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
    .health = sq_health,
};
