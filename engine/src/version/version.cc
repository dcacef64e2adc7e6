#include "gatehouse/version.h"

// The only file that includes the generated header: a new commit recompiles
// this file alone.
#include "gatehouse_version_generated.h"

namespace gatehouse {

std::string_view Version() { return GATEHOUSE_VERSION_STRING; }
std::string_view Revision() { return GATEHOUSE_REVISION_STRING; }

std::string VersionLine(std::string_view program) {
  std::string line(program);
  line += ' ';
  line += Version();
  line += " (revision ";
  line += Revision();
  line += ')';
  return line;
}

}  // namespace gatehouse
