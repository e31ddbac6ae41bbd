import Foundation
import Recurrent
import SequenceModels
import SwiftProtobuf
import TensorCore

/// A model ONNX cannot hold, or a file that cannot be written; one line naming what.
public struct ONNXExportError: Error, CustomStringConvertible, Equatable {
  /// The message.
  public let description: String
  init(_ description: String) { self.description = description }
}

/// Writes models as ONNX graphs (opset `ONNXExporter.opset`) whose recurrent layers are ONNX's
/// own `GRU`, `LSTM` and `RNN` operators, so any runtime runs them.
///
/// Layouts (see the README's interop table): PyTorch's gate blocks are reordered to ONNX's
/// (GRU r,z,n → z,r,h; LSTM i,f,g,o → i,o,f,c); `B` is the input bias then the recurrent bias;
/// the reset-after GRU is `linear_before_reset=1`, the reset-before one `0`; a ReLU RNN has
/// `activations=["Relu"]`. Training state (`training.*`) is never exported.
public enum ONNXExporter {
  /// The operator set the graphs use.
  public static let opset: Int64 = 14
  /// ONNX IR version of the files (8 reads opset 14 everywhere).
  public static let irVersion: Int64 = 8
  /// Written as the model's `producer_version`.
  public static let producerVersion = RecurrentInfo.version
  /// Protobuf cannot encode a message of 2 GiB or more.
  public static let maximumBytes = Int(Int32.max)

  // MARK: Language models

  /// A language model as an ONNX graph.
  ///
  /// Inputs: `tokens` int64 `[T, B]` (time-major); `initial_h` float `[L, B, H]` and, for LSTM,
  /// `initial_c`, both optional (their default is zeros, `[L, 1, H]` broadcast over the batch).
  /// Outputs: `logits` float `[T, B, V]`, `final_h` `[L, B, H]` (and `final_c` for LSTM), so a
  /// runtime can stream step by step by feeding the final state back.
  /// - Parameters:
  ///   - model: the model; its weights are copied into the file.
  ///   - name: the graph's name.
  ///   - byteLimit: refuse a model whose weights take this many bytes or more (protobuf's 2 GiB
  ///     by default; a runtime with a smaller limit may pass its own).
  public static func languageModel(
    _ model: LanguageModel, name: String = "recurrent-language-model", byteLimit: Int = maximumBytes
  ) throws -> Data {
    let c = model.configuration
    var g = GraphBuilder()
    let L = c.layers
    let H = c.hiddenSize
    let tokens = g.input("tokens", .int64, ["time", "batch"])
    let lstm = c.cell.hasCellState
    // Optional initial states: graph inputs whose initializers are the defaults.
    let hDefault = g.floats("initial_h", [Float](repeating: 0, count: L * H), shape: [L, 1, H])
    g.inputs.append(GraphBuilder.value(hDefault, .float, [.fixed(L), "state_batch", .fixed(H)]))
    var cDefault: String? = nil
    if lstm {
      let name = g.floats("initial_c", [Float](repeating: 0, count: L * H), shape: [L, 1, H])
      g.inputs.append(GraphBuilder.value(name, .float, [.fixed(L), "state_batch", .fixed(H)]))
      cDefault = name
    }
    // The state's shape [L, B, H], B from the tokens.
    let tokenShape = g.node1("Shape", [tokens], output: "tokens_shape")
    let batch = g.node1("Gather", [tokenShape, g.int64s("one", [1])], output: "batch", attributes: [GraphBuilder.int("axis", 0)])
    let stateShape = g.node1(
      "Concat", [g.int64s("layers", [Int64(L)]), batch, g.int64s("hidden", [Int64(H)])], output: "state_shape",
      attributes: [GraphBuilder.int("axis", 0)])
    let h0 = g.node1("Expand", [hDefault, stateShape], output: "h0")
    let c0 = cDefault.map { g.node1("Expand", [$0, stateShape], output: "c0") }

    let embeddingWeight = g.floats("encoder.weight", model.encoder.weight.scalars, shape: model.encoder.weight.shape)
    var x = g.node1("Gather", [embeddingWeight, tokens], output: "embedded", attributes: [GraphBuilder.int("axis", 0)])
    var finalH: [String] = []
    var finalC: [String] = []
    for layer in 0..<L {
      let hSlice = slice(&g, h0, layer)
      let cSlice = c0.map { slice(&g, $0, layer) }
      let out = try recurrent(
        &g, model.rnn, layer: layer, input: x, initialH: hSlice, initialC: cSlice, sequenceLens: nil, prefix: "rnn.l\(layer)")
      x = out.sequence
      finalH.append(out.finalH)
      if let fc = out.finalC { finalC.append(fc) }
    }
    // Decoder: logits = h · Wᵀ + b. A tied decoder reads the embedding through a Transpose.
    let decoderWeightT: String
    if c.tied {
      decoderWeightT = g.node1("Transpose", [embeddingWeight], output: "decoder.weight_t", attributes: [GraphBuilder.ints("perm", [1, 0])])
    } else {
      let w = model.decoder.weight
      decoderWeightT = g.floats("decoder.weight_t", transposed(w), shape: [w.shape[1], w.shape[0]])
    }
    var logits = g.node1("MatMul", [x, decoderWeightT], output: "decoder_product")
    if let bias = model.decoder.bias {
      logits = g.node1("Add", [logits, g.floats("decoder.bias", bias.scalars, shape: bias.shape)], output: "decoder_sum")
    }
    g.output(logits, as: "logits", .float, ["time", "batch", .fixed(c.vocabularySize)])
    let hN = finalH.count == 1 ? finalH[0] : g.node1("Concat", finalH, output: "h_n", attributes: [GraphBuilder.int("axis", 0)])
    g.output(hN, as: "final_h", .float, [.fixed(L), "batch", .fixed(H)])
    if lstm {
      let cN = finalC.count == 1 ? finalC[0] : g.node1("Concat", finalC, output: "c_n", attributes: [GraphBuilder.int("axis", 0)])
      g.output(cN, as: "final_c", .float, [.fixed(L), "batch", .fixed(H)])
    }
    return try serialize(
      g.model(
        name: name,
        documentation: "Recurrent language model: \(c.layers)x\(c.hiddenSize) \(c.cell.rawValue), vocabulary \(c.vocabularySize)"),
      byteLimit: byteLimit)
  }

