import CKernels
import TensorCore

/// The losses, named as Keras names them (raw values) and computed by the one kernel
/// `Loss.rows`. The cross-entropies take logits: a final sigmoid or softmax is fused with them.
public enum LossFunction: String, Codable, CaseIterable, Sendable {
  /// Mean over units of the squared error.
  case meanSquaredError = "mse"
  /// Binary cross-entropy on logits, `max(x,0) - x·y + log(1 + e^(-|x|))`, mean over units.
  case binaryCrossEntropy = "binary_crossentropy"
  /// Softmax cross-entropy over the units, `Σ_k y_k (logsumexp(x) - x_k)`, with class ids or
  /// one-hot/soft target rows.
  case categoricalCrossEntropy = "categorical_crossentropy"
}

/// What a row of outputs is compared with.
public enum LossTargets {
  /// `[N, K]` values: regression targets, binary labels, one-hot or soft class rows.
  case values(Tensor)
  /// `N` class indices in `0..<K` (categorical cross-entropy only); rows whose target is
  /// `ignoreIndex` do not count.
  case classes([Int], ignoreIndex: Int?)
}

/// Loss functions, each returning the mean loss and its gradient with respect to the input.
/// All of them, and `Sequential`'s losses and metrics, run through `rows`.
public enum Loss {
  /// The one loss kernel: the loss of each row of `[N, K]` outputs against its targets, summed
  /// over counted rows, and ∂(sum)/∂output · `gradientScale` for counted rows (0 elsewhere).
  /// - Parameters:
  ///   - function: which loss.
  ///   - output: the model's output `[N, K]` (logits for the cross-entropies).
  ///   - targets: values `[N, K]` or `N` class indices.
  ///   - weights: 1 for a row that counts, 0 for padding; nil: every row counts.
  ///   - gradientScale: e.g. 1 / counted rows for the gradient of the mean.
  ///   - visit: called for each counted row with its index and the prediction the loss
  ///     implies (the output, sigmoid or softmax of it), e.g. for metrics; the buffer is
  ///     reused between rows.
  /// - Returns: the sum of the row losses (nats for the cross-entropies), the rows counted,
  ///   and the gradient `[N, K]`.
  public static func rows(
    _ function: LossFunction, output: Tensor, targets: LossTargets, weights: [Float]? = nil,
    gradientScale: Float, visit: ((_ row: Int, _ prediction: UnsafeBufferPointer<Float>) -> Void)? = nil
  ) -> (sum: Double, counted: Int, gradient: Tensor) {
    precondition(output.rank >= 1, "Loss.rows: output must have a unit axis")
    let K = output.shape[output.rank - 1]
    let N = K == 0 ? 0 : output.count / K
    switch targets {
    case .values(let y):
      precondition(y.count == output.count, "Loss.rows: output \(output.shape) vs targets \(y.shape)")
    case .classes(let ids, _):
      precondition(function == .categoricalCrossEntropy && ids.count == N,
        "Loss.rows: \(ids.count) class targets for \(N) rows of \(function.rawValue)")
    }
    if let weights { precondition(weights.count == N, "Loss.rows: \(weights.count) weights for \(N) rows") }
    var gradient = Tensor(zeros: output.shape)
    var prediction = [Float](repeating: 0, count: K)
    var total: Double = 0
    var counted = 0
    let scale = gradientScale
    let visiting = visit != nil
    output.withPointer { x in
      gradient.withMutablePointer { g in
        prediction.withUnsafeMutableBufferPointer { p in
          switch targets {
          case .classes(let ids, let ignoreIndex):
            let (sum, rows) = ids.withUnsafeBufferPointer { ids in
              classRows(
                x: x, g: g, ids: ids, ignoreIndex: ignoreIndex, weights: weights, N: N, K: K, scale: scale,
                prediction: visiting ? p.baseAddress : nil, visit: visit)
            }
            total = sum
            counted = rows
          case .values(let y):
            y.withPointer { y in
              for n in 0..<N {
                if let weights, weights[n] == 0 { continue }
                total += rowLoss(
                  function, o: x + n * K, y: y + n * K, d: g + n * K, p: p.baseAddress!, K: K, scale: scale)
                counted += 1
                visit?(n, UnsafeBufferPointer(p))
              }
            }
          }
        }
      }
    }
    return (total, counted, gradient)
  }

