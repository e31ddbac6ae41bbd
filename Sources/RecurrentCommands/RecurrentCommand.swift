import ArgumentParser
import Recurrent

public struct RecurrentCommand: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "recurrent",
    abstract: "Recurrent neural networks (GRU, LSTM, RNN): train, evaluate and sample language models.",
    version: RecurrentInfo.version,
    subcommands: [Train.self, Evaluate.self, Generate.self, Fit.self, Predict.self, TaskCommand.self, ExampleCommand.self, Bench.self, BenchGEMM.self])
  public init() {}
}
