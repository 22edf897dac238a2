/*
 * Configuration: loading myelin.yaml with libfyaml into `struct config`,
 * and writing the commented default file for `myelin init`.
 *
 * Every key is checked: an unknown key, a value of the wrong type or out
 * of range is reported as "file:line: problem" and the load fails, so a
 * typo never silently falls back to a default. The key names are a fixed
 * contract with deployment tooling; do not rename them.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "core/id.h"
#include "core/keys.h"
#include "core/roomver.h"

/* ---- loading context ---- */

struct loader {
    const char *path;
    int errors;
};

static int node_line(struct fy_node *n)
{
    if (!n) {
        return 0;
    }
    struct fy_token *t = fy_node_get_scalar_token(n);
    if (!t) {
        return 0;
    }
    const struct fy_mark *m = fy_token_start_mark(t);
    return m ? m->line + 1 : 0;
}

__attribute__((format(printf, 3, 4))) static void problem(struct loader *l, int line,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: ", l->path, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    l->errors++;
}

/* The scalar text of `v` as a new string, or NULL (with a problem) if `v`
 * is not a scalar. `line` is the key's line, used when v has no token. */
static char *get_string(struct loader *l, struct fy_node *v, const char *key, int line)
{
    if (!v || !fy_node_is_scalar(v)) {
        problem(l, line, "'%s' must be a string", key);
        return NULL;
    }
    size_t len;
    const char *s = fy_node_get_scalar(v, &len);
    if (!s) {
        problem(l, line, "'%s' must be a string", key);
        return NULL;
    }
    if (memchr(s, '\0', len)) {
        problem(l, line, "'%s' contains a NUL byte", key);
        return NULL;
    }
    return xstrndup(s, len);
}

/* A string, or NULL without complaint when the value is YAML null. */
static bool is_null(struct fy_node *v)
{
    if (!v || fy_node_is_null(v)) {
        return true;
    }
    if (!fy_node_is_scalar(v) || fy_node_get_style(v) != FYNS_PLAIN) {
        return false; /* "null" in quotes is a string */
    }
    size_t len;
    const char *s = fy_node_get_scalar(v, &len);
    return !s || len == 0 || (len == 1 && s[0] == '~') ||
           (len == 4 && (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 ||
                         memcmp(s, "NULL", 4) == 0));
}

static char *get_opt_string(struct loader *l, struct fy_node *v, const char *key, int line)
{
    if (is_null(v)) {
        return NULL;
    }
    return get_string(l, v, key, line);
}

static void set_string(char **dst, char *value)
{
    if (value) {
        free(*dst);
        *dst = value;
    }
}

static void get_bool(struct loader *l, struct fy_node *v, const char *key, int line, bool *out)
{
    char *s = get_string(l, v, key, line);
    if (!s) {
        return;
    }
    if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 || strcasecmp(s, "on") == 0) {
        *out = true;
    } else if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0 ||
               strcasecmp(s, "off") == 0) {
        *out = false;
    } else {
        problem(l, line, "'%s' must be true or false, not '%s'", key, s);
    }
    free(s);
}

static void get_int(struct loader *l, struct fy_node *v, const char *key, int line, long long min,
                    long long max, long long *out)
{
    char *s = get_string(l, v, key, line);
    if (!s) {
        return;
    }
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || end == s || *end || n < min || n > max) {
        problem(l, line, "'%s' must be an integer from %lld to %lld, not '%s'", key, min, max, s);
    } else {
        *out = n;
    }
    free(s);
}

/* ---- value validation ---- */

/* Splits "host:port" / "[v6]:port" into host and port. */
static bool parse_bind(const char *s, char **host, uint16_t *port)
{
    const char *colon;
    const char *hs = s;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            return false;
        }
        hs = s + 1;
        hl = (size_t)(close - hs);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            return false;
        }
        hl = (size_t)(colon - s);
    }
    if (hl == 0) {
        return false;
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535) {
        return false;
    }
    *host = xstrndup(hs, hl);
    *port = (uint16_t)p;
    return true;
}

