import ArgumentParser
import Testing
import TestSupport

import Recurrent
import RecurrentCommands
import RecurrentExamples
import Training

@Test func helpListsEveryCommandAndTheVersionIsOurs() throws {
  #expect(RecurrentCommand.configuration.version == RecurrentInfo.version)
  #expect(RecurrentInfo.version.split(separator: ".").count == 3, "semantic version \(RecurrentInfo.version)")
  let help = RecurrentCommand.helpMessage()
  for sub in ["train", "eval", "generate", "fit", "predict", "task", "example", "ngram", "hmm", "bench", "bench-gemm"] {
    #expect(help.contains(sub), "help lists \(sub)")
  }
}

/// What `recurrent COMMAND --help` prints, unwrapped.
private func helpText(_ command: [String]) -> String {
  guard let parsed = try? RecurrentCommand.parseAsRoot(command + (command == ["task"] ? ["adding"] : [])) else { return "" }
  return RecurrentCommand.helpMessage(for: type(of: parsed), columns: 1000)
}

@Test func helpShowsEachDefaultOnceFromTheLibrary() {
  // The defaults --help prints are the library's (TrainingOptions, LongMemoryTask.Options).
  let train = helpText(["train"])
  let options = TrainingOptions()
  #expect(train.contains("Units per recurrent layer. [default: \(options.hiddenSize)]"))
  #expect(train.contains("Recurrent layers. [default: \(options.layers)]"))
  #expect(train.contains("[default: \(options.batchSize)]"))
  let task = helpText(["task"])
  #expect(task.contains("Units per recurrent layer. [default: \(LongMemoryTask.Options().hidden)]"))
}


/// The message ArgumentParser would print for these arguments, or nil if they parse.
private func parseError(_ arguments: [String]) -> String? {
  do {
    _ = try RecurrentCommand.parseAsRoot(arguments)
    return nil
  } catch {
    return RecurrentCommand.oneLineMessage(for: error)
  }
}

@Test func trainAcceptsTheDocumentedOptions() {
  #expect(parseError(["train"]) == nil)
  #expect(parseError([
    "train", "--text", "a.txt", "--valid-text", "b.txt", "--tokenizer", "word", "--cell", "gru-reset-before",
    "--layers", "3", "--hidden", "32", "--embedding", "32", "--dropout", "0.2", "--tied", "--batch", "8",
    "--seq-len", "16", "--steps", "40", "--epochs", "2", "--time-limit", "60", "--optimizer", "adamw",
    "--lr", "0.001", "--schedule", "cosine:100:0.0001", "--clip", "1", "--seed", "3", "--threads", "1",
    "--checkpoint", "x.safetensors", "--checkpoint-every", "10", "--resume", "--eval-every", "5",
    "--sample-every", "5", "--json", "--min-count", "2", "--max-vocab", "100", "--on-nan", "skip",
  ]) == nil)
  for cell in ["gru", "gru-reset-before", "lstm", "rnn-tanh", "rnn-relu"] {
    #expect(parseError(["train", "--cell", cell]) == nil)
  }
}

@Test(arguments: [
  (["train", "--lr", "-1"], "--lr"),
  (["train", "--lr", "nan"], "--lr"),
  (["train", "--batch", "0"], "--batch"),
  (["train", "--seq-len", "-3"], "--seq-len"),
  (["train", "--hidden", "0"], "--hidden"),
  (["train", "--dropout", "1"], "--dropout"),
  (["train", "--steps", "0"], "--steps"),
  (["train", "--tied", "--hidden", "32", "--embedding", "16"], "--tied"),
  (["train", "--schedule", "bogus"], "--schedule"),
  (["train", "--schedule", "step:x"], "--schedule"),
  (["train", "--cell", "transformer"], "--cell"),
  (["train", "--optimizer", "lbfgs"], "--optimizer"),
  (["train", "--time-limit", "0"], "--time-limit"),
  (["train", "--on-nan", "ignore"], "--on-nan"),
  (["eval", "--text", "a.txt"], "--checkpoint"),
  (["eval", "--checkpoint", "m.safetensors", "--text", "a", "--batched", "0"], "--batched"),
  (["generate", "--checkpoint", "m", "--temperature", "0"], "--temperature"),
  (["generate", "--checkpoint", "m", "--top-p", "1.5"], "--top-p"),
  (["generate", "--checkpoint", "m", "--top-k", "0"], "--top-k"),
  (["generate", "--checkpoint", "m", "--length", "-1"], "--length"),
  (["train", "--layers", "65"], "--layers"),
  (["train", "--threads", "0"], "--threads"),
  (["fit", "--x", "x.npy", "--y", "y.npy", "--task", "binary", "--hidden", "70000"], "--hidden"),
  (["fit", "--x", "x.npy", "--y", "y.npy", "--task", "binary", "--clip", "-1"], "--clip"),
  (["task", "adding", "--layers", "0"], "--layers"),
  (["task", "adding", "--lr", "nan"], "--lr"),
  (["ngram", "train", "--max-vocab", "0"], "--max-vocab"),
  (["bench-gemm", "--m", "0"], "--m"),
  (["bench-gemm", "--threads", "-1"], "--threads"),
])
func badOptionsAreNamedInOneLine(arguments: [String], option: String) {
  let message = parseError(arguments)
  #expect(message != nil, "\(arguments) should not parse")
  #expect(message?.contains(option) == true, "\(arguments): \(message ?? "")")
  #expect(message?.contains("\n") == false, "one line: \(message ?? "")")
}
