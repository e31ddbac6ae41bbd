import CKernels
import Foundation

/// The number format of the matrix products' operands.
public enum Precision: String, Sendable, CaseIterable, Codable {
  /// float32 operands and accumulation.
  case float32 = "f32"
  /// Operands rounded to bfloat16 as they enter a product, float32 accumulation and results
  /// (oneDNN's rules: weights, optimizer state, biases and everything pointwise stay float32).
  case bfloat16 = "bf16"

  /// Whether this CPU runs the bf16 products (AVX512_BF16), and `RECURRENT_MAX_ISA` does not
  /// cap the kernels below AVX-512.
  public static var bfloat16IsSupported: Bool { rc_cpu_level() >= RC_LEVEL_AVX512 && rc_cpu_has_avx512_bf16() != 0 }
}

/// How many threads the numeric kernels may use, and in which precision the matrix products
/// run. Passed as an argument; never global.
public struct Compute: Sendable, Equatable {
  /// Threads for matrix products (1 = the calling thread only).
  public var threads: Int
  /// The matrix products' operand format.
  public let precision: Precision
  /// bf16 by rounding the operands and running the float32 kernels: the bf16 numerics on any
  /// CPU, for tests only (slow).
  package let emulatesBFloat16: Bool

  /// Work split over `threads` threads (at least 1), products in `precision` (`.bfloat16` only
  /// where `Precision.bfloat16IsSupported`).
  public init(threads: Int, precision: Precision = .float32) {
    precondition(threads >= 1, "Compute: threads must be >= 1, got \(threads)")
    precondition(
      precision == .float32 || Precision.bfloat16IsSupported, "Compute: this CPU has no AVX512_BF16 for bf16 products")
    self.threads = threads
    self.precision = precision
    emulatesBFloat16 = false
  }

  /// bf16 numerics on any CPU by rounding operands (tests).
  package init(threads: Int, emulatingBFloat16: Void) {
    precondition(threads >= 1, "Compute: threads must be >= 1, got \(threads)")
    self.threads = threads
    precision = .bfloat16
    emulatesBFloat16 = true
  }

  /// One thread per available core.
  public static var allCores: Compute { Compute(threads: max(1, System.coreCount)) }
  /// The calling thread only.
  public static let singleThread = Compute(threads: 1)

  /// The same precision on one thread (work inside a `parallelFor` part).
  public var oneThread: Compute {
    var copy = self
    copy.threads = 1
    return copy
  }

  /// The C kernel a product runs: `kernel` for float32, else the bf16 one.
  package func cKernel(_ kernel: GEMMKernel) -> rc_kernel {
    switch precision {
    case .float32: kernel.c
    case .bfloat16: emulatesBFloat16 ? RC_KERNEL_BF16_EMULATED : RC_KERNEL_AVX512_BF16
    }
  }
}

/// Which register-blocked micro-kernel the GEMM uses.
public enum GEMMKernel: Sendable, CaseIterable {
  /// The fastest one the CPU supports.
  case automatic
  /// Portable C, vectorised by the compiler.
  case generic
  /// AVX2 + FMA (x86-64), a 6x16 register block. Only valid where `GEMMKernel.avx2IsSupported`.
  case avx2
  /// AVX-512 (x86-64; F, VL, BW, DQ), a 12x32 register block. Only valid where
  /// `GEMMKernel.avx512IsSupported`.
  case avx512

  /// Whether this CPU runs the AVX2+FMA kernels (checked once at run time).
  public static var avx2IsSupported: Bool { rc_cpu_has_avx2_fma() != 0 }
  /// Whether this CPU runs the AVX-512 kernels (checked at run time).
  public static var avx512IsSupported: Bool { rc_cpu_has_avx512() != 0 }
  /// The kernels this CPU runs, portable first.
  public static var supported: [GEMMKernel] {
    [.generic] + (avx2IsSupported ? [.avx2] : []) + (avx512IsSupported ? [.avx512] : [])
  }
  /// The kernel `.automatic` picks: the best this CPU runs, capped by the environment variable
  /// `RECURRENT_MAX_ISA` (`generic`, `avx2` or `avx512`), as oneDNN's `ONEDNN_MAX_CPU_ISA`.
  public static var automaticChoice: GEMMKernel {
    switch rc_cpu_level() {
    case RC_LEVEL_AVX512: .avx512
    case RC_LEVEL_AVX2: .avx2
    default: .generic
    }
  }

