// swift-tools-version: 6.0
import PackageDescription

let package = Package(
  name: "Recurrent",
  products: [
    .library(name: "Recurrent", targets: ["Recurrent", "TextCorpus", "Training"]),
    .executable(name: "recurrent", targets: ["recurrent"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
  ],
  targets: [
    // C micro-kernels (GEMM packing and register blocking). The AVX2/FMA path is
    // chosen at run time, so the package builds and runs on any x86-64 or arm64.
    .target(name: "CKernels"),
    // Tensor, random numbers, GEMM driver, pointwise kernels. No printing.
    .target(name: "TensorCore", dependencies: ["CKernels"]),
    // Cells, recurrent layers, Embedding/Linear/Dropout, losses, optimizers.
    .target(name: "Recurrent", dependencies: ["TensorCore", "CKernels"]),
    // Vocabulary, tokenizers, batching. Stands alone.
    .target(name: "TextCorpus"),
    // Training session, evaluation, generation, checkpoints; progress as events.
    .target(name: "Training", dependencies: ["Recurrent", "TextCorpus"]),
    // Classical baselines: Kneser-Ney n-grams (ARPA) and hidden Markov models.
    .target(name: "Baselines", dependencies: ["Recurrent", "Training"]),
    // Runnable examples and the long-memory tasks (`recurrent example`, `recurrent task`).
    .target(name: "RecurrentExamples", dependencies: ["Recurrent"], path: "Examples"),
    // All ArgumentParser code, a library so tests can parse commands.
    .target(
      name: "RecurrentCommands",
      dependencies: [
        "Recurrent", "TextCorpus", "Training", "RecurrentExamples", "Baselines",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
    .executableTarget(name: "recurrent", dependencies: ["RecurrentCommands", "CKernels"]),
    // libFuzzer target for the file readers; see Tools/fuzz.sh.
    .executableTarget(name: "checkpoint-fuzzer", dependencies: ["Training"], path: "Fuzz/CheckpointFuzzer"),
    .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"]),
    .testTarget(
      name: "RecurrentTests",
      dependencies: [
        "Recurrent", "TextCorpus", "Training", "RecurrentCommands", "RecurrentExamples", "Baselines", "CKernels",
      ],
      resources: [.copy("Fixtures")]),
  ],
  swiftLanguageModes: [.v6]
)
