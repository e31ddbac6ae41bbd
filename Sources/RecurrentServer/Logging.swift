import Logging

/// Hummingbird's logger at warnings only (a request line per request would drown the output).
func quietLogger() -> Logger {
  var logger = Logger(label: "recurrent-server")
  logger.logLevel = .warning
  return logger
}
