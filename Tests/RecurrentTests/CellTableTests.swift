import Testing
import TestSupport

import Recurrent

// The cell table's entries are consistent: the recurrent product's blocks cover every gate
// once, in order, and an operand taken from the saved values names a slot the cell saves.
// (Every entry's numbers are checked against PyTorch, finite differences and the naive twins
// in RecurrentParityTests, FiniteDifferenceTests and KernelTwinTests.)

@Test(arguments: CellKind.allCases)
func everyCellsRecurrentBlocksCoverItsGatesOnce(kind: CellKind) {
  let kernels = kind.kernels
  #expect(kernels.gateCount == kind.gateCount && kernels.savedSlots == kind.savedSlots)
  var next = 0
  for block in kernels.blocks {
    #expect(block.gates.lowerBound == next && !block.gates.isEmpty, "\(kind): blocks in gate order without gaps")
    next = block.gates.upperBound
    if case .saved(let slot) = block.operand { #expect(slot < kernels.savedSlots, "\(kind): slot \(slot)") }
  }
  // The min cells have no recurrent product: their gates come from x alone.
  #expect(next == (kind.hasRecurrentWeights ? kernels.gateCount : 0))
  #expect(kernels.hiddenBlocks.isEmpty == !kind.hasRecurrentWeights, "\(kind): some block takes the previous state")
  #expect((kernels.sequentialForward != nil) == !kind.hasRecurrentWeights, "\(kind): a stepping form of its own")
}
