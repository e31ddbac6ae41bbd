// Packed, register-blocked SGEMM in the style of BLIS/GotoBLAS.
//
// Legend: m, n, k are the sizes of op(A) [m,k], op(B) [k,n] and C [m,n]; MR x NR is
// the register block of C a micro-kernel keeps in registers; A is packed in MC x KC
// blocks of MR-row panels, B in KC x NC blocks of NR-column panels, each panel
// stored k-major so the micro-kernel streams through both with unit stride.
#include "CKernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define RC_X86 1
#endif

enum { MR = 6, NR = 16, KC = 256, MC = 96, NC = 4096 };

// Per-thread packing buffers, grown on demand and reused across calls.
static _Thread_local float *packed_a = NULL;
static _Thread_local float *packed_b = NULL;
static _Thread_local size_t packed_b_capacity = 0;

static float *ensure_buffers(size_t b_floats) {
  if (packed_a == NULL) {
    packed_a = aligned_alloc(64, sizeof(float) * MC * KC);
  }
  if (packed_b_capacity < b_floats) {
    free(packed_b);
    size_t bytes = (sizeof(float) * b_floats + 63) / 64 * 64;
    packed_b = aligned_alloc(64, bytes);
    packed_b_capacity = packed_b ? b_floats : 0;
  }
  return packed_b;
}

// Packs rows [i0, i0+mc) and depth [p0, p0+kc) of op(A) into MR-row panels,
// zero-padding the last panel.
static void pack_a(int trans, const float *a, long lda, long i0, long p0, long mc, long kc,
                   float *dst) {
  if (trans) {
    // op(A)(i, p) = A[p, i]: walk A's rows once each (mc contiguous floats), dealing MR floats
    // to every panel, rather than panel by panel (each step of which would touch a new row).
    long full = mc / MR * MR;
    for (long p = 0; p < kc; p++) {
      const float *row = a + (p0 + p) * lda + i0;
      float *d = dst + p * MR;
      for (long ir = 0; ir < full; ir += MR, d += MR * kc) {
        const float *s = row + ir;
#if RC_X86
        _mm_storeu_ps(d, _mm_loadu_ps(s));
        _mm_storel_pi((__m64 *)(d + 4), _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(s + 4)));
#else
        d[0] = s[0], d[1] = s[1], d[2] = s[2], d[3] = s[3], d[4] = s[4], d[5] = s[5];
#endif
      }
      if (full < mc) {
        long r = 0;
        for (; r < mc - full; r++) d[r] = row[full + r];
        for (; r < MR; r++) d[r] = 0.0f;
      }
    }
    return;
  }
  for (long ir = 0; ir < mc; ir += MR) {
    long rows = mc - ir < MR ? mc - ir : MR;
    // Full panels, the common case, without a per-element bound check: a packed A is reused
    // only n/NR times, so for narrow products (a decoder's gradient, n = hidden) its packing
    // shows in profiles.
    if (rows == MR) {
      {
        const float *s0 = a + (i0 + ir) * lda + p0, *s1 = s0 + lda, *s2 = s1 + lda, *s3 = s2 + lda,
                    *s4 = s3 + lda, *s5 = s4 + lda;
        long p = 0;
#if RC_X86
        // Four depth steps at a time: rows 0-3 by a 4x4 transpose, rows 4-5 interleaved.
        for (; p + 4 <= kc; p += 4) {
          __m128 r0 = _mm_loadu_ps(s0 + p), r1 = _mm_loadu_ps(s1 + p), r2 = _mm_loadu_ps(s2 + p),
                 r3 = _mm_loadu_ps(s3 + p), r4 = _mm_loadu_ps(s4 + p), r5 = _mm_loadu_ps(s5 + p);
          _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
          __m128 lo = _mm_unpacklo_ps(r4, r5), hi = _mm_unpackhi_ps(r4, r5);
          _mm_storeu_ps(dst, r0);
          _mm_storel_pi((__m64 *)(dst + 4), lo);
          _mm_storeu_ps(dst + 6, r1);
          _mm_storeh_pi((__m64 *)(dst + 10), lo);
          _mm_storeu_ps(dst + 12, r2);
          _mm_storel_pi((__m64 *)(dst + 16), hi);
          _mm_storeu_ps(dst + 18, r3);
          _mm_storeh_pi((__m64 *)(dst + 22), hi);
          dst += 4 * MR;
        }
#endif
        for (; p < kc; p++) {
          dst[0] = s0[p], dst[1] = s1[p], dst[2] = s2[p], dst[3] = s3[p], dst[4] = s4[p], dst[5] = s5[p];
          dst += MR;
        }
      }
      continue;
    }
    {
      const float *src = a + (i0 + ir) * lda + p0;
      for (long p = 0; p < kc; p++) {
        long r = 0;
        for (; r < rows; r++) dst[r] = src[r * lda + p];
        for (; r < MR; r++) dst[r] = 0.0f;
        dst += MR;
      }
    }
  }
}

