/*
 * The outbound federation queue: destinations in memory, items in the
 * database, one sender thread (see fedqueue.h).
 *
 * The sender thread owns a database connection and does all the SQL and
 * JSON work; fedclient's transfer thread only records each answer in the
 * destination and wakes the sender (fedclient callbacks must be short).
 * Everything in `struct dest` is guarded by the queue's mutex, except what
 * only the sender thread touches while the destination is not in flight.
 */
#include "svc/fedqueue.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/log.h"
#include "base/map.h"
#include "base/str.h"
#include "base/xmalloc.h"
#include "http/req.h"
#include "store/store.h"
#include "svc/fedclient.h"

/* A transaction stops growing past this many bytes of items (it always
 * carries at least one), so a queue of large to-device messages does not
 * become one request receivers refuse for its size. */
#define TXN_SOFT_BYTES (4u << 20)
/* How long one transaction may take (send and answer). */
#define TXN_TIMEOUT_MS 60000
/* How often the database is scanned for items whose wake-up was missed. */
#define SCAN_INTERVAL_MS 60000
#define TXN_ID_MAX 48

struct dest {
    struct fedqueue *q;
    char *name;
    bool has_work;      /* items may be queued */
    uint64_t gen;       /* bumped by each wake, so a wake during a read is not lost */
    bool inflight;      /* a transaction is out */
    bool answered;      /* ... and its answer is below, for the sender */
    long status;
    int err;
    char *body;
    size_t len;
    int64_t retry_ms;   /* current backoff, 0: healthy */
    int64_t retry_at;   /* wall-clock ms before which nothing is sent */
    int failures;       /* in a row */
    char txn_id[TXN_ID_MAX]; /* the transaction out or being retried */
    size_t txn_items;
};

struct fedqueue {
    struct store *store;
    struct fedclient *fc;
    const char *server_name;
    int64_t retry_min_ms, retry_max_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    struct map dests;  /* name -> struct dest */
    bool stopping;
    bool started;
    pthread_t thread;
    struct store_conn *db; /* the sender thread's */
};

struct fedqueue *fedqueue_new(struct store *store, struct fedclient *fc, const char *server_name,
                              int64_t retry_min_ms, int64_t retry_max_ms)
{
    struct fedqueue *q = xcalloc(1, sizeof(*q));
    q->store = store;
    q->fc = fc;
    q->server_name = server_name;
    q->retry_min_ms = retry_min_ms > 0 ? retry_min_ms : 1000;
    q->retry_max_ms = retry_max_ms > q->retry_min_ms ? retry_max_ms : q->retry_min_ms;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &attr);
    pthread_condattr_destroy(&attr);
    map_init(&q->dests);
    return q;
}

/* The destination's entry, created when `create`; call under q->mu. */
static struct dest *dest_get(struct fedqueue *q, const char *name, bool create)
{
    struct dest *d = map_get(&q->dests, str_from(name));
    if (!d && create) {
        d = xcalloc(1, sizeof(*d));
        d->q = q;
        d->name = xstrdup(name);
        map_put(&q->dests, str_from(d->name), d);
    }
    return d;
}

/* ---- adding ---- */

int fedqueue_add_edu(struct fedqueue *q, struct store_conn *db, const char *destination,
                     const char *edu_type, const char *content_json)
{
    if (strcmp(destination, q->server_name) == 0) {
        return -ERR_INVALID_PARAM;
    }
    return store_fedqueue_add(db, destination, edu_type, NULL, content_json, req_now_ms());
}

