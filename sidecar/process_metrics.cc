#include "sidecar/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string_view>

#include "sidecar/exposition.h"

namespace gatehouse::sidecar {
namespace {

// A gauge or counter of one sample, its value as the client libraries
// print a double (%.17g: it reads back exactly).
void Metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  prom::Metric(out, name, type, help, std::string_view(buf));
}

// The system's boot time (btime in /proc/stat), seconds since the epoch.
long long BootTime() {
  std::ifstream in("/proc/stat");
  std::string key;
  long long value = 0;
  while (in >> key) {
    if (key == "btime" && (in >> value)) return value;
    in.ignore(1 << 20, '\n');
  }
  return -1;
}

int OpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n - 1;  // the directory's own descriptor
}

}  // namespace

void AppendProcessMetrics(std::string& out) {
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  // /proc/self/stat: "pid (comm) state ppid ...": the command name may hold
  // spaces and parentheses, so the fields are counted after the last ')'.
  std::ifstream in("/proc/self/stat");
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string stat = buf.str();
  const size_t close = stat.rfind(')');
  if (close != std::string::npos && ticks > 0) {
    std::istringstream fields(stat.substr(close + 1));
    // Field 3 is the state; utime 14, stime 15, starttime 22, vsize 23, rss 24.
    std::string f;
    double utime = -1, stime = -1, start = -1, vsize = -1, rss = -1;
    for (int i = 3; i <= 24 && (fields >> f); ++i) {
      const double v = std::strtod(f.c_str(), nullptr);
      if (i == 14) utime = v;
      if (i == 15) stime = v;
      if (i == 22) start = v;
      if (i == 23) vsize = v;
      if (i == 24) rss = v;
    }
    if (utime >= 0 && stime >= 0) {
      Metric(out, "process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent in seconds.", (utime + stime) / ticks);
    }
    if (rss >= 0) {
      Metric(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
             rss * page);
    }
    if (vsize >= 0) {
      Metric(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize);
    }
    const long long boot = BootTime();
    if (start >= 0 && boot > 0) {
      Metric(out, "process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.",
             static_cast<double>(boot) + start / ticks);
    }
  }
  if (const int fds = OpenFds(); fds >= 0) {
    Metric(out, "process_open_fds", "gauge", "Number of open file descriptors.", fds);
  }
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0) {
    Metric(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
           r.rlim_cur == RLIM_INFINITY ? 1.8446744073709552e19 : static_cast<double>(r.rlim_cur));
  }
}

}  // namespace gatehouse::sidecar
