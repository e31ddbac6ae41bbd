// swift-tools-version: 6.1
import PackageDescription

// Modules, lowest first; dependencies run one way (see the README's module table).
let package = Package(
  name: "Recurrent",
  products: [
    .library(
      name: "Recurrent", targets: ["Recurrent", "Formats", "TextCorpus", "SequenceModels", "Training", "Baselines"]),
    .executable(name: "recurrent", targets: ["recurrent"]),
    .executable(name: "recurrent-server", targets: ["recurrent-server"]),
  ],
  // `swift build -c release --traits MPI` links Open MPI (pkg-config ompi-c; Debian:
  // libopenmpi-dev); the default build needs no MPI headers or libraries.
  traits: [.trait(name: "MPI", description: "Data-parallel training across processes with Open MPI")],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    // `swift package generate-documentation` (Tools/docs.sh); a plugin, nothing links it.
    .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    // ONNX export only (the ONNXExport module); the core modules do not depend on it.
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    // The HTTP server only (RecurrentServer, recurrent-server): `recurrent train` never builds them.
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
  ],
  targets: [
    // C micro-kernels: packed, register-blocked SGEMM (AVX2/FMA chosen at run time, portable
    // fallback), vectorised pointwise step kernels, GEMV, the persistent thread pool.
    .target(name: "CKernels"),
    // Tensor, random numbers, the GEMM driver and its naive twin, packed matrices. No printing.
    .target(name: "TensorCore", dependencies: ["CKernels"]),
    // The cell table, recurrent layers, Embedding/Linear/Dropout, LanguageModel, losses,
    // optimizers, schedules, clipping and the one training step.
    .target(name: "Recurrent", dependencies: ["TensorCore", "CKernels"]),
    // Files and formats: reading files, atomic writes, the JSON writer, safetensors and the one
    // checkpoint envelope, NumPy .npy, CSV, GloVe/word2vec vectors.
    .target(name: "Formats", dependencies: ["TensorCore"]),
    // Text: vocabularies, tokenizers, the validation split, truncated-BPTT batches.
    .target(name: "TextCorpus", dependencies: ["Formats"]),
    // The Keras-style Sequential model (layers, compile/fit/evaluate/predict) and its checkpoint.
    .target(name: "SequenceModels", dependencies: ["Recurrent", "Formats"]),
    // Language-model training sessions, evaluation, generation, checkpoints, metrics log.
    .target(name: "Training", dependencies: ["Recurrent", "TextCorpus", "Formats", "Distributed"]),
    // Classical baselines: Kneser-Ney n-grams (ARPA) and hidden Markov models.
    .target(name: "Baselines", dependencies: ["Recurrent", "Formats", "TextCorpus"]),
    // ONNX export of language models and Sequential models: onnx.proto's messages generated once
    // by swift-protobuf (Tools/onnx/generate.sh) and committed, and the graph builder.
    .target(
      name: "ONNXExport",
      dependencies: ["Recurrent", "SequenceModels", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
    // Open MPI's header with its macros wrapped for Swift; only builds with the MPI trait use it.
    .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
    // The processes of a run and their collectives: MPI with the trait, one process without.
    .target(
      name: "Distributed", dependencies: [.target(name: "CMPI", condition: .when(traits: ["MPI"]))],
      swiftSettings: [.define("MPI", .when(traits: ["MPI"]))]),
    // Serving without HTTP: completion requests, the continuous-batching scheduler, stop
    // sequences, text streaming. Light: what the HTTP layer and the tests build on.
    .target(name: "Serving", dependencies: ["Recurrent", "TextCorpus", "Training", "Formats"]),
    // The OpenAI-compatible HTTP server on Hummingbird 2, with Prometheus metrics and a page.
    .target(
      name: "RecurrentServer",
      dependencies: [
        "Serving", "Training", "TextCorpus", "Formats",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Logging", package: "swift-log"),
      ]),
    .executableTarget(name: "recurrent-server", dependencies: ["RecurrentServer"]),
    // Runnable examples and the long-memory tasks (`recurrent example`, `recurrent task`).
    .target(name: "RecurrentExamples", dependencies: ["SequenceModels"], path: "Examples"),
    // All ArgumentParser code, a library so tests can parse commands.
    .target(
      name: "RecurrentCommands",
      dependencies: [
        "Recurrent", "Formats", "TextCorpus", "SequenceModels", "Training", "RecurrentExamples", "Baselines",
        "ONNXExport", "Distributed", .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
    .executableTarget(name: "recurrent", dependencies: ["RecurrentCommands", "CKernels"]),
    // libFuzzer target for the file readers; see Tools/fuzz.sh.
    .executableTarget(
      name: "checkpoint-fuzzer", dependencies: ["Training", "SequenceModels", "Baselines", "Formats"],
      path: "Fuzz/CheckpointFuzzer"),
    // Tests mirror the modules: one test target per module, over a shared TestSupport
    // (expectClose, finite differences, fixture loading, running the built binary).
    .target(name: "TestSupport", dependencies: ["Recurrent"], path: "Tests/TestSupport"),
    .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"]),
    .testTarget(
      name: "RecurrentTests", dependencies: ["Recurrent", "CKernels", "TestSupport"], resources: [.copy("Fixtures")]),
    .testTarget(name: "FormatsTests", dependencies: ["Formats", "TestSupport"], resources: [.copy("Fixtures")]),
    .testTarget(name: "TextCorpusTests", dependencies: ["TextCorpus", "TestSupport"]),
    .testTarget(
      name: "SequenceModelsTests", dependencies: ["SequenceModels", "Formats", "TestSupport"], resources: [.copy("Fixtures")]),
    .testTarget(
      name: "TrainingTests", dependencies: ["Training", "Formats", "TextCorpus", "Distributed", "TestSupport"],
      resources: [.copy("Fixtures")]),
    .testTarget(name: "BaselinesTests", dependencies: ["Baselines", "Formats", "TextCorpus", "TestSupport"]),
    .testTarget(name: "RecurrentExamplesTests", dependencies: ["RecurrentExamples", "SequenceModels", "TestSupport"]),
    .testTarget(
      name: "ONNXExportTests",
      dependencies: [
        "ONNXExport", "Recurrent", "SequenceModels", "TestSupport",
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ]),
    .testTarget(name: "DistributedTests", dependencies: ["Distributed"]),
    .testTarget(name: "ServingTests", dependencies: ["Serving", "Training", "TextCorpus", "Recurrent", "TestSupport"]),
    .testTarget(
      name: "RecurrentServerTests",
      dependencies: [
        "RecurrentServer", "Serving", "Training", "TextCorpus", "Recurrent", "TestSupport",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "HummingbirdTesting", package: "hummingbird"),
        .product(name: "Logging", package: "swift-log"),
      ]),
    .testTarget(
      name: "RecurrentCommandsTests",
      dependencies: ["RecurrentCommands", "Training", "SequenceModels", "Formats", "TestSupport"]),
  ],
  swiftLanguageModes: [.v6]
)
