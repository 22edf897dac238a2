/*
 * Outbound federation over libcurl's multi interface (see fedclient.h).
 *
 * Threads: the transfer thread owns the CURLM handle and every easy
 * handle; it sleeps in curl_multi_poll and is woken with
 * curl_multi_wakeup when a request is queued. The resolver thread takes
 * requests whose destination is not in the cache, runs the discovery
 * steps (blocking well-known fetches and SRV queries are fine there) and
 * passes them on. The cache maps server names to targets with an expiry,
 * under the client's mutex.
 */
#include "svc/fedclient.h"

#include <arpa/nameser.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "base/map.h"
#include "base/str.h"
#include "base/xmalloc.h"
#include "core/xmatrix.h"
#include "http/req.h"
#include "svc/srv.h"

#define DEFAULT_TIMEOUT_MS 60000
#define CONNECT_TIMEOUT_MS 10000
#define DEFAULT_MAX_RESPONSE (64u << 20)
/* A well-known answer is a few bytes; anything big is not one. */
#define WELLKNOWN_MAX_BYTES (64u << 10)
#define WELLKNOWN_TIMEOUT_MS 10000
#define WELLKNOWN_MAX_REDIRECTS 5
#define USER_AGENT "Myelin"

struct fed_call {
    struct fedclient *fc;
    char *dest, *method, *uri;
    char *body; /* JSON text or NULL */
    size_t body_len;
    char *auth; /* Authorization header value or NULL */
    int timeout_ms;
    fed_done_fn *done;
    void *ctx;
    struct fed_target target;
    CURL *easy;
    struct curl_slist *headers, *connect_to;
    struct buf resp;
    bool too_large;
    struct fed_call *next;                     /* queue link */
    struct fed_call *active_prev, *active_next; /* in flight (transfer thread) */
};

struct cached {
    struct fed_target target;
    char name[]; /* the map key points here */
};

struct fedclient {
    const char *server_name;
    const struct signing_key *key;
    bool verify_tls;
    char *extra_ca;
    size_t max_response;

    pthread_mutex_t mu;
    pthread_cond_t resolve_cv;
    struct fed_call *incoming, *incoming_tail; /* for the transfer thread */
    struct fed_call *to_resolve, *to_resolve_tail;
    bool stop;
    struct map cache; /* server name -> struct cached */

    CURLM *multi;
    struct fed_call *active; /* in flight; the transfer thread's alone */
    pthread_t transfer_thread, resolve_thread;
    bool threads_started;
};

/* ---- calls ---- */

static void call_free(struct fed_call *c)
{
    if (c->easy) {
        curl_easy_cleanup(c->easy);
    }
    curl_slist_free_all(c->headers);
    curl_slist_free_all(c->connect_to);
    buf_release(&c->resp);
    free(c->dest);
    free(c->method);
    free(c->uri);
    free(c->body);
    free(c->auth);
    free(c);
}

static void call_finish(struct fed_call *c, long status, int err)
{
    struct fed_resp resp = {.status = status, .err = err};
    if (!err && c->resp.len) {
        buf_append(&c->resp, "", 1); /* NUL */
        resp.len = c->resp.len - 1;
        resp.body = c->resp.p;
        c->resp = (struct buf)BUF_INIT;
    }
    c->done(c->ctx, &resp);
    free(resp.body);
    call_free(c);
}

static void push(struct fed_call **head, struct fed_call **tail, struct fed_call *c)
{
    c->next = NULL;
    if (*tail) {
        (*tail)->next = c;
    } else {
        *head = c;
    }
    *tail = c;
}

/* ---- TLS ---- */

/* Adds federation.extra_ca_file to the trust store curl built from the
 * system CAs. */
static CURLcode add_extra_ca(CURL *easy, void *ssl_ctx, void *arg)
{
    (void)easy;
    const char *path = arg;
    X509_STORE *store = SSL_CTX_get_cert_store(ssl_ctx);
    if (!store || X509_STORE_load_file(store, path) != 1) {
        LOG_WARN("fedclient", "cannot load extra CA file %s", path);
    }
    return CURLE_OK;
}

static void tls_options(struct fedclient *fc, CURL *e)
{
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, fc->verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, fc->verify_tls ? 2L : 0L);
    if (fc->verify_tls && fc->extra_ca) {
        curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, add_extra_ca);
        curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, fc->extra_ca);
    }
}

