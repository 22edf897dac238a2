/*
 * Authorization rules for room versions 1-12 (spec: room version pages,
 * "Authorisation rules"; Server-Server API "Checks performed on receipt of
 * a PDU", "Auth events selection"), plus the power level arithmetic the
 * rules and state resolution share.
 *
 * Every version difference is asked of the room version table (rv->knock,
 * rv->integer_power_levels, ...); rule numbers in comments follow the
 * version 8 text unless a version is named, since the numbering shifts by
 * one between v1-v5 (aliases rule 4) and v6-v11, and again in v12 (rule 2
 * on the room ID).
 *
 * The module owns nothing: events and state come from the caller, and a
 * check allocates nothing except for third-party invite signatures, which
 * need the canonical JSON of the signed block (core/canonjson, verified
 * through core/sign). Lookups go through the
 * caller's auth_state (expected O(1)) and jansson's object hashes.
 */
#include "core/authrules.h"

#include <math.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "core/canonjson.h"
#include "core/id.h"
#include "core/keys.h"
#include "core/sign.h"

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static int deny(const char **reason, const char *why)
{
    *reason = why;
    return -ERR_FORBIDDEN;
}

/* The server name of a user, room or v1/v2 event ID: what follows the
 * first ':' (spec appendix "Identifier Grammar"); NULL if there is none. */
static const char *domain_of(const char *id)
{
    const char *colon = id ? strchr(id, ':') : NULL;
    return colon ? colon + 1 : NULL;
}

/* Server name grammar (appendix "Server Name"): a DNS name, IPv4 literal
 * or bracketed IPv6 literal, then an optional ":port". */
static bool server_name_valid(const char *s)
{
    const char *p = s;
    if (*p == '[') {
        p++;
        const char *start = p;
        while (*p && (strchr("0123456789abcdefABCDEF:.", *p) != NULL)) {
            p++;
        }
        if (p == start || *p != ']') {
            return false;
        }
        p++;
    } else {
        const char *start = p;
        while (*p && (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.",
                             *p) != NULL)) {
            p++;
        }
        if (p == start) {
            return false;
        }
    }
    if (*p == ':') {
        p++;
        const char *digits = p;
        while (*p >= '0' && *p <= '9') {
            p++;
        }
        if (p == digits || p - digits > 5) {
            return false;
        }
    }
    return *p == '\0';
}

/* A user ID as the rules validate `sender`: "@", a localpart, ":", a
 * server name, at most 255 bytes. Historical localparts are allowed (any
 * non-empty run without ':'), as they are for senders. */
static bool user_id_valid(const char *s)
{
    if (!s || s[0] != '@' || strlen(s) > EVENT_MAX_ID_BYTES) {
        return false;
    }
    const char *colon = strchr(s, ':');
    if (!colon || colon == s + 1) {
        return false;
    }
    for (const char *p = s + 1; p < colon; p++) {
        if ((unsigned char)*p < 0x21 || *p == 0x7f) {
            return false;
        }
    }
    return server_name_valid(colon + 1);
}

/* A state lookup that never yields a rejected event: a rejected event
 * grants nothing (spec: "Rejection"), whoever built the lookup. */
static const struct event *state_get(const struct auth_state *st, const char *type,
                                     const char *state_key)
{
    const struct event *e = st->get(st->ud, type, state_key);
    return e && !e->rejected ? e : NULL;
}

/* A key of power levels `users`: "@", a non-empty localpart, ":", a
 * non-empty server part. Looser than user_id_valid on purpose: rooms
 * created by other servers hold users keys whose server part those servers
 * never validated, and refusing such an event here would split our view of
 * the room's state from theirs. */
static bool pl_user_key_valid(const char *s)
{
    const char *colon = s[0] == '@' ? strchr(s, ':') : NULL;
    return colon && colon > s + 1 && colon[1] != '\0' && strlen(s) <= EVENT_MAX_ID_BYTES;
}

/* ------------------------------------------------------------------------ */
/* Power levels                                                             */
/* ------------------------------------------------------------------------ */

/* JSON null counts as absent, as it does for other servers' readers. */
static const json_t *pl_field(const json_t *obj, const char *key)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return v && !json_is_null(v) ? v : NULL;
}

/*
 * A string power level in v1-v9 (room version pages, "m.room.power_levels
 * events accept values as strings"): optional ASCII whitespace, an optional
 * single sign, base-10 digits (leading zeros allowed), optional whitespace.
 */
