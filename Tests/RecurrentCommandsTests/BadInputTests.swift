import Formats
import Foundation
import Testing
import TestSupport

import Recurrent
import TensorCore
import Training

// Bad input to every command, through the real binary: one line on stderr naming the problem
// and the path or option, exit status 1 (64 for usage errors), no trap or stack trace, and no
// file created or changed.

private let prose = String(
  repeating: "First Citizen:\nBefore we proceed any further, hear me speak.\nAll:\nSpeak, speak.\n", count: 40)

/// A folder with good and bad inputs, a tiny language model and a tiny fit model.
private func makeFixtureFolder() throws -> String {
  let folder = NSTemporaryDirectory() + "recurrent-bad-\(UUID().uuidString)"
  let fm = FileManager.default
  try fm.createDirectory(atPath: folder + "/folder", withIntermediateDirectories: true)
  func write(_ name: String, _ data: Data) { _ = fm.createFile(atPath: folder + "/" + name, contents: data) }
  write("good.txt", Data(prose.utf8))
  write("empty.txt", Data())
  write("binary.bin", Data([0x7F, 0x45, 0x4C, 0x46, 0x02, 0x01, 0x00, 0x00, 0x41]))
  write("latin1.txt", Data("caf".utf8) + Data([0xE9]) + Data(" au lait\n".utf8))
  write("short.txt", Data("ab\n".utf8))
  write("foreign.txt", Data("Zebra ñ\n".utf8))
  let lm = try runRecurrent(
    ["train", "--text", "good.txt", "--cell", "gru", "--layers", "1", "--hidden", "8", "--embedding", "4", "--batch", "2",
     "--seq-len", "8", "--steps", "2", "--eval-every", "0", "--sample-every", "0", "--checkpoint", "lm.safetensors"],
    in: folder)
  #expect(lm.status == 0, "setup train: \(lm.stderr)")
  let bytes = try Data(contentsOf: URL(fileURLWithPath: folder + "/lm.safetensors"))
  write("truncated.safetensors", bytes.prefix(bytes.count / 2))
  try NumPyArray(Tensor(zeros: [6, 4, 2])).write(path: folder + "/x.npy")
  try NumPyArray(Tensor(zeros: [6, 4, 3])).write(path: folder + "/x3.npy")
  try NumPyArray(shape: [6], type: .int64, values: [0, 1, 0, 1, 1, 0]).write(path: folder + "/y.npy")
  try NumPyArray(Tensor(zeros: [5])).write(path: folder + "/y5.npy")
  try NumPyArray(shape: [6], type: .int32, values: [4, 4, 9, 1, 2, 3]).write(path: folder + "/badlengths.npy")
  // uint8, a dtype we do not read (the header numpy writes for np.uint8).
  var header = "{'descr': '|u1', 'fortran_order': False, 'shape': (6,), }"
  header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
  write("uint8.npy", Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count), 0]) + Data(header.utf8) + Data(count: 6))
  let clf = try runRecurrent(
    ["fit", "--x", "x.npy", "--y", "y.npy", "--task", "binary", "--hidden", "4", "--epochs", "1", "--checkpoint", "clf.safetensors"],
    in: folder)
  #expect(clf.status == 0, "setup fit: \(clf.stderr)")
  return folder
}

