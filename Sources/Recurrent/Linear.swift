import TensorCore

/// Activation applied by `Linear` (Keras `Dense(activation:)`): pointwise, except `softmax`,
/// which normalises each row over the output units.
public enum Activation: String, Codable, CaseIterable, Sendable {
  case none, relu, sigmoid, tanh, softmax

  @inline(__always) func apply(_ x: Float) -> Float {
    switch self {
    case .none, .softmax: x
    case .relu: x > 0 ? x : 0
    case .sigmoid: TensorCore.sigmoid(x)
    case .tanh: TensorCore.tanh(x)
    }
  }

  /// Derivative expressed through the output y = f(x).
  @inline(__always) func derivative(output y: Float) -> Float {
    switch self {
    case .none, .softmax: 1
    case .relu: y > 0 ? 1 : 0
    case .sigmoid: y * (1 - y)
    case .tanh: 1 - y * y
    }
  }
}

/// What `Linear.forward` saved for its backward.
public struct LinearTrace: Sendable {
  let input: Tensor  // [N, in]
  let output: Tensor  // [N, out], after the activation
  let inputShape: [Int]
}

/// A fully connected layer, `y = act(x·Wᵀ + b)`: PyTorch `nn.Linear` (weight `[out, in]`)
/// followed by an optional activation, as Keras `Dense`. Inputs of any rank ≥ 2 are treated as
/// `[N, in]` over their leading dimensions.
public struct Linear: Parameterized, Sendable, Equatable {
  /// The weight `[out, in]`.
  public var weight: Tensor  // [out, in]
  /// The bias `[out]`, or nil for none.
  public var bias: Tensor?  // [out]
  /// Applied after the affine map.
  public var activation: Activation

  /// Features `in` of each input row.
  public var inputSize: Int { weight.shape[1] }
  /// Features `out` of each output row.
  public var outputSize: Int { weight.shape[0] }

  /// Weight and bias from U(-1/√in, 1/√in), as PyTorch's default initialisation.
  public init(
    inputSize: Int, outputSize: Int, bias: Bool = true, activation: Activation = .none,
    using rng: inout some RandomNumberGenerator
  ) {
    precondition(inputSize > 0 && outputSize > 0, "Linear: sizes must be positive")
    let bound = 1 / Float(inputSize).squareRoot()
    weight = Tensor(uniform: [outputSize, inputSize], low: -bound, high: bound, using: &rng)
    self.bias = bias ? Tensor(uniform: [outputSize], low: -bound, high: bound, using: &rng) : nil
    self.activation = activation
  }

  /// Visits `weight` and `bias` (if any) by name.
  public mutating func forEachParameter(_ body: (String, inout Tensor) throws -> Void) rethrows {
    try body("weight", &weight)
    if bias != nil { try body("bias", &bias!) }
  }

  /// The output `[..., out]` of an input `[..., in]`.
  public func callAsFunction(_ input: Tensor, compute: Compute = .singleThread) -> Tensor {
    forward(input, compute: compute).output
  }

  /// The output and what `backward` needs.
  /// - Parameters:
  ///   - input: `[..., in]`
  ///   - compute: threads for the product; results do not depend on the count.
  /// - Returns: `[..., out]` and the trace for `backward`.
  public func forward(_ input: Tensor, compute: Compute = .singleThread) -> (output: Tensor, trace: LinearTrace) {
    precondition(input.rank >= 2 && input.shape.last == inputSize,
      "Linear: expected input [..., \(inputSize)], got \(input.shape)")
    let n = input.count / inputSize
    let flat = input.reshaped([n, inputSize])
    var y = Tensor(zeros: [n, outputSize])
    let out = outputSize
    y.withMutablePointer { yp in
      if let bias { bias.withPointer { broadcastRows($0, rows: n, columns: out, into: yp, ld: out) } }
      flat.withPointer { xp in
        weight.withPointer { wp in
          gemm(
            transposeA: false, transposeB: true, m: n, n: out, k: inputSize, a: xp, lda: inputSize,
            b: wp, ldb: inputSize, beta: 1, c: yp, ldc: out, compute: compute)
        }
      }
      if activation == .softmax {
        for row in 0..<n { softmaxInPlace(yp + row * out, count: out) }
      } else if activation != .none {
        for i in 0..<(n * out) { yp[i] = activation.apply(yp[i]) }
      }
    }
    let shape = Array(input.shape.dropLast()) + [outputSize]
    return (y.reshaped(shape), LinearTrace(input: flat, output: y, inputShape: input.shape))
  }

