import ArgumentParser
import Formats
import Foundation
import ONNXExport
import SequenceModels
import Training

/// `recurrent export`: a checkpoint as an ONNX model.
struct Export: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write a language-model or Sequential checkpoint as an ONNX model (ONNX's own GRU/LSTM/RNN operators).",
    discussion: """
      Language models: input tokens int64 [T, B], optional initial_h (and initial_c) [L, B, H]; outputs
      logits [T, B, V] and final_h (final_c). Sequential models: input x float [N, T, F] (int64 ids
      [N, T] after an embedding), optional lengths int32 [N]; output y. Opset 14. Training state is
      never exported.
      """)

  enum Format: String, ExpressibleByArgument, CaseIterable { case onnx }

  @Option(help: "Checkpoint (.safetensors) from recurrent train or recurrent fit.") var checkpoint: String
  @Option(help: "Target format: onnx.") var format: Format = .onnx
  @Option(help: "Where to write the model (written atomically).") var out: String

  func run() throws {
    try ensureWritable(out, option: "--out")
    let kind = try checkpointFormat(checkpoint)
    let data: Data
    do {
      switch kind {
      case CheckpointKind.languageModel.format:
        data = try ONNXExporter.languageModel(try Checkpoint.load(from: checkpoint).model, name: stem(checkpoint))
      case CheckpointKind.sequential.format:
        data = try ONNXExporter.sequential(try SequentialCheckpoint.load(from: checkpoint).model, name: stem(checkpoint))
      default:
        let role = CheckpointKind.all.first { $0.format == kind }?.role ?? "not a checkpoint of recurrent train or fit"
        throw CommandError("\(checkpoint): \(role.prefix { $0 != "(" }.trimmingCharacters(in: .whitespaces)); ONNX export takes language models and Sequential models")
      }
    } catch let error as ONNXExportError {
      throw CommandError("\(checkpoint): \(error)")
    }
    do {
      try writeAtomically(data, to: out)
    } catch {
      throw CommandError("--out \(out): \(error)")
    }
    print("wrote \(out): \(data.count) bytes, ONNX opset \(ONNXExporter.opset)")
  }
}

/// The format name a checkpoint file declares (nil for none); errors name the file.
func checkpointFormat(_ path: String) throws -> String? {
  do {
    return try SafeTensors.read(path: path).metadata[CheckpointEnvelope.formatKey]
  } catch let error as CheckpointError {
    if case .unreadable = error { throw error }
    throw CheckpointError.inFile(path: path, error)
  }
}

/// A file's name without folder and extension.
func stem(_ path: String) -> String { URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent }
