/*
 * CPU job pool: a mutex-protected FIFO and N threads.
 */
#include "svc/cpupool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "base/xmalloc.h"

struct job {
    struct job *next;
    cpupool_fn *fn;
    void *arg;
};

struct cpupool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    bool stop;
    pthread_t *threads;
    int n;
};

static void *run(void *arg)
{
    struct cpupool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stop) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        struct job *j = p->head;
        if (!j) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        p->head = j->next;
        if (!p->head) {
            p->tail = NULL;
        }
        pthread_mutex_unlock(&p->mu);
        j->fn(j->arg);
        free(j);
    }
}

struct cpupool *cpupool_new(int threads)
{
    struct cpupool *p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = xcalloc((size_t)threads, sizeof(pthread_t));
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, run, p) == 0) {
            p->n++;
        }
    }
    return p;
}

void cpupool_submit(struct cpupool *p, cpupool_fn *fn, void *arg)
{
    struct job *j = xmalloc(sizeof(*j));
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->tail) {
        p->tail->next = j;
    } else {
        p->head = j;
    }
    p->tail = j;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void cpupool_free(struct cpupool *p)
{
    if (!p) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        pthread_join(p->threads[i], NULL);
    }
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
