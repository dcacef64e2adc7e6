// Arbitrary bytes as an existing decision-log file, then DecisionLog::Open
// and one Write (the repair a restarted sidecar does):
//   - a file that does not start like our records is refused and left as it was;
//   - otherwise what remains before the new line is the longest prefix of the
//     old content ending in a newline (only a torn last line is cut), and the
//     new line follows whole.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "fuzz_check.h"
#include "sidecar/decision_log.h"

using namespace gatehouse::sidecar;

namespace {

const std::string& Dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                       "/gatehouse-fuzz-log-XXXXXX";
    FUZZ_CHECK(::mkdtemp(tmpl.data()) != nullptr);
    static std::string to_remove = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(to_remove, ec);
    });
    return tmpl;
  }();
  return dir;
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = Dir() + "/decisions.jsonl";
  const std::string before(reinterpret_cast<const char*>(data), size);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << before;
  }
  auto log = DecisionLog::Open(path);
  const bool ours = before.empty() || before.rfind("{\"time\":", 0) == 0;
  if (!ours) {
    FUZZ_CHECK(!log.ok());
    FUZZ_CHECK(Read(path) == before);
    return 0;
  }
  FUZZ_CHECK(log.ok());
  const std::string line = "{\"time\":\"fuzz\"}";
  FUZZ_CHECK((*log)->Write(line));
  const size_t nl = before.rfind('\n');
  const std::string kept = nl == std::string::npos ? "" : before.substr(0, nl + 1);
  FUZZ_CHECK(Read(path) == kept + line + "\n");
  return 0;
}