/* ---- sections ---- */

static void load_listener(struct loader *l, struct fy_node *m, int line,
                          struct config_listener *out)
{
    memset(out, 0, sizeof(*out));
    out->resources = RESOURCE_CLIENT | RESOURCE_FEDERATION | RESOURCE_MEDIA | RESOURCE_KEYS;
    if (!fy_node_is_mapping(m)) {
        problem(l, line, "each listener must be a mapping");
        return;
    }
    bool have_bind = false;
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(m, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        struct fy_node *v = fy_node_pair_value(pair);
        const char *key = fy_node_get_scalar0(k);
        int kl = node_line(k);
        if (!key) {
            problem(l, kl, "listener keys must be strings");
        } else if (strcmp(key, "bind") == 0) {
            char *s = get_string(l, v, key, kl);
            if (s) {
                if (!parse_bind(s, &out->bind_host, &out->port)) {
                    problem(l, kl, "'bind' must be HOST:PORT or [IPV6]:PORT, not '%s'", s);
                } else {
                    have_bind = true;
                }
                free(s);
            }
        } else if (strcmp(key, "tls") == 0) {
            get_bool(l, v, key, kl, &out->tls);
        } else if (strcmp(key, "tls_cert") == 0) {
            set_string(&out->tls_cert, get_opt_string(l, v, key, kl));
        } else if (strcmp(key, "tls_key") == 0) {
            set_string(&out->tls_key, get_opt_string(l, v, key, kl));
        } else if (strcmp(key, "resources") == 0) {
            if (!v || !fy_node_is_sequence(v)) {
                problem(l, kl, "'resources' must be a list");
                continue;
            }
            out->resources = 0;
            void *it2 = NULL;
            struct fy_node *item;
            while ((item = fy_node_sequence_iterate(v, &it2))) {
                const char *r = fy_node_is_scalar(item) ? fy_node_get_scalar0(item) : NULL;
                int il = node_line(item) ? node_line(item) : kl;
                if (!r) {
                    problem(l, il, "resources must be strings");
                } else if (strcmp(r, "client") == 0) {
                    out->resources |= RESOURCE_CLIENT;
                } else if (strcmp(r, "federation") == 0) {
                    out->resources |= RESOURCE_FEDERATION;
                } else if (strcmp(r, "media") == 0) {
                    out->resources |= RESOURCE_MEDIA;
                } else if (strcmp(r, "keys") == 0) {
                    out->resources |= RESOURCE_KEYS;
                } else if (strcmp(r, "health") == 0) {
                    out->resources |= RESOURCE_HEALTH;
                } else {
                    problem(l, il,
                            "unknown resource '%s' (expected client, federation, media, keys, "
                            "health)",
                            r);
                }
            }
        } else {
            problem(l, kl, "unknown key 'listeners[].%s'", key);
        }
    }
    if (!have_bind) {
        problem(l, line, "listener has no valid 'bind'");
    }
    if (out->tls && (!out->tls_cert || !out->tls_key)) {
        problem(l, line, "a listener with 'tls: true' needs 'tls_cert' and 'tls_key'");
    }
}

static void load_listeners(struct loader *l, struct fy_node *v, int line, struct config *c)
{
    if (!v || !fy_node_is_sequence(v)) {
        problem(l, line, "'listeners' must be a list");
        return;
    }
    int n = fy_node_sequence_item_count(v);
    if (n <= 0) {
        problem(l, line, "'listeners' must not be empty");
        return;
    }
    for (size_t i = 0; i < c->n_listeners; i++) {
        free(c->listeners[i].bind_host);
        free(c->listeners[i].tls_cert);
        free(c->listeners[i].tls_key);
    }
    free(c->listeners);
    c->listeners = xcalloc((size_t)n, sizeof(*c->listeners));
    c->n_listeners = (size_t)n;
    void *it = NULL;
    struct fy_node *item;
    size_t i = 0;
    while ((item = fy_node_sequence_iterate(v, &it)) && i < (size_t)n) {
        load_listener(l, item, line, &c->listeners[i++]);
    }
}

