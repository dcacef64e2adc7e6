// A generator of large policies for benchmarks: deterministic YAML text in the
// format of CONTRACT.md "Policy files", shaped like the default policy (same
// roles and workspace types) but with many actions, rules and settings.
//
// Each rule reads 1–4 attributes (roles, principal kind, workspace type,
// settings, request parameters) the way hand-written rules do, e.g.
// `principal.org_role >= admin and settings.s3` or
// `request.lifetime_seconds > 30d`. The text depends only on the options:
// the random numbers come from a fixed splitmix64 stream, not from
// std::*_distribution, whose output differs between standard libraries.
// Pure function; thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace gatehouse::bench {

struct LargePolicyOptions {
  // Number of actions, named svcNN.resNNN.VERB. Default 500.
  int actions = 500;
  // Rules per action, permits and forbids mixed (3 to 7 forbids). The
  // implicit tokens.max_lifetime forbid the engine adds to actions that
  // declare lifetime_seconds is not counted. Default 20.
  int rules_per_action = 20;
  // Boolean settings s0 .. s(N-1); each action reads 1 to 4 of them. Default 16.
  int settings = 16;
  // The seed of the generator: equal options give byte-identical text.
  uint64_t seed = 0x6a7e40b5e5eedULL;
};

// The policy as one YAML document. Loads without errors.
std::string GenerateLargePolicy(const LargePolicyOptions& options = {});

}  // namespace gatehouse::bench
