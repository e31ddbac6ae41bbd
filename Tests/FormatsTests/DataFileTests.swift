import Formats
import Foundation
import Testing
import TestSupport

import Recurrent
import TensorCore

// .npy read/write against files numpy wrote (Tests/Reference/make_npy_fixtures.py), CSV, and
// GloVe/word2vec vectors loaded into an Embedding.

private func fixturePath(_ name: String) throws -> String {
  guard let url = Bundle.module.url(forResource: name, withExtension: "npy", subdirectory: "Fixtures/npy") else {
    throw DataFileError(name, "fixture missing")
  }
  return url.path
}

private func temporaryFolder() -> String {
  let path = NSTemporaryDirectory() + "recurrent-data-\(UUID().uuidString)"
  try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

@Test func npyReadsWhatNumpyWroteAndWritesTheSameBytes() throws {
  let expected: [(String, NumPyType, [Double])] = [
    ("float32", .float32, [0.5, -1.25, 3.0, Double(Float(1e-3)), 7.0, -2.5]),
    ("float64", .float64, [0.5, -1.25, 3.0, 1e-3, 7.0, -2.5]),
    ("int32", .int32, [1, -2, 3, 2_147_483_647, 0, -2_147_483_648]),
    ("int64", .int64, [1, -2, 3, 1_099_511_627_776, 0, -5]),
  ]
  for (name, type, values) in expected {
    let path = try fixturePath(name)
    let array = try NumPyArray.read(path: path)
    #expect(array.shape == [2, 3], "\(name)")
    #expect(array.type == type, "\(name)")
    #expect(array.values == values, "\(name)")
    // Our writer produces numpy's very bytes (same header text and padding).
    #expect(array.encoded() == FileManager.default.contents(atPath: path), "\(name): bytes differ from numpy's")
  }
  // Format versions 2 and 3 (4-byte header length; 3 allows a UTF-8 header) read the same.
  let v1 = try Data(contentsOf: URL(fileURLWithPath: fixturePath("float32")))
  let headerLength = Int(v1[8]) | Int(v1[9]) << 8
  for version: UInt8 in [2, 3] {
    var v = Data(v1[0..<6]) + Data([version, 0])
    v += Data([UInt8(headerLength & 0xFF), UInt8(headerLength >> 8), 0, 0])
    v += v1[10...]
    #expect(try NumPyArray(decoding: v).values == expected[0].2, "version \(version)")
  }
  var v4 = v1
  v4[6] = 4
  #expect(throws: DataFileError.self) { try NumPyArray(decoding: v4) }
  let big = try NumPyArray.read(path: fixturePath("bigendian"))
  #expect(big.values == expected[0].2)
  let scalar = try NumPyArray.read(path: fixturePath("scalar"))
  #expect(scalar.shape == [] && scalar.values == [2.5])
  let rank3 = try NumPyArray.read(path: fixturePath("rank3"))
  #expect(rank3.shape == [2, 3, 4] && rank3.values == (0..<24).map(Double.init))
  #expect(rank3.encoded() == FileManager.default.contents(atPath: try fixturePath("rank3")))
}

@Test func npyRoundTripsEveryTypeAndRefusesWhatItCannotRead() throws {
  let folder = temporaryFolder()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  var rng = SplitMix64(seed: 1)
  for type in NumPyType.allCases {
    for shape in [[0], [5], [2, 3, 4], [1, 1, 1, 2]] {
      let count = shape.reduce(1, *)
      let values = (0..<count).map { _ -> Double in
        let r = Double(Int64(bitPattern: rng.next()) % 1_000_000)
        switch type {
        case .float32: return Double(Float(r / 7))
        case .float64: return r / 7
        case .int32, .int64: return r
        }
      }
      let array = NumPyArray(shape: shape, type: type, values: values)
      let path = folder + "/a.npy"
      try array.write(path: path)
      #expect(try NumPyArray.read(path: path) == array, "\(type) \(shape)")
    }
  }
  func refuses(_ name: String, _ fragment: String) {
    do {
      _ = try NumPyArray.read(path: (try? fixturePath(name)) ?? folder + "/" + name)
      Issue.record("\(name) was accepted")
    } catch let error as DataFileError {
      #expect(error.description.contains(fragment), "\(name): \(error)")
    } catch {
      Issue.record("\(name): \(error)")
    }
  }
  refuses("fortran", "Fortran")
  refuses("uint8", "not supported")
  refuses("missing.npy", "no such file")
  _ = FileManager.default.createFile(atPath: folder + "/empty.npy", contents: Data())
  refuses("empty.npy", "is empty")
  _ = FileManager.default.createFile(atPath: folder + "/text.npy", contents: Data("hello, world".utf8))
  refuses("text.npy", "not a NumPy")
  let good = try Data(contentsOf: URL(fileURLWithPath: fixturePath("float32")))
  _ = FileManager.default.createFile(atPath: folder + "/cut.npy", contents: good.dropLast(3))
  refuses("cut.npy", "data bytes")
  try FileManager.default.createDirectory(atPath: folder + "/dir.npy", withIntermediateDirectories: false)
  refuses("dir.npy", "is a directory")
  // A header that claims an enormous shape fails before any allocation.
  var huge = good
  let header = String(decoding: huge[10..<(10 + Int(huge[8]))], as: UTF8.self)
  let edited = header.replacingOccurrences(of: "(2, 3)", with: "(99999999999, 99999999)")
    .replacingOccurrences(of: "   ", with: "", options: [], range: nil)
  huge.replaceSubrange(10..<(10 + Int(huge[8])), with: Array(edited.utf8))
  huge[8] = UInt8(edited.utf8.count)
  _ = FileManager.default.createFile(atPath: folder + "/huge.npy", contents: huge)
  refuses("huge.npy", "too large")
}

@Test func csvReadsNumbersWithAnOptionalHeader() throws {
  let folder = temporaryFolder()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let path = folder + "/series.csv"
  try Data("time,value\n0,0.5\n1, -1.5\r\n\n2,3e2\n".utf8).write(to: URL(fileURLWithPath: path))
  let (header, values) = try CSVFile.read(path: path)
  #expect(header == ["time", "value"])
  #expect(values == Tensor(shape: [3, 2], scalars: [0, 0.5, 1, -1.5, 2, 300]))
  try CSVFile.write(values, header: header, path: folder + "/copy.csv")
  let copy = try CSVFile.read(path: folder + "/copy.csv")
  #expect(copy.header == header && copy.values == values)
  try Data("1,2\n3\n".utf8).write(to: URL(fileURLWithPath: path))
  #expect(throws: DataFileError.self) { try CSVFile.read(path: path) }
  try Data("1,2\n3,x\n".utf8).write(to: URL(fileURLWithPath: path))
  #expect(throws: DataFileError.self) { try CSVFile.read(path: path) }
}

@Test func wordVectorsLoadIntoAnEmbeddingFrozenOrTrainable() throws {
  let folder = temporaryFolder()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let glove = folder + "/glove.txt"
  try Data("the 0.1 0.2 0.3\ncat -1 0.5 2\nsat 3 2 1\nmat 0 0 1\n".utf8).write(to: URL(fileURLWithPath: glove))
  let word2vec = folder + "/w2v.txt"
  try Data("4 3\nthe 0.1 0.2 0.3\ncat -1 0.5 2\nsat 3 2 1\nmat 0 0 1\n".utf8).write(to: URL(fileURLWithPath: word2vec))
  let vocabulary = ["<pad>", "cat", "dog", "the", "mat"]
  var rng = SplitMix64(seed: 4)
  for path in [glove, word2vec] {
    let vectors = try WordVectors.load(path: path, vocabulary: vocabulary, dimension: 3, keepZero: [0], using: &rng)
    #expect(vectors.found == 3)
    #expect(vectors.missing == ["dog"])
    #expect(vectors.summary(path: "v.txt") == "v.txt: 3 of 4 words found; 1 not in the file were initialised randomly")
    let w = vectors.weight.scalars
    #expect(Array(w[0..<3]) == [0, 0, 0])  // padding stays zero
    #expect(Array(w[3..<6]) == [-1, 0.5, 2])
    #expect(Array(w[9..<12]) == [0.1, 0.2, 0.3])
    #expect(Array(w[12..<15]) == [0, 0, 1])
    #expect(w[6..<9].contains { $0 != 0 })  // "dog" drawn at random
  }
  #expect(throws: DataFileError.self) { try WordVectors.load(path: glove, vocabulary: vocabulary, dimension: 50, using: &rng) }
  try Data("the 0.1 0.2\ncat 1 2 3\n".utf8).write(to: URL(fileURLWithPath: folder + "/ragged.txt"))
  #expect(throws: DataFileError.self) { try WordVectors.load(path: folder + "/ragged.txt", vocabulary: vocabulary, using: &rng) }
  try Data("the 0.1 zz\n".utf8).write(to: URL(fileURLWithPath: folder + "/bad.txt"))
  #expect(throws: DataFileError.self) { try WordVectors.load(path: folder + "/bad.txt", vocabulary: vocabulary, using: &rng) }

}