  /// Rows `[layer, layer + 1)` of a `[L, B, H]` state.
  static func slice(_ g: inout GraphBuilder, _ state: String, _ layer: Int) -> String {
    g.node1(
      "Slice", [state, g.int64s("start", [Int64(layer)]), g.int64s("end", [Int64(layer + 1)]), g.int64s("axis0", [0])],
      output: "\(state)_l\(layer)")
  }

  // MARK: Sequential

  /// A `Sequential` model as an ONNX graph.
  ///
  /// Input `x`: float `[N, T, F]`, or int64 token ids `[N, T]` when the first layer is an
  /// embedding. Optional input `lengths` int32 `[N]` (ONNX's `sequence_lens`: each sequence's
  /// real steps, right-padded); its default is "every step" (a `[1]` default clipped to `T`).
  /// With `maskZero` the lengths come from the ids instead (after the last non-zero id) and the
  /// graph has no `lengths` input. Output `y`: `[N, K]`, or `[N, T, K]` after a recurrent layer
  /// with `returnSequences`. Dropout is the identity, as in inference.
  /// - Parameters:
  ///   - model: the model; its weights are copied into the file.
  ///   - name: the graph's name.
  ///   - byteLimit: refuse a model whose weights take this many bytes or more (see `languageModel`).
  public static func sequential(
    _ model: Sequential, name: String = "recurrent-sequential", byteLimit: Int = maximumBytes
  ) throws -> Data {
    var g = GraphBuilder()
    var x: String
    var lengths: String? = nil
    var width: Int
    var start = 0
    let time: GraphBuilder.Dimension = "time"
    if case .embedding(let e, let maskZero, _)? = model.parts.first {
      let ids = g.input("x", .int64, ["batch", time])
      let timeMajor = g.node1("Transpose", [ids], output: "ids_tn", attributes: [GraphBuilder.ints("perm", [1, 0])])
      let table = g.floats("layers.0.weight", e.weight.scalars, shape: e.weight.shape)
      x = g.node1("Gather", [table, timeMajor], output: "embedded", attributes: [GraphBuilder.int("axis", 0)])
      width = e.embeddingSize
      start = 1
      if maskZero { lengths = maskLengths(&g, ids) }
    } else {
      guard let features = model.inputFeatures else { throw ONNXExportError("the model has neither an embedding nor input features") }
      let input = g.input("x", .float, ["batch", time, .fixed(features)])
      x = g.node1("Transpose", [input], output: "x_tnf", attributes: [GraphBuilder.ints("perm", [1, 0, 2])])
      width = features
    }
    if lengths == nil, model.parts.contains(where: { if case .recurrent = $0 { true } else { false } }) {
      lengths = explicitLengths(&g, x: g.inputs[0].name)
    }
    var isSequence = true
    for index in start..<model.parts.count {
      switch model.parts[index] {
      case .embedding:
        throw ONNXExportError("layer \(index): an embedding after the first layer")
      case .recurrent(let r, let returnSequences):
        guard isSequence else { throw ONNXExportError("layer \(index): a recurrent layer after one that returns a single vector") }
        let out = try recurrent(
          &g, r, layer: 0, input: x, initialH: nil, initialC: nil, sequenceLens: lengths, prefix: "layers.\(index)")
        if returnSequences {
          x = out.sequence
        } else {
          // The last step of each sequence: the forward direction's final state, and the
          // backward direction's output at step 0 (its final state), as [N, D*H].
          let batchFirst = g.node1("Transpose", [out.finalH], output: "last_nd", attributes: [GraphBuilder.ints("perm", [1, 0, 2])])
          x = g.node1("Reshape", [batchFirst, g.int64s("shape", [0, -1])], output: "last")
          isSequence = false
        }
        width = r.outputSize
      case .dense(let l):
        x = g.node1("MatMul", [x, g.floats("layers.\(index).weight_t", transposed(l.weight), shape: [l.inputSize, l.outputSize])], output: "dense")
        if let b = l.bias { x = g.node1("Add", [x, g.floats("layers.\(index).bias", b.scalars, shape: b.shape)], output: "dense_sum") }
        switch l.activation {
        case .none: break
        case .relu: x = g.node1("Relu", [x], output: "relu")
        case .sigmoid: x = g.node1("Sigmoid", [x], output: "sigmoid")
        case .tanh: x = g.node1("Tanh", [x], output: "tanh")
        case .softmax: x = g.node1("Softmax", [x], output: "softmax", attributes: [GraphBuilder.int("axis", -1)])
        }
        width = l.outputSize
      case .dropout:
        continue
      }
    }
    if isSequence {
      x = g.node1("Transpose", [x], output: "y_ntk", attributes: [GraphBuilder.ints("perm", [1, 0, 2])])
      g.output(x, as: "y", .float, ["batch", time, .fixed(width)])
    } else {
      g.output(x, as: "y", .float, ["batch", .fixed(width)])
    }
    return try serialize(
      g.model(name: name, documentation: "Recurrent Sequential model: \(model.layers.count) layers"), byteLimit: byteLimit)
  }

