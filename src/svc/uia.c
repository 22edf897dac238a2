/*
 * UIA sessions: a mutex-protected map from session ID to the stages
 * completed so far. Stage checks run on the request's worker (dummy,
 * registration token) or on the CPU pool (password, via svc/password).
 */
#include "svc/uia.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/json.h"
#include "base/map.h"
#include "base/xmalloc.h"
#include "store/store.h"
#include "svc/password.h"
#include "svc/srv.h"

struct session {
    char id[25];
    char *kind;
    char *user_id;  /* account proved by m.login.password, or NULL */
    char *regtoken; /* token reserved by m.login.registration_token, or NULL */
    const char *completed[8];
    size_t n_completed;
    int64_t created_ms;
};

struct uia {
    pthread_mutex_t mu;
    struct map sessions;
};

struct uia *uia_new(void)
{
    struct uia *u = xcalloc(1, sizeof(*u));
    pthread_mutex_init(&u->mu, NULL);
    map_init(&u->sessions);
    return u;
}

static void session_free(struct session *s)
{
    free(s->kind);
    free(s->user_id);
    free(s->regtoken);
    free(s);
}

void uia_free(struct uia *u)
{
    if (!u) {
        return;
    }
    size_t i = 0;
    const struct map_entry *e;
    while (map_next(&u->sessions, &i, &e)) {
        session_free(e->value);
    }
    map_release(&u->sessions);
    pthread_mutex_destroy(&u->mu);
    free(u);
}

/* Removes expired sessions. Reserved registration tokens of expired
 * sessions are returned to the caller to release (NULL-terminated, heap). */
static char **expire_locked(struct uia *u, int64_t now)
{
    char **tokens = NULL;
    size_t n = 0;
    bool again = true;
    while (again) {
        again = false;
        size_t i = 0;
        const struct map_entry *e;
        while (map_next(&u->sessions, &i, &e)) {
            struct session *s = e->value;
            if (now - s->created_ms > UIA_SESSION_TTL_MS) {
                if (s->regtoken) {
                    tokens = xrealloc(tokens, sizeof(char *) * (n + 2));
                    tokens[n++] = s->regtoken;
                    tokens[n] = NULL;
                    s->regtoken = NULL;
                }
                map_del(&u->sessions, str_from(s->id));
                session_free(s);
                again = true;
                break;
            }
        }
    }
    return tokens;
}

static bool has_stage(const struct session *s, const char *stage)
{
    for (size_t i = 0; i < s->n_completed; i++) {
        if (strcmp(s->completed[i], stage) == 0) {
            return true;
        }
    }
    return false;
}

static bool flow_done(const struct session *s, const struct uia_flow *f)
{
    for (size_t i = 0; i < f->n; i++) {
        if (!has_stage(s, f->stages[i])) {
            return false;
        }
    }
    return true;
}

/* The stage name as a static string if some flow offers it, else NULL. */
static const char *offered(const struct uia_flow *flows, size_t n, const char *stage)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < flows[i].n; j++) {
            if (strcmp(flows[i].stages[j], stage) == 0) {
                return flows[i].stages[j];
            }
        }
    }
    return NULL;
}

/* Builds the 401 challenge; with code != 0 it also carries that error. */
static int challenge(struct req *r, const struct uia_flow *flows, size_t n_flows, json_t *params,
                     const struct session *s, int code, const char *msg)
{
    json_t *body = json_object();
    json_t *fl = json_array();
    for (size_t i = 0; i < n_flows; i++) {
        json_t *stages = json_array();
        for (size_t j = 0; j < flows[i].n; j++) {
            json_array_append_new(stages, json_string(flows[i].stages[j]));
        }
        json_array_append_new(fl, json_pack("{s:o}", "stages", stages));
    }
    json_object_set_new(body, "flows", fl);
    json_object_set_new(body, "params", params ? params : json_object());
    json_object_set_new(body, "session", json_string(s->id));
    json_t *done = json_array();
    for (size_t i = 0; i < s->n_completed; i++) {
        json_array_append_new(done, json_string(s->completed[i]));
    }
    json_object_set_new(body, "completed", done);
    if (code) {
        json_object_set_new(body, "errcode", json_string(err_errcode(code)));
        json_object_set_new(body, "error", json_string(msg));
    }
    req_json(r, 401, body);
    r->err = -ERR_UNAUTHORIZED;
    return -ERR_UNAUTHORIZED;
}

