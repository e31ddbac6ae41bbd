import CKernels
import TensorCore

/// Runs a language model one token at a time, for generation and serving: matrix-vector
/// products over the weights in place, the same fused step kernels as training, and no
/// allocation per token. Holds its own copy of the weights and the state of `capacity` rows
/// (streams); a step advances rows `0..<n` together, sharing each load of the weights.
///
/// Batch-invariant: a row's logits and state are bit for bit the same whatever `n` is, which
/// row it is, and what the other rows hold (the products are `rc_sgemv_batch`, whose per-row
/// arithmetic does not depend on the batch, and the pointwise kernels work row by row). So a
/// stream served beside 63 others gives the very tokens `recurrent generate` gives.
public final class LanguageModelStepper: @unchecked Sendable {
  /// The sizes of the model the weights came from.
  public let configuration: LanguageModelConfiguration
  /// Rows (streams) the stepper holds a state for.
  public let capacity: Int
  struct Layer {
    let inputSize: Int
    let wih, whh: StepMatrix
    let bih, bhh: FloatBuffer
    let own: FloatBuffer?  // the cell's own parameters (peepholes)
    let whr: StepMatrix?  // a projected LSTM's W_hr [P, H]
  }
  let embedding: FloatBuffer  // [V, E]
  let layers: [Layer]
  let decoderWeight: StepMatrix  // [V, H]
  let decoderBias: FloatBuffer  // [V]
  let hidden: [FloatBuffer]  // [capacity, Hs] per layer (Hs: P when projected, else H)
  let cell: [FloatBuffer]  // [capacity, H] per layer (LSTM)
  let input, nextHidden, nextCell, gx, gh, saved: FloatBuffer
  /// Logits `[capacity, V]`: rows `0..<n` after a step of `n` rows.
  public let logits: FloatBuffer
  let threads: Int32
  let portable: Int32
  /// The cell's table entry, and each recurrent block's first gate row and rows (× H).
  let kernels: CellKernels
  let blocks: [(offset: Int, width: Int)]
  /// Zoneout at inference: `h = p·h_prev + (1-p)·h_new` (0: none).
  let zoneout: Float

  /// A stepper holding a copy of `model`'s weights and a zero state for `capacity` rows.
  /// `portableKernels`: the C fallback products even where AVX2+FMA is available (tests).
  public init(_ model: LanguageModel, capacity: Int = 1, compute: Compute = .singleThread, portableKernels: Bool = false) {
    precondition(capacity >= 1, "LanguageModelStepper: capacity must be at least 1")
    configuration = model.configuration
    self.capacity = capacity
    let c = configuration
    let H = c.hiddenSize
    let Hs = c.stateSize
    let GH = c.cell.gateCount * H
    embedding = FloatBuffer(model.encoder.weight)
    layers = model.rnn.weights.enumerated().map { index, w in
      Layer(
        inputSize: index == 0 ? c.embeddingSize : Hs, wih: StepMatrix(w.weightIH, compute: compute),
        whh: StepMatrix(w.weightHH, compute: compute), bih: FloatBuffer(w.biasIH), bhh: FloatBuffer(w.biasHH),
        own: w.cellParameters.map { FloatBuffer($0) }, whr: w.projection.map { StepMatrix($0, compute: compute) })
    }
    decoderWeight = StepMatrix(c.tied ? model.encoder.weight : model.decoder.weight, compute: compute)
    decoderBias = FloatBuffer(model.decoder.bias ?? Tensor(zeros: [c.vocabularySize]))
    hidden = (0..<c.layers).map { _ in FloatBuffer(count: capacity * Hs) }
    cell = (0..<c.layers).map { _ in FloatBuffer(count: c.cell.hasCellState ? capacity * H : 0) }
    input = FloatBuffer(count: capacity * c.embeddingSize)
    nextHidden = FloatBuffer(count: capacity * (H + Hs))  // the cell's output, then (projected) the new h
    nextCell = FloatBuffer(count: capacity * H)
    gx = FloatBuffer(count: capacity * GH)
    gh = FloatBuffer(count: capacity * GH)
    saved = FloatBuffer(count: capacity * max(1, c.cell.savedSlots) * H)
    logits = FloatBuffer(count: capacity * c.vocabularySize)
    threads = Int32(compute.threads)
    portable = portableKernels ? 1 : 0
    kernels = c.cell.kernels
    blocks = kernels.blocks.map { (offset: $0.gates.lowerBound * H, width: $0.gates.count * H) }
    zoneout = model.rnn.zoneout
  }

  /// Back to the zero state, every row.
  public func reset() {
    for b in hidden { b.zero() }
    for b in cell { b.zero() }
  }

