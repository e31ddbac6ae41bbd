import ArgumentParser
import Foundation
import Recurrent

/// The `recurrent` command line: its subcommands and the one way errors are printed.
public struct RecurrentCommand: ParsableCommand {
  /// The subcommands and `--version`.
  public static let configuration = CommandConfiguration(
    commandName: "recurrent",
    abstract: "Recurrent neural networks (GRU, LSTM, RNN): language models, sequence models, benchmarks.",
    version: RecurrentInfo.version,
    subcommands: [
      Train.self, Evaluate.self, Generate.self, Fit.self, Predict.self, TaskCommand.self, ExampleCommand.self,
      NGram.self, HMM.self,
      Prepare.self, Export.self, Serve.self, MPICheck.self, Bench.self, BenchGEMM.self, BenchBPE.self,
    ])
  /// A command to be filled in by the parser.
  public init() {}

  /// ArgumentParser's message for `error` as one line: its first line, with a list of allowed
  /// values (which it prints one `- value` per line) folded in.
  public static func oneLineMessage(for error: Error) -> String {
    let lines = message(for: error).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
    guard let first = lines.first else { return "\(error)" }
    let values = lines.dropFirst().filter { $0.hasPrefix("- ") }.map { $0.dropFirst(2) }
    return values.isEmpty ? first : first + " " + values.joined(separator: ", ")
  }

  /// Parses and runs the command line. Help and version print as ArgumentParser prints them;
  /// every error is one line on stderr, `Error: ...` (with a pointer to `--help` for usage
  /// errors), and exit status 1, or 64 for usage errors.
  public static func runAndExit(_ arguments: [String]? = nil) -> Never {
    do {
      var command = try parseAsRoot(arguments)
      try command.run()
      Foundation.exit(0)
    } catch let error as ExitCode where error != .validationFailure {
      Foundation.exit(error.rawValue)  // already said (e.g. by another MPI rank)
    } catch {
      let code = exitCode(for: error)
      if code == .success { exit(withError: error) }  // --help, --version
      var line = oneLineMessage(for: error)
      if code == .validationFailure { line += " (see 'recurrent --help')" }
      FileHandle.standardError.write(Data(("Error: " + line + "\n").utf8))
      Foundation.exit(code.rawValue)
    }
  }
}
