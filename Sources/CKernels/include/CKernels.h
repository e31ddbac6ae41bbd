#ifndef RECURRENT_CKERNELS_H
#define RECURRENT_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Which register-blocked micro-kernel a GEMM uses.
typedef enum {
  RC_KERNEL_AUTO = 0,     ///< the fastest one this CPU supports
  RC_KERNEL_GENERIC = 1,  ///< portable C, vectorised by the compiler
  RC_KERNEL_AVX2 = 2,     ///< x86-64 AVX2 + FMA, 6x16 register block
  RC_KERNEL_AVX512 = 3,   ///< x86-64 AVX-512 (F, VL, BW, DQ), 12x32 register block
  RC_KERNEL_AVX512_BF16 = 4,  ///< bf16 products (AVX512_BF16), f32 accumulation and C
  RC_KERNEL_BF16_EMULATED = 5 ///< operands rounded to bf16, then the f32 kernel (tests, any CPU)
} rc_kernel;

/// Instruction-set levels of rc_cpu_level.
#define RC_LEVEL_GENERIC 0
#define RC_LEVEL_AVX2 2
#define RC_LEVEL_AVX512 3

/// 1 if the AVX2+FMA kernels can run on this CPU.
int rc_cpu_has_avx2_fma(void);
/// 1 if the AVX-512 kernels (F, VL, BW, DQ) can run on this CPU.
int rc_cpu_has_avx512(void);
/// 1 if the bf16 GEMM (AVX512_BF16's VDPBF16PS) can run on this CPU.
int rc_cpu_has_avx512_bf16(void);
/// x rounded to bfloat16 (nearest even; denormals to zero, as VCVTNE2PS2BF16), back in a float.
float rc_round_bf16(float x);
/// rc_sgemm with op(A) and op(B) rounded to bf16 as they are packed and the products
/// accumulated in float32 (VDPBF16PS). Only where rc_cpu_has_avx512_bf16().
void rc_sgemm_bf16(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                   const float *b, long ldb, float beta, float *c, long ldc);
/// 32-bit words needed to hold op(B) [k, n] packed in bf16 for rc_sgemm_prepacked_bf16.
long rc_packed_b_bf16_count(long k, long n);
/// Packs op(B) [k, n] once in bf16 (pairs of depth steps per word), for many products.
void rc_pack_b_bf16(int trans_b, long k, long n, const float *b, long ldb, uint32_t *packed);
/// C[m,n] = bf16(A)[m,k]·B + beta·C on one thread, with B packed by rc_pack_b_bf16.
void rc_sgemm_prepacked_bf16(long m, long n, long k, const float *a, long lda, const uint32_t *packed, float beta,
                             float *c, long ldc);
/// dst[i] = x[i] rounded to bf16 (the bits), for weights a bf16 matrix-vector product reads.
void rc_convert_bf16(const float *x, uint16_t *dst, long count);
/// y_v[rows] += W·bf16(x_v) for n vectors (x_v = x + v*ldx, y_v = y + v*ldy), W stored in bf16
/// (row stride ldw), float32 accumulation, split over up to `threads`. Each y_v is the same
/// bits whatever n, v or `threads`. Only where rc_cpu_has_avx512_bf16().
void rc_sgemv_bf16(int threads, long rows, long cols, const uint16_t *w, long ldw, const float *x, long ldx,
                   float *y, long ldy, long n);
/// The level every automatic dispatch uses: the best the CPU runs, capped by the environment
/// variable RECURRENT_MAX_ISA (generic, avx2 or avx512; read once per process).
int rc_cpu_level(void);

/// Row-major single-precision GEMM on one thread:
///   C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C[m,n]
/// op(A) = A ([m,k], row stride lda) or A^T (A is [k,m]); likewise for B.
/// beta == 0 never reads C (so C may hold NaN). Packing buffers are per thread
/// and reused, so repeated calls allocate nothing.
void rc_sgemm(int trans_a, int trans_b, long m, long n, long k, float alpha,
              const float *a, long lda, const float *b, long ldb, float beta,
              float *c, long ldc, rc_kernel kernel);

