import ArgumentParser
import Formats
import Foundation
import TensorCore

/// `recurrent bench-gemm`: times one matrix product shape, for Benchmarks/gemm_vs_numpy.py.
struct BenchGEMM: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-gemm",
    abstract: "Time C[m,n] = A[m,k]·B[k,n] with the built-in GEMM (median of repeats, GFLOP/s).")

  @Option(help: "Rows of A and C.") var m: Int = 512
  @Option(help: "Columns of B and C.") var n: Int = 512
  @Option(help: "Inner size.") var k: Int = 512
  @Option(help: "Threads (1 or more).") var threads: Int = 1
  @Option(help: "Timed repeats; the median is reported.") var repeats: Int = 20
  @Flag(help: "Use the portable kernel instead of the fastest one this CPU supports.")
  var generic = false
  @Flag(help: "Print one JSON object.") var json = false

  func validate() throws {
    guard m > 0, n > 0, k > 0 else { throw ValidationError("--m, --n and --k must be > 0") }
    guard m * n + m * k + k * n <= 1 << 28 else {
      throw ValidationError("--m/--n/--k: matrices over 2^28 floats are not benchmarked")
    }
    try Bounds.check(threads, Bounds.threads, "--threads")
    guard repeats >= 1 else { throw ValidationError("--repeats must be >= 1") }
  }

  func run() throws {
    var rng = SplitMix64(seed: 1)
    let a = Tensor(uniform: [m, k], low: -1, high: 1, using: &rng)
    let b = Tensor(uniform: [k, n], low: -1, high: 1, using: &rng)
    var c = Tensor(zeros: [m, n])
    let compute = Compute(threads: threads)
    let kernel: GEMMKernel = generic ? .generic : .automatic
    func once() -> Double {
      let start = DispatchTime.now().uptimeNanoseconds
      a.scalars.withUnsafeBufferPointer { ap in
        b.scalars.withUnsafeBufferPointer { bp in
          c.scalars.withUnsafeMutableBufferPointer { cp in
            gemm(
              transposeA: false, transposeB: false, m: m, n: n, k: k,
              a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: n,
              c: cp.baseAddress!, ldc: n, compute: compute, kernel: kernel)
          }
        }
      }
      return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }
    for _ in 0..<3 { _ = once() }  // warm up caches and worker threads
    let times = (0..<repeats).map { _ in once() }.sorted()
    let median = times[times.count / 2]
    let gflops = 2.0 * Double(m) * Double(n) * Double(k) / median / 1e9
    if json {
      print(
        JSONValue.object([
          ("m", .int(m)), ("n", .int(n)), ("k", .int(k)), ("threads", .int(threads)), ("seconds", .number(median)),
          ("gflops", .number(gflops)),
        ]).text)
    } else {
      print(String(format: "%dx%dx%d threads=%d: %.3f ms, %.1f GFLOP/s", m, n, k, threads, median * 1e3, gflops))
    }
  }
}