/* ---- answers ---- */

struct sink {
    struct buf *b;
    size_t limit;
    bool *too_large;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t len = size * n;
    if (s->b->len + len > s->limit) {
        *s->too_large = true;
        return 0; /* aborts the transfer */
    }
    buf_append(s->b, p, len);
    return len;
}

static size_t on_call_data(char *p, size_t size, size_t n, void *arg)
{
    struct fed_call *c = arg;
    struct sink s = {&c->resp, c->fc->max_response, &c->too_large};
    return on_data(p, size, n, &s);
}

/* ---- the transfer thread ---- */

static void start_transfer(struct fedclient *fc, struct fed_call *c)
{
    CURL *e = curl_easy_init();
    if (!e) {
        call_finish(c, 0, -ERR_NOMEM);
        return;
    }
    c->easy = e;
    char url[FED_NAME_MAX * 2 + 16];
    snprintf(url, sizeof(url), "https://%s:%d", c->target.tls_name, c->target.port);
    size_t url_len = strlen(url) + strlen(c->uri) + 1;
    char *full = xmalloc(url_len);
    snprintf(full, url_len, "%s%s", url, c->uri);
    curl_easy_setopt(e, CURLOPT_URL, full);
    free(full);
    if (c->target.connect_host[0]) {
        char map[FED_NAME_MAX * 2 + 32];
        snprintf(map, sizeof(map), "%s:%d:%s:%d", c->target.tls_name, c->target.port,
                 c->target.connect_host, c->target.connect_port);
        c->connect_to = curl_slist_append(NULL, map);
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, c->connect_to);
    }
    char line[FED_NAME_MAX + 16];
    snprintf(line, sizeof(line), "Host: %s", c->target.host_header);
    c->headers = curl_slist_append(c->headers, line);
    if (c->auth) {
        size_t n = strlen(c->auth) + 32;
        char *h = xmalloc(n);
        snprintf(h, n, "Authorization: %s", c->auth);
        c->headers = curl_slist_append(c->headers, h);
        free(h);
    }
    if (c->body) {
        c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    }
    c->headers = curl_slist_append(c->headers, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    if (strcmp(c->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
    }
    curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(c->timeout_ms < CONNECT_TIMEOUT_MS ? c->timeout_ms
                                                               : CONNECT_TIMEOUT_MS));
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_call_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    tls_options(fc, e);
    if (curl_multi_add_handle(fc->multi, e) != CURLM_OK) {
        call_finish(c, 0, -ERR_UNAVAILABLE);
        return;
    }
    c->active_next = fc->active;
    if (fc->active) {
        fc->active->active_prev = c;
    }
    fc->active = c;
}

static void unlink_active(struct fedclient *fc, struct fed_call *c)
{
    if (c->active_prev) {
        c->active_prev->active_next = c->active_next;
    } else {
        fc->active = c->active_next;
    }
    if (c->active_next) {
        c->active_next->active_prev = c->active_prev;
    }
    curl_multi_remove_handle(fc->multi, c->easy);
}

static void *transfer_main(void *arg)
{
    struct fedclient *fc = arg;
    for (;;) {
        pthread_mutex_lock(&fc->mu);
        struct fed_call *batch = fc->incoming;
        fc->incoming = fc->incoming_tail = NULL;
        bool stop = fc->stop;
        pthread_mutex_unlock(&fc->mu);
        while (batch) {
            struct fed_call *c = batch;
            batch = c->next;
            if (stop) {
                call_finish(c, 0, -ERR_UNAVAILABLE);
            } else {
                start_transfer(fc, c);
            }
        }
        if (stop) {
            break;
        }
        int running = 0;
        curl_multi_perform(fc->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(fc->multi, &left))) {
            if (m->msg != CURLMSG_DONE) {
                continue;
            }
            struct fed_call *c = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            CURLcode res = m->data.result;
            unlink_active(fc, c);
            long status = 0;
            curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
            if (res != CURLE_OK) {
                LOG_DEBUG("fedclient", "%s %s%s: %s", c->method, c->dest, c->uri,
                          curl_easy_strerror(res));
            }
            call_finish(c, res == CURLE_OK ? status : 0,
                        res == CURLE_OK ? 0 : c->too_large ? -ERR_TOO_LARGE : -ERR_UNAVAILABLE);
        }
        curl_multi_poll(fc->multi, NULL, 0, 1000, NULL);
    }
    /* Whatever is still in flight ends now. */
    while (fc->active) {
        struct fed_call *c = fc->active;
        unlink_active(fc, c);
        call_finish(c, 0, -ERR_UNAVAILABLE);
    }
    return NULL;
}

