import Recurrent

/// Example 3: a hand-written loop over `GRUCell` steps. Each step's trace is kept, the loss
/// on a Dense head over the last state is differentiated by hand, back through the steps
/// (backpropagation through time), and Adam updates the cell and the head. The targets are
/// random, so the model must memorise them: the loss falls towards zero.
public enum GRUCellLoopExample {
  /// The trainable parts, visited in one fixed order for the optimizer.
  struct Model: Parameterized {
    var cell: GRUCell
    var head: Linear
    mutating func forEachParameter(_ body: (String, inout Tensor) throws -> Void) rethrows {
      try cell.forEachParameter { try body("cell." + $0, &$1) }
      try head.forEachParameter { try body("head." + $0, &$1) }
    }
  }

  public struct Result: Sendable {
    /// Mean squared error before each update.
    public var losses: [Float]
  }

  public static func run(iterations: Int = 300, batch: Int = 16, steps: Int = 10) -> Result {
    var rng = SplitMix64(seed: 1)
    let (inputs, hidden, outputs) = (4, 32, 3)
    var model = Model(
      cell: GRUCell(inputSize: inputs, hiddenSize: hidden, using: &rng),
      head: Linear(inputSize: hidden, outputSize: outputs, using: &rng))
    let xs = (0..<steps).map { _ in Tensor(normal: [batch, inputs], using: &rng) }
    let targets = Tensor(normal: [batch, outputs], using: &rng)
    var optimizer = Optimizer(OptimizerConfiguration(kind: .adam, learningRate: 1e-2))
    var losses: [Float] = []
    for _ in 0..<iterations {
      // Forward, one step at a time, keeping each step's trace.
      var state = model.cell.zeroState(batchSize: batch)
      var traces: [CellTrace] = []
      for x in xs {
        let (next, trace) = model.cell.forward(x, state: state)
        traces.append(trace)
        state = next
      }
      let (prediction, headTrace) = model.head.forward(state.hidden)
      let (loss, dPrediction) = Loss.meanSquaredError(prediction, targets)
      losses.append(loss)
      // Backward: the head, then the cell from the last step to the first.
      var gradient = model.zeroGradient
      var dState = CellState(hidden: model.head.backward(headTrace, outputGradient: dPrediction, into: &gradient.head))
      for trace in traces.reversed() {
        dState = model.cell.backward(trace, stateGradient: dState, into: &gradient.cell).state
      }
      optimizer.update(&model, along: gradient)
    }
    return Result(losses: losses)
  }
}