  /// The optional `lengths` input: int32 `[N]`, default "all steps" (`[Int32.max]`, then the
  /// minimum with `T` broadcast over the batch).
  static func explicitLengths(_ g: inout GraphBuilder, x: String) -> String {
    var t = Onnx_TensorProto()
    t.name = g.fresh("lengths")
    t.dataType = Int32(Onnx_TensorProto.DataType.int32.rawValue)
    t.dims = [1]
    t.int32Data = [Int32.max]
    g.initializers.append(t)
    g.inputs.append(GraphBuilder.value(t.name, .int32, ["lengths_batch"]))
    let shape = g.node1("Shape", [x], output: "x_shape")
    let batch = g.node1("Gather", [shape, g.int64s("zero", [0])], output: "n", attributes: [GraphBuilder.int("axis", 0)])
    let steps = g.node1("Gather", [shape, g.int64s("one", [1])], output: "t", attributes: [GraphBuilder.int("axis", 0)])
    let steps32 = g.node1("Cast", [steps], output: "t32", attributes: [GraphBuilder.int("to", Int(Onnx_TensorProto.DataType.int32.rawValue))])
    let clipped = g.node1("Min", [t.name, steps32], output: "lengths_clipped")
    return g.node1("Expand", [clipped, batch], output: "sequence_lens")
  }

