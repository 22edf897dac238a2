/*
 * Configuration: loading myelin.yaml with libfyaml into `struct config`,
 * and writing the commented default file for `myelin init`.
 *
 * Every key is checked: an unknown key, a value of the wrong type or out
 * of range is reported as "file:line: problem" and the load fails, so a
 * typo never silently falls back to a default. The key names are a fixed
 * contract with deployment tooling; do not rename them.
 *
 * Each mapping in the file is described by a table of fields (key, kind,
 * where the value goes); load_map walks a mapping against its table and
 * config_release frees the string fields the tables name. A new key is
 * one table line, plus a check or custom loader when the plain kinds are
 * not enough.
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

/* Whether `v` is YAML null: absent, ~, null or empty, but not "null". */
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

/* False (with a problem) unless `v` is an integer from min to max. */
static bool get_int(struct loader *l, struct fy_node *v, const char *key, int line,
                    long long min, long long max, long long *out)
{
    char *s = get_string(l, v, key, line);
    if (!s) {
        return false;
    }
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    bool ok = !errno && end != s && !*end && n >= min && n <= max;
    if (ok) {
        *out = n;
    } else {
        problem(l, line, "'%s' must be an integer from %lld to %lld, not '%s'", key, min, max, s);
    }
    free(s);
    return ok;
}

/* ---- key tables ---- */

enum field_kind {
    FIELD_STRING,     /* char * */
    FIELD_OPT_STRING, /* char *, NULL for YAML null */
    FIELD_BOOL,       /* bool: true/false, yes/no, on/off */
    FIELD_INT,        /* int, from min to max */
    FIELD_INT64,      /* int64_t, from min to max */
    FIELD_SIZE,       /* size_t, from min to max */
    FIELD_CHOICE,     /* int or enum: a name that `parse` turns into a value >= 0 */
    FIELD_SECTION,    /* a nested mapping described by `section` */
    FIELD_CUSTOM,     /* loaded by `custom` */
};

/* Reports a problem when a string value, already stored, is not valid. */
typedef void field_check_fn(struct loader *l, int line, const char *value);
/* Loads a value the kinds cannot describe into `base`, the table's struct. */
typedef void field_load_fn(struct loader *l, struct fy_node *v, int line, void *base);

struct field {
    const char *key;
    enum field_kind kind;
    size_t offset;                /* into the struct the table describes */
    long long min, max;           /* integer kinds */
    field_check_fn *check;        /* string kinds, optional */
    int (*parse)(const char *);   /* FIELD_CHOICE: the value, or -1 */
    const char *choices;          /* FIELD_CHOICE: the names, for the problem */
    field_load_fn *custom;        /* FIELD_CUSTOM */
    const struct field *section;  /* FIELD_SECTION; offsets into the same struct */
};

#define CONFIG_FIELD(member) offsetof(struct config, member)

static void load_map(struct loader *l, struct fy_node *m, const struct field *table, void *base,
                     const char *what, const char *prefix);

static void load_field(struct loader *l, const struct field *f, struct fy_node *v, int line,
                       void *base)
{
    void *dst = (char *)base + f->offset;
    long long n;
    switch (f->kind) {
    case FIELD_STRING:
    case FIELD_OPT_STRING: {
        bool unset = f->kind == FIELD_OPT_STRING && is_null(v);
        char *s = unset ? NULL : get_string(l, v, f->key, line);
        if (s || unset) {
            free(*(char **)dst);
            *(char **)dst = s;
        }
        if (s && f->check) {
            f->check(l, line, s);
        }
        break;
    }
    case FIELD_BOOL:
        get_bool(l, v, f->key, line, dst);
        break;
    case FIELD_INT:
        if (get_int(l, v, f->key, line, f->min, f->max, &n)) {
            *(int *)dst = (int)n;
        }
        break;
    case FIELD_INT64:
        if (get_int(l, v, f->key, line, f->min, f->max, &n)) {
            *(int64_t *)dst = n;
        }
        break;
    case FIELD_SIZE:
        if (get_int(l, v, f->key, line, f->min, f->max, &n)) {
            *(size_t *)dst = (size_t)n;
        }
        break;
    case FIELD_CHOICE: {
        char *s = get_string(l, v, f->key, line);
        int value = s ? f->parse(s) : 0;
        if (value < 0) {
            problem(l, line, "'%s' must be %s, not '%s'", f->key, f->choices, s);
        } else if (s) {
            *(int *)dst = value;
        }
        free(s);
        break;
    }
    case FIELD_SECTION: {
        if (!v || !fy_node_is_mapping(v)) {
            problem(l, line, "'%s' must be a mapping", f->key);
            break;
        }
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "%s.", f->key);
        load_map(l, v, f->section, base, f->key, prefix);
        break;
    }
    case FIELD_CUSTOM:
        f->custom(l, v, line, base);
        break;
    }
}