static void load_database(struct loader *l, struct fy_node *m, int line, struct config *c)
{
    if (!m || !fy_node_is_mapping(m)) {
        problem(l, line, "'database' must be a mapping");
        return;
    }
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(m, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        struct fy_node *v = fy_node_pair_value(pair);
        const char *key = fy_node_get_scalar0(k);
        int kl = node_line(k);
        if (!key) {
            problem(l, kl, "database keys must be strings");
        } else if (strcmp(key, "engine") == 0) {
            char *s = get_string(l, v, key, kl);
            if (!s) {
                continue;
            }
            if (strcmp(s, "sqlite") == 0) {
                c->database.engine = DB_ENGINE_SQLITE;
            } else if (strcmp(s, "postgres") == 0 || strcmp(s, "postgresql") == 0) {
                c->database.engine = DB_ENGINE_POSTGRES;
            } else {
                problem(l, kl, "'engine' must be sqlite or postgres, not '%s'", s);
            }
            free(s);
        } else if (strcmp(key, "path") == 0) {
            set_string(&c->database.path, get_string(l, v, key, kl));
        } else if (strcmp(key, "conninfo") == 0) {
            set_string(&c->database.conninfo, get_opt_string(l, v, key, kl));
        } else {
            problem(l, kl, "unknown key 'database.%s'", key);
        }
    }
}

static void load_registration(struct loader *l, struct fy_node *m, int line, struct config *c)
{
    if (!m || !fy_node_is_mapping(m)) {
        problem(l, line, "'registration' must be a mapping");
        return;
    }
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(m, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        struct fy_node *v = fy_node_pair_value(pair);
        const char *key = fy_node_get_scalar0(k);
        int kl = node_line(k);
        if (!key) {
            problem(l, kl, "registration keys must be strings");
        } else if (strcmp(key, "enabled") == 0) {
            get_bool(l, v, key, kl, &c->registration.enabled);
        } else if (strcmp(key, "tokens_required") == 0) {
            get_bool(l, v, key, kl, &c->registration.tokens_required);
        } else if (strcmp(key, "guests") == 0) {
            get_bool(l, v, key, kl, &c->registration.guests);
        } else if (strcmp(key, "shared_secret") == 0) {
            free(c->registration.shared_secret);
            c->registration.shared_secret = get_opt_string(l, v, key, kl);
        } else {
            problem(l, kl, "unknown key 'registration.%s'", key);
        }
    }
}

static void load_rate_limits(struct loader *l, struct fy_node *m, int line, struct config *c)
{
    if (!m || !fy_node_is_mapping(m)) {
        problem(l, line, "'rate_limits' must be a mapping");
        return;
    }
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(m, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        const char *key = fy_node_get_scalar0(k);
        int kl = node_line(k);
        if (key && strcmp(key, "enabled") == 0) {
            get_bool(l, fy_node_pair_value(pair), key, kl, &c->rate_limits.enabled);
        } else {
            problem(l, kl, "unknown key 'rate_limits.%s'", key ? key : "?");
        }
    }
}

static void load_federation(struct loader *l, struct fy_node *m, int line, struct config *c)
{
    if (!m || !fy_node_is_mapping(m)) {
        problem(l, line, "'federation' must be a mapping");
        return;
    }
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(m, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        struct fy_node *v = fy_node_pair_value(pair);
        const char *key = fy_node_get_scalar0(k);
        int kl = node_line(k);
        if (!key) {
            problem(l, kl, "federation keys must be strings");
        } else if (strcmp(key, "verify_tls") == 0) {
            get_bool(l, v, key, kl, &c->federation.verify_tls);
        } else if (strcmp(key, "extra_ca_file") == 0) {
            free(c->federation.extra_ca_file);
            c->federation.extra_ca_file = get_opt_string(l, v, key, kl);
        } else {
            problem(l, kl, "unknown key 'federation.%s'", key);
        }
    }
}

