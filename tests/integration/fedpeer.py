"""A scripted federation peer for tests: a small HTTPS server on loopback
(certificate from the test CA, server name 127.0.0.1:<port>) with its own
ed25519 signing key, which serves /_matrix/key/v2/server and can sign
requests to a Myelin server with the X-Matrix header. Tests use it to
send what a real server would, and what a hostile one might.

It answers peer.routes[(method, path)] = (status, json); paths that vary
(PUT /send/{txnId}) go to peer.handler(method, path, headers, body) when
set, which returns (status, json) or None to fall back to the routes.
stop_listening() and listen() take it off and back on its port, for
tests of a server that is down."""

import json
import ssl
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
