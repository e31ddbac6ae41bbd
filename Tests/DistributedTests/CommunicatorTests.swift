import Distributed
import Testing

// Without the MPI trait the world is one process and every collective is the identity (the
// default build and tests need no MPI). Under mpirun, Tools/mpi_check.sh checks the collectives.

@Test func aBuildWithoutMPIIsAWorldOfOne() {
  guard !Communicator.isAvailable else { return }
  let world = Communicator()
  #expect(world.rank == 0 && world.size == 1)
  var values: [Float] = [1, 2.5, -3]
  values.withUnsafeMutableBufferPointer { world.allreduceSum($0) }
  #expect(values == [1, 2.5, -3])
  #expect(world.range(7) == (7, 7))
}