static void load_well_known(struct loader *l, struct fy_node *m, int line, struct config *c)
{
    if (!m || !fy_node_is_mapping(m)) {
        problem(l, line, "'well_known' must be a mapping");
        return;
    }
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(m, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        struct fy_node *v = fy_node_pair_value(pair);
        const char *key = fy_node_get_scalar0(k);
        int kl = node_line(k);
        if (!key) {
            problem(l, kl, "well_known keys must be strings");
        } else if (strcmp(key, "server") == 0) {
            free(c->well_known.server);
            c->well_known.server = get_opt_string(l, v, key, kl);
            if (c->well_known.server && !id_server_name_valid(c->well_known.server, strlen(c->well_known.server))) {
                problem(l, kl, "'well_known.server' must be a host with optional port");
            }
        } else if (strcmp(key, "serve_server") == 0) {
            get_bool(l, v, key, kl, &c->well_known.serve_server);
        } else if (strcmp(key, "identity_server") == 0) {
            free(c->well_known.identity_server);
            c->well_known.identity_server = get_opt_string(l, v, key, kl);
        } else {
            problem(l, kl, "unknown key 'well_known.%s'", key);
        }
    }
}

/*
 * old_signing_keys: {"ed25519:id": {key: "<base64 public key>", expired_ts: ms}}
 * Published as old_verify_keys so events signed with them still verify.
 */
static void load_old_keys(struct loader *l, struct fy_node *m, int line, struct config *c)
{
    if (is_null(m)) {
        return;
    }
    if (!fy_node_is_mapping(m)) {
        problem(l, line, "'old_signing_keys' must be a mapping of key IDs");
        return;
    }
    int n = fy_node_mapping_item_count(m);
    c->old_keys = xcalloc((size_t)(n > 0 ? n : 1), sizeof(*c->old_keys));
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(m, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        struct fy_node *v = fy_node_pair_value(pair);
        const char *key_id = fy_node_get_scalar0(k);
        int kl = node_line(k);
        if (!key_id || strncmp(key_id, "ed25519:", 8) != 0 || !key_id[8]) {
            problem(l, kl, "old signing key IDs look like 'ed25519:abc'");
            continue;
        }
        if (!v || !fy_node_is_mapping(v)) {
            problem(l, kl, "'%s' must map to {key, expired_ts}", key_id);
            continue;
        }
        struct config_old_key *ok = &c->old_keys[c->n_old_keys];
        ok->key_id = xstrdup(key_id);
        c->n_old_keys++;
        long long ts = -1;
        void *it2 = NULL;
        struct fy_node_pair *p2;
        while ((p2 = fy_node_mapping_iterate(v, &it2))) {
            struct fy_node *k2 = fy_node_pair_key(p2);
            const char *name = fy_node_get_scalar0(k2);
            int l2 = node_line(k2);
            if (name && strcmp(name, "key") == 0) {
                set_string(&ok->key, get_string(l, fy_node_pair_value(p2), name, l2));
                unsigned char raw[64];
                if (ok->key && keys_b64_decode(ok->key, strlen(ok->key), raw) != 32) {
                    problem(l, l2, "'key' must be an unpadded base64 ed25519 public key");
                }
            } else if (name && strcmp(name, "expired_ts") == 0) {
                get_int(l, fy_node_pair_value(p2), name, l2, 0, 9007199254740991LL, &ts);
            } else {
                problem(l, l2, "unknown key 'old_signing_keys.%s.%s'", key_id, name ? name : "?");
            }
        }
        if (!ok->key || ts < 0) {
            problem(l, kl, "'%s' needs 'key' and 'expired_ts'", key_id);
        }
        ok->expired_ts = ts;
    }
}

