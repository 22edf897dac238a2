/*
 * Unit tests for config.c: the full key set loads into the right fields,
 * defaults apply, and every kind of mistake is refused with file:line.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "config.h"
#include "unit.h"

static char *write_tmp(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/myelin-cfg-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* Loads `text`, capturing what config_load prints to stderr into `err`. */
static int load_text(const char *text, struct config *c, char *err, size_t err_size)
{
    char *path = write_tmp(text);
    char errpath[] = "/tmp/myelin-cfgerr-XXXXXX";
    int efd = mkstemp(errpath);
    fflush(stderr);
    int saved = dup(2);
    dup2(efd, 2);
    int rc = config_load(path, c);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(efd, 0, SEEK_SET);
    ssize_t n = read(efd, err, err_size - 1);
    err[n > 0 ? n : 0] = '\0';
    close(efd);
    unlink(errpath);
    unlink(path);
    return rc;
}

static const char full[] =
    "server_name: \"127.0.0.1:8448\"\n"
    "public_baseurl: \"http://127.0.0.1:8008\"\n"
    "listeners:\n"
    "  - bind: \"127.0.0.1:8008\"\n"
    "    tls: false\n"
    "    resources: [client, federation, media, keys]\n"
    "  - bind: \"[::1]:8448\"\n"
    "    tls: true\n"
    "    tls_cert: \"/path/cert.pem\"\n"
    "    tls_key: \"/path/key.pem\"\n"
    "    resources: [federation, keys]\n"
    "database:\n"
    "  engine: postgres\n"
    "  path: \"/d/myelin.db\"\n"
    "  conninfo: \"host=/tmp dbname=m\"\n"
    "signing_key_path: \"/d/signing.key\"\n"
    "media_path: \"/d/media\"\n"
    "registration:\n"
    "  enabled: true\n"
    "  tokens_required: true\n"
    "  shared_secret: \"s3cret\"\n"
    "  guests: true\n"
    "rate_limits:\n"
    "  enabled: false\n"
    "federation:\n"
    "  verify_tls: false\n"
    "  extra_ca_file: \"/path/ca.pem\"\n"
    "log_level: warn\n"
    "default_room_version: \"10\"\n"
    "old_signing_keys:\n"
    "  \"ed25519:old\":\n"
    "    key: \"XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gDh3v4nR+NA\"\n"
    "    expired_ts: 1700000000000\n"
    "workers: 3\n"
    "max_request_bytes: 2048\n"
    "well_known:\n"
    "  serve_server: off\n"
    "  server: \"m.example.org:443\"\n"
    "  identity_server: \"https://id.example.org\"\n";

static void test_full_config(void **state)
{
    struct config c;
    char err[1024];
    assert_int_equal(load_text(full, &c, err, sizeof(err)), 0);
    assert_string_equal(c.server_name, "127.0.0.1:8448");
    assert_string_equal(c.public_baseurl, "http://127.0.0.1:8008/"); /* slash added */
    assert_int_equal(c.n_listeners, 2);
    assert_string_equal(c.listeners[0].bind_host, "127.0.0.1");
    assert_int_equal(c.listeners[0].port, 8008);
    assert_false(c.listeners[0].tls);
    assert_int_equal(c.listeners[0].resources,
                     RESOURCE_CLIENT | RESOURCE_FEDERATION | RESOURCE_MEDIA | RESOURCE_KEYS);
    assert_string_equal(c.listeners[1].bind_host, "::1");
    assert_int_equal(c.listeners[1].port, 8448);
    assert_true(c.listeners[1].tls);
    assert_string_equal(c.listeners[1].tls_cert, "/path/cert.pem");
    assert_int_equal(c.listeners[1].resources, RESOURCE_FEDERATION | RESOURCE_KEYS);
    assert_int_equal(c.database.engine, DB_ENGINE_POSTGRES);
    assert_string_equal(c.database.conninfo, "host=/tmp dbname=m");
    assert_string_equal(c.signing_key_path, "/d/signing.key");
    assert_true(c.registration.enabled);
    assert_true(c.registration.tokens_required);
    assert_true(c.registration.guests);
    assert_string_equal(c.registration.shared_secret, "s3cret");
    assert_false(c.rate_limits.enabled);
    assert_false(c.federation.verify_tls);
    assert_string_equal(c.federation.extra_ca_file, "/path/ca.pem");
    assert_int_equal(c.log_level, LOG_WARN);
    assert_int_equal(c.workers, 3);
    assert_string_equal(c.default_room_version, "10");
    assert_int_equal(c.n_old_keys, 1);
    assert_string_equal(c.old_keys[0].key_id, "ed25519:old");
    assert_string_equal(c.old_keys[0].key, "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gDh3v4nR+NA");
    assert_int_equal(c.old_keys[0].expired_ts, 1700000000000LL);
    assert_int_equal(c.max_request_bytes, 2048);
    assert_false(c.well_known.serve_server);
    assert_string_equal(c.well_known.server, "m.example.org:443");
    assert_string_equal(c.well_known.identity_server, "https://id.example.org");
    config_release(&c);
}

