/*
 * libmicrohttpd front end and worker pool.
 *
 * Each listener is one MHD daemon with one internal epoll thread doing all
 * socket I/O for its connections. That thread never touches the database:
 * it collects the request line, headers and body, and then either runs an
 * inline route (cheap, no I/O) or suspends the connection and queues the
 * request for a worker. A worker runs the pipeline (dispatch_run) with its
 * own database connection and resumes the connection; MHD then calls back
 * on its thread and the response is queued there. A handler may instead
 * park the request (long polls): the connection stays suspended, no thread
 * waits, and whoever completes it later calls req_complete, which resumes.
 *
 * The per-connection memory limit is 16 KiB: request headers must fit in
 * it, bodies are copied out chunk by chunk into the request's own buffer,
 * and responses are handed to MHD as heap buffers it frees.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "http/dispatch.h"
#include "http/req.h"
#include "http/router.h"
#include "store/store.h"
#include "svc/srv.h"

#define CONN_MEMORY_LIMIT (16 * 1024)
#define CONN_IDLE_TIMEOUT_S 75
#define MAX_CONNECTIONS 60000
#define MAX_HEADERS 100

struct listener {
    struct http_server *hs;
    const struct config_listener *cfg;
    struct MHD_Daemon *daemon;
    MHD_socket quiesced_fd;
    char *cert_pem;
    char *key_pem;
};

struct http_server {
    struct srv *srv;
    struct listener *listeners;
    size_t n_listeners;

    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    struct req *head;
    struct req *tail;
    bool stop_workers;
    pthread_t *threads;
    int n_threads;

    atomic_int in_progress; /* requests between arrival and completion */
    atomic_bool stopping;   /* shutdown began: new requests are refused at once */
};

/* ---- worker pool ---- */

static void pool_push(struct http_server *hs, struct req *r)
{
    r->next_job = NULL;
    pthread_mutex_lock(&hs->mu);
    if (hs->tail) {
        hs->tail->next_job = r;
    } else {
        hs->head = r;
    }
    hs->tail = r;
    pthread_cond_signal(&hs->work_cv);
    pthread_mutex_unlock(&hs->mu);
}

static void resume(struct req *r)
{
    /* After this call the I/O thread may finish and free r at any moment. */
    MHD_resume_connection(r->conn);
}

/* req_continue: a parked request goes back to the worker queue. */
static void requeue(struct req *r)
{
    struct listener *l = r->listener;
    pool_push(l->hs, r);
}

static void *worker_main(void *arg)
{
    struct http_server *hs = arg;
    struct store_conn *db = NULL;
    if (hs->srv->store && store_conn_open(hs->srv->store, &db) != 0) {
        LOG_ERROR("http", "worker could not open a database connection");
        db = NULL;
    }
    for (;;) {
        pthread_mutex_lock(&hs->mu);
        while (!hs->head && !hs->stop_workers) {
            pthread_cond_wait(&hs->work_cv, &hs->mu);
        }
        struct req *r = hs->head;
        if (!r) {
            pthread_mutex_unlock(&hs->mu);
            break;
        }
        hs->head = r->next_job;
        if (!hs->head) {
            hs->tail = NULL;
        }
        pthread_mutex_unlock(&hs->mu);

        r->db = db;
        int rc;
        if (hs->srv->store && !db) {
            rc = req_fail(r, -ERR_UNAVAILABLE, "Database unavailable");
            r->state = REQ_STATE_DONE;
        } else if (r->cont) {
            int (*fn)(struct req *) = r->cont;
            r->cont = NULL;
            rc = dispatch_continue(r, fn);
        } else {
            rc = dispatch_run(r);
        }
        /* A parked request may already be running elsewhere (continued or
         * completed by another thread): do not touch it any more. */
        if (rc != REQ_PARKED) {
            r->db = NULL;
            resume(r);
        }
    }
    if (db) {
        store_conn_close(db);
    }
    return NULL;
}

/* ---- request intake on the I/O thread ---- */

struct copy_ctx {
    struct req *r;
    int n;
};

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct copy_ctx *ctx = cls;
    if (ctx->n >= MAX_HEADERS || !key) {
        return MHD_NO;
    }
    ctx->r->headers[ctx->n].name = arena_strdup(&ctx->r->arena, key);
    ctx->r->headers[ctx->n].value = arena_strdup(&ctx->r->arena, value ? value : "");
    ctx->n++;
    return MHD_YES;
}

static enum MHD_Result copy_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    if (key) {
        struct req *r = cls;
        req_add_query_raw(r, key, value);
        /* MHD leaves the arguments escaped (no_unescape): joined again in
         * order they are the query string as sent. */
        if (r->raw_query.len) {
            buf_append(&r->raw_query, "&", 1);
        }
        buf_append(&r->raw_query, key, strlen(key));
        if (value) {
            buf_append(&r->raw_query, "=", 1);
            buf_append(&r->raw_query, value, strlen(value));
        }
    }
    return MHD_YES;
}

