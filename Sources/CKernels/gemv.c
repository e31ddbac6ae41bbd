// Matrix-vector products for generation at batch 1: y += W·x with W row-major [rows, cols].
// Each output is the dot product of one contiguous row with x, so W streams through once.
#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static void gemv_avx2(long rows, long cols, const float *w,
                                                          long ldw, const float *x, float *y) {
  long r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float *w0 = w + r * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    long c = 0;
    for (; c + 8 <= cols; c += 8) {
      __m256 xv = _mm256_loadu_ps(x + c);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + c), xv, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + c), xv, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + c), xv, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + c), xv, a3);
    }
    // Horizontal sums of the four accumulators at once.
    __m256 s01 = _mm256_hadd_ps(a0, a1), s23 = _mm256_hadd_ps(a2, a3);
    __m256 s = _mm256_hadd_ps(s01, s23);
    __m128 sum = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    float out[4];
    _mm_storeu_ps(out, sum);
    for (; c < cols; c++) {
      out[0] += w0[c] * x[c];
      out[1] += w1[c] * x[c];
      out[2] += w2[c] * x[c];
      out[3] += w3[c] * x[c];
    }
    y[r] += out[0];
    y[r + 1] += out[1];
    y[r + 2] += out[2];
    y[r + 3] += out[3];
  }
  for (; r < rows; r++) {
    const float *wr = w + r * ldw;
    float s = 0;
    for (long c = 0; c < cols; c++) s += wr[c] * x[c];
    y[r] += s;
  }
}
#endif

static void gemv_generic(long rows, long cols, const float *w, long ldw, const float *x, float *y) {
  for (long r = 0; r < rows; r++) {
    const float *wr = w + r * ldw;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    long c = 0;
    for (; c + 4 <= cols; c += 4) {
      s0 += wr[c] * x[c];
      s1 += wr[c + 1] * x[c + 1];
      s2 += wr[c + 2] * x[c + 2];
      s3 += wr[c + 3] * x[c + 3];
    }
    for (; c < cols; c++) s0 += wr[c] * x[c];
    y[r] += (s0 + s1) + (s2 + s3);
  }
}

static void gemv_one(long rows, long cols, const float *w, long ldw, const float *x, float *y) {
#if defined(__x86_64__)
  if (rc_cpu_has_avx2_fma()) {
    gemv_avx2(rows, cols, w, ldw, x, y);
    return;
  }
#endif
  gemv_generic(rows, cols, w, ldw, x, y);
}

typedef struct {
  long rows, cols, ldw;
  const float *w, *x;
  float *y;
  int parts;
} gemv_job;

static void gemv_part(void *ctx, int part) {
  const gemv_job *j = ctx;
  long units = (j->rows + 3) / 4;
  long start = units * part / j->parts * 4, end = units * (part + 1) / j->parts * 4;
  if (end > j->rows) end = j->rows;
  if (end > start) gemv_one(end - start, j->cols, j->w + start * j->ldw, j->ldw, j->x, j->y + start);
}

void rc_sgemv(int threads, long rows, long cols, const float *w, long ldw, const float *x,
              float *y) {
  // Below ~64k multiply-adds (a 256 KB matrix), waking a second thread costs more than it saves.
  long parts = threads;
  if (parts > rows * cols / (1L << 16)) parts = rows * cols / (1L << 16);
  if (parts <= 1) {
    gemv_one(rows, cols, w, ldw, x, y);
    return;
  }
  gemv_job j = {rows, cols, ldw, w, x, y, (int)parts};
  // Parts the pool could not start (no thread could be created) run here, so every block of y
  // is written.
  for (int part = rc_parallel_for((int)parts, gemv_part, &j); part < (int)parts; part++) gemv_part(&j, part);
}
