/*
 * The myelin binary: command-line parsing, start-up and shutdown.
 *
 *   myelin init --server-name NAME --data-dir DIR
 *   myelin serve --config FILE
 *   myelin register-user --config FILE --user NAME --password PW [--admin]
 *   myelin version
 *
 * `serve` blocks SIGINT and SIGTERM in every thread and waits for them
 * here; on either it stops accepting, lets requests in progress finish,
 * and closes the database, so nothing acknowledged is lost.
 */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "config.h"
#include "core/id.h"
#include "core/keys.h"
#include "http/req.h"
#include "http/server.h"
#include "myelin_version.h"
#include "store/store.h"
#include "svc/auth.h"
#include "svc/cpupool.h"
#include "svc/fedclient.h"
#include "svc/fedqueue.h"
#include "svc/keyring.h"
#include "svc/nonce.h"
#include "svc/notify.h"
#include "svc/streams.h"
#include "svc/typing.h"
#include "svc/lazy_members.h"
#include "svc/password.h"
#include "svc/push.h"
#include "svc/presence.h"
#include "svc/ratelimit.h"
#include "svc/room.h"
#include "svc/room.h"
#include "svc/srv.h"
#include "svc/uia.h"

#define SHUTDOWN_GRACE_MS 10000
/* Lazy-loaded member events remembered per device (svc/lazy_members). */
#define LAZY_MEMBERS_MAX 200000

static void usage(FILE *f)
{
    fprintf(f, "usage:\n"
               "  myelin init --server-name NAME --data-dir DIR\n"
               "  myelin serve --config FILE\n"
               "  myelin register-user --config FILE --user NAME --password PW [--admin]\n"
               "  myelin version\n");
}

