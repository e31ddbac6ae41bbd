import RecurrentCommands

RecurrentCommand.main()