@Test func everyCommandAnswersBadInputWithOneLineAndChangesNothing() throws {
  let folder = try makeFixtureFolder()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  // (arguments, exit status, a fragment the message must contain)
  let cases: [([String], Int32, String)] = [
    // train
    (["train", "--text", "missing.txt"], 1, "missing.txt"),
    (["train", "--text", "folder"], 1, "is a directory"),
    (["train", "--text", "good.txt/inside"], 1, "good.txt/inside"),
    (["train", "--text", "empty.txt"], 1, "empty"),
    (["train", "--text", "binary.bin"], 1, "binary"),
    (["train", "--text", "latin1.txt"], 1, "UTF-8"),
    (["train", "--text", "short.txt"], 1, "too few"),
    (["train", "--text", "good.txt", "--batch", "0"], 64, "--batch"),
    (["train", "--text", "good.txt", "--hidden=-3"], 64, "--hidden"),
    (["train", "--text", "good.txt", "--steps", "1", "--tensorboard", "good.txt/board"], 1, "good.txt/board"),
    (["train", "--text", "good.txt", "--encoding", "bytes", "--init-from", "missing.safetensors"], 1, "missing.safetensors"),
    (["train", "--text", "good.txt", "--lr=nan"], 64, "--lr"),
    (["train", "--text", "good.txt", "--lr=-1"], 64, "--lr"),
    (["train", "--text", "good.txt", "--tied", "--hidden", "32", "--embedding", "16"], 64, "--tied"),
    (["train", "--text", "good.txt", "--cell", "transformer"], 64, "--cell"),
    (["train", "--text", "good.txt", "--bogus"], 64, "--bogus"),
    (["train", "--text", "good.txt", "--checkpoint", "folder"], 1, "folder"),
    (["train", "--text", "good.txt", "--checkpoint", "nowhere/m.safetensors"], 1, "does not exist"),
    (["train", "--text", "good.txt", "--checkpoint", "/dev/full"], 1, "/dev/full"),
    (["train", "--resume", "--checkpoint", "missing.safetensors", "--text", "good.txt"], 1, "missing.safetensors"),
    (["train", "--resume", "--checkpoint", "truncated.safetensors", "--text", "good.txt"], 1, "truncated"),
    (["train", "--resume", "--checkpoint", "lm.safetensors", "--text", "foreign.txt"], 1, "vocabulary"),
    (["train", "--resume", "--checkpoint", "lm.safetensors", "--text", "good.txt", "--hidden", "16"], 1, "hidden"),
    (["train", "--resume", "--checkpoint", "clf.safetensors", "--text", "good.txt"], 1, "clf.safetensors"),
    // eval
    (["eval", "--checkpoint", "missing.safetensors", "--text", "good.txt"], 1, "missing.safetensors"),
    (["eval", "--checkpoint", "good.txt", "--text", "good.txt"], 1, "checkpoint"),
    (["eval", "--checkpoint", "truncated.safetensors", "--text", "good.txt"], 1, "truncated"),
    (["eval", "--checkpoint", "folder", "--text", "good.txt"], 1, "directory"),
    (["eval", "--checkpoint", "lm.safetensors", "--text", "empty.txt"], 1, "empty"),
    (["eval", "--checkpoint", "lm.safetensors", "--text", "binary.bin"], 1, "binary"),
    (["eval", "--checkpoint", "lm.safetensors", "--text", "latin1.txt"], 1, "UTF-8"),
    (["eval", "--checkpoint", "lm.safetensors", "--text", "foreign.txt"], 1, "vocabulary"),
    (["eval", "--checkpoint", "lm.safetensors", "--text", "good.txt", "--batched", "0"], 64, "--batched"),
    (["eval", "--text", "good.txt"], 64, "--checkpoint"),
    // generate
    (["generate", "--checkpoint", "missing.safetensors"], 1, "missing.safetensors"),
    (["generate", "--checkpoint", "clf.safetensors"], 1, "clf.safetensors"),
    (["generate", "--checkpoint", "lm.safetensors", "--prime", "Zq"], 1, "vocabulary"),
    (["generate", "--checkpoint", "lm.safetensors", "--length=-1"], 64, "--length"),
    (["generate", "--checkpoint", "lm.safetensors", "--temperature=nan"], 64, "--temperature"),
    (["generate", "--checkpoint", "lm.safetensors", "--top-p", "1.5"], 64, "--top-p"),
    // fit
    (["fit", "--x", "missing.npy", "--y", "y.npy", "--task", "binary"], 1, "missing.npy"),
    (["fit", "--x", "folder", "--y", "y.npy", "--task", "binary"], 1, "directory"),
    (["fit", "--x", "empty.txt", "--y", "y.npy", "--task", "binary"], 1, "empty"),
    (["fit", "--x", "good.txt", "--y", "y.npy", "--task", "binary"], 1, "NumPy"),
    (["fit", "--x", "uint8.npy", "--y", "y.npy", "--task", "binary"], 1, "|u1"),
    (["fit", "--x", "x.npy", "--y", "y5.npy", "--task", "binary"], 1, "y5.npy"),
    (["fit", "--x", "y.npy", "--y", "y.npy", "--task", "binary"], 1, "shape"),
    (["fit", "--x", "x.npy", "--y", "y.npy", "--task", "binary", "--lengths", "badlengths.npy"], 1, "lengths"),
    (["fit", "--x", "x.npy", "--y", "y.npy", "--task", "binary", "--epochs", "0"], 64, "--epochs"),
    (["fit", "--x", "x.npy", "--y", "y.npy", "--task", "binary", "--lr=nan"], 64, "--lr"),
    (["fit", "--x", "x.npy", "--y", "y.npy", "--task", "binary", "--hidden=-1"], 64, "--hidden"),
    (["fit", "--x", "x.npy", "--y", "y.npy", "--task", "binary", "--mask-zero"], 64, "--embedding"),
    (["fit", "--x", "x.npy", "--y", "y.npy", "--task", "ordinal"], 64, "--task"),
    (["fit", "--x", "x.npy", "--y", "y.npy", "--task", "binary", "--checkpoint", "folder"], 1, "folder"),
    // predict
    (["predict", "--checkpoint", "missing.safetensors", "--x", "x.npy", "--out", "p.npy"], 1, "missing.safetensors"),
    (["predict", "--checkpoint", "lm.safetensors", "--x", "x.npy", "--out", "p.npy"], 1, "language model"),
    (["predict", "--checkpoint", "truncated.safetensors", "--x", "x.npy", "--out", "p.npy"], 1, "truncated"),
    (["predict", "--checkpoint", "clf.safetensors", "--x", "x3.npy", "--out", "p.npy"], 1, "x3.npy"),
    (["predict", "--checkpoint", "clf.safetensors", "--x", "uint8.npy", "--out", "p.npy"], 1, "uint8.npy"),
    (["predict", "--checkpoint", "clf.safetensors", "--x", "x.npy", "--out", "folder"], 1, "folder"),
    (["predict", "--checkpoint", "clf.safetensors", "--x", "x.npy", "--out", "p.npy", "--batch", "0"], 64, "--batch"),
    (["predict", "--checkpoint", "clf.safetensors", "--x", "x.npy", "--out", "p.npy", "--y", "y5.npy"], 1, "y5.npy"),
    // bench, task, example
    (["bench", "--batch", "0"], 64, "--batch"),
    (["bench", "--workload", "nope"], 64, "nope"),
    (["bench-gemm", "--m", "0"], 64, "--m"),
    (["task", "adding", "--length", "1"], 64, "--length"),
    (["task", "adding", "--delay", "5"], 64, "--delay"),
    (["task", "adding", "--lr=-1"], 64, "--lr"),
    (["example", "mnist"], 64, "mnist"),
    (["nonsense"], 64, "nonsense"),
    // ngram, hmm
    (["ngram", "train", "--text", "missing.txt"], 1, "missing.txt"),
    (["ngram", "train", "--text", "binary.bin"], 1, "binary"),
    (["ngram", "train", "--text", "good.txt", "--order", "0"], 64, "--order"),
    (["ngram", "train", "--text", "short.txt", "--order", "5"], 1, "too few"),
    (["ngram", "train", "--text", "good.txt", "--out", "folder"], 1, "folder"),
    (["ngram", "eval", "--model", "good.txt", "--text", "good.txt"], 1, "ARPA"),
    (["ngram", "eval", "--model", "missing.arpa", "--text", "good.txt"], 1, "missing.arpa"),
    (["ngram", "generate", "--model", "lm.safetensors"], 1, "lm.safetensors"),
    (["ngram", "generate", "--model", "m.arpa", "--temperature", "0"], 64, "--temperature"),
    (["hmm", "train", "--text", "empty.txt"], 1, "empty"),
    (["hmm", "train", "--text", "good.txt", "--states", "0"], 64, "--states"),
    (["hmm", "train", "--text", "good.txt", "--tolerance=nan"], 64, "--tolerance"),
    (["hmm", "eval", "--model", "lm.safetensors", "--text", "good.txt"], 1, "lm.safetensors"),
    (["hmm", "eval", "--model", "missing.safetensors", "--text", "good.txt"], 1, "missing.safetensors"),
  ]
  let before = snapshot(folder)
  for (arguments, status, fragment) in cases {
    let outcome = try runRecurrent(arguments, in: folder)
    let label = arguments.joined(separator: " ")
    #expect(outcome.status == status, "\(label): exit \(outcome.status), stderr \(outcome.stderr)")
    let lines = outcome.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
    #expect(lines.count == 1 && lines.first?.hasPrefix("Error: ") == true, "\(label): stderr \(outcome.stderr)")
    #expect(outcome.stderr.contains(fragment), "\(label): '\(fragment)' not in \(outcome.stderr)")
    #expect(!outcome.stderr.contains("Fatal error") && !outcome.stderr.contains("Stack dump"), "\(label)")
    #expect(snapshot(folder) == before, "\(label): a file was created or changed")
  }
}

