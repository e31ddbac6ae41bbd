import TensorCore

/// One direction of one layer over a whole sequence: what its forward and backward need.
/// The cell's own work comes from its entry in the cell table; the sweep owns the rest (the
/// input projections for all steps at once, the time loop, padding, the weight gradients).
///
/// Legend: T = steps, B = batch, H = hidden, G = gate blocks, S = saved slots · H, I = `width`.
struct Sweep {
  let cell: CellKernels
  let weights: RecurrentWeights
  let buffers: RecurrentTrace.Sweep
  let steps: Int
  let batch: Int
  let hidden: Int
  /// Input width of the layer.
  let width: Int
  /// Runs from the last step to the first (the backward direction of a bidirectional layer).
  let reverse: Bool
  /// Real steps of each batch row, nil when all are T.
  let lengths: [Int]?
  /// This direction's columns in the layer output `[T, B, stride]`.
  let column: Int
  let stride: Int
  let compute: Compute
  /// Zoneout of this sweep, nil for none.
  var zoneout: Zoneout? = nil

  /// Zoneout (Krueger et al. 2017, haste's form) on h: `h = d⊙h_prev + (1-d)⊙h_new`, where in
  /// training d is 1 (the unit keeps its previous value) with probability p and 0 otherwise,
  /// and at inference d = p, the expectation. Padded steps are left alone.
  enum Zoneout {
    /// `keep` `[T, B, H]` by time: d in {0, 1}; `fresh` `[T, B, H]` by processing step: h_new,
    /// which the cell's backward needs where h' differs from it.
    case training(keep: FloatBuffer, fresh: FloatBuffer)
    /// d = p everywhere.
    case inference(Float)
  }

  /// Rows of one chunk of a forward step (two 6-row panels: one GEMM tile high).
  static let chunkRows = 12

  /// The time index of processing step `step`.
  @inline(__always) func time(_ step: Int) -> Int { reverse ? steps - 1 - step : step }

  /// Whether row `row` is padding at time `t`.
  @inline(__always) func isPadding(_ t: Int, row: Int) -> Bool {
    if let lengths { return t >= lengths[row] }
    return false
  }

  /// Width of h: a projected LSTM's P, else H.
  var stateWidth: Int { weights.projection?.shape[0] ?? hidden }

  /// Offset of block `index`'s first column within a row of G*H gate values.
  func columnOffset(_ index: Int) -> Int { cell.blocks[index].gates.lowerBound * hidden }

  /// Columns of block `index`.
  func blockWidth(_ index: Int) -> Int { cell.blocks[index].gates.count * hidden }

