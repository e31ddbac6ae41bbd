import CKernels
import TensorCore

/// Runs a language model one token at a time at batch 1, for generation: matrix-vector
/// products over the weights in place, the same fused step kernels as training, and no
/// allocation per token. Holds its own copy of the weights and the hidden state.
public final class LanguageModelStepper: @unchecked Sendable {
  /// The sizes of the model the weights came from.
  public let configuration: LanguageModelConfiguration
  struct Layer {
    let inputSize: Int
    let wih, whh, bih, bhh: FloatBuffer
  }
  let embedding: FloatBuffer  // [V, E]
  let layers: [Layer]
  let decoderWeight: FloatBuffer  // [V, H]
  let decoderBias: FloatBuffer  // [V]
  let hidden: [FloatBuffer]  // [H] per layer
  let cell: [FloatBuffer]  // [H] per layer (LSTM)
  let nextHidden, nextCell, gx, gh, saved: FloatBuffer
  /// Logits `[V]` after the last `step`.
  public let logits: FloatBuffer
  let threads: Int32
  /// The cell's table entry, and each recurrent block's first gate row and rows (× H).
  let kernels: CellKernels
  let blocks: [(offset: Int, width: Int)]

  /// A stepper holding a copy of `model`'s weights and a zero state.
  public init(_ model: LanguageModel, compute: Compute = .singleThread) {
    configuration = model.configuration
    let c = configuration
    let H = c.hiddenSize
    let GH = c.cell.gateCount * H
    embedding = FloatBuffer(model.encoder.weight)
    layers = model.rnn.weights.enumerated().map { index, w in
      Layer(
        inputSize: index == 0 ? c.embeddingSize : H, wih: FloatBuffer(w.weightIH), whh: FloatBuffer(w.weightHH),
        bih: FloatBuffer(w.biasIH), bhh: FloatBuffer(w.biasHH))
    }
    decoderWeight = FloatBuffer(c.tied ? model.encoder.weight : model.decoder.weight)
    decoderBias = FloatBuffer(model.decoder.bias ?? Tensor(zeros: [c.vocabularySize]))
    hidden = (0..<c.layers).map { _ in FloatBuffer(count: H) }
    cell = (0..<c.layers).map { _ in FloatBuffer(count: c.cell.hasCellState ? H : 0) }
    nextHidden = FloatBuffer(count: H)
    nextCell = FloatBuffer(count: H)
    gx = FloatBuffer(count: GH)
    gh = FloatBuffer(count: GH)
    saved = FloatBuffer(count: max(1, c.cell.savedSlots) * H)
    logits = FloatBuffer(count: c.vocabularySize)
    threads = Int32(compute.threads)
    kernels = c.cell.kernels
    blocks = kernels.blocks.map { (offset: $0.gates.lowerBound * H, width: $0.gates.count * H) }
  }

  /// Back to the zero state.
  public func reset() {
    for b in hidden { b.zero() }
    for b in cell { b.zero() }
  }

  /// The current state, `[L, 1, H]`, as `RecurrentLayer` returns it.
  public var state: RecurrentState {
    let H = configuration.hiddenSize
    let L = configuration.layers
    var h = [Float]()
    var c = [Float]()
    for l in 0..<L {
      h += UnsafeBufferPointer(start: hidden[l].pointer, count: H)
      if configuration.cell.hasCellState { c += UnsafeBufferPointer(start: cell[l].pointer, count: H) }
    }
    return RecurrentState(
      hidden: Tensor(shape: [L, 1, H], scalars: h),
      cell: configuration.cell.hasCellState ? Tensor(shape: [L, 1, H], scalars: c) : nil)
  }

  /// Feeds one token; returns the logits for the next one (valid until the next call).
  @discardableResult
  public func step(_ token: Int) -> UnsafeBufferPointer<Float> {
    let c = configuration
    precondition(token >= 0 && token < c.vocabularySize, "LanguageModelStepper: token \(token) outside 0..<\(c.vocabularySize)")
    let H = c.hiddenSize
    let GH = c.cell.gateCount * H
    var x = UnsafePointer(embedding.pointer + token * c.embeddingSize)
    let (blocks, threads, ghp) = (self.blocks, self.threads, gh.pointer)
    for (l, layer) in layers.enumerated() {
      let h = hidden[l].pointer
      gx.pointer.update(from: layer.bih.pointer, count: GH)
      rc_sgemv(threads, GH, layer.inputSize, layer.wih.pointer, layer.inputSize, x, gx.pointer)
      let (whh, bhh) = (layer.whh.pointer, layer.bhh.pointer)
      let hasCell = kernels.hasCellState
      kernels.forward(
        ForwardStep(
          gx: gx.pointer, gh: ghp, hPrev: h, hNext: nextHidden.pointer,
          cPrev: hasCell ? UnsafePointer(cell[l].pointer) : nil, cNext: hasCell ? nextCell.pointer : nil,
          saved: saved.pointer, rows: 1, hidden: H)
      ) { index, operand, _ in
        // The recurrent product at batch 1: a matrix-vector product per block of W_hh.
        let (offset, width) = blocks[index]
        (ghp + offset).update(from: bhh + offset, count: width)
        rc_sgemv(threads, width, H, whh + offset * H, H, operand, ghp + offset)
      }
      if hasCell { cell[l].pointer.update(from: nextCell.pointer, count: H) }
      h.update(from: nextHidden.pointer, count: H)
      x = UnsafePointer(h)
    }
    logits.pointer.update(from: decoderBias.pointer, count: c.vocabularySize)
    rc_sgemv(threads, c.vocabularySize, H, decoderWeight.pointer, H, x, logits.pointer)
    return UnsafeBufferPointer(start: logits.pointer, count: c.vocabularySize)
  }
}
