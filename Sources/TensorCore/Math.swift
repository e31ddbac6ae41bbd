#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

// Thin, inlinable wrappers over the C math library, so kernels read as math.
@inlinable @inline(__always) package func _exp(_ x: Float) -> Float { expf(x) }
@inlinable @inline(__always) package func _log(_ x: Float) -> Float { logf(x) }
@inlinable @inline(__always) package func _log1p(_ x: Float) -> Float { log1pf(x) }
@inlinable @inline(__always) package func _tanh(_ x: Float) -> Float { tanhf(x) }
@inlinable @inline(__always) package func _log(_ x: Double) -> Double { log(x) }
@inlinable @inline(__always) package func _cos(_ x: Double) -> Double { cos(x) }
@inlinable @inline(__always) package func _sin(_ x: Double) -> Double { sin(x) }
@inlinable @inline(__always) package func _pow(_ x: Float, _ y: Float) -> Float { powf(x, y) }
@inlinable @inline(__always) package func _cos(_ x: Float) -> Float { cosf(x) }

/// Logistic sigmoid, stable for large |x| (never computes exp of a large positive number).
@inlinable @inline(__always) public func sigmoid(_ x: Float) -> Float {
  if x >= 0 {
    return 1 / (1 + _exp(-x))
  } else {
    let e = _exp(x)
    return e / (1 + e)
  }
}

/// Hyperbolic tangent.
@inlinable @inline(__always) public func tanh(_ x: Float) -> Float { _tanh(x) }
