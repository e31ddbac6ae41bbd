/// Stop sequences over streamed text: text is passed on as soon as it cannot be the start of a
/// stop sequence; once one appears, the text ends just before it (OpenAI's `stop`).
public struct StopMatcher: Sendable {
  let stops: [String]
  var pending = ""

  /// A matcher for these sequences (none: text passes straight through).
  public init(_ stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

  /// Adds `text`; returns what may be sent now, and whether a stop sequence appeared (then
  /// nothing more is sent). `final`: the stream ends here, so nothing is held back.
  public mutating func push(_ text: String, final: Bool = false) -> (text: String, stopped: Bool) {
    guard !stops.isEmpty else { return (text, false) }
    pending += text
    // The earliest stop sequence in the pending text.
    var earliest: String.Index? = nil
    for stop in stops {
      if let r = pending.range(of: stop), earliest.map({ r.lowerBound < $0 }) ?? true { earliest = r.lowerBound }
    }
    if let cut = earliest {
      let out = String(pending[..<cut])
      pending = ""
      return (out, true)
    }
    if final {
      defer { pending = "" }
      return (pending, false)
    }
    // Hold back the longest tail that could begin a stop sequence.
    var hold = 0
    for stop in stops {
      for length in stride(from: min(stop.count - 1, pending.count), through: 1, by: -1)
      where pending.hasSuffix(stop.prefix(length)) {
        hold = max(hold, length)
        break
      }
    }
    let cut = pending.index(pending.endIndex, offsetBy: -hold)
    let out = String(pending[..<cut])
    pending = String(pending[cut...])
    return (out, false)
  }
}
