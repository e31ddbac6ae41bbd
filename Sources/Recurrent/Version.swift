/// Facts about this build of the library.
public enum RecurrentInfo {
  /// The library's version (semantic versioning), printed by `recurrent --version`.
  public static let version = "0.1.0"
}