  /// Rows with class-index targets: softmax cross-entropy, stable around each row's maximum.
  /// Returns the summed loss and the rows counted; writes the scaled gradient.
  private static func classRows(
    x: UnsafePointer<Float>, g: UnsafeMutablePointer<Float>, ids: UnsafeBufferPointer<Int>, ignoreIndex: Int?,
    weights: [Float]?, N: Int, K: Int, scale: Float, prediction p: UnsafeMutablePointer<Float>?,
    visit: ((Int, UnsafeBufferPointer<Float>) -> Void)?
  ) -> (Double, Int) {
    var total: Double = 0
    var counted = 0
    for n in 0..<N {
      let target = ids[n]
      if target == ignoreIndex { continue }
      if let weights, weights[n] == 0 { continue }
      precondition(target >= 0 && target < K, "Loss.rows: target \(target) outside 0..<\(K)")
      let o = x + n * K
      let d = g + n * K
      var maximum = -Float.infinity
      for k in 0..<K { maximum = max(maximum, o[k]) }
      // The exponentials first, then their sum in the same order: no sum waits on a call.
      for k in 0..<K { d[k] = _exp(o[k] - maximum) }
      var sum: Float = 0
      for k in 0..<K { sum += d[k] }
      total += Double(_log(sum) + maximum - o[target])
      let inverse = scale / sum
      if let p, let visit {
        for k in 0..<K { p[k] = d[k] / sum }
        visit(n, UnsafeBufferPointer(start: p, count: K))
      }
      for k in 0..<K { d[k] *= inverse }
      d[target] -= scale
      counted += 1
    }
    return (total, counted)
  }

  /// One row of dense targets: the row's loss; writes the scaled gradient and the prediction.
  @inline(__always)
  private static func rowLoss(
    _ function: LossFunction, o: UnsafePointer<Float>, y: UnsafePointer<Float>, d: UnsafeMutablePointer<Float>,
    p: UnsafeMutablePointer<Float>, K: Int, scale: Float
  ) -> Double {
    var loss: Double = 0
    switch function {
    case .meanSquaredError:
      for k in 0..<K {
        let e = o[k] - y[k]
        loss += Double(e * e) / Double(K)
        d[k] = 2 * e / Float(K) * scale
        p[k] = o[k]
      }
    case .binaryCrossEntropy:
      for k in 0..<K {
        let x = o[k]
        loss += Double(max(x, 0) - x * y[k] + _log1p(_exp(-abs(x)))) / Double(K)
        p[k] = sigmoid(x)
        d[k] = (p[k] - y[k]) / Float(K) * scale
      }
    case .categoricalCrossEntropy:
      var maximum = -Float.infinity
      for k in 0..<K { maximum = max(maximum, o[k]) }
      var sum: Float = 0
      var mass: Float = 0
      for k in 0..<K {
        p[k] = _exp(o[k] - maximum)
        sum += p[k]
        mass += y[k]
      }
      let logSum = _log(sum) + maximum
      for k in 0..<K {
        p[k] /= sum
        loss += Double(y[k] * (logSum - o[k]))
        d[k] = (p[k] * mass - y[k]) * scale
      }
    }
    return loss
  }

