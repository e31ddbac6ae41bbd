import Foundation

#if MPI
import CMPI
#endif

/// The processes of a run and the collectives between them: MPI's `MPI_COMM_WORLD` in a build
/// with the `MPI` trait (`swift build -c release --traits MPI`, then `mpirun -np N`), and a
/// world of one process otherwise (every collective is then the identity).
public final class Communicator: @unchecked Sendable {
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

  /// The world: initialises MPI in an MPI build (once per process).
  public init() {
    #if MPI
    var initialized: Int32 = 0
    MPI_Initialized(&initialized)
    if initialized == 0 {
      var provided: Int32 = 0
      MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided)
    }
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

  /// Replaces `values` on every rank by their sum over the ranks (`MPI_Allreduce`, in place).
  /// Every rank gets bitwise the same result.
  public func allreduceSum(_ values: UnsafeMutableBufferPointer<Float>) {
    #if MPI
    guard size > 1, let base = values.baseAddress else { return }
    MPI_Allreduce(rc_mpi_in_place(), base, Int32(values.count), rc_mpi_float(), rc_mpi_sum(), rc_mpi_comm_world())
    #endif
  }

  /// Copies rank `root`'s bytes into every rank's `bytes` (`MPI_Bcast`); the counts must agree.
  public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int = 0) {
    #if MPI
    guard size > 1, let base = bytes.baseAddress else { return }
    MPI_Bcast(base, Int32(bytes.count), rc_mpi_byte(), Int32(root), rc_mpi_comm_world())
    #endif
  }

  /// The smallest and largest of `value` over the ranks (to check that ranks agree).
  public func range(_ value: Int) -> (minimum: Int, maximum: Int) {
    #if MPI
    guard size > 1 else { return (value, value) }
    var low = value
    var high = value
    var mine = value
    MPI_Allreduce(&mine, &low, 1, rc_mpi_long(), rc_mpi_min(), rc_mpi_comm_world())
    MPI_Allreduce(&mine, &high, 1, rc_mpi_long(), rc_mpi_max(), rc_mpi_comm_world())
    return (low, high)
    #else
    return (value, value)
    #endif
  }

  /// Waits until every rank is here.
  public func barrier() {
    #if MPI
    if size > 1 { MPI_Barrier(rc_mpi_comm_world()) }
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