  /// Row `row` back to the zero state.
  public func reset(row: Int) {
    precondition(row >= 0 && row < capacity, "LanguageModelStepper: row \(row) outside 0..<\(capacity)")
    let (H, Hs) = (configuration.hiddenSize, configuration.stateSize)
    for b in hidden { (b.pointer + row * Hs).update(repeating: 0, count: Hs) }
    for b in cell where b.count > 0 { (b.pointer + row * H).update(repeating: 0, count: H) }
  }

  /// Copies row `from`'s state into row `to` (to keep the active rows first).
  public func copyRow(_ from: Int, to: Int) {
    precondition(from >= 0 && from < capacity && to >= 0 && to < capacity, "LanguageModelStepper: rows outside 0..<\(capacity)")
    guard from != to else { return }
    let (H, Hs) = (configuration.hiddenSize, configuration.stateSize)
    for b in hidden { (b.pointer + to * Hs).update(from: b.pointer + from * Hs, count: Hs) }
    for b in cell where b.count > 0 { (b.pointer + to * H).update(from: b.pointer + from * H, count: H) }
  }

  /// Row 0's state, `[L, 1, H]`, as `RecurrentLayer` returns it.
  public var state: RecurrentState { state(row: 0) }

  /// Row `row`'s state, `[L, 1, H]`.
  public func state(row: Int) -> RecurrentState {
    let (H, Hs) = (configuration.hiddenSize, configuration.stateSize)
    let L = configuration.layers
    var h = [Float]()
    var c = [Float]()
    for l in 0..<L {
      h += UnsafeBufferPointer(start: hidden[l].pointer + row * Hs, count: Hs)
      if configuration.cell.hasCellState { c += UnsafeBufferPointer(start: cell[l].pointer + row * H, count: H) }
    }
    return RecurrentState(
      hidden: Tensor(shape: [L, 1, Hs], scalars: h),
      cell: configuration.cell.hasCellState ? Tensor(shape: [L, 1, H], scalars: c) : nil)
  }

  /// Feeds one token to row 0; returns the logits `[V]` for the next one (valid until the next
  /// call).
  @discardableResult
  public func step(_ token: Int) -> UnsafeBufferPointer<Float> {
    step(rows: 1) { _ in token }
  }

  /// Feeds `tokens[i]` to row `i` for every `i < tokens.count` (at most `capacity`); returns the
  /// logits `[tokens.count, V]` for each row's next token (valid until the next call).
  @discardableResult
  public func step(tokens: [Int]) -> UnsafeBufferPointer<Float> {
    step(rows: tokens.count) { tokens[$0] }
  }

  func step(rows n: Int, token tokenOfRow: (Int) -> Int) -> UnsafeBufferPointer<Float> {
    let c = configuration
    precondition(n >= 1 && n <= capacity, "LanguageModelStepper: \(n) rows for a capacity of \(capacity)")
    let H = c.hiddenSize
    let Hs = c.stateSize
    let E = c.embeddingSize
    let GH = c.cell.gateCount * H
    for row in 0..<n {
      let token = tokenOfRow(row)
      precondition(token >= 0 && token < c.vocabularySize, "LanguageModelStepper: token \(token) outside 0..<\(c.vocabularySize)")
      (input.pointer + row * E).update(from: embedding.pointer + token * E, count: E)
    }
    var x = UnsafePointer(input.pointer)
    let (blocks, threads, portable, ghp) = (self.blocks, self.threads, self.portable, gh.pointer)
    for (l, layer) in layers.enumerated() {
      let h = hidden[l].pointer
      let layerNorm = kernels.layerNorm
      for row in 0..<n {
        if layerNorm {
          (gx.pointer + row * GH).update(repeating: 0, count: GH)
        } else {
          (gx.pointer + row * GH).update(from: layer.bih.pointer, count: GH)
        }
      }
      layer.wih.multiply(rows: 0..<GH, threads: threads, portable: portable, x, ldx: layer.inputSize, into: gx.pointer, ldy: GH, n: n)
      if layerNorm, let gamma = layer.own?.pointer {
        // gx = LN(W_ih·x)⊙γx + b_ih, as the layer's sweep computes it.
        for row in 0..<n {
          let r = gx.pointer + row * GH
          _ = layerNormRow(r, n: GH, normalized: r)
          for j in 0..<GH { r[j] = r[j] * gamma[j] + layer.bih.pointer[j] }
        }
      }
      let (whh, bhh) = (layer.whh, layer.bhh.pointer)
      let hasCell = kernels.hasCellState
      var s = ForwardStep(
        gx: gx.pointer, gh: ghp, hPrev: h, hNext: nextHidden.pointer,
        cPrev: hasCell ? UnsafePointer(cell[l].pointer) : nil, cNext: hasCell ? nextCell.pointer : nil,
        saved: saved.pointer, rows: n, hidden: H)
      s.parameters = layer.own.map { UnsafePointer($0.pointer) }
      if layerNorm { s.recurrentBias = UnsafePointer(bhh) }
      (kernels.sequentialForward ?? kernels.forward)(s) { index, operand, lda in
        // The recurrent product: one batch-invariant matrix-vector product per block and row.
        let (offset, width) = blocks[index]
        for row in 0..<n {
          if layerNorm {
            (ghp + row * GH + offset).update(repeating: 0, count: width)  // b_hh comes after the norm
          } else {
            (ghp + row * GH + offset).update(from: bhh + offset, count: width)
          }
        }
        let ld = kernels.blocks[index].operand == .hidden ? Hs : lda  // h is Hs wide
        whh.multiply(rows: offset..<(offset + width), threads: threads, portable: portable, operand, ldx: ld, into: ghp + offset, ldy: GH, n: n)
      }
      if hasCell { cell[l].pointer.update(from: nextCell.pointer, count: n * H) }
      var next = nextHidden.pointer
      if let whr = layer.whr {
        // Projected: the new h = W_hr·(o⊙tanh c), into the second part of nextHidden.
        next = nextHidden.pointer + capacity * H
        next.update(repeating: 0, count: n * Hs)
        whr.multiply(rows: 0..<Hs, threads: threads, portable: portable, nextHidden.pointer, ldx: H, into: next, ldy: Hs, n: n)
      }
      if zoneout > 0 {
        let p = zoneout  // as RecurrentLayer at inference
        for i in 0..<(n * Hs) { h[i] = p * h[i] + (1 - p) * next[i] }
      } else {
        h.update(from: next, count: n * Hs)
      }
      x = UnsafePointer(h)
    }
    let V = c.vocabularySize
    for row in 0..<n { (logits.pointer + row * V).update(from: decoderBias.pointer, count: V) }
    decoderWeight.multiply(rows: 0..<V, threads: threads, portable: portable, x, ldx: Hs, into: logits.pointer, ldy: V, n: n)
    return UnsafeBufferPointer(start: logits.pointer, count: n * V)
  }
}

