import Testing
import TestSupport

import Recurrent
import TensorCore

/// One case of Tests/Reference/make_fixtures.py: a PyTorch module (or, for
/// gru-reset-before, its hand-written reference), its output and all its gradients.
struct RecurrentFixture: Decodable, Sendable {
  let cell: String
  let layers: Int
  let bidirectional: Bool
  let proj_size: Int?
  let input_size, hidden_size, batch, length: Int
  let parameter_names: [String]
  let parameters: [String: [Float]]
  let x, h0, output, h_n, grad_output, grad_h_n, grad_x, grad_h0: [Float]
  let c0, c_n, grad_c_n, grad_c0: [Float]?
  let grad_parameters: [String: [Float]]
}

private let fixtures: [RecurrentFixture] =
  (try? loadFixture("recurrent_layers", as: [RecurrentFixture].self, in: .module)) ?? []

@Test func allRecurrentFixturesLoad() {
  #expect(fixtures.count == 44)
  #expect(Set(fixtures.map(\.cell)) == Set(CellKind.allCases.map(\.rawValue)))
}

@Test(arguments: 0..<44)
func recurrentLayerMatchesPyTorch(index: Int) throws {
  try #require(index < fixtures.count)
  let f = fixtures[index]
  let kind = try #require(CellKind(rawValue: f.cell))
  let P = f.proj_size ?? 0
  let label = "\(f.cell) layers=\(f.layers) bidirectional=\(f.bidirectional)" + (P > 0 ? " proj_size=\(P)" : "")
  var rng = SplitMix64(seed: 1)
  var layer = RecurrentLayer(
    kind: kind, inputSize: f.input_size, hiddenSize: f.hidden_size, layerCount: f.layers,
    bidirectional: f.bidirectional, projectionSize: P, using: &rng)
  #expect(layer.namedParameters.map(\.name) == f.parameter_names, "\(label): parameter order")
  assignParameters(&layer, f.parameters)
  let D = f.bidirectional ? 2 : 1
  let T = f.length
  let B = f.batch
  let H = f.hidden_size
  let Hs = P > 0 ? P : H  // h's width
  let stateShape = [f.layers * D, B, Hs]
  let cellShape = [f.layers * D, B, H]
  let x = Tensor(shape: [T, B, f.input_size], scalars: f.x)
  let initial = RecurrentState(
    hidden: Tensor(shape: stateShape, scalars: f.h0),
    cell: f.c0.map { Tensor(shape: cellShape, scalars: $0) })
  for threads in [1, 2] {
    let compute = Compute(threads: threads)
    let (output, state, trace) = layer.forward(
      x, initialState: initial, training: false, using: &rng, compute: compute)
    expectClose(output.scalars, f.output, rtol: 1e-5, atol: 1e-6, "\(label): output")
    expectClose(state.hidden.scalars, f.h_n, rtol: 1e-5, atol: 1e-6, "\(label): h_n")
    if let cn = f.c_n { expectClose(state.cell?.scalars ?? [], cn, rtol: 1e-5, atol: 1e-6, "\(label): c_n") }

    var gradient = layer.zeroGradient
    let (dx, dState) = layer.backward(
      trace, outputGradient: Tensor(shape: [T, B, D * Hs], scalars: f.grad_output),
      stateGradient: RecurrentState(
        hidden: Tensor(shape: stateShape, scalars: f.grad_h_n),
        cell: f.grad_c_n.map { Tensor(shape: cellShape, scalars: $0) }),
      into: &gradient, compute: compute)
    expectClose(dx.scalars, f.grad_x, rtol: 1e-4, atol: 1e-5, "\(label): grad x")
    expectClose(dState.hidden.scalars, f.grad_h0, rtol: 1e-4, atol: 1e-5, "\(label): grad h0")
    if let gc0 = f.grad_c0 {
      expectClose(dState.cell?.scalars ?? [], gc0, rtol: 1e-4, atol: 1e-5, "\(label): grad c0")
    }
    for (name, tensor) in gradient.namedParameters {
      expectClose(tensor.scalars, f.grad_parameters[name] ?? [], rtol: 1e-4, atol: 1e-5, "\(label): grad \(name)")
    }
  }
}
