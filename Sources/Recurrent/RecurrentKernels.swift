import CKernels
import TensorCore

// Fused pointwise step kernels, forward and backward side by side.
// Legend: B = batch, H = hidden, G = gate blocks (1 RNN, 4 LSTM, 3 GRU), S = saved slots.
// gx: [B, G*H] = x·W_ihᵀ + b_ih for one time step (computed for all steps at once).
// gh: [B, G*H] = h·W_hhᵀ + b_hh for this step.
// saved: [B, S*H], what the backward needs, in the order CellKind.savedSlots documents.
// dgx, dgh: [B, G*H] gradients of the pre-activations on the input and hidden side; they
// differ only where the hidden product is gated (GRU's n block).
// Backward kernels write dgx/dgh/dhPrev; the caller adds dgh·W_hh into dhPrev afterwards.
// These use the C library's expf/tanhf: they are the naive twins of the vectorised kernels in
// Sources/CKernels/pointwise_impl.inc, which the layers call (the reset-before GRU backward
// halves are used directly).

package typealias P = UnsafeMutablePointer<Float>
package typealias CP = UnsafePointer<Float>

@inline(__always) private func relu(_ x: Float) -> Float { x > 0 ? x : 0 }

/// Elman RNN: `h' = act(gx + gh)`. Nothing saved but h' itself.
package func rnnForward(relu useRelu: Bool, gx: CP, gh: CP, hNext: P, B: Int, H: Int) {
  for i in 0..<(B * H) {
    let pre = gx[i] + gh[i]
    hNext[i] = useRelu ? relu(pre) : tanh(pre)
  }
}

/// dpre = dh · act'(h'); dgx = dgh = dpre; no direct path to h.
package func rnnBackward(relu useRelu: Bool, hNext: CP, dh: CP, dgx: P, dgh: P, dhPrev: P, B: Int, H: Int) {
  for i in 0..<(B * H) {
    let h = hNext[i]
    let d = useRelu ? (h > 0 ? dh[i] : 0) : dh[i] * (1 - h * h)
    dgx[i] = d
    dgh[i] = d
    dhPrev[i] = 0
  }
}

/// LSTM, gates i|f|g|o: c' = f⊙c + i⊙g, h' = o⊙tanh(c'). Saves i, f, g, o, tanh(c').
/// With `peephole` p_i|p_f|p_o `[3H]` (Gers & Schmidhuber 2000; the peephole LSTM's kernel,
/// the naive twin of `rc_lstm_peephole_forward`): i = σ(·+ p_i⊙c), f = σ(·+ p_f⊙c),
/// o = σ(·+ p_o⊙c'), and c' is saved too (a sixth slot).
package func lstmForward(
  gx: CP, gh: CP, cPrev: CP, hNext: P, cNext: P, saved: P, B: Int, H: Int, peephole p: CP? = nil
) {
  let G = 4 * H
  let S = (p == nil ? 5 : 6) * H
  for b in 0..<B {
    let x = gx + b * G
    let h = gh + b * G
    let s = saved + b * S
    for j in 0..<H {
      let cp = cPrev[b * H + j]
      let i = sigmoid(x[j] + h[j] + (p.map { $0[j] * cp } ?? 0))
      let f = sigmoid(x[H + j] + h[H + j] + (p.map { $0[H + j] * cp } ?? 0))
      let g = tanh(x[2 * H + j] + h[2 * H + j])
      let c = f * cp + i * g
      let o = sigmoid(x[3 * H + j] + h[3 * H + j] + (p.map { $0[2 * H + j] * c } ?? 0))
      let tc = tanh(c)
      cNext[b * H + j] = c
      hNext[b * H + j] = o * tc
      s[j] = i
      s[H + j] = f
      s[2 * H + j] = g
      s[3 * H + j] = o
      s[4 * H + j] = tc
      if p != nil { s[5 * H + j] = c }
    }
  }
}

