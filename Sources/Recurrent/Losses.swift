import TensorCore

/// Loss functions, each returning the mean loss and its gradient with respect to the input.
public enum Loss {
  /// Mean softmax cross-entropy over class indices, in nats per counted row, fused and
  /// stable for large logits (log-sum-exp around the row maximum). PyTorch
  /// `F.cross_entropy(..., ignore_index=)`.
  /// - Parameters:
  ///   - logits: `[N, V]`
  ///   - targets: `N` class indices in `0..<V`, or `ignoreIndex` for rows that do not count.
  /// - Returns: the loss (0 when every row is ignored) and ∂loss/∂logits `[N, V]`.
  public static func softmaxCrossEntropy(
    logits: Tensor, targets: [Int], ignoreIndex: Int? = nil
  ) -> (loss: Float, gradient: Tensor) {
    precondition(logits.rank == 2 && logits.shape[0] == targets.count,
      "softmaxCrossEntropy: logits \(logits.shape) for \(targets.count) targets")
    let n = logits.shape[0]
    let v = logits.shape[1]
    let counted = targets.filter { $0 != ignoreIndex }.count
    var gradient = Tensor(zeros: [n, v])
    guard counted > 0 else { return (0, gradient) }
    let scale = 1 / Float(counted)
    var total: Double = 0
    logits.scalars.withUnsafeBufferPointer { x in
      gradient.scalars.withUnsafeMutableBufferPointer { g in
        for i in 0..<n {
          let target = targets[i]
          if target == ignoreIndex { continue }
          precondition(target >= 0 && target < v, "softmaxCrossEntropy: target \(target) outside 0..<\(v)")
          let row = x.baseAddress! + i * v
          var maximum = -Float.infinity
          for j in 0..<v { maximum = max(maximum, row[j]) }
          var sum: Float = 0
          for j in 0..<v {
            let e = _exp(row[j] - maximum)
            g[i * v + j] = e
            sum += e
          }
          let logSum = _log(sum)
          total += Double(logSum + maximum - row[target])
          let inverse = scale / sum
          for j in 0..<v { g[i * v + j] *= inverse }
          g[i * v + target] -= scale
        }
      }
    }
    return (Float(total / Double(counted)), gradient)
  }

  /// Mean squared error over all elements (PyTorch `F.mse_loss`).
  public static func meanSquaredError(_ prediction: Tensor, _ target: Tensor) -> (loss: Float, gradient: Tensor) {
    precondition(prediction.shape == target.shape,
      "meanSquaredError: prediction \(prediction.shape) vs target \(target.shape)")
    let n = prediction.count
    guard n > 0 else { return (0, prediction) }
    var total: Double = 0
    var gradient = prediction
    for i in 0..<n {
      let d = prediction.scalars[i] - target.scalars[i]
      total += Double(d * d)
      gradient.scalars[i] = 2 * d / Float(n)
    }
    return (Float(total / Double(n)), gradient)
  }

  /// Mean binary cross-entropy on logits, `max(x,0) - x·y + log(1 + e^(-|x|))`, stable for
  /// large |x| (PyTorch `F.binary_cross_entropy_with_logits`). Targets in [0, 1].
  public static func binaryCrossEntropyWithLogits(
    _ logits: Tensor, _ targets: Tensor
  ) -> (loss: Float, gradient: Tensor) {
    precondition(logits.shape == targets.shape,
      "binaryCrossEntropyWithLogits: logits \(logits.shape) vs targets \(targets.shape)")
    let n = logits.count
    guard n > 0 else { return (0, logits) }
    var total: Double = 0
    var gradient = logits
    for i in 0..<n {
      let x = logits.scalars[i]
      let y = targets.scalars[i]
      total += Double(max(x, 0) - x * y + _log1p(_exp(-abs(x))))
      gradient.scalars[i] = (sigmoid(x) - y) / Float(n)
    }
    return (Float(total / Double(n)), gradient)
  }
}
