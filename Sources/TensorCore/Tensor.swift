/// A dense, row-major Float32 tensor: a shape and its scalars. A value type (copy on write).
public struct Tensor: Equatable, Sendable, CustomStringConvertible {
  /// Sizes of the dimensions, outermost first.
  public var shape: [Int]
  /// The elements in row-major order (`shape.reduce(1, *)` of them).
  public var scalars: [Float]

  /// A tensor of the given shape holding `scalars` in row-major order.
  public init(shape: [Int], scalars: [Float]) {
    precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
    precondition(
      shape.reduce(1, *) == scalars.count,
      "Tensor: shape \(shape) needs \(shape.reduce(1, *)) scalars, got \(scalars.count)")
    self.shape = shape
    self.scalars = scalars
  }

  /// A tensor of the given shape filled with `value`.
  public init(repeating value: Float, shape: [Int]) {
    self.init(shape: shape, scalars: [Float](repeating: value, count: shape.reduce(1, *)))
  }

  /// A tensor of zeros.
  public init(zeros shape: [Int]) { self.init(repeating: 0, shape: shape) }

  /// Uniform samples in `[low, high)`.
  public init(
    uniform shape: [Int], low: Float, high: Float, using rng: inout some RandomNumberGenerator
  ) {
    let n = shape.reduce(1, *)
    var values = [Float](repeating: 0, count: n)
    for i in 0..<n { values[i] = low + (high - low) * rng.nextUnitFloat() }
    self.init(shape: shape, scalars: values)
  }

  /// Normal samples with the given mean and standard deviation (Box-Muller).
  public init(
    normal shape: [Int], mean: Float = 0, standardDeviation: Float = 1,
    using rng: inout some RandomNumberGenerator
  ) {
    let n = shape.reduce(1, *)
    var values = [Float](repeating: 0, count: n)
    var i = 0
    while i < n {
      let (a, b) = rng.nextStandardNormalPair()
      values[i] = mean + standardDeviation * a
      if i + 1 < n { values[i + 1] = mean + standardDeviation * b }
      i += 2
    }
    self.init(shape: shape, scalars: values)
  }

  /// Number of elements.
  public var count: Int { scalars.count }
  /// Number of dimensions.
  public var rank: Int { shape.count }

  /// The same scalars under another shape with the same element count.
  public func reshaped(_ newShape: [Int]) -> Tensor {
    Tensor(shape: newShape, scalars: scalars)
  }

  /// The shape and the first eight elements.
  public var description: String { "Tensor(shape: \(shape), \(scalars.prefix(8))\(count > 8 ? "…" : ""))" }

  /// Sets every scalar to zero, keeping the storage.
  public mutating func zero() {
    scalars.withUnsafeMutableBufferPointer { buffer in
      buffer.update(repeating: 0)
    }
  }

  /// A zero tensor of the same shape.
  public var zerosLike: Tensor { Tensor(zeros: shape) }

  /// Largest absolute elementwise difference; shapes must agree.
  public func maxAbsoluteDifference(_ other: Tensor) -> Float {
    precondition(shape == other.shape, "maxAbsoluteDifference: \(shape) vs \(other.shape)")
    var worst: Float = 0
    for i in 0..<count { worst = max(worst, abs(scalars[i] - other.scalars[i])) }
    return worst
  }
}

extension Tensor {
  /// `self += other`, elementwise.
  public static func += (lhs: inout Tensor, rhs: Tensor) {
    precondition(lhs.shape == rhs.shape, "Tensor +=: \(lhs.shape) vs \(rhs.shape)")
    lhs.scalars.withUnsafeMutableBufferPointer { l in
      rhs.scalars.withUnsafeBufferPointer { r in
        for i in 0..<l.count { l[i] += r[i] }
      }
    }
  }

  /// Elementwise product by a scalar.
  public static func * (lhs: Tensor, rhs: Float) -> Tensor {
    Tensor(shape: lhs.shape, scalars: lhs.scalars.map { $0 * rhs })
  }

  /// Sum of all scalars of `self * other`.
  public func dot(_ other: Tensor) -> Float {
    precondition(shape == other.shape, "Tensor.dot: \(shape) vs \(other.shape)")
    var s: Double = 0
    for i in 0..<count { s += Double(scalars[i]) * Double(other.scalars[i]) }
    return Float(s)
  }
}
