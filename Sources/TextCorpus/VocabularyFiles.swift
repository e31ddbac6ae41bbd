import Formats

/// How checkpoints hold a vocabulary: the token names as a JSON array under
/// `recurrent.vocabulary`, and for BPE the merges as a JSON array of `[left, right]` id pairs
/// under `recurrent.merges` (the names are then checked against the merges on reading).
extension Vocabulary {
  /// Metadata key of the token names (a JSON array of strings).
  public static let tokensKey = "recurrent.vocabulary"
  /// Metadata key of the BPE merges (a JSON array of `[left, right]` id pairs).
  public static let mergesKey = "recurrent.merges"

  /// The metadata entries that store this vocabulary.
  public func metadata() throws -> [String: String] {
    var entries = [Self.tokensKey: try encodeJSON(tokens)]
    if let bytePairs { entries[Self.mergesKey] = try encodeJSON(bytePairs.merges) }
    return entries
  }

  /// The vocabulary stored in a checkpoint's metadata (see `metadata()`), of the given kind and
  /// encoding (which the checkpoint's configuration holds).
  public static func stored(
    in envelope: CheckpointEnvelope, kind: TokenizerKind, encoding: TextEncoding
  ) throws -> Vocabulary {
    guard let tokens = try? envelope.decode([String].self, key: tokensKey), !tokens.isEmpty else {
      throw CheckpointError.badMetadata(key: tokensKey, reason: "missing or not a JSON array of strings")
    }
    guard kind == .bpe else { return Vocabulary(kind: kind, tokens: tokens, encoding: encoding) }
    guard let merges = try? envelope.decode([BytePairEncoding.Merge].self, key: mergesKey) else {
      throw CheckpointError.badMetadata(key: mergesKey, reason: "missing or not a JSON array of [left, right] id pairs")
    }
    let bytePairs: BytePairEncoding
    do {
      bytePairs = try BytePairEncoding(merges: merges)
    } catch {
      throw CheckpointError.badMetadata(key: mergesKey, reason: error.description)
    }
    let vocabulary = Vocabulary(bytePairs: bytePairs, encoding: encoding)
    guard vocabulary.tokens == tokens else {
      throw CheckpointError.badMetadata(key: tokensKey, reason: "the token names do not match the merges")
    }
    return vocabulary
  }

  /// The vocabulary of a checkpoint that holds one (a language model's or an HMM's), with its
  /// tokenizer and encoding; errors name the file.
  public static func read(fromCheckpoint path: String) throws -> Vocabulary {
    struct Stored: Decodable {
      var tokenizer: String?
      var encoding: String?
    }
    do {
      let file = try SafeTensors.read(path: path)
      let format = file.metadata[CheckpointEnvelope.formatKey]
      guard let kind = [CheckpointKind.languageModel, .hiddenMarkovModel].first(where: { $0.format == format }) else {
        throw CheckpointError.badMetadata(
          key: CheckpointEnvelope.formatKey, reason: "not a language model or HMM checkpoint, the kinds that hold a vocabulary")
      }
      let envelope = try CheckpointEnvelope(file, kind: kind)
      let stored = (try? envelope.decode(Stored.self)) ?? Stored()
      let tokenizerName = stored.tokenizer ?? envelope.metadata["recurrent.tokenizer"] ?? "char"
      guard let tokenizer = TokenizerKind(rawValue: tokenizerName) else {
        throw CheckpointError.badMetadata(key: CheckpointEnvelope.configKey, reason: "unknown tokenizer '\(tokenizerName)'")
      }
      guard let encoding = TextEncoding(rawValue: stored.encoding ?? "utf8") else {
        throw CheckpointError.badMetadata(key: CheckpointEnvelope.configKey, reason: "unknown encoding '\(stored.encoding ?? "")'")
      }
      return try Vocabulary.stored(in: envelope, kind: tokenizer, encoding: encoding)
    } catch let error as CheckpointError {
      if case .unreadable = error { throw error }
      throw CheckpointError.inFile(path: path, error)
    }
  }
}