  /// Adds ∂loss/∂weight and ∂loss/∂bias into `gradient`; returns ∂loss/∂input.
  public func backward(
    _ trace: LinearTrace, outputGradient: Tensor, into gradient: inout Linear,
    compute: Compute = .singleThread
  ) -> Tensor {
    let n = trace.input.shape[0]
    let out = outputSize
    let inSize = inputSize
    precondition(outputGradient.count == n * out, "Linear.backward: gradient \(outputGradient.shape)")
    var dy = outputGradient.reshaped([n, out])
    if activation == .softmax {
      // dx_j = y_j (dy_j - Σ_k dy_k y_k)
      for row in 0..<n {
        var dot: Float = 0
        for j in 0..<out { dot += dy.scalars[row * out + j] * trace.output.scalars[row * out + j] }
        for j in 0..<out { dy.scalars[row * out + j] = trace.output.scalars[row * out + j] * (dy.scalars[row * out + j] - dot) }
      }
    } else if activation != .none {
      for i in 0..<(n * out) { dy.scalars[i] *= activation.derivative(output: trace.output.scalars[i]) }
    }
    dy.withPointer { dyp in
      trace.input.withPointer { xp in
        gradient.weight.withMutablePointer { gw in
          gemm(
            transposeA: true, transposeB: false, m: out, n: inSize, k: n, a: dyp, lda: out,
            b: xp, ldb: inSize, beta: 1, c: gw, ldc: inSize, compute: compute)
        }
      }
      if gradient.bias != nil {
        gradient.bias!.withMutablePointer { addColumnSums(dyp, rows: n, columns: out, ld: out, into: $0) }
      }
    }
    var dx = Tensor(zeros: [n, inSize])
    dx.withMutablePointer { dxp in
      dy.withPointer { dyp in
        weight.withPointer { wp in
          gemm(
            transposeA: false, transposeB: false, m: n, n: inSize, k: out, a: dyp, lda: out,
            b: wp, ldb: inSize, c: dxp, ldc: inSize, compute: compute)
        }
      }
    }
    return dx.reshaped(trace.inputShape)
  }
}

/// A lookup table of vectors: PyTorch `nn.Embedding` (weight `[V, D]`, initialised N(0, 1)).
public struct Embedding: Parameterized, Sendable, Equatable {
  /// The table `[V, D]`: row `id` is token `id`'s vector.
  public var weight: Tensor  // [V, D]

  /// Rows `V`.
  public var vocabularySize: Int { weight.shape[0] }
  /// Width `D` of each vector.
  public var embeddingSize: Int { weight.shape[1] }

  /// A table drawn from N(0, 1), as PyTorch's `nn.Embedding`.
  public init(vocabularySize: Int, embeddingSize: Int, using rng: inout some RandomNumberGenerator) {
    precondition(vocabularySize > 0 && embeddingSize > 0, "Embedding: sizes must be positive")
    weight = Tensor(normal: [vocabularySize, embeddingSize], using: &rng)
  }

  /// Visits `weight`.
  public mutating func forEachParameter(_ body: (String, inout Tensor) throws -> Void) rethrows {
    try body("weight", &weight)
  }

  /// The vectors of `ids`.
  /// - Parameters:
  ///   - ids: token ids in `0..<V`, laid out as `shape`.
  ///   - shape: the layout of `ids`, e.g. `[T, B]`.
  /// - Returns: `[shape..., D]`.
  public func callAsFunction(_ ids: [Int], shape: [Int]) -> Tensor {
    precondition(shape.reduce(1, *) == ids.count, "Embedding: \(ids.count) ids for shape \(shape)")
    let d = embeddingSize
    var out = [Float](repeating: 0, count: ids.count * d)
    weight.scalars.withUnsafeBufferPointer { w in
      out.withUnsafeMutableBufferPointer { o in
        for (i, id) in ids.enumerated() {
          precondition(id >= 0 && id < vocabularySize, "Embedding: id \(id) outside 0..<\(vocabularySize)")
          for j in 0..<d { o[i * d + j] = w[id * d + j] }
        }
      }
    }
    return Tensor(shape: shape + [d], scalars: out)
  }