/// ThreadSanitizer's runtime itself faults (SIGBUS) under a file-size limit, so the full-disk
/// test is left out of `swift test --sanitize=thread` runs.
private let underThreadSanitizer = dlsym(nil, "__tsan_init") != nil

@Test(.disabled(if: underThreadSanitizer, "ThreadSanitizer's runtime faults under ulimit -f"))
func aFullDiskKeepsThePreviousCheckpoint() throws {
  // The file-size limit makes every write past 1 KiB fail (EFBIG) as a full disk would
  // (ENOSPC): the save must report it, remove its temporary file and keep the old checkpoint.
  let folder = try makeFixtureFolder()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let before = snapshot(folder)
  let outcome = try runRecurrent(
    ["train", "--text", "good.txt", "--resume", "--checkpoint", "lm.safetensors", "--steps", "4"],
    in: folder, limitFileBytes: 1024)
  #expect(outcome.status == 1, "exit \(outcome.status): \(outcome.stderr)")
  #expect(outcome.stderr.contains("lm.safetensors") && outcome.stderr.contains("large"), "\(outcome.stderr)")
  #expect(outcome.stderr.split(separator: "\n").count == 1, "\(outcome.stderr)")
  // Only the metrics log may have grown (it is appended as training goes); the checkpoint is
  // byte for byte the old one and no temporary file is left behind.
  var after = snapshot(folder)
  #expect(after["lm.safetensors"] == before["lm.safetensors"])
  after = after.filter { !$0.key.hasPrefix("lm.metrics") && !$0.key.hasPrefix("lm.loss") }
  #expect(Set(after.keys) == Set(before.keys.filter { !$0.hasPrefix("lm.metrics") && !$0.hasPrefix("lm.loss") }),
    "files: \(after.keys.sorted())")
  // And it still loads and resumes.
  let resumed = try runRecurrent(
    ["train", "--text", "good.txt", "--resume", "--checkpoint", "lm.safetensors", "--steps", "4"], in: folder)
  #expect(resumed.status == 0, "\(resumed.stderr)")
}

