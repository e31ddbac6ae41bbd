import Foundation
import Recurrent
import Serving
import Testing
import TestSupport
import TextCorpus
import Training

// The scheduler serves many streams in one batched step; each stream's text must be exactly
// what `recurrent generate` writes for the same prompt, seed and sampling options, whatever is
// served beside it and in whichever row. Plus stop sequences, validation, caps and cancellation.

private let vocabulary = Vocabulary(kind: .char, tokens: Array("\n abcdefghijklmnopqrstuvwxyz.,").map(String.init))

private func model(_ cell: CellKind, seed: UInt64 = 9) -> LanguageModel {
  var rng = SplitMix64(seed: seed)
  return LanguageModel(
    LanguageModelConfiguration(cell: cell, layers: 2, hiddenSize: 21, embeddingSize: 6, vocabularySize: vocabulary.count),
    using: &rng)
}

/// What `recurrent generate` writes after the prompt.
private func generated(_ model: LanguageModel, _ job: CompletionJob) -> String {
  var streamer = TextStreamer(vocabulary: vocabulary, atLineStart: job.promptEndsLine)
  var text = ""
  for id in TokenGenerator(model: model, prime: job.prompt, count: job.maxTokens, options: job.sampling) {
    text += streamer.push(id)
  }
  return text + streamer.flush()
}

private func collect(_ ticket: Ticket) async -> (String, StreamEvent?) {
  var text = ""
  var end: StreamEvent? = nil
  for await event in ticket.events {
    if case .text(let piece) = event { text += piece } else { end = event }
  }
  return (text, end)
}

private func jobs(_ count: Int) throws -> [CompletionJob] {
  var rng = SplitMix64(seed: 5)
  let words = ["the cat", "a", "", "zebra,", "over the hill\n", "q"]
  return try (0..<count).map { i in
    var request = CompletionRequest()
    request.prompt = .text(words[i % words.count] + String(repeating: "x", count: i % 4))
    request.max_tokens = 5 + Int(rng.next() % 40)
    request.seed = Int64(i * 7 + 1)
    request.temperature = [nil, 0.7, 1.3, 0][i % 4]
    request.top_k = i % 3 == 0 ? 5 : nil
    request.top_p = i % 5 == 0 ? 0.9 : nil
    return try request.job(vocabulary: vocabulary, limits: ServingLimits())
  }
}

@Test(arguments: [CellKind.gru, .lstm, .rnnTanh, .gruResetBefore])
func sixtyFourStreamsGiveGeneratesTextEach(cell: CellKind) async throws {
  let lm = model(cell)
  let all = try jobs(64)
  let expected = all.map { generated(lm, $0) }
  // All 64 at once (one batch), then 7 slots with the rest queued (rows are reused and moved).
  for maxStreams in [64, 7] {
    var configuration = Scheduler.Configuration()
    configuration.maxStreams = maxStreams
    configuration.maxQueued = 64
    configuration.threads = 2
    let scheduler = Scheduler(model: lm, vocabulary: vocabulary, configuration: configuration)
    scheduler.start()
    let tickets = try all.map { try scheduler.submit($0) }
    for (i, ticket) in tickets.enumerated() {
      let (text, end) = await collect(ticket)
      #expect(text == expected[i], "\(cell) stream \(i) with \(maxStreams) slots")
      #expect(end == .finished(.length, Usage(promptTokens: all[i].prompt.count, completionTokens: all[i].maxTokens)))
    }
    #expect(scheduler.snapshot.tokensGenerated == all.reduce(0) { $0 + $1.maxTokens })
    scheduler.shutdown(timeout: 1)
  }
}

@Test func stopSequencesEndTheTextBeforeThem() {
  var m = StopMatcher(["END", "\n\n"])
  #expect(m.push("abc") == ("abc", false))
  #expect(m.push("xE") == ("x", false))  // "E" could begin "END": held back
  #expect(m.push("N") == ("", false))
  #expect(m.push("Dtail") == ("", true))
  var n = StopMatcher(["END"])
  #expect(n.push("xEN") == ("x", false))
  #expect(n.push("o") == ("ENo", false))  // not a stop after all: sent
  #expect(n.push("E", final: true) == ("E", false))  // the end flushes
  var both = StopMatcher(["bc", "ab"])
  #expect(both.push("xabc") == ("x", true))  // the earliest stop wins
  var none = StopMatcher([])
  #expect(none.push("anything") == ("anything", false))
}

