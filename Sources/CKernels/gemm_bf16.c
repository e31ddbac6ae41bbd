// bf16 GEMM (AVX512_BF16): operands rounded to bfloat16 while they are packed, products
// accumulated in float32 by VDPBF16PS, C kept in float32 (oneDNN's rules for bf16 training).
// Same blocking and 12x32 tile as the float32 AVX-512 path (gemm.c), with the depth taken in
// pairs: a packed A panel holds, per pair of depth steps, MR 32-bit words (two bf16 of one
// row); a packed B panel holds NR such words per pair (two bf16 of one column), so one 64-byte
// load feeds 16 columns and one broadcast feeds a row.
#include "CKernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define RC_X86 1
#endif

enum { MR = 6, NR = 16, KC = 256, MC = 96, NC = 4096 };

// float32 -> bfloat16, rounding to nearest even; denormal inputs become zero and NaNs stay NaN
// (what VCVTNE2PS2BF16 does).
static inline uint32_t bf16_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7f800000u) == 0) return (u >> 16) & 0x8000u;  // zero or denormal: signed zero
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;  // NaN, kept quiet
  u += 0x7fffu + ((u >> 16) & 1u);
  return u >> 16;
}

float rc_round_bf16(float x) {
  uint32_t u = bf16_bits(x) << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static inline float op_at(int trans, const float *m, long ld, long row, long col) {
  return trans ? m[col * ld + row] : m[row * ld + col];
}

// Rows [i0, i0+mc) and depth [p0, p0+kc) of op(A) as MR-row panels of depth pairs.
static void pack_a_bf16_scalar(int trans, const float *a, long lda, long i0, long p0, long mc, long kc, uint32_t *dst) {
  long kc2 = (kc + 1) / 2;
  for (long ir = 0; ir < mc; ir += MR) {
    long rows = mc - ir < MR ? mc - ir : MR;
    for (long q = 0; q < kc2; q++) {
      long p = p0 + 2 * q;
      int second = 2 * q + 1 < kc;
      for (long r = 0; r < MR; r++) {
        uint32_t lo = 0, hi = 0;
        if (r < rows) {
          lo = bf16_bits(op_at(trans, a, lda, i0 + ir + r, p));
          if (second) hi = bf16_bits(op_at(trans, a, lda, i0 + ir + r, p + 1));
        }
        dst[q * MR + r] = lo | hi << 16;
      }
    }
    dst += kc2 * MR;
  }
}

// Depth [p0, p0+kc) and columns [j0, j0+nc) of op(B) as NR-column panels of depth pairs.
static void pack_b_bf16_scalar(int trans, const float *b, long ldb, long p0, long j0, long kc, long nc, uint32_t *dst) {
  long kc2 = (kc + 1) / 2;
  for (long jr = 0; jr < nc; jr += NR) {
    long cols = nc - jr < NR ? nc - jr : NR;
    for (long q = 0; q < kc2; q++) {
      long p = p0 + 2 * q;
      int second = 2 * q + 1 < kc;
      for (long c = 0; c < NR; c++) {
        uint32_t lo = 0, hi = 0;
        if (c < cols) {
          lo = bf16_bits(op_at(!trans, b, ldb, j0 + jr + c, p));
          if (second) hi = bf16_bits(op_at(!trans, b, ldb, j0 + jr + c, p + 1));
        }
        dst[q * NR + c] = lo | hi << 16;
      }
    }
    dst += kc2 * NR;
  }
}

int rc_cpu_has_avx512_bf16(void) {
#if RC_X86
  __builtin_cpu_init();
  return rc_cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
#else
  return 0;
#endif
}

#if RC_X86
#define RC_BF16_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma")))

// Vectorised packing: VCVTNE2PS2BF16 rounds 32 floats at once (the same rounding as
// bf16_bits), 16 depth pairs of one row or column per vector; words are then dealt to the
// panels' layout through a small transpose buffer. Edges go through the scalar packers.
RC_BF16_TARGET static inline __m512i round_pairs(const float *x) {
  // 32 consecutive floats -> 16 words, word q = (bf16 x[2q], bf16 x[2q+1]).
  return (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x));
}

RC_BF16_TARGET static inline __m512i round_interleaved(const float *lo, const float *hi) {
  // 16 floats of two rows -> 16 words, word c = (bf16 lo[c], bf16 hi[c]).
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                         5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  __m512i both = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(hi), _mm512_loadu_ps(lo));
  return _mm512_permutexvar_epi16(order, both);
}