static void test_defaults(void **state)
{
    struct config c;
    char err[1024];
    assert_int_equal(load_text("server_name: example.org\n", &c, err, sizeof(err)), 0);
    assert_int_equal(c.database.engine, DB_ENGINE_SQLITE);
    assert_true(c.rate_limits.enabled);
    assert_true(c.federation.verify_tls);
    assert_false(c.registration.enabled);
    assert_null(c.registration.shared_secret);
    assert_string_equal(c.public_baseurl, "https://example.org/");
    assert_int_equal(c.n_listeners, 1);
    assert_int_equal(c.max_request_bytes, 1024 * 1024);
    assert_string_equal(c.default_room_version, "12");
    assert_int_equal(c.n_old_keys, 0);
    config_release(&c);

    /* YAML nulls mean "unset"; a quoted "null" is a string. */
    assert_int_equal(load_text("server_name: a.org\nregistration:\n  shared_secret: null\n"
                               "well_known:\n  server: ~\n  identity_server: \"null\"\n",
                               &c, err, sizeof(err)),
                     0);
    assert_null(c.registration.shared_secret);
    assert_null(c.well_known.server);
    assert_string_equal(c.well_known.identity_server, "null");
    config_release(&c);
}

struct bad_case {
    const char *text;
    const char *expect; /* substring of the message, including the line */
};

static void test_bad_configs(void **state)
{
    static const struct bad_case cases[] = {
        {"server_name: a.org\nbogus_key: 1\n", ":2: unknown key 'bogus_key'"},
        {"server_name: a.org\nregistration:\n  enabled: maybe\n", ":3: 'enabled' must be true"},
        {"server_name: a.org\nlisteners:\n  - bind: \"nonsense\"\n", ":3: 'bind' must be"},
        {"server_name: a.org\nlisteners:\n  - bind: \"1.2.3.4:99999\"\n", ":3: 'bind' must be"},
        {"server_name: a.org\nlisteners:\n  - bind: \"127.0.0.1:1\"\n    tls: true\n",
         "needs 'tls_cert' and 'tls_key'"},
        {"server_name: a.org\nlisteners:\n  - bind: \"127.0.0.1:1\"\n    resources: [chat]\n",
         ":4: unknown resource 'chat'"},
        {"server_name: \"bad name!\"\n", ":1: 'server_name' must be"},
        {"server_name: a.org\ndatabase:\n  engine: oracle\n", ":3: 'engine' must be"},
        {"server_name: a.org\ndatabase:\n  engine: postgres\n", "'database.conninfo' is required"},
        {"server_name: a.org\nworkers: lots\n", ":2: 'workers' must be an integer"},
        {"server_name: a.org\nlog_level: loud\n", ":2: 'log_level' must be"},
        {"server_name: a.org\nfederation:\n  verify: no\n", ":3: unknown key 'federation.verify'"},
        {"public_baseurl: \"http://x/\"\n", "'server_name' is required"},
        {"server_name: a.org\ndefault_room_version: \"13\"\n", ":2: 'default_room_version'"},
        {"server_name: a.org\nold_signing_keys:\n  \"ed25519:x\": {key: \"c2hvcnQ\", expired_ts: 1}\n",
         ":3: 'key' must be"},
        {"server_name: a.org\nold_signing_keys:\n  \"rsa:x\": {key: \"a\", expired_ts: 1}\n",
         ":3: old signing key IDs"},
        {"server_name: a.org\nold_signing_keys:\n  \"ed25519:x\":\n    expired_ts: 1\n"
         "    colour: 1\n",
         ":5: unknown key 'old_signing_keys.ed25519:x.colour'"},
        {"server_name: a.org\nold_signing_keys:\n  \"ed25519:x\":\n    expired_ts: 1\n",
         ":3: 'ed25519:x' needs 'key' and 'expired_ts'"},
        {"server_name: a.org\nlisteners:\n  - bind: \"127.0.0.1:1\"\n    colour: 1\n",
         ":4: unknown key 'listeners[].colour'"},
        {"server_name: a.org\nlisteners:\n  - tls: false\n", ":2: listener has no valid 'bind'"},
        {"server_name: a.org\ndatabase: sqlite\n", ":2: 'database' must be a mapping"},
        {"server_name: a.org\nrate_limits:\n  enabled: true\n  burst: 3\n",
         ":4: unknown key 'rate_limits.burst'"},
        {"server_name: a.org\nwell_known:\n  server: \"bad host!\"\n",
         ":3: 'well_known.server' must be"},
        {"server_name: a.org\npublic_baseurl: \"ftp://a.org/\"\n", ":2: 'public_baseurl' must"},
        {"server_name: a.org\nmax_request_bytes: 10\n",
         ":2: 'max_request_bytes' must be an integer from 1024"},
        {"server_name: a.org\nmedia_path: [a, b]\n", ":2: 'media_path' must be a string"},
        {"- just\n- a list\n", "must be a mapping"},
        {"server_name: [unclosed\n", "not a valid YAML document"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config c;
        char err[4096];
        int rc = load_text(cases[i].text, &c, err, sizeof(err));
        if (rc == 0) {
            config_release(&c);
            fail_msg("case %zu loaded but should fail: %s", i, cases[i].text);
        }
        if (!strstr(err, cases[i].expect)) {
            fail_msg("case %zu: expected '%s' in: %s", i, cases[i].expect, err);
        }
    }
}

static void test_default_file_loads(void **state)
{
    char dir[] = "/tmp/myelin-cfgdir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/myelin.yaml", dir);
    assert_int_equal(config_write_default(path, "chat.example.org", dir), 0);
    assert_int_not_equal(config_write_default(path, "chat.example.org", dir), 0);
    struct config c;
    assert_int_equal(config_load(path, &c), 0);
    assert_string_equal(c.server_name, "chat.example.org");
    char expect[300];
    snprintf(expect, sizeof(expect), "%s/myelin.db", dir);
    assert_string_equal(c.database.path, expect);
    assert_int_equal(c.listeners[0].port, 8008);
    config_release(&c);
    unlink(path);
    rmdir(dir);
}

int test_config(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_default_file_loads),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
