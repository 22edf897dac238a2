/*
 * Signing key handling on libsodium: ed25519 key pairs derived from a
 * 32-byte seed, the one-line key file format, and unpadded base64.
 */
#include "core/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"

size_t keys_b64_len(size_t n)
{
    return sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) - 1;
}

size_t keys_b64_encode(const unsigned char *in, size_t n, char *out)
{
    sodium_bin2base64(out, keys_b64_len(n) + 1, in, n, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    return strlen(out);
}

size_t keys_b64url_encode(const unsigned char *in, size_t n, char *out)
{
    sodium_bin2base64(out, keys_b64_len(n) + 1, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return strlen(out);
}

long keys_b64_decode(const char *in, size_t len, unsigned char *out)
{
    /*
     * Our own decoder rather than libsodium's: that one rejects non-zero
     * trailing bits, which real keys (the spec's example seed among them)
     * have. Padding is accepted and ignored.
     */
    while (len > 0 && in[len - 1] == '=') {
        len--;
    }
    if (len % 4 == 1) {
        return -1;
    }
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        int v;
        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        } else if (c == '+') {
            v = 62;
        } else if (c == '/') {
            v = 63;
        } else {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (long)o;
}

static void derive(struct signing_key *k)
{
    crypto_sign_seed_keypair(k->pk, k->sk, k->seed);
}

int keys_parse(const char *text, size_t len, struct signing_key *out)
{
    char buf[256];
    if (len >= sizeof(buf)) {
        return -ERR_CONFIG;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    char alg[16], version[48], seed64[80];
    if (sscanf(buf, "%15s %47s %79s", alg, version, seed64) != 3 || strcmp(alg, "ed25519") != 0) {
        return -ERR_CONFIG;
    }
    for (const char *p = version; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_')) {
            return -ERR_CONFIG;
        }
    }
    unsigned char seed[64];
    long n = keys_b64_decode(seed64, strlen(seed64), seed);
    if (n != KEYS_SEED_BYTES) {
        sodium_memzero(seed, sizeof(seed));
        return -ERR_CONFIG;
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->key_id, sizeof(out->key_id), "ed25519:%s", version);
    memcpy(out->seed, seed, KEYS_SEED_BYTES);
    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(buf, sizeof(buf));
    derive(out);
    return 0;
}

int keys_load(const char *path, struct signing_key *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        LOG_ERROR("keys", "cannot open signing key %s: %s", path, strerror(errno));
        return -ERR_IO;
    }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        LOG_ERROR("keys", "cannot read signing key %s", path);
        return -ERR_IO;
    }
    int rc = keys_parse(buf, (size_t)n, out);
    sodium_memzero(buf, sizeof(buf));
    if (rc) {
        LOG_ERROR("keys", "%s is not an ed25519 signing key file", path);
    }
    return rc;
}

int keys_generate_file(const char *path, struct signing_key *out)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char version[8] = "a_";
    for (int i = 2; i < 6; i++) {
        version[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
    }
    version[6] = '\0';
    memset(out, 0, sizeof(*out));
    randombytes_buf(out->seed, sizeof(out->seed));
    snprintf(out->key_id, sizeof(out->key_id), "ed25519:%s", version);
    derive(out);

    char seed64[64];
    keys_b64_encode(out->seed, sizeof(out->seed), seed64);
    char line[128];
    int len = snprintf(line, sizeof(line), "ed25519 %s %s\n", version, seed64);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        LOG_ERROR("keys", "cannot create %s: %s", path, strerror(errno));
        sodium_memzero(line, sizeof(line));
        return -ERR_IO;
    }
    int rc = 0;
    if (write(fd, line, (size_t)len) != len || fsync(fd) != 0) {
        rc = -ERR_IO;
    }
    if (close(fd) != 0) {
        rc = -ERR_IO;
    }
    sodium_memzero(line, sizeof(line));
    sodium_memzero(seed64, sizeof(seed64));
    return rc;
}

void keys_wipe(struct signing_key *k) { sodium_memzero(k, sizeof(*k)); }