// Packs depth [p0, p0+kc) and columns [j0, j0+nc) of op(B) into NR-column panels,
// zero-padding the last panel.
static void pack_b(int trans, const float *b, long ldb, long p0, long j0, long kc, long nc,
                   float *dst) {
  for (long jr = 0; jr < nc; jr += NR) {
    long cols = nc - jr < NR ? nc - jr : NR;
    if (!trans) {
      const float *src = b + p0 * ldb + (j0 + jr);
      for (long p = 0; p < kc; p++) {
        const float *row = src + p * ldb;
        if (cols == NR) {
          memcpy(dst, row, sizeof(float) * NR);
        } else {
          long c = 0;
          for (; c < cols; c++) dst[c] = row[c];
          for (; c < NR; c++) dst[c] = 0.0f;
        }
        dst += NR;
      }
    } else {
      // op(B)(p, j) = B[j, p]: gather NR rows of B, transposing 16 x kc.
      const float *src = b + (j0 + jr) * ldb + p0;
      long c = 0;
      for (; c < cols; c++) {
        const float *col = src + c * ldb;
        for (long p = 0; p < kc; p++) dst[p * NR + c] = col[p];
      }
      for (; c < NR; c++) {
        for (long p = 0; p < kc; p++) dst[p * NR + c] = 0.0f;
      }
      dst += kc * NR;
    }
  }
}

// Writes an MR x NR block of results into C: C = alpha*acc + beta*C (beta == 0: C = alpha*acc).
static void store_block(const float *acc, float *c, long ldc, long rows, long cols, float alpha,
                        float beta) {
  for (long r = 0; r < rows; r++) {
    float *cr = c + r * ldc;
    const float *ar = acc + r * NR;
    if (beta == 0.0f) {
      for (long j = 0; j < cols; j++) cr[j] = alpha * ar[j];
    } else {
      for (long j = 0; j < cols; j++) cr[j] = alpha * ar[j] + beta * cr[j];
    }
  }
}

static void kernel_generic(long kc, const float *a, const float *b, long ldb, float *c, long ldc,
                           long rows, long cols, float alpha, float beta) {
  float acc[MR * NR];
  for (int i = 0; i < MR * NR; i++) acc[i] = 0.0f;
  for (long p = 0; p < kc; p++) {
    for (int r = 0; r < MR; r++) {
      float ar = a[p * MR + r];
      for (int j = 0; j < NR; j++) acc[r * NR + j] += ar * b[p * ldb + j];
    }
  }
  store_block(acc, c, ldc, rows, cols, alpha, beta);
}

#if RC_X86
// The 6x16 block lives in 12 ymm registers for the whole depth loop; keeping alpha, beta and
// C out of this function leaves the compiler nothing to spill.
// b advances by ldb floats per depth step: NR for a packed panel, or the row stride of an
// unpacked row-major B (small m, where packing B would cost as much as using it).
__attribute__((target("avx2,fma"), noinline)) static void block_avx2(long kc, const float *a,
                                                                     const float *b, long ldb,
                                                                     float *acc, const float *c,
                                                                     long ldc) {
  // Start pulling the C tile in now: it is read (or written) only after the depth loop,
  // and for a large C it is far from this core's caches.
  for (int r = 0; r < MR; r++) {
    _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(c + r * ldc + NR - 1), _MM_HINT_T0);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (long p = 0; p < kc; p++) {
    __m256 b0 = _mm256_loadu_ps(b);
    __m256 b1 = _mm256_loadu_ps(b + 8);
    __m256 ai = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(ai, b0, c00);
    c01 = _mm256_fmadd_ps(ai, b1, c01);
    ai = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(ai, b0, c10);
    c11 = _mm256_fmadd_ps(ai, b1, c11);
    ai = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(ai, b0, c20);
    c21 = _mm256_fmadd_ps(ai, b1, c21);
    ai = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(ai, b0, c30);
    c31 = _mm256_fmadd_ps(ai, b1, c31);
    ai = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(ai, b0, c40);
    c41 = _mm256_fmadd_ps(ai, b1, c41);
    ai = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(ai, b0, c50);
    c51 = _mm256_fmadd_ps(ai, b1, c51);
    a += MR;
    b += ldb;
  }
  _mm256_store_ps(acc + 0, c00);   _mm256_store_ps(acc + 8, c01);
  _mm256_store_ps(acc + 16, c10);  _mm256_store_ps(acc + 24, c11);
  _mm256_store_ps(acc + 32, c20);  _mm256_store_ps(acc + 40, c21);
  _mm256_store_ps(acc + 48, c30);  _mm256_store_ps(acc + 56, c31);
  _mm256_store_ps(acc + 64, c40);  _mm256_store_ps(acc + 72, c41);
  _mm256_store_ps(acc + 80, c50);  _mm256_store_ps(acc + 88, c51);
}

static void kernel_avx2(long kc, const float *a, const float *b, long ldb, float *c, long ldc,
                        long rows, long cols, float alpha, float beta) {
  float acc[MR * NR] __attribute__((aligned(32)));
  block_avx2(kc, a, b, ldb, acc, c, ldc);
  store_block(acc, c, ldc, rows, cols, alpha, beta);
}

// The AVX-512 tile: up to 2 x 2 of the 6x16 blocks above (12 rows from two packed A panels, 32
// columns from two B panels), 24 zmm accumulators, with alpha, beta and the ragged edges applied
// from registers by masked loads and stores. Every element is summed over the depth in the same
// order as in the 6x16 kernels (one FMA per depth step), so a row's result does not depend on
// which tile shape covered it: batch-invariant like the AVX2 path.
#define RC_AVX512_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))

RC_AVX512_TARGET static inline __attribute__((always_inline)) void tile_avx512(
    const int two_row_panels, const int two_col_panels, long kc, const float *a, const float *b0,
    const float *b1, long ldb, float *c, long ldc, long rows, long cols, float alpha, float beta) {
  enum { R = 2 * MR };
  const int nr = two_row_panels ? R : MR;
  for (int r = 0; r < R; r++) {
    if (r < rows) {
      _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
      _mm_prefetch((const char *)(c + r * ldc + 2 * NR - 1), _MM_HINT_T0);
    }
  }
  __m512 acc[R][2];
  for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const float *a1 = a + MR * kc;
  for (long p = 0; p < kc; p++) {
    __m512 x0 = _mm512_loadu_ps(b0);
    __m512 x1 = two_col_panels ? _mm512_loadu_ps(b1) : x0;
    for (int r = 0; r < MR; r++) {
      __m512 ar = _mm512_set1_ps(a[r]);
      acc[r][0] = _mm512_fmadd_ps(ar, x0, acc[r][0]);
      if (two_col_panels) acc[r][1] = _mm512_fmadd_ps(ar, x1, acc[r][1]);
    }
    if (two_row_panels) {
      for (int r = 0; r < MR; r++) {
        __m512 ar = _mm512_set1_ps(a1[r]);
        acc[MR + r][0] = _mm512_fmadd_ps(ar, x0, acc[MR + r][0]);
        if (two_col_panels) acc[MR + r][1] = _mm512_fmadd_ps(ar, x1, acc[MR + r][1]);
      }
      a1 += MR;
    }
    a += MR;
    b0 += ldb;
    b1 += ldb;
  }
  __mmask16 m0 = cols >= NR ? 0xFFFF : (__mmask16)((1u << cols) - 1);
  __mmask16 m1 = cols >= 2 * NR ? 0xFFFF : cols > NR ? (__mmask16)((1u << (cols - NR)) - 1) : 0;
  __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  // Constant row indices (the loop unrolls), so the accumulators never leave registers.
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

#define TILE_AVX512(RP, CP)                                                                          \
  RC_AVX512_TARGET __attribute__((noinline)) static void tile_avx512_##RP##CP(                       \
      long kc, const float *a, const float *b0, const float *b1, long ldb, float *c, long ldc,      \
      long rows, long cols, float alpha, float beta) {                                              \
    tile_avx512(RP - 1, CP - 1, kc, a, b0, b1, ldb, c, ldc, rows, cols, alpha, beta);               \
  }
TILE_AVX512(2, 2)
TILE_AVX512(2, 1)
TILE_AVX512(1, 2)
TILE_AVX512(1, 1)
#endif

typedef void (*kernel_fn)(long, const float *, const float *, long, float *, long, long, long,
                          float, float);

// Where the B panel for columns [jr, jr+NR) of a block lives: read in place from a row-major B
// (stride ldb) for the full panels below `direct_end`, else packed (stride NR) at packed + jr*kc.
typedef struct {
  const float *packed, *direct;
  long ldb, direct_end, kc;
} b_panels;

static const float *panel(const b_panels *bs, long jr, long *stride) {
  if (jr < bs->direct_end) {
    *stride = bs->ldb;
    return bs->direct + jr;
  }
  *stride = NR;
  return bs->packed + jr * bs->kc;
}

static kernel_fn pick_kernel(rc_kernel kernel, int *avx512) {
  *avx512 = 0;
#if RC_X86
  int level = rc_cpu_level();
  if (kernel == RC_KERNEL_AVX512 || (kernel == RC_KERNEL_AUTO && level >= RC_LEVEL_AVX512)) {
    *avx512 = 1;
    return kernel_avx2;  // unused by the AVX-512 sweep
  }
  if (kernel == RC_KERNEL_AVX2 || (kernel == RC_KERNEL_AUTO && level >= RC_LEVEL_AVX2)) return kernel_avx2;
#else
  (void)kernel;
#endif
  return kernel_generic;
}

// One packed block of A (mc rows, MR-row panels) against nc columns of B: C block += A·B.
static void sweep(kernel_fn fn, int avx512, long kc, const float *abuf, long mc, const b_panels *bs, long nc,
                  float *c, long ldc, float alpha, float beta) {
#if RC_X86
  if (avx512) {
    for (long jr = 0; jr < nc; jr += 2 * NR) {
      long cols = nc - jr < 2 * NR ? nc - jr : 2 * NR;
      long s0, s1 = 0;
      const float *p0 = panel(bs, jr, &s0), *p1 = cols > NR ? panel(bs, jr + NR, &s1) : p0;
      // Two panels in one tile only when they share a stride (a packed ragged panel beside an
      // in-place one is covered as two single-panel tiles).
      int pair = cols > NR && s0 == s1;
      for (long ir = 0; ir < mc; ir += 2 * MR) {
        long rows = mc - ir < 2 * MR ? mc - ir : 2 * MR;
        const float *a = abuf + ir * kc;
        float *cb = c + ir * ldc + jr;
        if (pair) {
          if (rows > MR) tile_avx512_22(kc, a, p0, p1, s0, cb, ldc, rows, cols, alpha, beta);
          else tile_avx512_12(kc, a, p0, p1, s0, cb, ldc, rows, cols, alpha, beta);
        } else {
          long first = cols < NR ? cols : NR;
          if (rows > MR) tile_avx512_21(kc, a, p0, p0, s0, cb, ldc, rows, first, alpha, beta);
          else tile_avx512_11(kc, a, p0, p0, s0, cb, ldc, rows, first, alpha, beta);
          if (cols > NR) {
            if (rows > MR) tile_avx512_21(kc, a, p1, p1, s1, cb + NR, ldc, rows, cols - NR, alpha, beta);
            else tile_avx512_11(kc, a, p1, p1, s1, cb + NR, ldc, rows, cols - NR, alpha, beta);
          }
        }
      }
    }
    return;
  }
#else
  (void)avx512;
#endif
  for (long jr = 0; jr < nc; jr += NR) {
    long cols = nc - jr < NR ? nc - jr : NR;
    long stride;
    const float *bp = panel(bs, jr, &stride);
    for (long ir = 0; ir < mc; ir += MR) {
      long rows = mc - ir < MR ? mc - ir : MR;
      fn(kc, abuf + ir * kc, bp, stride, c + ir * ldc + jr, ldc, rows, cols, alpha, beta);
    }
  }
}