/* ---- discovery lookups ---- */

struct header_sink {
    int64_t max_age_ms; /* -1 when none seen */
};

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct header_sink *h = arg;
    size_t len = size * n;
    if (len > 14 && strncasecmp(p, "cache-control:", 14) == 0) {
        char line[512];
        size_t l = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
        memcpy(line, p, l);
        line[l] = '\0';
        const char *ma = strcasestr(line, "max-age=");
        if (ma) {
            h->max_age_ms = strtoll(ma + 8, NULL, 10) * 1000;
        }
        if (strcasestr(line, "no-store") || strcasestr(line, "no-cache")) {
            h->max_age_ms = 0;
        }
    }
    return len;
}

/* GET https://<host>/.well-known/matrix/server (fed_wellknown_fn). */
static int wellknown(void *ctx, const char *hostname, char delegated[FED_NAME_MAX],
                     int64_t *cache_ms)
{
    struct fedclient *fc = ctx;
    *cache_ms = FED_WELLKNOWN_ERROR_MS;
    CURL *e = curl_easy_init();
    if (!e) {
        return 0;
    }
    char url[FED_NAME_MAX + 64];
    snprintf(url, sizeof(url), "https://%s/.well-known/matrix/server", hostname);
    struct buf b = BUF_INIT;
    bool too_large = false;
    struct sink s = {&b, WELLKNOWN_MAX_BYTES, &too_large};
    struct header_sink hs = {-1};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)WELLKNOWN_MAX_REDIRECTS);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)WELLKNOWN_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &hs);
    tls_options(fc, e);
    CURLcode res = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    int found = 0;
    if (res == CURLE_OK && status == 200) {
        json_t *j = json_loadb(b.p ? b.p : "", b.len, 0, NULL);
        const char *m = json_is_object(j) ? json_string_value(json_object_get(j, "m.server"))
                                          : NULL;
        if (m && strlen(m) < FED_NAME_MAX) {
            snprintf(delegated, FED_NAME_MAX, "%s", m);
            found = 1;
            *cache_ms = hs.max_age_ms >= 0 ? hs.max_age_ms : FED_WELLKNOWN_DEFAULT_MS;
        }
        json_decref(j);
    }
    buf_release(&b);
    return found;
}

/* An SRV lookup with the system resolver (fed_srv_fn): the lowest
 * priority, then the highest weight. */
static int srv_lookup(void *ctx, const char *name, char target[FED_NAME_MAX], int *port)
{
    (void)ctx;
    unsigned char answer[4096];
    struct __res_state rs;
    memset(&rs, 0, sizeof(rs));
    if (res_ninit(&rs) != 0) {
        return 0;
    }
    int len = res_nquery(&rs, name, ns_c_in, ns_t_srv, answer, sizeof(answer));
    int found = 0;
    ns_msg msg;
    if (len > 0 && ns_initparse(answer, len, &msg) == 0) {
        int best_prio = 1 << 17, best_weight = -1;
        int count = ns_msg_count(msg, ns_s_an);
        for (int i = 0; i < count; i++) {
            ns_rr rr;
            if (ns_parserr(&msg, ns_s_an, i, &rr) != 0 || ns_rr_type(rr) != ns_t_srv ||
                ns_rr_rdlen(rr) < 7) {
                continue;
            }
            const unsigned char *rd = ns_rr_rdata(rr);
            int prio = ns_get16(rd), weight = ns_get16(rd + 2), p = ns_get16(rd + 4);
            char host[NS_MAXDNAME];
            if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 6, host, sizeof(host)) < 0 ||
                strlen(host) >= FED_NAME_MAX || !host[0] || strcmp(host, ".") == 0) {
                continue;
            }
            if (prio < best_prio || (prio == best_prio && weight > best_weight)) {
                best_prio = prio;
                best_weight = weight;
                memcpy(target, host, strlen(host) + 1); /* checked shorter above */
                *port = p;
                found = 1;
            }
        }
    }
    res_nclose(&rs);
    return found;
}

/* ---- the cache and the resolver thread ---- */