static void load_root(struct loader *l, struct fy_node *root, struct config *c)
{
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(root, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        struct fy_node *v = fy_node_pair_value(pair);
        const char *key = fy_node_get_scalar0(k);
        int kl = node_line(k);
        long long n;
        if (!key) {
            problem(l, kl, "top-level keys must be strings");
        } else if (strcmp(key, "server_name") == 0) {
            char *s = get_string(l, v, key, kl);
            if (s && !id_server_name_valid(s, strlen(s))) {
                problem(l, kl, "'server_name' must be a DNS name or IP literal with optional "
                               "port, not '%s'", s);
                free(s);
            } else {
                set_string(&c->server_name, s);
            }
        } else if (strcmp(key, "public_baseurl") == 0) {
            char *s = get_string(l, v, key, kl);
            if (s && strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
                problem(l, kl, "'public_baseurl' must start with http:// or https://");
                free(s);
                s = NULL;
            }
            set_string(&c->public_baseurl, s);
        } else if (strcmp(key, "listeners") == 0) {
            load_listeners(l, v, kl, c);
        } else if (strcmp(key, "database") == 0) {
            load_database(l, v, kl, c);
        } else if (strcmp(key, "signing_key_path") == 0) {
            set_string(&c->signing_key_path, get_string(l, v, key, kl));
        } else if (strcmp(key, "media_path") == 0) {
            set_string(&c->media_path, get_string(l, v, key, kl));
        } else if (strcmp(key, "registration") == 0) {
            load_registration(l, v, kl, c);
        } else if (strcmp(key, "rate_limits") == 0) {
            load_rate_limits(l, v, kl, c);
        } else if (strcmp(key, "federation") == 0) {
            load_federation(l, v, kl, c);
        } else if (strcmp(key, "well_known") == 0) {
            load_well_known(l, v, kl, c);
        } else if (strcmp(key, "log_level") == 0) {
            char *s = get_string(l, v, key, kl);
            if (s) {
                int lv = log_level_parse(s);
                if (lv < 0) {
                    problem(l, kl, "'log_level' must be debug, info, warn or error, not '%s'", s);
                } else {
                    c->log_level = lv;
                }
                free(s);
            }
        } else if (strcmp(key, "default_room_version") == 0) {
            char *s = get_string(l, v, key, kl);
            if (s && !roomver_get(s)) {
                problem(l, kl, "'default_room_version' must be one of 1-12, not '%s'", s);
                free(s);
            } else {
                set_string(&c->default_room_version, s);
            }
        } else if (strcmp(key, "old_signing_keys") == 0) {
            load_old_keys(l, v, kl, c);
        } else if (strcmp(key, "workers") == 0) {
            n = c->workers;
            get_int(l, v, key, kl, 0, 256, &n);
            c->workers = (int)n;
        } else if (strcmp(key, "max_request_bytes") == 0) {
            n = (long long)c->max_request_bytes;
            get_int(l, v, key, kl, 1024, 1LL << 30, &n);
            c->max_request_bytes = (size_t)n;
        } else {
            problem(l, kl, "unknown key '%s'", key);
        }
    }
}

/* ---- public ---- */

