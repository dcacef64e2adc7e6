// Arbitrary HTTP requests (endpoint, method, headers, body) against the
// sidecar's real handlers over a real store: never a 5xx, JSON replies parse,
// and nothing is ever allowed or active without the one real token (or, for
// /v1/authorize, a named user).
#include <fuzzer/FuzzedDataProvider.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "gatehouse/store.h"
#include "gatehouse/tokens.h"
#include "sidecar/handlers.h"

using namespace gatehouse;
using namespace gatehouse::sidecar;

namespace {

struct World {
  std::string dir, token;
  Metrics metrics;
  std::unique_ptr<State> state;
  std::unique_ptr<Handlers> handlers;

  World() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                       "/gatehouse-fuzz-XXXXXX";
    FUZZ_CHECK(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    // The world lives as long as the fuzzer; its files go when the fuzzer exits.
    static std::string to_remove;
    to_remove = dir;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(to_remove, ec);
    });
    auto store = CreateStore(dir + "/g.db");
    FUZZ_CHECK(store.ok());
    Store& s = **store;
    auto org = s.CreateOrganization("Demo");
    auto orgws = s.CreateWorkspace(org->id, "Organization", "organization", std::nullopt);
    auto dev = s.CreateWorkspace(org->id, "Dev", "shared", std::nullopt);
    FUZZ_CHECK(s.AddUser(org->id, "owner@demo.test", "owner").ok() && orgws.ok() && dev.ok());
    auto bot = s.CreateApiUser(NewApiUser{dev->id, "bot", "viewer", "contributor", "owner@demo.test", 0});
    FUZZ_CHECK(bot.ok());
    auto minted = MintToken();
    token = minted->secret;
    FUZZ_CHECK(s.InsertToken(NewToken{minted->id, bot->id, "t", minted->hash, 0, 4102444800, "owner@demo.test"}).ok());
    store->reset();
    StateOptions o;
    o.store_path = dir + "/g.db";
    o.policy_path = GATEHOUSE_SOURCE_DIR "/policies";
    o.policy_poll_ms = 0;
    o.sweep_interval_s = 0;
    auto st = State::Open(o, &metrics, [](LogLevel, std::string_view) {});
    FUZZ_CHECK(st.ok());
    state = std::move(st).value();
    handlers = std::make_unique<Handlers>(state.get(), nullptr);
  }
};

World& TheWorld() {
  static World* w = new World();  // lives for the process
  return *w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = TheWorld();
  FuzzedDataProvider in(data, size);
  static const char* kPaths[] = {"/v1/authorize", "/v1/authorize/batch", "/v1/tokens/verify", "/v1/forward-auth",
                                 "/v1/forward-auth/workspaces/Dev/projects/1/export", "/healthz", "/readyz", "/metrics"};
  static const char* kMethods[] = {"POST", "GET", "PUT", "DELETE", "HEAD"};
  HttpRequest r;
  r.path = in.ConsumeBool() ? in.ConsumeRandomLengthString(64) : kPaths[in.ConsumeIntegralInRange<size_t>(0, 7)];
  r.target = r.path;
  r.method = in.ConsumeBool() ? in.ConsumeRandomLengthString(8) : kMethods[in.ConsumeIntegralInRange<size_t>(0, 4)];
  const bool with_token = in.ConsumeIntegralInRange<int>(0, 7) == 0;
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: break;
    case 1: r.authorization = "Bearer " + (with_token ? w.token : in.ConsumeRandomLengthString(48)); break;
    case 2: r.authorization = in.ConsumeRandomLengthString(64); break;
    default: r.authorization = "bearer " + in.ConsumeRandomLengthString(48);
  }
  r.content_type = in.ConsumeBool() ? "application/json" : in.ConsumeRandomLengthString(40);
  r.original_method = in.ConsumeRandomLengthString(8);
  r.original_uri = in.ConsumeBool() ? "/workspaces/Dev/projects/1/" + in.ConsumeRandomLengthString(16)
                                    : in.ConsumeRandomLengthString(80);
  r.forwarded_method = in.ConsumeRandomLengthString(8);
  r.forwarded_uri = in.ConsumeRandomLengthString(80);
  r.body = in.ConsumeRemainingBytesAsString();
  if (with_token && in.remaining_bytes() == 0 && r.body.find("TOKEN") != std::string::npos)
    r.body.replace(r.body.find("TOKEN"), 5, w.token);

  HttpReply reply = w.handlers->Handle(r);
  FUZZ_CHECK(reply.status < 500 && reply.status >= 200);
  const bool token_given = r.authorization.find(w.token) != std::string::npos || r.body.find(w.token) != std::string::npos;
  const std::string_view endpoint = r.path;
  if (reply.content_type.find("json") != std::string::npos) FUZZ_CHECK(nlohmann::json::accept(reply.body));
  if (endpoint.starts_with("/v1/forward-auth") && reply.status == 200) FUZZ_CHECK(token_given);
  if (endpoint == "/v1/tokens/verify" && reply.status == 200) {
    auto j = nlohmann::json::parse(reply.body);
    if (j.value("active", false)) FUZZ_CHECK(token_given);
  }
  if ((endpoint == "/v1/authorize" || endpoint == "/v1/authorize/batch") && reply.status == 200 &&
      reply.body.find("\"allow\":true") != std::string::npos)
    FUZZ_CHECK(token_given || r.body.find("user") != std::string::npos);
  return 0;
}
