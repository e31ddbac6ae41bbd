// Matrix-vector products for generation at batch 1: y += W·x with W row-major [rows, cols].
// Each output is the dot product of one contiguous row with x, so W streams through once.
#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

// Four rows of W against NV vectors at once (NV = 1, 2 or 3). Each vector's four outputs are
// computed by exactly the same operations whatever NV is and whichever other vectors share the
// block: 8-wide FMA accumulators over the columns in order, the same horizontal reduction,
// then the column tail by scalar FMAs. So y_j does not depend on the batch or on j's position
// (what continuous batching needs: a stream's tokens are the same alone and beside others).
#define GEMV_BLOCK4(NV)                                                                          \
  __attribute__((target("avx2,fma"))) static void gemv_block4_##NV(                                \
      long cols, const float *w, long ldw, const float *const *xs, float *const *ys, long r) {     \
    const float *w0 = w + r * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;              \
    __m256 a[NV][4];                                                                             \
    for (int v = 0; v < NV; v++)                                                                 \
      for (int i = 0; i < 4; i++) a[v][i] = _mm256_setzero_ps();                                 \
    long c = 0;                                                                                  \
    for (; c + 8 <= cols; c += 8) {                                                              \
      __m256 xv[NV];                                                                             \
      for (int v = 0; v < NV; v++) xv[v] = _mm256_loadu_ps(xs[v] + c);                          \
      __m256 wv = _mm256_loadu_ps(w0 + c);                                                       \
      for (int v = 0; v < NV; v++) a[v][0] = _mm256_fmadd_ps(wv, xv[v], a[v][0]);              \
      wv = _mm256_loadu_ps(w1 + c);                                                              \
      for (int v = 0; v < NV; v++) a[v][1] = _mm256_fmadd_ps(wv, xv[v], a[v][1]);              \
      wv = _mm256_loadu_ps(w2 + c);                                                              \
      for (int v = 0; v < NV; v++) a[v][2] = _mm256_fmadd_ps(wv, xv[v], a[v][2]);              \
      wv = _mm256_loadu_ps(w3 + c);                                                              \
      for (int v = 0; v < NV; v++) a[v][3] = _mm256_fmadd_ps(wv, xv[v], a[v][3]);              \
    }                                                                                            \
    for (int v = 0; v < NV; v++) {                                                               \
      __m256 s01 = _mm256_hadd_ps(a[v][0], a[v][1]), s23 = _mm256_hadd_ps(a[v][2], a[v][3]);     \
      __m256 s = _mm256_hadd_ps(s01, s23);                                                       \
      __m128 sum = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));          \
      float out[4];                                                                              \
      _mm_storeu_ps(out, sum);                                                                   \
      const float *x = xs[v];                                                                    \
      for (long t = c; t < cols; t++) {                                                          \
        out[0] = __builtin_fmaf(w0[t], x[t], out[0]);                                            \
        out[1] = __builtin_fmaf(w1[t], x[t], out[1]);                                            \
        out[2] = __builtin_fmaf(w2[t], x[t], out[2]);                                            \
        out[3] = __builtin_fmaf(w3[t], x[t], out[3]);                                            \
      }                                                                                          \
      float *y = ys[v];                                                                          \
      y[r] += out[0];                                                                            \
      y[r + 1] += out[1];                                                                        \
      y[r + 2] += out[2];                                                                        \
      y[r + 3] += out[3];                                                                        \
    }                                                                                            \
  }
GEMV_BLOCK4(1)
GEMV_BLOCK4(2)
GEMV_BLOCK4(3)

