import Foundation
import Testing
import TestSupport

import Formats

// The one JSON writer: what it writes is JSON (a standard parser reads back the same values),
// numbers keep every digit, and NaN or infinity become null instead of invalid text.

@Test func writtenJSONReadsBackWithEveryValueAndNoInvalidNumbers() throws {
  let value: JSONValue = [
    "event": "step", "step": 12, "loss": .number(1.8395484178522274), "tiny": .number(1e-300),
    "notANumber": .number(Double.nan), "negativeInfinity": .number(-Double.infinity), "float": .number(Float(0.1)),
    "text": "quote \" backslash \\ newline \n tab \t bell \u{07} é 日本", "flags": [true, false, .null],
    "nested": ["shape": .ints([2, 3])], "missing": .optional(nil as Double?),
  ]
  let text = value.text
  #expect(text.contains(#""notANumber":null"#) && text.contains(#""negativeInfinity":null"#))
  let parsed = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
  #expect(parsed["step"] as? Int == 12)
  // Every digit (Foundation's parser rounds the last one, so read the text).
  #expect(text.contains(#""loss":1.8395484178522274,"#))
  #expect(text.contains(#""float":0.10000000149011612,"#))
  #expect(parsed["tiny"] as? Double == 1e-300)
  #expect(parsed["notANumber"] is NSNull && parsed["negativeInfinity"] is NSNull && parsed["missing"] is NSNull)
  #expect(parsed["text"] as? String == "quote \" backslash \\ newline \n tab \t bell \u{07} é 日本")
  #expect((parsed["nested"] as? [String: Any])?["shape"] as? [Int] == [2, 3])
  // Keys are written in the order given; `sorted` sorts them.
  #expect(text.hasPrefix(#"{"event":"step","step":12,"#))
  #expect(JSONValue.sorted(["b": 1, "a": 2]).text == #"{"a":2,"b":1}"#)
}

@Test func codableValuesWithNonFiniteNumbersAreRefusedNotWritten() throws {
  struct Config: Encodable { var rate: Double }
  #expect(throws: EncodingError.self) { _ = try encodeJSON(Config(rate: .infinity)) }
  #expect(try encodeJSON(Config(rate: 0.5)) == #"{"rate":0.5}"#)
}
