import Testing
import TestSupport

import RecurrentCommands

@Test func taskAndExampleCommandsValidateTheirOptions() throws {
  for bad in [
    ["task", "adding", "--delay", "10"], ["task", "copy", "--length", "10"], ["task", "adding", "--length", "1"],
    ["task", "adding", "--steps", "0"], ["task", "adding", "--lr", "nan"], ["task", "sorting"], ["example", "mnist"],
  ] {
    #expect(throws: (any Error).self, "\(bad)") { _ = try RecurrentCommand.parseAsRoot(bad) }
  }
  _ = try RecurrentCommand.parseAsRoot(["task", "copy", "--delay", "50", "--cell", "lstm", "--json"])
}
