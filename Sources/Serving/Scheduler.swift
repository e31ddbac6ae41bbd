import Foundation
import Recurrent
import TextCorpus
import Training

/// Why a completion ended.
public enum FinishReason: String, Sendable {
  /// A stop sequence appeared.
  case stop
  /// `max_tokens` were generated.
  case length
  /// The client went away, or the server shut down before the end.
  case cancelled
}

/// Token counts of a completion, as OpenAI's `usage`.
public struct Usage: Sendable, Equatable {
  /// Tokens of the prompt fed to the model.
  public var promptTokens: Int
  /// Tokens generated.
  public var completionTokens: Int
  /// Counts from their parts.
  public init(promptTokens: Int, completionTokens: Int) {
    self.promptTokens = promptTokens
    self.completionTokens = completionTokens
  }
}

/// What a stream yields: pieces of text (never a split UTF-8 character), then its end.
public enum StreamEvent: Sendable, Equatable {
  /// More text.
  case text(String)
  /// The end, with why and the token counts.
  case finished(FinishReason, Usage)
}

/// A submitted completion: its events, and a way to give up on it.
public struct Ticket: Sendable {
  /// Text pieces, then one `.finished`.
  public let events: EventQueue
  let stream: ServedStream

  /// Stops the stream at the next step (a client that disconnected); its slot is freed then.
  public func cancel() { stream.cancel() }
}

/// A stream's events, handed from the scheduler's thread to one consumer task. `drain()` takes
/// every event waiting at once, so a consumer that falls behind catches up in one write
/// instead of one write per token.
public final class EventQueue: AsyncSequence, @unchecked Sendable {
  /// Events in order.
  public typealias Element = StreamEvent
  private let lock = NSLock()
  private var events: [StreamEvent] = []
  private var waiter: CheckedContinuation<[StreamEvent], Never>? = nil
  private var closed = false

  init() {}

  func post(_ event: StreamEvent, last: Bool = false) {
    lock.lock()
    if last { closed = true }
    if let waiter {
      self.waiter = nil
      lock.unlock()
      waiter.resume(returning: [event])
    } else {
      events.append(event)
      lock.unlock()
    }
  }

  /// Every event waiting now, waiting for at least one; empty once the stream has ended and
  /// everything was taken.
  public func drain() async -> [StreamEvent] {
    await withCheckedContinuation { (continuation: CheckedContinuation<[StreamEvent], Never>) in
      lock.lock()
      if !events.isEmpty {
        let taken = events
        events.removeAll(keepingCapacity: true)
        lock.unlock()
        continuation.resume(returning: taken)
      } else if closed {
        lock.unlock()
        continuation.resume(returning: [])
      } else {
        waiter = continuation
        lock.unlock()
      }
    }
  }

  /// Iterates the events one by one.
  public struct AsyncIterator: AsyncIteratorProtocol {
    let queue: EventQueue
    var buffered: [StreamEvent] = []
    var index = 0
    /// The next event, or nil after the last.
    public mutating func next() async -> StreamEvent? {
      if index == buffered.count {
        buffered = await queue.drain()
        index = 0
        if buffered.isEmpty { return nil }
      }
      index += 1
      return buffered[index - 1]
    }
  }

  /// An iterator over the events.
  public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(queue: self) }
}

/// Counters the scheduler keeps, read by `/metrics`.
public struct SchedulerSnapshot: Sendable {
  /// Streams being generated.
  public var active: Int
  /// Streams waiting for a slot.
  public var queued: Int
  /// Tokens generated since start.
  public var tokensGenerated: Int
  /// Model steps since start.
  public var steps: Int
  /// Seconds inside the model step (all streams' products and pointwise kernels).
  public var stepSeconds: Double
  /// Seconds of scheduler iterations that had a stream to advance (the step, sampling,
  /// text assembly, handing text to the HTTP side).
  public var busySeconds: Double
  /// `stepSeconds / busySeconds`: the share of the serving loop's time spent in the model.
  public var stepShare: Double { busySeconds > 0 ? stepSeconds / busySeconds : 0 }
}

/// A stream the scheduler advances.
final class ServedStream: @unchecked Sendable {
  let job: CompletionJob
  let queue: EventQueue
  var rng: SplitMix64
  var inputs: [Int]
  var nextInput = 0
  var generated = 0
  var streamer: TextStreamer
  var stopper: StopMatcher
  private let lock = NSLock()
  private var cancelled = false

