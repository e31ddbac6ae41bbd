// Which instruction sets the kernels may use: what the CPU reports, capped by the environment
// variable RECURRENT_MAX_ISA (generic, avx2 or avx512), as oneDNN's ONEDNN_MAX_CPU_ISA, so one
// machine can measure every path. Read once; every dispatcher asks rc_cpu_level().
#include "CKernels.h"

#include <stdlib.h>
#include <string.h>

int rc_cpu_has_avx2_fma(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}

int rc_cpu_has_avx512(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return rc_cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#else
  return 0;
#endif
}

static int detect_level(void) {
  int level = rc_cpu_has_avx512() ? RC_LEVEL_AVX512 : rc_cpu_has_avx2_fma() ? RC_LEVEL_AVX2 : RC_LEVEL_GENERIC;
  const char *cap = getenv("RECURRENT_MAX_ISA");
  if (cap != NULL) {
    int limit = level;
    if (strcmp(cap, "generic") == 0) limit = RC_LEVEL_GENERIC;
    else if (strcmp(cap, "avx2") == 0) limit = RC_LEVEL_AVX2;
    else if (strcmp(cap, "avx512") == 0) limit = RC_LEVEL_AVX512;
    if (limit < level) level = limit;
  }
  return level;
}

int rc_cpu_level(void) {
  static _Atomic int cached = -1;
  int level = cached;
  if (level < 0) {
    level = detect_level();
    cached = level;
  }
  return level;
}