/* Finds "--name VALUE" in argv; returns VALUE or NULL. */
static const char *opt(int argc, char **argv, const char *name)
{
    for (int i = 2; i < argc - 1; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return NULL;
}

static bool flag(int argc, char **argv, const char *name)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* Rejects options this command does not know, so typos are not ignored. */
static bool check_opts(int argc, char **argv, const char *const *with_value,
                       const char *const *flags)
{
    for (int i = 2; i < argc; i++) {
        bool known = false;
        for (const char *const *o = with_value; *o; o++) {
            if (strcmp(argv[i], *o) == 0 && i + 1 < argc) {
                known = true;
                i++;
                break;
            }
        }
        for (const char *const *o = flags; !known && *o; o++) {
            known = strcmp(argv[i], *o) == 0;
        }
        if (!known) {
            fprintf(stderr, "myelin %s: unexpected argument '%s'\n", argv[1], argv[i]);
            return false;
        }
    }
    return true;
}

static int mkdir_p(const char *dir, mode_t mode)
{
    char tmp[4096];
    if (strlen(dir) >= sizeof(tmp)) {
        return -1;
    }
    strcpy(tmp, dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

static int cmd_init(int argc, char **argv)
{
    static const char *const vals[] = {"--server-name", "--data-dir", NULL};
    static const char *const flags[] = {NULL};
    const char *name = opt(argc, argv, "--server-name");
    const char *dir = opt(argc, argv, "--data-dir");
    if (!check_opts(argc, argv, vals, flags) || !name || !dir) {
        usage(stderr);
        return 2;
    }
    if (mkdir_p(dir, 0700) != 0) {
        fprintf(stderr, "myelin init: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/myelin.yaml", dir);
    if (access(path, F_OK) == 0) {
        fprintf(stderr, "myelin init: %s already exists; not overwriting it\n", path);
        return 1;
    }
    if (config_write_default(path, name, dir) != 0) {
        return 1;
    }
    /* Check that what we wrote loads, so init never leaves a broken file. */
    struct config cfg;
    if (config_load(path, &cfg) != 0) {
        fprintf(stderr, "myelin init: server name '%s' is not valid\n", name);
        unlink(path);
        return 1;
    }
    int rc = 0;
    if (access(cfg.signing_key_path, F_OK) != 0) {
        struct signing_key key;
        rc = keys_generate_file(cfg.signing_key_path, &key) ? 1 : 0;
        if (rc == 0) {
            printf("generated signing key %s in %s\n", key.key_id, cfg.signing_key_path);
        }
        keys_wipe(&key);
    }
    if (rc == 0) {
        printf("wrote %s\n", path);
    }
    config_release(&cfg);
    return rc;
}

static int load_config(const char *cmd, int argc, char **argv, struct config *cfg)
{
    const char *path = opt(argc, argv, "--config");
    if (!path) {
        fprintf(stderr, "myelin %s: --config FILE is required\n", cmd);
        return 2;
    }
    if (config_load(path, cfg) != 0) {
        return 1;
    }
    log_set_level((enum log_level)cfg->log_level);
    return 0;
}

static int cmd_register_user(int argc, char **argv)
{
    static const char *const vals[] = {"--config", "--user", "--password", NULL};
    static const char *const flags[] = {"--admin", NULL};
    if (!check_opts(argc, argv, vals, flags)) {
        usage(stderr);
        return 2;
    }
    const char *user = opt(argc, argv, "--user");
    const char *password = opt(argc, argv, "--password");
    if (!user || !password) {
        usage(stderr);
        return 2;
    }
    struct config cfg;
    int rc = load_config("register-user", argc, argv, &cfg);
    if (rc) {
        return rc;
    }
    /* Accept "@alice:server" as well as "alice". */
    char localpart[256];
    const char *lp = user;
    size_t lp_len = strlen(user);
    if (user[0] == '@') {
        const char *colon = strchr(user, ':');
        if (!colon || strcmp(colon + 1, cfg.server_name) != 0) {
            fprintf(stderr, "myelin register-user: %s is not a user of %s\n", user,
                    cfg.server_name);
            config_release(&cfg);
            return 1;
        }
        lp = user + 1;
        lp_len = (size_t)(colon - lp);
    }
    char user_id[600];
    snprintf(localpart, sizeof(localpart), "%.*s", (int)lp_len, lp);
    snprintf(user_id, sizeof(user_id), "@%s:%s", localpart, cfg.server_name);
    if (lp_len >= sizeof(localpart) || !id_localpart_valid(localpart, strlen(localpart)) ||
        strlen(user_id) > ID_MAX_LEN) {
        fprintf(stderr,
                "myelin register-user: '%s' is not a valid user name (use a-z, 0-9 and ._=-/+)\n",
                user);
        config_release(&cfg);
        return 1;
    }
    char hash[crypto_pwhash_STRBYTES];
    if (password_hash_now(password, hash, sizeof(hash)) != 0) {
        fprintf(stderr, "myelin register-user: out of memory hashing the password\n");
        config_release(&cfg);
        return 1;
    }
    struct store *store = NULL;
    struct store_conn *db = NULL;
    rc = store_open(&cfg.database, &store);
    if (rc == 0) {
        rc = store_conn_open(store, &db);
    }
    if (rc == 0) {
        rc = store_user_create(db, user_id, hash, flag(argc, argv, "--admin"), false,
                               req_now_ms());
        if (rc == -ERR_USER_IN_USE) {
            fprintf(stderr, "myelin register-user: %s already exists\n", user_id);
        } else if (rc == 0) {
            printf("registered %s%s\n", user_id, flag(argc, argv, "--admin") ? " (admin)" : "");
        } else {
            fprintf(stderr, "myelin register-user: could not create %s\n", user_id);
        }
    } else {
        fprintf(stderr, "myelin register-user: cannot open the database\n");
    }
    if (db) {
        store_conn_close(db);
    }
    if (store) {
        store_close(store);
    }
    sodium_memzero(hash, sizeof(hash));
    config_release(&cfg);
    return rc ? 1 : 0;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Threads for password hashing: half the cores, at least one. */
static int cpu_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 2 ? (int)(cores / 2) : 1;
}

/* Frees the services hanging off srv (not the store or config). */
static void srv_release(struct srv *srv)
{
    fedqueue_stop(srv->fedqueue); /* before the client: no new transactions */
    fedclient_stop(srv->fed); /* nothing waits on a remote server from here on */
    cpupool_free(srv->cpu);
    auth_cache_free(srv->auth);
    uia_free(srv->uia);
    ratelimit_free(srv->rl);
    nonces_free(srv->nonces);
    rooms_stop(srv->rooms);
    push_stop(srv->push); /* after the writer: its last commits reach the notifier */
    push_free(srv->push);
    rooms_free(srv->rooms);
    typing_free(srv->typing);
    lazy_members_free(srv->lazy_members);
    presence_free(srv->presence);
    notify_free(srv->notify);
    streams_free(srv->streams);
    keyring_free(srv->keyring);
    fedqueue_free(srv->fedqueue); /* after fedclient_stop: no answer comes later */
    fedclient_free(srv->fed);
}

/* Reads where the numeric sequences of the room service stand. */
static int load_sequences(struct srv *srv)
{
    struct store_conn *db = NULL;
    int rc = store_conn_open(srv->store, &db);
    if (rc == 0) {
        rc = rooms_load_sequences(srv->rooms, db);
        push_set_stream_pos(srv->push, rooms_stream_pos(srv->rooms));
        int64_t pos[STREAM_N] = {0};
        if (rc == 0) {
            rc = store_stream_positions(db, pos, STREAM_N);
        }
        for (int s = 0; rc == 0 && s < STREAM_N; s++) {
            if (s != STREAM_EVENTS && s != STREAM_TYPING && s != STREAM_UNREAD) {
                streams_set(srv->streams, (enum stream)s, pos[s]);
            }
        }
        store_conn_close(db);
    }
    if (rc) {
        LOG_ERROR("main", "cannot read the room sequences from the database");
    }
    return rc;
}

static int cmd_serve(int argc, char **argv)
{
    static const char *const vals[] = {"--config", NULL};
    static const char *const flags[] = {NULL};
    if (!check_opts(argc, argv, vals, flags)) {
        usage(stderr);
        return 2;
    }
    struct config cfg;
    int rc = load_config("serve", argc, argv, &cfg);
    if (rc) {
        return rc;
    }
    struct srv srv = {0};
    srv.cfg = &cfg;
    srv.start_ts = req_now_ms();
    atomic_init(&srv.stopping, false);

    if (access(cfg.signing_key_path, F_OK) != 0) {
        if (keys_generate_file(cfg.signing_key_path, &srv.key) != 0) {
            config_release(&cfg);
            return 1;
        }
        LOG_INFO("main", "generated signing key %s in %s", srv.key.key_id, cfg.signing_key_path);
    } else if (keys_load(cfg.signing_key_path, &srv.key) != 0) {
        config_release(&cfg);
        return 1;
    }

    /* Block the stop signals before any thread starts, so every thread
     * inherits the mask and only sigwait below receives them. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    rc = store_open(&cfg.database, &srv.store);
    if (rc) {
        LOG_ERROR("main", "cannot open the %s database",
                  cfg.database.engine == DB_ENGINE_POSTGRES ? "postgres" : "sqlite");
        keys_wipe(&srv.key);
        config_release(&cfg);
        return 1;
    }
    srv.auth = auth_cache_new();
    srv.cpu = cpupool_new(cpu_threads());
    srv.uia = uia_new();
    srv.rl = ratelimit_new();
    srv.nonces = nonces_new();
    srv.rooms = rooms_new();
    srv.notify = notify_new();
    srv.streams = streams_new(srv.rooms);
    srv.typing = typing_new(srv.streams, srv.notify);
    srv.lazy_members = lazy_members_new(LAZY_MEMBERS_MAX);
    srv.presence = presence_new(cfg.presence.enabled, cfg.presence.idle_timeout_ms,
                                cfg.presence.offline_timeout_ms, srv.streams, srv.notify);
    srv.push = push_new(cfg.server_name);
    srv.fed = fedclient_new(cfg.server_name, &srv.key, cfg.federation.verify_tls,
                            cfg.federation.extra_ca_file);
    srv.keyring = keyring_new(srv.fed, cfg.server_name, &srv.key);
    srv.fedqueue = fedqueue_new(srv.store, srv.fed, cfg.server_name, cfg.federation.retry_min_ms,
                                cfg.federation.retry_max_ms);
    rooms_set_fedqueue(srv.rooms, srv.fedqueue);
    presence_set_fedqueue(srv.presence, srv.fedqueue);
    /* Commits go to the push thread, which stores push actions, then wakes /sync. */
    push_set_next_listener(srv.push, notify_on_commit, srv.notify);
    push_set_notify(srv.push, srv.notify);
    streams_set_push(srv.streams, srv.push);
    rooms_set_commit_listener(srv.rooms, push_on_commit, srv.push);
    rc = load_sequences(&srv);
    if (rc == 0) {
        rc = notify_start(srv.notify);
    }
    if (rc == 0) {
        rc = typing_start(srv.typing);
    }
    if (rc == 0) {
        rc = presence_start(srv.presence, srv.store);
    }
    if (rc == 0) {
        rc = push_start(srv.push, srv.store);
    }
    if (rc == 0) {
        rc = rooms_start(srv.rooms, srv.store);
    }
    if (rc == 0 && srv.fed) {
        rc = fedqueue_start(srv.fedqueue);
    }
    if (rc == 0) {
        rc = http_server_start(&srv, &srv.http);
    }
    if (rc) {
        srv_release(&srv);
        store_close(srv.store);
        keys_wipe(&srv.key);
        config_release(&cfg);
        return 1;
    }
    LOG_INFO("main", "myelin %s serving %s (%s database, signing key %s)", MYELIN_VERSION,
             cfg.server_name, store_engine_name(srv.store), srv.key.key_id);

    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0) {
    }
    LOG_INFO("main", "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    atomic_store(&srv.stopping, true);
    typing_stop(srv.typing);
    notify_stop(srv.notify); /* answers the parked long polls */
    fedqueue_stop(srv.fedqueue); /* no new transactions (the queue stays stored) */
    fedclient_stop(srv.fed);  /* and the requests waiting on other servers */
    http_server_stop(srv.http, SHUTDOWN_GRACE_MS);
    presence_stop(srv.presence); /* writes what the last requests changed */
    rooms_stop(srv.rooms);
    srv_release(&srv);
    store_close(srv.store);
    keys_wipe(&srv.key);
    config_release(&cfg);
    LOG_INFO("main", "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "myelin: libsodium failed to initialise\n");
        return 1;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("myelin %s\n", MYELIN_VERSION);
        return 0;
    }
    if (strcmp(cmd, "init") == 0) {
        return cmd_init(argc, argv);
    }
    if (strcmp(cmd, "serve") == 0) {
        /* Before any thread starts: libcurl's global state (federation). */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
            fprintf(stderr, "myelin: libcurl failed to initialise\n");
            return 1;
        }
        int rc = cmd_serve(argc, argv);
        curl_global_cleanup();
        return rc;
    }
    if (strcmp(cmd, "register-user") == 0) {
        return cmd_register_user(argc, argv);
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "myelin: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
