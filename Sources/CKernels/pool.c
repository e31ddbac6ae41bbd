// A small persistent thread pool for the kernels. Part i of a job always runs on worker i
// (part 0 on the caller), so work assignment, and with it every result, is the same on each
// run. Workers spin briefly after a job before sleeping, because an RNN issues thousands of
// short products back to back and waking a sleeping thread costs tens of microseconds.
#include "CKernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

enum { MAX_WORKERS = 64, SPIN_ROUNDS = 20000 };

static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER;  // one job at a time
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int worker_count = 0;  // guarded by submit_lock
static _Atomic unsigned long generation = 0;
static _Atomic int pending = 0;
static rc_part_fn job_fn;
static void *job_ctx;
static int job_parts;

// The generation a worker was created at: it must run the next one even if it starts late.
static unsigned long created_at[MAX_WORKERS + 1];

static void *worker_main(void *arg) {
  int index = (int)(long)arg;
  unsigned long seen = created_at[index];
  for (;;) {
    unsigned long now;
    int spins = 0;
    while ((now = atomic_load_explicit(&generation, memory_order_acquire)) == seen) {
      if (++spins < SPIN_ROUNDS) {
        cpu_relax();
      } else {
        pthread_mutex_lock(&sleep_lock);
        while ((now = atomic_load_explicit(&generation, memory_order_acquire)) == seen)
          pthread_cond_wait(&wake, &sleep_lock);
        pthread_mutex_unlock(&sleep_lock);
        break;
      }
    }
    seen = now;
    // Every worker acknowledges every job, taking part or not, so the next job's parameters
    // are never written while a worker may still be reading this one's.
    if (index < job_parts) job_fn(job_ctx, index);
    atomic_fetch_sub_explicit(&pending, 1, memory_order_acq_rel);
  }
  return NULL;
}

int rc_parallel_for(int parts, rc_part_fn fn, void *ctx) {
  if (parts <= 1) {
    if (parts == 1) fn(ctx, 0);
    return parts < 0 ? 0 : parts;
  }
  if (parts > MAX_WORKERS + 1) parts = MAX_WORKERS + 1;
  pthread_mutex_lock(&submit_lock);
  while (worker_count < parts - 1) {
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    created_at[worker_count + 1] = atomic_load_explicit(&generation, memory_order_acquire);
    int failed = pthread_create(&thread, &attr, worker_main, (void *)(long)(worker_count + 1));
    pthread_attr_destroy(&attr);
    if (failed) break;
    worker_count++;
  }
  if (parts > worker_count + 1) parts = worker_count + 1;
  job_fn = fn;
  job_ctx = ctx;
  job_parts = parts;
  atomic_store_explicit(&pending, worker_count, memory_order_release);
  pthread_mutex_lock(&sleep_lock);
  atomic_fetch_add_explicit(&generation, 1, memory_order_acq_rel);
  pthread_cond_broadcast(&wake);
  pthread_mutex_unlock(&sleep_lock);
  fn(ctx, 0);
  while (atomic_load_explicit(&pending, memory_order_acquire) != 0) cpu_relax();
  pthread_mutex_unlock(&submit_lock);
  return parts;
}

// --- parallel GEMM: C is cut into column blocks (n >= m) or row blocks, whole micro-panels each.
typedef struct {
  int trans_a, trans_b;
  long m, n, k, lda, ldb, ldc, extent, units, unit;
  int parts, split_columns;
  float alpha, beta;
  const float *a, *b;
  float *c;
  rc_kernel kernel;
} gemm_job;

static void gemm_part(void *ctx, int part) {
  const gemm_job *j = ctx;
  long start = j->units * part / j->parts * j->unit;
  long end = j->units * (part + 1) / j->parts * j->unit;
  if (start > j->extent) start = j->extent;
  if (end > j->extent) end = j->extent;
  if (end <= start) return;
  if (j->split_columns) {
    const float *b = j->trans_b ? j->b + start * j->ldb : j->b + start;
    rc_sgemm(j->trans_a, j->trans_b, j->m, end - start, j->k, j->alpha, j->a, j->lda, b, j->ldb,
             j->beta, j->c + start, j->ldc, j->kernel);
  } else {
    const float *a = j->trans_a ? j->a + start : j->a + start * j->lda;
    rc_sgemm(j->trans_a, j->trans_b, end - start, j->n, j->k, j->alpha, a, j->lda, j->b, j->ldb,
             j->beta, j->c + start * j->ldc, j->ldc, j->kernel);
  }
}

void rc_sgemm_threaded(int threads, int trans_a, int trans_b, long m, long n, long k,
                       float alpha, const float *a, long lda, const float *b, long ldb,
                       float beta, float *c, long ldc, rc_kernel kernel) {
  gemm_job j = {trans_a, trans_b, m, n, k, lda, ldb, ldc, 0, 0, 0, 0, 0, alpha, beta, a, b, c,
                kernel};
  j.split_columns = n >= m;
  j.unit = j.split_columns ? 16 : 6;
  j.extent = j.split_columns ? n : m;
  j.units = (j.extent + j.unit - 1) / j.unit;
  // Below ~128k multiply-adds per thread a second thread costs more than it saves.
  long work = m * n * k;
  long parts = threads;
  if (parts > work / (1L << 17)) parts = work / (1L << 17);
  if (parts > j.units) parts = j.units;
  if (parts <= 1) {
    rc_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, kernel);
    return;
  }
  j.parts = (int)parts;
  // Parts the pool could not start (no thread could be created) run here, so every block of C
  // is written.
  for (int part = rc_parallel_for(j.parts, gemm_part, &j); part < j.parts; part++) gemm_part(&j, part);
}
