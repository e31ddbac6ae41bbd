import Foundation

/// The one JSON writer for output lines, logs and file headers: a value built in code and
/// written compactly with keys in the order given. A number that is NaN or infinite is
/// written as `null` (JSON has no such numbers); doubles use the shortest text that reads
/// back to the same value.
public indirect enum JSONValue: Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
  ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral,
  ExpressibleByDictionaryLiteral
{
  case null
  case bool(Bool)
  case int(Int)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([(String, JSONValue)])

  /// A string.
  public init(stringLiteral value: String) { self = .string(value) }
  /// An integer.
  public init(integerLiteral value: Int) { self = .int(value) }
  /// A number.
  public init(floatLiteral value: Double) { self = .number(value) }
  /// A Boolean.
  public init(booleanLiteral value: Bool) { self = .bool(value) }
  /// An array.
  public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
  /// An object with its keys in the order written.
  public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements) }

  /// A number from a `Float` (written with every digit of its `Double` value).
  public static func number(_ x: Float) -> JSONValue { .number(Double(x)) }
  /// `.null` for nil.
  public static func optional(_ x: Double?) -> JSONValue { x.map { .number($0) } ?? .null }
  /// `.null` for nil.
  public static func optional(_ x: Int?) -> JSONValue { x.map { .int($0) } ?? .null }
  /// An array of integers.
  public static func ints(_ xs: [Int]) -> JSONValue { .array(xs.map { .int($0) }) }

  /// Equal when they write the same text.
  public static func == (a: JSONValue, b: JSONValue) -> Bool { a.text == b.text }

  /// The compact JSON text.
  public var text: String {
    var out = ""
    write(to: &out)
    return out
  }

  /// The text and a newline: one JSON Lines record.
  public var line: String { text + "\n" }

  /// An object with its keys sorted.
  public static func sorted(_ fields: [String: JSONValue]) -> JSONValue {
    .object(fields.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
  }

  func write(to out: inout String) {
    switch self {
    case .null: out += "null"
    case .bool(let b): out += b ? "true" : "false"
    case .int(let n): out += String(n)
    case .number(let x):
      if !x.isFinite {
        out += "null"
      } else if x == x.rounded(), abs(x) < 1e15 {
        out += String(Int(x))
      } else {
        out += "\(x)"  // shortest round-trip form, e.g. 0.1, 1e-05, 2.5e+20
      }
    case .string(let s): Self.quote(s, into: &out)
    case .array(let items):
      out += "["
      for (i, item) in items.enumerated() {
        if i > 0 { out += "," }
        item.write(to: &out)
      }
      out += "]"
    case .object(let fields):
      out += "{"
      for (i, (key, value)) in fields.enumerated() {
        if i > 0 { out += "," }
        Self.quote(key, into: &out)
        out += ":"
        value.write(to: &out)
      }
      out += "}"
    }
  }

  /// `s` as a JSON string literal (RFC 8259 escapes).
  public static func quoted(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count + 2)
    quote(s, into: &out)
    return out
  }

  static func quote(_ s: String, into out: inout String) {
    out += "\""
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case _ where scalar.value < 0x20:
        out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
          + String(scalar.value, radix: 16)
      default: out.unicodeScalars.append(scalar)
      }
    }
    out += "\""
  }
}

/// The one way a `Codable` value (a stored configuration) becomes JSON text: sorted keys.
/// A NaN or infinite number is refused (`EncodingError`), never written.
public func encodeJSON<T: Encodable>(_ value: T) throws -> String {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.sortedKeys]
  return String(decoding: try encoder.encode(value), as: UTF8.self)
}