/// rc_sgemm cut into blocks of whole rows or columns, one per thread (at most `threads`).
/// Every element is summed in the same order whatever the thread count.
void rc_sgemm_threaded(int threads, int trans_a, int trans_b, long m, long n, long k,
                       float alpha, const float *a, long lda, const float *b, long ldb,
                       float beta, float *c, long ldc, rc_kernel kernel);

// Pointwise backward step kernels (vectorised twins of the Swift ones).
void rc_rnn_backward(int relu, const float *h_next, const float *dh, float *dgx, float *dgh,
                     float *dh_prev, long n);
void rc_lstm_backward(const float *saved, const float *c_prev, const float *dh, float *dc,
                      float *dgx, float *dgh, float *dh_prev, long B, long H);
void rc_gru_backward(const float *saved, const float *h_prev, const float *dh, float *dgx,
                     float *dgh, float *dh_prev, long B, long H);

/// Floats needed to hold op(B) [k, n] packed for rc_sgemm_prepacked.
long rc_packed_b_count(long k, long n);
/// Packs op(B) [k, n] (B^T if trans_b, B stored [n, k]) once, for many products.
void rc_pack_b(int trans_b, long k, long n, const float *b, long ldb, float *packed);
/// C[m,n] = A[m,k]·B + beta·C on one thread, with B packed by rc_pack_b.
void rc_sgemm_prepacked(long m, long n, long k, const float *a, long lda, const float *packed,
                        float beta, float *c, long ldc, rc_kernel kernel);

/// A job part: `part` in 0..<parts.
typedef void (*rc_part_fn)(void *ctx, int part);

/// Runs fn(ctx, 0..<parts) on a persistent pool, part 0 on the caller; returns when all are
/// done. Jobs from different callers run one at a time. Returns the parts actually used
/// (fewer only if threads could not be created; then fn ran for 0..<returned).
int rc_parallel_for(int parts, rc_part_fn fn, void *ctx);

// Fused pointwise step kernels (vectorised; AVX2+FMA when the CPU has it). Shapes and math
// as the Swift twins in Sources/Recurrent/RecurrentKernels.swift.
void rc_rnn_forward(int relu, const float *gx, const float *gh, float *h_next, long n);
void rc_lstm_forward(const float *gx, const float *gh, const float *c_prev, float *h_next,
                     float *c_next, float *saved, long B, long H);
void rc_gru_forward(const float *gx, const float *gh, const float *h_prev, float *h_next,
                    float *saved, long B, long H);
void rc_gru_reset_before_gates(const float *gx, const float *gh, const float *h_prev,
                               float *saved, long B, long H);
void rc_gru_reset_before_output(const float *gx, const float *gh, const float *h_prev,
                                float *h_next, float *saved, long B, long H);
/// Peephole LSTM (p = p_i|p_f|p_o [3H]); saves i, f, g, o, tanh(c'), c' (6 slots).
void rc_lstm_peephole_forward(const float *gx, const float *gh, const float *c_prev, const float *p, float *h_next,
                              float *c_next, float *saved, long B, long H);
/// Backward of rc_lstm_peephole_forward; dp [B, 3H] gets each row's peephole gradient.
void rc_lstm_peephole_backward(const float *saved, const float *c_prev, const float *p, const float *dh, float *dc,
                               float *dgx, float *dgh, float *dh_prev, float *dp, long B, long H);
/// minGRU (lstm 0, gx [B, 2*H] z|h) or minLSTM (lstm 1, gx [B, 3*H] f|i|h): one step in log space.
void rc_min_forward(int lstm, const float *gx, const float *h_prev, float *h_next, long B, long H);
/// Backward of rc_min_forward: writes dgx [B, G*H] and dh_prev = ∂/∂h (the whole path).
void rc_min_backward(int lstm, const float *gx, const float *h_prev, const float *dh, float *dgx, float *dh_prev,
                     long B, long H);

