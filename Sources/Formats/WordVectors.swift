import Foundation
import TensorCore

/// Pretrained word vectors in the GloVe or word2vec text format (`word v1 v2 ... vD` per line;
/// word2vec's first line `count D` is recognised and skipped), looked up for a vocabulary.
public struct WordVectors: Sendable {
  /// `[V, D]`: row i is the vector of `vocabulary[i]`.
  public var weight: Tensor
  /// Vocabulary entries found in the file.
  public var found: Int
  /// Vocabulary entries not in the file, initialised randomly (in vocabulary order).
  public var missing: [String]

  /// One line for the user, e.g. "glove.txt: 9,812 of 10,000 words found; 188 not in the file
  /// were initialised randomly".
  public func summary(path: String) -> String {
    "\(path): \(found) of \(found + missing.count) words found; \(missing.count) not in the file were initialised randomly"
  }

  /// Reads the vectors of `vocabulary` from `path`. Words not in the file get N(0, σ²) rows, σ
  /// the standard deviation of the vectors that were found (1 if none), drawn from `rng`;
  /// entries in `keepZero` (such as a padding id) are left as zero rows and not counted.
  /// - Throws: `DataFileError` for a missing/empty/binary file, lines of different
  ///   widths, a width other than `dimension` (when given) or values that are not numbers.
  public static func load(
    path: String, vocabulary: [String], dimension: Int? = nil, keepZero: Set<Int> = [],
    using rng: inout some RandomNumberGenerator
  ) throws -> WordVectors {
    let data = try readFileBytes(path)
    guard !data.contains(0) else { throw DataFileError(path, "looks binary (NUL byte); expected the text format") }
    var wanted: [Substring: [Int]] = [:]
    for (i, word) in vocabulary.enumerated() where !keepZero.contains(i) {
      wanted[Substring(word), default: []].append(i)
    }
    var rows: [Int: [Float]] = [:]
    var width = dimension
    var lineNumber = 0
    var sawVector = false
    guard let text = String(data: data, encoding: .utf8) else { throw DataFileError(path, "is not UTF-8 text") }
    for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
      lineNumber += 1
      let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
      if fields.isEmpty { continue }
      if lineNumber == 1 && fields.count == 2, Int(fields[0]) != nil, let d = Int(fields[1]) {
        // word2vec header: count and dimension.
        if let width, width != d { throw DataFileError(path, "vectors have \(d) dimensions, expected \(width)") }
        width = d
        continue
      }
      let d = fields.count - 1
      guard d > 0 else { throw DataFileError(path, "line \(lineNumber) has a word but no vector") }
      if let width, d != width {
        throw DataFileError(path, "line \(lineNumber) has \(d) values, expected \(width)")
      }
      width = d
      sawVector = true
      guard let ids = wanted[fields[0].trimmingCharacters(in: .whitespaces)[...]], rows[ids[0]] == nil else { continue }
      var vector = [Float]()
      vector.reserveCapacity(d)
      for field in fields.dropFirst() {
        guard let v = Float(field.trimmingCharacters(in: .whitespacesAndNewlines)), v.isFinite else {
          throw DataFileError(path, "line \(lineNumber): '\(field)' is not a number")
        }
        vector.append(v)
      }
      for id in ids { rows[id] = vector }
    }
    guard sawVector, let D = width else { throw DataFileError(path, "has no word vectors") }
    var sum: Double = 0
    var squares: Double = 0
    var n: Double = 0
    for row in rows.values {
      for v in row {
        sum += Double(v)
        squares += Double(v) * Double(v)
        n += 1
      }
    }
    let sigma = n > 1 ? Float(max(0, squares / n - (sum / n) * (sum / n)).squareRoot()) : 1
    var weight = Tensor(zeros: [vocabulary.count, D])
    var missing: [String] = []
    for i in vocabulary.indices where !keepZero.contains(i) {
      if let row = rows[i] {
        for j in 0..<D { weight.scalars[i * D + j] = row[j] }
      } else {
        missing.append(vocabulary[i])
        let random = Tensor(normal: [D], standardDeviation: sigma, using: &rng)
        for j in 0..<D { weight.scalars[i * D + j] = random.scalars[j] }
      }
    }
    return WordVectors(weight: weight, found: rows.count, missing: missing)
  }
}
