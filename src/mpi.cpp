#include "cnnvis/mpi.hpp"

#include <cstdlib>
#include <exception>

#include "cnnvis/error.hpp"

#ifdef CNNVIS_WITH_MPI
#include <mpi.h>
#endif

namespace cnnvis::mpi {
namespace {

int g_rank = 0;
int g_size = 1;
bool g_open = false;

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return end && *end == '\0' && n >= 0 && n < (1 << 24) ? static_cast<int>(n) : -1;
}

[[noreturn]] void no_session(const char* what) {
  throw Error(std::string("mpi::") + what + ": no MPI session with more than one process",
              ErrorKind::kRuntime);
}

#ifdef CNNVIS_WITH_MPI
void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw Error(std::string(what) + " failed: " + std::string(text, static_cast<size_t>(length)),
              ErrorKind::kRuntime);
}
#endif

}  // namespace

bool available() {
#ifdef CNNVIS_WITH_MPI
  return true;
#else
  return false;
#endif
}

std::string library_version() {
#ifdef CNNVIS_WITH_MPI
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(text, &length);
  std::string s(text, static_cast<size_t>(length));
  const auto comma = s.find(',');
  return comma == std::string::npos ? s : s.substr(0, comma);
#else
  return "";
#endif
}

bool launched() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"}) {
    if (std::getenv(name)) return true;
  }
  return false;
}

Session::Session() {
  if (g_open || !launched()) return;
#ifdef CNNVIS_WITH_MPI
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  g_open = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  if (provided < MPI_THREAD_SERIALIZED) {
    if (g_size > 1) {
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    throw Error("MPI: " + library_version() + " gives no MPI_THREAD_SERIALIZED support, which "
                "cnnvis batch needs; build OpenMPI with threads (Debian's has it)",
                ErrorKind::kRuntime);
  }
#else
  throw Error("this process was started by mpirun, but cnnvis was built without MPI; install "
              "libopenmpi-dev (scripts/setup.sh does), rebuild, or run without mpirun",
              ErrorKind::kRuntime);
#endif
}

Session::~Session() {
#ifdef CNNVIS_WITH_MPI
  if (!g_open || std::uncaught_exceptions() > 0) return;
  MPI_Finalize();
  g_open = false;
  g_rank = 0;
  g_size = 1;
#endif
}

int rank() { return g_rank; }
int size() { return g_size; }

int local_size() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"}) {
    const int n = env_int(name);
    if (n > 0) return n;
  }
  return 1;
}

bool distributed() { return g_open && g_size > 1; }

void abort_on_error(int code) {
#ifdef CNNVIS_WITH_MPI
  if (distributed()) MPI_Abort(MPI_COMM_WORLD, code);
  if (g_open) {  // one process: nobody waits, so it ends as it would without mpirun
    MPI_Finalize();
    g_open = false;
  }
#endif
}

void send(int dest, int tag, const std::string& message) {
#ifdef CNNVIS_WITH_MPI
  if (!distributed()) no_session("send");
  check(MPI_Send(message.data(), static_cast<int>(message.size()), MPI_CHAR, dest, tag,
                 MPI_COMM_WORLD),
        "MPI_Send");
#else
  no_session("send");
#endif
}

std::string receive(int source, int tag, int* from) {
#ifdef CNNVIS_WITH_MPI
  if (!distributed()) no_session("receive");
  MPI_Status status;
  check(MPI_Probe(source < 0 ? MPI_ANY_SOURCE : source, tag, MPI_COMM_WORLD, &status),
        "MPI_Probe");
  int count = 0;
  MPI_Get_count(&status, MPI_CHAR, &count);
  std::string message(static_cast<size_t>(count), '\0');
  check(MPI_Recv(message.data(), count, MPI_CHAR, status.MPI_SOURCE, tag, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE),
        "MPI_Recv");
  if (from) *from = status.MPI_SOURCE;
  return message;
#else
  no_session("receive");
#endif
}

void sum(std::vector<double>& values) {
#ifdef CNNVIS_WITH_MPI
  if (!distributed() || values.empty()) return;
  check(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE,
                      MPI_SUM, MPI_COMM_WORLD),
        "MPI_Allreduce");
#endif
}

std::vector<std::string> gather(const std::string& message) {
#ifdef CNNVIS_WITH_MPI
  if (!distributed()) return {message};
  int length = static_cast<int>(message.size());
  std::vector<int> lengths(g_rank == 0 ? static_cast<size_t>(g_size) : 0);
  check(MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD),
        "MPI_Gather");
  std::vector<int> offsets(lengths.size());
  int total = 0;
  for (size_t r = 0; r < lengths.size(); ++r) {
    offsets[r] = total;
    total += lengths[r];
  }
  std::string all(static_cast<size_t>(total), '\0');
  check(MPI_Gatherv(message.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(),
                    MPI_CHAR, 0, MPI_COMM_WORLD),
        "MPI_Gatherv");
  std::vector<std::string> out;
  for (size_t r = 0; r < lengths.size(); ++r) {
    out.push_back(all.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(lengths[r])));
  }
  return out;
#else
  return {message};
#endif
}

void barrier() {
#ifdef CNNVIS_WITH_MPI
  if (distributed()) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}

}  // namespace cnnvis::mpi
