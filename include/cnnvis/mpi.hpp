#pragma once
// MPI for `cnnvis batch` and `cnnvis evaluate` under mpirun: a session (MPI_Init_thread /
// MPI_Finalize), the process's rank, and the few messages they exchange (strings, JSON in
// practice). Built with MPI when CMake finds it (Debian: libopenmpi-dev); without it, every
// process is rank 0 of 1, and a Session under mpirun throws, saying so.
//
// Only the calling code's threads that hold the turn call MPI (MPI_THREAD_SERIALIZED): batch
// hands the turn to one helper thread while its main thread computes.
#include <string>
#include <vector>

namespace cnnvis::mpi {

// True when cnnvis was built with MPI.
bool available();
// The implementation's name and version ("Open MPI v4.1.4, ..."), or "" without MPI.
std::string library_version();
// True when the environment says mpirun (or srun with PMI/PMIx) started this process.
bool launched();

// MPI_Init_thread on construction when launched() (else nothing: rank 0 of 1), MPI_Finalize
// on destruction. One per process, on the main thread. Throws cnnvis::Error (runtime) when
// launched() but cnnvis was built without MPI, or when the library lacks thread support.
// While an exception unwinds, the destructor leaves MPI alone: abort_on_error() ends the job
// (a finalize could wait forever for ranks that are still working).
class Session {
 public:
  Session();
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
};

// This process's rank and the number of processes (0 and 1 without a session).
int rank();
int size();
// Processes on this machine (OMPI_COMM_WORLD_LOCAL_SIZE and the like; 1 when unknown).
int local_size();
// True while a session with more than one process is open.
bool distributed();

// For a command's error handler: when distributed(), ends the whole job with `code`
// (MPI_Abort), so that no rank waits for one that failed. Returns otherwise.
void abort_on_error(int code);

// Point-to-point and collective exchanges (MPI_COMM_WORLD). `source` < 0: any rank; `from`
// receives the sender.
void send(int dest, int tag, const std::string& message);
std::string receive(int source, int tag, int* from = nullptr);
// Every rank gets the elementwise sum of every rank's `values` (same length everywhere).
void sum(std::vector<double>& values);
// Rank 0 gets every rank's message in rank order; the others get an empty vector.
std::vector<std::string> gather(const std::string& message);
void barrier();

}  // namespace cnnvis::mpi
