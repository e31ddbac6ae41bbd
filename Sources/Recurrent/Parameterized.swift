import TensorCore

/// A value made of named parameter tensors, visited in a fixed order. Optimizers,
/// gradient clipping and checkpoints work through this protocol. A gradient has the same
/// type as its model, with every tensor holding ∂loss/∂parameter.
public protocol Parameterized {
  /// Calls `body` on each parameter in order, mutably, with its PyTorch-style name.
  mutating func forEachParameter(_ body: (String, inout Tensor) throws -> Void) rethrows
}

extension Parameterized {
  /// `(name, tensor)` pairs in visiting order.
  public var namedParameters: [(name: String, tensor: Tensor)] {
    var copy = self
    var result: [(name: String, tensor: Tensor)] = []
    copy.forEachParameter { name, tensor in result.append((name, tensor)) }
    return result
  }

  /// The same structure with every parameter set to zero: a fresh gradient accumulator.
  public var zeroGradient: Self {
    var copy = self
    copy.forEachParameter { _, tensor in tensor = Tensor(zeros: tensor.shape) }
    return copy
  }

  /// Sets every parameter to zero in place, keeping storage.
  public mutating func zeroAll() {
    forEachParameter { _, tensor in tensor.zero() }
  }

  /// Adds `other`'s parameters (of the same structure) into these, elementwise: `self + other`.
  public mutating func add(_ other: Self) {
    let parts = other.namedParameters
    var index = 0
    forEachParameter { _, tensor in
      precondition(tensor.shape == parts[index].tensor.shape, "add: parameter \(parts[index].name) differs in shape")
      let addend = parts[index].tensor.scalars
      for i in 0..<tensor.count { tensor.scalars[i] += addend[i] }
      index += 1
    }
  }

  /// Total number of scalars.
  public var parameterCount: Int { namedParameters.reduce(0) { $0 + $1.tensor.count } }
}
