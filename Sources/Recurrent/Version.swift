public enum RecurrentInfo { public static let version = "0.1.0" }