RC_BF16_TARGET static void pack_a_bf16(int trans, const float *a, long lda, long i0, long p0, long mc, long kc,
                                       uint32_t *dst) {
  long kc2 = (kc + 1) / 2, even = kc / 2;  // pairs, and pairs with both halves inside
  if (!trans) {
    long full = mc / MR * MR;
    uint32_t words[MR][16] __attribute__((aligned(64)));
    for (long ir = 0; ir < full; ir += MR) {
      uint32_t *d = dst + ir * kc2;
      long q = 0;
      for (; q + 16 <= even; q += 16) {
        for (int r = 0; r < MR; r++) _mm512_store_si512(words[r], round_pairs(a + (i0 + ir + r) * lda + p0 + 2 * q));
        for (int w = 0; w < 16; w++)
          for (int r = 0; r < MR; r++) d[(q + w) * MR + r] = words[r][w];
      }
      for (; q < kc2; q++) {
        for (int r = 0; r < MR; r++) {
          const float *row = a + (i0 + ir + r) * lda + p0;
          uint32_t lo = bf16_bits(row[2 * q]), hi = 2 * q + 1 < kc ? bf16_bits(row[2 * q + 1]) : 0;
          d[q * MR + r] = lo | hi << 16;
        }
      }
    }
    if (full < mc) pack_a_bf16_scalar(0, a, lda, i0 + full, p0, mc - full, kc, dst + full * kc2);
    return;
  }
  // op(A)(i, p) = A[p, i]: rows 2q and 2q+1 of A give the words of every i at once.
  uint32_t words[MC + 16] __attribute__((aligned(64)));
  for (long q = 0; q < kc2; q++) {
    const float *lo = a + (p0 + 2 * q) * lda + i0, *hi = lo + lda;
    int second = 2 * q + 1 < kc;
    long i = 0;
    if (second)
      for (; i + 16 <= mc; i += 16) _mm512_store_si512(words + i, round_interleaved(lo + i, hi + i));
    for (; i < mc; i++) words[i] = bf16_bits(lo[i]) | (second ? bf16_bits(hi[i]) << 16 : 0);
    for (long ir = 0; ir < mc; ir += MR) {
      uint32_t *d = dst + ir * kc2 + q * MR;
      long rows = mc - ir < MR ? mc - ir : MR;
      long r = 0;
      for (; r < rows; r++) d[r] = words[ir + r];
      for (; r < MR; r++) d[r] = 0;
    }
  }
}

RC_BF16_TARGET static void pack_b_bf16(int trans, const float *b, long ldb, long p0, long j0, long kc, long nc,
                                       uint32_t *dst) {
  long kc2 = (kc + 1) / 2, even = kc / 2;
  long full = nc / NR * NR;
  if (!trans) {
    for (long jr = 0; jr < full; jr += NR) {
      uint32_t *d = dst + jr * kc2;
      const float *col = b + p0 * ldb + j0 + jr;
      long q = 0;
      for (; q < even; q++) _mm512_storeu_si512(d + q * NR, round_interleaved(col + 2 * q * ldb, col + (2 * q + 1) * ldb));
      if (q < kc2) {  // odd depth: the last pair's second half is zero
        for (int c = 0; c < NR; c++) d[q * NR + c] = bf16_bits(col[2 * q * ldb + c]);
      }
    }
  } else {
    uint32_t words[NR][16] __attribute__((aligned(64)));
    for (long jr = 0; jr < full; jr += NR) {
      uint32_t *d = dst + jr * kc2;
      long q = 0;
      for (; q + 16 <= even; q += 16) {
        for (int c = 0; c < NR; c++) _mm512_store_si512(words[c], round_pairs(b + (j0 + jr + c) * ldb + p0 + 2 * q));
        for (int w = 0; w < 16; w++)
          for (int c = 0; c < NR; c++) d[(q + w) * NR + c] = words[c][w];
      }
      for (; q < kc2; q++) {
        for (int c = 0; c < NR; c++) {
          const float *row = b + (j0 + jr + c) * ldb + p0;
          uint32_t lo = bf16_bits(row[2 * q]), hi = 2 * q + 1 < kc ? bf16_bits(row[2 * q + 1]) : 0;
          d[q * NR + c] = lo | hi << 16;
        }
      }
    }
  }
  if (full < nc) pack_b_bf16_scalar(trans, b, ldb, p0, j0 + full, kc, nc - full, dst + full * kc2);
}

