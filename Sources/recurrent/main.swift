import CKernels
import RecurrentCommands

rc_keep_freed_memory()
RecurrentCommand.runAndExit()
