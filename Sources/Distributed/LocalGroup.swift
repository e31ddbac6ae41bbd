import Foundation

/// Ranks as threads of one process, with the collectives of `Collective`: what the tests use in
/// place of `mpirun` to run data-parallel training in one process. A sum adds the ranks'
/// values in rank order, so every rank gets the same bits.
///
/// ```swift
/// let group = LocalGroup(size: 2)
/// DispatchQueue.concurrentPerform(iterations: 2) { r in train(world: group.rank(r)) }
/// ```
public final class LocalGroup: @unchecked Sendable {
  /// Ranks in the group.
  public let size: Int
  private let condition = NSCondition()
  private var slots: [UnsafeMutableRawPointer?]
  private var arrived = 0
  private var generation = 0

  /// A group of `size` ranks.
  public init(size: Int) {
    precondition(size >= 1, "LocalGroup: size must be at least 1")
    self.size = size
    slots = Array(repeating: nil, count: size)
  }

  /// Rank `index`'s end of the group; give each to its own thread.
  public func rank(_ index: Int) -> any Collective {
    precondition(index >= 0 && index < size, "LocalGroup: rank \(index) outside 0..<\(size)")
    return LocalRank(group: self, rank: index)
  }

  /// Every rank waits here until all have arrived.
  func barrier() {
    condition.lock()
    let mine = generation
    arrived += 1
    if arrived == size {
      arrived = 0
      generation += 1
      condition.broadcast()
    } else {
      while generation == mine { condition.wait() }
    }
    condition.unlock()
  }

  /// Publishes `pointer` as `rank`'s contribution, waits for all, runs `read` on every rank's
  /// pointer (rank order), waits until every rank has read, then runs `write`.
  func exchange(rank: Int, _ pointer: UnsafeMutableRawPointer, read: ([UnsafeMutableRawPointer]) -> Void, write: () -> Void) {
    condition.lock()
    slots[rank] = pointer
    condition.unlock()
    barrier()
    condition.lock()
    let all = slots.map { $0! }
    condition.unlock()
    read(all)
    barrier()
    write()
  }
}

final class LocalRank: Collective, @unchecked Sendable {
  let group: LocalGroup
  let rank: Int
  var size: Int { group.size }

  init(group: LocalGroup, rank: Int) {
    self.group = group
    self.rank = rank
  }

  func allreduceSum(_ values: UnsafeMutableBufferPointer<Float>) {
    let count = values.count
    var sum = [Float](repeating: 0, count: count)
    group.exchange(
      rank: rank, UnsafeMutableRawPointer(values.baseAddress ?? UnsafeMutablePointer(bitPattern: 8)!),
      read: { pointers in
        for pointer in pointers {
          let p = pointer.assumingMemoryBound(to: Float.self)
          for i in 0..<count { sum[i] += p[i] }
        }
      },
      write: { for i in 0..<count { values[i] = sum[i] } })
  }

  func startAllreduceSum(_ values: UnsafeMutableBufferPointer<Float>) -> PendingReduction {
    PendingReduction { self.allreduceSum(values) }
  }

  func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) {
    var copy = [UInt8](repeating: 0, count: bytes.count)
    group.exchange(
      rank: rank, bytes.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 8)!,
      read: { pointers in
        copy.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointers[root], count: bytes.count)) }
      },
      write: { if rank != root { copy.withUnsafeBytes { bytes.copyMemory(from: $0) } } })
  }

  func range(_ value: Int) -> (minimum: Int, maximum: Int) {
    var mine = value
    var result = (value, value)
    withUnsafeMutablePointer(to: &mine) { pointer in
      group.exchange(
        rank: rank, UnsafeMutableRawPointer(pointer),
        read: { pointers in
          let values = pointers.map { $0.assumingMemoryBound(to: Int.self).pointee }
          result = (values.min()!, values.max()!)
        }, write: {})
    }
    return result
  }
}
