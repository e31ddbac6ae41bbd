import Formats
import Foundation
import Hummingbird
import NIOCore
import Prometheus
import Recurrent
import Serving
import TextCorpus
import Training

/// Everything a request handler needs: the model's name, vocabulary, scheduler, limits, metrics.
public final class ServerState: Sendable {
  /// The name `/v1/models` lists and responses carry.
  public let modelName: String
  /// The checkpoint's vocabulary (prompts are encoded with it, text decoded).
  public let vocabulary: Vocabulary
  /// The continuous-batching scheduler that owns the model.
  public let scheduler: Scheduler
  /// Request limits.
  public let limits: ServingLimits
  /// `--api-key`: every endpoint but `/health` then needs `Authorization: Bearer KEY`.
  public let apiKey: String?
  /// Largest request body, in bytes (`--max-body-bytes`).
  public let maxBodyBytes: Int
  /// Seconds since 1970 when the server started (`created` of the model).
  public let started = Int(Date().timeIntervalSince1970)
  let metrics: ServerMetrics

  /// A server for `model`; the scheduler starts at once.
  public init(
    model: LanguageModel, vocabulary: Vocabulary, modelName: String, limits: ServingLimits,
    scheduler configuration: Scheduler.Configuration, apiKey: String?, maxBodyBytes: Int
  ) {
    let metrics = ServerMetrics()
    self.metrics = metrics
    self.modelName = modelName
    self.vocabulary = vocabulary
    self.limits = limits
    self.apiKey = apiKey
    self.maxBodyBytes = maxBodyBytes
    scheduler = Scheduler(model: model, vocabulary: vocabulary, configuration: configuration) { seconds, rows in
      metrics.stepLatency.record(seconds)
    }
    scheduler.start()
  }
}

/// The Prometheus metrics of `/metrics` (swift-prometheus's registry and text format).
final class ServerMetrics: Sendable {
  let registry = PrometheusCollectorRegistry()
  let stepLatency: ValueHistogram
  let tokens: Gauge
  let active: Gauge
  let queued: Gauge
  let stepShare: Gauge
  let stepSeconds: Gauge
  let busySeconds: Gauge

  init() {
    func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
      MetricNameDescriptor(namespace: "recurrent", metricName: metric, unitName: unit, helpText: help)
    }
    stepLatency = registry.makeValueHistogram(
      descriptor: name("step", "seconds", "Seconds per model step (all active streams advance one token)"),
      buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1])
    tokens = registry.makeGauge(descriptor: name("generated_tokens", "total", "Tokens generated since start"))
    active = registry.makeGauge(descriptor: name("active", "streams", "Streams being generated"))
    queued = registry.makeGauge(descriptor: name("queued", "streams", "Streams waiting for a slot"))
    stepShare = registry.makeGauge(
      descriptor: name("step_time", "share", "Share of the serving loop's busy time spent in the model step"))
    stepSeconds = registry.makeGauge(descriptor: name("step_time", "seconds_total", "Seconds in the model step since start"))
    busySeconds = registry.makeGauge(
      descriptor: name("busy", "seconds_total", "Seconds of serving-loop iterations with a stream to advance"))
    requests = MetricNameDescriptor(
      namespace: "recurrent", metricName: "http_requests", unitName: "total", helpText: "HTTP requests by path and status")
  }

  nonisolated(unsafe) let requests: MetricNameDescriptor  // immutable after init

  func countRequest(path: String, status: Int) {
    registry.makeCounter(descriptor: requests, labels: [("path", path), ("status", String(status))]).increment()
  }

  func text(_ snapshot: SchedulerSnapshot) -> String {
    tokens.set(Double(snapshot.tokensGenerated))
    active.set(Double(snapshot.active))
    queued.set(Double(snapshot.queued))
    stepShare.set(snapshot.stepShare)
    stepSeconds.set(snapshot.stepSeconds)
    busySeconds.set(snapshot.busySeconds)
    return registry.emitToString()
  }
}

// MARK: - Responses

func jsonResponse(_ status: HTTPResponse.Status, _ body: String, headers: HTTPFields = [:]) -> Response {
  var fields = headers
  fields[.contentType] = "application/json"
  return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
}

