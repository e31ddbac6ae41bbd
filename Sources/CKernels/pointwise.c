// Fused pointwise step kernels of the recurrent cells, in a portable copy and an AVX2+FMA
// copy chosen at run time (see pointwise_impl.inc for the code).
#include "CKernels.h"

#define FN(name) name##_generic
#include "pointwise_impl.inc"
#undef FN

#define TABLE(suffix)                                                                                   \
  static const rc_step_kernels table_##suffix = {                                                      \
      rc_rnn_forward_##suffix,  rc_lstm_forward_##suffix,  rc_gru_forward_##suffix,                    \
      rc_gru_reset_before_gates_##suffix, rc_gru_reset_before_output_##suffix, rc_rnn_backward_##suffix, \
      rc_lstm_backward_##suffix, rc_gru_backward_##suffix, rc_xent_rows_##suffix,                       \
      rc_min_forward_##suffix, rc_min_backward_##suffix, rc_lstm_peephole_forward_##suffix,                 \
      rc_lstm_peephole_backward_##suffix};
TABLE(generic)

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define FN(name) name##_avx2
#include "pointwise_impl.inc"
#undef FN
#pragma clang attribute pop
TABLE(avx2)

// The same code again for AVX-512: the compiler vectorises the loops 16 lanes wide.
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))), \
                             apply_to = function)
#define FN(name) name##_avx512
#include "pointwise_impl.inc"
#undef FN
#pragma clang attribute pop
TABLE(avx512)
#endif

const rc_step_kernels *rc_step_kernels_for(rc_kernel kernel) {
#if defined(__x86_64__)
  int level = rc_cpu_level();
  if (kernel == RC_KERNEL_AUTO) kernel = level >= RC_LEVEL_AVX512 ? RC_KERNEL_AVX512
                                       : level >= RC_LEVEL_AVX2 ? RC_KERNEL_AVX2 : RC_KERNEL_GENERIC;
  if (kernel == RC_KERNEL_AVX512) return rc_cpu_has_avx512() ? &table_avx512 : NULL;
  if (kernel == RC_KERNEL_AVX2) return rc_cpu_has_avx2_fma() ? &table_avx2 : NULL;
#else
  if (kernel != RC_KERNEL_AUTO && kernel != RC_KERNEL_GENERIC) return NULL;
#endif
  return &table_generic;
}

static const rc_step_kernels *automatic(void) {
  static const rc_step_kernels *_Atomic chosen = NULL;
  const rc_step_kernels *t = chosen;
  if (t == NULL) chosen = t = rc_step_kernels_for(RC_KERNEL_AUTO);
  return t;
}

void rc_rnn_forward(int relu, const float *gx, const float *gh, float *h_next, long n) {
  automatic()->rnn_forward(relu, gx, gh, h_next, n);
}
void rc_lstm_forward(const float *gx, const float *gh, const float *c_prev, float *h_next,
                     float *c_next, float *saved, long B, long H) {
  automatic()->lstm_forward(gx, gh, c_prev, h_next, c_next, saved, B, H);
}
void rc_gru_forward(const float *gx, const float *gh, const float *h_prev, float *h_next,
                    float *saved, long B, long H) {
  automatic()->gru_forward(gx, gh, h_prev, h_next, saved, B, H);
}
void rc_gru_reset_before_gates(const float *gx, const float *gh, const float *h_prev,
                               float *saved, long B, long H) {
  automatic()->gru_reset_before_gates(gx, gh, h_prev, saved, B, H);
}
void rc_gru_reset_before_output(const float *gx, const float *gh, const float *h_prev,
                                float *h_next, float *saved, long B, long H) {
  automatic()->gru_reset_before_output(gx, gh, h_prev, h_next, saved, B, H);
}
void rc_rnn_backward(int relu, const float *h_next, const float *dh, float *dgx, float *dgh,
                     float *dh_prev, long n) {
  automatic()->rnn_backward(relu, h_next, dh, dgx, dgh, dh_prev, n);
}
void rc_lstm_backward(const float *saved, const float *c_prev, const float *dh, float *dc,
                      float *dgx, float *dgh, float *dh_prev, long B, long H) {
  automatic()->lstm_backward(saved, c_prev, dh, dc, dgx, dgh, dh_prev, B, H);
}
void rc_gru_backward(const float *saved, const float *h_prev, const float *dh, float *dgx,
                     float *dgh, float *dh_prev, long B, long H) {
  automatic()->gru_backward(saved, h_prev, dh, dgx, dgh, dh_prev, B, H);
}

void rc_lstm_peephole_forward(const float *gx, const float *gh, const float *c_prev, const float *p, float *h_next,
                              float *c_next, float *saved, long B, long H) {
  automatic()->lstm_peephole_forward(gx, gh, c_prev, p, h_next, c_next, saved, B, H);
}
void rc_lstm_peephole_backward(const float *saved, const float *c_prev, const float *p, const float *dh, float *dc,
                               float *dgx, float *dgh, float *dh_prev, float *dp, long B, long H) {
  automatic()->lstm_peephole_backward(saved, c_prev, p, dh, dc, dgx, dgh, dh_prev, dp, B, H);
}
void rc_min_forward(int lstm, const float *gx, const float *h_prev, float *h_next, long B, long H) {
  automatic()->min_forward(lstm, gx, h_prev, h_next, B, H);
}
void rc_min_backward(int lstm, const float *gx, const float *h_prev, const float *dh, float *dgx, float *dh_prev,
                     long B, long H) {
  automatic()->min_backward(lstm, gx, h_prev, dh, dgx, dh_prev, B, H);
}

typedef struct {
  const float *x;
  float *g;
  const long *ids;
  long N, K, ignore, parts;
  float scale;
  const rc_step_kernels *kernels;
  double *loss;
} xent_job;

static void xent_part(void *context, int part) {
  const xent_job *j = context;
  long first = j->N * part / j->parts, last = j->N * (part + 1) / j->parts;
  j->kernels->xent_rows(j->x, j->g, j->ids, first, last, j->K, j->scale, j->ignore, j->loss);
}

void rc_softmax_xent(int threads, rc_kernel kernel, const float *x, float *g, const long *ids, long N, long K,
                     float scale, long ignore, double *loss) {
  long parts = threads < 1 ? 1 : threads;
  if (parts > N) parts = N < 1 ? 1 : N;
  if ((double)N * (double)K < 65536.0) parts = 1;  // too little work to share
  const rc_step_kernels *kernels = rc_step_kernels_for(kernel);
  if (kernels == NULL) kernels = rc_step_kernels_for(RC_KERNEL_GENERIC);
  xent_job j = {x, g, ids, N, K, ignore, parts, scale, kernels, loss};
  if (parts == 1) {
    xent_part(&j, 0);
    return;
  }
  for (int part = rc_parallel_for((int)parts, xent_part, &j); part < (int)parts; part++) xent_part(&j, part);
}
