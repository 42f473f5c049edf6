/* Process-wide worker pool (threadpool.h): tiles claimed from one counter, and
 * only once their stage may start (every tile of the stages before it finished),
 * no barrier anywhere.
 *
 * Why not OpenMP: a parallel region ends with a join of every thread in the
 * team, so a team member the OS has descheduled stalls the caller even when
 * the work is done (docs/threads.md has the measurements). */
#include "threadpool.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

/* The claim word packs everything a worker must check before it may touch the
 * job: generation, participants wanted, tiles not yet claimed. A worker reads
 * the job's other fields only after it has claimed a tile, and the job cannot
 * end (nor the next one be written) while a claimed tile is unfinished.
 * The ready word (generation, tiles left that belong to stages which may not start
 * yet) lets a thread claim a tile only when it can run it at once: a thread never
 * holds a tile it must wait for, so one the OS has descheduled or put to sleep keeps
 * nobody waiting but for a tile it is running. */
#define GEN_BITS 24
#define THREAD_BITS 11
#define LEFT_BITS 29
#define MAX_TILES (((uint64_t)1 << LEFT_BITS) - 1)
#define CLAIM(gen, threads, left) \
  (((uint64_t)(gen) << (THREAD_BITS + LEFT_BITS)) | ((uint64_t)(threads) << LEFT_BITS) | (uint64_t)(left))
#define CLAIM_GEN(c) ((uint32_t)((c) >> (THREAD_BITS + LEFT_BITS)))
#define CLAIM_THREADS(c) ((int)(((c) >> LEFT_BITS) & ((1u << THREAD_BITS) - 1)))
#define CLAIM_LEFT(c) ((uint32_t)((c) & MAX_TILES))
#define GEN_MASK ((1u << GEN_BITS) - 1)
#define READY(gen, blocked) (((uint64_t)(gen) << LEFT_BITS) | (uint64_t)(blocked))
#define READY_GEN(r) ((uint32_t)((r) >> LEFT_BITS))
#define READY_BLOCKED(r) ((uint32_t)((r) & MAX_TILES))

/* How long a thread spins before it sleeps. Within a job it waits for the tiles
 * others hold (a tile is tens to hundreds of microseconds; waking a sleeper costs
 * about as much again), between jobs for the next inference of a loop (a caller's
 * Python work between two runs takes 50-150 us); both short enough not to hold a
 * core another process needs for long. */
#define STAGE_SPIN_NS 300000
#define IDLE_SPIN_NS 200000

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time; workers' lifecycle */
static int g_users;
static int g_workers;                       /* started: ids 1..g_workers */
static pthread_t g_threads[MNQ_MAX_THREADS];

static uint32_t g_wake;          /* futex word: generation of the latest job (or a stop request) */
static uint32_t g_sleeping;      /* workers asleep on g_wake */
static int g_stop;
static uint64_t g_claim;
static uint64_t g_ready;         /* READY(gen, tiles of stages that may not start yet) */
static uint32_t g_done;          /* futex word: tiles finished in the current job */
static uint32_t g_done_sleepers; /* threads asleep on g_done */
static uint32_t g_stages_ended;  /* futex word: bumped after each stage's end lowers g_ready */
static uint32_t g_stage_sleepers; /* threads asleep on g_stages_ended */
static uint32_t g_stages_timed;  /* stages whose end time is written (profiling runs) */
/* Callers running their whole job on their own thread because another caller's job holds
 * the pool; while there are any, that job's workers stop claiming tiles, so the threads
 * on the CPUs stay within what the running job asked for. */
static int g_alone;
/* Threads the job holding the pool asked for: callers running alone fill what it leaves,
 * even when it adapted to fewer (the application's own threads, other callers among them,
 * count as load when a job adapts; the callers then take their share as runs of their own). */
static int g_budget;

/* The current job, valid for a thread that holds a claimed tile. */
static mnq_pool_job g_job;
static uint32_t g_total;
static int *g_first;             /* [num_stages + 1]: first ticket of each stage */
static double *g_stage_end;      /* [num_stages] */
static int g_capacity;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
  __asm__ volatile("yield");
