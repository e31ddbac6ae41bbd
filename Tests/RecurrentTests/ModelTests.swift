import Testing
import TestSupport

import Recurrent
import TensorCore

@Test(arguments: CellKind.allCases)
func layerOverOneStepEqualsItsCell(kind: CellKind) {
  var rng = SplitMix64(seed: 12)
  let (B, I, H) = (3, 5, 4)
  let layer = RecurrentLayer(kind: kind, inputSize: I, hiddenSize: H, using: &rng)
  var cell: any RecurrentCell =
    switch kind {
    case .rnnTanh: RNNCell(inputSize: I, hiddenSize: H, using: &rng)
    case .rnnRelu: RNNCell(inputSize: I, hiddenSize: H, relu: true, using: &rng)
    case .lstm: LSTMCell(inputSize: I, hiddenSize: H, using: &rng)
    case .lstmPeephole: LSTMCell(inputSize: I, hiddenSize: H, peephole: true, using: &rng)
    case .gru: GRUCell(inputSize: I, hiddenSize: H, using: &rng)
    case .gruResetBefore: GRUCell(inputSize: I, hiddenSize: H, resetAfter: false, using: &rng)
    case .gruLN: LayerNormCell(inputSize: I, hiddenSize: H, using: &rng)
    case .lstmLN: LayerNormCell(inputSize: I, hiddenSize: H, lstm: true, using: &rng)
    case .minGRU: MinCell(inputSize: I, hiddenSize: H, using: &rng)
    case .minLSTM: MinCell(inputSize: I, hiddenSize: H, lstm: true, using: &rng)
    }
  cell.layer.weights = layer.weights
  let names = kind.hasRecurrentWeights ? ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] : ["weight_ih", "bias_ih"]
  #expect(cell.namedParameters.map(\.name) == names + (kind.cellParameters.map { [$0.name] } ?? []))
  // Several steps of the cell equal the layer over the whole sequence.
  let T = 4
  let x = Tensor(normal: [T, B, I], using: &rng)
  let h0 = Tensor(normal: [1, B, H], using: &rng)
  let c0 = kind.hasCellState ? Tensor(normal: [1, B, H], using: &rng) : nil
  let (output, final) = layer(x, initialState: RecurrentState(hidden: h0, cell: c0))
  var state = CellState(hidden: h0.reshaped([B, H]), cell: c0?.reshaped([B, H]))
  for t in 0..<T {
    let xt = Tensor(shape: [B, I], scalars: Array(x.scalars[(t * B * I)..<((t + 1) * B * I)]))
    state = cell.forward(xt, state: state).state
    #expect(state.hidden.scalars == Array(output.scalars[(t * B * H)..<((t + 1) * B * H)]), "\(kind) step \(t)")
  }
  #expect(state.hidden.scalars == final.hidden.scalars)
  #expect(state.cell?.scalars == final.cell?.scalars)
}

@Test func lstmCellBackwardMatchesFiniteDifferences() {
  var rng = SplitMix64(seed: 13)
  let cell = LSTMCell(inputSize: 3, hiddenSize: 2, using: &rng)
  let x = Tensor(normal: [2, 3], using: &rng)
  let state = CellState(hidden: Tensor(normal: [2, 2], using: &rng), cell: Tensor(normal: [2, 2], using: &rng))
  let (_, trace) = cell.forward(x, state: state)
  let dState = CellState(hidden: Tensor(normal: [2, 2], using: &rng), cell: Tensor(normal: [2, 2], using: &rng))
  var gradient = cell.zeroGradient
  let (dx, dOld) = cell.backward(trace, stateGradient: dState, into: &gradient)
  let loss: (LSTMCell, Tensor, CellState) -> Double = { c, x, s in
    let new = c.forward(x, state: s).state
    return projection(new.hidden, dState.hidden) + projection(new.cell!, dState.cell!)
  }
  expectClose(dx.scalars, numericGradient(of: x, indices: Array(0..<6)) { loss(cell, $0, state) },
    rtol: 1e-2, atol: 2e-3, "dx")
  expectClose(dOld.cell!.scalars, numericGradient(of: state.cell!, indices: Array(0..<4)) {
    loss(cell, x, CellState(hidden: state.hidden, cell: $0))
  }, rtol: 1e-2, atol: 2e-3, "dc")
  #expect(gradient.namedParameters.allSatisfy { $0.tensor.scalars.contains { $0 != 0 } })
}

@Test func lastStepTakesEachDirectionsFinalOutput() {
  var rng = SplitMix64(seed: 14)
  let layer = RecurrentLayer(kind: .gru, inputSize: 2, hiddenSize: 3, bidirectional: true, using: &rng)
  let x = Tensor(normal: [4, 2, 2], using: &rng)
  let (output, state) = layer(x)
  let last = layer.lastStep(of: output)
  // Keras return_sequences=False: forward final state, then backward final state.
  for b in 0..<2 {
    #expect(Array(last.scalars[(b * 6)..<(b * 6 + 3)]) == Array(state.hidden.scalars[(b * 3)..<(b * 3 + 3)]))
    #expect(Array(last.scalars[(b * 6 + 3)..<(b * 6 + 6)]) == Array(state.hidden.scalars[(6 + b * 3)..<(6 + b * 3 + 3)]))
  }
  let back = layer.lastStepBackward(last, sequenceLength: 4)
  #expect(layer.lastStep(of: back) == last)
  #expect(back.scalars.filter { $0 != 0 }.count == last.scalars.filter { $0 != 0 }.count)
}

