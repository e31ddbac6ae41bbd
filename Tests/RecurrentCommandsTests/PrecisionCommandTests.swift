import Foundation
import Testing
import TestSupport

import TensorCore

// --precision through the real binary: refused in one line where bf16 cannot run (a CPU
// without AVX512_BF16, or kernels capped below AVX-512 by RECURRENT_MAX_ISA, which is how this
// test reaches the refusal on any machine); where it can, train, evaluate and generate run in
// bf16 and the checkpoint stays float32 without a word about precision.

private let text = String(repeating: "To be, or not to be, that is the question.\n", count: 60)

private func folderWithText() -> String {
  let folder = NSTemporaryDirectory() + "recurrent-precision-\(UUID().uuidString)"
  try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
  _ = FileManager.default.createFile(atPath: folder + "/t.txt", contents: Data(text.utf8))
  return folder
}

private let tiny = [
  "train", "--text", "t.txt", "--layers", "1", "--hidden", "16", "--embedding", "8", "--batch", "4", "--seq-len", "16",
  "--steps", "3", "--eval-every", "0", "--sample-every", "0", "--checkpoint", "m.safetensors",
]

@Test func bf16IsRefusedInOneLineWhereItCannotRun() throws {
  let folder = folderWithText()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  for (arguments, environment) in [
    (tiny + ["--precision", "bf16"], ["RECURRENT_MAX_ISA": "avx2"]),
    (tiny + ["--precision", "half"], [:]),
  ] {
    let outcome = try runRecurrent(arguments, in: folder, environment: environment)
    let lines = outcome.stderr.split(separator: "\n").filter { !$0.isEmpty }
    #expect(outcome.status != 0)
    #expect(lines.count == 1, "\(outcome.stderr)")
    #expect(outcome.stderr.contains("--precision"), "\(outcome.stderr)")
    #expect(!FileManager.default.fileExists(atPath: folder + "/m.safetensors"))
  }
  let refused = try runRecurrent(tiny + ["--precision", "bf16"], in: folder, environment: ["RECURRENT_MAX_ISA": "avx2"])
  #expect(refused.stderr.contains("AVX512_BF16"))
}

@Test(.enabled(if: Precision.bfloat16IsSupported, "needs a CPU with AVX512_BF16"))
func trainEvaluateAndGenerateRunInBFloat16() throws {
  let folder = folderWithText()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let trained = try runRecurrent(tiny + ["--precision", "bf16"], in: folder)
  #expect(trained.status == 0, "\(trained.stderr)")
  let header = try Data(contentsOf: URL(fileURLWithPath: folder + "/m.safetensors")).prefix(4096)
  #expect(!String(decoding: header, as: UTF8.self).contains("bf16"), "the checkpoint must not record the precision")
  #expect(!String(decoding: header, as: UTF8.self).contains("BF16"))
  let f32 = try runRecurrent(["eval", "--checkpoint", "m.safetensors", "--text", "t.txt"], in: folder)
  let bf16 = try runRecurrent(["eval", "--checkpoint", "m.safetensors", "--text", "t.txt", "--precision", "bf16"], in: folder)
  #expect(f32.status == 0 && bf16.status == 0, "\(f32.stderr) \(bf16.stderr)")
  let generated = try runRecurrent(
    ["generate", "--checkpoint", "m.safetensors", "--length", "20", "--precision", "bf16"], in: folder)
  #expect(generated.status == 0 && !generated.stdout.isEmpty, "\(generated.stderr)")
}

@Test func initAndForgetBiasDrawANewModelOrAreRefusedInOneLine() throws {
  let folder = folderWithText()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let drawn = try runRecurrent(tiny + ["--cell", "lstm", "--init", "keras", "--forget-bias", "1"], in: folder)
  #expect(drawn.status == 0, "\(drawn.stderr)")
  let task = try runRecurrent(
    ["task", "adding", "--cell", "lstm", "--forget-bias", "1", "--init", "keras", "--length", "5", "--hidden", "8",
     "--steps", "3", "--test-samples", "20"], in: folder)
  #expect(task.status == 0, "\(task.stderr)")
  for arguments in [
    tiny + ["--cell", "gru", "--forget-bias", "1"],
    tiny + ["--cell", "lstm", "--init", "glorot"],
    tiny + ["--cell", "lstm", "--forget-bias", "1", "--resume"],
    ["task", "adding", "--cell", "gru", "--forget-bias", "1", "--steps", "3"],
  ] {
    let outcome = try runRecurrent(arguments, in: folder)
    #expect(outcome.status != 0, "\(arguments)")
    #expect(outcome.stderr.split(separator: "\n").filter { !$0.isEmpty }.count == 1, "\(outcome.stderr)")
  }
}
