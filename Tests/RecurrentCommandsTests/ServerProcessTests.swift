import Foundation
import Testing

import TestSupport

import TensorCore

// The real recurrent-server process: SIGTERM with streams still running lets them go on for
// --shutdown-timeout, then cancels them (a reading client still gets its [DONE]), answers new
// requests 503 meanwhile, and exits 0, even when a client stopped reading (its connection is
// closed 2 s after the timeout).

private func connect(port: Int) -> Int32 {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = in_port_t(UInt16(port).bigEndian)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  _ = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
  }
  return fd
}

private func post(_ fd: Int32, _ json: String) {
  let request =
    "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)"
  _ = request.withCString { send(fd, $0, strlen($0), 0) }
}

private func readAll(_ fd: Int32) -> String {
  var data = [UInt8]()
  var buffer = [UInt8](repeating: 0, count: 1 << 16)
  while true {
    let n = recv(fd, &buffer, buffer.count, 0)
    if n <= 0 { break }
    data += buffer[0..<n]
  }
  close(fd)
  return String(decoding: data, as: UTF8.self)
}

/// A temporary folder holding a tiny model trained for 2 steps, `m.safetensors`.
private func folderWithModel(_ name: String, hidden: Int) throws -> String {
  let folder = temporaryFolder(name)
  try String(repeating: "abcab cabba\n", count: 40).write(toFile: folder + "/t.txt", atomically: true, encoding: .utf8)
  let trained = try runRecurrent(
    ["train", "--text", "t.txt", "--steps", "2", "--hidden", "\(hidden)", "--embedding", "8", "--batch", "2", "--seq-len", "8",
     "--eval-every", "0", "--sample-every", "0", "--checkpoint", "m.safetensors"], in: folder)
  #expect(trained.status == 0, "\(trained.stderr)")
  return folder
}

/// The recurrent-server binary beside `recurrent`, with `arguments` and `environment` added.
private func serverProcess(_ arguments: [String], environment: [String: String] = [:]) throws -> Process {
  let server = Process()
  server.executableURL = URL(fileURLWithPath: try recurrentBinary()).deletingLastPathComponent().appendingPathComponent("recurrent-server")
  server.arguments = arguments
  server.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
  return server
}

/// Starts recurrent-server with `arguments`; returns it and the port its first line names (0 if none).
private func startServer(_ arguments: [String]) throws -> (Process, Int) {
  let server = try serverProcess(arguments)
  let out = Pipe()
  server.standardOutput = out
  server.standardError = FileHandle.nullDevice
  try server.run()
  var line = Data()
  while !line.contains(UInt8(ascii: "\n")) {
    let byte = out.fileHandleForReading.readData(ofLength: 1)
    if byte.isEmpty { break }
    line += byte
  }
  let port = Int(String(decoding: line, as: UTF8.self).split(separator: ":").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
  return (server, port)
}

@Test func sigtermLetsStreamsFinishForTheTimeoutThenExitsZero() throws {
  let folder = try folderWithModel("server-process", hidden: 64)
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let (server, port) = try startServer(
    ["--checkpoint", folder + "/m.safetensors", "--port", "0", "--shutdown-timeout", "1", "--max-tokens-limit", "1000000"])
  #expect(port > 0)
  let stream = connect(port: port)
  post(stream, #"{"prompt":"ab","max_tokens":1000000,"stream":true}"#)
  nonisolated(unsafe) var streamed = ""
  let reader = Thread { streamed = readAll(stream) }
  reader.start()
  let stalled = connect(port: port)  // never read until the server is gone
  post(stalled, #"{"prompt":"ab","max_tokens":1000000,"stream":true}"#)
  Thread.sleep(forTimeInterval: 0.3)
  let started = Date()
  kill(server.processIdentifier, SIGTERM)
  Thread.sleep(forTimeInterval: 0.2)
  let late = connect(port: port)
  post(late, #"{"prompt":"ab"}"#)
  let lateAnswer = readAll(late)
  server.waitUntilExit()
  let seconds = Date().timeIntervalSince(started)
  while !reader.isFinished { Thread.sleep(forTimeInterval: 0.01) }
  close(stalled)
  #expect(server.terminationStatus == 0)
  #expect(seconds > 0.9 && seconds < 8, "shutdown took \(seconds) s with a 1 s timeout")
  #expect(lateAnswer.contains(" 503 ") && lateAnswer.contains("shutting down"), "\(lateAnswer.prefix(200))")
  #expect(streamed.contains("data: [DONE]"), "the cancelled stream was not ended properly")
  #expect(streamed.components(separatedBy: "\"finish_reason\":null").count - 1 < 1_000_000)
}

/// Runs recurrent-server with `arguments` (and `environment` added) until it exits by itself.
private func runServer(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String) {
  let server = try serverProcess(arguments, environment: environment)
  let err = Pipe()
  server.standardError = err
  server.standardOutput = FileHandle.nullDevice
  try server.run()
  let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
  server.waitUntilExit()
  return (server.terminationStatus, text)
}

@Test func theServerServesInBFloat16OrRefusesInOneLine() throws {
  let folder = try folderWithModel("server-precision", hidden: 32)
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let base = ["--checkpoint", folder + "/m.safetensors", "--port", "0"]
  for (arguments, environment, expected) in [
    (base + ["--precision", "bf16"], ["RECURRENT_MAX_ISA": "avx2"], "AVX512_BF16"),
    (base + ["--precision", "half"], [:], "--precision"),
  ] {
    let (status, stderr) = try runServer(arguments, environment: environment)
    #expect(status != 0)
    #expect(stderr.split(separator: "\n").filter { !$0.isEmpty }.count == 1, "\(stderr)")
    #expect(stderr.contains(expected), "\(stderr)")
  }
  guard Precision.bfloat16IsSupported else {
    print("theServerServesInBFloat16OrRefusesInOneLine: no AVX512_BF16 here; serving in bf16 not run")
    return
  }
  let (server, port) = try startServer(base + ["--precision", "bf16"])
  #expect(port > 0)
  let fd = connect(port: port)
  post(fd, #"{"prompt":"ab","max_tokens":12,"seed":3}"#)
  let answer = readAll(fd)
  kill(server.processIdentifier, SIGTERM)
  server.waitUntilExit()
  #expect(answer.contains(" 200 ") && answer.contains("\"text\""), "\(answer.prefix(300))")
  #expect(server.terminationStatus == 0)
}
