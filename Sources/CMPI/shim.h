// Open MPI for Swift: the header, and the handles that are macros (Swift cannot import them) as
// static inline functions. Used only by builds with the MPI trait (swift build --traits MPI).
#include <mpi.h>

static inline MPI_Comm rc_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype rc_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype rc_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype rc_mpi_long(void) { return MPI_LONG; }
static inline MPI_Op rc_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op rc_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op rc_mpi_min(void) { return MPI_MIN; }
static inline void *rc_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler rc_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Status *rc_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
