// The hot path: a decision is an index computation and a load.
#include <algorithm>
#include <cstring>

#include "compile/compiled.h"

namespace gatehouse {

using internal::ClassOf;
using internal::CompiledAction;
using internal::Outcome;

CompiledPolicy::CompiledPolicy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CompiledPolicy::~CompiledPolicy() = default;

namespace {

Decision Invalid(ActionId action) {
  Decision d;
  d.action = action;
  d.cause = Cause::kInvalidRequest;
  return d;
}

Decision FromOutcome(const Outcome& o, ActionId action) {
  Decision d;
  d.effect = o.effect;
  d.cause = o.cause;
  d.deciding = o.deciding;
  d.matched = o.matched;
  d.action = action;
  return d;
}

}  // namespace

namespace {

[[gnu::noinline]] Decision DecideFactored(const CompiledAction& a, const Request& r) {
  const size_t n = a.dims.size();
  uint32_t cls[internal::kMaxDims];
  for (size_t i = 0; i < n; ++i) {
    cls[i] = ClassOf(a.dims[i], r);
    if (cls[i] >= a.dims[i].size) return Invalid(r.action);
  }
  uint64_t matched = 0;
  for (size_t k = 0; k < a.rules.size(); ++k) {
    const internal::RuleTable& t = a.rules[k];
    uint32_t idx = 0;
    for (size_t j = 0; j < t.dims.size(); ++j) idx += cls[t.dims[j]] * t.strides[j];
    matched |= static_cast<uint64_t>(t.bits[idx]) << k;
  }
  return FromOutcome(internal::OutcomeOf(matched, a.permit_mask, a.forbid_mask, a.first_permit),
                     r.action);
}

}  // namespace

Decision CompiledPolicy::Decide(const Request& r) const noexcept {
  if (r.action >= impl_->compiled.size()) return Invalid(r.action);
  const CompiledAction& a = impl_->compiled[r.action];
  if (!a.dense) return DecideFactored(a, r);
  const char* base = reinterpret_cast<const char*>(&r);
  uint64_t idx = 0;
  for (const internal::HotAxis& x : a.axes) {
    uint64_t w;
    std::memcpy(&w, base + x.offset, sizeof w);
    uint64_t c;
    if (x.read == internal::HotAxis::Read::kMasked) [[likely]] {
      c = (w >> x.shift) & x.mask;
    } else if (x.read == internal::HotAxis::Read::kNonZero) {
      c = w != 0;
    } else {
      c = ClassOf(a.dims[x.dim], r);
    }
    if (c >= x.size) return Invalid(r.action);
    idx += c * x.stride;
  }
  return FromOutcome(a.outcomes[a.table[idx]], r.action);
}

const std::string& CompiledPolicy::name() const { return impl_->model.name; }
const std::string& CompiledPolicy::revision() const { return impl_->revision; }

namespace {

template <typename T>
std::optional<T> Find(const internal::NameMap& m, std::string_view name) {
  auto it = m.find(name);
  if (it == m.end()) return std::nullopt;
  return static_cast<T>(it->second);
}

std::string_view NameOr(const std::vector<std::string>& v, size_t i) {
  return i < v.size() ? std::string_view(v[i]) : std::string_view("?");
}

}  // namespace

std::optional<ActionId> CompiledPolicy::FindAction(std::string_view n) const { return Find<ActionId>(impl_->action_ids, n); }
std::optional<RoleId> CompiledPolicy::FindOrgRole(std::string_view n) const { return Find<RoleId>(impl_->org_role_ids, n); }
std::optional<RoleId> CompiledPolicy::FindWorkspaceRole(std::string_view n) const { return Find<RoleId>(impl_->ws_role_ids, n); }
std::optional<TypeId> CompiledPolicy::FindWorkspaceType(std::string_view n) const { return Find<TypeId>(impl_->type_ids, n); }
std::optional<int> CompiledPolicy::FindSetting(std::string_view n) const { return Find<int>(impl_->setting_ids, n); }
std::optional<int> CompiledPolicy::FindParam(ActionId action, std::string_view n) const {
  if (action >= impl_->param_ids.size()) return std::nullopt;
  return Find<int>(impl_->param_ids[action], n);
}

std::string_view CompiledPolicy::OrgRoleName(RoleId id) const { return NameOr(impl_->model.org_roles, id); }
std::string_view CompiledPolicy::WorkspaceRoleName(RoleId id) const { return NameOr(impl_->model.ws_roles, id); }
std::string_view CompiledPolicy::WorkspaceTypeName(TypeId id) const { return NameOr(impl_->model.ws_types, id); }
int CompiledPolicy::org_role_count() const { return static_cast<int>(impl_->model.org_roles.size()); }
int CompiledPolicy::workspace_role_count() const { return static_cast<int>(impl_->model.ws_roles.size()); }
int CompiledPolicy::workspace_type_count() const { return static_cast<int>(impl_->model.ws_types.size()); }

const std::vector<ActionInfo>& CompiledPolicy::actions() const { return impl_->infos; }
const ActionInfo* CompiledPolicy::action(ActionId id) const {
  return id < impl_->infos.size() ? &impl_->infos[id] : nullptr;
}
const std::vector<SettingInfo>& CompiledPolicy::settings() const { return impl_->model.settings; }
uint64_t CompiledPolicy::default_settings() const { return impl_->default_settings; }
int64_t CompiledPolicy::max_token_lifetime_seconds() const { return impl_->model.max_lifetime; }

std::vector<Reason> CompiledPolicy::Explain(const Decision& d) const {
  std::vector<Reason> out;
  const ActionInfo* a = action(d.action);
  if (!a || d.cause == Cause::kInvalidRequest) {
    out.push_back({"invalid-request", Effect::kDeny, DecidingMessage(d)});
    return out;
  }
  if (d.cause == Cause::kNoPermit) {
    // The permits that were missing, each with its own message.
    for (const RuleInfo& r : a->rules) {
      if (r.effect == Effect::kAllow) {
        out.push_back({r.id, Effect::kDeny,
                       r.message.empty() ? "no rule of " + a->name + " permits this (needs: " + r.when + ")"
                                         : r.message});
      }
    }
    if (out.empty()) out.push_back({"default-deny", Effect::kDeny, "no rule of " + a->name + " permits anything"});
    return out;
  }
  // The deciding rule first, then every other rule that matched.
  auto add = [&](size_t i) {
    const RuleInfo& r = a->rules[i];
    std::string msg = r.message;
    if (msg.empty()) msg = r.effect == Effect::kAllow ? "permitted: " + r.when : "forbidden: " + r.when;
    out.push_back({r.id, r.effect, msg});
  };
  if (d.deciding >= 0 && static_cast<size_t>(d.deciding) < a->rules.size()) add(d.deciding);
  for (size_t i = 0; i < a->rules.size() && i < 64; ++i) {
    if ((d.matched >> i & 1) && static_cast<int>(i) != d.deciding) add(i);
  }
  return out;
}

std::string CompiledPolicy::DecidingMessage(const Decision& d) const {
  const ActionInfo* a = action(d.action);
  if (!a) return "unknown action";
  if (d.cause == Cause::kInvalidRequest) return "request outside the policy's domains for " + a->name;
  if (d.deciding < 0 || static_cast<size_t>(d.deciding) >= a->rules.size())
    return "no rule of " + a->name + " permits anything";
  const RuleInfo& r = a->rules[d.deciding];
  if (!r.message.empty()) return r.message;
  switch (d.cause) {
    case Cause::kPermitted: return "permitted by " + r.id;
    case Cause::kForbidden: return "forbidden by " + r.id;
    default: return "no rule of " + a->name + " permits this (needs: " + r.when + ")";
  }
}

std::string_view CompiledPolicy::DecidingRule(const Decision& d) const {
  const ActionInfo* a = action(d.action);
  if (!a || d.deciding < 0 || static_cast<size_t>(d.deciding) >= a->rules.size()) return {};
  return a->rules[d.deciding].id;
}

size_t CompiledPolicy::TableBytes() const {
  size_t n = 0;
  for (const auto& a : impl_->compiled) {
    n += sizeof(a) + a.table.capacity() * sizeof(uint16_t) + a.outcomes.capacity() * sizeof(Outcome) +
         a.dims.capacity() * sizeof(internal::Dim) + a.strides.capacity() * sizeof(uint32_t);
    for (const auto& d : a.dims) n += d.lows.capacity() * sizeof(int64_t);
    for (const auto& t : a.rules)
      n += sizeof(t) + t.bits.capacity() + t.dims.capacity() + t.strides.capacity() * sizeof(uint32_t);
  }
  return n;
}

}  // namespace gatehouse