/* Copies the session for use outside the lock (only the fields the
 * challenge needs). */
/* Copies the session for use after the lock is released: owned strings go
 * to the request arena, since another thread may free the session. */
static void snapshot(struct arena *a, const struct session *s, struct session *out)
{
    *out = *s;
    out->kind = s->kind ? arena_strdup(a, s->kind) : NULL;
    out->user_id = s->user_id ? arena_strdup(a, s->user_id) : NULL;
    out->regtoken = s->regtoken ? arena_strdup(a, s->regtoken) : NULL;
}

/* The user named by an m.login.password auth dict, as a full user ID. */
static const char *auth_user(struct req *r, const json_t *auth)
{
    const char *user = NULL;
    const json_t *ident = json_get_obj(auth, "identifier");
    if (ident) {
        const char *type = json_get_str(ident, "type");
        if (type && strcmp(type, "m.id.user") == 0) {
            user = json_get_str(ident, "user");
        }
    } else {
        user = json_get_str(auth, "user");
    }
    if (!user) {
        return NULL;
    }
    if (user[0] == '@') {
        return user;
    }
    return arena_printf(&r->arena, "@%s:%s", user, r->srv->cfg->server_name);
}

int uia_check(struct req *r, const char *kind, const struct uia_flow *flows, size_t n_flows,
              const char *user_id, json_t *params, const char **session_out)
{
    struct uia *u = r->srv->uia;
    int64_t now = req_now_ms();
    const json_t *auth = json_get_obj(r->json, "auth");
    const char *sid = auth ? json_get_str(auth, "session") : NULL;
    struct session snap;

    pthread_mutex_lock(&u->mu);
    char **expired = expire_locked(u, now);
    struct session *s = sid ? map_get(&u->sessions, str_from(sid)) : NULL;
    if (sid && !s) {
        pthread_mutex_unlock(&u->mu);
        free(expired);
        json_decref(params);
        return req_fail(r, -ERR_BAD_REQUEST, "Unknown UIA session");
    }
    if (!s) {
        s = xcalloc(1, sizeof(*s));
        unsigned char raw[12];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(s->id, sizeof(s->id), raw, sizeof(raw),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        s->kind = xstrdup(kind);
        s->created_ms = now;
        map_put(&u->sessions, str_from(s->id), s);
    }
    /* A session is bound to its operation and, once a password proved
     * it, to that account: another user cannot ride on it. */
    bool kind_ok = strcmp(s->kind, kind) == 0 &&
                   (!s->user_id || !user_id || strcmp(s->user_id, user_id) == 0);
    snapshot(&r->arena, s, &snap);
    pthread_mutex_unlock(&u->mu);
    if (expired) {
        for (char **t = expired; *t; t++) {
            if (r->db) {
                store_regtoken_finish(r->db, *t, false);
            }
            free(*t);
        }
        free(expired);
    }
    if (!kind_ok) {
        json_decref(params);
        return req_fail(r, -ERR_FORBIDDEN,
                        "The UIA session belongs to a different operation or user");
    }

    const char *type = auth ? json_get_str(auth, "type") : NULL;
    if (!type) {
        /* First round (or a poll): the challenge. */
        for (size_t i = 0; i < n_flows; i++) {
            if (flow_done(&snap, &flows[i])) {
                *session_out = arena_strdup(&r->arena, snap.id);
                json_decref(params);
                return 0;
            }
        }
        return challenge(r, flows, n_flows, params, &snap, 0, NULL);
    }
    const char *stage = offered(flows, n_flows, type);
    if (!stage) {
        return challenge(r, flows, n_flows, params, &snap, -ERR_UNRECOGNIZED,
                         "Authentication stage not offered");
    }

    /* Run the stage. */
    bool passed = false;
    const char *fail_msg = "Authentication failed";
    int fail_code = -ERR_FORBIDDEN;
    char *reserved = NULL;
    if (strcmp(stage, "m.login.dummy") == 0) {
        passed = true;
    } else if (strcmp(stage, "m.login.password") == 0) {
        const char *who = auth_user(r, auth);
        const char *password = json_get_str(auth, "password");
        if (!who || !password || !user_id || strcmp(who, user_id) != 0) {
            fail_msg = "Invalid username or password";
        } else if (r->pw.state == PW_NONE) {
            struct store_user acct;
            int rc = store_user_get(r->db, &r->arena, user_id, &acct);
            if (rc < 0 && rc != -ERR_NOT_FOUND) {
                json_decref(params);
                return req_fail(r, rc, NULL);
            }
            json_decref(params);
            return password_verify_async(r, rc == 0 && !acct.deactivated ? acct.password_hash
                                                                        : NULL,
                                         password);
        } else {
            passed = r->pw.state == PW_OK;
            r->pw.state = PW_NONE; /* a later round checks afresh */
            fail_msg = "Invalid username or password";
        }
    } else if (strcmp(stage, "m.login.registration_token") == 0) {
        const char *token = json_get_str(auth, "token");
        if (snap.regtoken && token && strcmp(snap.regtoken, token) == 0) {
            passed = true; /* already reserved in an earlier round */
        } else if (token && strlen(token) <= 64 &&
                   store_regtoken_reserve(r->db, token, now) == 0) {
            passed = true;
            reserved = xstrdup(token);
        } else {
            fail_code = -ERR_UNAUTHORIZED;
            fail_msg = "Invalid registration token";
        }
    }

    pthread_mutex_lock(&u->mu);
    s = map_get(&u->sessions, str_from(snap.id));
    if (!s) {
        pthread_mutex_unlock(&u->mu);
        if (reserved) {
            store_regtoken_finish(r->db, reserved, false);
            free(reserved);
        }
        json_decref(params);
        return req_fail(r, -ERR_BAD_REQUEST, "UIA session expired");
    }
    if (passed) {
        if (!has_stage(s, stage) && s->n_completed < sizeof(s->completed) / sizeof(s->completed[0])) {
            s->completed[s->n_completed++] = stage;
        }
        if (strcmp(stage, "m.login.password") == 0 && !s->user_id) {
            s->user_id = xstrdup(user_id);
        }
        if (reserved) {
            free(s->regtoken);
            s->regtoken = reserved;
            reserved = NULL;
        }
    }
    snapshot(&r->arena, s, &snap);
    pthread_mutex_unlock(&u->mu);
    free(reserved);

    if (!passed) {
        return challenge(r, flows, n_flows, params, &snap, fail_code, fail_msg);
    }
    for (size_t i = 0; i < n_flows; i++) {
        if (flow_done(&snap, &flows[i])) {
            *session_out = arena_strdup(&r->arena, snap.id);
            json_decref(params);
            return 0;
        }
    }
    return challenge(r, flows, n_flows, params, &snap, 0, NULL);
}

const char *uia_session_regtoken(struct uia *u, struct arena *arena, const char *session)
{
    pthread_mutex_lock(&u->mu);
    struct session *s = map_get(&u->sessions, str_from(session));
    const char *t = s && s->regtoken ? arena_strdup(arena, s->regtoken) : NULL;
    pthread_mutex_unlock(&u->mu);
    return t;
}

void uia_session_end(struct uia *u, const char *session)
{
    pthread_mutex_lock(&u->mu);
    struct session *s = map_del(&u->sessions, str_from(session));
    pthread_mutex_unlock(&u->mu);
    if (s) {
        session_free(s);
    }
}
