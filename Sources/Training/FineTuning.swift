import Recurrent
import TextCorpus

extension Vocabulary {
  /// This vocabulary with the tokens of `texts` it lacks appended after its own (old ids keep
  /// their meaning): new characters in scalar order; new words by count (at least
  /// `minimumCount`), up to `maximumSize` tokens in all. Byte-level vocabularies (bytes, BPE)
  /// have them all.
  public func extended(with texts: [String], minimumCount: Int = 1, maximumSize: Int? = nil) -> Vocabulary {
    if isByteLevel { return self }
    let known = Set(tokens)
    switch kind {
    case .char:
      let fresh = Vocabulary.characters(of: texts, encoding: encoding).tokens.filter { !known.contains($0) }
      return Vocabulary(kind: kind, tokens: tokens + fresh, encoding: encoding)
    case .bpe:
      return self
    case .word:
      let all = Vocabulary.words(of: texts.joined(separator: "\n"), minimumCount: minimumCount, encoding: encoding)
      var fresh = all.tokens.filter { !known.contains($0) }
      if let maximumSize { fresh = Array(fresh.prefix(max(0, maximumSize - tokens.count))) }
      return Vocabulary(kind: kind, tokens: tokens + fresh, encoding: encoding)
    }
  }
}

extension LanguageModel {
  /// A model for `configuration` (the same architecture, a vocabulary that extends this one's)
  /// that starts from this model: every weight of this model is copied, and the rows of tokens
  /// new to the vocabulary (embedding, decoder weight and bias) keep their fresh initialisation
  /// from `rng`, as a new model's would.
  public func transferred(
    to configuration: LanguageModelConfiguration, using rng: inout some RandomNumberGenerator
  ) -> LanguageModel {
    let old = self.configuration
    precondition(
      configuration.cell == old.cell && configuration.layers == old.layers && configuration.hiddenSize == old.hiddenSize
        && configuration.embeddingSize == old.embeddingSize && configuration.tied == old.tied
        && configuration.projectionSize == old.projectionSize && configuration.vocabularySize >= old.vocabularySize,
      "LanguageModel.transferred: another architecture or a smaller vocabulary")
    var model = LanguageModel(configuration, using: &rng)
    let (V, E, H) = (old.vocabularySize, old.embeddingSize, old.stateSize)  // the decoder reads h
    model.encoder.weight.scalars.replaceSubrange(0..<(V * E), with: encoder.weight.scalars)
    model.rnn.weights = rnn.weights
    if !old.tied { model.decoder.weight.scalars.replaceSubrange(0..<(V * H), with: decoder.weight.scalars) }
    if let bias = decoder.bias { model.decoder.bias!.scalars.replaceSubrange(0..<V, with: bias.scalars) }
    return model
  }
}
