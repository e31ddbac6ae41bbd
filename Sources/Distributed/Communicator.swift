import Foundation

#if MPI
import CMPI
#endif

/// The collectives data-parallel training needs, between the `size` processes (ranks) of a
/// run. `Communicator` is MPI's world; `LocalGroup` runs ranks as threads of one process (the
/// tests' stand-in for `mpirun`). Every rank must call the same collectives in the same order.
public protocol Collective: AnyObject, Sendable {
  /// This rank's index, `0..<size`.
  var rank: Int { get }
  /// Ranks in the run.
  var size: Int { get }
  /// Replaces `values` on every rank by their elementwise sum over the ranks, the same bits on
  /// every rank.
  func allreduceSum(_ values: UnsafeMutableBufferPointer<Float>)
  /// Starts summing `values` across the ranks in the background (MPI's `MPI_Iallreduce`); the
  /// buffer must stay alive and untouched until `wait` on the returned request returns.
  func startAllreduceSum(_ values: UnsafeMutableBufferPointer<Float>) -> PendingReduction
  /// Copies rank `root`'s bytes into every rank's `bytes`; the counts must agree.
  func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int)
  /// The smallest and largest of `value` over the ranks (to check that ranks agree).
  func range(_ value: Int) -> (minimum: Int, maximum: Int)
}

/// A reduction started by `Collective.startAllreduceSum`.
public final class PendingReduction: @unchecked Sendable {
  let finish: () -> Void
  private var done = false
  /// A request that runs `finish` once, on `wait`.
  public init(finish: @escaping () -> Void) { self.finish = finish }
  /// Blocks until the sum is in the buffer.
  public func wait() {
    if !done {
      done = true
      finish()
    }
  }
}

extension Collective {
  /// Broadcasts a byte array of any length from `root` (its length first).
  public func broadcast(_ data: [UInt8], root: Int = 0) -> [UInt8] {
    var count = [UInt64(data.count)]
    count.withUnsafeMutableBytes { broadcast($0, root: root) }
    var bytes = rank == root ? data : [UInt8](repeating: 0, count: Int(count[0]))
    if !bytes.isEmpty { bytes.withUnsafeMutableBytes { broadcast($0, root: root) } }
    return bytes
  }

  /// True on every rank when `flag` is true on any rank.
  public func any(_ flag: Bool) -> Bool { range(flag ? 1 : 0).maximum == 1 }
}

/// The processes of a run and the collectives between them: MPI's `MPI_COMM_WORLD` in a build
/// with the `MPI` trait (`swift build -c release --traits MPI`, then `mpirun -np N`), and a
/// world of one process otherwise (every collective is then the identity).
public final class Communicator: Collective, @unchecked Sendable {
  /// This process's index, `0..<size`.
  public let rank: Int
  /// Processes in the run.
  public let size: Int
  /// Whether this build talks MPI.
  public static var isAvailable: Bool {
    #if MPI
    true
    #else
    false
    #endif
  }

  /// The world: initialises MPI in an MPI build (once per process). Errors in collectives
  /// (a peer that died, a lost connection) are returned, not fatal inside MPI, so the caller
  /// can say so in one line.
  public init() {
    #if MPI
    var initialized: Int32 = 0
    MPI_Initialized(&initialized)
    if initialized == 0 {
      var provided: Int32 = 0
      MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided)
    }
    MPI_Comm_set_errhandler(rc_mpi_comm_world(), rc_mpi_errors_return())
    var r: Int32 = 0
    var s: Int32 = 0
    MPI_Comm_rank(rc_mpi_comm_world(), &r)
    MPI_Comm_size(rc_mpi_comm_world(), &s)
    rank = Int(r)
    size = Int(s)
    #else
    rank = 0
    size = 1
    #endif
  }

  #if MPI
  /// A failed MPI call: one line on standard error and exit 1 (a collective cannot be retried
  /// when a peer is gone, and no collective save is possible).
  func check(_ code: Int32, _ what: String) {
    guard code != 0 else { return }
    var text = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
    var length: Int32 = 0
    MPI_Error_string(code, &text, &length)
    let message = String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    FileHandle.standardError.write(
      Data("recurrent: rank \(rank): \(what) failed (\(message)); another rank has probably ended; stopping without saving\n".utf8))
    exit(1)
  }
  #endif

  /// Replaces `values` on every rank by their sum over the ranks (`MPI_Allreduce`, in place).
  public func allreduceSum(_ values: UnsafeMutableBufferPointer<Float>) {
    #if MPI
    guard size > 1, let base = values.baseAddress else { return }
    check(
      MPI_Allreduce(rc_mpi_in_place(), base, Int32(values.count), rc_mpi_float(), rc_mpi_sum(), rc_mpi_comm_world()),
      "MPI_Allreduce")
    #endif
  }

  /// Starts `MPI_Iallreduce` in place; `wait` calls `MPI_Wait`.
  public func startAllreduceSum(_ values: UnsafeMutableBufferPointer<Float>) -> PendingReduction {
    #if MPI
    guard size > 1, let base = values.baseAddress else { return PendingReduction {} }
    let request = UnsafeMutablePointer<MPI_Request?>.allocate(capacity: 1)
    check(
      MPI_Iallreduce(
        rc_mpi_in_place(), base, Int32(values.count), rc_mpi_float(), rc_mpi_sum(), rc_mpi_comm_world(), request),
      "MPI_Iallreduce")
    return PendingReduction { [self] in
      check(MPI_Wait(request, rc_mpi_status_ignore()), "MPI_Wait")
      request.deallocate()
    }
    #else
    return PendingReduction {}
    #endif
  }

  /// Copies rank `root`'s bytes into every rank's `bytes` (`MPI_Bcast`); the counts must agree.
  public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int = 0) {
    #if MPI
    guard size > 1, let base = bytes.baseAddress else { return }
    var offset = 0
    while offset < bytes.count {  // MPI counts are Int32
      let count = min(bytes.count - offset, 1 << 30)
      check(MPI_Bcast(base + offset, Int32(count), rc_mpi_byte(), Int32(root), rc_mpi_comm_world()), "MPI_Bcast")
      offset += count
    }
    #endif
  }

  /// The smallest and largest of `value` over the ranks (to check that ranks agree).
  public func range(_ value: Int) -> (minimum: Int, maximum: Int) {
    #if MPI
    guard size > 1 else { return (value, value) }
    var low = value
    var high = value
    var mine = value
    check(MPI_Allreduce(&mine, &low, 1, rc_mpi_long(), rc_mpi_min(), rc_mpi_comm_world()), "MPI_Allreduce")
    check(MPI_Allreduce(&mine, &high, 1, rc_mpi_long(), rc_mpi_max(), rc_mpi_comm_world()), "MPI_Allreduce")
    return (low, high)
    #else
    return (value, value)
    #endif
  }

  /// Waits until every rank is here.
  public func barrier() {
    #if MPI
    if size > 1 { check(MPI_Barrier(rc_mpi_comm_world()), "MPI_Barrier") }
    #endif
  }

  /// Ends MPI (call once, before exit).
  public func finalize() {
    #if MPI
    var finalized: Int32 = 0
    MPI_Finalized(&finalized)
    if finalized == 0 { MPI_Finalize() }
    #endif
  }
}