static bool cache_get(struct fedclient *fc, const char *name, struct fed_target *out)
{
    bool hit = false;
    pthread_mutex_lock(&fc->mu);
    struct cached *c = map_get(&fc->cache, str_from(name));
    if (c && c->target.expires_ms > req_now_ms()) {
        *out = c->target;
        hit = true;
    }
    pthread_mutex_unlock(&fc->mu);
    return hit;
}

static void cache_put(struct fedclient *fc, const char *name, const struct fed_target *t)
{
    size_t n = strlen(name);
    struct cached *c = xmalloc(sizeof(*c) + n + 1);
    c->target = *t;
    memcpy(c->name, name, n + 1);
    pthread_mutex_lock(&fc->mu);
    free(map_put(&fc->cache, str_from(c->name), c));
    pthread_mutex_unlock(&fc->mu);
}

int fedclient_resolve(struct fedclient *fc, const char *destination, struct fed_target *out)
{
    if (cache_get(fc, destination, out)) {
        return 0;
    }
    struct fed_lookups lk = {wellknown, srv_lookup, fc};
    int rc = fed_resolve(destination, &lk, req_now_ms(), out);
    if (rc == 0) {
        cache_put(fc, destination, out);
    }
    return rc;
}

static void to_transfer(struct fedclient *fc, struct fed_call *c)
{
    pthread_mutex_lock(&fc->mu);
    bool stop = fc->stop;
    if (!stop) {
        push(&fc->incoming, &fc->incoming_tail, c);
    }
    pthread_mutex_unlock(&fc->mu);
    if (stop) {
        call_finish(c, 0, -ERR_UNAVAILABLE);
    } else {
        curl_multi_wakeup(fc->multi);
    }
}

static void *resolve_main(void *arg)
{
    struct fedclient *fc = arg;
    pthread_mutex_lock(&fc->mu);
    for (;;) {
        while (!fc->stop && !fc->to_resolve) {
            pthread_cond_wait(&fc->resolve_cv, &fc->mu);
        }
        struct fed_call *c = fc->to_resolve;
        if (!c) {
            break; /* stopping with nothing left */
        }
        fc->to_resolve = c->next;
        if (!fc->to_resolve) {
            fc->to_resolve_tail = NULL;
        }
        bool stop = fc->stop;
        pthread_mutex_unlock(&fc->mu);
        int rc = stop ? -ERR_UNAVAILABLE : fedclient_resolve(fc, c->dest, &c->target);
        if (rc < 0) {
            call_finish(c, 0, rc);
        } else {
            to_transfer(fc, c);
        }
        pthread_mutex_lock(&fc->mu);
    }
    pthread_mutex_unlock(&fc->mu);
    return NULL;
}

/* ---- public ---- */

