#include "CKernels.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

void rc_keep_freed_memory(void) {
#if defined(__GLIBC__)
  // Serve large blocks from the heap and keep freed memory there for reuse, instead of
  // mmap/munmap per allocation (each fresh page faults and is zeroed by the kernel).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest allowed value on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}