static bool pl_parse_string(const char *s, int64_t *out)
{
    while (*s == ' ' || (*s >= '\t' && *s <= '\r')) {
        s++;
    }
    bool neg = false;
    if (*s == '+' || *s == '-') {
        neg = *s == '-';
        s++;
    }
    if (*s < '0' || *s > '9') {
        return false;
    }
    int64_t v = 0;
    while (*s >= '0' && *s <= '9') {
        if (v > (INT64_MAX - (*s - '0')) / 10) {
            return false;
        }
        v = v * 10 + (*s - '0');
        s++;
    }
    while (*s == ' ' || (*s >= '\t' && *s <= '\r')) {
        s++;
    }
    if (*s != '\0') {
        return false;
    }
    *out = neg ? -v : v;
    return true;
}

/*
 * Reads one power level value with the version's leniency: JSON integers
 * always; v1-v9 also integer strings; v1-v5 (no strict canonical JSON)
 * also floats, truncated (room version pages, "accept values as floats").
 * v10+ accepts integers only. Returns false for anything else.
 */
static bool pl_parse(const struct room_version *rv, const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (!v || rv->integer_power_levels) {
        return false;
    }
    if (json_is_string(v)) {
        return pl_parse_string(json_string_value(v), out);
    }
    if (json_is_real(v) && !rv->strict_canonical_json) {
        double d = trunc(json_real_value(v));
        if (!isfinite(d) || d < -9.2e18 || d > 9.2e18) {
            return false;
        }
        *out = (int64_t)d;
        return true;
    }
    return false;
}

/* A named level ("ban", "kick", "invite", "redact", ...) of the power
 * levels event, or `dflt` when there is no event, no such key, or a value
 * that does not parse (the spec does not say; other servers fail the
 * check with an internal error, we take the documented default). */
static int64_t named_level(const struct room_version *rv, const struct event *pl,
                           const char *name, int64_t dflt)
{
    int64_t v;
    if (pl && pl_parse(rv, pl_field(pl->content, name), &v)) {
        return v;
    }
    return dflt;
}

/* The "required power level" of an event type (Server-Server API,
 * "Definitions"): events[type], else state_default (50) for state events
 * or events_default (0) for others; the same defaults apply when the room
 * has no power levels event (m.room.power_levels schema). */
static int64_t send_level(const struct room_version *rv, const struct event *pl,
                          const char *type, bool is_state)
{
    int64_t v;
    if (pl && pl_parse(rv, pl_field(pl_field(pl->content, "events"), type), &v)) {
        return v;
    }
    return is_state ? named_level(rv, pl, "state_default", 50)
                    : named_level(rv, pl, "events_default", 0);
}

/* The user who created the room for the first-join rule and the implicit
 * level 100: content.creator in v1-v10, the create event's sender in v11+. */
static const char *original_creator(const struct room_version *rv, const struct event *create)
{
    if (!create) {
        return NULL;
    }
    return rv->implicit_room_creator ? create->sender : json_get_str(create->content, "creator");
}

/* v12: the room creators are the create event's sender plus every entry of
 * content.additional_creators (room version 12, "Authorisation rules"). */
static bool is_privileged_creator(const struct event *create, const char *user_id)
{
    if (!create || !user_id) {
        return false;
    }
    if (strcmp(create->sender, user_id) == 0) {
        return true;
    }
    const json_t *extra = json_get_arr(create->content, "additional_creators");
    for (size_t i = 0; i < json_array_size(extra); i++) {
        if (streq(json_string_value(json_array_get(extra, i)), user_id)) {
            return true;
        }
    }
    return false;
}

static int64_t user_power(const struct room_version *rv, const struct event *create,
                          const struct event *pl, const char *user_id)
{
    if (rv->privileged_creators && is_privileged_creator(create, user_id)) {
        return INT64_MAX;
    }
    if (pl) {
        int64_t v;
        if (pl_parse(rv, pl_field(pl_field(pl->content, "users"), user_id), &v)) {
            return v;
        }
        return named_level(rv, pl, "users_default", 0);
    }
    /* m.room.power_levels schema: without the event the creator has 100 and
     * everyone else 0. */
    return streq(original_creator(rv, create), user_id) ? 100 : 0;
}

int64_t authrules_user_power(const struct room_version *rv, const struct auth_state *state,
                             const char *user_id)
{
    return user_power(rv, state_get(state, "m.room.create", ""),
                      state_get(state, "m.room.power_levels", ""), user_id);
}

/* ------------------------------------------------------------------------ */
/* Third-party invites                                                      */
/* ------------------------------------------------------------------------ */

/* Decodes unpadded base64 in either alphabet (identity servers publish
 * standard or URL-safe keys) into exactly `want` bytes. */
