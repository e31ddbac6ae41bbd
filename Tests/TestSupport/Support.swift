import Foundation
import Testing

import Recurrent
import TensorCore

/// Loads a committed JSON fixture from a test target's Fixtures folder (pass `Bundle.module`).
public func loadFixture<T: Decodable>(_ name: String, as type: T.Type, in bundle: Bundle) throws -> T {
  guard let url = bundle.url(forResource: name, withExtension: "json", subdirectory: "Fixtures")
  else { throw CocoaError(.fileNoSuchFile) }
  return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
}

/// A new empty folder under the temporary directory.
public func temporaryFolder(_ label: String = "test") -> String {
  let path = NSTemporaryDirectory() + "recurrent-\(label)-\(UUID().uuidString)"
  try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

/// Elementwise |actual - expected| <= atol + rtol·|expected| (numpy's allclose), with the
/// worst offender in the failure message.
public func expectClose(
  _ actual: [Float], _ expected: [Float], rtol: Float, atol: Float, _ label: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(actual.count == expected.count, "\(label): \(actual.count) values, expected \(expected.count)",
    sourceLocation: sourceLocation)
  guard actual.count == expected.count else { return }
  var worst: Float = 0
  var worstIndex = -1
  for i in actual.indices {
    let excess = abs(actual[i] - expected[i]) - (atol + rtol * abs(expected[i]))
    if !(excess <= worst) {
      worst = excess.isNaN ? .infinity : excess
      worstIndex = i
    }
  }
  #expect(worstIndex < 0,
    "\(label): index \(worstIndex) is \(worstIndex >= 0 ? actual[worstIndex] : 0), expected \(worstIndex >= 0 ? expected[worstIndex] : 0)",
    sourceLocation: sourceLocation)
}

/// Sets parameters of `model` by name; every name must be present.
public func assignParameters<M: Parameterized>(_ model: inout M, _ values: [String: [Float]]) {
  model.forEachParameter { name, tensor in
    guard let v = values[name] else {
      Issue.record("fixture lacks parameter \(name)")
      return
    }
    tensor = Tensor(shape: tensor.shape, scalars: v)
  }
}

/// Central finite differences of `loss` with respect to selected entries of a tensor.
public func numericGradient(
  of tensor: Tensor, indices: [Int], epsilon: Float = 1e-2, loss: (Tensor) -> Double
) -> [Float] {
  indices.map { i in
    var plus = tensor
    var minus = tensor
    plus.scalars[i] += epsilon
    minus.scalars[i] -= epsilon
    return Float((loss(plus) - loss(minus)) / (2 * Double(epsilon)))
  }
}

/// Sum of elementwise products in Double: a scalar loss with a known gradient (`weights`).
public func projection(_ t: Tensor, _ weights: Tensor) -> Double {
  var s: Double = 0
  for i in 0..<t.count { s += Double(t.scalars[i]) * Double(weights.scalars[i]) }
  return s
}

/// A few indices spread over `count` entries, always including the first and last.
public func sampleIndices(_ count: Int, _ n: Int = 6) -> [Int] {
  guard count > n else { return Array(0..<count) }
  return (0..<n).map { $0 * (count - 1) / (n - 1) }
}

/// The bundled corpus, Data/tinyshakespeare.txt in the repository.
public func bundledCorpus() -> String {
  URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Data/tinyshakespeare.txt").path
}

/// Compares `analytic` (the gradient entries at `indices` of `tensor`) with central
/// differences (the two step sizes' Richardson extrapolation), counting only entries where
/// differences at the two step sizes (1e-2, 2.5e-3) agree:
/// a unit on a kink (ReLU) makes them disagree, and such entries are skipped and counted.
/// `agreement`: the relative disagreement above which an entry counts as on a kink; a weak kink
/// (the min cells' g, whose slope goes from 1/4 to 1) needs less than the default.
/// - Returns: how many entries were skipped.
@discardableResult
public func expectCloseWhereSmooth(
  _ analytic: [Float], of tensor: Tensor, indices: [Int], rtol: Float, atol: Float, _ label: String,
  agreement: Float = 1e-2, loss: (Tensor) -> Double, sourceLocation: SourceLocation = #_sourceLocation
) -> Int {
  let coarse = numericGradient(of: tensor, indices: indices, epsilon: 1e-2, loss: loss)
  let fine = numericGradient(of: tensor, indices: indices, epsilon: 2.5e-3, loss: loss)
  var (a, n): ([Float], [Float]) = ([], [])
  var skipped = 0
  for i in indices.indices {
    if abs(coarse[i] - fine[i]) > agreement * max(1, abs(coarse[i])) {
      skipped += 1
      continue
    }
    a.append(analytic[i])
    // Richardson's extrapolation of the two central differences cancels their ε² error (a layer
    // norm's curvature makes it visible at ε = 1e-2).
    n.append((4 * fine[i] - coarse[i]) / 3)
  }
  expectClose(a, n, rtol: rtol, atol: atol, label, sourceLocation: sourceLocation)
  return skipped
}

/// Whether a cell's function has kinks, where finite differences straddle two slopes: ReLU, and
/// the min cells' g(x) (x + 0.5 for x >= 0, sigmoid(x) below: continuous, its slope jumps at 0).
/// Such cells' finite-difference tests skip entries on a kink (up to half) and detect weak
/// kinks with `kinkAgreement`.
public func hasKinks(_ kind: CellKind) -> Bool { kind == .rnnRelu || kind == .minGRU || kind == .minLSTM }

/// `expectCloseWhereSmooth`'s `agreement` for `kind`: 2e-3 for the min cells' weak kink.
public func kinkAgreement(_ kind: CellKind) -> Float { kind == .minGRU || kind == .minLSTM ? 2e-3 : 1e-2 }

/// For each parameter of `model` (in `forEachParameter` order), calls `check` with `samples`
/// entries of its analytic gradient (from `gradient`, a model-shaped accumulator), the tensor,
/// the entries' indices, its name, and the loss as a function of that tensor alone (`loss` of a
/// copy of `model` with it replaced): what `expectCloseWhereSmooth` takes.
public func forEachParameterGradient<M: Parameterized>(
  of model: M, gradient: M, samples: Int,
  _ check: ([Float], Tensor, [Int], String, (Tensor) -> Double) -> Void, loss: (M) -> Double
) {
  let grads = gradient.namedParameters
  var position = 0
  var walker = model
  withoutActuallyEscaping(loss) { loss in
    walker.forEachParameter { name, tensor in
      let analytic = grads[position].tensor
      position += 1
      let indices = sampleIndices(tensor.count, samples)
      check(indices.map { analytic.scalars[$0] }, tensor, indices, name) { perturbed in
        var probe = model
        probe.forEachParameter { n, t in if n == name { t = perturbed } }
        return loss(probe)
      }
    }
  }
}