/// LSTM backward. `dc` holds ∂/∂c' on entry and ∂/∂c on exit (in place). With `peephole`,
/// `dPeephole` `[B, 3H]` gets each row's gradient of p_i|p_f|p_o (written, not added).
package func lstmBackward(
  saved: CP, cPrev: CP, dh: CP, dc: P, dgx: P, dgh: P, dhPrev: P, B: Int, H: Int, peephole p: CP? = nil,
  dPeephole: P? = nil
) {
  let G = 4 * H
  let S = (p == nil ? 5 : 6) * H
  for b in 0..<B {
    let s = saved + b * S
    let dx = dgx + b * G
    let dhh = dgh + b * G
    for j in 0..<H {
      let i = s[j]
      let f = s[H + j]
      let g = s[2 * H + j]
      let o = s[3 * H + j]
      let tc = s[4 * H + j]
      let k = b * H + j
      let dO = dh[k] * tc * o * (1 - o)
      let dct = dc[k] + dh[k] * o * (1 - tc * tc) + (p.map { dO * $0[2 * H + j] } ?? 0)
      let di = dct * g * i * (1 - i)
      let df = dct * cPrev[k] * f * (1 - f)
      let dg = dct * i * (1 - g * g)
      dx[j] = di
      dx[H + j] = df
      dx[2 * H + j] = dg
      dx[3 * H + j] = dO
      dhh[j] = di
      dhh[H + j] = df
      dhh[2 * H + j] = dg
      dhh[3 * H + j] = dO
      dc[k] = dct * f
      if let p, let dp = dPeephole.map({ $0 + b * 3 * H }) {
        dc[k] += di * p[j] + df * p[H + j]
        dp[j] = di * cPrev[k]
        dp[H + j] = df * cPrev[k]
        dp[2 * H + j] = dO * s[5 * H + j]
      }
      dhPrev[k] = 0
    }
  }
}

/// GRU, reset after the recurrent product, gates r|z|n:
/// n = tanh(gx_n + r⊙gh_n), h' = (1-z)⊙n + z⊙h. Saves r, z, n, gh_n.
package func gruForward(gx: CP, gh: CP, hPrev: CP, hNext: P, saved: P, B: Int, H: Int) {
  let G = 3 * H
  let S = 4 * H
  for b in 0..<B {
    let x = gx + b * G
    let h = gh + b * G
    let s = saved + b * S
    for j in 0..<H {
      let r = sigmoid(x[j] + h[j])
      let z = sigmoid(x[H + j] + h[H + j])
      let hn = h[2 * H + j]
      let n = tanh(x[2 * H + j] + r * hn)
      let k = b * H + j
      hNext[k] = (1 - z) * n + z * hPrev[k]
      s[j] = r
      s[H + j] = z
      s[2 * H + j] = n
      s[3 * H + j] = hn
    }
  }
}

package func gruBackward(saved: CP, hPrev: CP, dh: CP, dgx: P, dgh: P, dhPrev: P, B: Int, H: Int) {
  let G = 3 * H
  let S = 4 * H
  for b in 0..<B {
    let s = saved + b * S
    let dx = dgx + b * G
    let dhh = dgh + b * G
    for j in 0..<H {
      let r = s[j]
      let z = s[H + j]
      let n = s[2 * H + j]
      let hn = s[3 * H + j]
      let k = b * H + j
      let d = dh[k]
      let dnp = d * (1 - z) * (1 - n * n)
      let dzp = d * (hPrev[k] - n) * z * (1 - z)
      let drp = dnp * hn * r * (1 - r)
      dx[j] = drp
      dx[H + j] = dzp
      dx[2 * H + j] = dnp
      dhh[j] = drp
      dhh[H + j] = dzp
      dhh[2 * H + j] = dnp * r
      dhPrev[k] = d * z
    }
  }
}

