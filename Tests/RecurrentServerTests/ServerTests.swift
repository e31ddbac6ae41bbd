import Foundation
import Hummingbird
import Logging
import HummingbirdTesting
import NIOCore
import Recurrent
import RecurrentServer
import Serving
import Testing
import TestSupport
import TextCorpus
import Training

// The HTTP API in process (Hummingbird's testing module): every endpoint, the SSE framing, each
// bad input as an OpenAI-style JSON error, the caps, the API key, and a client that disconnects
// mid-stream freeing its slot (over a real socket).

private let vocabulary = Vocabulary(kind: .char, tokens: Array("\n abcdefghijklmnopqrstuvwxyz.,:").map(String.init))

private func makeState(
  maxStreams: Int = 8, maxQueued: Int = 8, apiKey: String? = nil, maxBodyBytes: Int = 1 << 20, hidden: Int = 16
) -> (ServerState, LanguageModel) {
  var rng = SplitMix64(seed: 21)
  let model = LanguageModel(
    LanguageModelConfiguration(cell: .lstm, layers: 2, hiddenSize: hidden, embeddingSize: 5, vocabularySize: vocabulary.count),
    using: &rng)
  var scheduling = Scheduler.Configuration()
  scheduling.maxStreams = maxStreams
  scheduling.maxQueued = maxQueued
  let state = ServerState(
    model: model, vocabulary: vocabulary, modelName: "tiny", limits: ServingLimits(), scheduler: scheduling,
    apiKey: apiKey, maxBodyBytes: maxBodyBytes)
  return (state, model)
}

private func app(_ state: ServerState) -> some ApplicationProtocol {
  Application(router: makeRouter(state), logger: {
    var l = Logger(label: "test")
    l.logLevel = .critical
    return l
  }())
}

private func json(_ buffer: ByteBuffer) -> [String: Any] {
  (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any] ?? [:]
}

private func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

/// What `recurrent generate` writes for this prompt, length and seed.
private func generated(_ model: LanguageModel, prompt: String, length: Int, seed: UInt64) throws -> String {
  var options = SamplingOptions()
  options.seed = seed
  var streamer = TextStreamer(vocabulary: vocabulary, atLineStart: prompt.hasSuffix("\n"))
  var text = ""
  for id in TokenGenerator(model: model, prime: try vocabulary.promptIDs(prompt), count: length, options: options) {
    text += streamer.push(id)
  }
  return text + streamer.flush()
}

