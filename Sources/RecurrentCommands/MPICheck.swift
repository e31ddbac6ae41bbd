import ArgumentParser
import Distributed
import Formats
import Foundation

/// `recurrent mpi-check`: under `mpirun`, checks that the ranks find each other and that the
/// collectives training relies on give every rank the same, right answer.
struct MPICheck: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "mpi-check",
    abstract: "Check the MPI setup: run as `mpirun -np N recurrent mpi-check` with a build made with --traits MPI.")

  @Option(help: "Floats summed across the ranks.") var count = 1 << 20

  func validate() throws {
    guard count >= 1 && count <= 1 << 28 else { throw ValidationError("--count must be in 1...268435456") }
  }

  func run() throws {
    let world = Communicator()
    defer { world.finalize() }
    guard Communicator.isAvailable else {
      let launched = launchedWorldSize()
      throw CommandError(
        "this build has no MPI (launched as \(launched) rank\(launched == 1 ? "" : "s")); build it with: swift build -c release --traits MPI")
    }
    // Rank r contributes (r + 1) * (i % 7 + 1) to element i; the sum is exact in Float.
    var values = (0..<count).map { Float((world.rank + 1) * ($0 % 7 + 1)) }
    let started = Date()
    values.withUnsafeMutableBufferPointer { world.allreduceSum($0) }
    let seconds = Date().timeIntervalSince(started)
    let total = world.size * (world.size + 1) / 2
    let wrong = values.indices.first { values[$0] != Float(total * ($0 % 7 + 1)) }
    var seed: [UInt8] = Array(repeating: UInt8(world.rank == 0 ? 42 : 0), count: 8)
    seed.withUnsafeMutableBytes { world.broadcast($0) }
    let (low, high) = world.range(count)
    emit(
      jsonLine([
        "rank": .int(world.rank), "size": .int(world.size), "allreduce_floats": .int(count),
        "allreduce_seconds": .number(seconds), "allreduce_ok": .bool(wrong == nil), "broadcast_ok": .bool(seed.allSatisfy { $0 == 42 }),
        "ranks_agree": .bool(low == high),
      ]))
    if wrong != nil || !seed.allSatisfy({ $0 == 42 }) || low != high {
      throw CommandError("rank \(world.rank): a collective gave a wrong result")
    }
  }
}