static void copy_request_info(struct req *r, struct MHD_Connection *c)
{
    r->headers = ARENA_ARRAY(&r->arena, struct req_header, MAX_HEADERS);
    struct copy_ctx ctx = {r, 0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, copy_header, &ctx);
    r->n_headers = ctx.n;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, copy_arg, r);

    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[INET6_ADDRSTRLEN] = "?";
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET) {
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, addr,
                      sizeof(addr));
        } else if (sa->sa_family == AF_INET6) {
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                      addr, sizeof(addr));
        }
    }
    r->remote_addr = arena_strdup(&r->arena, addr);
}

static void add_cors(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(resp, "Access-Control-Allow-Methods",
                            "GET, HEAD, POST, PUT, DELETE, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "X-Requested-With, Content-Type, Authorization, Date");
}

static enum MHD_Result send_response(struct MHD_Connection *c, struct req *r)
{
    size_t len = 0;
    char *body = buf_detach(&r->resp, &len);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(len, body, free);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (r->content_type) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    }
    add_cors(resp);
    for (int i = 0; i < r->n_resp_headers; i++) {
        MHD_add_response_header(resp, r->resp_headers[i].name, r->resp_headers[i].value);
    }
    r->resp.len = len; /* kept for the access log; the bytes now belong to MHD */
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct listener *l = cls;
    struct http_server *hs = l->hs;
    struct req *r = *con_cls;

    if (!r) {
        r = xmalloc(sizeof(*r));
        req_init(r, hs->srv);
        r->conn = c;
        r->listener = l;
        r->on_complete = resume;
        r->on_continue = requeue;
        *con_cls = r;
        atomic_fetch_add(&hs->in_progress, 1);
        copy_request_info(r, c);
        if (atomic_load(&hs->stopping)) {
            /* A request on a kept-alive connection after shutdown began:
             * answered here, never suspended (no worker would resume it,
             * and MHD refuses to stop with suspended connections). */
            r->state = REQ_STATE_DONE;
            req_fail(r, -ERR_UNAVAILABLE, "The server is shutting down");
            return send_response(c, r);
        }
        if (!dispatch_begin(r, method, str_from(url), l->cfg->resources)) {
            r->state = REQ_STATE_DONE;
            if (r->status == 413) {
                /* Answer before the oversized body is read; MHD closes
                 * the connection afterwards. */
                return send_response(c, r);
            }
            /* Otherwise answer once the request is fully read, so the
             * connection stays usable for the next request. */
        }
        return MHD_YES;
    }

    if (r->state == REQ_STATE_BODY) {
        if (*upload_data_size > 0) {
            if (!r->body_too_large) {
                if (r->body.len + *upload_data_size > dispatch_body_limit(r)) {
                    r->body_too_large = true;
                    buf_release(&r->body);
                } else {
                    buf_append(&r->body, upload_data, *upload_data_size);
                }
            }
            *upload_data_size = 0;
            return MHD_YES;
        }
        if (dispatch_is_inline(r)) {
            dispatch_run(r);
            return send_response(c, r);
        }
        r->state = REQ_STATE_QUEUED;
        MHD_suspend_connection(c);
        pool_push(hs, r);
        return MHD_YES;
    }

    if (r->state == REQ_STATE_DONE) {
        if (*upload_data_size > 0) {
            *upload_data_size = 0; /* body of an already answered request */
            return MHD_YES;
        }
        return send_response(c, r);
    }
    /* Spurious call while queued or parked: nothing to do yet. */
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct listener *l = cls;
    struct req *r = *con_cls;
    if (!r) {
        return;
    }
    *con_cls = NULL;
    double ms = (double)(req_now_ns() - r->start_ns) / 1e6;
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        LOG_INFO("access", "%s %s %.*s %d %zu %.2fms", r->remote_addr ? r->remote_addr : "?",
                 r->route ? r->route->name : "-", (int)(r->path.len > 200 ? 200 : r->path.len),
                 r->path.p ? r->path.p : "", r->status, r->resp.len, ms);
    } else {
        LOG_DEBUG("access", "%s %.*s aborted (%d) after %.2fms",
                  r->remote_addr ? r->remote_addr : "?",
                  (int)(r->path.len > 200 ? 200 : r->path.len), r->path.p ? r->path.p : "",
                  (int)toe, ms);
    }
    req_release(r);
    free(r);
    atomic_fetch_sub(&l->hs->in_progress, 1);
}

/* Keep the raw path: parameters are decoded segment by segment by the
 * router, so an encoded '/' inside an ID stays inside its segment. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }
    LOG_DEBUG("mhd", "%s", line);
}

/* ---- start and stop ---- */

static char *read_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size > 1024 * 1024) {
        close(fd);
        return NULL;
    }
    char *p = xmalloc((size_t)st.st_size + 1);
    ssize_t n = read(fd, p, (size_t)st.st_size);
    close(fd);
    if (n != st.st_size) {
        free(p);
        return NULL;
    }
    p[n] = '\0';
    return p;
}