  /// Adds the rows of `outputGradient` (`[ids.count, D]` in any shape) into the rows of
  /// `gradient.weight` they were looked up from.
  public func backward(ids: [Int], outputGradient: Tensor, into gradient: inout Embedding) {
    let d = embeddingSize
    precondition(outputGradient.count == ids.count * d, "Embedding.backward: gradient \(outputGradient.shape)")
    gradient.weight.scalars.withUnsafeMutableBufferPointer { g in
      outputGradient.scalars.withUnsafeBufferPointer { dy in
        for (i, id) in ids.enumerated() {
          for j in 0..<d { g[id * d + j] += dy[i * d + j] }
        }
      }
    }
  }
}

/// Inverted dropout: in training each value is zeroed with probability p and the rest
/// scaled by 1/(1-p); in evaluation it is the identity (PyTorch `nn.Dropout`). Locked
/// (variational, Gal & Ghahramani 2016; AWD-LSTM's `LockedDropout`): for time-major `[T, B, W]`
/// values one mask `[B, W]` is drawn and used at every step, so a sequence loses the same
/// features throughout.
public struct Dropout: Sendable, Equatable {
  /// Chance `p` in [0, 1) that a value is zeroed in training.
  public var probability: Float
  /// One mask per sequence, shared by all steps of `[T, B, W]` values.
  public var locked: Bool

  /// Dropout with chance `probability` in [0, 1); `locked`: one mask per sequence.
  public init(probability: Float, locked: Bool = false) {
    precondition(probability >= 0 && probability < 1, "Dropout: probability must be in [0, 1)")
    self.probability = probability
    self.locked = locked
  }

  /// - Parameters:
  ///   - input: the values.
  ///   - training: drop (and scale) only in training; otherwise the input is returned as is.
  ///   - rows: for `[T, B, W]` inputs holding rows of a global batch (data-parallel training),
  ///     which rows, so the mask is the global batch's; nil: all of them.
  ///   - rng: the mask's random source (one key is drawn per mask).
  /// - Returns: the output and the mask (nil when nothing was dropped) for `backward`.
  public func forward(
    _ input: Tensor, training: Bool, rows: BatchRows? = nil, using rng: inout some RandomNumberGenerator
  ) -> (output: Tensor, mask: Tensor?) {
    guard training && probability > 0 else { return (input, nil) }
    let mask =
      locked
      ? lockedDropoutMask(shape: input.shape, probability: probability, rows: rows, using: &rng)
      : dropoutMask(count: input.count, probability: probability, shape: input.shape, rows: rows, using: &rng)
        .tensor(shape: input.shape)
    var out = input
    for i in 0..<out.count { out.scalars[i] *= mask.scalars[i] }
    return (out, mask)
  }

  /// The input gradient: `outputGradient` times the mask `forward` returned (unchanged when it returned none).
  public func backward(_ outputGradient: Tensor, mask: Tensor?) -> Tensor {
    guard let mask else { return outputGradient }
    var dx = outputGradient
    for i in 0..<dx.count { dx.scalars[i] *= mask.scalars[i] }
    return dx
  }
}

/// A locked dropout mask for `[T, B, W]` values: one `[B, W]` mask (drawn per global row with
/// `rows`, as `dropoutMask`) repeated at every step.
func lockedDropoutMask(
  shape: [Int], probability: Float, rows: BatchRows?, using rng: inout some RandomNumberGenerator
) -> Tensor {
  precondition(shape.count == 3, "locked dropout: expected [T, B, W] values, got \(shape)")
  let (T, B, W) = (shape[0], shape[1], shape[2])
  let one = dropoutMask(count: B * W, probability: probability, shape: [1, B, W], rows: rows, using: &rng)
  var scalars = [Float](repeating: 0, count: T * B * W)
  for t in 0..<T {
    for i in 0..<(B * W) { scalars[t * B * W + i] = one.pointer[i] }
  }
  return Tensor(shape: shape, scalars: scalars)
}

/// Softmax of `count` values in place, shifted by their maximum so large inputs do not overflow.
func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
  var maximum = -Float.infinity
  for j in 0..<count { maximum = max(maximum, x[j]) }
  var sum: Float = 0
  for j in 0..<count {
    x[j] = _exp(x[j] - maximum)
    sum += x[j]
  }
  let inverse = 1 / sum
  for j in 0..<count { x[j] *= inverse }
}
