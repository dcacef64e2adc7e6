// The systemd notification protocol (sd_notify(3)) without libsystemd: one
// datagram to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an
// abstract name written with a leading '@'). Type=notify units wait for
// READY=1; STOPPING=1 says a stop has begun.
//
// Thread safety: may be called from any thread.
#pragma once

#include <string_view>

namespace gatehouse::sidecar {

// Sends `state` (e.g. "READY=1\nSTATUS=serving") when $NOTIFY_SOCKET is set.
// Returns true when sent, false when there is no socket or the send failed
// (the caller goes on: a missing supervisor is not an error).
bool SdNotify(std::string_view state);

}  // namespace gatehouse::sidecar
