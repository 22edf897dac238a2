/*
 * Server access control lists (Client-Server API "Server Access Control
 * Lists (ACLs) for rooms", the m.room.server_acl event; Server-Server API
 * "Server Access Control Lists (ACLs)"): whether a server may take part in
 * a room, from the content of the room's m.room.server_acl state event.
 * Patterns are the appendix's "Glob-style matching" (`*` any run of
 * characters, `?` exactly one), compared case-insensitively against the
 * server name without its port.
 *
 * Pure: no I/O. api/federation applies it to inbound transactions.
 */
#ifndef MYELIN_CORE_ACL_H
#define MYELIN_CORE_ACL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Whether `server_name` (a server name, with or without ":port") is
 * allowed by the m.room.server_acl content `content` (NULL: the room has
 * no such event, so everyone is allowed). The spec's order:
 *   1. an IP literal (IPv4 dotted quad or bracketed IPv6) is denied when
 *      allow_ip_literals is false (absent or not a boolean: true);
 *   2. a server matching an entry of `deny` is denied;
 *   3. a server matching an entry of `allow` is allowed;
 *   4. anything else is denied (a missing `allow` denies everyone).
 * Lists that are not arrays count as empty and entries that are not
 * strings match nothing, as Synapse treats them.
 */
bool acl_server_allowed(const json_t *content, const char *server_name);

/*
 * Glob-style matching of all of s[0..len) against the NUL-terminated
 * `pattern`: `*` matches zero or more characters and `?` exactly one (a
 * UTF-8 code point); anything else matches itself, ASCII letters without
 * regard to case (server names are ASCII; internationalised ones are
 * punycode).
 */
bool acl_glob_match(const char *pattern, const char *s, size_t len);

/* Whether the host part s[0..len) (no port) is an IP address literal: a
 * dotted-quad IPv4 address or a bracketed IPv6 one. */
bool acl_is_ip_literal(const char *s, size_t len);

#endif