@Test func aStopSequenceFinishesTheStreamWithStop() async throws {
  let lm = model(.gru)
  var request = CompletionRequest()
  request.prompt = .text("the ")
  request.max_tokens = 200
  request.seed = 3
  let free = try request.job(vocabulary: vocabulary, limits: ServingLimits())
  let text = generated(lm, free)
  // Stop at the text's first two-character sequence after position 5.
  let characters = Array(text)
  let stop = String(characters[5...6])
  request.stop = .list([stop])
  let job = try request.job(vocabulary: vocabulary, limits: ServingLimits())
  let scheduler = Scheduler(model: lm, vocabulary: vocabulary)
  scheduler.start()
  let (served, end) = await collect(try scheduler.submit(job))
  let expected = String(text[..<text.range(of: stop)!.lowerBound])
  #expect(served == expected)
  if case .finished(let reason, let usage) = end {
    #expect(reason == .stop && usage.completionTokens < 200)
  } else {
    Issue.record("no finish event")
  }
  scheduler.shutdown(timeout: 1)
}

@Test func badRequestsNameTheirField() throws {
  func field(_ change: (inout CompletionRequest) -> Void) -> String? {
    var request = CompletionRequest()
    request.prompt = .text("abc")
    change(&request)
    do {
      _ = try request.job(vocabulary: vocabulary, limits: ServingLimits())
      return nil
    } catch {
      #expect(error.status == 400)
      return error.param
    }
  }
  #expect(field { $0.max_tokens = -1 } == "max_tokens")
  #expect(field { $0.max_tokens = 5000 } == "max_tokens")
  #expect(field { $0.temperature = -0.5 } == "temperature")
  #expect(field { $0.top_p = 0 } == "top_p")
  #expect(field { $0.top_p = 1.5 } == "top_p")
  #expect(field { $0.top_k = -1 } == "top_k")
  #expect(field { $0.n = 2 } == "n")
  #expect(field { $0.logprobs = 1 } == "logprobs")
  #expect(field { $0.echo = true } == "echo")
  #expect(field { $0.suffix = "x" } == "suffix")
  #expect(field { $0.stop = .list(["a", "b", "c", "d", "e"]) } == "stop")
  #expect(field { $0.prompt = .text("ABC") } == "prompt")  // 'A' is not in the vocabulary
  #expect(field { $0.max_tokens = 0 } == nil)
  #expect(field { $0.temperature = 0 } == nil)
  // Wrong types and broken JSON: 400s from the decoder, naming the field where there is one.
  #expect(throws: APIError(status: 400, message: "max_tokens has the wrong type", param: "max_tokens")) {
    try decodeBody(CompletionRequest.self, from: Data(#"{"max_tokens": "ten"}"#.utf8))
  }
  #expect(throws: APIError(status: 400, message: "the body is not valid JSON")) {
    try decodeBody(CompletionRequest.self, from: Data("{".utf8))
  }
  // Unknown fields are ignored.
  let parsed = try decodeBody(CompletionRequest.self, from: Data(#"{"prompt": "ab", "frequency_penalty": 0.5}"#.utf8))
  #expect(parsed.prompt != nil)
}

@Test func fullQueuesAnswer429AndCancelledStreamsFreeTheirSlot() async throws {
  let lm = model(.gru)
  var configuration = Scheduler.Configuration()
  configuration.maxStreams = 1
  configuration.maxQueued = 1
  let scheduler = Scheduler(model: lm, vocabulary: vocabulary, configuration: configuration)
  scheduler.start()
  var long = CompletionRequest()
  long.prompt = .text("a")
  long.max_tokens = 1 << 40  // never finishes by itself: the checks below cannot race its end
  var unlimited = ServingLimits()
  unlimited.maxTokensLimit = 1 << 40
  let job = try long.job(vocabulary: vocabulary, limits: unlimited)
  let first = try scheduler.submit(job)
  let second = try scheduler.submit(job)
  #expect(throws: APIError.self) { try scheduler.submit(job) }
  do {
    _ = try scheduler.submit(job)
  } catch {
    #expect(error.status == 429)
  }
  // The client of the first goes away: its slot frees at the next step and the second runs.
  first.cancel()
  let (_, end) = await collect(first)
  if case .finished(let reason, let usage) = end {
    #expect(reason == .cancelled && usage.completionTokens < 1 << 40)
  } else {
    Issue.record("the cancelled stream did not finish")
  }
  second.cancel()
  _ = await collect(second)
  // After shutdown, submissions are refused with 503.
  scheduler.shutdown(timeout: 1)
  do {
    _ = try scheduler.submit(job)
    Issue.record("a submission after shutdown was accepted")
  } catch {
    #expect(error.status == 503)
  }
}