  /// Lengths from token ids with `maskZero`: one past the last non-zero id of each row
  /// (0 for a row of zeros), as int32 `[N]`.
  static func maskLengths(_ g: inout GraphBuilder, _ ids: String) -> String {
    let shape = g.node1("Shape", [ids], output: "ids_shape")
    let steps = g.node1("Gather", [shape, g.int64s("one", [1])], output: "steps", attributes: [GraphBuilder.int("axis", 0)])
    let stepsScalar = g.node1("Squeeze", [steps, g.int64s("axes", [0])], output: "steps_scalar")
    let positions = g.node1(
      "Range", [g.int64s("first", [1], shape: []), g.node1("Add", [stepsScalar, g.int64s("one_scalar", [1], shape: [])], output: "end"),
                g.int64s("delta", [1], shape: [])], output: "positions")
    let isZero = g.node1("Equal", [ids, g.int64s("pad", [0], shape: [])], output: "is_pad")
    let real = g.node1("Not", [isZero], output: "is_real")
    let realInt = g.node1("Cast", [real], output: "real_int", attributes: [GraphBuilder.int("to", Int(Onnx_TensorProto.DataType.int64.rawValue))])
    let marked = g.node1("Mul", [realInt, positions], output: "marked")
    let last = g.node1("ReduceMax", [marked], output: "lengths64", attributes: [GraphBuilder.ints("axes", [1]), GraphBuilder.int("keepdims", 0)])
    return g.node1("Cast", [last], output: "sequence_lens", attributes: [GraphBuilder.int("to", Int(Onnx_TensorProto.DataType.int32.rawValue))])
  }

  // MARK: Recurrent layers

  /// The rows of PyTorch's gate blocks in ONNX's order: block k of ONNX is PyTorch's `order[k]`.
  static func gateOrder(_ kind: CellKind) -> [Int] {
    switch kind {
    case .gru, .gruResetBefore: [1, 0, 2]  // r,z,n -> z,r,h
    case .lstm, .lstmPeephole: [0, 3, 1, 2]  // i,f,g,o -> i,o,f,c
    case .rnnTanh, .rnnRelu: [0]
    case .minGRU, .minLSTM, .gruLN, .lstmLN: []  // refused by `recurrent` before it asks
    }
  }

  static func reordered(_ t: Tensor, blocks: [Int], hidden: Int) -> [Float] {
    let rowWidth = t.count / t.shape[0]
    var out: [Float] = []
    out.reserveCapacity(t.count)
    for b in blocks { out += t.scalars[(b * hidden * rowWidth)..<((b + 1) * hidden * rowWidth)] }
    return out
  }