func errorResponse(_ error: APIError) -> Response {
  var headers: HTTPFields = [:]
  if error.status == 429 { headers[.retryAfter] = "1" }
  if error.status == 401 { headers[.wwwAuthenticate] = "Bearer" }
  return jsonResponse(HTTPResponse.Status(code: error.status), error.json, headers: headers)
}

/// A JSON string literal.
func quote(_ s: String) -> String { JSONValue.quoted(s) }

/// Request ids: `cmpl-` and a random hex tail.
func requestID(_ prefix: String) -> String {
  prefix + String((0..<24).map { _ in "0123456789abcdef".randomElement()! })
}

// MARK: - The router

/// The routes of the OpenAI-compatible API, the page, health and metrics.
public func makeRouter(_ state: ServerState) -> Router<BasicRequestContext> {
  let router = Router()
  router.middlewares.add(APIMiddleware(state: state))
  router.get("/health") { _, _ in jsonResponse(.ok, "{\"status\":\"ok\"}") }
  router.get("/") { _, _ in
    Response(
      status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
      body: ResponseBody(byteBuffer: ByteBuffer(string: pageHTML(modelName: state.modelName))))
  }
  router.get("/v1/models") { _, _ in
    let model: JSONValue = [
      "id": .string(state.modelName), "object": "model", "created": .int(state.started), "owned_by": "recurrent",
    ]
    let list: JSONValue = ["object": "list", "data": [model]]
    return jsonResponse(.ok, list.text)
  }
  router.get("/metrics") { _, _ in
    Response(
      status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
      body: ResponseBody(byteBuffer: ByteBuffer(string: state.metrics.text(state.scheduler.snapshot))))
  }
  router.post("/v1/completions") { request, context in
    var request = request
    let body = try await readBody(&request, limit: state.maxBodyBytes)
    let completion = try decodeBody(CompletionRequest.self, from: body)
    let job = try completion.job(vocabulary: state.vocabulary, limits: state.limits)
    return try completionResponse(state, job: job, stream: completion.stream ?? false, chat: false)
  }
  router.post("/v1/chat/completions") { request, context in
    var request = request
    let body = try await readBody(&request, limit: state.maxBodyBytes)
    let chat = try decodeBody(ChatRequest.self, from: body)
    let job = try chat.job(vocabulary: state.vocabulary, limits: state.limits)
    return try completionResponse(state, job: job, stream: chat.stream ?? false, chat: true)
  }
  // Known paths answer other methods with 405.
  for (path, allowed) in [
    ("/v1/completions", HTTPRequest.Method.post), ("/v1/chat/completions", .post), ("/v1/models", .get), ("/health", .get),
    ("/metrics", .get), ("/", .get),
  ] {
    for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] where method != allowed {
      router.on(RouterPath(path), method: method) { _, _ -> Response in
        throw APIError(status: 405, message: "\(path) takes \(allowed.rawValue) requests", param: nil)
      }
    }
  }
  return router
}

func readBody(_ request: inout Request, limit: Int) async throws -> Data {
  if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
    throw APIError(status: 413, message: "the body has \(length) bytes, over this server's limit of \(limit)")
  }
  do {
    let buffer = try await request.collectBody(upTo: limit)
    return Data(buffer.readableBytesView)
  } catch {
    throw APIError(status: 413, message: "the body is over this server's limit of \(limit) bytes")
  }
}

/// Authentication, 404s and errors as OpenAI-style JSON, and request counting.
struct APIMiddleware: RouterMiddleware {
  typealias Context = BasicRequestContext
  let state: ServerState

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
    let path = request.uri.path
    let known = ["/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "/"].contains(path)
    let response: Response
    if let key = state.apiKey, path != "/health", request.headers[.authorization] != "Bearer \(key)" {
      response = errorResponse(
        APIError(status: 401, message: "missing or wrong API key (Authorization: Bearer KEY)", type: "authentication_error"))
    } else {
      do {
        response = try await next(request, context)
      } catch let error as APIError {
        response = errorResponse(error)
      } catch let error as HTTPError where error.status == .notFound {
        response = errorResponse(APIError(status: 404, message: "no such endpoint: \(path)", type: "not_found_error"))
      } catch let error as HTTPError {
        response = errorResponse(APIError(status: Int(error.status.code), message: error.body ?? "\(error.status)"))
      }
    }
    state.metrics.countRequest(path: known ? path : "other", status: Int(response.status.code))
    return response
  }
}

