import Foundation
import Recurrent
import SequenceModels
import Testing
import TestSupport

// Keras models imported by Tools/keras_weights.py (fixtures written by
// `python3 Tools/check_keras.py --fixtures Tests/SequenceModelsTests/Fixtures`): a bidirectional
// LSTM+GRU over masked token ids, a reset-before GRU stack and a SimpleRNN (tanh, relu) stack
// predict what Keras's model.predict gave, within 1e-5 relative, with no Python at test time.

private struct KerasCase: Decodable {
  var x: [Double]
  var x_shape: [Int]
  var predictions: [Double]
  var predictions_shape: [Int]
}

@Test(arguments: ["keras_bidirectional_masked", "keras_gru_reset_before", "keras_simple_rnn"])
func kerasModelsPredictWhatKerasPredicted(name: String) throws {
  let fixture = try loadFixture(name, as: KerasCase.self, in: .module)
  let path = try #require(Bundle.module.path(forResource: "Fixtures/" + name, ofType: "safetensors"))
  let (model, _) = try SequentialCheckpoint.load(from: path)
  // Features [N, T, F], or token ids [N, T] as whole numbers (Sequential's input convention).
  let x = Tensor(shape: fixture.x_shape, scalars: fixture.x.map(Float.init))
  let predictions = try model.predict(x)
  #expect(predictions.shape == fixture.predictions_shape)
  let scale = fixture.predictions.map(abs).max() ?? 1
  let error = zip(predictions.scalars, fixture.predictions).map { abs(Double($0) - $1) }.max() ?? .infinity
  #expect(error <= 1e-5 * scale, "\(name): max error \(error)")
}