/// A weight matrix `[rows, cols]` as the stepper's products read it: float32, or (precision
/// bf16) stored once as bf16, two per 32-bit word, for `rc_sgemv_bf16`; emulated bf16 keeps
/// float32 values rounded to bf16 and rounds each input vector (tests, any CPU).
struct StepMatrix {
  let rows: Int
  let cols: Int
  let storage: FloatBuffer
  let compute: Compute

  init(_ weight: Tensor, compute: Compute) {
    precondition(weight.rank == 2, "StepMatrix: rank-2 weights only")
    (rows, cols) = (weight.shape[0], weight.shape[1])
    self.compute = compute
    switch (compute.precision, compute.emulatesBFloat16) {
    case (.float32, _):
      storage = FloatBuffer(weight)
    case (.bfloat16, true):
      storage = FloatBuffer(Tensor(shape: weight.shape, scalars: weight.scalars.map { rc_round_bf16($0) }))
    case (.bfloat16, false):
      storage = FloatBuffer(uninitializedCount: (weight.count + 1) / 2)
      storage.pointer.withMemoryRebound(to: UInt16.self, capacity: weight.count) { dst in
        weight.withPointer { rc_convert_bf16($0, dst, weight.count) }
      }
    }
  }

  /// `y_v[r - rows.lowerBound] += W[r]·x_v` for the rows in `rows` and vectors `v < n`.
  func multiply(
    rows range: Range<Int>, threads: Int32, portable: Int32, _ x: UnsafePointer<Float>, ldx: Int,
    into y: UnsafeMutablePointer<Float>, ldy: Int, n: Int
  ) {
    switch (compute.precision, compute.emulatesBFloat16) {
    case (.float32, _):
      rc_sgemv_batch(threads, portable, range.count, cols, storage.pointer + range.lowerBound * cols, cols, x, ldx, y, ldy, n)
    case (.bfloat16, true):
      var rounded = [Float](repeating: 0, count: n * cols)
      for v in 0..<n {
        for j in 0..<cols { rounded[v * cols + j] = rc_round_bf16(x[v * ldx + j]) }
      }
      rc_sgemv_batch(
        threads, portable, range.count, cols, storage.pointer + range.lowerBound * cols, cols, rounded, cols, y, ldy, n)
    case (.bfloat16, false):
      storage.pointer.withMemoryRebound(to: UInt16.self, capacity: rows * cols) { w in
        rc_sgemv_bf16(threads, range.count, cols, w + range.lowerBound * cols, cols, x, ldx, y, ldy, n)
      }
    }
  }
}
