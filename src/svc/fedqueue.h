/*
 * The outbound federation queue (spec: Server-Server API "Transactions").
 * Every PDU and EDU for another server is written to the database
 * (store/fedqueue.c, schema 020) in the transaction that produced it, then
 * sent by one sender thread as PUT /_matrix/federation/v1/send/{txnId}
 * transactions of at most 50 PDUs and 100 EDUs, signed through
 * svc/fedclient. Per destination:
 *
 * - items go out in the order they were queued, one transaction in flight
 *   at a time; other destinations are served meanwhile (the requests run
 *   on fedclient's transfer thread), so a server that is down or slow
 *   never holds up the others;
 * - an item is deleted only when a transaction carrying it is answered
 *   with 2xx; until then the transaction is retried with the same ID and
 *   the same items (a receiver that processed it but whose answer was
 *   lost deduplicates it);
 * - any failure (no answer, 5xx, 429, and 4xx too, as Synapse keeps
 *   to-device messages until they are acknowledged) is logged and retried
 *   with exponential backoff: federation.retry_min_ms doubling up to
 *   federation.retry_max_ms. The backoff is stored, as are the items and
 *   the transaction counter, so a restart resumes where it stopped and
 *   never reuses a transaction ID. Nothing is ever dropped silently.
 *
 * Transaction IDs are "<ms at formation>.<per-destination counter>".
 */
#ifndef MYELIN_SVC_FEDQUEUE_H
#define MYELIN_SVC_FEDQUEUE_H

#include <stddef.h>
#include <stdint.h>

struct fedqueue;
struct fedclient;
struct store;
struct store_conn;

/* The largest transaction (spec: Server-Server API "Transactions"). */
#define FEDQUEUE_MAX_PDUS 50
#define FEDQUEUE_MAX_EDUS 100

/*
 * A queue sending as `server_name` (which must outlive it) through `fc`,
 * with the backoff bounds (retry_max_ms below retry_min_ms is raised to
 * it). Nothing runs until fedqueue_start.
 */
struct fedqueue *fedqueue_new(struct store *store, struct fedclient *fc, const char *server_name,
                              int64_t retry_min_ms, int64_t retry_max_ms);
/* Loads the destinations with queued items and starts the sender thread.
 * Returns 0 or a negative ERR_*. */
int fedqueue_start(struct fedqueue *q);
/* Stops the sender thread (items stay queued for the next start).
 * Transactions in flight are left to fedclient: call fedclient_stop
 * before fedqueue_free, so no answer arrives after it. NULL is ignored. */
void fedqueue_stop(struct fedqueue *q);
void fedqueue_free(struct fedqueue *q);

/*
 * Queue an EDU {edu_type, content} (content: JSON text of an object) for
 * `destination`, or a PDU (`pdu_json`, the PDU as sent over federation)
 * for each of `destinations`. Both write inside the caller's transaction
 * on `db`, which must be open (store_begin): the item exists exactly when
 * the caller's change does. After committing, the caller calls
 * fedqueue_wake for each destination; an item whose wake was missed (a
 * crash after the commit) is found by the sender's periodic scan.
 * Returns 0, -ERR_INVALID_PARAM when a destination is this server, or a
 * negative ERR_* from the store (roll back).
 */
int fedqueue_add_edu(struct fedqueue *q, struct store_conn *db, const char *destination,
                     const char *edu_type, const char *content_json);
int fedqueue_add_pdu(struct fedqueue *q, struct store_conn *db, const char *const *destinations,
                     size_t n, const char *event_id, const char *pdu_json);

/* Tells the sender that `destination` has new items (after the commit). */
void fedqueue_wake(struct fedqueue *q, const char *destination);

/* Tells the sender that `destination` is reachable again (it sent us a
 * request): its backoff is reset and its items are sent at once. */
void fedqueue_destination_up(struct fedqueue *q, const char *destination);

#endif
