/*
 * Matrix identifiers (spec appendix "Identifier Grammar"): server names,
 * user IDs (strict and historical), room IDs (with and without a domain),
 * room aliases, event IDs and the common namespaced identifier grammar.
 * Pure functions over byte strings; none allocates.
 */
#ifndef MYELIN_CORE_ID_H
#define MYELIN_CORE_ID_H

#include <stdbool.h>
#include <stddef.h>

#define ID_MAX_LEN 255

/* A localpart allowed for new users: [a-z0-9._=\-/+]+ */
bool id_localpart_valid(const char *s, size_t len);

/*
 * server_name = hostname [ ":" port ]; hostname = IPv4 literal (four
 * numbers 0-255) / "[" IPv6 literal "]" / DNS name of letters, digits,
 * '-' and '.'; port = 1-5 digits, at most 65535.
 */
bool id_server_name_valid(const char *s, size_t len);

/*
 * "@localpart:server_name", at most 255 bytes. Strict: the localpart uses
 * the current grammar. Not strict ("historical user IDs"): any valid UTF-8
 * except ':' and NUL, possibly empty, as servers must accept over
 * federation.
 */
bool id_user_valid(const char *s, size_t len, bool strict);

/*
 * "!opaque:server_name" (room versions 1-11) or "!opaque" without a domain
 * (v12: the create event's hash in URL-safe base64). At most 255 bytes;
 * the opaque part is valid UTF-8 without ':' or NUL and not empty.
 */
bool id_room_valid(const char *s, size_t len);

/* "#localpart:server_name", at most 255 bytes; localpart any valid UTF-8
 * except ':' and NUL. */
bool id_alias_valid(const char *s, size_t len);

/* "$opaque" or "$opaque:server_name" (v1-v2), at most 255 bytes, opaque
 * part not empty, valid UTF-8 without NUL. */
bool id_event_valid(const char *s, size_t len);

/* Common Namespaced Identifier Grammar: [a-z][a-z0-9._-]{0,254}. */
bool id_namespaced_valid(const char *s, size_t len);

/* The server name part of an ID with a domain (after the first ':'), or
 * NULL if there is none (or id is NULL). */
const char *id_server_part(const char *id);

/* True when `s` is valid UTF-8 (no surrogates, no overlongs) without NUL. */
bool id_utf8_valid(const char *s, size_t len);

#endif
