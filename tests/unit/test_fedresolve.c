/*
 * Unit tests for server discovery (spec: Server-Server API "Resolving
 * server names"), with fake well-known and SRV lookups: IP literals
 * (v4 and v6, with and without a port), an explicit port, well-known
 * delegation to each kind of delegated name (IP literal, explicit port,
 * SRV _matrix-fed then legacy _matrix, bare name on 8448), no well-known
 * (SRV, legacy SRV, 8448), cache lifetimes, and invalid names.
 */
#include <string.h>

#include "base/err.h"
#include "svc/fedresolve.h"
#include "unit.h"

struct fake {
    const char *wk_host;       /* answers well-known for this host */
    const char *wk_delegated;
    int64_t wk_cache_ms;
    const char *srv_name;      /* answers this SRV name */
    const char *srv_target;
    int srv_port;
    int wk_calls, srv_calls;
};

static int fake_wk(void *ctx, const char *hostname, char delegated[FED_NAME_MAX],
                   int64_t *cache_ms)
{
    struct fake *f = ctx;
    f->wk_calls++;
    if (f->wk_host && strcmp(f->wk_host, hostname) == 0) {
        strcpy(delegated, f->wk_delegated);
        *cache_ms = f->wk_cache_ms;
        return 1;
    }
    *cache_ms = FED_WELLKNOWN_ERROR_MS;
    return 0;
}

static int fake_srv(void *ctx, const char *name, char target[FED_NAME_MAX], int *port)
{
    struct fake *f = ctx;
    f->srv_calls++;
    if (f->srv_name && strcmp(f->srv_name, name) == 0) {
        strcpy(target, f->srv_target);
        *port = f->srv_port;
        return 1;
    }
    return 0;
}

static struct fed_target resolve(struct fake *f, const char *name, int want_rc)
{
    struct fed_lookups lk = {fake_wk, fake_srv, f};
    struct fed_target t;
    memset(&t, 0, sizeof(t));
    assert_int_equal(fed_resolve(name, &lk, 1000, &t), want_rc);
    return t;
}

static void ip_literals_and_ports(void **state)
{
    (void)state;
    struct fake f = {0};
    struct fed_target t = resolve(&f, "1.2.3.4", 0);
    assert_string_equal(t.tls_name, "1.2.3.4");
    assert_int_equal(t.port, 8448);
    assert_string_equal(t.host_header, "1.2.3.4");
    t = resolve(&f, "1.2.3.4:8449", 0);
    assert_int_equal(t.port, 8449);
    assert_string_equal(t.host_header, "1.2.3.4:8449");
    t = resolve(&f, "[::1]:8000", 0);
    assert_string_equal(t.tls_name, "[::1]");
    assert_int_equal(t.port, 8000);
    t = resolve(&f, "example.org:1234", 0);
    assert_string_equal(t.tls_name, "example.org");
    assert_int_equal(t.port, 1234);
    assert_string_equal(t.host_header, "example.org:1234");
    assert_string_equal(t.connect_host, "");
    /* None of these looked anything up. */
    assert_int_equal(f.wk_calls + f.srv_calls, 0);
    assert_true(t.expires_ms == 1000 + FED_STATIC_MS);
}

static void wellknown_delegation(void **state)
{
    (void)state;
    struct fake f = {.wk_host = "example.org", .wk_delegated = "5.6.7.8",
                     .wk_cache_ms = 60000};
    struct fed_target t = resolve(&f, "example.org", 0);
    assert_string_equal(t.tls_name, "5.6.7.8");
    assert_int_equal(t.port, 8448);
    assert_string_equal(t.host_header, "5.6.7.8");
    assert_true(t.expires_ms == 1000 + 60000);

    f.wk_delegated = "matrix.example.org:443";
    t = resolve(&f, "example.org", 0);
    assert_string_equal(t.tls_name, "matrix.example.org");
    assert_int_equal(t.port, 443);
    assert_string_equal(t.host_header, "matrix.example.org:443");
    assert_int_equal(f.srv_calls, 0);

    /* No port: SRV of the delegated name; the certificate stays its. */
    f.wk_delegated = "matrix.example.org";
    f.srv_name = "_matrix-fed._tcp.matrix.example.org";
    f.srv_target = "node1.example.net";
    f.srv_port = 8000;
    t = resolve(&f, "example.org", 0);
    assert_string_equal(t.tls_name, "matrix.example.org");
    assert_int_equal(t.port, 8000);
    assert_string_equal(t.connect_host, "node1.example.net");
    assert_int_equal(t.connect_port, 8000);
    assert_string_equal(t.host_header, "matrix.example.org");

    f.srv_name = "_matrix._tcp.matrix.example.org"; /* the deprecated name */
    t = resolve(&f, "example.org", 0);
    assert_string_equal(t.connect_host, "node1.example.net");

    f.srv_name = NULL;
    t = resolve(&f, "example.org", 0);
    assert_string_equal(t.tls_name, "matrix.example.org");
    assert_int_equal(t.port, 8448);
    assert_string_equal(t.connect_host, "");

    /* A cache time over 48 h is capped. */
    f.wk_cache_ms = 100LL * 3600 * 1000;
    t = resolve(&f, "example.org", 0);
    assert_true(t.expires_ms == 1000 + FED_WELLKNOWN_MAX_MS);

    /* An invalid delegated name counts as no well-known. */
    f.wk_delegated = "not a name";
    t = resolve(&f, "example.org", 0);
    assert_string_equal(t.tls_name, "example.org");
    assert_int_equal(t.port, 8448);
}

static void no_wellknown(void **state)
{
    (void)state;
    struct fake f = {.srv_name = "_matrix-fed._tcp.example.org", .srv_target = "hs.example.net",
                     .srv_port = 9000};
    struct fed_target t = resolve(&f, "example.org", 0);
    assert_string_equal(t.tls_name, "example.org");
    assert_int_equal(t.port, 9000);
    assert_string_equal(t.connect_host, "hs.example.net");
    assert_string_equal(t.host_header, "example.org");
    assert_true(t.expires_ms == 1000 + FED_WELLKNOWN_ERROR_MS);
    assert_int_equal(f.wk_calls, 1);

    f.srv_name = "_matrix._tcp.example.org";
    t = resolve(&f, "example.org", 0);
    assert_string_equal(t.connect_host, "hs.example.net");

    f.srv_name = NULL;
    t = resolve(&f, "example.org", 0);
    assert_string_equal(t.tls_name, "example.org");
    assert_int_equal(t.port, 8448);
    assert_string_equal(t.host_header, "example.org");
}

static void invalid_names(void **state)
{
    (void)state;
    struct fake f = {0};
    resolve(&f, "", -ERR_INVALID_PARAM);
    resolve(&f, "exa mple.org", -ERR_INVALID_PARAM);
    resolve(&f, "example.org:0", -ERR_INVALID_PARAM);
    resolve(&f, "example.org:99999", -ERR_INVALID_PARAM);
    resolve(&f, "[::1", -ERR_INVALID_PARAM);
    assert_int_equal(f.wk_calls + f.srv_calls, 0);
}

int test_fedresolve(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ip_literals_and_ports),
        cmocka_unit_test(wellknown_delegation),
        cmocka_unit_test(no_wellknown),
        cmocka_unit_test(invalid_names),
    };
    return cmocka_run_group_tests_name("fedresolve", tests, NULL, NULL);
}
