import Distributed
import Foundation
import Recurrent
import TensorCore
import TextCorpus

/// Data-parallel training across the ranks of a `Collective` (MPI under `mpirun`, or
/// `LocalGroup` threads): every rank holds the whole model and rows
/// `[r·B/N, (r+1)·B/N)` of the global batch; the ranks sum their shares of the gradient (and loss)
/// before the one shared training step, so each step is the one-process step on the whole batch.
public struct DataParallel: Sendable {
  /// The ranks.
  public let world: any Collective
  /// The rows of the global batch this rank trains on.
  public let rows: BatchRows
  /// Rows per rank.
  public var localRows: Int { options.batchSize / world.size }
  let options: TrainingOptions
  /// Gradient floats per bucket (PyTorch DDP's buckets are 25 MB; ours are smaller because
  /// our models are: at most 1 MiB each, so communication starts while backward goes on).
  public static let bucketFloats = 1 << 18

  /// The split of `options.batchSize` rows over `world`; one line when it does not divide.
  public init(world: any Collective, options: TrainingOptions) throws {
    guard options.batchSize % world.size == 0 else {
      throw DataParallelError.batchNotDivisible(batch: options.batchSize, ranks: world.size)
    }
    self.world = world
    self.options = options
    let local = options.batchSize / world.size
    rows = BatchRows(first: world.rank * local, total: options.batchSize)
  }

  /// Columns `rows` of time-major `[T, B]` ids.
  func slice(_ ids: [Int], length: Int) -> [Int] {
    Self.columns(ids, length: length, batch: options.batchSize, first: rows.first, count: localRows)
  }

  /// This rank's rows of a global `[L, B, H]` state.
  func slice(_ state: RecurrentState) -> RecurrentState { Self.rows(state, first: rows.first, count: localRows) }

  /// Columns `first ..< first + count` of time-major `[T, batch]` ids.
  static func columns(_ ids: [Int], length: Int, batch B: Int, first: Int, count b: Int) -> [Int] {
    var out = [Int](repeating: 0, count: length * b)
    for t in 0..<length {
      for j in 0..<b { out[t * b + j] = ids[t * B + first + j] }
    }
    return out
  }

  /// Rows `first ..< first + count` of an `[L, B, H]` state.
  static func rows(_ state: RecurrentState, first: Int, count b: Int) -> RecurrentState {
    func rows(_ tensor: Tensor) -> Tensor {
      let (layers, B, H) = (tensor.shape[0], tensor.shape[1], tensor.shape[2])
      var scalars = [Float](repeating: 0, count: layers * b * H)
      for l in 0..<layers {
        for j in 0..<b {
          for h in 0..<H { scalars[(l * b + j) * H + h] = tensor.scalars[(l * B + first + j) * H + h] }
        }
      }
      return Tensor(shape: [layers, b, H], scalars: scalars)
    }
    return RecurrentState(hidden: rows(state.hidden), cell: state.cell.map(rows))
  }

  /// Writes the `[L, b, H]` rows of `tensor` as rows `first ..< first + b` of `[L, B, H]` scalars.
  static func place(_ tensor: Tensor, into scalars: inout [Float], first: Int, total B: Int) {
    let (layers, b, H) = (tensor.shape[0], tensor.shape[1], tensor.shape[2])
    for l in 0..<layers {
      for j in 0..<b {
        for h in 0..<H { scalars[(l * B + first + j) * H + h] = tensor.scalars[(l * b + j) * H + h] }
      }
    }
  }

  /// The states of consecutive row groups as one `[L, B, H]` state.
  static func joined(_ parts: [RecurrentState]) -> RecurrentState {
    func join(_ tensors: [Tensor]) -> Tensor {
      let (layers, H) = (tensors[0].shape[0], tensors[0].shape[2])
      let B = tensors.reduce(0) { $0 + $1.shape[1] }
      var scalars = [Float](repeating: 0, count: layers * B * H)
      var first = 0
      for tensor in tensors {
        place(tensor, into: &scalars, first: first, total: B)
        first += tensor.shape[1]
      }
      return Tensor(shape: [layers, B, H], scalars: scalars)
    }
    let cells = parts.compactMap(\.cell)
    return RecurrentState(hidden: join(parts.map(\.hidden)), cell: cells.count == parts.count ? join(cells) : nil)
  }

  /// The global `[L, B, H]` state from every rank's rows (a collective: every rank calls it).
  /// Rows are placed into zeros and summed, which is exact.
  func gather(_ state: RecurrentState) -> RecurrentState {
    func whole(_ tensor: Tensor) -> Tensor {
      let (layers, B, H) = (tensor.shape[0], rows.total, tensor.shape[2])
      var scalars = [Float](repeating: 0, count: layers * B * H)
      Self.place(tensor, into: &scalars, first: rows.first, total: B)
      scalars.withUnsafeMutableBufferPointer { world.allreduceSum($0) }
      return Tensor(shape: [layers, B, H], scalars: scalars)
    }
    return RecurrentState(hidden: whole(state.hidden), cell: state.cell.map(whole))
  }

