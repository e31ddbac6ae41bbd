// Fused pointwise step kernels of the recurrent cells, in a portable copy and an AVX2+FMA
// copy chosen at run time (see pointwise_impl.inc for the code).
#include "CKernels.h"

#define FN(name) name##_generic
#include "pointwise_impl.inc"
#undef FN

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define FN(name) name##_avx2
#include "pointwise_impl.inc"
#undef FN
#pragma clang attribute pop
#define DISPATCH(name, ...)                      \
  do {                                           \
    if (rc_cpu_level() >= RC_LEVEL_AVX2) name##_avx2(__VA_ARGS__); \
    else name##_generic(__VA_ARGS__);            \
  } while (0)
#else
#define DISPATCH(name, ...) name##_generic(__VA_ARGS__)
#endif

void rc_rnn_forward(int relu, const float *gx, const float *gh, float *h_next, long n) {
  DISPATCH(rc_rnn_forward, relu, gx, gh, h_next, n);
}
void rc_lstm_forward(const float *gx, const float *gh, const float *c_prev, float *h_next,
                     float *c_next, float *saved, long B, long H) {
  DISPATCH(rc_lstm_forward, gx, gh, c_prev, h_next, c_next, saved, B, H);
}
void rc_gru_forward(const float *gx, const float *gh, const float *h_prev, float *h_next,
                    float *saved, long B, long H) {
  DISPATCH(rc_gru_forward, gx, gh, h_prev, h_next, saved, B, H);
}
void rc_gru_reset_before_gates(const float *gx, const float *gh, const float *h_prev,
                               float *saved, long B, long H) {
  DISPATCH(rc_gru_reset_before_gates, gx, gh, h_prev, saved, B, H);
}
void rc_gru_reset_before_output(const float *gx, const float *gh, const float *h_prev,
                                float *h_next, float *saved, long B, long H) {
  DISPATCH(rc_gru_reset_before_output, gx, gh, h_prev, h_next, saved, B, H);
}
void rc_rnn_backward(int relu, const float *h_next, const float *dh, float *dgx, float *dgh,
                     float *dh_prev, long n) {
  DISPATCH(rc_rnn_backward, relu, h_next, dh, dgx, dgh, dh_prev, n);
}
void rc_lstm_backward(const float *saved, const float *c_prev, const float *dh, float *dc,
                      float *dgx, float *dgh, float *dh_prev, long B, long H) {
  DISPATCH(rc_lstm_backward, saved, c_prev, dh, dc, dgx, dgh, dh_prev, B, H);
}
void rc_gru_backward(const float *saved, const float *h_prev, const float *dh, float *dgx,
                     float *dgh, float *dh_prev, long B, long H) {
  DISPATCH(rc_gru_backward, saved, h_prev, dh, dgx, dgh, dh_prev, B, H);
}

typedef struct {
  const float *x;
  float *g;
  const long *ids;
  long N, K, ignore, parts;
  float scale;
  int portable;
  double *loss;
} xent_job;

static void xent_part(void *context, int part) {
  const xent_job *j = context;
  long first = j->N * part / j->parts, last = j->N * (part + 1) / j->parts;
#if defined(__x86_64__)
  if (!j->portable && rc_cpu_level() >= RC_LEVEL_AVX2) {
    rc_xent_rows_avx2(j->x, j->g, j->ids, first, last, j->K, j->scale, j->ignore, j->loss);
    return;
  }
#endif
  rc_xent_rows_generic(j->x, j->g, j->ids, first, last, j->K, j->scale, j->ignore, j->loss);
}

void rc_softmax_xent(int threads, int portable, const float *x, float *g, const long *ids, long N, long K,
                     float scale, long ignore, double *loss) {
  long parts = threads < 1 ? 1 : threads;
  if (parts > N) parts = N < 1 ? 1 : N;
  if ((double)N * (double)K < 65536.0) parts = 1;  // too little work to share
  xent_job j = {x, g, ids, N, K, ignore, parts, scale, portable, loss};
  if (parts == 1) {
    xent_part(&j, 0);
    return;
  }
  for (int part = rc_parallel_for((int)parts, xent_part, &j); part < (int)parts; part++) xent_part(&j, part);
}
