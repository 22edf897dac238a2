/*
 * A small pool of threads for CPU-heavy work (password hashing) so that
 * it never occupies the request workers. Jobs run in submission order.
 */
#ifndef MYELIN_SVC_CPUPOOL_H
#define MYELIN_SVC_CPUPOOL_H

typedef void cpupool_fn(void *arg);

struct cpupool;

struct cpupool *cpupool_new(int threads);
/* Runs every queued job, then joins the threads. */
void cpupool_free(struct cpupool *p);
/* Queues fn(arg). */
void cpupool_submit(struct cpupool *p, cpupool_fn *fn, void *arg);

#endif
