// `gatehoused healthcheck`: asks a running sidecar's /readyz, for container
// and systemd health checks on machines without curl. The only file in
// sidecar/ that includes cpp-httplib (as a client; see http_server.h for why
// the server is not cpp-httplib).
//
// Thread safety: a pure function over one blocking request.
#pragma once

#include <string>

#include "sidecar/config.h"

namespace gatehouse::sidecar {

struct HealthcheckResult {
  bool ready = false;  // /readyz answered 200
  std::string detail;  // one line for stderr: the status and body, or why no answer came
};

// GET /readyz at `address` (TCP or unix:PATH), waiting at most `timeout_ms`.
HealthcheckResult Healthcheck(const ListenAddress& address, int timeout_ms);

}  // namespace gatehouse::sidecar