  init(job: CompletionJob, vocabulary: Vocabulary, queue: EventQueue) {
    self.job = job
    self.queue = queue
    rng = SplitMix64(seed: job.sampling.seed)
    inputs = job.prompt
    streamer = TextStreamer(vocabulary: vocabulary, atLineStart: job.promptEndsLine)
    stopper = StopMatcher(job.stop)
  }

  func cancel() { lock.withLock { cancelled = true } }
  var isCancelled: Bool { lock.withLock { cancelled } }
  var usage: Usage { Usage(promptTokens: job.prompt.count, completionTokens: generated) }
}

/// Continuous batching: one thread owns the model and, every step, advances every active
/// stream together (one batched product per layer for all of them, each stream's state in a row
/// of a `LanguageModelStepper`). Between steps it admits queued streams and retires finished or
/// cancelled ones. A prompt is fed one token per step beside the others' steps, so a long prompt
/// never stalls them. Each stream has its own random generator, and the stepper is
/// batch-invariant, so a stream's tokens are exactly `recurrent generate`'s for the same
/// checkpoint, prompt, seed and sampling options, whatever else is being served.
public final class Scheduler: @unchecked Sendable {
  /// Capacity and queue.
  public struct Configuration: Sendable {
    /// Streams advanced together at most (`--max-streams`).
    public var maxStreams = 256
    /// Streams waiting for a slot at most; beyond, `submit` answers 429.
    public var maxQueued = 256
    /// Threads of the model step.
    public var threads = 1
    /// The model step's products: float32, or bf16 (`--precision bf16`, AVX512_BF16 only).
    public var precision = Precision.float32
    /// Defaults.
    public init() {}
  }

  let stepper: LanguageModelStepper
  let vocabulary: Vocabulary
  let configuration: Configuration
  private let condition = NSCondition()
  private var queue: [ServedStream] = []
  private var active: [ServedStream] = []
  private var accepting = true
  private var running = true
  private var snapshotValue = SchedulerSnapshot(active: 0, queued: 0, tokensGenerated: 0, steps: 0, stepSeconds: 0, busySeconds: 0)
  private var thread: Thread?
  private var loopFinished = false
  /// Called after every model step with its seconds and rows (for a latency histogram).
  public let onStep: (@Sendable (_ seconds: Double, _ rows: Int) -> Void)?

  /// A scheduler for `model` (its weights are copied); call `start()`.
  public init(
    model: LanguageModel, vocabulary: Vocabulary, configuration: Configuration = Configuration(),
    onStep: (@Sendable (_ seconds: Double, _ rows: Int) -> Void)? = nil
  ) {
    precondition(configuration.maxStreams >= 1 && configuration.maxQueued >= 0, "Scheduler: bad capacity")
    stepper = LanguageModelStepper(model, capacity: configuration.maxStreams, compute: Compute(threads: configuration.threads, precision: configuration.precision))
    self.vocabulary = vocabulary
    self.configuration = configuration
    self.onStep = onStep
  }

  /// Starts the serving thread.
  public func start() {
    let thread = Thread { [self] in loop() }
    thread.name = "recurrent-scheduler"
    thread.stackSize = 1 << 22
    self.thread = thread
    thread.start()
  }

  /// Queues a job. Throws 429 (with the queue full) or 503 (shutting down).
  public func submit(_ job: CompletionJob) throws(APIError) -> Ticket {
    let events = EventQueue()
    let stream = ServedStream(job: job, vocabulary: vocabulary, queue: events)
    condition.lock()
    defer { condition.unlock() }
    guard accepting else { throw APIError(status: 503, message: "the server is shutting down", type: "server_error") }
    guard active.count + queue.count < configuration.maxStreams + configuration.maxQueued else {
      throw APIError(
        status: 429,
        message: "all \(configuration.maxStreams) streams are busy and \(configuration.maxQueued) are queued; retry shortly",
        type: "rate_limit_error")
    }
    queue.append(stream)
    condition.signal()
    return Ticket(events: events, stream: stream)
  }

