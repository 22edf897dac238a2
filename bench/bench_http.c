/*
 * HTTP load generator for benchmarks: C connections (threads), each sending
 * requests one after another over a keep-alive connection for a fixed
 * number of requests, then prints throughput and latency percentiles.
 *
 *   bench_http HOST PORT METHOD PATH CONNECTIONS REQUESTS_PER_CONN [BODY] [AUTH_TOKEN]
 *
 * The path may contain "%d", replaced by a per-request counter (unique
 * transaction IDs for /send). Only loopback targets are meaningful.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct worker {
    int id;
    const char *host;
    int port;
    const char *method;
    const char *path;
    const char *body;
    const char *token;
    int requests;
    double *lat_us;
    int done;
    int errors;
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int connect_to(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Reads one HTTP response (Content-Length framed); returns the status or -1. */
static int read_response(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, cap - have - 1);
        if (n <= 0) {
            return -1;
        }
        have += (size_t)n;
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end) {
            continue;
        }
        char *cl = strcasestr(buf, "Content-Length:");
        size_t body = cl ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
        size_t total = (size_t)(end + 4 - buf) + body;
        while (have < total) {
            n = read(fd, buf + have, cap - have - 1 < total - have ? cap - have - 1 : total - have);
            if (n <= 0) {
                return -1;
            }
            have += (size_t)n;
        }
        return atoi(buf + 9);
    }
}

static void *run(void *arg)
{
    struct worker *w = arg;
    int fd = connect_to(w->host, w->port);
    if (fd < 0) {
        w->errors = w->requests;
        return NULL;
    }
    char *req = malloc(65536);
    char *resp = malloc(1 << 20);
    char path[1024];
    for (int i = 0; i < w->requests; i++) {
        snprintf(path, sizeof(path), w->path, w->id * 1000000 + i);
        size_t blen = w->body ? strlen(w->body) : 0;
        int len = snprintf(req, 65536,
                           "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n"
                           "Content-Type: application/json\r\n%s%s%s\r\n%s",
                           w->method, path, w->host, blen, w->token ? "Authorization: Bearer " : "",
                           w->token ? w->token : "", w->token ? "\r\n" : "", w->body ? w->body : "");
        double t0 = now_us();
        if (write(fd, req, (size_t)len) != len) {
            w->errors++;
            break;
        }
        int status = read_response(fd, resp, 1 << 20);
        w->lat_us[i] = now_us() - t0;
        if (status < 200 || status >= 300) {
            w->errors++;
            if (status < 0) {
                break;
            }
        }
        w->done++;
    }
    close(fd);
    free(req);
    free(resp);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s HOST PORT METHOD PATH CONNECTIONS REQUESTS [BODY] [TOKEN]\n",
                argv[0]);
        return 2;
    }
    int conns = atoi(argv[5]), reqs = atoi(argv[6]);
    struct worker *ws = calloc((size_t)conns, sizeof(*ws));
    pthread_t *th = calloc((size_t)conns, sizeof(*th));
    double t0 = now_us();
    for (int i = 0; i < conns; i++) {
        ws[i] = (struct worker){i, argv[1], atoi(argv[2]), argv[3], argv[4],
                                argc > 7 && argv[7][0] ? argv[7] : NULL, argc > 8 ? argv[8] : NULL,
                                reqs, calloc((size_t)reqs, sizeof(double)), 0, 0};
        pthread_create(&th[i], NULL, run, &ws[i]);
    }
    size_t total = 0;
    int errors = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(th[i], NULL);
        total += (size_t)ws[i].done;
        errors += ws[i].errors;
    }
    double secs = (now_us() - t0) / 1e6;
    double *all = calloc(total ? total : 1, sizeof(double));
    size_t k = 0;
    for (int i = 0; i < conns; i++) {
        memcpy(all + k, ws[i].lat_us, sizeof(double) * (size_t)ws[i].done);
        k += (size_t)ws[i].done;
        free(ws[i].lat_us);
    }
    qsort(all, total, sizeof(double), cmp);
    printf("%s %s: %d conns x %d reqs: %.0f req/s, p50 %.3f ms, p99 %.3f ms, errors %d\n",
           argv[3], argv[4], conns, reqs, (double)total / secs,
           total ? all[total / 2] / 1000 : 0, total ? all[total * 99 / 100] / 1000 : 0, errors);
    free(all);
    free(ws);
    free(th);
    return errors ? 1 : 0;
}
