/// SplitMix64 (Steele, Lea, Flood 2014): a small, fast, seedable generator. Pass it as an
/// argument wherever randomness is needed; there is no global seed.
public struct SplitMix64: RandomNumberGenerator, Sendable, Equatable, Codable {
  /// The generator's whole state (checkpoints store it to resume a run exactly).
  public var state: UInt64

  /// A generator that starts from `seed`.
  public init(seed: UInt64) { state = seed }

  /// The next 64 random bits.
  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

extension RandomNumberGenerator {
  /// A uniform Float in `[0, 1)` with 24 random bits.
  public mutating func nextUnitFloat() -> Float {
    Float(next() >> 40) * 0x1p-24
  }

  /// Two independent standard normal samples (Box-Muller, in Double).
  public mutating func nextStandardNormalPair() -> (Float, Float) {
    // u1 in (0, 1] so the logarithm is finite.
    let u1 = (Double(next() >> 11) + 1) * 0x1p-53
    let u2 = Double(next() >> 11) * 0x1p-53
    let r = (-2 * _log(u1)).squareRoot()
    let theta = 2 * Double.pi * u2
    return (Float(r * _cos(theta)), Float(r * _sin(theta)))
  }
}
