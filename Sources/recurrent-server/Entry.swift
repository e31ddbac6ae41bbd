import RecurrentServer

/// The `recurrent-server` executable.
@main
struct Entry {
  static func main() async {
    await ServerCommand.runAndExit()
  }
}
