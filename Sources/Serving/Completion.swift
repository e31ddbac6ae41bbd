import Formats
import Foundation
import Recurrent
import TextCorpus
import Training

/// A request the server refuses, as OpenAI's API words it: an HTTP status, a message, the error
/// type and the parameter at fault.
public struct APIError: Error, Equatable, Sendable, CustomStringConvertible {
  /// The HTTP status (400, 401, 404, 405, 413, 429, 503).
  public let status: Int
  /// One line for a person.
  public let message: String
  /// `invalid_request_error`, `authentication_error`, `rate_limit_error`, `not_found_error`, ...
  public let type: String
  /// The request field at fault, if one is.
  public let param: String?

  /// An error from its parts.
  public init(status: Int, message: String, type: String = "invalid_request_error", param: String? = nil) {
    self.status = status
    self.message = message
    self.type = type
    self.param = param
  }

  /// A 400 about `param`.
  public static func invalid(_ param: String, _ message: String) -> APIError {
    APIError(status: 400, message: message, param: param)
  }

  /// `{"error": {"message", "type", "param", "code"}}`.
  public var json: String {
    let param: JSONValue = param.map { .string($0) } ?? .null
    let error: JSONValue = ["message": .string(message), "type": .string(type), "param": param, "code": .null]
    let body: JSONValue = ["error": error]
    return body.text
  }

  /// The message.
  public var description: String { message }
}

/// The fields of `POST /v1/completions` (OpenAI's names). Unknown fields are ignored.
public struct CompletionRequest: Decodable, Sendable {
  /// The model name the client asked for (this server has one model; the name is not checked).
  public var model: String?
  /// The text to continue (empty: after a newline).
  public var prompt: Prompt?
  /// Tokens to generate at most (default 256, capped by `--max-tokens-limit`).
  public var max_tokens: Int?
  /// Sampling temperature; 0 is greedy.
  public var temperature: Double?
  /// Nucleus sampling: keep the most likely tokens whose probability reaches this.
  public var top_p: Double?
  /// Keep only the k most likely tokens (0: off; an extension, as vLLM and llama.cpp accept).
  public var top_k: Int?
  /// Seed of the stream's random draws: the same seed gives the same text.
  public var seed: Int64?
  /// Up to 4 sequences that end the text before them.
  public var stop: Stop?
  /// Send Server-Sent Events as the text is generated.
  public var stream: Bool?
  /// Choices per prompt: only 1 is supported.
  public var n: Int?
  /// Not supported (a 400 names it).
  public var logprobs: Int?
  /// Not supported (a 400 names it).
  public var echo: Bool?
  /// Not supported (a 400 names it).
  public var suffix: String?
  /// Not supported unless 1.
  public var best_of: Int?

  /// An empty request (every field at its default).
  public init() {}

  /// `prompt`: a string (a list of one string is taken too).
  public enum Prompt: Decodable, Sendable {
    case text(String)
    /// Reads a string, or a list holding one string.
    public init(from decoder: any Decoder) throws {
      let c = try decoder.singleValueContainer()
      if let s = try? c.decode(String.self) {
        self = .text(s)
      } else if let list = try? c.decode([String].self), list.count == 1 {
        self = .text(list[0])
      } else {
        throw DecodingError.typeMismatch(String.self, .init(codingPath: decoder.codingPath, debugDescription: "a string"))
      }
    }
    var text: String { if case .text(let s) = self { s } else { "" } }
  }

  /// `stop`: a string or a list of up to 4 strings.
  public enum Stop: Decodable, Sendable {
    case list([String])
    /// Reads a string or a list of strings.
    public init(from decoder: any Decoder) throws {
      let c = try decoder.singleValueContainer()
      if let s = try? c.decode(String.self) {
        self = .list([s])
      } else {
        self = .list(try c.decode([String].self))
      }
    }
    var strings: [String] { if case .list(let l) = self { l } else { [] } }
  }
}

