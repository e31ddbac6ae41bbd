import Formats
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Token ids, held in an array or read in place from a memory-mapped token file, so a corpus
/// larger than memory trains without being loaded (the pages in use are the only ones read).
public struct TokenIDs: RandomAccessCollection, Sendable, Equatable {
  enum Storage: Sendable {
    case array([Int])
    case mapped(MappedFile, offset: Int, width: Int)
  }
  let storage: Storage
  /// 0.
  public let startIndex = 0
  /// The number of ids.
  public let endIndex: Int

  /// Ids held in memory.
  public init(_ ids: [Int]) {
    storage = .array(ids)
    endIndex = ids.count
  }

  init(file: MappedFile, offset: Int, width: Int, count: Int) {
    storage = .mapped(file, offset: offset, width: width)
    endIndex = count
  }

  /// The id at `position`.
  @inline(__always) public subscript(position: Int) -> Int {
    switch storage {
    case .array(let ids): return ids[position]
    case .mapped(let file, let offset, let width):
      precondition(position >= 0 && position < endIndex, "TokenIDs: index \(position) outside 0..<\(endIndex)")
      let at = file.base + offset + position * width
      return width == 2
        ? Int(UInt16(littleEndian: at.loadUnaligned(as: UInt16.self)))
        : Int(UInt32(littleEndian: at.loadUnaligned(as: UInt32.self)))
    }
  }

  /// Ids `range` as ids of their own (no copy for a mapped file).
  public func ids(_ range: Range<Int>) -> TokenIDs {
    precondition(range.lowerBound >= 0 && range.upperBound <= endIndex, "TokenIDs: range \(range) outside 0..<\(endIndex)")
    switch storage {
    case .array(let ids): return TokenIDs(Array(ids[range]))
    case .mapped(let file, let offset, let width):
      return TokenIDs(file: file, offset: offset + range.lowerBound * width, width: width, count: range.count)
    }
  }

  /// Same ids in the same order.
  public static func == (a: TokenIDs, b: TokenIDs) -> Bool { a.elementsEqual(b) }
}

/// A read-only memory map of a whole file, unmapped when the last user goes.
final class MappedFile: @unchecked Sendable {
  let base: UnsafeRawPointer
  let length: Int

  init(path: String) throws {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else { throw TokenFileError.unreadable(path: path, reason: String(cString: strerror(errno))) }
    defer { close(descriptor) }
    var status = stat()
    guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
      throw TokenFileError.unreadable(path: path, reason: "not a regular file")
    }
    length = Int(status.st_size)
    guard length > 0 else { throw TokenFileError.malformed(path: path, reason: "the file is empty") }
    guard let pointer = mmap(nil, length, PROT_READ, MAP_PRIVATE, descriptor, 0), pointer != MAP_FAILED else {
      throw TokenFileError.unreadable(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
    }
    base = UnsafeRawPointer(pointer)
  }

  deinit { munmap(UnsafeMutableRawPointer(mutating: base), length) }

  /// The largest of `count` ids of `width` bytes from `offset`, read 64 MiB at a time; each part
  /// read is then released from this process's resident pages (they stay in the page cache), so
  /// checking a file larger than memory does not hold it.
  func largestID(from offset: Int, width: Int, count: Int) -> Int {
    let part = 64 << 20
    var largest = 0
    var position = offset
    let end = offset + count * width
    while position < end {
      let stop = min(end, (position / part + 1) * part)
      let values = (stop - position) / width
      if width == 2 {
        let p = (base + position).assumingMemoryBound(to: UInt16.self)
        var m: UInt16 = 0
        for i in 0..<values { m = max(m, UInt16(littleEndian: p[i])) }
        largest = max(largest, Int(m))
      } else {
        let p = (base + position).assumingMemoryBound(to: UInt32.self)
        var m: UInt32 = 0
        for i in 0..<values { m = max(m, UInt32(littleEndian: p[i])) }
        largest = max(largest, Int(m))
      }
      let page = position / 4096 * 4096
      madvise(UnsafeMutableRawPointer(mutating: base + page), stop - page, MADV_DONTNEED)
      position = stop
    }
    return largest
  }
}

