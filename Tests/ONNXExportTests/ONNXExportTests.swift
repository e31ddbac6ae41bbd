import Foundation
import ONNXExport
import Recurrent
import SequenceModels
import SwiftProtobuf
import Testing
import TestSupport

// The Swift side of ONNX export (ONNX Runtime checks the numbers: Tools/check_onnx.py): the file
// decodes as an ONNX model with the documented inputs and outputs, every weight is there in
// ONNX's layout (mapped back, bit for bit the model's), nothing of training goes in.

private func floats(_ t: Onnx_TensorProto) -> [Float] {
  stride(from: 0, to: t.rawData.count, by: 4).map { i in
    Float(bitPattern: t.rawData[t.rawData.startIndex + i..<t.rawData.startIndex + i + 4].enumerated().reduce(UInt32(0)) {
      $0 | UInt32($1.element) << (8 * UInt32($1.offset))
    })
  }
}

private func dims(_ v: Onnx_ValueInfoProto) -> [String] {
  v.type.tensorType.shape.dim.map { $0.dimParam.isEmpty ? String($0.dimValue) : $0.dimParam }
}

/// PyTorch's gate blocks from ONNX's: the inverse of the export's reordering.
private func pytorchRows(_ onnx: [Float], order: [Int], hidden: Int, width: Int) -> [Float] {
  var out = [Float](repeating: .nan, count: onnx.count)
  for (k, block) in order.enumerated() {
    let size = hidden * width
    out.replaceSubrange(block * size..<(block + 1) * size, with: onnx[k * size..<(k + 1) * size])
  }
  return out
}