/*
 * Loads the mapping `m` into `base` by `table`, which ends with a NULL key.
 * Problems name the mapping as "<what> keys must be strings" and a key
 * as "unknown key '<prefix><key>'".
 */
static void load_map(struct loader *l, struct fy_node *m, const struct field *table, void *base,
                     const char *what, const char *prefix)
{
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(m, &it))) {
        struct fy_node *k = fy_node_pair_key(pair);
        const char *key = fy_node_get_scalar0(k);
        int kl = node_line(k);
        if (!key) {
            problem(l, kl, "%s keys must be strings", what);
            continue;
        }
        const struct field *f = table;
        while (f->key && strcmp(f->key, key) != 0) {
            f++;
        }
        if (!f->key) {
            problem(l, kl, "unknown key '%s%s'", prefix, key);
            continue;
        }
        load_field(l, f, fy_node_pair_value(pair), kl, base);
    }
}

/* Frees the string fields of `table` (and its sections) in `base`. */
static void free_strings(const struct field *table, void *base)
{
    for (const struct field *f = table; f->key; f++) {
        if (f->kind == FIELD_STRING || f->kind == FIELD_OPT_STRING) {
            free(*(char **)((char *)base + f->offset));
        } else if (f->kind == FIELD_SECTION) {
            free_strings(f->section, base);
        }
    }
}

/* ---- value checks ---- */

static void check_server_name(struct loader *l, int line, const char *s)
{
    if (!id_server_name_valid(s, strlen(s))) {
        problem(l, line, "'server_name' must be a DNS name or IP literal with optional port, "
                         "not '%s'", s);
    }
}

static void check_baseurl(struct loader *l, int line, const char *s)
{
    if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
        problem(l, line, "'public_baseurl' must start with http:// or https://");
    }
}

static void check_delegation(struct loader *l, int line, const char *s)
{
    if (!id_server_name_valid(s, strlen(s))) {
        problem(l, line, "'well_known.server' must be a host with optional port");
    }
}

static void check_room_version(struct loader *l, int line, const char *s)
{
    if (!roomver_get(s)) {
        problem(l, line, "'default_room_version' must be one of 1-12, not '%s'", s);
    }
}

static void check_public_key(struct loader *l, int line, const char *s)
{
    unsigned char raw[64];
    if (keys_b64_decode(s, strlen(s), raw) != 32) {
        problem(l, line, "'key' must be an unpadded base64 ed25519 public key");
    }
}

/* ---- listeners ---- */

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

static void load_bind(struct loader *l, struct fy_node *v, int line, void *base)
{
    struct config_listener *out = base;
    char *s = get_string(l, v, "bind", line);
    if (s && !parse_bind(s, &out->bind_host, &out->port)) {
        problem(l, line, "'bind' must be HOST:PORT or [IPV6]:PORT, not '%s'", s);
    }
    free(s);
}

static void load_resources(struct loader *l, struct fy_node *v, int line, void *base)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"client", RESOURCE_CLIENT}, {"federation", RESOURCE_FEDERATION},
                 {"media", RESOURCE_MEDIA},   {"keys", RESOURCE_KEYS},
                 {"health", RESOURCE_HEALTH}};
    struct config_listener *out = base;
    if (!v || !fy_node_is_sequence(v)) {
        problem(l, line, "'resources' must be a list");
        return;
    }
    out->resources = 0;
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(v, &it))) {
        const char *r = fy_node_is_scalar(item) ? fy_node_get_scalar0(item) : NULL;
        int il = node_line(item) ? node_line(item) : line;
        unsigned bit = 0;
        for (size_t i = 0; r && !bit && i < sizeof(names) / sizeof(names[0]); i++) {
            if (strcmp(names[i].name, r) == 0) {
                bit = names[i].bit;
            }
        }
        if (!r) {
            problem(l, il, "resources must be strings");
        } else if (!bit) {
            problem(l, il,
                    "unknown resource '%s' (expected client, federation, media, keys, health)", r);
        }
        out->resources |= bit;
    }
}

#define LISTENER_FIELD(member) offsetof(struct config_listener, member)