  /// Mean softmax cross-entropy over class indices, in nats per counted row (PyTorch
  /// `F.cross_entropy(..., ignore_index=)`).
  /// - Parameters:
  ///   - logits: `[N, V]`
  ///   - targets: `N` class indices in `0..<V`, or `ignoreIndex` for rows that do not count.
  ///   - ignoreIndex: the target value of rows that do not count, or nil.
  ///   - total: divide by this many targets instead of this call's count: a data-parallel
  ///     rank passes the global batch's, so its loss and gradient are its exact share of the
  ///     global mean and the ranks' shares simply add up.
  ///   - compute: threads for the rows; the result does not depend on the count.
  /// - Returns: the loss (0 when every row is ignored) and ∂loss/∂logits `[N, V]`.
  public static func softmaxCrossEntropy(
    logits: Tensor, targets: [Int], ignoreIndex: Int? = nil, meanOver total: Int? = nil,
    compute: Compute = .singleThread
  ) -> (loss: Float, gradient: Tensor) {
    softmaxCrossEntropy(logits: logits, targets: targets, ignoreIndex: ignoreIndex, meanOver: total, compute: compute, kernel: .automatic)
  }

  /// `kernel`: which instruction set's copy of the row kernel (tests run every one the CPU has).
  package static func softmaxCrossEntropy(
    logits: Tensor, targets: [Int], ignoreIndex: Int?, meanOver total: Int?, compute: Compute, kernel: GEMMKernel
  ) -> (loss: Float, gradient: Tensor) {
    precondition(logits.rank == 2 && logits.shape[0] == targets.count,
      "softmaxCrossEntropy: logits \(logits.shape) for \(targets.count) targets")
    let (N, K) = (logits.shape[0], logits.shape[1])
    var counted = 0
    for target in targets where target != ignoreIndex {
      precondition(target >= 0 && target < K, "Loss.rows: target \(target) outside 0..<\(K)")
      counted += 1
    }
    let divisor = total ?? counted
    // One fused, vectorised pass per row (maximum, exponentials and their sum, the gradient),
    // rows split over the threads; nothing but the gradient is materialised.
    var gradient = Tensor(zeros: logits.shape)
    var losses = [Double](repeating: 0, count: N)
    logits.withPointer { x in
      gradient.withMutablePointer { g in
        targets.withUnsafeBufferPointer { ids in
          rc_softmax_xent(
            Int32(compute.threads), kernel.c, x, g, ids.baseAddress, N, K, 1 / Float(max(divisor, 1)),
            ignoreIndex ?? Int.min, &losses)
        }
      }
    }
    let sum = losses.reduce(0, +)  // in row order, whatever the threads
    return (divisor == 0 ? 0 : Float(sum / Double(divisor)), gradient)
  }
  /// Mean squared error over all elements (PyTorch `F.mse_loss`).
  public static func meanSquaredError(_ prediction: Tensor, _ target: Tensor) -> (loss: Float, gradient: Tensor) {
    precondition(prediction.shape == target.shape,
      "meanSquaredError: prediction \(prediction.shape) vs target \(target.shape)")
    return mean(.meanSquaredError, prediction, target)
  }

  /// Mean binary cross-entropy on logits, stable for large |x| (PyTorch
  /// `F.binary_cross_entropy_with_logits`). Targets in [0, 1].
  public static func binaryCrossEntropyWithLogits(
    _ logits: Tensor, _ targets: Tensor
  ) -> (loss: Float, gradient: Tensor) {
    precondition(logits.shape == targets.shape,
      "binaryCrossEntropyWithLogits: logits \(logits.shape) vs targets \(targets.shape)")
    return mean(.binaryCrossEntropy, logits, targets)
  }

  /// The mean over every element of an element-wise loss: each element a row of one unit.
  private static func mean(_ function: LossFunction, _ output: Tensor, _ target: Tensor) -> (loss: Float, gradient: Tensor) {
    let n = output.count
    guard n > 0 else { return (0, output) }
    let (sum, _, gradient) = rows(
      function, output: output.reshaped([n, 1]), targets: .values(target.reshaped([n, 1])),
      gradientScale: 1 / Float(n))
    return (Float(sum / Double(n)), gradient.reshaped(output.shape))
  }
}