/// GRU, reset before the recurrent product, first half: r and z from gh[:, 0..<2H], and
/// r⊙h into saved slot 3 (the operand of the W_hn product).
package func gruResetBeforeGates(gx: CP, gh: CP, hPrev: CP, saved: P, B: Int, H: Int) {
  let G = 3 * H
  let S = 4 * H
  for b in 0..<B {
    let x = gx + b * G
    let h = gh + b * G
    let s = saved + b * S
    for j in 0..<H {
      let r = sigmoid(x[j] + h[j])
      s[j] = r
      s[H + j] = sigmoid(x[H + j] + h[H + j])
      s[3 * H + j] = r * hPrev[b * H + j]
    }
  }
}

/// Second half: gh[:, 2H..<3H] = (r⊙h)·W_hnᵀ + b_hn is ready; n = tanh(gx_n + gh_n),
/// h' = (1-z)⊙n + z⊙h.
package func gruResetBeforeOutput(gx: CP, gh: CP, hPrev: CP, hNext: P, saved: P, B: Int, H: Int) {
  let G = 3 * H
  let S = 4 * H
  for b in 0..<B {
    let s = saved + b * S
    for j in 0..<H {
      let n = tanh(gx[b * G + 2 * H + j] + gh[b * G + 2 * H + j])
      let z = s[H + j]
      let k = b * H + j
      s[2 * H + j] = n
      hNext[k] = (1 - z) * n + z * hPrev[k]
    }
  }
}

/// Backward, first half: z and n blocks, and the direct path dh⊙z.
func gruResetBeforeBackwardOutput(
  saved: CP, hPrev: CP, dh: CP, dgx: P, dgh: P, dhPrev: P, B: Int, H: Int
) {
  let G = 3 * H
  let S = 4 * H
  for b in 0..<B {
    let s = saved + b * S
    for j in 0..<H {
      let z = s[H + j]
      let n = s[2 * H + j]
      let k = b * H + j
      let d = dh[k]
      let dnp = d * (1 - z) * (1 - n * n)
      let dzp = d * (hPrev[k] - n) * z * (1 - z)
      dgx[b * G + H + j] = dzp
      dgh[b * G + H + j] = dzp
      dgx[b * G + 2 * H + j] = dnp
      dgh[b * G + 2 * H + j] = dnp
      dhPrev[k] = d * z
    }
  }
}

/// Backward, second half: given d(r⊙h) = dgh_n·W_hn, the r block and r's share of dh.
func gruResetBeforeBackwardGates(
  saved: CP, hPrev: CP, dRH: CP, dgx: P, dgh: P, dhPrev: P, B: Int, H: Int
) {
  let G = 3 * H
  let S = 4 * H
  for b in 0..<B {
    let s = saved + b * S
    for j in 0..<H {
      let r = s[j]
      let k = b * H + j
      let drp = dRH[k] * hPrev[k] * r * (1 - r)
      dgx[b * G + j] = drp
      dgh[b * G + j] = drp
      dhPrev[k] += dRH[k] * r
    }
  }
}

// MARK: - minGRU / minLSTM (Feng et al. 2024, "Were RNNs All We Needed?")
// Gates from x only: gx [B, G*H], G = 2 (z|h, minGRU) or 3 (f|i|h, minLSTM); no recurrent
// product. g(x) = x + 0.5 for x >= 0, sigmoid(x) otherwise. Each step is h' = a⊙h + b with
// minGRU: a = 1 - z, b = z⊙g(k_h); minLSTM: a = f/(f+i), b = i/(f+i)⊙g(k_h).

@inline(__always) private func softplus(_ x: Float) -> Float { max(x, 0) + _log1p(_exp(-abs(x))) }

/// `(log a, log b)` of one unit from its gate pre-activations, the paper's log-space form.
@inline(__always) private func minLogCoefficients(lstm: Bool, _ x: CP, _ j: Int, H: Int) -> (Float, Float) {
  let kh = x[(lstm ? 2 : 1) * H + j]
  let logG = kh >= 0 ? _log(kh + 0.5) : -softplus(-kh)
  if lstm {
    let d = softplus(-x[j]) - softplus(-x[H + j])  // log(i/f)
    let sp = softplus(d)
    return (-sp, d - sp + logG)
  }
  let sp = softplus(x[j])
  return (-sp, x[j] - sp + logG)
}