static const struct field listener_fields[] = {
    {"bind", FIELD_CUSTOM, .custom = load_bind},
    {"tls", FIELD_BOOL, LISTENER_FIELD(tls)},
    {"tls_cert", FIELD_OPT_STRING, LISTENER_FIELD(tls_cert)},
    {"tls_key", FIELD_OPT_STRING, LISTENER_FIELD(tls_key)},
    {"resources", FIELD_CUSTOM, .custom = load_resources},
    {NULL},
};

static void load_listener(struct loader *l, struct fy_node *m, int line,
                          struct config_listener *out)
{
    memset(out, 0, sizeof(*out));
    out->resources = RESOURCE_CLIENT | RESOURCE_FEDERATION | RESOURCE_MEDIA | RESOURCE_KEYS;
    if (!fy_node_is_mapping(m)) {
        problem(l, line, "each listener must be a mapping");
        return;
    }
    load_map(l, m, listener_fields, out, "listener", "listeners[].");
    if (!out->bind_host) {
        problem(l, line, "listener has no valid 'bind'");
    }
    if (out->tls && (!out->tls_cert || !out->tls_key)) {
        problem(l, line, "a listener with 'tls: true' needs 'tls_cert' and 'tls_key'");
    }
}

static void release_listeners(struct config *c)
{
    for (size_t i = 0; i < c->n_listeners; i++) {
        free(c->listeners[i].bind_host);
        free_strings(listener_fields, &c->listeners[i]);
    }
    free(c->listeners);
}

static void load_listeners(struct loader *l, struct fy_node *v, int line, void *base)
{
    struct config *c = base;
    if (!v || !fy_node_is_sequence(v)) {
        problem(l, line, "'listeners' must be a list");
        return;
    }
    int n = fy_node_sequence_item_count(v);
    if (n <= 0) {
        problem(l, line, "'listeners' must not be empty");
        return;
    }
    release_listeners(c);
    c->listeners = xcalloc((size_t)n, sizeof(*c->listeners));
    c->n_listeners = (size_t)n;
    void *it = NULL;
    struct fy_node *item;
    size_t i = 0;
    while ((item = fy_node_sequence_iterate(v, &it)) && i < (size_t)n) {
        load_listener(l, item, line, &c->listeners[i++]);
    }
}

/* ---- old signing keys ---- */

static const struct field old_key_fields[] = {
    {"key", FIELD_STRING, offsetof(struct config_old_key, key), .check = check_public_key},
    {"expired_ts", FIELD_INT64, offsetof(struct config_old_key, expired_ts), .min = 0,
     .max = 9007199254740991LL},
    {NULL},
};

/*
 * old_signing_keys: {"ed25519:id": {key: "<base64 public key>", expired_ts: ms}}
 * Published as old_verify_keys so events signed with them still verify.
 */
static void load_old_keys(struct loader *l, struct fy_node *m, int line, void *base)
{
    struct config *c = base;
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
        struct config_old_key *ok = &c->old_keys[c->n_old_keys++];
        ok->key_id = xstrdup(key_id);
        ok->expired_ts = -1;
        char prefix[300];
        snprintf(prefix, sizeof(prefix), "old_signing_keys.%s.", key_id);
        load_map(l, v, old_key_fields, ok, key_id, prefix);
        if (!ok->key || ok->expired_ts < 0) {
            problem(l, kl, "'%s' needs 'key' and 'expired_ts'", key_id);
        }
    }
}

/* ---- sections ---- */

static int engine_parse(const char *s)
{
    if (strcmp(s, "sqlite") == 0) {
        return DB_ENGINE_SQLITE;
    }
    if (strcmp(s, "postgres") == 0 || strcmp(s, "postgresql") == 0) {
        return DB_ENGINE_POSTGRES;
    }
    return -1;
}

_Static_assert(sizeof(enum config_db_engine) == sizeof(int), "FIELD_CHOICE stores an int");

static const struct field database_fields[] = {
    {"engine", FIELD_CHOICE, CONFIG_FIELD(database.engine), .parse = engine_parse,
     .choices = "sqlite or postgres"},
    {"path", FIELD_STRING, CONFIG_FIELD(database.path)},
    {"conninfo", FIELD_OPT_STRING, CONFIG_FIELD(database.conninfo)},
    {NULL},
};

static const struct field registration_fields[] = {
    {"enabled", FIELD_BOOL, CONFIG_FIELD(registration.enabled)},
    {"tokens_required", FIELD_BOOL, CONFIG_FIELD(registration.tokens_required)},
    {"shared_secret", FIELD_OPT_STRING, CONFIG_FIELD(registration.shared_secret)},
    {"guests", FIELD_BOOL, CONFIG_FIELD(registration.guests)},
    {NULL},
};

