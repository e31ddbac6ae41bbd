import ArgumentParser
import Foundation

/// `recurrent serve`: runs `recurrent-server` (built separately, so `recurrent train` never
/// builds the HTTP stack) with the same options.
struct Serve: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Serve a checkpoint over HTTP: runs recurrent-server with these options (see recurrent-server --help).")

  @Argument(parsing: .captureForPassthrough, help: "Options of recurrent-server, e.g. --checkpoint model.safetensors --port 8080.")
  var options: [String] = []

  func run() throws {
    let folder = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    let server = folder.appendingPathComponent("recurrent-server").path
    guard FileManager.default.isExecutableFile(atPath: server) else {
      throw CommandError("recurrent-server is not built beside \(folder.path); build it with: swift build -c release --product recurrent-server")
    }
    let arguments = [server] + options
    var cArguments = arguments.map { strdup($0) } + [nil]
    execv(server, &cArguments)
    throw CommandError("cannot run \(server): \(String(cString: strerror(errno)))")
  }
}