struct fedclient *fedclient_new(const char *server_name, const struct signing_key *key,
                                bool verify_tls, const char *extra_ca_file)
{
    struct fedclient *fc = xcalloc(1, sizeof(*fc));
    fc->server_name = server_name;
    fc->key = key;
    fc->verify_tls = verify_tls;
    fc->extra_ca = extra_ca_file ? xstrdup(extra_ca_file) : NULL;
    fc->max_response = DEFAULT_MAX_RESPONSE;
    pthread_mutex_init(&fc->mu, NULL);
    pthread_cond_init(&fc->resolve_cv, NULL);
    map_init(&fc->cache);
    fc->multi = curl_multi_init();
    if (!fc->multi) {
        fedclient_free(fc);
        return NULL;
    }
    curl_multi_setopt(fc->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    if (pthread_create(&fc->transfer_thread, NULL, transfer_main, fc) != 0) {
        fedclient_free(fc);
        return NULL;
    }
    if (pthread_create(&fc->resolve_thread, NULL, resolve_main, fc) != 0) {
        pthread_mutex_lock(&fc->mu);
        fc->stop = true;
        pthread_mutex_unlock(&fc->mu);
        curl_multi_wakeup(fc->multi);
        pthread_join(fc->transfer_thread, NULL);
        curl_multi_cleanup(fc->multi);
        fc->multi = NULL;
        fedclient_free(fc);
        return NULL;
    }
    fc->threads_started = true;
    return fc;
}

void fedclient_stop(struct fedclient *fc)
{
    if (!fc || !fc->threads_started) {
        return;
    }
    pthread_mutex_lock(&fc->mu);
    fc->stop = true;
    pthread_cond_broadcast(&fc->resolve_cv);
    pthread_mutex_unlock(&fc->mu);
    pthread_join(fc->resolve_thread, NULL);
    curl_multi_wakeup(fc->multi);
    pthread_join(fc->transfer_thread, NULL);
    fc->threads_started = false;
}

void fedclient_free(struct fedclient *fc)
{
    if (!fc) {
        return;
    }
    fedclient_stop(fc);
    if (fc->multi) {
        curl_multi_cleanup(fc->multi);
    }
    for (size_t i = 0; true;) {
        const struct map_entry *e;
        if (!map_next(&fc->cache, &i, &e)) {
            break;
        }
        free(e->value);
    }
    map_release(&fc->cache);
    pthread_cond_destroy(&fc->resolve_cv);
    pthread_mutex_destroy(&fc->mu);
    free(fc->extra_ca);
    free(fc);
}

void fedclient_set_max_response(struct fedclient *fc, size_t bytes) { fc->max_response = bytes; }

void fedclient_send(struct fedclient *fc, const char *destination, const char *method,
                    const char *uri, const json_t *body, bool sign, int timeout_ms,
                    fed_done_fn *done, void *ctx)
{
    struct fed_call *c = xcalloc(1, sizeof(*c));
    c->fc = fc;
    c->dest = xstrdup(destination);
    c->method = xstrdup(method);
    c->uri = xstrdup(uri);
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    c->done = done;
    c->ctx = ctx;
    c->resp = (struct buf)BUF_INIT;
    if (body) {
        c->body = json_dumps(body, JSON_COMPACT);
        c->body_len = c->body ? strlen(c->body) : 0;
    }
    if (sign) {
        struct arena a;
        arena_init(&a);
        char *h = xmatrix_sign(&a, fc->key, fc->server_name, destination, method, uri, body);
        c->auth = h ? xstrdup(h) : NULL;
        arena_release(&a);
    }
    if ((body && !c->body) || (sign && !c->auth)) {
        call_finish(c, 0, -ERR_BAD_JSON);
        return;
    }
    if (cache_get(fc, destination, &c->target)) {
        to_transfer(fc, c);
        return;
    }
    pthread_mutex_lock(&fc->mu);
    bool stop = fc->stop;
    if (!stop) {
        push(&fc->to_resolve, &fc->to_resolve_tail, c);
        pthread_cond_signal(&fc->resolve_cv);
    }
    pthread_mutex_unlock(&fc->mu);
    if (stop) {
        call_finish(c, 0, -ERR_UNAVAILABLE);
    }
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    struct fed_resp resp;
};

static void wake(void *ctx, struct fed_resp *resp)
{
    struct waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->resp = *resp;
    resp->body = NULL; /* kept */
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int fedclient_call(struct fedclient *fc, const char *destination, const char *method,
                   const char *uri, const json_t *body, bool sign, int timeout_ms,
                   struct fed_resp *resp)
{
    struct waiter w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    fedclient_send(fc, destination, method, uri, body, sign, timeout_ms, wake, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done) {
        pthread_cond_wait(&w.cv, &w.mu);
    }
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    *resp = w.resp;
    return resp->err;
}

void fed_resp_release(struct fed_resp *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
}

json_t *fed_resp_json(const struct fed_resp *resp)
{
    if (!resp->body) {
        return NULL;
    }
    json_t *j = json_loadb(resp->body, resp->len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- parked requests ---- */

struct parked {
    struct req *r;
    int (*cont)(struct req *r);
};

static void resume(void *ctx, struct fed_resp *resp)
{
    struct parked *p = ctx;
    struct req *r = p->r;
    struct fed_resp *copy = arena_alloc(&r->arena, sizeof(*copy));
    *copy = *resp;
    copy->body = resp->body ? arena_strndup(&r->arena, resp->body, resp->len) : NULL;
    r->cont_data = copy;
    req_continue(r, p->cont);
}

int fedclient_park(struct req *r, const char *destination, const char *method,
                   const char *uri, const json_t *body, int timeout_ms,
                   int (*cont)(struct req *r))
{
    struct parked *p = arena_alloc(&r->arena, sizeof(*p));
    p->r = r;
    p->cont = cont;
    req_park(r);
    fedclient_send(r->srv->fed, destination, method, uri, body, true, timeout_ms, resume, p);
    return REQ_PARKED;
}
