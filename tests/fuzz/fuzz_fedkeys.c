/*
 * Fuzz target: what other servers send about themselves. The first byte
 * picks the parser: a /_matrix/key/v2/server response (svc/keyring's
 * checks: server name, every verify key's self-signature), or a server
 * name and a well-known delegation through the discovery steps
 * (svc/fedresolve, with the rest of the input as the delegated name and
 * SRV target). Nothing may crash or read past the input; a resolved
 * target always has a port in range and a TLS name.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "svc/fedresolve.h"
#include "svc/keyring.h"

static const char *delegated_name;

static int fake_wellknown(void *ctx, const char *hostname, char delegated[FED_NAME_MAX],
                          int64_t *cache_ms)
{
    (void)ctx;
    (void)hostname;
    if (strlen(delegated_name) >= FED_NAME_MAX) {
        return 0;
    }
    strcpy(delegated, delegated_name);
    *cache_ms = 1000;
    return 1;
}

static int fake_srv(void *ctx, const char *name, char target[FED_NAME_MAX], int *port)
{
    (void)ctx;
    (void)name;
    if (strlen(delegated_name) >= FED_NAME_MAX) {
        return 0;
    }
    strcpy(target, delegated_name);
    *port = 8443;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if (data[0] & 1) {
        json_t *j = json_loads(s, JSON_DECODE_ANY, NULL);
        if (j) {
            (void)keyring_check_response(j, "example.org");
            json_decref(j);
        }
    } else {
        /* "name\ndelegated" */
        char *nl = strchr(s, '\n');
        delegated_name = nl ? nl + 1 : "";
        if (nl) {
            *nl = '\0';
        }
        struct fed_lookups lk = {fake_wellknown, fake_srv, NULL};
        struct fed_target t;
        if (fed_resolve(s, &lk, 0, &t) == 0) {
            if (t.port < 1 || t.port > 65535 || !t.tls_name[0]) {
                abort();
            }
        }
    }
    free(s);
    return 0;
}