@Test func endpointsAnswerAsOpenAIClientsExpect() async throws {
  let (state, model) = makeState()
  defer { state.scheduler.shutdown(timeout: 1) }
  let expected = try generated(model, prompt: "to be", length: 30, seed: 4)
  let chatExpected = try generated(model, prompt: "user: hi\nassistant:", length: 8, seed: 2)
  try await app(state).test(.router) { client in
    try await client.execute(uri: "/health", method: .get) { r in
      #expect(r.status == .ok && String(buffer: r.body) == #"{"status":"ok"}"#)
    }
    try await client.execute(uri: "/v1/models", method: .get) { r in
      let data = json(r.body)["data"] as? [[String: Any]]
      #expect(r.status == .ok && data?.first?["id"] as? String == "tiny" && data?.first?["object"] as? String == "model")
    }
    try await client.execute(uri: "/", method: .get) { r in
      let page = String(buffer: r.body)
      #expect(r.status == .ok && page.contains("<textarea") && page.contains("/v1/completions") && !page.contains("http://"))
    }
    // A plain completion: the usual object, and recurrent generate's text.
    try await client.execute(
      uri: "/v1/completions", method: .post, body: body(#"{"model":"tiny","prompt":"to be","max_tokens":30,"seed":4}"#)
    ) { r in
      let o = json(r.body)
      let choice = (o["choices"] as? [[String: Any]])?.first
      #expect(r.status == .ok && o["object"] as? String == "text_completion" && o["model"] as? String == "tiny")
      #expect((o["id"] as? String)?.hasPrefix("cmpl-") == true && o["created"] is Int)
      #expect(choice?["text"] as? String == expected && choice?["finish_reason"] as? String == "length")
      let usage = o["usage"] as? [String: Int]
      #expect(usage == ["prompt_tokens": 5, "completion_tokens": 30, "total_tokens": 35])
    }
    // Streaming: SSE events, one JSON chunk each, then [DONE]; the pieces make the same text.
    try await client.execute(
      uri: "/v1/completions", method: .post, body: body(#"{"prompt":"to be","max_tokens":30,"seed":4,"stream":true}"#)
    ) { r in
      #expect(r.status == .ok && r.headers[.contentType] == "text/event-stream")
      let raw = String(buffer: r.body)
      #expect(raw.hasSuffix("data: [DONE]\n\n"))
      let events = raw.components(separatedBy: "\n\n").filter { !$0.isEmpty }
      #expect(events.allSatisfy { $0.hasPrefix("data: ") && !$0.dropFirst(6).contains("\n") })
      let chunks = events.dropLast().map { json(ByteBuffer(string: String($0.dropFirst(6)))) }
      let text = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["text"] as? String }.joined()
      #expect(text == expected)
      #expect(((chunks.last?["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String) == "length")
      #expect(chunks.allSatisfy { $0["object"] as? String == "text_completion" })
    }
    // Chat: the messages joined by the template, an assistant message back.
    try await client.execute(
      uri: "/v1/chat/completions", method: .post,
      body: body(#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":8,"seed":2}"#)
    ) { r in
      let o = json(r.body)
      let message = ((o["choices"] as? [[String: Any]])?.first?["message"]) as? [String: String]
      #expect(r.status == .ok && o["object"] as? String == "chat.completion" && message?["role"] == "assistant")
      #expect(message?["content"] == chatExpected)
    }
    // Metrics: Prometheus text with the counters and the histogram.
    try await client.execute(uri: "/metrics", method: .get) { r in
      let text = String(buffer: r.body)
      for name in [
        "recurrent_http_requests_total{path=\"/v1/completions\",status=\"200\"} 2", "recurrent_generated_tokens_total",
        "recurrent_active_streams", "recurrent_queued_streams", "recurrent_step_seconds_bucket", "recurrent_step_time_share",
      ] {
        #expect(text.contains(name), "metrics lack \(name)")
      }
    }
  }
}

@Test func badInputGetsOpenAIStyleErrors() async throws {
  let (state, _) = makeState(maxBodyBytes: 200)
  defer { state.scheduler.shutdown(timeout: 1) }
  try await app(state).test(.router) { client in
    let cases: [(String, HTTPRequest.Method, String?, Int, String?)] = [
      ("/v1/completions", .post, "{not json", 400, nil),
      ("/v1/completions", .post, "", 400, nil),
      ("/v1/completions", .post, #"{"prompt": 12}"#, 400, "prompt"),
      ("/v1/completions", .post, #"{"max_tokens": "many"}"#, 400, "max_tokens"),
      ("/v1/completions", .post, #"{"prompt": "ABC"}"#, 400, "prompt"),
      ("/v1/completions", .post, #"{"max_tokens": -1}"#, 400, "max_tokens"),
      ("/v1/completions", .post, #"{"max_tokens": 100000}"#, 400, "max_tokens"),
      ("/v1/completions", .post, #"{"temperature": -1}"#, 400, "temperature"),
      ("/v1/completions", .post, #"{"top_p": 1.5}"#, 400, "top_p"),
      ("/v1/completions", .post, #"{"top_k": -2}"#, 400, "top_k"),
      ("/v1/completions", .post, #"{"n": 3}"#, 400, "n"),
      ("/v1/completions", .post, #"{"logprobs": 2}"#, 400, "logprobs"),
      ("/v1/completions", .post, "{\"prompt\": \"" + String(repeating: "a", count: 300) + "\"}", 413, nil),
      ("/v1/chat/completions", .post, #"{"messages": []}"#, 400, "messages"),
      ("/v1/nothing", .get, nil, 404, nil),
      ("/v1/completions", .get, nil, 405, nil),
      ("/health", .post, nil, 405, nil),
    ]
    for (uri, method, text, status, param) in cases {
      try await client.execute(uri: uri, method: method, body: text.map(body)) { r in
        #expect(Int(r.status.code) == status, "\(uri) \(text ?? ""): \(r.status)")
        #expect(r.headers[.contentType] == "application/json")
        let error = json(r.body)["error"] as? [String: Any]
        #expect(error?["message"] is String && error?["type"] is String, "\(uri) \(text ?? "")")
        if let param { #expect(error?["param"] as? String == param, "\(uri) \(text ?? "")") }
      }
    }
    // The prompt's stray character is named.
    try await client.execute(uri: "/v1/completions", method: .post, body: body(#"{"prompt": "aB"}"#)) { r in
      #expect(((json(r.body)["error"] as? [String: Any])?["message"] as? String)?.contains("'B'") == true)
    }
    // Still serving after all that.
    try await client.execute(uri: "/v1/completions", method: .post, body: body(#"{"prompt":"a","max_tokens":3}"#)) { r in
      #expect(r.status == .ok)
    }
  }
}

@Test func apiKeysAndCapacityLimits() async throws {
  let (state, _) = makeState(maxStreams: 1, maxQueued: 0, apiKey: "sesame")
  defer { state.scheduler.shutdown(timeout: 1) }
  try await app(state).test(.router) { client in
    try await client.execute(uri: "/v1/models", method: .get) { r in
      #expect(r.status == .unauthorized && (json(r.body)["error"] as? [String: Any])?["type"] as? String == "authentication_error")
    }
    try await client.execute(uri: "/v1/models", method: .get, headers: [.authorization: "Bearer wrong"]) { r in
      #expect(r.status == .unauthorized)
    }
    try await client.execute(uri: "/health", method: .get) { r in #expect(r.status == .ok) }
    try await client.execute(uri: "/v1/models", method: .get, headers: [.authorization: "Bearer sesame"]) { r in
      #expect(r.status == .ok)
    }
    // The one slot is taken and nothing may queue: 429 with Retry-After.
    // A stream that cannot finish while the test runs (it is cancelled below), so the check
    // does not race its end.
    var long = CompletionRequest()
    long.prompt = .text("a")
    long.max_tokens = 1 << 40
    var unlimited = ServingLimits()
    unlimited.maxTokensLimit = 1 << 40
    let ticket = try state.scheduler.submit(try long.job(vocabulary: vocabulary, limits: unlimited))
    try await client.execute(
      uri: "/v1/completions", method: .post, headers: [.authorization: "Bearer sesame"], body: body(#"{"prompt":"a"}"#)
    ) { r in
      #expect(r.status == .tooManyRequests && r.headers[.retryAfter] != nil)
      #expect((json(r.body)["error"] as? [String: Any])?["type"] as? String == "rate_limit_error")
    }
    ticket.cancel()
    for await _ in ticket.events {}
  }
}

@Test func aClientThatDisconnectsFreesItsSlot() async throws {
  let (state, _) = makeState(maxStreams: 2, hidden: 256)  // slow enough steps to hang up mid-stream
  defer { state.scheduler.shutdown(timeout: 1) }
  try await app(state).test(.live) { client in
    let port = try #require(client.port)
    // A raw socket: send a streaming request, read the first bytes, hang up.
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    #expect(connected == 0)
    let payload = #"{"prompt":"a","max_tokens":100000,"stream":true}"#.replacingOccurrences(of: "100000", with: "4096")
    let request =
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(payload.utf8.count)\r\n\r\n\(payload)"
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    var buffer = [UInt8](repeating: 0, count: 256)
    let got = recv(fd, &buffer, buffer.count, 0)
    #expect(got > 0)
    // The response's first bytes can leave before the scheduler admits the stream (a loaded
    // machine): wait for it to hold its slot, then hang up.
    var started = state.scheduler.snapshot.active
    for _ in 0..<200 where started != 1 {
      try await Task.sleep(for: .milliseconds(10))
      started = state.scheduler.snapshot.active
    }
    #expect(started == 1)
    close(fd)
    // The slot frees within a few steps of the disconnect.
    var active = 1
    for _ in 0..<200 where active != 0 {
      try await Task.sleep(for: .milliseconds(10))
      active = state.scheduler.snapshot.active
    }
    #expect(active == 0, "the disconnected stream still holds its slot")
    // It was cancelled, not finished: far fewer than its 4096 tokens were generated.
    #expect(state.scheduler.snapshot.tokensGenerated < 4096)
  }
}