static int listener_start(struct http_server *hs, struct listener *l)
{
    const struct config_listener *cfg = l->cfg;
    char port[8];
    snprintf(port, sizeof(port), "%u", cfg->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(cfg->bind_host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        LOG_ERROR("http", "cannot resolve listener address %s: %s", cfg->bind_host,
                  gai_strerror(gai));
        return -ERR_CONFIG;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    if (cfg->tls) {
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            LOG_ERROR("http", "this libmicrohttpd has no TLS support");
            freeaddrinfo(ai);
            return -ERR_CONFIG;
        }
        l->cert_pem = read_file(cfg->tls_cert);
        l->key_pem = read_file(cfg->tls_key);
        if (!l->cert_pem || !l->key_pem) {
            LOG_ERROR("http", "cannot read TLS certificate %s or key %s", cfg->tls_cert,
                      cfg->tls_key);
            freeaddrinfo(ai);
            return -ERR_CONFIG;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONN_MEMORY_LIMIT, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, CONN_IDLE_TIMEOUT_S, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, MAX_CONNECTIONS, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, l},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)no_unescape, NULL},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL},
        {MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
        {cfg->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, l->cert_pem},
        {cfg->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, l->key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    l->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, l, MHD_OPTION_ARRAY, opts,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!l->daemon) {
        LOG_ERROR("http", "cannot listen on %s:%u%s (address in use, or bad certificate)",
                  cfg->bind_host, cfg->port, cfg->tls ? " (TLS)" : "");
        return -ERR_IO;
    }
    LOG_INFO("http", "listening on %s:%u (%s)", cfg->bind_host, cfg->port,
             cfg->tls ? "https" : "http");
    return 0;
}

static void listener_free(struct listener *l)
{
    if (l->daemon) {
        MHD_stop_daemon(l->daemon);
        l->daemon = NULL;
    }
    if (l->quiesced_fd != MHD_INVALID_SOCKET) {
        close(l->quiesced_fd);
        l->quiesced_fd = MHD_INVALID_SOCKET;
    }
    if (l->key_pem) {
        explicit_bzero(l->key_pem, strlen(l->key_pem));
    }
    free(l->cert_pem);
    free(l->key_pem);
}

static void workers_stop(struct http_server *hs)
{
    pthread_mutex_lock(&hs->mu);
    hs->stop_workers = true;
    pthread_cond_broadcast(&hs->work_cv);
    pthread_mutex_unlock(&hs->mu);
    for (int i = 0; i < hs->n_threads; i++) {
        pthread_join(hs->threads[i], NULL);
    }
    hs->n_threads = 0;
}

static void server_free(struct http_server *hs)
{
    for (size_t i = 0; i < hs->n_listeners; i++) {
        listener_free(&hs->listeners[i]);
    }
    workers_stop(hs);
    free(hs->threads);
    free(hs->listeners);
    pthread_mutex_destroy(&hs->mu);
    pthread_cond_destroy(&hs->work_cv);
    free(hs);
}

int http_server_start(struct srv *srv, struct http_server **out)
{
    struct http_server *hs = xcalloc(1, sizeof(*hs));
    hs->srv = srv;
    pthread_mutex_init(&hs->mu, NULL);
    pthread_cond_init(&hs->work_cv, NULL);
    atomic_init(&hs->in_progress, 0);
    atomic_init(&hs->stopping, false);

    int n = srv->cfg->workers;
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 2;
        if (n < 2) {
            n = 2;
        }
    }
    hs->threads = xcalloc((size_t)n, sizeof(pthread_t));
    for (int i = 0; i < n; i++) {
        if (pthread_create(&hs->threads[i], NULL, worker_main, hs) != 0) {
            LOG_ERROR("http", "cannot start worker thread");
            server_free(hs);
            return -ERR_UNKNOWN;
        }
        hs->n_threads++;
    }

    hs->n_listeners = srv->cfg->n_listeners;
    hs->listeners = xcalloc(hs->n_listeners, sizeof(*hs->listeners));
    for (size_t i = 0; i < hs->n_listeners; i++) {
        struct listener *l = &hs->listeners[i];
        l->hs = hs;
        l->cfg = &srv->cfg->listeners[i];
        l->quiesced_fd = MHD_INVALID_SOCKET;
        int rc = listener_start(hs, l);
        if (rc) {
            server_free(hs);
            return rc;
        }
    }
    *out = hs;
    return 0;
}

void http_server_stop(struct http_server *hs, int grace_ms)
{
    /* Set before in_progress is read: a request either counted in it (and
     * waited for below) or sees the flag and is refused without suspending. */
    atomic_store(&hs->stopping, true);
    for (size_t i = 0; i < hs->n_listeners; i++) {
        hs->listeners[i].quiesced_fd = MHD_quiesce_daemon(hs->listeners[i].daemon);
    }
    struct timespec step = {0, 10 * 1000 * 1000};
    for (int waited = 0; waited < grace_ms && atomic_load(&hs->in_progress) > 0; waited += 10) {
        nanosleep(&step, NULL);
    }
    if (atomic_load(&hs->in_progress) > 0) {
        LOG_WARN("http", "%d requests still in progress at shutdown",
                 atomic_load(&hs->in_progress));
    }
    /* Workers first, so nothing resumes a connection of a stopped daemon. */
    workers_stop(hs);
    server_free(hs);
}