@Test func threadedLayerIsBitIdenticalToSingleThreaded() {
  var rng = SplitMix64(seed: 15)
  let layer = RecurrentLayer(kind: .lstm, inputSize: 64, hiddenSize: 128, layerCount: 2, using: &rng)
  let x = Tensor(normal: [6, 32, 64], using: &rng)
  var r1 = SplitMix64(seed: 1)
  var r2 = SplitMix64(seed: 1)
  let one = layer.forward(x, training: false, using: &r1, compute: .singleThread)
  let two = layer.forward(x, training: false, using: &r2, compute: Compute(threads: 2))
  #expect(one.output == two.output)
  let dOut = Tensor(normal: [6, 32, 128], using: &rng)
  var g1 = layer.zeroGradient
  var g2 = layer.zeroGradient
  let d1 = layer.backward(one.trace, outputGradient: dOut, into: &g1, compute: .singleThread)
  let d2 = layer.backward(two.trace, outputGradient: dOut, into: &g2, compute: Compute(threads: 2))
  #expect(d1.input == d2.input)
  #expect(g1 == g2)
}

/// Embedding → GRU → Linear learns a 64-character string by heart with Adam.
@Test func languageModelOverfitsA64CharacterString() {
  let text = Array("the quick brown fox jumps over the lazy dog; pack my box with li".unicodeScalars)
  #expect(text.count == 64)
  let vocabulary = Array(Set(text)).sorted()
  let ids = text.map { vocabulary.firstIndex(of: $0)! }
  var rng = SplitMix64(seed: 21)
  var model = LanguageModel(
    LanguageModelConfiguration(
      cell: .gru, layers: 1, hiddenSize: 64, embeddingSize: 16, vocabularySize: vocabulary.count),
    using: &rng)
  var optimizer = Optimizer(OptimizerConfiguration(kind: .adam, learningRate: 1e-2))
  let inputs = Array(ids[0..<63])
  let targets = Array(ids[1..<64])
  var loss: Float = .infinity
  var steps = 0
  while loss >= 0.05 && steps < 500 {
    let (logits, _, trace) = model.forward(ids: inputs, sequenceLength: 63, batchSize: 1, training: true, using: &rng)
    let (l, dLogits) = Loss.softmaxCrossEntropy(logits: logits, targets: targets)
    loss = l
    var gradient = model.zeroGradient
    model.backward(trace, logitsGradient: dLogits, into: &gradient)
    GradientClipping.clipByGlobalNorm(&gradient, maxNorm: 5)
    optimizer.update(&model, along: gradient)
    steps += 1
  }
  #expect(loss < 0.05, "loss \(loss) after \(steps) steps")
  // Greedy decoding from the first character reproduces the string.
  let (logits, _, _) = model.forward(ids: inputs, sequenceLength: 63, batchSize: 1, training: false, using: &rng)
  let predicted = (0..<63).map { row in
    (0..<vocabulary.count).max { logits.scalars[row * vocabulary.count + $0] < logits.scalars[row * vocabulary.count + $1] }!
  }
  #expect(predicted == targets)
}

@Test(arguments: CellKind.allCases)
func stepperMatchesTheLayerForward(kind: CellKind) {
  var rng = SplitMix64(seed: 31)
  for tied in [false, true] {
    let model = LanguageModel(
      LanguageModelConfiguration(
        cell: kind, layers: 2, hiddenSize: 40, embeddingSize: tied ? 40 : 12, vocabularySize: 9, tied: tied),
      using: &rng)
    let ids = (0..<7).map { ($0 * 4 + 3) % 9 }
    let (logits, state, _) = model.forward(ids: ids, sequenceLength: 7, batchSize: 1, training: false, using: &rng)
    for threads in [1, 2] {
      let stepper = LanguageModelStepper(model, compute: Compute(threads: threads))
      var stepped: [Float] = []
      for id in ids { stepped += stepper.step(id) }
      expectClose(stepped, logits.scalars, rtol: 1e-5, atol: 1e-5, "\(kind) tied=\(tied) logits")
      expectClose(stepper.state.hidden.scalars, state.hidden.scalars, rtol: 1e-5, atol: 1e-6, "\(kind) state")
      stepper.reset()
      expectClose(Array(stepper.step(ids[0])), Array(logits.scalars[0..<9]), rtol: 1e-5, atol: 1e-5, "\(kind) after reset")
    }
  }
}

@Test(arguments: CellKind.allCases)
func inferenceWithoutTraceEqualsTheTrainingForward(kind: CellKind) {
  var rng = SplitMix64(seed: 41)
  let layer = RecurrentLayer(kind: kind, inputSize: 5, hiddenSize: 12, layerCount: 2, bidirectional: true, using: &rng)
  let x = Tensor(normal: [7, 10, 5], using: &rng)
  let initial = RecurrentState(
    hidden: Tensor(normal: [4, 10, 12], using: &rng),
    cell: kind.hasCellState ? Tensor(normal: [4, 10, 12], using: &rng) : nil)
  let traced = layer.forward(x, initialState: initial, training: false, using: &rng, compute: Compute(threads: 2))
  let (output, state) = layer(x, initialState: initial, compute: Compute(threads: 2))
  #expect(output == traced.output)
  #expect(state == traced.state)
}