  /// Forward over all steps: writes every step's output into `out` (`[T, B, stride]` at
  /// `column`) and the states into the buffers.
  /// - Parameters:
  ///   - x: `[T, B, I]` layer input.
  ///   - keep: keep every step's state and saved values for the backward.
  func forward(x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, keep: Bool) {
    let (T, B, H, Hs) = (steps, batch, hidden, stateWidth)
    let GH = cell.gateCount * H
    let S = cell.savedSlots * H
    let gx = buffers.gx.pointer
    // All input projections in one product: [T*B, I] x [I, G*H].
    let layerNorm = cell.layerNorm
    if !layerNorm { weights.biasIH.withPointer { broadcastRows($0, rows: T * B, columns: GH, into: gx, ld: GH) } }
    weights.weightIH.withPointer { wih in
      gemm(
        transposeA: false, transposeB: true, m: T * B, n: GH, k: width, a: x, lda: width,
        b: wih, ldb: width, beta: layerNorm ? 0 : 1, c: gx, ldc: GH, compute: compute)
    }
    if layerNorm, let normalized = buffers.normalizedInput, let rstd = buffers.inputRstd, let gains = weights.cellParameters {
      // Layer-normalised cells: gx = LN(x·W_ihᵀ)⊙γx + b_ih, each row over its G·H values.
      weights.biasIH.withPointer { bih in
        gains.withPointer { gamma in
          for r in 0..<(T * B) {
            let (row, xhat) = (gx + r * GH, normalized.pointer + r * GH)
            rstd.pointer[r] = layerNormRow(row, n: GH, normalized: xhat)
            for j in 0..<GH { row[j] = xhat[j] * gamma[j] + bih[j] }
          }
        }
      }
    }
    let ghBuffer = FloatBuffer(uninitializedCount: B * GH)  // the recurrent product, rows split by thread
    // Each block of W_hhᵀ packed once per sweep: every step's product streams contiguous panels.
    let packed = weights.weightHH.withPointer { whh in
      cell.blocks.indices.map { i in
        PackedMatrix(whh + columnOffset(i) * Hs, ldb: Hs, k: Hs, n: blockWidth(i), transposed: true, compute: compute)
      }
    }
    // A projected LSTM's W_hrᵀ [H, P], and where each step's o⊙tanh(c) goes before it.
    let projection = weights.projection.map { w in
      w.withPointer { PackedMatrix($0, ldb: H, k: H, n: Hs, transposed: true, compute: compute) }
    }
    let rawBase = buffers.raw?.pointer
    // The recurrence of each batch row is independent: each thread runs the whole time loop
    // on its own block of rows, so the loop needs no synchronisation per step.
    let offsets = cell.blocks.indices.map(columnOffset)
    let widths = cell.blocks.indices.map(blockWidth)
    let operandIsHidden = cell.blocks.map { $0.operand == .hidden }
    let (hs, cs, savedBase) = (buffers.hs.pointer, buffers.cs?.pointer, buffers.saved.pointer)
    let forwardStep = cell.forward
    let parts = RecurrentLayer.rowParts(batch: B, compute: compute)
    let own = weights.cellParameters.map { FloatBuffer($0) }  // the cell's own parameters, if any
    weights.biasHH.withPointer { bhh in
      parallelFor(parts: parts) { part in
        let b0 = B * part / parts
        let rows = B * (part + 1) / parts - b0
        for step in 0..<T {
          let t = time(step)
          let current = keep ? step : step % 2
          let next = keep ? step + 1 : (step + 1) % 2
          let hPrev = hs + current * B * Hs + b0 * Hs
          let hNext = hs + next * B * Hs + b0 * Hs
          let cPrev = cs.map { $0 + current * B * H + b0 * H }
          let cNext = cs.map { $0 + next * B * H + b0 * H }
          // The step in chunks of rows as tall as the GEMM tile: each chunk's gates go from the
          // product to the gate math while still in L1 (the whole block's `gh` would not be).
          for first in Swift.stride(from: 0, to: rows, by: Sweep.chunkRows) {
            let count = min(Sweep.chunkRows, rows - first)
            let gh = ghBuffer.pointer + (b0 + first) * GH
            // Projected: the cell writes o⊙tanh(c) [count, H], and h' = that·W_hrᵀ after it.
            let raw = rawBase.map { $0 + ((keep ? step : 0) * B + b0 + first) * H }
            var s = ForwardStep(
              gx: gx + (t * B + b0 + first) * GH, gh: gh, hPrev: hPrev + first * Hs, hNext: raw ?? hNext + first * H,
              cPrev: cPrev.map { UnsafePointer($0 + first * H) }, cNext: cNext.map { $0 + first * H },
              saved: savedBase + ((keep ? step : 0) * B + b0 + first) * S, rows: count, hidden: H)
            s.parameters = own.map { UnsafePointer($0.pointer) }
            if layerNorm { s.recurrentBias = bhh }
            forwardStep(s) { index, operand, lda in
              let offset = offsets[index]
              // The layer-normalised cells add b_hh themselves, after normalising.
              if !layerNorm { broadcastRows(bhh + offset, rows: count, columns: widths[index], into: gh + offset, ld: GH) }
              // The previous state is Hs wide (the cells pass H, which it is unless projected).
              let ld = operandIsHidden[index] ? Hs : lda
              packed[index].multiply(operand, lda: ld, m: count, beta: layerNorm ? 0 : 1, into: gh + offset, ldc: GH)
            }
            if let projection, let raw {
              projection.multiply(raw, lda: H, m: count, beta: 0, into: hNext + first * Hs, ldc: Hs)
            }
          }
          for b in 0..<rows {
            let o = out + (t * B + b0 + b) * stride + column
            if isPadding(t, row: b0 + b) {
              // Padding: the state passes through unchanged and the output is zero.
              (hNext + b * Hs).update(from: hPrev + b * Hs, count: Hs)
              if let cPrev, let cNext { (cNext + b * H).update(from: cPrev + b * H, count: H) }
              o.update(repeating: 0, count: Hs)
            } else {
              if let zoneout { zone(zoneout, hPrev: hPrev + b * Hs, hNext: hNext + b * Hs, t: t, step: step, row: b0 + b) }
              o.update(from: hNext + b * Hs, count: Hs)
            }
          }
        }
      }
    }
  }

