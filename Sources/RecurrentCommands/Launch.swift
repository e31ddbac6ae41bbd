import Distributed
import Foundation

/// How many processes the launcher started, from the variables Open MPI (`OMPI_COMM_WORLD_SIZE`),
/// MPICH/Hydra and Slurm's PMI (`PMI_SIZE`) and PMIx (`PMIX_SIZE`) set; 1 when run by hand.
func launchedWorldSize(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
  for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"] {
    if let value = environment[key].flatMap(Int.init), value > 0 { return value }
  }
  return 1
}

/// Launched by mpirun as several ranks, `train` and `fit` would run N independent copies that
/// overwrite one checkpoint (data-parallel training is not in yet): refuse in one line instead.
func refuseMultiRankWithoutMPI(_ command: String) throws {
  let size = launchedWorldSize()
  guard size <= 1 else {
    if Communicator.isAvailable {
      throw CommandError(
        "recurrent \(command) was launched as \(size) ranks, but it does not train data-parallel yet; run it as one process (mpi-check tests the MPI setup)")
    }
    throw CommandError(
      "recurrent \(command) was launched as \(size) ranks, but this build has no MPI; build it with: swift build -c release --traits MPI")
  }
}