RC_BF16_TARGET static inline __attribute__((always_inline)) void tile_bf16(
    const int two_row_panels, const int two_col_panels, long kc2, const uint32_t *a, const uint32_t *b0,
    const uint32_t *b1, float *c, long ldc, long rows, long cols, float alpha, float beta) {
  enum { R = 2 * MR };
  const int nr = two_row_panels ? R : MR;
  __m512 acc[R][2];
  for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const uint32_t *a1 = a + MR * kc2;
  for (long q = 0; q < kc2; q++) {
    __m512bh x0 = (__m512bh)_mm512_loadu_si512(b0);
    __m512bh x1 = two_col_panels ? (__m512bh)_mm512_loadu_si512(b1) : x0;
    for (int r = 0; r < MR; r++) {
      __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[r]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, x0);
      if (two_col_panels) acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, x1);
    }
    if (two_row_panels) {
      for (int r = 0; r < MR; r++) {
        __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a1[r]);
        acc[MR + r][0] = _mm512_dpbf16_ps(acc[MR + r][0], ar, x0);
        if (two_col_panels) acc[MR + r][1] = _mm512_dpbf16_ps(acc[MR + r][1], ar, x1);
      }
      a1 += MR;
    }
    a += MR;
    b0 += NR;
    b1 += NR;
  }
  __mmask16 m0 = cols >= NR ? 0xFFFF : (__mmask16)((1u << cols) - 1);
  __mmask16 m1 = cols >= 2 * NR ? 0xFFFF : cols > NR ? (__mmask16)((1u << (cols - NR)) - 1) : 0;
  __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int r = 0; r < R; r++) {
    if (r >= nr || r >= rows) continue;
    float *cr = c + r * ldc;
    __m512 v0 = _mm512_mul_ps(va, acc[r][0]);
    if (beta != 0.0f) v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), v0);
    _mm512_mask_storeu_ps(cr, m0, v0);
    if (two_col_panels && m1) {
      __m512 v1 = _mm512_mul_ps(va, acc[r][1]);
      if (beta != 0.0f) v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + NR), v1);
      _mm512_mask_storeu_ps(cr + NR, m1, v1);
    }
  }
}

#define TILE_BF16(RP, CP)                                                                             \
  RC_BF16_TARGET __attribute__((noinline)) static void tile_bf16_##RP##CP(                            \
      long kc2, const uint32_t *a, const uint32_t *b0, const uint32_t *b1, float *c, long ldc, long rows, \
      long cols, float alpha, float beta) {                                                            \
    tile_bf16(RP - 1, CP - 1, kc2, a, b0, b1, c, ldc, rows, cols, alpha, beta);                       \
  }
TILE_BF16(2, 2)
TILE_BF16(2, 1)
TILE_BF16(1, 2)
TILE_BF16(1, 1)

// A packed block of A (mc rows) against nc packed columns of B.
static void sweep_bf16(long kc2, const uint32_t *abuf, long mc, const uint32_t *bbuf, long nc, float *c, long ldc,
                       float alpha, float beta) {
  for (long jr = 0; jr < nc; jr += 2 * NR) {
    long cols = nc - jr < 2 * NR ? nc - jr : 2 * NR;
    const uint32_t *p0 = bbuf + jr * kc2, *p1 = p0 + NR * kc2;
    for (long ir = 0; ir < mc; ir += 2 * MR) {
      long rows = mc - ir < 2 * MR ? mc - ir : 2 * MR;
      const uint32_t *a = abuf + ir * kc2;
      float *cb = c + ir * ldc + jr;
      if (cols > NR) {
        if (rows > MR) tile_bf16_22(kc2, a, p0, p1, cb, ldc, rows, cols, alpha, beta);
        else tile_bf16_12(kc2, a, p0, p1, cb, ldc, rows, cols, alpha, beta);
      } else {
        if (rows > MR) tile_bf16_21(kc2, a, p0, p0, cb, ldc, rows, cols, alpha, beta);
        else tile_bf16_11(kc2, a, p0, p0, cb, ldc, rows, cols, alpha, beta);
      }
    }
  }
}
#else
#define pack_a_bf16 pack_a_bf16_scalar
#define pack_b_bf16 pack_b_bf16_scalar
#endif

static _Thread_local uint32_t *bf16_a = NULL;
static _Thread_local uint32_t *bf16_b = NULL;
static _Thread_local size_t bf16_b_capacity = 0;

static int ensure_bf16_buffers(size_t b_words) {
  if (bf16_a == NULL) bf16_a = aligned_alloc(64, sizeof(uint32_t) * MC * (KC / 2));
  if (bf16_b_capacity < b_words) {
    free(bf16_b);
    size_t bytes = (sizeof(uint32_t) * b_words + 63) / 64 * 64;
    bf16_b = aligned_alloc(64, bytes);
    bf16_b_capacity = bf16_b ? b_words : 0;
  }
  return bf16_a != NULL && bf16_b != NULL;
}

void rc_sgemm_bf16(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                   const float *b, long ldb, float beta, float *c, long ldc) {
#if RC_X86
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f || !rc_cpu_has_avx512_bf16()) {
    if (k <= 0 || alpha == 0.0f) {
      rc_sgemm(trans_a, trans_b, m, n, 0, alpha, a, lda, b, ldb, beta, c, ldc, RC_KERNEL_GENERIC);
      return;
    }
    abort();  // callers check rc_cpu_has_avx512_bf16 first
  }
  long ncap = n < NC ? n : NC;
  long kcap = k < KC ? k : KC;
  if (!ensure_bf16_buffers((size_t)((ncap + NR - 1) / NR * NR) * (size_t)((kcap + 1) / 2))) abort();
  for (long jc = 0; jc < n; jc += NC) {
    long nc = n - jc < NC ? n - jc : NC;
    for (long pc = 0; pc < k; pc += KC) {
      long kc = k - pc < KC ? k - pc : KC;
      long kc2 = (kc + 1) / 2;
      float block_beta = pc == 0 ? beta : 1.0f;
      pack_b_bf16(trans_b, b, ldb, pc, jc, kc, nc, bf16_b);
      for (long ic = 0; ic < m; ic += MC) {
        long mc = m - ic < MC ? m - ic : MC;
        pack_a_bf16(trans_a, a, lda, ic, pc, mc, kc, bf16_a);
        sweep_bf16(kc2, bf16_a, mc, bf16_b, nc, c + ic * ldc + jc, ldc, alpha, block_beta);
      }
    }
  }
#else
  (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b, (void)ldb;
  (void)beta, (void)c, (void)ldc;
  abort();
#endif
}

// Pre-packed bf16 B: the block for depth pc starts at npad * pc / 2 words (KC is even).
long rc_packed_b_bf16_count(long k, long n) {
  long npad = (n + NR - 1) / NR * NR;
  long words = 0;
  for (long pc = 0; pc < k; pc += KC) words += npad * (((k - pc < KC ? k - pc : KC) + 1) / 2);
  return words > 0 ? words : npad;
}

void rc_pack_b_bf16(int trans_b, long k, long n, const float *b, long ldb, uint32_t *packed) {
  long npad = (n + NR - 1) / NR * NR;
  for (long pc = 0; pc < k; pc += KC) {
    long kc = k - pc < KC ? k - pc : KC;
    pack_b_bf16(trans_b, b, ldb, pc, 0, kc, n, packed + npad * (pc / 2));
  }
}

void rc_sgemm_prepacked_bf16(long m, long n, long k, const float *a, long lda, const uint32_t *packed, float beta,
                             float *c, long ldc) {
#if RC_X86
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    rc_sgemm(0, 0, m, n, 0, 1.0f, a, lda, a, n, beta, c, ldc, RC_KERNEL_GENERIC);
    return;
  }
  if (!rc_cpu_has_avx512_bf16() || !ensure_bf16_buffers(NR)) abort();
  long npad = (n + NR - 1) / NR * NR;
  for (long pc = 0; pc < k; pc += KC) {
    long kc = k - pc < KC ? k - pc : KC;
    float block_beta = pc == 0 ? beta : 1.0f;
    for (long ic = 0; ic < m; ic += MC) {
      long mc = m - ic < MC ? m - ic : MC;
      pack_a_bf16(0, a, lda, ic, pc, mc, kc, bf16_a);
      sweep_bf16((kc + 1) / 2, bf16_a, mc, packed + npad * (pc / 2), n, c + ic * ldc, ldc, 1.0f, block_beta);
    }
  }