  /// Rank 0's parameters on every rank.
  func broadcastParameters<M: Parameterized>(_ model: inout M) {
    model.forEachParameter { _, tensor in
      tensor.scalars.withUnsafeMutableBytes { world.broadcast($0, root: 0) }
    }
  }
}

/// Why data-parallel training cannot start.
public enum DataParallelError: Error, CustomStringConvertible, Equatable {
  case batchNotDivisible(batch: Int, ranks: Int)
  case ranksDisagree(String)
  /// One line for the user.
  public var description: String {
    switch self {
    case .batchNotDivisible(let batch, let ranks):
      "--batch \(batch) is the global batch and must divide by the \(ranks) ranks (e.g. --batch \(max(ranks, batch / ranks * ranks)))"
    case .ranksDisagree(let what): "the ranks disagree on \(what); every rank must be given the same options and data"
    }
  }
}

/// Sums one step's gradients (each rank's share of the global mean) across the ranks in buckets, in the order backward finishes
/// them (the output layer first: reverse parameter order, as PyTorch DDP): a bucket's
/// `MPI_Iallreduce` starts as soon as it is full, so communication overlaps the rest of
/// backward; `finish` waits for all of them. Every rank forms the same buckets, because
/// backward reports parameters in the same order on every rank.
final class GradientBuckets: @unchecked Sendable {  // used by one step at a time
  let world: any Collective
  let capacity: Int
  private var filling: [(index: Int, gradient: Tensor)] = []
  private var fillingCount = 0
  private var launched: [(entries: [(index: Int, gradient: Tensor)], buffer: UnsafeMutableBufferPointer<Float>, request: PendingReduction)] = []
  /// Seconds spent starting and waiting for reductions.
  private(set) var seconds = 0.0

  init(world: any Collective, capacity: Int = DataParallel.bucketFloats) {
    self.world = world
    self.capacity = capacity
  }

  /// Backward's report that parameters `indices` have their final gradients.
  func ready(_ indices: Range<Int>, _ gradients: [Tensor]) {
    for (index, gradient) in zip(indices, gradients) {
      filling.append((index, gradient))
      fillingCount += gradient.count
    }
    if fillingCount >= capacity { launch(extra: []) }
  }

  private func launch(extra: [Float]) {
    let start = DispatchTime.now().uptimeNanoseconds
    let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, fillingCount + extra.count))
    var offset = 0
    for entry in filling {
      entry.gradient.scalars.withUnsafeBufferPointer {
        (buffer.baseAddress! + offset).update(from: $0.baseAddress!, count: $0.count)
      }
      offset += entry.gradient.count
    }
    for (i, value) in extra.enumerated() { buffer[offset + i] = value }
    let used = UnsafeMutableBufferPointer(rebasing: buffer[0..<(fillingCount + extra.count)])
    launched.append((filling, buffer, world.startAllreduceSum(used)))
    filling = []
    fillingCount = 0
    seconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
  }

  /// Reduces what backward did not report and `loss`, waits for every bucket, and writes the
  /// sums into `gradient`; returns the summed loss (the global mean when each rank passed
  /// its share).
  func finish<M: Parameterized>(into gradient: inout M, loss: Float) -> Float {
    var reported = Set(launched.flatMap { $0.entries.map(\.index) } + filling.map(\.index))
    var index = 0
    var model = gradient
    model.forEachParameter { _, tensor in
      if !reported.contains(index) {
        filling.append((index, tensor))
        fillingCount += tensor.count
        reported.insert(index)
      }
      index += 1
    }
    launch(extra: [loss])
    let start = DispatchTime.now().uptimeNanoseconds
    // Where each parameter's sum lies: (bucket, offset).
    var place: [Int: (bucket: Int, offset: Int)] = [:]
    for (number, bucket) in launched.enumerated() {
      bucket.request.wait()
      var offset = 0
      for entry in bucket.entries {
        place[entry.index] = (number, offset)
        offset += entry.gradient.count
      }
    }
    seconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    let last = launched[launched.count - 1]
    let summedLoss = last.buffer[last.buffer.count - 1]  // the last bucket ends with the loss
    index = 0
    gradient.forEachParameter { _, tensor in
      if let (bucket, offset) = place[index] {
        let (source, count) = (launched[bucket].buffer.baseAddress! + offset, tensor.count)
        tensor.withMutablePointer { $0.update(from: source, count: count) }
      }
      index += 1
    }
    for bucket in launched { bucket.buffer.deallocate() }
    launched = []
    return summedLoss
  }
}

/// FNV-1a's starting value.
package let stableHashSeed: UInt64 = 0xcbf2_9ce4_8422_2325

/// FNV-1a of a sequence of values (bytes, ids, float bit patterns): a hash that is the same in
/// every process (Swift's `Hasher` is seeded per process), to check that ranks agree.
package func stableHash<S: Sequence>(_ values: S, into hash: inout UInt64) where S.Element: BinaryInteger {
  for value in values {
    hash ^= UInt64(truncatingIfNeeded: value)
    hash = hash &* 0x100_0000_01b3
  }
}
