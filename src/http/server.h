/*
 * The HTTP front end: one libmicrohttpd daemon per configured listener
 * (plain or TLS), each with a single epoll I/O thread, and a shared pool of
 * worker threads that run handlers. See docs/ARCHITECTURE.md, "Threading".
 */
#ifndef MYELIN_HTTP_SERVER_H
#define MYELIN_HTTP_SERVER_H

struct srv;
struct http_server;

/*
 * Starts the workers and every listener of srv->cfg. Returns 0, or a
 * negative ERR_* after logging why (port in use, unreadable certificate)
 * with nothing left running.
 */
int http_server_start(struct srv *srv, struct http_server **out);

/*
 * Graceful stop: stops accepting, lets requests in progress finish (up to
 * `grace_ms`), then closes every connection and joins all threads.
 */
void http_server_stop(struct http_server *hs, int grace_ms);

#endif