#endif
}

/* Sleep while *word == expected (returns at once if it already differs). */
static void wait_on(uint32_t *word, uint32_t expected) {
#ifdef __linux__
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
#else
  (void)word, (void)expected;
  const struct timespec pause = {0, 50000};
  nanosleep(&pause, NULL);
#endif
}

static void wake_all(uint32_t *word) {
#ifdef __linux__
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
  (void)word;
#endif
}

/* Spin for up to spin_ns, then sleep on *word, until ready(*word, arg); *sleepers counts
 * the threads asleep there, so a waker skips the system call when there are none.
 * Returns the value that was ready. */
static uint32_t wait_until(uint32_t *word, uint32_t *sleepers, int (*ready)(uint32_t, uint32_t), uint32_t arg,
                           double spin_ns) {
  uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
  if (ready(v, arg)) return v;
  const double deadline = now_seconds() + spin_ns * 1e-9;
  for (unsigned spins = 1; !ready(v = __atomic_load_n(word, __ATOMIC_ACQUIRE), arg); spins++) {
    cpu_relax();
    if (spins % 64 == 0 && now_seconds() > deadline) {
      __atomic_add_fetch(sleepers, 1, __ATOMIC_SEQ_CST);
      v = __atomic_load_n(word, __ATOMIC_SEQ_CST);
      if (!ready(v, arg)) wait_on(word, v);
      __atomic_sub_fetch(sleepers, 1, __ATOMIC_SEQ_CST);
    }
  }
  return v;
}

static int at_least(uint32_t value, uint32_t target) { return value >= target; }
static int differs(uint32_t value, uint32_t seen) { return value != seen; }

/* Until g_done >= target: every tile of the job is finished (the caller, at the end). */
static void wait_done(uint32_t target) { wait_until(&g_done, &g_done_sleepers, at_least, target, STAGE_SPIN_NS); }

/* Lower the ready word's count of tiles whose stage may not start yet to `blocked`
 * (stages complete in order, but their finishers may write in any order). */