  /// The counters now.
  public var snapshot: SchedulerSnapshot {
    condition.lock()
    defer { condition.unlock() }
    var s = snapshotValue
    s.active = active.count
    s.queued = queue.count
    return s
  }

  /// Stops accepting, lets active and queued streams finish for up to `timeout` seconds,
  /// cancels the rest and stops the thread.
  public func shutdown(timeout: Double) {
    condition.lock()
    accepting = false
    condition.broadcast()
    condition.unlock()
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      condition.lock()
      let idle = active.isEmpty && queue.isEmpty
      condition.unlock()
      if idle { break }
      Thread.sleep(forTimeInterval: 0.01)
    }
    condition.lock()
    for s in active + queue { s.cancel() }
    running = false
    condition.broadcast()
    condition.unlock()
    while true {
      condition.lock()
      let done = loopFinished
      condition.unlock()
      if done { break }
      Thread.sleep(forTimeInterval: 0.005)
    }
  }

  // MARK: The loop

  private func loop() {
    var tokens: [Int] = []
    var row = [Float](repeating: 0, count: stepper.configuration.vocabularySize)
    let V = stepper.configuration.vocabularySize
    while true {
      condition.lock()
      while running && active.isEmpty && queue.isEmpty { condition.wait() }
      // Retire cancelled streams, then admit queued ones into free rows.
      retire { $0.isCancelled ? .cancelled : nil }
      while active.count < configuration.maxStreams, !queue.isEmpty {
        let s = queue.removeFirst()
        if s.isCancelled {
          s.queue.post(.finished(.cancelled, s.usage), last: true)
          continue
        }
        if s.job.maxTokens == 0 {
          s.queue.post(.finished(.length, s.usage), last: true)
          continue
        }
        stepper.reset(row: active.count)
        active.append(s)
      }
      if !running && active.isEmpty && queue.isEmpty {
        loopFinished = true
        condition.unlock()
        return
      }
      let streams = active
      condition.unlock()
      if streams.isEmpty { continue }

      let started = DispatchTime.now().uptimeNanoseconds
      tokens.removeAll(keepingCapacity: true)
      for s in streams { tokens.append(s.inputs[s.nextInput]) }
      let logits = stepper.step(tokens: tokens)
      let stepped = DispatchTime.now().uptimeNanoseconds
      var finished: [ObjectIdentifier: FinishReason] = [:]
      var generatedNow = 0
      for (i, s) in streams.enumerated() {
        s.nextInput += 1
        if s.nextInput < s.inputs.count { continue }  // still reading the prompt
        for k in 0..<V { row[k] = logits[i * V + k] }
        let token = TokenGenerator.sample(logits: row, options: s.job.sampling, using: &s.rng)
        s.generated += 1
        generatedNow += 1
        var text = s.streamer.push(token)
        let done = s.generated >= s.job.maxTokens
        if done { text += s.streamer.flush() }
        let (out, stopped) = s.stopper.push(text, final: done)
        if !out.isEmpty { s.queue.post(.text(out)) }
        if stopped {
          finished[ObjectIdentifier(s)] = .stop
        } else if done {
          finished[ObjectIdentifier(s)] = .length
        } else {
          s.inputs = [token]
          s.nextInput = 0
        }
      }
      let ended = DispatchTime.now().uptimeNanoseconds
      let stepSeconds = Double(stepped - started) / 1e9
      onStep?(stepSeconds, streams.count)
      condition.lock()
      snapshotValue.steps += 1
      snapshotValue.tokensGenerated += generatedNow
      snapshotValue.stepSeconds += stepSeconds
      snapshotValue.busySeconds += Double(ended - started) / 1e9
      if !finished.isEmpty { retire { finished[ObjectIdentifier($0)] } }
      condition.unlock()
    }
  }

  /// Removes the active streams `reason` names (condition locked), moving the last rows into
  /// the freed ones so the active rows stay `0..<active.count`.
  private func retire(_ reason: (ServedStream) -> FinishReason?) {
    var i = 0
    while i < active.count {
      guard let why = reason(active[i]) else {
        i += 1
        continue
      }
      let s = active[i]
      s.queue.post(.finished(why, s.usage), last: true)
      let last = active.count - 1
      if i != last {
        stepper.copyRow(last, to: i)
        active[i] = active[last]
      }
      active.removeLast()
    }
  }
}