@Test(arguments: CellKind.allCases)
func languageModelGraphsHoldEveryWeightInONNXLayout(cell: CellKind) throws {
  var rng = SplitMix64(seed: 5)
  let model = LanguageModel(
    LanguageModelConfiguration(cell: cell, layers: 2, hiddenSize: 6, embeddingSize: 4, vocabularySize: 9, dropout: 0, tied: false),
    using: &rng)
  guard cell.hasRecurrentWeights && cell != .gruLN && cell != .lstmLN else {
    // The min and layer-norm cells have no ONNX operator: refused in one line that names the cell.
    let error = #expect(throws: ONNXExportError.self) { try ONNXExporter.languageModel(model) }
    #expect(error?.description == "the model's \(cell.rawValue) layers have no ONNX operator (export supports rnn, lstm and gru cells)")
    return
  }
  let proto = try Onnx_ModelProto(serializedBytes: try ONNXExporter.languageModel(model))
  #expect(proto.opsetImport.first?.version == ONNXExporter.opset && proto.irVersion == ONNXExporter.irVersion)
  let graph = proto.graph
  let lstm = cell.isLSTM
  #expect(graph.input.map(\.name) == ["tokens", "initial_h"] + (lstm ? ["initial_c"] : []))
  #expect(graph.output.map(\.name) == ["logits", "final_h"] + (lstm ? ["final_c"] : []))
  #expect(dims(graph.input[0]) == ["time", "batch"] && graph.input[0].type.tensorType.elemType == 7)
  #expect(dims(graph.output[0]) == ["time", "batch", "9"] && dims(graph.output[1]) == ["2", "batch", "6"])
  let ops = graph.node.map(\.opType)
  let expectedOp = lstm ? "LSTM" : (cell == .gru || cell == .gruResetBefore ? "GRU" : "RNN")
  #expect(ops.filter { $0 == expectedOp }.count == 2)
  let initializers = Dictionary(uniqueKeysWithValues: graph.initializer.map { ($0.name, $0) })
  #expect(!initializers.keys.contains { $0.hasPrefix("training") })
  // The optional inputs default to zeros of [L, 1, H].
  #expect(floats(initializers["initial_h"]!) == [Float](repeating: 0, count: 12) && initializers["initial_h"]!.dims == [2, 1, 6])
  #expect(floats(initializers["encoder.weight"]!) == model.encoder.weight.scalars)
  let order: [Int] = switch cell {
  case .gru, .gruResetBefore: [1, 0, 2]
  case .lstm, .lstmPeephole: [0, 3, 1, 2]
  case .rnnTanh, .rnnRelu: [0]
  case .minGRU, .minLSTM, .gruLN, .lstmLN: []
  }
  for layer in 0..<2 {
    let w = model.rnn.weights[layer]
    let width = layer == 0 ? 4 : 6
    let G = order.count
    #expect(initializers["rnn.l\(layer).W"]!.dims == [1, Int64(G * 6), Int64(width)])
    #expect(pytorchRows(floats(initializers["rnn.l\(layer).W"]!), order: order, hidden: 6, width: width) == w.weightIH.scalars)
    #expect(pytorchRows(floats(initializers["rnn.l\(layer).R"]!), order: order, hidden: 6, width: 6) == w.weightHH.scalars)
    let b = floats(initializers["rnn.l\(layer).B"]!)
    #expect(pytorchRows(Array(b[0..<(G * 6)]), order: order, hidden: 6, width: 1) == w.biasIH.scalars)
    #expect(pytorchRows(Array(b[(G * 6)...]), order: order, hidden: 6, width: 1) == w.biasHH.scalars)
    let node = graph.node.first { $0.opType == expectedOp && $0.name == "rnn.l\(layer)" }!
    let attributes = Dictionary(uniqueKeysWithValues: node.attribute.map { ($0.name, $0) })
    #expect(attributes["hidden_size"]?.i == 6 && attributes["direction"]?.s == Data("forward".utf8))
    switch cell {
    case .gru: #expect(attributes["linear_before_reset"]?.i == 1)
    case .gruResetBefore: #expect(attributes["linear_before_reset"]?.i == 0)
    case .rnnRelu: #expect(attributes["activations"]?.strings == [Data("Relu".utf8)])
    case .rnnTanh, .lstm: #expect(attributes["activations"] == nil)
    case .lstmPeephole:
      // ONNX's P input (the operator's eighth) holds the peepholes as i|o|f.
      #expect(node.input.count == 8 && node.input[7] == "rnn.l\(layer).P")
      let p = w.cellParameters!.scalars
      #expect(floats(initializers["rnn.l\(layer).P"]!) == Array(p[0..<6] + p[12..<18] + p[6..<12]))
    case .minGRU, .minLSTM, .gruLN, .lstmLN: Issue.record("refused above")
    }
    if cell != .lstmPeephole { #expect(node.input.count <= 7) }
  }
  // The decoder is stored transposed, [H, V].
  let decoder = initializers["decoder.weight_t"]!
  #expect(decoder.dims == [6, 9])
  let back = floats(decoder)
  var untransposed = [Float](repeating: .nan, count: 54)
  for h in 0..<6 { for v in 0..<9 { untransposed[v * 6 + h] = back[h * 9 + v] } }
  #expect(untransposed == model.decoder.weight.scalars)
}

@Test func tiedDecodersReadTheEmbeddingAndSequentialGraphsTakeLengths() throws {
  var rng = SplitMix64(seed: 6)
  let tied = LanguageModel(
    LanguageModelConfiguration(cell: .gru, layers: 1, hiddenSize: 4, embeddingSize: 4, vocabularySize: 7, dropout: 0, tied: true),
    using: &rng)
  let graph = try Onnx_ModelProto(serializedBytes: try ONNXExporter.languageModel(tied)).graph
  #expect(!graph.initializer.contains { $0.name.hasPrefix("decoder.weight") })
  #expect(graph.node.contains { $0.opType == "Transpose" && $0.input == ["encoder.weight"] })

  let model = try Sequential(
    inputFeatures: 3, [.bidirectional(.lstm(5, returnSequences: true)), .dropout(0.5), .gru(4), .dense(2, activation: .softmax)],
    using: &rng)
  let sequential = try Onnx_ModelProto(serializedBytes: try ONNXExporter.sequential(model)).graph
  #expect(sequential.input.map(\.name) == ["x", "lengths"] && dims(sequential.input[0]) == ["batch", "time", "3"])
  #expect(sequential.output.map(\.name) == ["y"] && dims(sequential.output[0]) == ["batch", "2"])
  let recurrent = sequential.node.filter { $0.opType == "LSTM" || $0.opType == "GRU" }
  #expect(recurrent.count == 2 && recurrent.allSatisfy { $0.input.count >= 5 && $0.input[4] == "sequence_lens" })
  #expect(recurrent[0].attribute.contains { $0.name == "direction" && $0.s == Data("bidirectional".utf8) })
  #expect(!sequential.node.contains { $0.opType == "Dropout" })
  #expect(sequential.node.contains { $0.opType == "Softmax" })

  // Over the size limit (2 GiB for protobuf; a smaller one here): refused, naming the size.
  #expect(throws: ONNXExportError.self) { try ONNXExporter.languageModel(tied, byteLimit: 100) }
  #expect(throws: ONNXExportError.self) { try ONNXExporter.sequential(model, byteLimit: 100) }

  let masked = try Sequential(inputFeatures: nil, [.embedding(10, 3, maskZero: true), .gru(4)], using: &rng)
  let maskedGraph = try Onnx_ModelProto(serializedBytes: try ONNXExporter.sequential(masked)).graph
  #expect(maskedGraph.input.map(\.name) == ["x"] && maskedGraph.input[0].type.tensorType.elemType == 7)
  #expect(maskedGraph.node.contains { $0.opType == "ReduceMax" })
}