void rc_sgemm(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a,
              long lda, const float *b, long ldb, float beta, float *c, long ldc,
              rc_kernel kernel) {
  if (m <= 0 || n <= 0) return;
  if (kernel == RC_KERNEL_AVX512_BF16 && k > 0 && alpha != 0.0f) {
    rc_sgemm_bf16(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  if (kernel == RC_KERNEL_BF16_EMULATED && k > 0 && alpha != 0.0f) {
    // The numerics of the bf16 path on any CPU: op(A) and op(B) rounded to bf16 into
    // row-major copies, then the f32 kernel (its FMAs on bf16 values are exact products summed
    // as VDPBF16PS sums them, up to its handling of denormals).
    float *ra = malloc(sizeof(float) * (size_t)(m * k)), *rb = malloc(sizeof(float) * (size_t)(k * n));
    if (ra == NULL || rb == NULL) abort();
    for (long i = 0; i < m; i++)
      for (long p = 0; p < k; p++) ra[i * k + p] = rc_round_bf16(trans_a ? a[p * lda + i] : a[i * lda + p]);
    for (long p = 0; p < k; p++)
      for (long j = 0; j < n; j++) rb[p * n + j] = rc_round_bf16(trans_b ? b[j * ldb + p] : b[p * ldb + j]);
    rc_sgemm(0, 0, m, n, k, alpha, ra, k, rb, n, beta, c, ldc, RC_KERNEL_AUTO);
    free(ra);
    free(rb);
    return;
  }
  if (k <= 0 || alpha == 0.0f) {
    for (long i = 0; i < m; i++) {
      float *ci = c + i * ldc;
      if (beta == 0.0f) {
        for (long j = 0; j < n; j++) ci[j] = 0.0f;
      } else if (beta != 1.0f) {
        for (long j = 0; j < n; j++) ci[j] *= beta;
      }
    }
    return;
  }
  int avx512;
  kernel_fn fn = pick_kernel(kernel, &avx512);
  long ncap = n < NC ? n : NC;
  long kcap = k < KC ? k : KC;
  float *bbuf = ensure_buffers((size_t)((ncap + NR - 1) / NR * NR) * (size_t)kcap);
  float *abuf = packed_a;
  if (bbuf == NULL || abuf == NULL) abort();  // out of memory: nothing sensible to do

  for (long jc = 0; jc < n; jc += NC) {
    long nc = n - jc < NC ? n - jc : NC;
    for (long pc = 0; pc < k; pc += KC) {
      long kc = k - pc < KC ? k - pc : KC;
      float blockBeta = pc == 0 ? beta : 1.0f;
      // With a single block of rows, each B panel is used by one sweep over A only: read full
      // panels of a row-major B in place and pack just the ragged last one.
      int direct = !trans_b && m <= MC;
      if (direct) {
        long full = nc / NR * NR;
        if (full < nc) pack_b(0, b, ldb, pc, jc + full, kc, nc - full, bbuf + full * kc);
      } else {
        pack_b(trans_b, b, ldb, pc, jc, kc, nc, bbuf);
      }
      b_panels bs = {bbuf, b + pc * ldb + jc, ldb, direct ? nc / NR * NR : 0, kc};
      for (long ic = 0; ic < m; ic += MC) {
        long mc = m - ic < MC ? m - ic : MC;
        pack_a(trans_a, a, lda, ic, pc, mc, kc, abuf);
        sweep(fn, avx512, kc, abuf, mc, &bs, nc, c + ic * ldc + jc, ldc, alpha, blockBeta);
      }
    }
  }
}

// --- Pre-packed B: a matrix used as B by many products (an RNN's recurrent weights, once per
// time step) is packed once. Layout: for each depth block pc of KC, for each NR-column panel,
// kc x NR floats; the block for pc starts at pc * npad (npad = n rounded up to NR).

long rc_packed_b_count(long k, long n) { return ((n + NR - 1) / NR * NR) * (k > 0 ? k : 1); }

void rc_pack_b(int trans_b, long k, long n, const float *b, long ldb, float *packed) {
  long npad = (n + NR - 1) / NR * NR;
  for (long pc = 0; pc < k; pc += KC) {
    long kc = k - pc < KC ? k - pc : KC;
    pack_b(trans_b, b, ldb, pc, 0, kc, n, packed + pc * npad);
  }
}

void rc_sgemm_prepacked(long m, long n, long k, const float *a, long lda, const float *packed,
                        float beta, float *c, long ldc, rc_kernel kernel) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    rc_sgemm(0, 0, m, n, 0, 1.0f, a, lda, packed, n, beta, c, ldc, kernel);
    return;
  }
  int avx512;
  kernel_fn fn = pick_kernel(kernel, &avx512);
  if (ensure_buffers(NR) == NULL || packed_a == NULL) abort();
  float *abuf = packed_a;
  long npad = (n + NR - 1) / NR * NR;
  for (long pc = 0; pc < k; pc += KC) {
    long kc = k - pc < KC ? k - pc : KC;
    float block_beta = pc == 0 ? beta : 1.0f;
    const float *bblock = packed + pc * npad;
    for (long ic = 0; ic < m; ic += MC) {
      long mc = m - ic < MC ? m - ic : MC;
      pack_a(0, a, lda, ic, pc, mc, kc, abuf);
      b_panels bs = {bblock, NULL, 0, 0, kc};
      sweep(fn, avx512, kc, abuf, mc, &bs, n, c + ic * ldc, ldc, 1.0f, block_beta);
    }
  }
}