void config_defaults(struct config *c, const char *server_name, const char *data_dir)
{
    memset(c, 0, sizeof(*c));
    c->server_name = xstrdup(server_name);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "http://127.0.0.1:8008/");
    c->public_baseurl = xstrdup(tmp);
    c->n_listeners = 1;
    c->listeners = xcalloc(1, sizeof(*c->listeners));
    c->listeners[0].bind_host = xstrdup("127.0.0.1");
    c->listeners[0].port = 8008;
    c->listeners[0].resources = RESOURCE_CLIENT | RESOURCE_FEDERATION | RESOURCE_MEDIA |
                                RESOURCE_KEYS;
    c->database.engine = DB_ENGINE_SQLITE;
    snprintf(tmp, sizeof(tmp), "%s/myelin.db", data_dir);
    c->database.path = xstrdup(tmp);
    snprintf(tmp, sizeof(tmp), "%s/signing.key", data_dir);
    c->signing_key_path = xstrdup(tmp);
    snprintf(tmp, sizeof(tmp), "%s/media", data_dir);
    c->media_path = xstrdup(tmp);
    c->registration.enabled = false;
    c->registration.tokens_required = false;
    c->registration.guests = false;
    c->rate_limits.enabled = true;
    c->federation.verify_tls = true;
    c->well_known.serve_server = true;
    c->default_room_version = xstrdup(ROOMVER_DEFAULT);
    c->log_level = LOG_INFO;
    c->workers = 0;
    c->max_request_bytes = 1024 * 1024;
}

int config_load(const char *path, struct config *out)
{
    struct loader l = {path, 0};
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s:0: cannot read configuration: %s\n", path, strerror(errno));
        return -ERR_CONFIG;
    }
    struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2};
    struct fy_document *doc = fy_document_build_from_file(&pcfg, path);
    if (!doc) {
        /* Re-parse with diagnostics on so the YAML error is printed with
         * its position. */
        struct fy_parse_cfg loud = {.flags = FYPCF_DEFAULT_VERSION_1_2};
        struct fy_document *again = fy_document_build_from_file(&loud, path);
        fy_document_destroy(again);
        fprintf(stderr, "%s:0: not a valid YAML document\n", path);
        return -ERR_CONFIG;
    }
    struct fy_node *root = fy_document_root(doc);
    if (!root || !fy_node_is_mapping(root)) {
        fprintf(stderr, "%s:1: the configuration must be a mapping of keys\n", path);
        fy_document_destroy(doc);
        return -ERR_CONFIG;
    }

    struct config c;
    config_defaults(&c, "localhost", ".");
    free(c.server_name);
    c.server_name = NULL;
    free(c.public_baseurl);
    c.public_baseurl = NULL;
    load_root(&l, root, &c);
    fy_document_destroy(doc);

    if (!c.server_name) {
        problem(&l, 1, "'server_name' is required");
    }
    if (c.database.engine == DB_ENGINE_POSTGRES && !c.database.conninfo) {
        problem(&l, 1, "'database.conninfo' is required when the engine is postgres");
    }
    for (size_t i = 0; i < c.n_listeners; i++) {
        for (size_t j = 0; j < i; j++) {
            if (c.listeners[i].port == c.listeners[j].port && c.listeners[i].port != 0 &&
                strcmp(c.listeners[i].bind_host, c.listeners[j].bind_host) == 0) {
                problem(&l, 1, "two listeners bind %s:%u", c.listeners[i].bind_host,
                        c.listeners[i].port);
            }
        }
    }
    if (l.errors) {
        config_release(&c);
        return -ERR_CONFIG;
    }
    if (!c.public_baseurl) {
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "https://%s/", c.server_name);
        c.public_baseurl = xstrdup(tmp);
    } else if (c.public_baseurl[strlen(c.public_baseurl) - 1] != '/') {
        size_t n = strlen(c.public_baseurl);
        char *p = xmalloc(n + 2);
        memcpy(p, c.public_baseurl, n);
        p[n] = '/';
        p[n + 1] = '\0';
        free(c.public_baseurl);
        c.public_baseurl = p;
    }
    c.path = xstrdup(path);
    *out = c;
    return 0;
}

