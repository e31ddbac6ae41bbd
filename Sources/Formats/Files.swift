import Foundation

/// A file that cannot be read or written, with its path.
public enum FileError: Error, Equatable, CustomStringConvertible {
  case missing(path: String)
  case directory(path: String)
  case unreadable(path: String)
  case empty(path: String)
  /// Writing would replace a device, pipe or folder (think /dev/full).
  case notRegular(path: String)
  case writeFailed(path: String, reason: String)

  /// The file the error is about.
  public var path: String {
    switch self {
    case .missing(let p), .directory(let p), .unreadable(let p), .empty(let p), .notRegular(let p): p
    case .writeFailed(let p, _): p
    }
  }

  /// What is wrong, without the path.
  public var reason: String {
    switch self {
    case .missing: "no such file"
    case .directory: "is a directory"
    case .unreadable: "permission denied or I/O error"
    case .empty: "is empty"
    case .notRegular: "not a regular file"
    case .writeFailed(_, let reason): reason
    }
  }

  /// `path: reason`, one line.
  public var description: String { "\(path): \(reason)" }
}

/// The one way files are read: the bytes of a regular file. A missing path, a folder, an
/// unreadable file and (unless `allowEmpty`) an empty one are `FileError`s naming it.
public func readFile(_ path: String, allowEmpty: Bool = false) throws(FileError) -> Data {
  var isDirectory: ObjCBool = false
  guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw .missing(path: path) }
  guard !isDirectory.boolValue else { throw .directory(path: path) }
  guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable(path: path) }
  guard allowEmpty || !data.isEmpty else { throw .empty(path: path) }
  return data
}

/// The one way files are written: `data` to `path` atomically, through a temporary file
/// beside it, fsync, rename and fsync of the folder. On failure the temporary file is removed
/// and `path` is untouched; a device, pipe or folder at `path` is never replaced.
public func writeAtomically(_ data: Data, to path: String) throws(FileError) {
  let url = URL(fileURLWithPath: path)
  let folder = url.deletingLastPathComponent().path
  var status = stat()
  if lstat(path, &status) == 0 && (status.st_mode & S_IFMT) != S_IFREG { throw .notRegular(path: path) }
  let temporary = folder + "/." + url.lastPathComponent + ".tmp-\(getpid())"
  let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
  guard fd >= 0 else { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
  var failure: String? = nil
  data.withUnsafeBytes { raw in
    var written = 0
    while written < raw.count {
      let n = write(fd, raw.baseAddress! + written, raw.count - written)
      if n < 0 {
        if errno == EINTR { continue }
        failure = String(cString: strerror(errno))
        return
      }
      written += n
    }
  }
  if failure == nil && fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
  if close(fd) != 0 && failure == nil { failure = String(cString: strerror(errno)) }
  if failure == nil && rename(temporary, path) != 0 { failure = String(cString: strerror(errno)) }
  if let failure {
    unlink(temporary)
    throw .writeFailed(path: path, reason: failure)
  }
  let dir = open(folder.isEmpty ? "." : folder, O_RDONLY)
  if dir >= 0 {
    fsync(dir)
    close(dir)
  }
}
