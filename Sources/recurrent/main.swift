import CKernels
import RecurrentCommands

_ = rc_keep_freed_memory()
RecurrentCommand.runAndExit()
