/// Language-model batches for truncated backpropagation through time (char-rnn, PyTorch's
/// `word_language_model`): the token stream is cut into `batchSize` contiguous rows;
/// window k covers positions `k·L ..< k·L + L` of every row (L = sequence length, the last
/// window shorter), inputs are tokens at those positions and targets the tokens one later.
/// Consecutive windows continue each row, so the hidden state carries across them.
public struct BatchLayout: Sendable, Equatable {
  /// The token stream (in memory, or read in place from a token file).
  public let tokens: TokenIDs
  /// Rows `B`: the stream is cut into this many contiguous rows.
  public let batchSize: Int
  /// Window length `T` (the truncated-BPTT length).
  public let sequenceLength: Int
  /// Tokens per row; the last `tokens.count % batchSize` tokens are dropped.
  public let rowLength: Int

  /// A layout, or `CorpusError.tooShort` when the stream is shorter than two tokens per row.
  public init(tokens: [Int], batchSize: Int, sequenceLength: Int) throws {
    try self.init(ids: TokenIDs(tokens), batchSize: batchSize, sequenceLength: sequenceLength)
  }

  /// A layout over ids that may be read in place from a token file.
  public init(ids tokens: TokenIDs, batchSize: Int, sequenceLength: Int) throws {
    precondition(batchSize > 0 && sequenceLength > 0, "BatchLayout: sizes must be positive")
    let rowLength = tokens.count / batchSize
    guard rowLength >= 2 else { throw CorpusError.tooShort(tokens: tokens.count, needed: 2 * batchSize) }
    self.tokens = tokens
    self.batchSize = batchSize
    self.sequenceLength = sequenceLength
    self.rowLength = rowLength
  }

  /// Windows per epoch.
  public var windowCount: Int { windowCount(shift: 0) }

  /// Windows per epoch when the window boundaries move `shift` positions earlier (the first
  /// window `T - shift` long).
  public func windowCount(shift: Int) -> Int { (rowLength - 1 + shift + sequenceLength - 1) / sequenceLength }

  /// Tokens predicted per epoch.
  public var targetsPerEpoch: Int { (rowLength - 1) * batchSize }

  /// Window `k`: inputs and targets `[T, B]` time-major (`t * B + b`), and T. With `shift`
  /// (0 ..< T) every boundary moves that many positions earlier: window 0 is `T - shift` long,
  /// so one epoch cuts the rows where another did not.
  public func window(_ k: Int, shift: Int = 0) -> (inputs: [Int], targets: [Int], length: Int) {
    precondition(shift >= 0 && shift < sequenceLength, "BatchLayout: shift \(shift) outside 0..<\(sequenceLength)")
    precondition(k >= 0 && k < windowCount(shift: shift), "BatchLayout: window \(k) outside 0..<\(windowCount(shift: shift))")
    let start = max(0, k * sequenceLength - shift)
    let length = min((k + 1) * sequenceLength - shift, rowLength - 1) - start
    var inputs = [Int](repeating: 0, count: length * batchSize)
    var targets = inputs
    for t in 0..<length {
      for b in 0..<batchSize {
        let position = b * rowLength + start + t
        inputs[t * batchSize + b] = tokens[position]
        targets[t * batchSize + b] = tokens[position + 1]
      }
    }
    return (inputs, targets, length)
  }
}
