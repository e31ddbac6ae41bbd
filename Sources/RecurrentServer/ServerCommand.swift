import ArgumentParser
import Foundation
import Hummingbird
import NIOCore
import Recurrent
import Serving
import ServiceLifecycle
import TextCorpus
import Training

/// `recurrent-server`: serve a language-model checkpoint over HTTP.
public struct ServerCommand: AsyncParsableCommand {
  /// The command's name, help and version.
  public static let configuration = CommandConfiguration(
    commandName: "recurrent-server",
    abstract: "Serve a language model over an OpenAI-compatible HTTP API, many streams batched into one step.",
    discussion: """
      Endpoints: POST /v1/completions and /v1/chat/completions (streaming with "stream": true as
      Server-Sent Events), GET /v1/models, /health, /metrics (Prometheus) and / (a page to try it).
      SIGTERM or SIGINT stops accepting, lets active streams finish for --shutdown-timeout seconds,
      cancels the rest and exits 0.
      """,
    version: RecurrentInfo.version)

  @Option(help: "Checkpoint (.safetensors) from recurrent train.") var checkpoint: String
  @Option(help: "Address to listen on.") var host = "127.0.0.1"
  @Option(help: "Port (0: a free one, printed at start).") var port = 8080
  @Option(help: "Name of the model in /v1/models and responses. [default: the checkpoint's file stem]") var modelName: String?
  @Option(help: "Largest max_tokens a request may ask for.") var maxTokensLimit = 4096
  @Option(help: "Streams generated together at most.") var maxStreams = 256
  @Option(help: "Streams waiting for a slot at most; beyond, 429. [default: --max-streams]") var maxQueued: Int?
  @Option(help: "Largest request body in bytes (413 beyond).") var maxBodyBytes = 1 << 20
  @Option(help: "Require `Authorization: Bearer KEY` on every endpoint but /health.") var apiKey: String?
  @Option(help: "Seconds active streams may take to finish after SIGTERM/SIGINT.") var shutdownTimeout: Double = 10
  @Option(help: "Threads of the model step. [default: half the cores, at least 1: the rest serve HTTP]") var threads: Int?
  @Option(
    help: "The model step's products: f32, or bf16 (bfloat16 operands, float32 accumulation; CPUs with AVX512_BF16). [default: f32]"
  ) var precision: String?

  /// A command to be filled in by the parser.
  public init() {}

  /// Checks the options' ranges.
  public func validate() throws {
    guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535, got \(port)") }
    guard maxTokensLimit >= 1 && maxTokensLimit <= 1 << 20 else { throw ValidationError("--max-tokens-limit must be in 1...1048576") }
    guard maxStreams >= 1 && maxStreams <= 4096 else { throw ValidationError("--max-streams must be in 1...4096") }
    if let maxQueued, maxQueued < 0 || maxQueued > 1 << 16 { throw ValidationError("--max-queued must be in 0...65536") }
    guard maxBodyBytes >= 64 else { throw ValidationError("--max-body-bytes must be at least 64") }
    guard shutdownTimeout >= 0 && shutdownTimeout.isFinite else { throw ValidationError("--shutdown-timeout must be >= 0") }
    if let threads, threads < 1 || threads > 256 { throw ValidationError("--threads must be in 1...256") }
    if let apiKey, apiKey.isEmpty { throw ValidationError("--api-key must not be empty") }
    if let precision {
      guard let chosen = Precision(rawValue: precision) else { throw ValidationError("--precision must be f32 or bf16, got \(precision)") }
      if chosen == .bfloat16 && !Precision.bfloat16IsSupported {
        throw ValidationError("--precision bf16 needs a CPU with AVX512_BF16 (avx512_bf16 in /proc/cpuinfo); this one lacks it")
      }
    }
  }

  /// Parses and runs the command line; help and version print as ArgumentParser prints them,
  /// every error is one line on stderr, `Error: ...` (usage errors point to `--help`), exit
  /// status 1, or 64 for usage errors.
  public static func runAndExit() async -> Never {
    do {
      let command = try parse()
      try await command.run()
      Foundation.exit(0)
    } catch {
      let code = exitCode(for: error)
      if code == .success { exit(withError: error) }  // --help, --version
      var line = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
      if code == .validationFailure { line += " (see 'recurrent-server --help')" }
      FileHandle.standardError.write(Data(("Error: " + line + "\n").utf8))
      Foundation.exit(code.rawValue)
    }
  }

  /// Loads the checkpoint and serves until SIGTERM or SIGINT.
  public func run() async throws {
    let loaded = try Checkpoint.load(from: checkpoint)
    var limits = ServingLimits()
    limits.maxTokensLimit = maxTokensLimit
    limits.defaultMaxTokens = min(limits.defaultMaxTokens, maxTokensLimit)
    var scheduling = Scheduler.Configuration()
    scheduling.maxStreams = maxStreams
    scheduling.maxQueued = maxQueued ?? maxStreams
    scheduling.threads = threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount / 2)
    scheduling.precision = precision.flatMap(Precision.init(rawValue:)) ?? .float32
    let name = modelName ?? URL(fileURLWithPath: checkpoint).deletingPathExtension().lastPathComponent
    let state = ServerState(
      model: loaded.model, vocabulary: loaded.vocabulary, modelName: name, limits: limits, scheduler: scheduling,
      apiKey: apiKey, maxBodyBytes: maxBodyBytes)
    let (host, port) = (self.host, self.port)
    let app = Application(
      router: makeRouter(state),
      configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "recurrent"),
      onServerRunning: { channel in
        let bound = channel.localAddress?.port ?? port
        // One line, written at once (scripts read the port from it).
        FileHandle.standardOutput.write(Data("recurrent-server: serving \(name) on http://\(host):\(bound)\n".utf8))
      },
      logger: quietLogger())
    // SIGTERM/SIGINT shut services down in reverse order: the scheduler first (new requests get
    // 503, active streams finish for --shutdown-timeout, the rest are cancelled), then the HTTP
    // server, whose connections have ended by then.
    // A client that stopped reading cannot hold the server: 2 s after the streams' timeout,
    // whatever is left is cancelled (connections closed).
    var configuration = ServiceGroupConfiguration(
      services: [app, SchedulerService(state: state, timeout: shutdownTimeout)],
      gracefulShutdownSignals: [.sigterm, .sigint], logger: quietLogger())
    configuration.maximumGracefulShutdownDuration = .milliseconds(Int((shutdownTimeout + 2) * 1000))
    let group = ServiceGroup(configuration: configuration)
    do {
      try await group.run()
    } catch is CancellationError {
      // The forced end after the graceful shutdown's deadline: still a clean stop.
    }
  }
}

/// The scheduler as a service: on graceful shutdown (SIGTERM/SIGINT) it stops accepting, lets
/// active streams finish for `timeout` seconds, then cancels the rest.
struct SchedulerService: Service {
  let state: ServerState
  let timeout: Double

  func run() async throws {
    try? await gracefulShutdown()
    let scheduler = state.scheduler
    let seconds = timeout
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
      Thread.detachNewThread {
        scheduler.shutdown(timeout: seconds)
        done.resume()
      }
    }
  }
}
