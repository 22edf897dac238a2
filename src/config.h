/*
 * Server configuration: the parsed form of myelin.yaml. config_load reads
 * and validates the file (unknown keys and bad values are reported with
 * file:line and refuse start-up); config_write_default writes the
 * commented default file that `myelin init` creates.
 */
#ifndef MYELIN_CONFIG_H
#define MYELIN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum config_resource {
    RESOURCE_CLIENT = 1 << 0,
    RESOURCE_FEDERATION = 1 << 1,
    RESOURCE_MEDIA = 1 << 2,
    RESOURCE_KEYS = 1 << 3,
    RESOURCE_HEALTH = 1 << 4,
};

struct config_listener {
    char *bind_host;   /* "127.0.0.1", "::1", "0.0.0.0" */
    uint16_t port;
    bool tls;
    char *tls_cert;    /* PEM file paths when tls */
    char *tls_key;
    unsigned resources; /* bitmask of enum config_resource */
};

enum config_db_engine {
    DB_ENGINE_SQLITE = 0,
    DB_ENGINE_POSTGRES = 1,
};

struct config_db {
    enum config_db_engine engine;
    char *path;      /* sqlite file, or ":memory:" */
    char *conninfo;  /* libpq connection string */
};

struct config_old_key {
    char *key_id;       /* "ed25519:abc" */
    char *key;          /* unpadded base64 public key */
    int64_t expired_ts; /* ms since the epoch when it stopped being used */
};

struct config {
    char *path;               /* the file this was loaded from */
    char *server_name;
    char *public_baseurl;     /* always ends with '/' */
    struct config_listener *listeners;
    size_t n_listeners;
    struct config_db database;
    char *signing_key_path;
    char *media_path;
    struct {
        bool enabled;
        bool tokens_required;
        char *shared_secret;  /* NULL when unset */
        bool guests;
    } registration;
    struct {
        bool enabled;
    } rate_limits;
    struct {
        bool verify_tls;
        char *extra_ca_file;  /* NULL when unset */
        int64_t retry_min_ms; /* outbound queue backoff: first retry after */
        int64_t retry_max_ms; /* ... doubling up to this */
    } federation;
    struct {
        bool serve_server;     /* answer /.well-known/matrix/server */
        char *server;          /* m.server delegation target; NULL = server_name */
        char *identity_server; /* m.identity_server base_url for clients, or NULL */
    } well_known;
    struct {
        bool enabled;               /* false: presence is not tracked at all */
        int64_t idle_timeout_ms;    /* online -> unavailable without activity */
        int64_t offline_timeout_ms; /* -> offline without a /sync in flight */
    } presence;
    char *default_room_version; /* for new rooms; "12" unless configured */
    struct config_old_key *old_keys; /* keys this server signed with before */
    size_t n_old_keys;
    int log_level;            /* enum log_level */
    int workers;              /* request worker threads; 0 = number of cores */
    size_t max_request_bytes; /* default JSON body limit */
};

/*
 * Loads and validates `path`. On failure prints "file:line: problem" lines
 * to stderr and returns a negative ERR_CONFIG; *out is untouched.
 */
int config_load(const char *path, struct config *out);
void config_release(struct config *c);

/* Fills defaults for a server called `server_name` with data in `data_dir`. */
void config_defaults(struct config *c, const char *server_name, const char *data_dir);

/* Writes the commented default configuration file (mode 0644). */
int config_write_default(const char *path, const char *server_name, const char *data_dir);

#endif