static void lower_blocked(uint32_t gen, uint32_t blocked) {
  uint64_t r = __atomic_load_n(&g_ready, __ATOMIC_ACQUIRE);
  while (READY_GEN(r) == gen && READY_BLOCKED(r) > blocked &&
         !__atomic_compare_exchange_n(&g_ready, &r, READY(gen, blocked), 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
  }
}

/* 1 when the next tile of job `gen` may start, or there is none to claim (value: unused). */
static int may_claim(uint32_t value, uint32_t gen) {
  (void)value;
  const uint64_t c = __atomic_load_n(&g_claim, __ATOMIC_SEQ_CST), r = __atomic_load_n(&g_ready, __ATOMIC_SEQ_CST);
  return CLAIM_GEN(c) != gen || CLAIM_LEFT(c) == 0 || READY_GEN(r) != gen || CLAIM_LEFT(c) > READY_BLOCKED(r);
}

/* Claim and run tiles of generation `gen` until none is left; 1 when this worker stepped
 * aside for a caller running alone. */
static int work(uint32_t gen, int participant) {
  int stage = 0;
  for (;;) {
    uint64_t c = __atomic_load_n(&g_claim, __ATOMIC_ACQUIRE);
    if (CLAIM_GEN(c) != gen || CLAIM_LEFT(c) == 0) return 0;
    /* a worker gives its place to a caller running alone (the caller, participant 0, never does) */
    if (participant >= CLAIM_THREADS(c) - __atomic_load_n(&g_alone, __ATOMIC_RELAXED) && participant > 0) return 1;
    const uint64_t r = __atomic_load_n(&g_ready, __ATOMIC_SEQ_CST);
    if (READY_GEN(r) != gen) return 0; /* the job is over and another began */
    if (CLAIM_LEFT(c) <= READY_BLOCKED(r)) { /* the next tile's stage waits for tiles others run */
      wait_until(&g_stages_ended, &g_stage_sleepers, may_claim, gen, STAGE_SPIN_NS);
      continue;
    }
    if (!__atomic_compare_exchange_n(&g_claim, &c, c - 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) continue;
    const uint32_t ticket = g_total - CLAIM_LEFT(c);
    while ((uint32_t)g_first[stage + 1] <= ticket) stage++; /* tickets only grow within a job */
    const int tile = (int)ticket - g_first[stage], ntiles = g_first[stage + 1] - g_first[stage];
    /* once this tile counts as done the caller may end the job and write the next
     * one: read what is needed after that point now */
    const uint32_t stage_done = (uint32_t)g_first[stage + 1];
    const uint32_t next_end = stage_done < g_total ? (uint32_t)g_first[stage + 2] : g_total;
    const uint32_t total = g_total;
    const int timed = g_job.stage_seconds != NULL;
    g_job.fn(g_job.ctx, stage, tile, ntiles, participant);
    const uint32_t done = __atomic_add_fetch(&g_done, 1, __ATOMIC_SEQ_CST);
    if (done == stage_done) { /* this stage is complete: the next one may start */
      if (timed) { /* the caller waits for g_stages_timed before it reads g_stage_end */
        g_stage_end[stage] = now_seconds();
        __atomic_add_fetch(&g_stages_timed, 1, __ATOMIC_RELEASE);
      }
      lower_blocked(gen, total - next_end);
      __atomic_add_fetch(&g_stages_ended, 1, __ATOMIC_SEQ_CST);
      if (__atomic_load_n(&g_stage_sleepers, __ATOMIC_SEQ_CST)) wake_all(&g_stages_ended);
      if (__atomic_load_n(&g_done_sleepers, __ATOMIC_SEQ_CST)) wake_all(&g_done);
    }
  }
}

static void *worker_main(void *arg) {
  const int id = (int)(intptr_t)arg;
  /* look at the current job once: a worker started for it may still help */
  uint32_t seen = __atomic_load_n(&g_wake, __ATOMIC_ACQUIRE) - 1;
  int stepped_aside = 0;
  for (;;) {
    /* a worker that stepped aside leaves its CPU to the caller running alone at once */
    const uint32_t now = wait_until(&g_wake, &g_sleeping, differs, seen, stepped_aside ? 0 : IDLE_SPIN_NS);
    seen = now;
    if (__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) return NULL;
    stepped_aside = work(now & GEN_MASK, id);
  }
}

static void publish_wake(void) {
  __atomic_add_fetch(&g_wake, 1, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&g_sleeping, __ATOMIC_SEQ_CST)) wake_all(&g_wake);
}

/* Start workers 1..wanted-1 that are missing; returns the participants available. */
static int ensure_workers(int wanted) {
  if (wanted > MNQ_MAX_THREADS) wanted = MNQ_MAX_THREADS;
  if (g_workers + 1 >= wanted) return wanted;
  /* workers take no signals: they stay with the threads the application manages */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  while (g_workers + 1 < wanted &&
         pthread_create(&g_threads[g_workers], NULL, worker_main, (void *)(intptr_t)(g_workers + 1)) == 0)
    g_workers++;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return g_workers + 1 < wanted ? g_workers + 1 : wanted;
}

static void stop_workers(void) {
  __atomic_store_n(&g_stop, 1, __ATOMIC_RELEASE);
  publish_wake();
  for (int i = 0; i < g_workers; i++) pthread_join(g_threads[i], NULL);
  g_workers = 0;
  __atomic_store_n(&g_stop, 0, __ATOMIC_RELEASE);
}

/* A forked child has only the forking thread: it starts its own workers when it
 * first runs a job. The prepare handler keeps a job from being mid-flight at fork. */
static void before_fork(void) { pthread_mutex_lock(&g_lock); }
static void after_fork_parent(void) { pthread_mutex_unlock(&g_lock); }
static void after_fork_child(void) {
  g_workers = 0;
  g_alone = 0;
  g_sleeping = 0;
  g_done_sleepers = 0;
  g_stage_sleepers = 0;
  pthread_mutex_unlock(&g_lock);
}
static pthread_once_t g_fork_hook_once = PTHREAD_ONCE_INIT;
static void install_fork_hook(void) { pthread_atfork(before_fork, after_fork_parent, after_fork_child); }

int mnq_pool_acquire(void) {
  pthread_once(&g_fork_hook_once, install_fork_hook);
  pthread_mutex_lock(&g_lock);
  g_users++;
  pthread_mutex_unlock(&g_lock);
  return 0;
}

void mnq_pool_release(void) {
  pthread_mutex_lock(&g_lock);
  if (--g_users == 0) {
    stop_workers();
    free(g_first), free(g_stage_end);
    g_first = NULL, g_stage_end = NULL, g_capacity = 0;
  }
  pthread_mutex_unlock(&g_lock);
}

static int reserve_stages(int n) {
  if (n <= g_capacity) return 0;
  int *first = realloc(g_first, sizeof(int) * ((size_t)n + 1));
  if (!first) return -1;
  g_first = first;
  double *end = realloc(g_stage_end, sizeof(double) * (size_t)n);
  if (!end) return -1;
  g_stage_end = end;
  g_capacity = n;
  return 0;
}

/* Threads runnable system-wide right now, this one included (the 4th field of
 * /proc/loadavg, "running/total"); 0 when unknown. */
static int runnable_threads(void) {
#ifdef __linux__
  const int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char text[128];
  const ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return 0;
  text[n] = 0;
  const char *p = text;
  for (int field = 0; field < 3; field++) { /* skip the three load averages */
    while (*p && *p != ' ') p++;
    while (*p == ' ') p++;
  }
  int running = 0;
  while (*p >= '0' && *p <= '9' && running < 1000000) running = running * 10 + (*p++ - '0');
  return *p == '/' ? running : 0;
#else
  return 0;
#endif
}

static long g_cpus; /* online CPUs, read once */
static pthread_once_t g_cpus_once = PTHREAD_ONCE_INIT;
static void read_cpus(void) { g_cpus = sysconf(_SC_NPROCESSORS_ONLN); }

/* Runnable threads outside this pool now, -1 when unknown; under g_lock (it reads g_workers). */
static long other_load_locked(void) {
  pthread_once(&g_cpus_once, read_cpus);
  const int running = runnable_threads();
  if (running <= 0 || g_cpus <= 0) return -1;
  /* this pool's own runnable threads will work for the job (awake workers) or are
   * already within its budget (callers running alone): they are not other load */
  const int ours = 1 + (g_workers - (int)__atomic_load_n(&g_sleeping, __ATOMIC_RELAXED)) +
                   __atomic_load_n(&g_alone, __ATOMIC_RELAXED);
  return running > ours ? running - ours : 0;
}

/* Participants for a job that wants `wanted` beside `others` runnable threads. */
static int fit_threads(int wanted, long others) {
  if (others < 0) return wanted;
  const long free_cpus = g_cpus - others;
  return free_cpus < 1 ? 1 : free_cpus < wanted ? (int)free_cpus : wanted;
}

/* The loads the last adapting jobs saw; a job counts the smallest of these and its own
 * sample, so a thread that is runnable for an instant (a kernel thread, a neighbour's short
 * burst) does not cost a quiet machine's job its threads, while a busy process shows in all.
 * With two samples 1.8-2.5% of quiet jobs still lost a thread, with three 0.4-0.8%. */
static long g_other_load_before[2] = {LONG_MAX, LONG_MAX}; /* the previous two jobs' samples */
static unsigned g_load_sample;

static int adapted_threads_locked(int wanted) {
  enum { BEFORE = sizeof g_other_load_before / sizeof g_other_load_before[0] };
  const long now = other_load_locked();
  long others = now;
  for (int i = 0; i < BEFORE; i++)
    if (g_other_load_before[i] < others) others = g_other_load_before[i];
  g_other_load_before[g_load_sample++ % BEFORE] = now < 0 ? LONG_MAX : now;
  return fit_threads(wanted, others);
}

int mnq_pool_threads_free(int wanted) {
  if (wanted <= 1) return 1;
  pthread_mutex_lock(&g_lock);
  const int threads = fit_threads(wanted, other_load_locked());
  pthread_mutex_unlock(&g_lock);
  return threads;
}

/* The whole job on the calling thread, in order. */
static void run_inline(const mnq_pool_job *job) {
  double t0 = job->stage_seconds ? now_seconds() : 0.0;
  for (int s = 0; s < job->num_stages; s++) {
    const int asked = job->tiles(job->ctx, s, 1), tiles = asked > 1 ? asked : 1;
    for (int t = 0; t < tiles; t++) job->fn(job->ctx, s, t, tiles, 0);
    if (job->stage_seconds) {
      const double t1 = now_seconds();
      job->stage_seconds[s] += t1 - t0;
      t0 = t1;
    }
  }
}

/* Another caller's job holds the pool: run this one alone on the calling thread when
 * that keeps the threads on the CPUs within what the running job asked for (its workers
 * step aside, see work()). 0 when there is no room: then wait for the pool. */
static int run_alongside(const mnq_pool_job *job) {
  const int budget = __atomic_load_n(&g_budget, __ATOMIC_ACQUIRE);
  int alone = __atomic_load_n(&g_alone, __ATOMIC_RELAXED);
  while (alone + 1 < budget && alone + 1 < job->threads) {
    if (__atomic_compare_exchange_n(&g_alone, &alone, alone + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
      run_inline(job);
      __atomic_sub_fetch(&g_alone, 1, __ATOMIC_RELEASE);
      return 1;
    }
  }
  return 0;
}

int mnq_pool_run(const mnq_pool_job *job) {
  if (!job || !job->fn || !job->tiles || job->num_stages <= 0 || job->threads < 1) return -1;
  if (job->threads == 1) {
    run_inline(job);
    return 0;
  }
  if (pthread_mutex_trylock(&g_lock) != 0) {
    if (run_alongside(job)) return 0;
    pthread_mutex_lock(&g_lock);
  }
  const int threads = ensure_workers(job->adapt_threads ? adapted_threads_locked(job->threads) : job->threads);
  __atomic_store_n(&g_budget, job->threads, __ATOMIC_RELEASE);
  /* holding the pool: beyond the threads asked for, other callers wait. With callers
   * running alone in every worker's place, the job runs on this thread, whole layers at a time. */
  if (threads - __atomic_load_n(&g_alone, __ATOMIC_ACQUIRE) <= 1) {
    run_inline(job);
    pthread_mutex_unlock(&g_lock);
    return 0;
  }
  if (reserve_stages(job->num_stages)) {
    pthread_mutex_unlock(&g_lock);
    run_inline(job);
    return 0;
  }
  uint64_t total = 0;
  g_first[0] = 0;
  for (int s = 0; s < job->num_stages; s++) {
    const int tiles = job->tiles(job->ctx, s, threads);
    total += (uint64_t)(tiles > 1 ? tiles : 1);
    if (total > MAX_TILES) {
      pthread_mutex_unlock(&g_lock);
      return -1;
    }
    g_first[s + 1] = (int)total;
  }
  g_job = *job;
  g_total = (uint32_t)total;
  __atomic_store_n(&g_done, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&g_stages_timed, 0, __ATOMIC_RELAXED);
  const double t0 = job->stage_seconds ? now_seconds() : 0.0;
  const uint32_t gen = (__atomic_load_n(&g_wake, __ATOMIC_RELAXED) + 1) & GEN_MASK;
  __atomic_store_n(&g_ready, READY(gen, total - (uint64_t)g_first[1]), __ATOMIC_SEQ_CST); /* stage 0 may start */
  __atomic_store_n(&g_claim, CLAIM(gen, threads, total), __ATOMIC_RELEASE);
  publish_wake(); /* g_wake becomes gen (mod 2^GEN_BITS) */
  (void)work(gen, 0);
  wait_done((uint32_t)total);
  if (job->stage_seconds) {
    while (__atomic_load_n(&g_stages_timed, __ATOMIC_ACQUIRE) < (uint32_t)job->num_stages) cpu_relax();
    double prev = t0;
    for (int s = 0; s < job->num_stages; s++) {
      job->stage_seconds[s] += g_stage_end[s] - prev;
      prev = g_stage_end[s];
    }
  }
  pthread_mutex_unlock(&g_lock);
  return 0;
}
