// The build's identity: the project version (CMake's project(VERSION)) and
// the git commit the build came from. Constant for the life of the process;
// thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace gatehouse {

// "0.1.0".
std::string_view Version();
// The commit's 12-digit abbreviated hash, with "-dirty" when tracked files
// differed from it at build time; "unknown" for a build outside a git
// checkout (a release tarball) unless the builder named one.
std::string_view Revision();
// "PROGRAM VERSION (revision REVISION)": what --version prints.
std::string VersionLine(std::string_view program);

}  // namespace gatehouse