/// A token file that cannot be read.
public enum TokenFileError: Error, Equatable, CustomStringConvertible {
  case unreadable(path: String, reason: String)
  case malformed(path: String, reason: String)
  /// One line for the user.
  public var description: String {
    switch self {
    case .unreadable(let path, let reason): "\(path): cannot read the token file: \(reason)"
    case .malformed(let path, let reason): "\(path): not a token file written by recurrent prepare: \(reason)"
    }
  }
}

/// A vocabulary as JSON: what token files and data-parallel ranks carry.
public struct StoredVocabulary: Codable, Sendable, Equatable {
  /// The tokenizer.
  public var kind: TokenizerKind
  /// How bytes become text.
  public var encoding: TextEncoding
  /// Token names, by id.
  public var tokens: [String]
  /// BPE merges (`[left, right]` id pairs), for `kind == .bpe`.
  public var merges: [BytePairEncoding.Merge]?

  /// The stored form of `vocabulary`.
  public init(_ vocabulary: Vocabulary) {
    kind = vocabulary.kind
    encoding = vocabulary.encoding
    tokens = vocabulary.tokens
    merges = vocabulary.bytePairs?.merges
  }

  /// The vocabulary back; BPE names must match their merges.
  public func vocabulary() throws -> Vocabulary {
    guard kind == .bpe else { return Vocabulary(kind: kind, tokens: tokens, encoding: encoding) }
    guard let merges else { throw CheckpointError.badMetadata(key: "merges", reason: "a BPE vocabulary needs its merges") }
    let vocabulary = Vocabulary(bytePairs: try BytePairEncoding(merges: merges), encoding: encoding)
    guard vocabulary.tokens == tokens else {
      throw CheckpointError.badMetadata(key: "tokens", reason: "the token names do not match the merges")
    }
    return vocabulary
  }
}

/// Token files (`recurrent prepare`), little-endian throughout:
///
/// | bytes | field |
/// |---|---|
/// | 8 | magic `RCTOKENS` |
/// | 4 | version, 1 |
/// | 4 | id width in bytes: 2 (uint16, vocabularies up to 65,536) or 4 (uint32) |
/// | 8 | header length H in bytes |
/// | 8 | id count N |
/// | H | header: JSON `{"vocabulary": {"kind", "encoding", "tokens", "merges"?}, "source": ..., "source_bytes": ...}` |
/// | pad | zeros up to a multiple of 64 bytes from the file's start |
/// | N × width | the ids |
public enum TokenFile {
  /// The first 8 bytes.
  public static let magic = Array("RCTOKENS".utf8)
  /// The version this code writes and reads.
  public static let version: UInt32 = 1

  /// The header's JSON.
  public struct Header: Codable, Sendable, Equatable {
    /// The tokenizer the ids are of.
    public var vocabulary: StoredVocabulary
    /// The text file they were made from.
    public var source: String
    /// Its size in bytes.
    public var source_bytes: Int
  }

