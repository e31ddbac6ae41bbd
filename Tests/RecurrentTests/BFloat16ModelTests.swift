import Testing
import TestSupport

import Recurrent
import TensorCore

// bf16 through a whole model: the forward pass (GEMM path, with the pre-packed recurrent
// product) and the stepper (generation's matrix-vector path) in bf16 stay near float32, the
// native kernels agree with the emulation (operands rounded, float32 kernels) to float32
// accumulation error, and the stepper stays batch-invariant in bf16.

private let computes: [(String, Compute)] = {
  [("emulated", Compute(threads: 2, emulatingBFloat16: ()))]
    + (Precision.bfloat16IsSupported ? [("native", Compute(threads: 2, precision: .bfloat16))] : [])
}()

@Test(arguments: [CellKind.gru, .lstm, .rnnTanh])
func bf16ForwardAndStepperStayNearFloat32(kind: CellKind) {
  var rng = SplitMix64(seed: 5)
  let model = LanguageModel(
    LanguageModelConfiguration(cell: kind, layers: 2, hiddenSize: 45, embeddingSize: 19, vocabularySize: 37), using: &rng)
  let ids = (0..<(8 * 6)).map { ($0 * 7 + 3) % 37 }
  let (reference, _) = model.logits(ids: ids, sequenceLength: 8, batchSize: 6, compute: Compute(threads: 2))
  var results: [String: Tensor] = [:]
  for (name, compute) in computes {
    let (logits, _) = model.logits(ids: ids, sequenceLength: 8, batchSize: 6, compute: compute)
    let drift = logits.maxAbsoluteDifference(reference)
    #expect(drift < 0.05, "\(kind) \(name): bf16 logits drift \(drift) from float32")
    #expect(drift > 0, "\(kind) \(name): no rounding seen")
    results[name] = logits
  }
  if let native = results["native"], let emulated = results["emulated"] {
    #expect(native.maxAbsoluteDifference(emulated) < 1e-4, "\(kind): native and emulated bf16 differ")
  }
  // The stepper in bf16: near its float32 self, and the same bits alone or in a batch.
  let stream = (0..<10).map { ($0 * 5 + 2) % 37 }
  let f32 = LanguageModelStepper(model)
  let expected = stream.map { Array(f32.step($0)) }
  for (name, compute) in computes {
    var one = compute
    one.threads = 1
    let alone = LanguageModelStepper(model, compute: one)
    let batched = LanguageModelStepper(model, capacity: 5, compute: compute)
    for (t, token) in stream.enumerated() {
      let logits = Array(alone.step(token))
      let drift = zip(logits, expected[t]).map { abs($0 - $1) }.max() ?? 0
      #expect(drift < 0.05, "\(kind) \(name) step \(t): \(drift)")
      let both = batched.step(tokens: [token, 1, 2, 3, 4])  // beside four other streams
      #expect(Array(both[0..<37]) == logits, "\(kind) \(name) step \(t): batch changed the logits")
    }
  }
}
