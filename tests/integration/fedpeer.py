"""A scripted federation peer for tests: a small HTTPS server on loopback
(certificate from the test CA, server name 127.0.0.1:<port>) with its own
ed25519 signing key, which serves /_matrix/key/v2/server and can sign
requests to a Myelin server with the X-Matrix header. Tests use it to
send what a real server would, and what a hostile one might.

It answers peer.routes[(method, path)] = (status, json); paths that vary
(PUT /send/{txnId}) go to peer.handler(method, path, headers, body) when
set, which returns (status, json) or None to fall back to the routes.
stop_listening() and listen() take it off and back on its port, for
tests of a server that is down.

peer.join(target, room_id, localpart) joins a user of the peer to a room
of a Myelin server the way a real server does (make_join, then a hashed,
signed send_join with its reference-hash event ID), so the peer counts as
a server in the room; from then on it accepts the transactions it is
sent (their PDUs land in peer.received_pdus). The event helpers below it
(redact, content_hash, event_id, sign_event) follow the spec's "Signing
events" and the redaction rules of room versions 3-12."""

import base64
import hashlib
import json
import ssl
import urllib.parse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import signedjson.key
import signedjson.sign
from canonicaljson import encode_canonical_json

import harness


class FedPeer:
    def __init__(self, test_ca, name="peer", key_version="peer1"):
        self.key = signedjson.key.generate_signing_key(key_version)
        self.key_id = f"ed25519:{key_version}"
        # Overrides of what /_matrix/key/v2/server answers (tests of bad keys).
        self.key_response = None
        self.requests = []  # (method, path, headers, body) seen
        self.routes = {}    # (method, path) -> (status, json body)
        self.handler = None  # (method, path, headers, body) -> (status, json) or None
        self.accept_transactions = False  # set by join(): PUT /send answered 200
        self.received_pdus = []
        self._test_ca = test_ca
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                peer.requests.append((method, self.path, dict(self.headers), body))
                answer = None
                if peer.handler and self.path != "/_matrix/key/v2/server":
                    answer = peer.handler(method, self.path, dict(self.headers), body)
                if answer is not None:
                    status, obj = answer
                elif (peer.accept_transactions and method == "PUT" and
                      self.path.startswith("/_matrix/federation/v1/send/")):
                    try:
                        peer.received_pdus.extend(json.loads(body).get("pdus", []))
                    except ValueError:
                        pass
                    status, obj = 200, {"pdus": {}}
                elif self.path == "/_matrix/key/v2/server":
                    status, obj = 200, peer.key_response or peer.signed_keys()
                else:
                    status, obj = peer.routes.get((method, self.path.split("?")[0]),
                                                  (404, {"errcode": "M_UNRECOGNIZED",
                                                         "error": "not here"}))
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._answer("GET")

            def do_POST(self):
                self._answer("POST")

            def do_PUT(self):
                self._answer("PUT")

        self._handler_class = Handler
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.server_name = f"127.0.0.1:{self.port}"
        cert, key = test_ca.issue(f"{name}-{self.port}")
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(str(cert), str(key))
        self._serve()

    def _serve(self):
        self.httpd.socket = self._ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop_listening(self):
        """Closes the port: connections are refused until listen()."""
        self.close()
        self.httpd = None

    def listen(self):
        """Serves again on the same port (after stop_listening)."""
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class)
        self._serve()

    def close(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()

    def verify_key_b64(self):
        return signedjson.key.encode_verify_key_base64(self.key.verify_key)

    def signed_keys(self, valid_ms=3600_000):
        obj = {"server_name": self.server_name,
               "verify_keys": {self.key_id: {"key": self.verify_key_b64()}},
               "old_verify_keys": {},
               "valid_until_ts": int(time.time() * 1000) + valid_ms}
        return signedjson.sign.sign_json(obj, self.server_name, self.key)

    def auth_header(self, method, uri, destination, content=None, origin=None,
                    key=None, key_id=None):
        origin = origin or self.server_name
        obj = {"method": method, "uri": uri, "origin": origin, "destination": destination}
        if content is not None:
            obj["content"] = content
        signed = signedjson.sign.sign_json(obj, origin, key or self.key)
        sig = signed["signatures"][origin][f"ed25519:{(key or self.key).version}"]
        return (f'X-Matrix origin="{origin}",destination="{destination}",'
                f'key="{key_id or self.key_id}",sig="{sig}"')

    def request(self, target, method, uri, content=None, ssl_context=None, header=None,
                **sign_kw):
        """Sends a signed request to a Myelin server's federation listener."""
        headers = {"Authorization": header or self.auth_header(
            method, uri, target.server_name, content, **sign_kw)}
        body = encode_canonical_json(content) if content is not None else None
        return harness.http_request(target.federation_url, method, uri, body=body,
                                    headers=headers, ssl_context=ssl_context)

    def join(self, target, room_id, localpart="peeruser", ssl_context=None):
        """Joins @localpart:<peer> to room_id through `target` (make_join,
        send_join v2). Returns (event_id, the send_join answer's JSON)."""
        ctx = ssl_context or self._test_ca.client_context()
        user_id = f"@{localpart}:{self.server_name}"
        vers = "&".join(f"ver={v}" for v in range(3, 13))
        uri = (f"/_matrix/federation/v1/make_join/{quote(room_id)}/{quote(user_id)}"
               f"?{vers}")
        resp = self.request(target, "GET", uri, ssl_context=ctx)
        assert resp.status == 200, resp
        version = resp.json["room_version"]
        event = dict(resp.json["event"])
        event["origin_server_ts"] = int(time.time() * 1000)
        event["content"] = dict(event["content"], membership="join")
        for key in ("signatures", "hashes", "unsigned"):
            event.pop(key, None)
        event = sign_event(event, version, self.server_name, self.key)
        event_id = compute_event_id(event, version)
        self.accept_transactions = True
        uri = f"/_matrix/federation/v2/send_join/{quote(room_id)}/{quote(event_id)}"
        resp = self.request(target, "PUT", uri, event, ssl_context=ctx)
        assert resp.status == 200, resp
        return event_id, resp.json


def quote(s):
    return urllib.parse.quote(s, safe="")


def _b64(data, urlsafe=False):
    enc = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return enc(data).decode().rstrip("=")


def _version_number(room_version):
    return int(room_version) if str(room_version).isdigit() else 12


# Content keys kept by redaction, per event type (room versions 3-12).
def _kept_content(etype, content, v):
    keep = {
        "m.room.member": ["membership"] + (["join_authorised_via_users_server"] if v >= 9 else []),
        "m.room.create": None if v >= 11 else ["creator"],
        "m.room.join_rules": ["join_rule"] + (["allow"] if v >= 8 else []),
        "m.room.power_levels": ["ban", "events", "events_default", "kick", "redact",
                                "state_default", "users", "users_default"] +
                               (["invite"] if v >= 11 else []),
        "m.room.history_visibility": ["history_visibility"],
        "m.room.redaction": ["redacts"] if v >= 11 else [],
    }.get(etype, [])
    if keep is None:
        return dict(content)
    out = {k: content[k] for k in keep if k in content}
    if etype == "m.room.member" and v >= 11 and isinstance(
            content.get("third_party_invite"), dict) and \
            "signed" in content["third_party_invite"]:
        out["third_party_invite"] = {"signed": content["third_party_invite"]["signed"]}
    return out


def redact(event, room_version):
    """The redacted form of a PDU (spec "Redactions", room versions 3-12)."""
    v = _version_number(room_version)
    keys = {"event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
            "signatures", "depth", "prev_events", "auth_events", "origin_server_ts"}
    if v < 11:
        keys |= {"origin", "membership", "prev_state"}
    out = {k: event[k] for k in keys if k in event}
    out["content"] = _kept_content(event.get("type"), event.get("content") or {}, v)
    return out


def content_hash(event):
    """Unpadded base64 SHA-256 of the event without unsigned, signatures, hashes."""
    stripped = {k: v for k, v in event.items() if k not in ("unsigned", "signatures", "hashes")}
    return _b64(hashlib.sha256(encode_canonical_json(stripped)).digest())


def compute_event_id(event, room_version):
    """The event ID of a v3+ PDU: "$" + base64 of its reference hash (URL-safe
    from v4 on)."""
    red = redact(event, room_version)
    red.pop("signatures", None)
    red.pop("unsigned", None)
    digest = hashlib.sha256(encode_canonical_json(red)).digest()
    return "$" + _b64(digest, urlsafe=_version_number(room_version) >= 4)


def sign_event(event, room_version, server_name, key):
    """Adds the content hash and server_name's signature (over the redacted
    event) to a copy of `event`."""
    event = dict(event)
    event["hashes"] = {"sha256": content_hash(event)}
    red = redact(event, room_version)
    red.pop("signatures", None)
    red.pop("unsigned", None)
    signed = signedjson.sign.sign_json(red, server_name, key)
    sigs = dict(event.get("signatures") or {})
    sigs.setdefault(server_name, {}).update(signed["signatures"][server_name])
    event["signatures"] = sigs
    return event