/// Chat messages for `POST /v1/chat/completions`, joined into one prompt.
public struct ChatRequest: Decodable, Sendable {
  /// One message.
  public struct Message: Decodable, Sendable {
    /// `system`, `user` or `assistant`.
    public var role: String
    /// The message's text.
    public var content: String
  }
  /// The model name the client asked for (not checked).
  public var model: String?
  /// The conversation so far.
  public var messages: [Message]
  /// Tokens to generate at most.
  public var max_tokens: Int?
  /// Sampling temperature; 0 is greedy.
  public var temperature: Double?
  /// Nucleus sampling threshold.
  public var top_p: Double?
  /// Top-k sampling (0: off).
  public var top_k: Int?
  /// Seed of the stream's random draws.
  public var seed: Int64?
  /// Up to 4 stop sequences.
  public var stop: CompletionRequest.Stop?
  /// Send Server-Sent Events as the text is generated.
  public var stream: Bool?
  /// Choices per prompt: only 1 is supported.
  public var n: Int?
  /// Not supported when true.
  public var logprobs: Bool?

  /// The template: each message as `role: content` on its own line, then `assistant:` for the
  /// model to continue (a character model trained on dialogue, like the bundled play, reads it as
  /// a script).
  public var prompt: String {
    messages.map { "\($0.role): \($0.content)\n" }.joined() + "assistant:"
  }
}

/// What the scheduler runs: a validated request.
public struct CompletionJob: Sendable {
  /// The prompt's token ids (at least one).
  public var prompt: [Int]
  /// Tokens to generate at most.
  public var maxTokens: Int
  /// How tokens are drawn (the same as `recurrent generate`'s for the same values).
  public var sampling: SamplingOptions
  /// Stop sequences: the text ends before the first one that appears.
  public var stop: [String]
  /// Whether the prompt ended a line (words then start without a space).
  public var promptEndsLine: Bool

  /// A job from its parts.
  public init(prompt: [Int], maxTokens: Int, sampling: SamplingOptions, stop: [String], promptEndsLine: Bool) {
    self.prompt = prompt
    self.maxTokens = maxTokens
    self.sampling = sampling
    self.stop = stop
    self.promptEndsLine = promptEndsLine
  }
}

/// Limits the server applies to requests.
public struct ServingLimits: Sendable {
  /// `max_tokens` default.
  public var defaultMaxTokens = 256
  /// `max_tokens` cap (`--max-tokens-limit`).
  public var maxTokensLimit = 4096
  /// Longest prompt, in tokens.
  public var maxPromptTokens = 65_536
  /// Defaults.
  public init() {}
}

extension CompletionRequest {
  /// Validates the request for `vocabulary` (400s name the field).
  public func job(vocabulary: Vocabulary, limits: ServingLimits) throws(APIError) -> CompletionJob {
    if let n, n != 1 { throw .invalid("n", "n=\(n) is not supported: this server returns one choice") }
    if let best_of, best_of != 1 { throw .invalid("best_of", "best_of is not supported") }
    if logprobs != nil { throw .invalid("logprobs", "logprobs is not supported") }
    if echo == true { throw .invalid("echo", "echo is not supported") }
    if let suffix, !suffix.isEmpty { throw .invalid("suffix", "suffix is not supported") }
    return try makeJob(
      prompt: prompt?.text ?? "", maxTokens: max_tokens, temperature: temperature, topP: top_p, topK: top_k, seed: seed,
      stop: stop?.strings ?? [], vocabulary: vocabulary, limits: limits)
  }
}

extension ChatRequest {
  /// Validates the request for `vocabulary` (400s name the field).
  public func job(vocabulary: Vocabulary, limits: ServingLimits) throws(APIError) -> CompletionJob {
    if let n, n != 1 { throw .invalid("n", "n=\(n) is not supported: this server returns one choice") }
    if logprobs == true { throw .invalid("logprobs", "logprobs is not supported") }
    if messages.isEmpty { throw .invalid("messages", "messages must not be empty") }
    return try makeJob(
      prompt: prompt, maxTokens: max_tokens, temperature: temperature, topP: top_p, topK: top_k, seed: seed,
      stop: stop?.strings ?? [], vocabulary: vocabulary, limits: limits)
  }
}