  package var c: rc_kernel {
    switch self {
    case .automatic: RC_KERNEL_AUTO
    case .generic: RC_KERNEL_GENERIC
    case .avx2: RC_KERNEL_AVX2
    case .avx512: RC_KERNEL_AVX512
    }
  }
}

/// Facts about the machine.
public enum System {
  /// Number of cores the process may use.
  public static var coreCount: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }
}



/// Row-major single-precision general matrix product,
/// `C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C[m,n]`.
///
/// - Parameters:
///   - transposeA: `op(A) = Aᵀ`, where `A` is stored `[k, m]` with row stride `lda`; else `A` is `[m, k]`.
///   - transposeB: `op(B) = Bᵀ`, where `B` is stored `[n, k]` with row stride `ldb`; else `B` is `[k, n]`.
///   - m: rows of `C` and `op(A)`.
///   - n: columns of `C` and `op(B)`.
///   - k: the inner size.
///   - alpha: scales the product.
///   - a: the first element of `A`.
///   - lda: row stride of `A` in floats.
///   - b: the first element of `B`.
///   - ldb: row stride of `B` in floats.
///   - beta: scales the old `C`; 0 never reads C.
///   - c: the first element of `C`, written in place.
///   - ldc: row stride of `C` in floats.
///   - kernel: the micro-kernel; `.automatic` picks the fastest this CPU runs.
///   - compute: the output is split into blocks of whole rows or columns, one per thread;
///     every element is summed in the same order whatever the thread count, so results are
///     bit-identical for any `compute.threads`. `compute.precision` `.bfloat16` rounds both
///     operands to bf16 (then `kernel` is not used).
public func gemm(
  transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
  alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
  b: UnsafePointer<Float>, ldb: Int,
  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
  compute: Compute = .singleThread, kernel: GEMMKernel = .automatic
) {
  precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative size m=\(m) n=\(n) k=\(k)")
  precondition(ldc >= n, "gemm: ldc \(ldc) < n \(n)")
  precondition(lda >= (transposeA ? m : k), "gemm: lda \(lda) too small")
  precondition(ldb >= (transposeB ? k : n), "gemm: ldb \(ldb) too small")
  if kernel == .avx2 { precondition(GEMMKernel.avx2IsSupported, "gemm: this CPU has no AVX2+FMA") }
  if kernel == .avx512 { precondition(GEMMKernel.avx512IsSupported, "gemm: this CPU has no AVX-512") }
  rc_sgemm_threaded(
    Int32(compute.threads), transposeA ? 1 : 0, transposeB ? 1 : 0, m, n, k, alpha, a, lda,
    b, ldb, beta, c, ldc, compute.cKernel(kernel))
}

/// The naive twin of `gemm`: a triple loop accumulating in Double. The test oracle.
public func gemmReference(
  transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
  alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
  b: UnsafePointer<Float>, ldb: Int,
  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
  for i in 0..<m {
    for j in 0..<n {
      var sum: Double = 0
      for p in 0..<k {
        let av = transposeA ? a[p * lda + i] : a[i * lda + p]
        let bv = transposeB ? b[j * ldb + p] : b[p * ldb + j]
        sum += Double(av) * Double(bv)
      }
      let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
      c[i * ldc + j] = Float(Double(alpha) * sum + old)
    }
  }
}

extension Tensor {
  /// Matrix product of two rank-2 tensors, `op(self) · op(other)`.
  public func matmul(
    _ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false,
    compute: Compute = .singleThread
  ) -> Tensor {
    precondition(rank == 2 && other.rank == 2, "matmul: rank-2 tensors only")
    let m = transposeSelf ? shape[1] : shape[0]
    let k = transposeSelf ? shape[0] : shape[1]
    let k2 = transposeOther ? other.shape[1] : other.shape[0]
    let n = transposeOther ? other.shape[0] : other.shape[1]
    precondition(k == k2, "matmul: inner sizes \(k) and \(k2) differ")
    var result = Tensor(zeros: [m, n])
    scalars.withUnsafeBufferPointer { a in
      other.scalars.withUnsafeBufferPointer { b in
        result.scalars.withUnsafeMutableBufferPointer { c in
          gemm(
            transposeA: transposeSelf, transposeB: transposeOther, m: m, n: n, k: k,
            a: a.baseAddress!, lda: shape[1], b: b.baseAddress!, ldb: other.shape[1],
            c: c.baseAddress!, ldc: n, compute: compute)
        }
      }
    }
    return result
  }
}