  /// One stacked layer of `r` as an ONNX recurrent operator over a time-major `[T, B, I]`
  /// input; returns the output `[T, B, D*H]` and the final states `[D, B, H]`.
  static func recurrent(
    _ g: inout GraphBuilder, _ r: RecurrentLayer, layer: Int, input: String, initialH: String?, initialC: String?,
    sequenceLens: String?, prefix: String
  ) throws -> (sequence: String, finalH: String, finalC: String?) {
    // ONNX's GRU, LSTM and RNN operators compute h' = h_new; zoneout's inference form
    // p·h + (1-p)·h_new would need the loop unrolled, so such a model is refused.
    guard r.zoneout == 0 else {
      throw ONNXExportError(
        "the model uses zoneout \(r.zoneout), which ONNX's recurrent operators cannot express (train with --zoneout 0 to export)")
    }
    // ONNX has no operator for a cell without a recurrent product; a Scan body would express one.
    guard r.kind.hasRecurrentWeights && !r.kind.kernels.layerNorm else {
      throw ONNXExportError("the model's \(r.kind.rawValue) layers have no ONNX operator (export supports rnn, lstm and gru cells)")
    }
    guard r.projectionSize == 0 else {
      throw ONNXExportError("the model is a projected LSTM (proj_size \(r.projectionSize)), which ONNX's LSTM operator cannot express")
    }
    let D = r.directionCount
    let H = r.hiddenSize
    let order = gateOrder(r.kind)
    let G = order.count
    var w: [Float] = []
    var rw: [Float] = []
    var b: [Float] = []
    for d in 0..<D {
      let weights = r.weights[layer * D + d]
      w += reordered(weights.weightIH, blocks: order, hidden: H)
      rw += reordered(weights.weightHH, blocks: order, hidden: H)
      b += reordered(weights.biasIH, blocks: order, hidden: H) + reordered(weights.biasHH, blocks: order, hidden: H)
    }
    let inputWidth = r.weights[layer * D].weightIH.shape[1]
    let W = g.floats("\(prefix).W", w, shape: [D, G * H, inputWidth])
    let R = g.floats("\(prefix).R", rw, shape: [D, G * H, H])
    let B = g.floats("\(prefix).B", b, shape: [D, 2 * G * H])
    var attributes = [
      GraphBuilder.int("hidden_size", H), GraphBuilder.string("direction", D == 2 ? "bidirectional" : "forward"),
    ]
    let op: String
    switch r.kind {
    case .gru:
      op = "GRU"
      attributes.append(GraphBuilder.int("linear_before_reset", 1))
    case .gruResetBefore:
      op = "GRU"
      attributes.append(GraphBuilder.int("linear_before_reset", 0))
    case .lstm, .lstmPeephole:
      op = "LSTM"
    case .rnnTanh:
      op = "RNN"
    case .rnnRelu:
      op = "RNN"
      attributes.append(GraphBuilder.strings("activations", [String](repeating: "Relu", count: D)))
    case .minGRU, .minLSTM, .gruLN, .lstmLN:
      preconditionFailure("refused above")
    }
    var inputs = [input, W, R, B, sequenceLens ?? "", initialH ?? ""]
    var outputs = ["\(prefix).Y", "\(prefix).Y_h"]
    if op == "LSTM" {
      inputs.append(initialC ?? "")
      outputs.append("\(prefix).Y_c")
    }
    if r.kind == .lstmPeephole {
      // ONNX's P [D, 3H] holds the peepholes as i|o|f; ours are i|f|o.
      var p: [Float] = []
      for d in 0..<D { p += reordered(r.weights[layer * D + d].cellParameters!.reshaped([3 * H, 1]), blocks: [0, 2, 1], hidden: H) }
      inputs.append(g.floats("\(prefix).P", p, shape: [D, 3 * H]))
    }
    while inputs.last == "" { inputs.removeLast() }
    let names = g.node(op, inputs, outputs: outputs, attributes: attributes, name: prefix)
    // Y [T, D, B, H] -> [T, B, D, H] -> [T, B, D*H].
    let moved = g.node1("Transpose", [names[0]], output: "\(prefix).Y_tbdh", attributes: [GraphBuilder.ints("perm", [0, 2, 1, 3])])
    let sequence = g.node1("Reshape", [moved, g.int64s("shape", [0, 0, -1])], output: "\(prefix).output")
    return (sequence, names[1], op == "LSTM" ? names[2] : nil)
  }

  static func transposed(_ t: Tensor) -> [Float] {
    let (rows, columns) = (t.shape[0], t.shape[1])
    var out = [Float](repeating: 0, count: t.count)
    for i in 0..<rows { for j in 0..<columns { out[j * rows + i] = t.scalars[i * columns + j] } }
    return out
  }

  static func serialize(_ model: Onnx_ModelProto, byteLimit: Int) throws -> Data {
    let bytes = model.graph.initializer.reduce(0) { $0 + $1.rawData.count + 8 * $1.int64Data.count }
    guard bytes < min(byteLimit, maximumBytes - (1 << 20)) else {
      throw ONNXExportError(
        "the model's weights take \(bytes) bytes; an ONNX file holds less than \(min(byteLimit, maximumBytes)) (protobuf's 2 GiB limit)")
    }
    do {
      return try model.serializedData()
    } catch {
      throw ONNXExportError("cannot encode the ONNX model: \(error)")
    }
  }
}