  /// Writes a token file at `path` atomically (a temporary file renamed into place): `produce`
  /// is called with a function that appends ids, and returns the source's byte count.
  /// Nothing is left at `path` if it throws.
  public static func write(
    to path: String, vocabulary: Vocabulary, source: String, produce: ((_ ids: [Int]) throws -> Void) throws -> Int
  ) throws -> (count: Int, width: Int) {
    let width = vocabulary.count <= 1 << 16 ? 2 : 4
    let temporary = path + ".partial-\(getpid())"
    guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
      throw TokenFileError.unreadable(path: path, reason: "cannot create \(temporary)")
    }
    var done = false
    defer { if !done { try? FileManager.default.removeItem(atPath: temporary) } }
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
    defer { try? handle.close() }
    // The header's length depends on the source size, known at the end: write the ids after a
    // provisional header, then rewrite the fixed fields and the header in place.
    let provisional = Header(vocabulary: StoredVocabulary(vocabulary), source: source, source_bytes: 0)
    let headerCapacity = try headerBytes(provisional).count + 32
    let idsOffset = (32 + headerCapacity + 63) / 64 * 64
    try handle.write(contentsOf: Data(count: idsOffset))
    var count = 0
    let sourceBytes = try produce { ids in
      let bytes =
        width == 2
        ? ids.map { UInt16(truncatingIfNeeded: $0).littleEndian }.withUnsafeBytes { Data($0) }
        : ids.map { UInt32(truncatingIfNeeded: $0).littleEndian }.withUnsafeBytes { Data($0) }
      try handle.write(contentsOf: bytes)
      count += ids.count
    }
    var header = try headerBytes(Header(vocabulary: StoredVocabulary(vocabulary), source: source, source_bytes: sourceBytes))
    precondition(header.count <= headerCapacity, "TokenFile: header grew")
    header += [UInt8](repeating: 0x20, count: headerCapacity - header.count)  // JSON allows trailing spaces
    var fixed = magic
    withUnsafeBytes(of: version.littleEndian) { fixed += $0 }
    withUnsafeBytes(of: UInt32(width).littleEndian) { fixed += $0 }
    withUnsafeBytes(of: UInt64(header.count).littleEndian) { fixed += $0 }
    withUnsafeBytes(of: UInt64(count).littleEndian) { fixed += $0 }
    try handle.seek(toOffset: 0)
    try handle.write(contentsOf: Data(fixed + header))
    try handle.synchronize()
    try handle.close()
    guard rename(temporary, path) == 0 else {
      throw TokenFileError.unreadable(path: path, reason: "cannot rename into place: \(String(cString: strerror(errno)))")
    }
    done = true
    return (count, width)
  }

  static func headerBytes(_ header: Header) throws -> [UInt8] { Array(try encodeJSON(header).utf8) }

  /// Maps a token file: its header and its ids (read in place). Every id is checked against
  /// the vocabulary's size once, so training never meets an id out of range.
  public static func open(_ path: String) throws -> (header: Header, vocabulary: Vocabulary, ids: TokenIDs) {
    let file = try MappedFile(path: path)
    func bad(_ reason: String) -> TokenFileError { .malformed(path: path, reason: reason) }
    guard file.length >= 32, Array(UnsafeRawBufferPointer(start: file.base, count: 8)) == magic else {
      throw bad("it does not start with RCTOKENS")
    }
    func field<T: FixedWidthInteger>(_ offset: Int, _ type: T.Type) -> T {
      T(littleEndian: (file.base + offset).loadUnaligned(as: T.self))
    }
    let version = field(8, UInt32.self)
    guard version == Self.version else { throw bad("version \(version), this build reads version \(Self.version)") }
    let width = Int(field(12, UInt32.self))
    guard width == 2 || width == 4 else { throw bad("id width \(width) (2 or 4 expected)") }
    let headerLength = field(16, UInt64.self)
    let count = field(24, UInt64.self)
    guard headerLength <= UInt64(file.length - 32) else { throw bad("the header runs past the end") }
    let idsOffset = (32 + Int(headerLength) + 63) / 64 * 64
    guard count <= UInt64(Int.max / 4), idsOffset + Int(count) * width == file.length else {
      throw bad("\(count) ids of \(width) bytes do not fill the file's \(file.length) bytes (truncated?)")
    }
    let header: Header
    do {
      header = try JSONDecoder().decode(
        Header.self, from: Data(UnsafeRawBufferPointer(start: file.base + 32, count: Int(headerLength))))
    } catch {
      throw bad("its header is not the expected JSON")
    }
    let vocabulary: Vocabulary
    do {
      vocabulary = try header.vocabulary.vocabulary()
    } catch {
      throw bad("its vocabulary: \(error)")
    }
    let ids = TokenIDs(file: file, offset: idsOffset, width: width, count: Int(count))
    let largest = file.largestID(from: idsOffset, width: width, count: Int(count))
    guard ids.isEmpty || largest < vocabulary.count else {
      throw bad("id \(largest) is outside its vocabulary of \(vocabulary.count)")
    }
    return (header, vocabulary, ids)
  }
}
