import Foundation
import SwiftProtobuf
import TensorCore

/// Builds an ONNX graph node by node: fresh value names, initializers from tensors, attributes.
struct GraphBuilder {
  var nodes: [Onnx_NodeProto] = []
  var initializers: [Onnx_TensorProto] = []
  var inputs: [Onnx_ValueInfoProto] = []
  var outputs: [Onnx_ValueInfoProto] = []
  private var used = Set<String>()

  /// A value name not used before, from `base`.
  mutating func fresh(_ base: String) -> String {
    var name = base
    var k = 1
    while used.contains(name) {
      k += 1
      name = "\(base)_\(k)"
    }
    used.insert(name)
    return name
  }

  /// Adds a node; returns its outputs' names (fresh, from `outputs`; "" keeps an optional
  /// output unnamed).
  @discardableResult
  mutating func node(
    _ op: String, _ inputs: [String], outputs: [String], attributes: [Onnx_AttributeProto] = [], name: String? = nil
  ) -> [String] {
    let names = outputs.map { $0.isEmpty ? "" : fresh($0) }
    var n = Onnx_NodeProto()
    n.opType = op
    n.input = inputs
    n.output = names
    n.attribute = attributes
    n.name = fresh(name ?? op.lowercased())
    nodes.append(n)
    return names
  }

  /// A one-output node.
  mutating func node1(_ op: String, _ inputs: [String], output: String, attributes: [Onnx_AttributeProto] = []) -> String {
    node(op, inputs, outputs: [output], attributes: attributes)[0]
  }

  /// A float initializer.
  @discardableResult
  mutating func floats(_ name: String, _ values: [Float], shape: [Int]) -> String {
    precondition(values.count == shape.reduce(1, *), "initializer \(name): \(values.count) values for \(shape)")
    var t = Onnx_TensorProto()
    t.name = fresh(name)
    t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
    t.dims = shape.map(Int64.init)
    var raw = Data(capacity: values.count * 4)
    for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { raw.append(contentsOf: $0) } }
    t.rawData = raw
    initializers.append(t)
    return t.name
  }

  /// An int64 initializer (shapes, axes, indices).
  @discardableResult
  mutating func int64s(_ name: String, _ values: [Int64], shape: [Int]? = nil) -> String {
    var t = Onnx_TensorProto()
    t.name = fresh(name)
    t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
    t.dims = (shape ?? [values.count]).map(Int64.init)
    t.int64Data = values
    initializers.append(t)
    return t.name
  }

  /// A graph input or output: element type and dimensions (a `String` is a symbolic size).
  static func value(_ name: String, _ type: Onnx_TensorProto.DataType, _ dims: [Dimension]) -> Onnx_ValueInfoProto {
    var shape = Onnx_TensorShapeProto()
    shape.dim = dims.map { d in
      var dim = Onnx_TensorShapeProto.Dimension()
      switch d {
      case .fixed(let n): dim.dimValue = Int64(n)
      case .symbolic(let s): dim.dimParam = s
      }
      return dim
    }
    var tensor = Onnx_TypeProto.Tensor()
    tensor.elemType = Int32(type.rawValue)
    tensor.shape = shape
    var type = Onnx_TypeProto()
    type.tensorType = tensor
    var info = Onnx_ValueInfoProto()
    info.name = name
    info.type = type
    return info
  }

  enum Dimension: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral {
    case fixed(Int)
    case symbolic(String)
    init(integerLiteral value: Int) { self = .fixed(value) }
    init(stringLiteral value: String) { self = .symbolic(value) }
  }

  mutating func input(_ name: String, _ type: Onnx_TensorProto.DataType, _ dims: [Dimension]) -> String {
    let name = fresh(name)
    inputs.append(Self.value(name, type, dims))
    return name
  }

  mutating func output(_ value: String, as name: String, _ type: Onnx_TensorProto.DataType, _ dims: [Dimension]) {
    // An Identity gives the output its public name whatever node made the value.
    let named = node1("Identity", [value], output: name)
    outputs.append(Self.value(named, type, dims))
  }

  // MARK: Attributes

  static func int(_ name: String, _ v: Int) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .int
    a.i = Int64(v)
    return a
  }

  static func ints(_ name: String, _ v: [Int]) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .ints
    a.ints = v.map(Int64.init)
    return a
  }

  static func float(_ name: String, _ v: Float) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .float
    a.f = v
    return a
  }

  static func string(_ name: String, _ v: String) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .string
    a.s = Data(v.utf8)
    return a
  }

  static func strings(_ name: String, _ v: [String]) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    a.type = .strings
    a.strings = v.map { Data($0.utf8) }
    return a
  }

  // MARK: The model

  /// The whole model: this graph, the opset, producer and documentation.
  func model(name: String, documentation: String) -> Onnx_ModelProto {
    var graph = Onnx_GraphProto()
    graph.name = name
    graph.node = nodes
    graph.initializer = initializers
    // Inputs with an initializer of the same name are optional (the initializer is the default).
    graph.input = inputs
    graph.output = outputs
    var model = Onnx_ModelProto()
    model.irVersion = ONNXExporter.irVersion
    var opset = Onnx_OperatorSetIdProto()
    opset.domain = ""
    opset.version = ONNXExporter.opset
    model.opsetImport = [opset]
    model.producerName = "recurrent"
    model.producerVersion = ONNXExporter.producerVersion
    model.docString = documentation
    model.graph = graph
    return model
  }
}
