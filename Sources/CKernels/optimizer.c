// Adam and AdamW updates over one parameter tensor, vectorised per instruction set and split
// over threads. Floating-point contraction is off so every element is computed by exactly the
// operations, in the order, of the Swift rule in Optimizers.swift (same bits on any ISA or
// thread count; Swift never fuses a multiply and an add).
#include "CKernels.h"

#pragma clang fp contract(off)

#define ADAM_RANGE(suffix, attributes)                                                                  \
  attributes static void adam_range_##suffix(const rc_adam_args *a, long first, long last) {           \
    float *restrict p = a->p, *restrict m = a->first, *restrict s = a->second;                          \
    const float *restrict g = a->g;                                                                      \
    const float b1 = a->beta1, b2 = a->beta2, c1 = 1 - a->beta1, c2 = 1 - a->beta2;                     \
    for (long j = first; j < last; j++) {                                                               \
      float value = p[j], grad = g[j];                                                                  \
      if (a->l1 != 0) grad += a->l1 * (value > 0 ? 1.0f : (value < 0 ? -1.0f : 0.0f));                  \
      if (a->l2 != 0) grad += a->l2 * value;                                                            \
      float v = a->decoupled ? value * a->decay : value;                                                \
      float m1 = b1 * m[j] + c1 * grad;                                                                 \
      float m2 = b2 * s[j] + c2 * grad * grad;                                                          \
      m[j] = m1;                                                                                        \
      s[j] = m2;                                                                                        \
      p[j] = v - a->step_size * m1 / (__builtin_sqrtf(m2) / a->root2 + a->epsilon);                     \
    }                                                                                                   \
  }

ADAM_RANGE(generic, )
#if defined(__x86_64__)
ADAM_RANGE(avx2, __attribute__((target("avx2,fma"))))
ADAM_RANGE(avx512, __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))))
#endif

typedef struct {
  const rc_adam_args *args;
  long count;
  int parts, level;
} adam_job;

static void adam_part(void *context, int part) {
  const adam_job *j = context;
  // Parts start on multiples of 16 floats (whole cache lines for aligned tensors).
  long units = (j->count + 15) / 16;
  long first = units * part / j->parts * 16, last = units * (part + 1) / j->parts * 16;
  if (last > j->count) last = j->count;
  if (first >= last) return;
#if defined(__x86_64__)
  if (j->level >= RC_LEVEL_AVX512) {
    adam_range_avx512(j->args, first, last);
    return;
  }
  if (j->level >= RC_LEVEL_AVX2) {
    adam_range_avx2(j->args, first, last);
    return;
  }
#endif
  adam_range_generic(j->args, first, last);
}

void rc_adam_update(int threads, rc_kernel kernel, const rc_adam_args *args, long count) {
  int level = rc_cpu_level();
  if (kernel == RC_KERNEL_GENERIC) level = RC_LEVEL_GENERIC;
  else if (kernel == RC_KERNEL_AVX2 && level > RC_LEVEL_AVX2) level = RC_LEVEL_AVX2;
  long parts = threads < 1 ? 1 : threads;
  if (parts > count / 32768) parts = count / 32768;  // below ~32k floats a second thread costs more
  if (parts < 1) parts = 1;
  adam_job j = {args, count, (int)parts, level};
  if (parts == 1) {
    adam_part(&j, 0);
    return;
  }
  for (int part = rc_parallel_for((int)parts, adam_part, &j); part < (int)parts; part++) adam_part(&j, part);
}
