import ArgumentParser
import Testing

import RecurrentCommands

@Test func versionAndHelpParse() throws {
  #expect(throws: (any Error).self) { _ = try RecurrentCommand.parseAsRoot(["--version"]) }
  #expect(RecurrentCommand.helpMessage().contains("recurrent"))
}

@Test func benchGEMMRejectsBadSizes() {
  #expect(throws: (any Error).self) { _ = try RecurrentCommand.parseAsRoot(["bench-gemm", "--m", "0"]) }
  #expect(throws: (any Error).self) { _ = try RecurrentCommand.parseAsRoot(["bench-gemm", "--threads", "-1"]) }
}
