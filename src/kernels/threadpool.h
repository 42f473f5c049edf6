/* The process-wide worker pool that runs a network's layers as tiles.
 *
 * A job is a sequence of stages (the layers); stage s is cut into tiles[s]
 * independent tiles. Participants claim tiles in order from one shared counter,
 * and a tile of stage s starts only once every tile of the stages before it is
 * done. Nothing waits for a participant that holds no tile: a thread the OS has
 * descheduled delays at most the tile it holds, and a thread that wakes late
 * finds the job over and goes back to sleep. The caller works too and returns as
 * soon as the last tile is done. Idle threads spin briefly, then sleep.
 *
 * One job holds the pool at a time. A caller that finds it busy runs its job alone
 * on its own thread if the running job asked for more threads than are busy (its
 * workers then step aside), else waits for the pool: concurrent callers never put
 * more threads on the CPUs than the running job asked for. A job may adapt: it then
 * gets no more participants than the CPUs that threads outside the pool leave free
 * (down to the caller alone); other callers still fill what it asked for with runs of
 * their own, which wait for no one.
 * Worker threads exist while at least one user (a net) holds the pool; the last
 * release joins them. */
#ifndef MNQ_THREADPOOL_H
#define MNQ_THREADPOOL_H

#include <stddef.h>

/* Run tile `tile` of `ntiles` of stage `stage`; `participant` in [0, threads) tells
 * which per-thread scratch to use (0 = the caller). */
typedef void (*mnq_tile_fn)(void *ctx, int stage, int tile, int ntiles, int participant);

typedef struct {
  mnq_tile_fn fn;
  void *ctx;
  int num_stages;
  int (*tiles)(void *ctx, int stage, int threads); /* tiles of a stage for this many participants,
                                                     >= 1 (asked once per run) */
  int threads;          /* participants wanted, the caller included (>= 1) */
  int adapt_threads;    /* 1: fewer participants while other processes keep CPUs busy */
  double *stage_seconds; /* optional [num_stages]: wall time from the previous stage's end, added */
} mnq_pool_job;

/* Users: mnq_net_create acquires, mnq_net_destroy releases (0 / -1 on failure). */
int mnq_pool_acquire(void);
void mnq_pool_release(void);

/* Run a job to completion on the calling thread plus up to threads - 1 workers.
 * Returns 0, or -1 when the job is malformed. Threads that cannot be started
 * (OS limit) only mean fewer participants, never a failed job. */
int mnq_pool_run(const mnq_pool_job *job);

/* Participants the CPUs that threads runnable outside this pool leave free at this instant
 * allow a job that wants `wanted` (Linux: the count in /proc/loadavg), at least 1; `wanted`
 * where the count cannot be read. An adapting job takes the smallest of it and the previous two jobs' counts. */
int mnq_pool_threads_free(int wanted);

#define MNQ_MAX_THREADS 1024 /* more would only exhaust the OS's thread limit */

#endif