void config_release(struct config *c)
{
    free(c->path);
    free(c->server_name);
    free(c->public_baseurl);
    for (size_t i = 0; i < c->n_listeners; i++) {
        free(c->listeners[i].bind_host);
        free(c->listeners[i].tls_cert);
        free(c->listeners[i].tls_key);
    }
    free(c->listeners);
    free(c->database.path);
    free(c->database.conninfo);
    free(c->signing_key_path);
    free(c->media_path);
    free(c->registration.shared_secret);
    free(c->federation.extra_ca_file);
    free(c->well_known.server);
    free(c->well_known.identity_server);
    free(c->default_room_version);
    for (size_t i = 0; i < c->n_old_keys; i++) {
        free(c->old_keys[i].key_id);
        free(c->old_keys[i].key);
    }
    free(c->old_keys);
    memset(c, 0, sizeof(*c));
}

int config_write_default(const char *path, const char *server_name, const char *data_dir)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        fprintf(stderr, "myelin: cannot create %s: %s\n", path, strerror(errno));
        return -ERR_IO;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return -ERR_IO;
    }
    fprintf(f,
            "# Myelin configuration. Every key is shown with its default value.\n"
            "# Unknown keys and bad values are reported with file:line and stop the server.\n"
            "\n"
            "# The name of this homeserver: user IDs end in ':%s'. A DNS name or an IP\n"
            "# literal, with an optional port. It cannot be changed once users exist.\n"
            "server_name: \"%s\"\n"
            "\n"
            "# The URL clients reach this server at (returned in /.well-known and login).\n"
            "public_baseurl: \"http://127.0.0.1:8008/\"\n"
            "\n"
            "# Where to listen. Each listener serves any of the resources client,\n"
            "# federation, media, keys and health, over plain HTTP or TLS.\n"
            "listeners:\n"
            "  - bind: \"127.0.0.1:8008\"\n"
            "    tls: false\n"
            "    resources: [client, federation, media, keys]\n"
            "#  - bind: \"0.0.0.0:8448\"\n"
            "#    tls: true\n"
            "#    tls_cert: \"%s/tls.crt\"\n"
            "#    tls_key: \"%s/tls.key\"\n"
            "#    resources: [federation, keys]\n"
            "\n"
            "database:\n"
            "  engine: sqlite                 # sqlite or postgres\n"
            "  path: \"%s/myelin.db\"           # for sqlite\n"
            "  conninfo: null                 # for postgres: \"host=... dbname=... user=...\"\n"
            "\n"
            "# The ed25519 key this server signs events and requests with.\n"
            "signing_key_path: \"%s/signing.key\"\n"
            "\n"
            "media_path: \"%s/media\"\n"
            "\n"
            "registration:\n"
            "  enabled: false                 # open registration (m.login.dummy)\n"
            "  tokens_required: false         # require m.login.registration_token\n"
            "  shared_secret: null            # enables /_synapse/admin/v1/register\n"
            "  guests: false                  # allow kind=guest registration\n"
            "\n"
            "rate_limits:\n"
            "  enabled: true\n"
            "\n"
            "federation:\n"
            "  verify_tls: true               # false only for test setups\n"
            "  extra_ca_file: null            # PEM file of extra trusted CAs\n"
            "\n"
            "well_known:\n"
            "  serve_server: true             # answer /.well-known/matrix/server\n"
            "  server: null                   # delegation target; default: server_name\n"
            "  identity_server: null          # m.identity_server base URL for clients\n"
            "\n"
            "# Room version for new rooms when the client names none (1-12).\n"
            "default_room_version: \"12\"\n"
            "\n"
            "# Keys this server used to sign with, published as old_verify_keys so\n"
            "# events signed with them still verify. Example:\n"
            "#   \"ed25519:a_old\": {key: \"<unpadded base64 public key>\", expired_ts: 1700000000000}\n"
            "old_signing_keys: {}\n"
            "\n"
            "log_level: info                  # debug, info, warn or error\n"
            "workers: 0                       # request worker threads; 0 = one per core\n"
            "max_request_bytes: 1048576       # largest JSON request body\n",
            server_name, server_name, data_dir, data_dir, data_dir, data_dir, data_dir);
    if (fclose(f) != 0) {
        return -ERR_IO;
    }
    return 0;
}