/// `step` → train loss from the `--json` step events of a training run.
private func stepLosses(_ output: String) -> [Int: String] {
  var result: [Int: String] = [:]
  for line in output.split(separator: "\n") where line.hasPrefix("{\"event\":\"step\"") {
    guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
      let step = object["step"] as? Int, let loss = object["train_loss"]
    else { continue }
    result[step] = "\(loss)"
  }
  return result
}

@Test func sigkillAtAnyMomentLeavesACheckpointThatResumesWithTheSameLosses() throws {
  let folder = try makeFixtureFolder()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let run = ["train", "--text", "good.txt", "--cell", "lstm", "--layers", "1", "--hidden", "24", "--embedding", "8",
    "--batch", "4", "--seq-len", "16", "--dropout", "0.1", "--steps", "6000", "--checkpoint-every", "47",
    "--eval-every", "0", "--sample-every", "0", "--json"]
  let straight = try runRecurrent(run + ["--checkpoint", "straight.safetensors"], in: folder)
  #expect(straight.status == 0, "\(straight.stderr)")
  let expected = stepLosses(straight.stdout)
  #expect(expected.count == 600)

  // Start the same run and kill it hard (no chance to save) once it has written a checkpoint.
  let process = Process()
  process.executableURL = URL(fileURLWithPath: try recurrentBinary())
  process.arguments = run + ["--checkpoint", "killed.safetensors"]
  process.currentDirectoryURL = URL(fileURLWithPath: folder)
  process.standardOutput = FileHandle.nullDevice
  process.standardError = FileHandle.nullDevice
  try process.run()
  let path = folder + "/killed.safetensors"
  let deadline = Date().addingTimeInterval(60)
  while !FileManager.default.fileExists(atPath: path) && Date() < deadline { usleep(2_000) }
  usleep(UInt32.random(in: 0..<300_000))  // somewhere in the steps after it (the run takes seconds)
  kill(process.processIdentifier, SIGKILL)
  process.waitUntilExit()
  #expect(process.terminationReason == .uncaughtSignal, "the run ended before the kill; the test proved nothing")

  // Whatever moment the kill came, the checkpoint on disk is whole and resumes exactly.
  let resumed = try runRecurrent(run + ["--checkpoint", "killed.safetensors", "--resume"], in: folder)
  #expect(resumed.status == 0, "\(resumed.stderr)")
  let losses = stepLosses(resumed.stdout)
  #expect(!losses.isEmpty)
  for (step, loss) in losses { #expect(expected[step] == loss, "step \(step): \(loss) after resume, \(expected[step] ?? "none") straight") }
  let a = try runRecurrent(["eval", "--checkpoint", "straight.safetensors", "--text", "good.txt", "--json"], in: folder)
  let b = try runRecurrent(["eval", "--checkpoint", "killed.safetensors", "--text", "good.txt", "--json"], in: folder)
  #expect(a.status == 0 && a.stdout == b.stdout, "\(a.stdout) vs \(b.stdout)")
}

@Test func aBuildWithoutMPIRefusesToRunAsSeveralRanks() throws {
  let folder = temporaryFolder("ranks")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  for variable in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"] {
    let outcome = try runRecurrent(["train", "--steps", "1"], in: folder, environment: [variable: "2"])
    #expect(outcome.status != 0 && outcome.stderr.split(separator: "\n").count == 1, "\(variable): \(outcome.stderr)")
    #expect(outcome.stderr.contains("2 ranks") && outcome.stderr.contains("--traits MPI"))
    #expect(snapshot(folder).isEmpty, "a refused run wrote files")
  }
  // One rank (mpirun -np 1, or a plain run) is fine.
  let one = try runRecurrent(["fit", "--help"], in: folder, environment: ["OMPI_COMM_WORLD_SIZE": "1"])
  #expect(one.status == 0)
}
