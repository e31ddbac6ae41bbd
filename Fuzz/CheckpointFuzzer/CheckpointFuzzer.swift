// libFuzzer target for every reader of untrusted files: safetensors (raw, and in the checkpoint
// envelope as a language model, a fit model and an HMM) and NumPy .npy. Any input must be read or refused with a
// thrown error; a trap, crash or sanitizer report is a bug. Built and run by Tools/fuzz.sh
// (`swift build --sanitize=fuzzer`); built without the sanitizer it is an empty program.
import Baselines
import Foundation
import Formats
import SequenceModels
import Training

@_cdecl("LLVMFuzzerTestOneInput")
public func checkpointFuzzerTestOneInput(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let data = Data(bytes: bytes, count: size)
  if let file = try? SafeTensors(decoding: data) {
    _ = try? Checkpoint(file)
    _ = try? SequentialCheckpoint.decode(file)
    _ = try? HiddenMarkovModel.decode(file)
    _ = file.encoded()
  }
  _ = try? NumPyArray(decoding: data)
  return 0
}
