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

// train's products default to bf16 where the CPU has AVX512_BF16 (the default run's speed,
// README "The 10-minute run") and say so; elsewhere (here: kernels capped at AVX2) to f32.
// Either way the default is the very run the explicit flag gives, and the started event names
// the precision in effect.
@Test func trainDefaultsToBFloat16WhereTheCPUHasIt() throws {
  let folder = folderWithText()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  func run(_ extra: [String], _ environment: [String: String] = [:]) throws -> (started: String, text: String, eval: String) {
    let arguments = tiny + ["--weight-drop", "0", "--locked-dropout", "0"] + extra
    let trained = try runRecurrent(arguments + ["--json"], in: folder, environment: environment)
    #expect(trained.status == 0, "\(trained.stderr)")
    let scored = try runRecurrent(["eval", "--checkpoint", "m.safetensors", "--text", "t.txt", "--json"], in: folder)
    #expect(scored.status == 0, "\(scored.stderr)")
    let text = try runRecurrent(arguments, in: folder, environment: environment)
    #expect(text.status == 0, "\(text.stderr)")
    let started = trained.stdout.split(separator: "\n").first.map(String.init) ?? ""
    #expect(started.contains("\"event\":\"started\""), "\(trained.stdout)")
    return (started, text.stdout, scored.stdout)
  }
  let capped = ["RECURRENT_MAX_ISA": "avx2"]
  let (cappedDefault, cappedF32) = (try run([], capped), try run(["--precision", "f32"], capped))
  #expect(cappedDefault.started.contains("\"precision\":\"f32\""), "\(cappedDefault.started)")
  #expect(!cappedDefault.text.contains("bf16"))
  #expect(cappedDefault.eval == cappedF32.eval)
  guard Precision.bfloat16IsSupported else { return }
  let (byDefault, bf16, f32) = (try run([]), try run(["--precision", "bf16"]), try run(["--precision", "f32"]))
  #expect(byDefault.started.contains("\"precision\":\"bf16\"") && bf16.started.contains("\"precision\":\"bf16\""))
  #expect(f32.started.contains("\"precision\":\"f32\""))
  #expect(byDefault.text.contains("matrix products in bf16"), "\(byDefault.text)")
  #expect(!bf16.text.contains("matrix products in bf16"), "said only when train chose it")
  #expect(byDefault.eval == bf16.eval)
  #expect(byDefault.eval != f32.eval, "bf16 products must change the trained weights")
}