int fedqueue_add_pdu(struct fedqueue *q, struct store_conn *db, const char *const *destinations,
                     size_t n, const char *event_id, const char *pdu_json)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(destinations[i], q->server_name) == 0) {
            return -ERR_INVALID_PARAM; /* before anything is written */
        }
    }
    int64_t now = req_now_ms();
    for (size_t i = 0; i < n; i++) {
        int rc = store_fedqueue_add(db, destinations[i], NULL, event_id, pdu_json, now);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

void fedqueue_wake(struct fedqueue *q, const char *destination)
{
    pthread_mutex_lock(&q->mu);
    struct dest *d = dest_get(q, destination, true);
    d->has_work = true;
    d->gen++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void fedqueue_destination_up(struct fedqueue *q, const char *destination)
{
    pthread_mutex_lock(&q->mu);
    struct dest *d = dest_get(q, destination, false);
    if (d && d->retry_ms) {
        d->retry_ms = 0;
        d->retry_at = 0;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
}

/* ---- sending ---- */

/* fedclient's callback, on its transfer thread: record and wake. */
static void on_answer(void *ctx, struct fed_resp *resp)
{
    struct dest *d = ctx;
    struct fedqueue *q = d->q;
    pthread_mutex_lock(&q->mu);
    d->status = resp->status;
    d->err = resp->err;
    d->body = resp->body;
    d->len = resp->len;
    resp->body = NULL;
    d->answered = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Backs the destination off after a failure described by `why`, keeping
 * its items, and stores the backoff. */
static void failed(struct fedqueue *q, struct dest *d, const char *why)
{
    int64_t now = req_now_ms();
    pthread_mutex_lock(&q->mu);
    d->retry_ms = d->retry_ms ? d->retry_ms * 2 : q->retry_min_ms;
    if (d->retry_ms > q->retry_max_ms) {
        d->retry_ms = q->retry_max_ms;
    }
    d->retry_at = now + d->retry_ms;
    d->failures++;
    int64_t retry_ms = d->retry_ms, retry_at = d->retry_at;
    int failures = d->failures;
    pthread_mutex_unlock(&q->mu);
    LOG_WARN("fedqueue", "transaction %s to %s failed (%s); its %zu items stay queued, "
             "attempt %d, next in %lld ms",
             d->txn_id[0] ? d->txn_id : "-", d->name, why, d->txn_items, failures,
             (long long)retry_ms);
    if (store_fedqueue_retry_set(q->db, d->name, retry_ms, retry_at) < 0) {
        LOG_ERROR("fedqueue", "cannot store the backoff of %s", d->name);
    }
}

/*
 * Picks the destination's next transaction: the one already formed (its
 * items carry its ID) or a new one of the first items in order, within the
 * spec's limits. Returns the number of items (0: none queued) with their
 * array in *items, or a negative ERR_*.
 */
static int pick(struct fedqueue *q, struct dest *d, struct arena *a,
                struct store_fedqueue_item **items, char *txn_id)
{
    size_t n = 0;
    int rc = store_fedqueue_head(q->db, a, d->name, FEDQUEUE_MAX_PDUS + FEDQUEUE_MAX_EDUS,
                                 items, &n);
    if (rc < 0 || n == 0) {
        return rc;
    }
    struct store_fedqueue_item *it = *items;
    size_t k = 0;
    if (it[0].txn_id) {
        /* A transaction formed before (maybe before a restart): again,
         * with the same ID and items. */
        while (k < n && it[k].txn_id && strcmp(it[k].txn_id, it[0].txn_id) == 0) {
            k++;
        }
        snprintf(txn_id, TXN_ID_MAX, "%s", it[0].txn_id);
        return (int)k;
    }
    size_t pdus = 0, edus = 0, bytes = 0;
    for (; k < n && !it[k].txn_id; k++) {
        size_t *count = it[k].is_pdu ? &pdus : &edus;
        size_t len = strlen(it[k].json);
        if (*count == (it[k].is_pdu ? FEDQUEUE_MAX_PDUS : FEDQUEUE_MAX_EDUS) ||
            (k > 0 && bytes + len > TXN_SOFT_BYTES)) {
            break; /* the next one waits, keeping the order */
        }
        (*count)++;
        bytes += len;
    }
    int64_t counter = 0;
    rc = store_begin(q->db);
    if (rc == 0) {
        rc = store_fedqueue_next_txn(q->db, d->name, &counter);
        if (rc == 0) {
            snprintf(txn_id, TXN_ID_MAX, "%lld.%lld", (long long)req_now_ms(),
                     (long long)counter);
            rc = store_fedqueue_assign(q->db, d->name, it[k - 1].seq, txn_id);
        }
        rc = store_end(q->db, rc);
    }
    return rc < 0 ? rc : (int)k;
}

/* Builds and sends the destination's next transaction, or notes that it
 * has nothing queued. */
static void send_next(struct fedqueue *q, struct dest *d)
{
    pthread_mutex_lock(&q->mu);
    uint64_t gen = d->gen;
    pthread_mutex_unlock(&q->mu);

    struct arena a;
    arena_init(&a);
    struct store_fedqueue_item *items = NULL;
    char txn_id[TXN_ID_MAX];
    int n = pick(q, d, &a, &items, txn_id);
    if (n <= 0) {
        if (n < 0) {
            d->txn_id[0] = '\0';
            d->txn_items = 0;
            failed(q, d, "database error");
        } else {
            pthread_mutex_lock(&q->mu);
            if (d->gen == gen) {
                d->has_work = false;
            }
            pthread_mutex_unlock(&q->mu);
        }
        arena_release(&a);
        return;
    }
    json_t *pdus = json_array(), *edus = json_array();
    for (int i = 0; i < n; i++) {
        json_t *v = json_loads(items[i].json, 0, NULL);
        if (!v) {
            /* Cannot happen for what fedqueue_add_* stored; say so rather
             * than block the destination for ever. */
            LOG_ERROR("fedqueue", "queued %s %s for %s is not JSON; sent without it",
                      items[i].is_pdu ? "PDU" : "EDU",
                      items[i].is_pdu ? (items[i].event_id ? items[i].event_id : "?")
                                      : items[i].edu_type,
                      d->name);
            continue;
        }
        if (items[i].is_pdu) {
            json_array_append_new(pdus, v);
        } else {
            json_array_append_new(edus, json_pack("{s:s,s:o}", "edu_type", items[i].edu_type,
                                                  "content", v));
        }
    }
    json_t *body = json_pack("{s:s,s:I,s:o,s:o}", "origin", q->server_name, "origin_server_ts",
                             (json_int_t)req_now_ms(), "pdus", pdus, "edus", edus);
    char uri[TXN_ID_MAX * 3 + 64];
    snprintf(uri, sizeof(uri), "/_matrix/federation/v1/send/%s",
             str_percent_encode(&a, txn_id));
    LOG_DEBUG("fedqueue", "sending transaction %s to %s: %zu PDUs, %zu EDUs", txn_id, d->name,
              json_array_size(pdus), json_array_size(edus));
    pthread_mutex_lock(&q->mu);
    d->inflight = true;
    d->answered = false;
    snprintf(d->txn_id, sizeof(d->txn_id), "%s", txn_id);
    d->txn_items = (size_t)n;
    pthread_mutex_unlock(&q->mu);
    /* May answer at once (a stopped client) on this thread: no lock held. */
    fedclient_send(q->fc, d->name, "PUT", uri, body, true, TXN_TIMEOUT_MS, on_answer, d);
    json_decref(body);
    arena_release(&a);
}

/* Logs the per-PDU errors a receiver may report in its 200 answer. */
static void log_pdu_errors(const struct dest *d, const char *body, size_t len)
{
    json_t *resp = body ? json_loadb(body, len, 0, NULL) : NULL;
    const char *event_id;
    json_t *result;
    json_object_foreach(json_object_get(resp, "pdus"), event_id, result)
    {
        const char *error = json_string_value(json_object_get(result, "error"));
        if (error) {
            LOG_WARN("fedqueue", "%s refused %s: %.200s", d->name, event_id, error);
        }
    }
    json_decref(resp);
}

/* Handles the answer to the destination's transaction in flight. */
static void on_result(struct fedqueue *q, struct dest *d)
{
    pthread_mutex_lock(&q->mu);
    long status = d->status;
    int err = d->err;
    char *body = d->body;
    size_t len = d->len;
    d->body = NULL;
    d->answered = false;
    d->inflight = false;
    bool stopping = q->stopping;
    pthread_mutex_unlock(&q->mu);

    if (err == 0 && status >= 200 && status < 300) {
        log_pdu_errors(d, body, len);
        int rc = store_begin(q->db);
        if (rc == 0) {
            rc = store_fedqueue_ack(q->db, d->name, d->txn_id);
            if (rc == 0 && d->retry_ms) {
                rc = store_fedqueue_retry_set(q->db, d->name, 0, 0);
            }
            rc = store_end(q->db, rc);
        }
        if (rc < 0) {
            /* The items stay and go out again under the same ID, which
             * the receiver recognises. */
            failed(q, d, "cannot delete the acknowledged items");
        } else {
            if (d->failures) {
                LOG_INFO("fedqueue", "%s is reachable again after %d failed attempts", d->name,
                         d->failures);
            }
            pthread_mutex_lock(&q->mu);
            d->retry_ms = 0;
            d->retry_at = 0;
            d->failures = 0;
            d->has_work = true; /* look for more */
            d->txn_id[0] = '\0';
            d->txn_items = 0;
            pthread_mutex_unlock(&q->mu);
        }
    } else if (!stopping) {
        char why[160];
        if (status) {
            json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
            const char *code = json_string_value(json_object_get(j, "errcode"));
            snprintf(why, sizeof(why), "HTTP %ld%s%s", status, code ? " " : "",
                     code ? code : "");
            json_decref(j);
        } else {
            snprintf(why, sizeof(why), "%s", err_message(err ? err : -ERR_UNAVAILABLE));
        }
        failed(q, d, why);
    }
    free(body);
}

/* Marks every destination with queued items as having work (start-up and
 * the periodic scan for wake-ups missed). */
static int scan(struct fedqueue *q, bool with_backoff)
{
    struct arena a;
    arena_init(&a);
    struct store_fedqueue_dest *rows = NULL;
    size_t n = 0;
    int rc = store_fedqueue_dests(q->db, &a, &rows, &n);
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct dest *d = dest_get(q, rows[i].destination, true);
        d->has_work = true;
        if (with_backoff) {
            d->retry_ms = rows[i].retry_ms;
            d->retry_at = rows[i].retry_at;
        }
    }
    pthread_mutex_unlock(&q->mu);
    arena_release(&a);
    return rc;
}

static void *sender_main(void *arg)
{
    struct fedqueue *q = arg;
    struct dest **work = NULL;
    bool *answered = NULL; /* work[i] has an answer to handle (else: send) */
    size_t cap = 0;
    int64_t next_scan = req_now_ms() + SCAN_INTERVAL_MS;
    pthread_mutex_lock(&q->mu);
    while (!q->stopping) {
        int64_t now = req_now_ms();
        int64_t wait_ms = next_scan - now;
        size_t n = 0;
        if (cap < q->dests.count) {
            cap = q->dests.count * 2;
            work = xrealloc(work, cap * sizeof(*work));
            answered = xrealloc(answered, cap * sizeof(*answered));
        }
        const struct map_entry *e;
        for (size_t i = 0; map_next(&q->dests, &i, &e);) {
            struct dest *d = e->value;
            if (d->answered || (!d->inflight && d->has_work && d->retry_at <= now)) {
                answered[n] = d->answered;
                work[n++] = d;
            } else if (!d->inflight && d->has_work) {
                if (d->retry_at - now < wait_ms) {
                    wait_ms = d->retry_at - now;
                }
            }
        }
        bool scan_now = now >= next_scan;
        if (n == 0 && !scan_now) {
            int64_t at = req_now_ns() + (wait_ms > 0 ? wait_ms : 1) * 1000000LL;
            struct timespec ts = {.tv_sec = (time_t)(at / 1000000000LL),
                                  .tv_nsec = (long)(at % 1000000000LL)};
            pthread_cond_timedwait(&q->cv, &q->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&q->mu);
        if (scan_now) {
            if (scan(q, false) < 0) {
                LOG_ERROR("fedqueue", "cannot scan the queue");
            }
            next_scan = now + SCAN_INTERVAL_MS;
        }
        for (size_t i = 0; i < n; i++) {
            if (answered[i]) {
                on_result(q, work[i]);
            } else {
                send_next(q, work[i]);
            }
        }
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    free(work);
    free(answered);
    return NULL;
}

/* ---- lifecycle ---- */

int fedqueue_start(struct fedqueue *q)
{
    int rc = store_conn_open(q->store, &q->db);
    if (rc == 0) {
        rc = scan(q, true);
    }
    if (rc == 0 && pthread_create(&q->thread, NULL, sender_main, q) != 0) {
        rc = -ERR_NOMEM;
    }
    if (rc) {
        LOG_ERROR("fedqueue", "cannot start the federation sender");
        return rc;
    }
    q->started = true;
    LOG_INFO("fedqueue", "federation sender started (%zu destinations with queued items)",
             q->dests.count);
    return 0;
}

void fedqueue_stop(struct fedqueue *q)
{
    if (!q || !q->started) {
        return;
    }
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    q->started = false;
}

void fedqueue_free(struct fedqueue *q)
{
    if (!q) {
        return;
    }
    fedqueue_stop(q);
    const struct map_entry *e;
    for (size_t i = 0; map_next(&q->dests, &i, &e);) {
        struct dest *d = e->value;
        free(d->body);
        free(d->name);
        free(d);
    }
    map_release(&q->dests);
    if (q->db) {
        store_conn_close(q->db);
    }
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
