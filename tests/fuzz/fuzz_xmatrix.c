/*
 * Fuzz target: the X-Matrix Authorization header of federation requests
 * (core/xmatrix). Parsing must terminate without reading past the input;
 * a parsed header has non-empty origin, key and sig; checking it against
 * a request never crashes and never accepts a signature made by nobody.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/err.h"
#include "core/keys.h"
#include "core/xmatrix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    struct arena a;
    arena_init(&a);
    struct xmatrix x;
    if (xmatrix_parse(&a, s, &x) == 0) {
        if (!x.origin || !*x.origin || !x.key || !*x.key || !x.sig || !*x.sig) {
            abort();
        }
        unsigned char pk[KEYS_PUBLIC_BYTES] = {1};
        json_t *content = json_pack("{s:s}", "k", "v");
        if (xmatrix_verify(&x, "dest.example", "PUT", "/_matrix/federation/v1/send/1", content,
                           pk) == 0) {
            abort(); /* nobody holds the secret of this public key */
        }
        json_decref(content);
    }
    arena_release(&a);
    free(s);
    return 0;
}
