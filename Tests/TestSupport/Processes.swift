import Foundation

/// The `recurrent` binary built beside the test bundle (`swift test` builds every product).
public func recurrentBinary() throws -> String {
  var url = Bundle.main.bundleURL
  for _ in 0..<4 {
    let candidate = url.appendingPathComponent("recurrent").path
    if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    url.deleteLastPathComponent()
  }
  throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "recurrent beside \(Bundle.main.bundleURL.path)"])
}

public struct Outcome: Sendable {
  public var status: Int32
  public var stdout: String
  public var stderr: String
}

/// Runs the binary in `folder` with no stdin; `limitFileBytes` caps the size of any file it
/// writes (`ulimit -f`, with SIGXFSZ ignored so writes fail with EFBIG instead of killing it).
public func runRecurrent(
  _ arguments: [String], in folder: String, limitFileBytes: Int? = nil, environment: [String: String] = [:]
) throws -> Outcome {
  let process = Process()
  if !environment.isEmpty {
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
  }
  let binary = try recurrentBinary()
  if let limit = limitFileBytes {
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", "trap '' XFSZ; ulimit -f \(max(1, limit / 512)); exec \"$0\" \"$@\"", binary] + arguments
  } else {
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
  }
  process.currentDirectoryURL = URL(fileURLWithPath: folder)
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  process.standardInput = FileHandle.nullDevice
  try process.run()
  let outData = out.fileHandleForReading.readDataToEndOfFile()
  let errData = err.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return Outcome(
    status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
    stderr: String(decoding: errData, as: UTF8.self))
}

/// Every file under `folder` with its bytes.
public func snapshot(_ folder: String) -> [String: Data] {
  var result: [String: Data] = [:]
  let enumerator = FileManager.default.enumerator(atPath: folder)
  while let name = enumerator?.nextObject() as? String {
    var isDirectory: ObjCBool = false
    let path = folder + "/" + name
    _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
    result[name] = isDirectory.boolValue ? Data("<dir>".utf8) : (FileManager.default.contents(atPath: path) ?? Data())
  }
  return result
}