static const struct field rate_limits_fields[] = {
    {"enabled", FIELD_BOOL, CONFIG_FIELD(rate_limits.enabled)},
    {NULL},
};

static const struct field federation_fields[] = {
    {"verify_tls", FIELD_BOOL, CONFIG_FIELD(federation.verify_tls)},
    {"extra_ca_file", FIELD_OPT_STRING, CONFIG_FIELD(federation.extra_ca_file)},
    {"retry_min_ms", FIELD_INT64, CONFIG_FIELD(federation.retry_min_ms), .min = 10,
     .max = 86400000},
    {"retry_max_ms", FIELD_INT64, CONFIG_FIELD(federation.retry_max_ms), .min = 10,
     .max = 604800000},
    {NULL},
};

static const struct field well_known_fields[] = {
    {"serve_server", FIELD_BOOL, CONFIG_FIELD(well_known.serve_server)},
    {"server", FIELD_OPT_STRING, CONFIG_FIELD(well_known.server), .check = check_delegation},
    {"identity_server", FIELD_OPT_STRING, CONFIG_FIELD(well_known.identity_server)},
    {NULL},
};

static const struct field presence_fields[] = {
    {"enabled", FIELD_BOOL, CONFIG_FIELD(presence.enabled)},
    {"idle_timeout_ms", FIELD_INT64, CONFIG_FIELD(presence.idle_timeout_ms), .min = 100,
     .max = 604800000},
    {"offline_timeout_ms", FIELD_INT64, CONFIG_FIELD(presence.offline_timeout_ms), .min = 100,
     .max = 604800000},
    {NULL},
};

static const struct field root_fields[] = {
    {"server_name", FIELD_STRING, CONFIG_FIELD(server_name), .check = check_server_name},
    {"public_baseurl", FIELD_STRING, CONFIG_FIELD(public_baseurl), .check = check_baseurl},
    {"listeners", FIELD_CUSTOM, .custom = load_listeners},
    {"database", FIELD_SECTION, .section = database_fields},
    {"signing_key_path", FIELD_STRING, CONFIG_FIELD(signing_key_path)},
    {"media_path", FIELD_STRING, CONFIG_FIELD(media_path)},
    {"registration", FIELD_SECTION, .section = registration_fields},
    {"rate_limits", FIELD_SECTION, .section = rate_limits_fields},
    {"federation", FIELD_SECTION, .section = federation_fields},
    {"well_known", FIELD_SECTION, .section = well_known_fields},
    {"presence", FIELD_SECTION, .section = presence_fields},
    {"log_level", FIELD_CHOICE, CONFIG_FIELD(log_level), .parse = log_level_parse,
     .choices = "debug, info, warn or error"},
    {"default_room_version", FIELD_STRING, CONFIG_FIELD(default_room_version),
     .check = check_room_version},
    {"old_signing_keys", FIELD_CUSTOM, .custom = load_old_keys},
    {"workers", FIELD_INT, CONFIG_FIELD(workers), .min = 0, .max = 256},
    {"max_request_bytes", FIELD_SIZE, CONFIG_FIELD(max_request_bytes), .min = 1024,
     .max = 1LL << 30},
    {NULL},
};

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
    c->federation.retry_min_ms = 1000;
    c->federation.retry_max_ms = 3600000;
    c->well_known.serve_server = true;
    c->presence.enabled = true;
    c->presence.idle_timeout_ms = 300000;
    c->presence.offline_timeout_ms = 30000;
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
    load_map(&l, root, root_fields, &c, "top-level", "");
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
    free_strings(root_fields, c); /* every string key, sections included */
    release_listeners(c);
    for (size_t i = 0; i < c->n_old_keys; i++) {
        free(c->old_keys[i].key_id);
        free_strings(old_key_fields, &c->old_keys[i]);
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
            "  retry_min_ms: 1000             # a failed transaction is retried after this,\n"
            "  retry_max_ms: 3600000          # doubling per failure up to this (per server)\n"
            "\n"
            "well_known:\n"
            "  serve_server: true             # answer /.well-known/matrix/server\n"
            "  server: null                   # delegation target; default: server_name\n"
            "  identity_server: null          # m.identity_server base URL for clients\n"
            "\n"
            "presence:\n"
            "  enabled: true                  # false: no presence tracking or events\n"
            "  idle_timeout_ms: 300000        # online -> unavailable after no activity\n"
            "  offline_timeout_ms: 30000      # -> offline after no /sync for this long\n"
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
