/// A fixed-size block of Float32 owned by a class, so kernels get a stable pointer without
/// nesting closures. Used for traces and workspaces sized once per (batch, length).
public final class FloatBuffer: @unchecked Sendable {
  /// Number of floats.
  public let count: Int
  /// The first float (64-byte aligned).
  public let pointer: UnsafeMutablePointer<Float>

  /// `count` zeros.
  public init(count: Int) {
    precondition(count >= 0, "FloatBuffer: negative count \(count)")
    self.count = count
    pointer = Self.allocate(count)
    pointer.initialize(repeating: 0, count: max(count, 1))
  }

  /// A copy of a tensor's scalars.
  public convenience init(_ tensor: Tensor) {
    self.init(count: tensor.count)
    tensor.scalars.withUnsafeBufferPointer { source in
      if let base = source.baseAddress { pointer.update(from: base, count: count) }
    }
  }

  /// `count` floats that the caller will overwrite before reading (no zeroing pass).
  public init(uninitializedCount count: Int) {
    precondition(count >= 0, "FloatBuffer: negative count \(count)")
    self.count = count
    pointer = Self.allocate(count)
  }

  /// Cache-line aligned, so packed panels and vector loads never straddle lines; at least one
  /// element so `pointer` is valid even for empty shapes.
  private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
      .bindMemory(to: Float.self, capacity: max(count, 1))
  }

  deinit { pointer.deallocate() }

  /// Sets every float to 0.
  public func zero() { pointer.update(repeating: 0, count: count) }

  /// The contents as a tensor of the given shape.
  public func tensor(shape: [Int]) -> Tensor {
    Tensor(shape: shape, scalars: Array(UnsafeBufferPointer(start: pointer, count: count)))
  }
}

extension Tensor {
  /// Calls `body` with a pointer to the scalars (valid even when the tensor is empty).
  @inlinable
  public func withPointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
    if scalars.isEmpty {
      var dummy: Float = 0
      return try body(&dummy)
    }
    return try scalars.withUnsafeBufferPointer { try body($0.baseAddress!) }
  }

  /// Calls `body` with a mutable pointer to the scalars (valid even when the tensor is empty).
  @inlinable
  public mutating func withMutablePointer<R>(
    _ body: (UnsafeMutablePointer<Float>) throws -> R
  ) rethrows -> R {
    if scalars.isEmpty {
      var dummy: Float = 0
      return try body(&dummy)
    }
    return try scalars.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
  }
}

/// Adds column sums of a row-major `[rows, columns]` block (row stride `ld`) into `sums`.
@inlinable
public func addColumnSums(
  _ x: UnsafePointer<Float>, rows: Int, columns: Int, ld: Int, into sums: UnsafeMutablePointer<Float>
) {
  for r in 0..<rows {
    let row = x + r * ld
    for j in 0..<columns { sums[j] += row[j] }
  }
}

/// Copies `bias` (`columns` floats) into each of `rows` rows of `y` (row stride `ld`).
@inlinable
public func broadcastRows(
  _ bias: UnsafePointer<Float>, rows: Int, columns: Int, into y: UnsafeMutablePointer<Float>, ld: Int
) {
  for r in 0..<rows { (y + r * ld).update(from: bias, count: columns) }
}