/// Softmax cross-entropy with class targets over N rows of K logits x: g gets
/// (softmax - onehot(target)) * scale per row and loss[n] the row's loss in nats; rows whose
/// target is `ignore` are skipped (g and loss untouched). Rows split over up to `threads`; a
/// row's result does not depend on the split (batch-invariant). `kernel`: which instruction
/// set's copy (RC_KERNEL_AUTO: the best this CPU runs; one it cannot run falls back to portable C).
void rc_softmax_xent(int threads, rc_kernel kernel, const float *x, float *g, const long *ids, long N, long K,
                     float scale, long ignore, double *loss);

/// One instruction set's copy of the pointwise step kernels above (same arguments), for tests
/// that run every copy the CPU has against the Swift twins.
typedef struct {
  void (*rnn_forward)(int, const float *, const float *, float *, long);
  void (*lstm_forward)(const float *, const float *, const float *, float *, float *, float *, long, long);
  void (*gru_forward)(const float *, const float *, const float *, float *, float *, long, long);
  void (*gru_reset_before_gates)(const float *, const float *, const float *, float *, long, long);
  void (*gru_reset_before_output)(const float *, const float *, const float *, float *, float *, long, long);
  void (*rnn_backward)(int, const float *, const float *, float *, float *, float *, long);
  void (*lstm_backward)(const float *, const float *, const float *, float *, float *, float *, float *, long,
                        long);
  void (*gru_backward)(const float *, const float *, const float *, float *, float *, float *, long, long);
  void (*xent_rows)(const float *, float *, const long *, long, long, long, float, long, double *);
  void (*min_forward)(int, const float *, const float *, float *, long, long);
  void (*min_backward)(int, const float *, const float *, const float *, float *, float *, long, long);
  void (*lstm_peephole_forward)(const float *, const float *, const float *, const float *, float *, float *, float *,
                                long, long);
  void (*lstm_peephole_backward)(const float *, const float *, const float *, const float *, float *, float *,
                                 float *, float *, float *, long, long);
} rc_step_kernels;

/// The copy for `kernel` (RC_KERNEL_AUTO: the one every call above uses), or NULL if this CPU
/// cannot run it.
const rc_step_kernels *rc_step_kernels_for(rc_kernel kernel);

/// y[rows] += W[rows, cols]·x (W row-major with row stride ldw), split over up to `threads`.
void rc_sgemv(int threads, long rows, long cols, const float *w, long ldw, const float *x,
              float *y);

/// y_v[rows] += W·x_v for n vectors x_v = x + v*ldx, y_v = y + v*ldy, sharing each load of W.
/// Every y_v is bit for bit what rc_sgemv gives for x_v alone, whatever n, v or `threads`
/// (batch-invariant: continuous batching relies on it). `kernel` (an rc_kernel value): 0 the
/// best this CPU runs, 1 the portable C, 2 AVX2, 3 AVX-512 (each only where the CPU has it; to
/// test every path).
void rc_sgemv_batch(int threads, int kernel, long rows, long cols, const float *w, long ldw,
                    const float *x, long ldx, float *y, long ldy, long n);

/// One Adam/AdamW update of a parameter tensor (see Optimizers.swift's rule): l1 and l2 are
/// folded into the gradient, `decoupled` (AdamW) scales the value by `decay` first.
typedef struct {
  float *p, *first, *second;
  const float *g;
  float beta1, beta2, step_size, root2, epsilon, l1, l2, decay;
  int decoupled;
} rc_adam_args;

/// Applies `args` to `count` elements, split over up to `threads` (every element's arithmetic is
/// the same whatever the split or instruction set). `kernel`: RC_KERNEL_AUTO, or a cap (tests).
void rc_adam_update(int threads, rc_kernel kernel, const rc_adam_args *args, long count);

/// Tells the C allocator to keep freed large blocks for reuse (training allocates the same
/// activation buffers every window). Process-wide: called once by the command-line tool.
/// Returns 1 if the allocator took the settings (glibc), 0 where there is nothing to set.
int rc_keep_freed_memory(void);

#ifdef __cplusplus
}
#endif

#endif