  /// Zoneout of one row's new state `hNext` `[H]` in place (see `Zoneout`).
  @inline(__always)
  func zone(_ zoneout: Zoneout, hPrev: UnsafePointer<Float>, hNext: UnsafeMutablePointer<Float>, t: Int, step: Int, row: Int) {
    let H = stateWidth
    switch zoneout {
    case .training(let keep, let fresh):
      (fresh.pointer + (step * batch + row) * H).update(from: hNext, count: H)
      let d = keep.pointer + (t * batch + row) * H
      for j in 0..<H { hNext[j] = d[j] * hPrev[j] + (1 - d[j]) * hNext[j] }
    case .inference(let p):
      for j in 0..<H { hNext[j] = p * hPrev[j] + (1 - p) * hNext[j] }
    }
  }

  /// Backward of `forward`: adds the weight gradients into `g`, writes ∂/∂x into `dx` and
  /// ∂/∂(initial state) into `dh0`/`dc0`.
  /// - Parameters:
  ///   - dOut: ∂loss/∂output `[T, B, stride]` (this direction's columns are read).
  ///   - dhT, dcT: ∂loss/∂(final state) `[B, H]`, or nil for zero.
  func backward(
    x: UnsafePointer<Float>, dOut: UnsafePointer<Float>, dhT: UnsafePointer<Float>?, dcT: UnsafePointer<Float>?,
    dx: UnsafeMutablePointer<Float>, dh0: UnsafeMutablePointer<Float>, dc0: UnsafeMutablePointer<Float>?,
    into g: inout RecurrentWeights
  ) {
    let (T, B, H, Hs) = (steps, batch, hidden, stateWidth)
    let GH = cell.gateCount * H
    let S = cell.savedSlots * H
    let dgx = FloatBuffer(uninitializedCount: T * B * GH)  // by time, like gx; fully written
    let recurrent = !cell.blocks.isEmpty  // the min cells have no recurrent product, so no dgh
    let dgh = FloatBuffer(uninitializedCount: recurrent ? T * B * GH : 0)  // by processing step, like hs
    // Layer-normalised cells: ∂/∂(normalised gh + b_hh) by processing step, for b_hh's gradient.
    let dghPost = FloatBuffer(uninitializedCount: cell.layerNorm ? T * B * GH : 0)
    let dhA = FloatBuffer(count: B * Hs)
    let dhB = FloatBuffer(count: B * Hs)
    let dc = FloatBuffer(count: cell.hasCellState ? B * H : 0)
    let scratch = FloatBuffer(count: cell.hiddenBlocks.count < cell.blocks.count ? B * H : 0)
    // The cell's own parameters, and each step's and row's gradient of them (summed after the loop).
    let PH = cell.parameterBlocks * H
    let own = weights.cellParameters.map { FloatBuffer($0) }
    let dOwn = FloatBuffer(uninitializedCount: own != nil ? T * B * PH : 0)
    if let dhT { dhA.pointer.update(from: dhT, count: B * Hs) }
    // Projected: W_hr [P, H] as the right operand of dRaw = dh'·W_hr, and each step's dh' kept
    // for W_hr's gradient after the loop.
    let projection = weights.projection.map { w in
      w.withPointer { PackedMatrix($0, ldb: H, k: Hs, n: H, transposed: false, compute: compute) }
    }
    let dProjected = FloatBuffer(count: projection != nil ? T * B * Hs : 0)
    if let dcT { dc.pointer.update(from: dcT, count: B * H) }
    let parts = RecurrentLayer.rowParts(batch: B, compute: compute)
    // Each block of W_hh packed once as the right operand of the per-step products.
    let packed = weights.weightHH.withPointer { whh in
      cell.blocks.indices.map { i in
        PackedMatrix(whh + columnOffset(i) * Hs, ldb: Hs, k: blockWidth(i), n: Hs, transposed: false, compute: compute)
      }
    }
    let hiddenBlocks = cell.hiddenBlocks
    let offsets = cell.blocks.indices.map(columnOffset)
    let (hs, cs, savedBase) = (buffers.hs.pointer, buffers.cs?.pointer, buffers.saved.pointer)
    let backwardStep = cell.backward
    var zone: (keep: FloatBuffer, fresh: FloatBuffer)? = nil
    if case .training(let keep, let fresh) = zoneout { zone = (keep, fresh) }
    parallelFor(parts: parts) { part in
      let b0 = B * part / parts
      let rows = B * (part + 1) / parts - b0
      var d = dhA.pointer + b0 * Hs  // ∂/∂h of this step's output
      var dPrev = dhB.pointer + b0 * Hs  // becomes ∂/∂h of the step before
      // Projected: ∂/∂(o⊙tanh c) for the cell, and a place for its (zero) direct path to h.
      let dRaw = FloatBuffer(count: projection != nil ? rows * H : 0)
      let dRawPrev = FloatBuffer(count: projection != nil ? rows * H : 0)
      let dcRows = cell.hasCellState ? dc.pointer + b0 * H : nil
      // Zoneout: the share of ∂/∂h that goes straight to h_prev (d⊙dh), added after the step.
      let dKept = FloatBuffer(count: zone != nil ? rows * Hs : 0)
      // Padded rows keep their cell-state gradient through a step: saved here, restored after.
      let dcKept = FloatBuffer(count: lengths != nil && cell.hasCellState ? rows * H : 0)
      let product: BackwardProduct = { index, dghRows, into, beta in
        packed[index].multiply(dghRows + offsets[index], lda: GH, m: rows, beta: beta, into: into, ldc: Hs)
      }
      for step in (0..<T).reversed() {
        let t = time(step)
        for b in 0..<rows {
          if isPadding(t, row: b0 + b) {
            if let dcRows { (dcKept.pointer + b * H).update(from: dcRows + b * H, count: H) }
            continue  // a padded step's output is a constant zero
          }
          let row = dOut + (t * B + b0 + b) * stride + column
          for j in 0..<Hs { d[b * Hs + j] += row[j] }
        }
        let hPrev = hs + step * B * Hs + b0 * Hs
        let dgxt = dgx.pointer + (t * B + b0) * GH
        let dghs = dgh.pointer + (step * B + b0) * GH
        if let zone {
          // h = d⊙h_prev + (1-d)⊙h_new: h_new gets (1-d)⊙dh, h_prev d⊙dh (padded rows: none).
          for b in 0..<rows {
            let k = dKept.pointer + b * Hs
            if isPadding(t, row: b0 + b) {
              k.update(repeating: 0, count: Hs)
              continue
            }
            let keep = zone.keep.pointer + (t * B + b0 + b) * Hs
            for j in 0..<Hs {
              k[j] = keep[j] * d[b * Hs + j]
              d[b * Hs + j] -= k[j]
            }
          }
        }
        // With zoneout the cell's own new state (h_new) is not h' = hs[step + 1].
        var hNew: UnsafePointer<Float> =
          if let zone { UnsafePointer(zone.fresh.pointer + (step * B + b0) * Hs) } else { UnsafePointer(hPrev + B * Hs) }
        var dCell = UnsafePointer(d)
        if let projection, let raw = buffers.raw {
          // h' = raw·W_hrᵀ: keep dh' (padded rows: none) and give the cell dRaw = dh'·W_hr.
          let kept = dProjected.pointer + (step * B + b0) * Hs
          kept.update(from: d, count: rows * Hs)
          for b in 0..<rows where isPadding(t, row: b0 + b) { (kept + b * Hs).update(repeating: 0, count: Hs) }
          projection.multiply(d, lda: Hs, m: rows, beta: 0, into: dRaw.pointer, ldc: H)
          dCell = UnsafePointer(dRaw.pointer)
          hNew = UnsafePointer(raw.pointer + (step * B + b0) * H)
        }
        var s = BackwardStep(
          saved: savedBase + (step * B + b0) * S, hPrev: hPrev, hNext: hNew,
          cPrev: cs.map { UnsafePointer($0 + step * B * H + b0 * H) }, dh: dCell, dc: dcRows,
          dgx: dgxt, dgh: dghs, dhPrev: projection != nil ? dRawPrev.pointer : dPrev, scratch: scratch.pointer + b0 * H,
          rows: rows, hidden: H)
        let dOwnRows = own == nil ? nil : dOwn.pointer + (step * B + b0) * PH
        s.parameters = own.map { UnsafePointer($0.pointer) }
        s.parameterGradient = dOwnRows
        s.gx = UnsafePointer(buffers.gx.pointer + (t * B + b0) * GH)
        if cell.layerNorm { s.dghPost = dghPost.pointer + (step * B + b0) * GH }
        backwardStep(s, product)
        if projection != nil { dPrev.update(repeating: 0, count: rows * Hs) }  // an LSTM has no direct path
        if lengths != nil {
          // Padded steps are the identity on the state: the gradient passes straight through
          // and nothing reaches the gates or the weights.
          for b in 0..<rows where isPadding(t, row: b0 + b) {
            dOwnRows.map { ($0 + b * PH).update(repeating: 0, count: PH) }
            (dgxt + b * GH).update(repeating: 0, count: GH)
            if recurrent { (dghs + b * GH).update(repeating: 0, count: GH) }
            if cell.layerNorm { (dghPost.pointer + (step * B + b0 + b) * GH).update(repeating: 0, count: GH) }
            (dPrev + b * Hs).update(from: d + b * Hs, count: Hs)
            if let dcRows { (dcRows + b * H).update(from: dcKept.pointer + b * H, count: H) }
          }
        }
        if zone != nil {
          for i in 0..<(rows * Hs) { dPrev[i] += dKept.pointer[i] }
        }
        for index in hiddenBlocks { product(index, dghs, dPrev, 1) }  // dh += dgh·W_hh
        swap(&d, &dPrev)
      }
      (dh0 + b0 * Hs).update(from: d, count: rows * Hs)
      if let dc0, let dcRows { (dc0 + b0 * H).update(from: dcRows, count: rows * H) }
    }
    // Weight gradients as large products over all steps.
    g.biasIH.withMutablePointer { addColumnSums(dgx.pointer, rows: T * B, columns: GH, ld: GH, into: $0) }
    if cell.layerNorm, let normalized = buffers.normalizedInput, let rstd = buffers.inputRstd, let gains = weights.cellParameters {
      // gx = LN(x·W_ihᵀ)⊙γx + b_ih: γx's gradient Σ dgx⊙x̂, then dgx becomes ∂/∂(x·W_ihᵀ).
      g.cellParameters!.withMutablePointer { dGamma in
        gains.withPointer { gamma in
          for r in 0..<(T * B) {
            let (row, xhat) = (dgx.pointer + r * GH, normalized.pointer + r * GH)
            for j in 0..<GH { dGamma[j] += row[j] * xhat[j] }
            layerNormRowBackward(row, gain: gamma, normalized: xhat, rstd: rstd.pointer[r], n: GH, into: row)
          }
        }
      }
    }
    g.weightIH.withMutablePointer { gw in
      gemm(
        transposeA: true, transposeB: false, m: GH, n: width, k: T * B, a: dgx.pointer, lda: GH,
        b: x, ldb: width, beta: 1, c: gw, ldc: width, compute: compute)
    }
    g.weightHH.withMutablePointer { gw in
      for (index, block) in cell.blocks.enumerated() {
        let (operand, ld): (UnsafePointer<Float>, Int) =
          switch block.operand {
          case .hidden: (UnsafePointer(buffers.hs.pointer), Hs)
          case .saved(let slot): (UnsafePointer(buffers.saved.pointer + slot * H), S)
          }
        let offset = columnOffset(index)
        gemm(
          transposeA: true, transposeB: false, m: blockWidth(index), n: Hs, k: T * B, a: dgh.pointer + offset,
          lda: GH, b: operand, ldb: ld, beta: 1, c: gw + offset * Hs, ldc: Hs, compute: compute)
      }
    }
    if recurrent {
      let post = cell.layerNorm ? dghPost.pointer : dgh.pointer
      g.biasHH.withMutablePointer { addColumnSums(post, rows: T * B, columns: GH, ld: GH, into: $0) }
    }
    if projection != nil, let raw = buffers.raw {
      // ∂W_hr [P, H] = Σ_steps dh'ᵀ·raw.
      g.projection!.withMutablePointer { gw in
        gemm(
          transposeA: true, transposeB: false, m: Hs, n: H, k: T * B, a: dProjected.pointer, lda: Hs,
          b: raw.pointer, ldb: H, beta: 1, c: gw, ldc: H, compute: compute)
      }
    }
    if own != nil {
      g.cellParameters!.withMutablePointer { addColumnSums(dOwn.pointer, rows: T * B, columns: PH, ld: PH, into: $0) }
    }
    weights.weightIH.withPointer { wih in
      gemm(
        transposeA: false, transposeB: false, m: T * B, n: width, k: GH, a: dgx.pointer, lda: GH,
        b: wih, ldb: width, beta: 1, c: dx, ldc: width, compute: compute)
    }
  }
}
