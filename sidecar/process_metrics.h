// The standard process_* metrics of the Prometheus client libraries, read
// from /proc at scrape time (Linux): CPU seconds, resident and virtual
// memory, open and maximum descriptors, start time. Nothing is kept between
// scrapes and nothing runs on the request path.
//
// Thread safety: AppendProcessMetrics may be called from any thread.
#pragma once

#include <string>

namespace gatehouse::sidecar {

// Appends the metrics with their HELP and TYPE lines, in the text exposition
// format 0.0.4. A value that cannot be read (no /proc) is left out, never
// made up.
void AppendProcessMetrics(std::string& out);

}  // namespace gatehouse::sidecar