/// One step of the parallel (training) form: `log h' = logaddexp(log a + log h, log b)`; a
/// state h <= 0 (only an initial state given from outside can be) steps in linear space.
/// Naive twin of `rc_min_forward`.
package func minForward(lstm: Bool, gx: CP, hPrev: CP, hNext: P, B: Int, H: Int) {
  let G = (lstm ? 3 : 2) * H
  for b in 0..<B {
    for j in 0..<H {
      let (logA, logB) = minLogCoefficients(lstm: lstm, gx + b * G, j, H: H)
      let h = hPrev[b * H + j]
      if h > 0 {
        let u = logA + _log(h)
        hNext[b * H + j] = _exp(max(u, logB) + _log1p(_exp(-abs(u - logB))))
      } else {
        hNext[b * H + j] = _exp(logA) * h + _exp(logB)
      }
    }
  }
}

/// One step of the sequential form, for generation and serving: `h' = a⊙h + b` in linear
/// space straight from the gates (the same function as `minForward`, computed another way).
package func minStep(lstm: Bool, gx: CP, hPrev: CP, hNext: P, B: Int, H: Int) {
  let G = (lstm ? 3 : 2) * H
  for b in 0..<B {
    let x = gx + b * G
    for j in 0..<H {
      let kh = x[(lstm ? 2 : 1) * H + j]
      let g = kh >= 0 ? kh + 0.5 : sigmoid(kh)
      let h = hPrev[b * H + j]
      if lstm {
        let (f, i) = (sigmoid(x[j]), sigmoid(x[H + j]))
        hNext[b * H + j] = (f * h + i * g) / (f + i)
      } else {
        let z = sigmoid(x[j])
        hNext[b * H + j] = (1 - z) * h + z * g
      }
    }
  }
}

/// Backward of a min cell's step: dgx `[B, G*H]` and dhPrev = dh⊙a. Twin of `rc_min_backward`.
package func minBackward(lstm: Bool, gx: CP, hPrev: CP, dh: CP, dgx: P, dhPrev: P, B: Int, H: Int) {
  let G = (lstm ? 3 : 2) * H
  for b in 0..<B {
    let x = gx + b * G
    let dx = dgx + b * G
    for j in 0..<H {
      let k = b * H + j
      let kh = x[(lstm ? 2 : 1) * H + j]
      let s = sigmoid(kh)
      let (g, dg) = kh >= 0 ? (kh + 0.5, Float(1)) : (s, s * (1 - s))
      let gap = g - hPrev[k]
      let d = dh[k]
      if lstm {
        let (f, i) = (sigmoid(x[j]), sigmoid(x[H + j]))
        let (fn, iN) = (f / (f + i), i / (f + i))
        let dd = d * fn * iN * gap  // ∂/∂log(i/f)
        dx[j] = -dd * (1 - f)
        dx[H + j] = dd * (1 - i)
        dx[2 * H + j] = d * iN * dg
        dhPrev[k] = d * fn
      } else {
        let z = sigmoid(x[j])
        dx[j] = d * gap * z * (1 - z)
        dx[H + j] = d * z * dg
        dhPrev[k] = d * (1 - z)
      }
    }
  }
}

// MARK: - Layer-normalised cells (haste's LayerNormGRU and LayerNormLSTM)
// LN(v) over the n values of a row: v̂ = (v - mean)·rstd with rstd = 1/√(var + 1e-5) (the
// biased variance, as PyTorch's F.layer_norm), then a gain γ (and for c a shift β).

/// The epsilon of every layer norm (PyTorch's `F.layer_norm` default).
package let layerNormEpsilon = 1e-5