// Rows [start, end) of W (start a multiple of 4) against n vectors.
__attribute__((target("avx2,fma"))) static void gemv_avx2(long start, long end, long cols, const float *w,
                                                          long ldw, const float *x, long ldx, float *y,
                                                          long ldy, long n) {
  for (long v0 = 0; v0 < n; v0 += 3) {
    long nv = n - v0 < 3 ? n - v0 : 3;
    const float *xs[3];
    float *ys[3];
    for (long v = 0; v < nv; v++) {
      xs[v] = x + (v0 + v) * ldx;
      ys[v] = y + (v0 + v) * ldy;
    }
    long r = start;
    for (; r + 4 <= end; r += 4) {
      if (nv == 3) gemv_block4_3(cols, w, ldw, xs, ys, r);
      else if (nv == 2) gemv_block4_2(cols, w, ldw, xs, ys, r);
      else gemv_block4_1(cols, w, ldw, xs, ys, r);
    }
    for (; r < end; r++) {
      const float *wr = w + r * ldw;
      for (long v = 0; v < nv; v++) {
        float s = 0;
        for (long c = 0; c < cols; c++) s = __builtin_fmaf(wr[c], xs[v][c], s);
        ys[v][r] += s;
      }
    }
  }
}
// The AVX-512 path: per row and vector one 16-lane accumulator over the columns in order (the
// ragged end by a masked load), then one reduction; eight rows at a time for one vector, four
// for two or three (so 8-12 independent chains), the lone rows of a block by the same code.
#define RC_AVX512_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
RC_AVX512_TARGET static inline __attribute__((always_inline)) void gemv512_block(
    const int R, const int NV, long r, long cols, const float *w, long ldw, const float *const *xs, float *const *ys) {
  __m512 acc[8][3];
  for (int i = 0; i < R; i++)
    for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
  for (long c = 0; c < cols; c += 16) {
    __mmask16 m = c + 16 <= cols ? 0xFFFF : (__mmask16)((1u << (cols - c)) - 1);
    __m512 xv[3];
    for (int v = 0; v < NV; v++) xv[v] = _mm512_maskz_loadu_ps(m, xs[v] + c);
    for (int i = 0; i < R; i++) {
      __m512 wv = _mm512_maskz_loadu_ps(m, w + (r + i) * ldw + c);
      for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(wv, xv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < R; i++)
    for (int v = 0; v < NV; v++) ys[v][r + i] += _mm512_reduce_add_ps(acc[i][v]);
}

#define GEMV512_ROWS(NV, BLOCK)                                                                       \
  RC_AVX512_TARGET static void gemv512_rows_##NV(long start, long end, long cols, const float *w, long ldw, \
                                                 const float *const *xs, float *const *ys) {           \
    long r = start;                                                                                   \
    for (; r + BLOCK <= end; r += BLOCK) gemv512_block(BLOCK, NV, r, cols, w, ldw, xs, ys);           \
    for (; r < end; r++) gemv512_block(1, NV, r, cols, w, ldw, xs, ys);                               \
  }
GEMV512_ROWS(1, 8)
GEMV512_ROWS(2, 4)
GEMV512_ROWS(3, 4)

static void gemv_avx512(long start, long end, long cols, const float *w, long ldw, const float *x, long ldx, float *y,
                        long ldy, long n) {
  for (long v0 = 0; v0 < n; v0 += 3) {
    long nv = n - v0 < 3 ? n - v0 : 3;
    const float *xs[3];
    float *ys[3];
    for (long v = 0; v < nv; v++) {
      xs[v] = x + (v0 + v) * ldx;
      ys[v] = y + (v0 + v) * ldy;
    }
    if (nv == 3) gemv512_rows_3(start, end, cols, w, ldw, xs, ys);
    else if (nv == 2) gemv512_rows_2(start, end, cols, w, ldw, xs, ys);
    else gemv512_rows_1(start, end, cols, w, ldw, xs, ys);
  }
}
#endif


// The portable path: each vector's outputs as four interleaved partial sums, the same for any
// batch.
static void gemv_generic(long start, long end, long cols, const float *w, long ldw, const float *x, long ldx,
                         float *y, long ldy, long n) {
  for (long v = 0; v < n; v++) {
    const float *xv = x + v * ldx;
    float *yv = y + v * ldy;
    for (long r = start; r < end; r++) {
      const float *wr = w + r * ldw;
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      long c = 0;
      for (; c + 4 <= cols; c += 4) {
        s0 += wr[c] * xv[c];
        s1 += wr[c + 1] * xv[c + 1];
        s2 += wr[c + 2] * xv[c + 2];
        s3 += wr[c + 3] * xv[c + 3];
      }
      for (; c < cols; c++) s0 += wr[c] * xv[c];
      yv[r] += (s0 + s1) + (s2 + s3);
    }
  }
}

static void gemv_rows(int kernel, long start, long end, long cols, const float *w, long ldw, const float *x,
                      long ldx, float *y, long ldy, long n) {
#if defined(__x86_64__)
  int level = rc_cpu_level();
  if (kernel == RC_KERNEL_AVX512 || (kernel == RC_KERNEL_AUTO && level >= RC_LEVEL_AVX512)) {
    gemv_avx512(start, end, cols, w, ldw, x, ldx, y, ldy, n);
    return;
  }
  if (kernel == RC_KERNEL_AVX2 || (kernel == RC_KERNEL_AUTO && level >= RC_LEVEL_AVX2)) {
    gemv_avx2(start, end, cols, w, ldw, x, ldx, y, ldy, n);
    return;
  }
#endif
  gemv_generic(start, end, cols, w, ldw, x, ldx, y, ldy, n);
}

typedef struct {
  int kernel;
  long rows, cols, ldw, ldx, ldy, n;
  const float *w, *x;
  float *y;
  int parts;
} gemv_job;

static void gemv_part(void *ctx, int part) {
  const gemv_job *j = ctx;
  long units = (j->rows + 3) / 4;
  long start = units * part / j->parts * 4, end = units * (part + 1) / j->parts * 4;
  if (end > j->rows) end = j->rows;
  if (end > start) gemv_rows(j->kernel, start, end, j->cols, j->w, j->ldw, j->x, j->ldx, j->y, j->ldy, j->n);
}

void rc_sgemv_batch(int threads, int kernel, long rows, long cols, const float *w, long ldw, const float *x,
                    long ldx, float *y, long ldy, long n) {
  if (n <= 0) return;
  // Below ~64k multiply-adds, waking a second thread costs more than it saves. Threads split the
  // rows of W in blocks of four, which changes no output's arithmetic.
  long parts = threads;
  long work = rows * cols * n / (1L << 16);
  if (parts > work) parts = work;
  if (parts > (rows + 3) / 4) parts = (rows + 3) / 4;
  if (parts <= 1) {
    gemv_rows(kernel, 0, rows, cols, w, ldw, x, ldx, y, ldy, n);
    return;
  }
  gemv_job j = {kernel, rows, cols, ldw, ldx, ldy, n, w, x, y, (int)parts};
  // Parts the pool could not start (no thread could be created) run here, so every block of y
  // is written.
  for (int part = rc_parallel_for((int)parts, gemv_part, &j); part < (int)parts; part++) gemv_part(&j, part);
}

void rc_sgemv(int threads, long rows, long cols, const float *w, long ldw, const float *x, float *y) {
  rc_sgemv_batch(threads, 0, rows, cols, w, ldw, x, cols, y, rows, 1);
}