#else
  (void)m, (void)n, (void)k, (void)a, (void)lda, (void)packed, (void)beta, (void)c, (void)ldc;
  abort();
#endif
}

// --- bf16 matrix-vector products for generation: W stored as bf16 once, x rounded per call.

void rc_convert_bf16(const float *x, uint16_t *dst, long count) {
  for (long i = 0; i < count; i++) dst[i] = (uint16_t)bf16_bits(x[i]);
}

#if RC_X86
// y[r] += W[r]·x for R rows from r against one vector; x padded with zeros to a multiple of 64.
// Each row's sum: two 16-lane accumulators of pairs (even and odd 32-column chunks, in column
// order), added, then one reduction: the same operations for every row, whatever R, the
// vectors or the threads (batch-invariant). Eight rows at a time keep 16 chains in flight.
RC_BF16_TARGET static inline __attribute__((always_inline)) void gemv_bf16_block(
    const int R, long r, long cols, const uint16_t *w, long ldw, const uint16_t *x, float *y) {
  __m512 even[8], odd[8];
  for (int i = 0; i < R; i++) even[i] = odd[i] = _mm512_setzero_ps();
  for (long c = 0; c < cols; c += 64) {
    __mmask32 m0 = c + 32 <= cols ? 0xFFFFFFFFu : (__mmask32)((1u << (cols - c)) - 1);
    __mmask32 m1 = c + 64 <= cols ? 0xFFFFFFFFu : c + 32 < cols ? (__mmask32)((1u << (cols - c - 32)) - 1) : 0;
    __m512bh x0 = (__m512bh)_mm512_loadu_si512(x + c), x1 = (__m512bh)_mm512_loadu_si512(x + c + 32);
    for (int i = 0; i < R; i++) {
      const uint16_t *wr = w + (r + i) * ldw + c;
      even[i] = _mm512_dpbf16_ps(even[i], (__m512bh)_mm512_maskz_loadu_epi16(m0, wr), x0);
      odd[i] = _mm512_dpbf16_ps(odd[i], (__m512bh)_mm512_maskz_loadu_epi16(m1, wr + 32), x1);
    }
  }
  for (int i = 0; i < R; i++) y[r + i] += _mm512_reduce_add_ps(_mm512_add_ps(even[i], odd[i]));
}

RC_BF16_TARGET static void gemv_bf16_rows(long start, long end, long cols, const uint16_t *w, long ldw,
                                          const uint16_t *x, float *y) {
  long r = start;
  for (; r + 8 <= end; r += 8) gemv_bf16_block(8, r, cols, w, ldw, x, y);
  for (; r < end; r++) gemv_bf16_block(1, r, cols, w, ldw, x, y);
}
#endif

typedef struct {
  long rows, cols, ldw, ldy, n, xpad;
  const uint16_t *w, *x;
  float *y;
  int parts;
} gemv_bf16_job;

static void gemv_bf16_part(void *context, int part) {
#if RC_X86
  const gemv_bf16_job *j = context;
  long start = j->rows * part / j->parts, end = j->rows * (part + 1) / j->parts;
  for (long v = 0; v < j->n; v++) gemv_bf16_rows(start, end, j->cols, j->w, j->ldw, j->x + v * j->xpad, j->y + v * j->ldy);
#else
  (void)context, (void)part;
#endif
}

void rc_sgemv_bf16(int threads, long rows, long cols, const uint16_t *w, long ldw, const float *x, long ldx,
                   float *y, long ldy, long n) {
  if (n <= 0 || rows <= 0) return;
  if (!rc_cpu_has_avx512_bf16()) abort();  // callers check first
  long xpad = (cols + 63) / 64 * 64;
  uint16_t *xb = calloc((size_t)(xpad * n), sizeof(uint16_t));
  if (xb == NULL) abort();
  for (long v = 0; v < n; v++) rc_convert_bf16(x + v * ldx, xb + v * xpad, cols);
  long parts = threads;
  long work = rows * cols * n / (1L << 16);
  if (parts > work) parts = work;
  if (parts > rows) parts = rows;
  if (parts < 1) parts = 1;
  gemv_bf16_job j = {rows, cols, ldw, ldy, n, xpad, w, xb, y, (int)parts};
  if (parts == 1) gemv_bf16_part(&j, 0);
  else
    for (int part = rc_parallel_for((int)parts, gemv_bf16_part, &j); part < (int)parts; part++) gemv_bf16_part(&j, part);
  free(xb);
}