/// Normalises `x[0..<n]` into `normalized` and returns rstd (mean and variance in Double).
@inline(__always)
package func layerNormRow(_ x: CP, n: Int, normalized: P) -> Float {
  var sum = 0.0
  for j in 0..<n { sum += Double(x[j]) }
  let mean = sum / Double(n)
  var squares = 0.0
  for j in 0..<n {
    let d = Double(x[j]) - mean
    squares += d * d
  }
  let rstd = 1 / (squares / Double(n) + layerNormEpsilon).squareRoot()
  for j in 0..<n { normalized[j] = Float((Double(x[j]) - mean) * rstd) }
  return Float(rstd)
}

/// Backward of `layerNormRow` through the gain: `dx = rstd·(dy - mean(dy) - v̂·mean(dy⊙v̂))`
/// with `dy = dOut⊙gain`; writes dx into `into` (which may be `dOut`).
@inline(__always)
package func layerNormRowBackward(_ dOut: CP, gain: CP, normalized: CP, rstd: Float, n: Int, into: P) {
  var meanDy = 0.0
  var meanDyX = 0.0
  for j in 0..<n {
    let dy = Double(dOut[j]) * Double(gain[j])
    meanDy += dy
    meanDyX += dy * Double(normalized[j])
  }
  meanDy /= Double(n)
  meanDyX /= Double(n)
  for j in 0..<n {
    let dy = Double(dOut[j]) * Double(gain[j])
    into[j] = Float(Double(rstd) * (dy - meanDy - Double(normalized[j]) * meanDyX))
  }
}

/// One step of a layer-normalised GRU (reset after, gates r|z|n): gh holds h·W_hhᵀ (no bias)
/// on entry; it becomes LN(gh)⊙γh + b_hh, then the GRU step. Saved per row: r, z, n, gh_n (the
/// GRU's four slots), the normalised product ĥ (3 slots) and its rstd (one slot, first value).
/// `gains` = γx (3H) | γh (3H).
package func gruLayerNormForward(
  gx: CP, gh: P, hPrev: CP, ldh: Int, hNext: P, saved: P, bias: CP, gains: CP, B: Int, H: Int
) {
  let (G, S) = (3 * H, 8 * H)
  for b in 0..<B {
    let s = saved + b * S
    let row = gh + b * G
    s[7 * H] = layerNormRow(row, n: G, normalized: s + 4 * H)
    for j in 0..<G { row[j] = s[4 * H + j] * gains[G + j] + bias[j] }
    rc_gru_forward(gx + b * G, row, hPrev + b * ldh, hNext + b * H, s, 1, H)
  }
}

/// Backward of `gruLayerNormForward`: dgx; dghPost = ∂/∂(LN(gh)⊙γh + b_hh) (b_hh's gradient);
/// dgh = ∂/∂(h·W_hhᵀ) (W_hh's and h's); dGains each row's γ gradient (γx's part 0: the sweep
/// adds it over all steps at once).
package func gruLayerNormBackward(
  saved: CP, hPrev: CP, ldh: Int, dh: CP, dgx: P, dghPost: P, dgh: P, dhPrev: P, gains: CP, dGains: P, B: Int, H: Int
) {
  let (G, S) = (3 * H, 8 * H)
  for b in 0..<B {
    let s = saved + b * S
    rc_gru_backward(s, hPrev + b * ldh, dh + b * H, dgx + b * G, dghPost + b * G, dhPrev + b * H, 1, H)
    let post = dghPost + b * G
    let dg = dGains + b * 2 * G
    for j in 0..<G {
      dg[j] = 0
      dg[G + j] = post[j] * s[4 * H + j]
    }
    layerNormRowBackward(post, gain: gains + G, normalized: s + 4 * H, rstd: s[7 * H], n: G, into: dgh + b * G)
  }
}

