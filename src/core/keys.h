/*
 * The server's ed25519 signing key: generation, the on-disk format
 * ("ed25519 <version> <unpadded base64 seed>", as other homeservers use,
 * so keys can move between implementations) and unpadded base64.
 * Pure functions apart from keys_load/keys_generate_file, which read and
 * write the key file.
 */
#ifndef MYELIN_CORE_KEYS_H
#define MYELIN_CORE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEYS_SEED_BYTES 32
#define KEYS_PUBLIC_BYTES 32
#define KEYS_SECRET_BYTES 64
#define KEYS_SIG_BYTES 64

struct signing_key {
    char key_id[64];                        /* "ed25519:a_XXXX" */
    unsigned char seed[KEYS_SEED_BYTES];
    unsigned char pk[KEYS_PUBLIC_BYTES];
    unsigned char sk[KEYS_SECRET_BYTES];
};

/*
 * Writes a new random key to `path` with mode 0600; fails with -ERR_IO if
 * the file exists or cannot be written. Fills *out with the key.
 */
int keys_generate_file(const char *path, struct signing_key *out);
/* Reads a key file. Returns 0, -ERR_IO or -ERR_CONFIG (malformed). */
int keys_load(const char *path, struct signing_key *out);
/* Parses the one-line key format. Returns 0 or -ERR_CONFIG. */
int keys_parse(const char *text, size_t len, struct signing_key *out);
/* Wipes secret material. */
void keys_wipe(struct signing_key *k);

/* Unpadded standard base64 (spec appendix "Unpadded Base64"). `out` must
 * hold keys_b64_len(n) + 1 bytes; returns the length written. */
size_t keys_b64_len(size_t n);
size_t keys_b64_encode(const unsigned char *in, size_t n, char *out);
/* URL-safe unpadded base64 (appendix "URL-safe unpadded Base64": '-' and
 * '_' for characters 62 and 63), used by event IDs from room version 4 and
 * room IDs from version 12. Same length as keys_b64_len; `out` must hold
 * keys_b64_len(n) + 1 bytes; returns the length written. */
size_t keys_b64url_encode(const unsigned char *in, size_t n, char *out);
/* Decodes unpadded (or padded) standard base64. Returns the decoded length
 * or -1. `out` must hold at least len * 3 / 4 + 1 bytes. */
long keys_b64_decode(const char *in, size_t len, unsigned char *out);

#endif