static bool b64_decode_exact(const char *in, unsigned char *out, size_t want)
{
    char tmp[128];
    size_t len = in ? strlen(in) : 0;
    if (len == 0 || len >= sizeof(tmp)) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        tmp[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    }
    unsigned char buf[96];
    if (len * 3 / 4 + 1 > sizeof(buf)) {
        return false;
    }
    long n = keys_b64_decode(tmp, len, buf);
    if (n != (long)want) {
        return false;
    }
    memcpy(out, buf, want);
    return true;
}

/* Collects the public keys of an m.room.third_party_invite event: content
 * public_key and every public_keys[].public_key (v1 auth rules 5.3.1.7). */
static size_t tpi_public_keys(const struct event *tpi, unsigned char keys[][KEYS_PUBLIC_BYTES],
                              size_t max)
{
    size_t n = 0;
    if (b64_decode_exact(json_get_str(tpi->content, "public_key"), keys[n], KEYS_PUBLIC_BYTES)) {
        n++;
    }
    const json_t *list = json_get_arr(tpi->content, "public_keys");
    for (size_t i = 0; i < json_array_size(list) && n < max; i++) {
        const char *pk = json_get_str(json_array_get(list, i), "public_key");
        if (b64_decode_exact(pk, keys[n], KEYS_PUBLIC_BYTES)) {
            n++;
        }
    }
    return n;
}

/* Bounds on the work one third-party invite can cause: keys read from the
 * invite event, and signature verifications attempted. */
#define TPI_MAX_KEYS 8
#define TPI_MAX_ATTEMPTS 32

/*
 * True when any ed25519 signature in signed.signatures verifies, under any
 * of the invite event's public keys, over the canonical JSON of `signed`
 * without "signatures" and "unsigned" (v1 auth rules 5.3.1.7; appendix
 * "Signing JSON"). The key ID of a signature need not name the key: the
 * rule asks whether any signature matches any key. The identity server
 * signed the block as a plain object, so it is encoded strictly.
 */
static bool tpi_signed_verifies(const json_t *signed_, const struct event *tpi)
{
    static const char *const skip[] = {"signatures", "unsigned", NULL};
    unsigned char keys[TPI_MAX_KEYS][KEYS_PUBLIC_BYTES];
    size_t n_keys = tpi_public_keys(tpi, keys, TPI_MAX_KEYS);
    const json_t *sigs = json_get_obj(signed_, "signatures");
    if (n_keys == 0 || !sigs) {
        return false;
    }
    struct buf canon = BUF_INIT;
    bool ok = false;
    int attempts = 0;
    if (canonjson_write_except(&canon, signed_, CANONJSON_STRICT, skip) == 0) {
        const char *entity;
        json_t *by_entity;
        json_object_foreach((json_t *)sigs, entity, by_entity) {
            const char *key_id;
            json_t *sig;
            json_object_foreach(by_entity, key_id, sig) {
                if (strncmp(key_id, "ed25519:", 8) != 0) {
                    continue;
                }
                for (size_t k = 0; k < n_keys && !ok && attempts < TPI_MAX_ATTEMPTS; k++) {
                    attempts++;
                    ok = sign_json_verify_bytes(sigs, entity, key_id, keys[k], canon.p,
                                                canon.len) == 0;
                }
                if (ok || attempts >= TPI_MAX_ATTEMPTS) {
                    goto done;
                }
            }
        }
    }
done:
    buf_release(&canon);
    return ok;
}