/// One step of a layer-normalised LSTM (gates i|f|g|o): gh as in `gruLayerNormForward`; then
/// c' = f⊙c + i⊙g and h' = o⊙tanh(LN(c')⊙γc + βc). Saved per row: i, f, g, o, tanh(y), ĉ, rstd_c
/// (one slot), ĥ (4 slots), rstd_h (one slot). `gains` = γx (4H) | γh (4H) | γc (H) | βc (H).
package func lstmLayerNormForward(
  gx: CP, gh: P, cPrev: CP, hNext: P, cNext: P, saved: P, bias: CP, gains: CP, B: Int, H: Int
) {
  let (G, S) = (4 * H, 12 * H)
  let (gammaC, betaC) = (gains + 2 * G, gains + 2 * G + H)
  for b in 0..<B {
    let s = saved + b * S
    let x = gx + b * G
    let row = gh + b * G
    s[11 * H] = layerNormRow(row, n: G, normalized: s + 7 * H)
    for j in 0..<G { row[j] = s[7 * H + j] * gains[G + j] + bias[j] }
    let c = cNext + b * H
    for j in 0..<H {
      let i = sigmoid(x[j] + row[j])
      let f = sigmoid(x[H + j] + row[H + j])
      let g = tanh(x[2 * H + j] + row[2 * H + j])
      let o = sigmoid(x[3 * H + j] + row[3 * H + j])
      c[j] = f * cPrev[b * H + j] + i * g
      (s[j], s[H + j], s[2 * H + j], s[3 * H + j]) = (i, f, g, o)
    }
    s[6 * H] = layerNormRow(c, n: H, normalized: s + 5 * H)
    for j in 0..<H {
      let t = tanh(s[5 * H + j] * gammaC[j] + betaC[j])
      s[4 * H + j] = t
      hNext[b * H + j] = s[3 * H + j] * t
    }
  }
}

/// Backward of `lstmLayerNormForward` (`dc` holds ∂/∂c' on entry and ∂/∂c on exit), with
/// dgx, dghPost, dgh and dGains as in `gruLayerNormBackward` (γc and βc's parts per row too).
package func lstmLayerNormBackward(
  saved: CP, cPrev: CP, dh: CP, dc: P, dgx: P, dghPost: P, dgh: P, dhPrev: P, gains: CP, dGains: P, B: Int, H: Int
) {
  let (G, S) = (4 * H, 12 * H)
  let gammaC = gains + 2 * G
  for b in 0..<B {
    let s = saved + b * S
    // Scratch without allocating: ∂/∂y in dhPrev's row (zeroed below), ∂/∂c' through the norm in
    // dgh's row (written last).
    let dy = dhPrev + b * H
    let dcNorm = dgh + b * G
    let dx = dgx + b * G
    let post = dghPost + b * G
    let dg = dGains + b * (2 * G + 2 * H)
    for j in 0..<H {
      let (o, t) = (s[3 * H + j], s[4 * H + j])
      dy[j] = dh[b * H + j] * o * (1 - t * t)
      dx[3 * H + j] = dh[b * H + j] * t * o * (1 - o)
      dg[2 * G + j] = dy[j] * s[5 * H + j]  // γc
      dg[2 * G + H + j] = dy[j]  // βc
    }
    layerNormRowBackward(dy, gain: gammaC, normalized: s + 5 * H, rstd: s[6 * H], n: H, into: dcNorm)
    for j in 0..<H {
      let (i, f, g) = (s[j], s[H + j], s[2 * H + j])
      let k = b * H + j
      let dct = dc[k] + dcNorm[j]
      dx[j] = dct * g * i * (1 - i)
      dx[H + j] = dct * cPrev[k] * f * (1 - f)
      dx[2 * H + j] = dct * i * (1 - g * g)
      dc[k] = dct * f
      dhPrev[k] = 0
    }
    for j in 0..<G {
      post[j] = dx[j]
      dg[j] = 0
      dg[G + j] = post[j] * s[7 * H + j]
    }
    layerNormRowBackward(post, gain: gains + G, normalized: s + 7 * H, rstd: s[11 * H], n: G, into: dgh + b * G)
  }
}