func makeJob(
  prompt: String, maxTokens: Int?, temperature: Double?, topP: Double?, topK: Int?, seed: Int64?, stop: [String],
  vocabulary: Vocabulary, limits: ServingLimits
) throws(APIError) -> CompletionJob {
  let maxTokens = maxTokens ?? limits.defaultMaxTokens
  guard maxTokens >= 0 else { throw .invalid("max_tokens", "max_tokens must be >= 0, got \(maxTokens)") }
  guard maxTokens <= limits.maxTokensLimit else {
    throw .invalid("max_tokens", "max_tokens \(maxTokens) is over this server's limit of \(limits.maxTokensLimit)")
  }
  var sampling = SamplingOptions()
  if let temperature {
    guard temperature.isFinite, temperature >= 0, temperature <= 100 else {
      throw .invalid("temperature", "temperature must be in [0, 100], got \(temperature)")
    }
    // OpenAI's 0 is greedy decoding.
    if temperature == 0 { sampling.greedy = true } else { sampling.temperature = Float(temperature) }
  }
  if let topP {
    guard topP.isFinite, topP > 0, topP <= 1 else { throw .invalid("top_p", "top_p must be in (0, 1], got \(topP)") }
    sampling.topP = Float(topP)
  }
  if let topK {
    guard topK >= 0 else { throw .invalid("top_k", "top_k must be >= 0 (0: off), got \(topK)") }
    sampling.topK = topK == 0 ? nil : topK
  }
  if let seed { sampling.seed = UInt64(bitPattern: seed) }
  guard stop.count <= 4 else { throw .invalid("stop", "stop takes at most 4 sequences, got \(stop.count)") }
  guard !stop.contains(where: \.isEmpty) else { throw .invalid("stop", "a stop sequence must not be empty") }
  let ids: [Int]
  do {
    ids = try vocabulary.promptIDs(prompt)
  } catch let error as CorpusError {
    throw .invalid("prompt", "prompt: \(error)")
  } catch {
    throw .invalid("prompt", "prompt: \(error)")
  }
  guard ids.count <= limits.maxPromptTokens else {
    throw .invalid("prompt", "the prompt has \(ids.count) tokens, over this server's limit of \(limits.maxPromptTokens)")
  }
  return CompletionJob(
    prompt: ids, maxTokens: maxTokens, sampling: sampling, stop: stop, promptEndsLine: prompt.isEmpty || prompt.hasSuffix("\n"))
}

/// Decodes a JSON body, turning decoding errors into 400s that name the field.
public func decodeBody<T: Decodable>(_ type: T.Type, from data: Data) throws(APIError) -> T {
  guard !data.isEmpty else { throw APIError(status: 400, message: "the request needs a JSON body") }
  do {
    return try JSONDecoder().decode(T.self, from: data)
  } catch let DecodingError.typeMismatch(_, context) {
    let field = context.codingPath.map(\.stringValue).filter { Int($0) == nil }.last
    throw APIError(status: 400, message: "\(field ?? "body") has the wrong type", param: field)
  } catch let DecodingError.valueNotFound(_, context) {
    let field = context.codingPath.map(\.stringValue).last
    throw APIError(status: 400, message: "\(field ?? "body") must not be null", param: field)
  } catch let DecodingError.keyNotFound(key, _) {
    throw APIError(status: 400, message: "\(key.stringValue) is required", param: key.stringValue)
  } catch let DecodingError.dataCorrupted(context) {
    if context.codingPath.isEmpty { throw APIError(status: 400, message: "the body is not valid JSON") }
    let field = context.codingPath.map(\.stringValue).last
    throw APIError(status: 400, message: "\(field ?? "body") is malformed", param: field)
  } catch {
    throw APIError(status: 400, message: "the body is not a valid request")
  }
}