/// The closure of one `parallelFor`, handed to the C pool through an opaque pointer.
private final class PartJob: @unchecked Sendable {
  let body: (Int) -> Void
  init(_ body: @escaping (Int) -> Void) { self.body = body }
}

/// Runs `body(0..<parts)` on the kernels' thread pool, part 0 on the calling thread, and
/// returns when all are done. Part i always runs on the same pool thread. Work inside a part
/// must not itself use more than one thread (pass `.singleThread` to `gemm`).
public func parallelFor(parts: Int, _ body: (Int) -> Void) {
  guard parts > 1 else {
    if parts == 1 { body(0) }
    return
  }
  withoutActuallyEscaping(body) { escaping in
    let job = Unmanaged.passRetained(PartJob(escaping))
    let done = Int(
      rc_parallel_for(
        Int32(parts),
        { context, part in Unmanaged<PartJob>.fromOpaque(context!).takeUnretainedValue().body(Int(part)) },
        job.toOpaque()))
    job.release()
    for part in done..<parts { body(part) }  // threads that could not be started
  }
}

/// A matrix packed once for use as the right operand `B` [k, n] of many products (an RNN's
/// recurrent weights at every time step): the products then stream contiguous panels.
public final class PackedMatrix: @unchecked Sendable {
  /// Rows of the packed matrix (the products' inner size).
  public let k: Int
  /// Columns of the packed matrix (the products' output width).
  public let n: Int
  /// The products' precision (bf16: packed as bf16 pairs, or rounded for emulation).
  let compute: Compute
  let buffer: FloatBuffer

  /// Packs `op(B)`: `B` [k, n] with row stride `ldb`, or, if `transposed`, `Bᵀ` where `B` is [n, k];
  /// in bf16 when `compute.precision` is `.bfloat16`.
  public init(_ b: UnsafePointer<Float>, ldb: Int, k: Int, n: Int, transposed: Bool, compute: Compute = .singleThread) {
    self.k = k
    self.n = n
    self.compute = compute
    switch (compute.precision, compute.emulatesBFloat16) {
    case (.bfloat16, false):
      buffer = FloatBuffer(uninitializedCount: rc_packed_b_bf16_count(k, n))
      buffer.pointer.withMemoryRebound(to: UInt32.self, capacity: buffer.count) {
        rc_pack_b_bf16(transposed ? 1 : 0, k, n, b, ldb, $0)
      }
    case (.bfloat16, true):
      let rows = transposed ? n : k
      let rounded = FloatBuffer(uninitializedCount: rows * ldb)
      for i in 0..<(rows * ldb) { rounded.pointer[i] = rc_round_bf16(b[i]) }
      buffer = FloatBuffer(uninitializedCount: rc_packed_b_count(k, n))
      rc_pack_b(transposed ? 1 : 0, k, n, rounded.pointer, ldb, buffer.pointer)
    case (.float32, _):
      buffer = FloatBuffer(uninitializedCount: rc_packed_b_count(k, n))
      rc_pack_b(transposed ? 1 : 0, k, n, b, ldb, buffer.pointer)
    }
  }

  /// `C[m, n] = A[m, k] · B + beta · C` on the calling thread (A rounded to bf16 when packed so).
  public func multiply(
    _ a: UnsafePointer<Float>, lda: Int, m: Int, beta: Float, into c: UnsafeMutablePointer<Float>, ldc: Int,
    kernel: GEMMKernel = .automatic
  ) {
    precondition(lda >= k && ldc >= n, "PackedMatrix.multiply: lda \(lda) or ldc \(ldc) too small")
    switch (compute.precision, compute.emulatesBFloat16) {
    case (.bfloat16, false):
      buffer.pointer.withMemoryRebound(to: UInt32.self, capacity: buffer.count) {
        rc_sgemm_prepacked_bf16(m, n, k, a, lda, $0, beta, c, ldc)
      }
    case (.bfloat16, true):
      let rounded = FloatBuffer(uninitializedCount: m * k)
      for i in 0..<m {
        for p in 0..<k { rounded.pointer[i * k + p] = rc_round_bf16(a[i * lda + p]) }
      }
      rc_sgemm_prepacked(m, n, k, rounded.pointer, k, buffer.pointer, beta, c, ldc, kernel.c)
    case (.float32, _):
      rc_sgemm_prepacked(m, n, k, a, lda, buffer.pointer, beta, c, ldc, kernel.c)
    }
  }
}
