import ArgumentParser
import Distributed
import Formats
import Foundation
import TextCorpus
import Training

/// How many processes the launcher started, from the variables Open MPI (`OMPI_COMM_WORLD_SIZE`),
/// MPICH/Hydra and Slurm's PMI (`PMI_SIZE`) and PMIx (`PMIX_SIZE`) set; 1 when run by hand.
func launchedWorldSize(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
  for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"] {
    if let value = environment[key].flatMap(Int.init), value > 0 { return value }
  }
  return 1
}

/// Ranks the launcher started on this host (Open MPI's `OMPI_COMM_WORLD_LOCAL_SIZE`, MPICH's
/// `MPI_LOCALNRANKS`), or `default` when it does not say.
func launchedLocalSize(default fallback: Int, _ environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
  for key in ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"] {
    if let value = environment[key].flatMap(Int.init), value > 0 { return value }
  }
  return fallback
}

/// Launched by mpirun as several ranks, a build without MPI would run N independent copies that
/// overwrite one checkpoint: refuse in one line instead. `fit` (not data-parallel) refuses in
/// any build.
func refuseMultiRankWithoutMPI(_ command: String, dataParallel: Bool = false) throws {
  let size = launchedWorldSize()
  guard size > 1 else { return }
  if !Communicator.isAvailable {
    throw CommandError(
      "recurrent \(command) was launched as \(size) ranks, but this build has no MPI; build it with: swift build -c release --traits MPI")
  }
  if !dataParallel {
    throw CommandError(
      "recurrent \(command) does not train data-parallel; run it as one process (recurrent train does, under mpirun)")
  }
}

/// The ranks `train` runs on: MPI's world when mpirun launched several ranks of an MPI build;
/// nil for one process. Refuses a build without MPI launched as several ranks, and ranks
/// whose command lines differ.
func trainingWorld(_ command: String) throws -> Communicator? {
  try refuseMultiRankWithoutMPI(command, dataParallel: true)
  guard launchedWorldSize() > 1 else { return nil }
  let world = Communicator()
  guard world.size > 1 else { return nil }
  var hash = stableHashSeed
  stableHash(CommandLine.arguments.dropFirst().joined(separator: "\u{0}").utf8, into: &hash)
  let (low, high) = world.range(Int(truncatingIfNeeded: hash))
  guard low == high else {
    if world.rank == 0 { throw CommandError("the ranks were given different command lines; give every rank the same") }
    throw ExitCode(1)
  }
  return world
}

/// Runs `body` on every rank, then agrees: if it threw on any rank, the lowest such rank
/// rethrows its error (one line) and the others exit 1 without a word, so no rank waits for
/// the others in a collective that will never come. Without a world, just `body`.
func collectively<T>(_ world: (any Collective)?, _ body: () throws -> T) throws -> T {
  guard let world else { return try body() }
  let result = Result { try body() }
  var failed = false
  if case .failure = result { failed = true }
  let first = world.range(failed ? world.rank : Int.max).minimum
  if first == Int.max { return try result.get() }
  if first == world.rank { _ = try result.get() }
  throw ExitCode(1)
}

extension Collective {
  /// Rank 0's checkpoint on every rank (the other hosts need not have the file).
  func share(_ checkpoint: Checkpoint?) throws -> Checkpoint? {
    let bytes = try rank == 0 ? checkpoint.map { [UInt8](try $0.safeTensors().encoded()) } ?? [] : []
    let received = broadcast(bytes, root: 0)
    if rank == 0 { return checkpoint }
    return received.isEmpty ? nil : try Checkpoint(SafeTensors(decoding: Data(received)))
  }

  /// Rank 0's vocabulary on every rank (as token files store it).
  func share(_ vocabulary: Vocabulary?) throws -> Vocabulary? {
    let message = try vocabulary.map { try encodeJSON(StoredVocabulary($0)) }
    let received = broadcast(rank == 0 ? Array((message ?? "").utf8) : [], root: 0)
    if rank == 0 { return vocabulary }
    guard !received.isEmpty else { return nil }
    return try JSONDecoder().decode(StoredVocabulary.self, from: Data(received)).vocabulary()
  }
}

/// After a stop signal, every rank finishes its step and rank 0 saves; if this rank has not got
/// past its last collective 25 s later, another rank is gone (no collective can complete): say so
/// in one line and exit 1 rather than hang. (Rank 0's final validation, after the save, may take
/// longer: `settled` is true by then.)
func watchdog(rank: Int, signal number: Int32, unless settled: @escaping @Sendable () -> Bool) {
  DispatchQueue.global().asyncAfter(deadline: .now() + 25) {
    guard !settled() else { return }
    FileHandle.standardError.write(
      Data("Error: rank \(rank): stopped by signal \(number), but the other ranks did not finish the step within 25 s (a rank has probably ended); exiting without saving\n".utf8))
    exit(1)
  }
}
