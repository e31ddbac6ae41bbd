import Testing
import TestSupport

import RecurrentCommands

@Test func taskAndExampleCommandsValidateTheirOptions() throws {
  for (bad, named) in [
    (["task", "adding", "--delay", "10"], "--delay"), (["task", "copy", "--length", "10"], "--length"),
    (["task", "adding", "--length", "1"], "--length"), (["task", "adding", "--steps", "0"], "--steps"),
    (["task", "adding", "--lr", "nan"], "--lr"), (["task", "sorting"], "sorting"), (["example", "mnist"], "mnist"),
  ] {
    do {
      _ = try RecurrentCommand.parseAsRoot(bad)
      Issue.record("\(bad) parsed")
    } catch {
      #expect(RecurrentCommand.message(for: error).contains(named), "\(bad): \(RecurrentCommand.message(for: error))")
    }
  }
  _ = try RecurrentCommand.parseAsRoot(["task", "copy", "--delay", "50", "--cell", "lstm", "--json"])
}
