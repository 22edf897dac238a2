/*
 * argon2id hashing on the CPU pool, resuming the request's handler on a
 * worker afterwards (see password.h).
 */
#include "svc/password.h"

#include <sodium.h>
#include <string.h>

#include "base/err.h"
#include "http/router.h"
#include "svc/cpupool.h"
#include "svc/srv.h"

struct pw_job {
    struct req *r;
    char *password; /* arena copy, wiped after use */
    const char *hash;
    bool verify;
};

/* A valid argon2id string that no password matches in practice: verifying
 * against it costs the same as a real check, so unknown users and wrong
 * passwords take the same time. */
static const char dummy_hash[] = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
                                 "K7Q3Ww0o8HqH1Zc1mR8k3m2m9Gm0cQf3n3x0p5k0aXE";

static void run(void *arg)
{
    struct pw_job *j = arg;
    struct req *r = j->r;
    if (j->verify) {
        const char *h = j->hash ? j->hash : dummy_hash;
        bool ok = crypto_pwhash_str_verify(h, j->password, strlen(j->password)) == 0;
        r->pw.state = ok && j->hash ? PW_OK : PW_BAD;
    } else {
        char out[crypto_pwhash_STRBYTES];
        if (password_hash_now(j->password, out, sizeof(out)) == 0) {
            r->pw.hash = arena_strdup(&r->arena, out);
            r->pw.state = PW_HASHED;
        } else {
            r->pw.state = PW_FAILED;
        }
    }
    sodium_memzero(j->password, strlen(j->password));
    req_continue(r, r->route->handler);
}

static int start(struct req *r, const char *hash, const char *password, bool verify)
{
    struct pw_job *j = ARENA_NEW(&r->arena, struct pw_job);
    j->r = r;
    j->password = arena_strdup(&r->arena, password);
    j->hash = hash ? arena_strdup(&r->arena, hash) : NULL;
    j->verify = verify;
    req_park(r);
    cpupool_submit(r->srv->cpu, run, j);
    return REQ_PARKED;
}

int password_hash_async(struct req *r, const char *password)
{
    return start(r, NULL, password, false);
}

int password_verify_async(struct req *r, const char *hash, const char *password)
{
    return start(r, hash, password, true);
}

int password_hash_now(const char *password, char *out, size_t out_size)
{
    if (out_size < crypto_pwhash_STRBYTES ||
        crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        return -ERR_NOMEM;
    }
    return 0;
}