// MARK: - Completions

func completionResponse(_ state: ServerState, job: CompletionJob, stream: Bool, chat: Bool) throws -> Response {
  let ticket = try state.scheduler.submit(job)
  let id = requestID(chat ? "chatcmpl-" : "cmpl-")
  let created = Int(Date().timeIntervalSince1970)
  let kind = chat ? "chat.completion" : "text_completion"
  if !stream {
    let body = ResponseBody { writer in
      var text = ""
      var finish = FinishReason.length
      var usage = Usage(promptTokens: job.prompt.count, completionTokens: 0)
      await withTaskCancellationHandler {
        for await event in ticket.events {
          switch event {
          case .text(let piece): text += piece
          case .finished(let reason, let u): (finish, usage) = (reason, u)
          }
        }
      } onCancel: {
        ticket.cancel()
      }
      let reason: JSONValue = .string(finish == .stop ? "stop" : "length")
      let message: JSONValue = ["role": "assistant", "content": .string(text)]
      let choice: JSONValue =
        chat
        ? ["index": 0, "message": message, "finish_reason": reason]
        : ["text": .string(text), "index": 0, "logprobs": .null, "finish_reason": reason]
      let counts: JSONValue = [
        "prompt_tokens": .int(usage.promptTokens), "completion_tokens": .int(usage.completionTokens),
        "total_tokens": .int(usage.promptTokens + usage.completionTokens),
      ]
      let json: JSONValue = [
        "id": .string(id), "object": .string(kind), "created": .int(created), "model": .string(state.modelName),
        "choices": [choice], "usage": counts,
      ]
      try await writer.write(ByteBuffer(string: json.text))
      try await writer.finish(nil)
    }
    return Response(status: .ok, headers: [.contentType: "application/json"], body: body)
  }
  let chunkKind = chat ? "chat.completion.chunk" : "text_completion"
  // Every chunk of this stream shares its head; per token only the text is escaped.
  let head =
    "data: {\"id\":\(quote(id)),\"object\":\(quote(chunkKind)),\"created\":\(created),\"model\":\(quote(state.modelName)),\"choices\":[{"
  @Sendable func chunk(_ text: String?, finish: String?, first: Bool = false) -> String {
    let finishJSON = finish.map(quote) ?? "null"
    if chat {
      var delta: [(String, JSONValue)] = []
      if first { delta.append(("role", "assistant")) }
      if let text { delta.append(("content", .string(text))) }
      return head + "\"index\":0,\"delta\":\(JSONValue.object(delta).text),\"finish_reason\":\(finishJSON)}]}\n\n"
    }
    return head + "\"text\":\(quote(text ?? "")),\"index\":0,\"logprobs\":null,\"finish_reason\":\(finishJSON)}]}\n\n"
  }
  let body = ResponseBody { writer in
    do {
      try await withTaskCancellationHandler {
        if chat { try await writer.write(ByteBuffer(string: chunk(nil, finish: nil, first: true))) }
        // Each event is one SSE event; the events waiting at once go out in one write.
        while true {
          let events = await ticket.events.drain()
          if events.isEmpty { break }
          var out = ""
          for event in events {
            switch event {
            case .text(let piece):
              out += chunk(piece, finish: nil)
            case .finished(let reason, _):
              if reason != .cancelled { out += chunk(chat ? nil : "", finish: reason == .stop ? "stop" : "length") }
              out += "data: [DONE]\n\n"
            }
          }
          try await writer.write(ByteBuffer(string: out))
        }
        try await writer.finish(nil)
      } onCancel: {
        ticket.cancel()
      }
    } catch {
      ticket.cancel()  // the client went away: free the slot at the next step
      throw error
    }
  }
  return Response(
    status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
}