/* Rules 4.4.1.2-8 (v8 numbering): an invite carrying content.third_party_invite. */
static int check_third_party_invite(const struct event *ev, const struct auth_state *st,
                                    const char **reason)
{
    const json_t *tpi_content = json_object_get(ev->content, "third_party_invite");
    const json_t *signed_ = json_get_obj(tpi_content, "signed");
    if (!signed_) {
        return deny(reason, "third-party invite has no signed block");
    }
    const char *mxid = json_get_str(signed_, "mxid");
    const char *token = json_get_str(signed_, "token");
    if (!mxid || !token) {
        return deny(reason, "third-party invite signed block lacks mxid or token");
    }
    if (strcmp(mxid, ev->state_key) != 0) {
        return deny(reason, "third-party invite mxid does not match state_key");
    }
    const struct event *tpi = state_get(st, "m.room.third_party_invite", token);
    if (!tpi) {
        return deny(reason, "no third-party invite for this token");
    }
    if (strcmp(tpi->sender, ev->sender) != 0) {
        return deny(reason, "sender did not send the third-party invite");
    }
    if (!tpi_signed_verifies(signed_, tpi)) {
        return deny(reason, "third-party invite signature does not verify");
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* m.room.create (rule 1)                                                   */
/* ------------------------------------------------------------------------ */

static int check_create(const struct event *ev, const char **reason)
{
    const struct room_version *rv = ev->rv;
    /* 1.1 */
    if (ev->n_prev_events > 0) {
        return deny(reason, "create event has prev_events");
    }
    if (rv->room_id_is_create_hash) {
        /* v12 1.2: the room ID is derived from the create event. */
        if (json_object_get(ev->json, "room_id")) {
            return deny(reason, "create event has a room_id");
        }
    } else {
        /* v1-v11 1.2 */
        if (!streq(domain_of(ev->room_id), domain_of(ev->sender))) {
            return deny(reason, "room ID domain does not match sender");
        }
    }
    /* 1.3: an absent room_version means "1", which is known. */
    const json_t *ver = json_object_get(ev->content, "room_version");
    if (ver && (!json_is_string(ver) || !roomver_get(json_string_value(ver)))) {
        return deny(reason, "unknown room version in create event");
    }
    /* v1-v10 1.4; v11 dropped the creator property. */
    if (!rv->implicit_room_creator && !json_object_get(ev->content, "creator")) {
        return deny(reason, "create event has no creator");
    }
    /* v12 1.4 */
    if (rv->privileged_creators) {
        const json_t *extra = json_object_get(ev->content, "additional_creators");
        if (extra) {
            if (!json_is_array(extra)) {
                return deny(reason, "additional_creators is not an array");
            }
            for (size_t i = 0; i < json_array_size(extra); i++) {
                /* "the same user ID validation applied to sender": event_parse
                 * accepts historical user IDs as senders. */
                const char *id = json_string_value(json_array_get(extra, i));
                if (!id || !id_user_valid(id, strlen(id), false)) {
                    return deny(reason, "additional_creators holds an invalid user ID");
                }
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* m.room.member (rule 4 in v6-v11, 5 in v1-v5 and v12)                      */
/* ------------------------------------------------------------------------ */

struct ctx {
    const struct event *ev;
    const struct room_version *rv;
    const struct auth_state *st;
    const struct event *create;
    const struct event *pl;
};

static const char *membership_of(const struct ctx *c, const char *user_id)
{
    const struct event *m = state_get(c->st, "m.room.member", user_id);
    return m ? json_get_str(m->content, "membership") : NULL;
}

static int64_t power_of(const struct ctx *c, const char *user_id)
{
    return user_power(c->rv, c->create, c->pl, user_id);
}

/* The room's join rule. With no join rules event (or no join_rule in it)
 * the spec names no default; other servers treat the room as invite-only. */
static const char *join_rule_of(const struct ctx *c)
{
    const struct event *jr = state_get(c->st, "m.room.join_rules", "");
    const char *rule = jr ? json_get_str(jr->content, "join_rule") : NULL;
    return rule ? rule : "invite";
}

static int check_join(const struct ctx *c, const char *sender_m, const char *join_rule,
                      const char **reason)
{
    const struct event *ev = c->ev;
    /* .1: the creator's own first join, right after the create event (v11+:
     * the create event's sender; v12 likewise, not additional creators). */
    if (ev->n_prev_events == 1 && c->create &&
        strcmp(ev->prev_events[0], c->create->event_id) == 0 &&
        streq(original_creator(c->rv, c->create), ev->state_key)) {
        return 0;
    }
    /* .2 */
    if (strcmp(ev->sender, ev->state_key) != 0) {
        return deny(reason, "cannot join on behalf of another user");
    }
    /* .3 */
    if (streq(sender_m, "ban")) {
        return deny(reason, "sender is banned");
    }
    bool joined_or_invited = streq(sender_m, "join") || streq(sender_m, "invite");
    /* .4: "knock" joins like "invite" from v7. */
    if (strcmp(join_rule, "invite") == 0 || (c->rv->knock && strcmp(join_rule, "knock") == 0)) {
        return joined_or_invited ? 0 : deny(reason, "not invited to this room");
    }
    /* .5 (v8+): restricted; v10+ also knock_restricted. */
    if (c->rv->restricted_join &&
        (strcmp(join_rule, "restricted") == 0 ||
         (c->rv->knock_restricted && strcmp(join_rule, "knock_restricted") == 0))) {
        if (joined_or_invited) {
            return 0;
        }
        const char *via = json_get_str(ev->content, "join_authorised_via_users_server");
        if (!via) {
            return deny(reason, "restricted join without an authorising user");
        }
        if (!streq(membership_of(c, via), "join")) {
            return deny(reason, "authorising user is not in the room");
        }
        if (power_of(c, via) < named_level(c->rv, c->pl, "invite", 0)) {
            return deny(reason, "authorising user cannot invite");
        }
        return 0;
    }
    /* .6 */
    if (strcmp(join_rule, "public") == 0) {
        return 0;
    }
    /* .7 */
    return deny(reason, "join rule does not allow joining");
}

static int check_member(const struct ctx *c, const char **reason)
{
    const struct event *ev = c->ev;
    const struct room_version *rv = c->rv;
    const char *membership = json_get_str(ev->content, "membership");
    /* .1 */
    if (!ev->state_key || !membership) {
        return deny(reason, "member event without state_key or membership");
    }
    /*
     * .2 (v8+): an event naming join_authorised_via_users_server must be
     * signed by that user's server. Signatures are not checked here (no
     * keys in core): the signature check asks authrules_authorising_user.
     * What can be checked without keys is that the key names a user.
     */
    const json_t *via = json_object_get(ev->content, "join_authorised_via_users_server");
    if (rv->restricted_join && via && !user_id_valid(json_string_value(via))) {
        return deny(reason, "join_authorised_via_users_server is not a user ID");
    }

    const char *target = ev->state_key;
    const char *sender_m = membership_of(c, ev->sender);

    if (strcmp(membership, "join") == 0) {
        return check_join(c, sender_m, join_rule_of(c), reason);
    }

    const char *target_m = membership_of(c, target);

    if (strcmp(membership, "invite") == 0) {
        /* .4.1: third-party invites are judged by their signed block. */
        if (json_object_get(ev->content, "third_party_invite")) {
            if (streq(target_m, "ban")) {
                return deny(reason, "target is banned");
            }
            return check_third_party_invite(ev, c->st, reason);
        }
        if (!streq(sender_m, "join")) {
            return deny(reason, "sender not in room");
        }
        if (streq(target_m, "join") || streq(target_m, "ban")) {
            return deny(reason, "target is joined or banned");
        }
        if (power_of(c, ev->sender) < named_level(rv, c->pl, "invite", 0)) {
            return deny(reason, "insufficient power to invite");
        }
        return 0;
    }

    if (strcmp(membership, "leave") == 0) {
        /* .5.1: leaving, or rejecting an invite; v7+ also retracting a knock. */
        if (strcmp(ev->sender, target) == 0) {
            if (streq(sender_m, "join") || streq(sender_m, "invite") ||
                (rv->knock && streq(sender_m, "knock"))) {
                return 0;
            }
            return deny(reason, "cannot leave a room one is not in");
        }
        if (!streq(sender_m, "join")) {
            return deny(reason, "sender not in room");
        }
        int64_t sender_pl = power_of(c, ev->sender);
        if (streq(target_m, "ban") && sender_pl < named_level(rv, c->pl, "ban", 50)) {
            return deny(reason, "insufficient power to unban");
        }
        if (sender_pl >= named_level(rv, c->pl, "kick", 50) && power_of(c, target) < sender_pl) {
            return 0;
        }
        return deny(reason, "insufficient power to kick");
    }

    if (strcmp(membership, "ban") == 0) {
        if (!streq(sender_m, "join")) {
            return deny(reason, "sender not in room");
        }
        int64_t sender_pl = power_of(c, ev->sender);
        if (sender_pl >= named_level(rv, c->pl, "ban", 50) && power_of(c, target) < sender_pl) {
            return 0;
        }
        return deny(reason, "insufficient power to ban");
    }

    /* .7 (v7+): knocking; v10+ also under knock_restricted. */
    if (rv->knock && strcmp(membership, "knock") == 0) {
        const char *join_rule = join_rule_of(c);
        if (strcmp(join_rule, "knock") != 0 &&
            !(rv->knock_restricted && strcmp(join_rule, "knock_restricted") == 0)) {
            return deny(reason, "join rule does not allow knocking");
        }
        if (strcmp(ev->sender, target) != 0) {
            return deny(reason, "cannot knock on behalf of another user");
        }
        if (streq(sender_m, "ban") || streq(sender_m, "invite") || streq(sender_m, "join")) {
            return deny(reason, "cannot knock when banned, invited or joined");
        }
        return 0;
    }

    return deny(reason, "unknown membership");
}

/* ------------------------------------------------------------------------ */
/* m.room.power_levels (rule 9 in v6-v11, 10 in v1-v5 and v12)               */
/* ------------------------------------------------------------------------ */

static const char *const pl_top_keys[] = {
    "users_default", "events_default", "state_default", "ban", "redact", "kick", "invite",
};

/* v10 9.2: `events` / `notifications`, when present, are objects of integers. */
static bool int_map_valid(const json_t *m)
{
    if (!json_is_object(m)) {
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)m, k, v) {
        if (!json_is_integer(v)) {
            return false;
        }
    }
    return true;
}

/* The shape checks that apply whether or not a previous event exists. */
static int check_pl_shape(const struct ctx *c, const char **reason)
{
    const struct room_version *rv = c->rv;
    const json_t *content = c->ev->content;
    if (rv->integer_power_levels) {
        /* v10+ 9.1 */
        for (size_t i = 0; i < sizeof(pl_top_keys) / sizeof(pl_top_keys[0]); i++) {
            const json_t *v = json_object_get(content, pl_top_keys[i]);
            if (v && !json_is_integer(v)) {
                return deny(reason, "power level is not an integer");
            }
        }
        /* v10+ 9.2 */
        const json_t *events = json_object_get(content, "events");
        const json_t *notif = json_object_get(content, "notifications");
        if ((events && !int_map_valid(events)) || (notif && !int_map_valid(notif))) {
            return deny(reason, "events or notifications is not an object of integers");
        }
    }
    /* 9.1 (v10+: 9.3): users maps valid user IDs to integers (v1-v9 also
     * integer strings). An absent users is an empty one, as elsewhere. */
    const json_t *users = json_object_get(content, "users");
    if (users) {
        if (!json_is_object(users)) {
            return deny(reason, "users is not an object");
        }
        const char *k;
        json_t *v;
        int64_t n;
        json_object_foreach((json_t *)users, k, v) {
            if (!pl_user_key_valid(k)) {
                return deny(reason, "users holds an invalid user ID");
            }
            if (!pl_parse(rv, v, &n)) {
                return deny(reason, "users holds a non-integer level");
            }
            /* v12 10.4: creators are not listed; their power is infinite. */
            if (rv->privileged_creators && is_privileged_creator(c->create, k)) {
                return deny(reason, "room creators cannot appear in users");
            }
        }
    }
    return 0;
}

/*
 * One slot of a power levels change: `ov`/`nv` are the current and new
 * JSON values (NULL when absent). A slot that differs needs the current
 * value not above the sender's level (for other users' entries: below it)
 * and the new value not above it.
 */
static int check_pl_slot(const struct ctx *c, const json_t *ov, const json_t *nv,
                         int64_t sender_pl, bool other_user, const char **reason)
{
    int64_t o = 0;
    int64_t n = 0;
    /* A value that does not parse makes the change unjudgeable: reject,
     * as other servers do (they fail converting it). */
    if (ov && !pl_parse(c->rv, ov, &o)) {
        return deny(reason, "current power levels hold a non-integer level");
    }
    if (nv && !pl_parse(c->rv, nv, &n)) {
        return deny(reason, "power level is not an integer");
    }
    if ((ov != NULL) == (nv != NULL) && (!ov || o == n)) {
        return 0;
    }
    if (ov && (other_user ? o >= sender_pl : o > sender_pl)) {
        return deny(reason, other_user ? "cannot change the level of a user not below you"
                                       : "cannot change a level above your own");
    }
    if (nv && n > sender_pl) {
        return deny(reason, "cannot set a level above your own");
    }
    return 0;
}

/* Rules 9.4-9.7 (v10+: 9.6-9.9) over one of users / events / notifications. */
static int check_pl_map(const struct ctx *c, const char *name, int64_t sender_pl, bool users,
                        const char **reason)
{
    const json_t *om = pl_field(c->pl->content, name);
    const json_t *nm = pl_field(c->ev->content, name);
    if ((om && !json_is_object(om)) || (nm && !json_is_object(nm))) {
        return deny(reason, "power levels map is not an object");
    }
    const char *k;
    json_t *v;
    int rc;
    json_object_foreach((json_t *)om, k, v) {
        bool other = users && strcmp(k, c->ev->sender) != 0;
        rc = check_pl_slot(c, json_is_null(v) ? NULL : v, pl_field(nm, k), sender_pl, other,
                           reason);
        if (rc) {
            return rc;
        }
    }
    json_object_foreach((json_t *)nm, k, v) {
        if (pl_field(om, k) || json_is_null(v)) {
            continue;
        }
        rc = check_pl_slot(c, NULL, v, sender_pl, false, reason);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int check_power_levels(const struct ctx *c, int64_t sender_pl, const char **reason)
{
    int rc = check_pl_shape(c, reason);
    if (rc) {
        return rc;
    }
    /* 9.2 (v10+: 9.4): the first power levels event is free. */
    if (!c->pl) {
        return 0;
    }
    /* 9.3 (v10+: 9.5) */
    for (size_t i = 0; i < sizeof(pl_top_keys) / sizeof(pl_top_keys[0]); i++) {
        rc = check_pl_slot(c, pl_field(c->pl->content, pl_top_keys[i]),
                           pl_field(c->ev->content, pl_top_keys[i]), sender_pl, false, reason);
        if (rc) {
            return rc;
        }
    }
    /* 9.4-9.5: events; v6+ also notifications. */
    rc = check_pl_map(c, "events", sender_pl, false, reason);
    if (!rc && c->rv->limit_notifications_power_levels) {
        rc = check_pl_map(c, "notifications", sender_pl, false, reason);
    }
    /* 9.6-9.7: users */
    if (!rc) {
        rc = check_pl_map(c, "users", sender_pl, true, reason);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The rules                                                                */
/* ------------------------------------------------------------------------ */

int authrules_check(const struct event *ev, const struct auth_state *state, const char **reason)
{
    const char *unused;
    if (!reason) {
        reason = &unused;
    }
    *reason = NULL;
    const struct room_version *rv = ev->rv;

    /* Rule 1 */
    if (strcmp(ev->type, "m.room.create") == 0) {
        return check_create(ev, reason);
    }

    struct ctx c = {.ev = ev, .rv = rv, .st = state};
    c.create = state_get(state, "m.room.create", "");
    if (rv->room_id_is_create_hash) {
        /* v12 rule 2: the room ID names an accepted create event. */
        if (!c.create || !ev->room_id || strcmp(ev->room_id + 1, c.create->event_id + 1) != 0) {
            return deny(reason, "room ID is not an accepted create event");
        }
    } else {
        /* v1-v11 2.4-2.5, as they apply to the state checked against. */
        if (!c.create) {
            return deny(reason, "no create event");
        }
        if (!streq(c.create->room_id, ev->room_id)) {
            return deny(reason, "create event belongs to another room");
        }
    }

    /* Rule 3 (v12: 4) */
    if (json_is_false(json_object_get(c.create->content, "m.federate")) &&
        !streq(domain_of(ev->sender), domain_of(c.create->sender))) {
        return deny(reason, "room does not federate");
    }

    /* v1-v5 rule 4: m.room.aliases is the sending server's own business. */
    if (rv->special_case_aliases_auth && strcmp(ev->type, "m.room.aliases") == 0) {
        if (!ev->state_key) {
            return deny(reason, "aliases event has no state_key");
        }
        if (!streq(domain_of(ev->sender), ev->state_key)) {
            return deny(reason, "aliases state_key is not the sender's domain");
        }
        return 0;
    }

    c.pl = state_get(state, "m.room.power_levels", "");

    if (strcmp(ev->type, "m.room.member") == 0) {
        return check_member(&c, reason);
    }

    /* Rule 5 (v1-v5, v12: 6) */
    if (!streq(membership_of(&c, ev->sender), "join")) {
        return deny(reason, "sender not in room");
    }
    int64_t sender_pl = power_of(&c, ev->sender);

    /* Rule 6 */
    if (strcmp(ev->type, "m.room.third_party_invite") == 0) {
        if (sender_pl >= named_level(rv, c.pl, "invite", 0)) {
            return 0;
        }
        return deny(reason, "insufficient power to invite");
    }

    /* Rule 7 */
    if (send_level(rv, c.pl, ev->type, event_is_state(ev)) > sender_pl) {
        return deny(reason, "insufficient power for this event type");
    }

    /* Rule 8 */
    if (ev->state_key && ev->state_key[0] == '@' && strcmp(ev->state_key, ev->sender) != 0) {
        return deny(reason, "state_key is another user's ID");
    }

    /* Rule 9 */
    if (strcmp(ev->type, "m.room.power_levels") == 0) {
        return check_power_levels(&c, sender_pl, reason);
    }

    /* v1-v2 rule 11: redactions need the redact level or the same server
     * as the redacted event (by event ID domain). From v3 the redact level
     * is applied when the redaction is, not here. */
    if (rv->redaction_domain_check_in_auth && strcmp(ev->type, "m.room.redaction") == 0) {
        if (sender_pl >= named_level(rv, c.pl, "redact", 50)) {
            return 0;
        }
        if (ev->redacts && streq(domain_of(ev->redacts), domain_of(ev->event_id))) {
            return 0;
        }
        return deny(reason, "insufficient power to redact another server's event");
    }

    return 0;
}

/* ------------------------------------------------------------------------ */
/* Auth events                                                              */
/* ------------------------------------------------------------------------ */

static void sel_add(const char **types, const char **state_keys, size_t *n, const char *type,
                    const char *state_key)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(types[i], type) == 0 && strcmp(state_keys[i], state_key) == 0) {
            return;
        }
    }
    types[*n] = type;
    state_keys[*n] = state_key;
    (*n)++;
}

size_t authrules_selection(const struct room_version *rv, const char *type,
                           const char *state_key, const char *sender, const json_t *content,
                           const char **types, const char **state_keys)
{
    size_t n = 0;
    /* The create event's auth_events are empty. */
    if (strcmp(type, "m.room.create") == 0) {
        return 0;
    }
    /* v1-v11 select the create event; v12 must not (the room ID implies it). */
    if (!rv->room_id_is_create_hash) {
        sel_add(types, state_keys, &n, "m.room.create", "");
    }
    sel_add(types, state_keys, &n, "m.room.power_levels", "");
    sel_add(types, state_keys, &n, "m.room.member", sender);
    if (strcmp(type, "m.room.member") != 0 || !state_key) {
        return n;
    }
    sel_add(types, state_keys, &n, "m.room.member", state_key);
    const char *membership = json_get_str(content, "membership");
    if (streq(membership, "join") || streq(membership, "invite") || streq(membership, "knock")) {
        sel_add(types, state_keys, &n, "m.room.join_rules", "");
    }
    if (streq(membership, "invite")) {
        const json_t *tpi = json_object_get(content, "third_party_invite");
        const char *token = json_get_str(json_get_obj(tpi, "signed"), "token");
        if (token) {
            sel_add(types, state_keys, &n, "m.room.third_party_invite", token);
        }
    }
    if (streq(membership, "join") && rv->restricted_join) {
        const char *via = json_get_str(content, "join_authorised_via_users_server");
        if (via) {
            sel_add(types, state_keys, &n, "m.room.member", via);
        }
    }
    return n;
}

int authrules_check_auth_events(const struct event *ev, const struct event *const *auth_events,
                                const char **reason)
{
    const char *unused;
    if (!reason) {
        reason = &unused;
    }
    *reason = NULL;
    const struct room_version *rv = ev->rv;
    /* Rule 1 decides create events before auth_events are considered. */
    if (strcmp(ev->type, "m.room.create") == 0) {
        return 0;
    }
    size_t n = ev->n_auth_events;
    for (size_t i = 0; i < n; i++) {
        if (!auth_events[i]) {
            return deny(reason, "auth event not found");
        }
    }
    /* 2.1 (v12: 3.1) */
    for (size_t i = 0; i < n; i++) {
        const struct event *a = auth_events[i];
        for (size_t j = 0; j < i; j++) {
            const struct event *b = auth_events[j];
            if (strcmp(a->type, b->type) == 0 && a->state_key && b->state_key &&
                strcmp(a->state_key, b->state_key) == 0) {
                return deny(reason, "duplicate auth event");
            }
        }
    }
    /* 2.2 (v12: 3.2) */
    const char *types[AUTHRULES_SELECTION_MAX];
    const char *keys[AUTHRULES_SELECTION_MAX];
    size_t n_sel = authrules_selection(rv, ev->type, ev->state_key, ev->sender, ev->content,
                                       types, keys);
    bool have_create = false;
    for (size_t i = 0; i < n; i++) {
        const struct event *a = auth_events[i];
        if (rv->room_id_is_create_hash && strcmp(a->type, "m.room.create") == 0) {
            return deny(reason, "create event must not be an auth event");
        }
        bool expected = false;
        for (size_t s = 0; s < n_sel && a->state_key && !expected; s++) {
            expected = strcmp(a->type, types[s]) == 0 && strcmp(a->state_key, keys[s]) == 0;
        }
        if (!expected) {
            return deny(reason, "unexpected auth event");
        }
        have_create |= strcmp(a->type, "m.room.create") == 0;
    }
    /* 2.3 (v12: 3.3) */
    for (size_t i = 0; i < n; i++) {
        if (auth_events[i]->rejected) {
            return deny(reason, "auth event was rejected");
        }
    }
    /* 2.4 (not in v12) */
    if (!rv->room_id_is_create_hash && !have_create) {
        return deny(reason, "no create event among auth events");
    }
    /* 2.5 (v12: 3.5) */
    for (size_t i = 0; i < n; i++) {
        if (!streq(auth_events[i]->room_id, ev->room_id)) {
            return deny(reason, "auth event belongs to another room");
        }
    }
    return 0;
}

const char *authrules_authorising_user(const struct event *ev)
{
    if (!ev->rv->restricted_join || strcmp(ev->type, "m.room.member") != 0) {
        return NULL;
    }
    return json_get_str(ev->content, "join_authorised_via_users_server");
}
