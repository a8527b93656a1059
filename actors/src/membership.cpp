#include "troupe/actors/membership.hpp"

#include "troupe/transport/wire.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <utility>

namespace troupe::actors {
namespace {

using namespace std::chrono_literals;

/// Longest node name or address accepted.
constexpr std::size_t max_text_bytes = 255;

/// "1.5s", "250ms", "10us", "7ns": the shortest exact unit.
std::string duration_text(duration d) {
  const auto ns = d.count();
  char buf[64];
  if (ns % 1'000'000 == 0 && ns % 1'000'000'000 != 0)
    std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ns / 1'000'000));
  else if (ns % 1'000'000'000 == 0)
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(ns / 1'000'000'000));
  else if (ns % 1'000 == 0)
    std::snprintf(buf, sizeof buf, "%lldus", static_cast<long long>(ns / 1'000));
  else
    std::snprintf(buf, sizeof buf, "%lldns", static_cast<long long>(ns));
  return buf;
}

/// `s` quoted for a message, control bytes escaped, cut at 64 bytes.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == 64) return out + "\"...";
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + '"';
}

/// Empty when `s` is a usable name or address, else what is wrong with it.
std::optional<std::string> check_text(std::string_view what, std::string_view s) {
  if (s.empty()) return std::string{what} + " is empty";
  if (s.size() > max_text_bytes)
    return std::string{what} + " is " + std::to_string(s.size()) +
           " bytes long (at most " + std::to_string(max_text_bytes) + ")";
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c <= 0x20 || c >= 0x7f)
      return std::string{what} + " " + quote(s) +
             " has a space, control or non-ASCII byte at " + std::to_string(i);
  }
  return std::nullopt;
}

std::string node_text(std::uint64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return std::string{"node "} + buf;
}

std::string member_text(const member& m) {
  return quote(m.name) + " (incarnation " + std::to_string(m.incarnation) + ")";
}

bool live(member_state s) {
  return s == member_state::joining || s == member_state::up ||
         s == member_state::suspect;
}

} // namespace

// -- configuration ------------------------------------------------------------

config_schema<membership_settings> membership_schema() {
  using mc = membership_config;
  config_schema<membership_settings> s;
  s.section("membership", &membership_settings::membership,
            "Cluster membership: heartbeats and phi-accrual failure detection.")
      .duration("heartbeat_interval", &mc::heartbeat_interval, 500ms, {10ms, 60s},
                "How often each node sends a heartbeat.")
      .real("phi_threshold", &mc::phi_threshold, 8.0, {1.0, 50.0},
            "Suspicion level (phi) above which a member becomes suspect; 8 means a "
            "one in 10^8 chance that the heartbeat is merely late.")
      .duration("acceptable_pause", &mc::acceptable_pause, 1s, {0ns, 10min},
                "A silence this much longer than the usual heartbeat interval is "
                "expected: shorter pauses never make a member suspect.")
      .duration("suspect_timeout", &mc::suspect_timeout, 5s, {100ms, 1h},
                "A suspect member without a heartbeat for this long is down.")
      .integer("indirect_probes", &mc::indirect_probes, 3, {0, 16},
               "Members asked to reach a suspect member; all must fail for it to be "
               "down. 0 turns indirect probes off.")
      .duration("probe_timeout", &mc::probe_timeout, 1s, {10ms, 10min},
                "How long a prober waits for the suspect member's answer.")
      .integer("max_samples", &mc::max_samples, 200, {2, 10'000},
               "Heartbeat inter-arrival times kept per member.")
      .duration("min_std_dev", &mc::min_std_dev, 100ms, {1ms, 60s},
                "Floor of the inter-arrival deviation, so a very regular history "
                "does not make one late heartbeat look like a failure.")
      .duration("first_heartbeat_estimate", &mc::first_heartbeat_estimate, 500ms,
                {1ms, 60s}, "Assumed heartbeat interval before one has been measured.");
  s.check([](const membership_settings& c) -> std::optional<std::string> {
    const auto& m = c.membership;
    if (m.probe_timeout < m.suspect_timeout) return std::nullopt;
    return "membership.probe_timeout (" + duration_text(m.probe_timeout) +
           ") must be shorter than membership.suspect_timeout (" +
           duration_text(m.suspect_timeout) + "), or probes could never decide";
  });
  return s;
}

phi_accrual_config detector_config(const membership_config& config) {
  phi_accrual_config d;
  d.max_samples = config.max_samples;
  d.min_std_dev = config.min_std_dev;
  d.acceptable_pause = config.acceptable_pause;
  d.first_heartbeat_estimate = config.first_heartbeat_estimate;
  d.max_interval = config.heartbeat_interval + config.acceptable_pause;
  return d;
}

duration suspect_bound(const membership_config& config) {
  return time_to_phi_bound(detector_config(config), config.phi_threshold);
}

duration detection_bound(const membership_config& config) {
  return suspect_bound(config) + config.suspect_timeout + 2 * config.heartbeat_interval;
}

std::string_view to_string(member_state s) noexcept {
  switch (s) {
  case member_state::joining:
    return "joining";
  case member_state::up:
    return "up";
  case member_state::suspect:
    return "suspect";
  case member_state::down:
    return "down";
  case member_state::left:
    return "left";
  }
  return "?";
}

std::string_view to_string(down_reason r) noexcept {
  switch (r) {
  case down_reason::none:
    return "none";
  case down_reason::probes_failed:
    return "probes_failed";
  case down_reason::transport_error:
    return "transport_error";
  case down_reason::suspect_timeout:
    return "suspect_timeout";
  case down_reason::superseded:
    return "superseded";
  }
  return "?";
}

std::string_view to_string(event_kind k) noexcept {
  switch (k) {
  case event_kind::joined:
    return "joined";
  case event_kind::up:
    return "up";
  case event_kind::suspect:
    return "suspect";
  case event_kind::recovered:
    return "recovered";
  case event_kind::down:
    return "down";
  case event_kind::left:
    return "left";
  case event_kind::rejoined:
    return "rejoined";
  case event_kind::cordoned:
    return "cordoned";
  case event_kind::uncordoned:
    return "uncordoned";
  case event_kind::draining:
    return "draining";
  }
  return "?";
}

// -- the table ----------------------------------------------------------------

membership_table::membership_table(membership_config config, std::uint64_t local)
    : config_(config), detector_config_(detector_config(config)), local_(local) {
  TROUPE_ASSERT(config_.heartbeat_interval > duration::zero(),
                "membership: heartbeat_interval must be positive");
  TROUPE_ASSERT(config_.phi_threshold >= 1.0 && config_.phi_threshold <= 50.0,
                "membership: phi_threshold must be in [1, 50]");
  TROUPE_ASSERT(config_.acceptable_pause >= duration::zero(),
                "membership: acceptable_pause must not be negative");
  TROUPE_ASSERT(config_.suspect_timeout > duration::zero(),
                "membership: suspect_timeout must be positive");
  TROUPE_ASSERT(config_.probe_timeout > duration::zero(),
                "membership: probe_timeout must be positive");
  TROUPE_ASSERT(config_.max_samples >= 2, "membership: max_samples must be at least 2");
  TROUPE_ASSERT(config_.min_std_dev > duration::zero(),
                "membership: min_std_dev must be positive");
  TROUPE_ASSERT(config_.first_heartbeat_estimate > duration::zero(),
                "membership: first_heartbeat_estimate must be positive");
}

time_point membership_table::advance(time_point now) {
  latest_ = std::max(latest_, now);
  return latest_;
}

membership_event membership_table::make_event(const entry& e, event_kind kind,
                                              time_point at) const {
  membership_event ev;
  ev.kind = kind;
  ev.node = e.info.id;
  ev.name = e.info.name;
  ev.address = e.info.address;
  ev.incarnation = e.info.incarnation;
  ev.at = at;
  if (kind == event_kind::down) ev.reason = e.info.reason;
  return ev;
}

void membership_table::go_down(entry& e, down_reason why, time_point at,
                               membership_events& out) {
  e.info.state = member_state::down;
  e.info.reason = why;
  e.info.since = at;
  e.asked.clear();
  e.failed.clear();
  out.push_back(make_event(e, event_kind::down, at));
}

void membership_table::go_up(entry& e, event_kind kind, time_point at,
                             membership_events& out) {
  e.info.state = member_state::up;
  e.info.since = at;
  e.asked.clear();
  e.failed.clear();
  out.push_back(make_event(e, kind, at));
}

result<membership_table::entry*> membership_table::known_entry(std::uint64_t node,
                                                               std::string_view what) {
  auto it = members_.find(node);
  if (it == members_.end())
    return error{errc::not_found,
                 std::string{what} + ": " + node_text(node) + " is not a member"};
  return &it->second;
}

result<membership_table::entry*> membership_table::live_entry(std::uint64_t node,
                                                              std::uint64_t incarnation,
                                                              std::string_view what) {
  auto found = known_entry(node, what);
  if (!found) return std::move(found).err();
  entry* e = *found;
  const auto& m = e->info;
  if (incarnation < m.incarnation)
    return error{errc::conflict, std::string{what} + ": incarnation " +
                                     std::to_string(incarnation) + " of " +
                                     quote(m.name) + " is stale (the member is at " +
                                     std::to_string(m.incarnation) + ")"};
  if (incarnation > m.incarnation)
    return error{errc::not_found,
                 std::string{what} + ": incarnation " + std::to_string(incarnation) +
                     " of " + quote(m.name) + " has not joined (the member is at " +
                     std::to_string(m.incarnation) + ")"};
  if (!live(m.state))
    return error{errc::conflict, std::string{what} + ": " + member_text(m) + " is " +
                                     std::string{to_string(m.state)} +
                                     "; it must rejoin with a higher incarnation"};
  return e;
}

result<membership_events> membership_table::join(std::string_view name,
                                                 std::string_view address,
                                                 std::uint64_t incarnation,
                                                 time_point now) {
  if (auto bad = check_text("node name", name))
    return error{errc::invalid_argument, "join: " + *bad};
  if (auto bad = check_text("address", address))
    return error{errc::invalid_argument, "join of " + quote(name) + ": " + *bad};
  if (incarnation == 0)
    return error{errc::invalid_argument,
                 "join of " + quote(name) + ": incarnation 0 (incarnations start at 1)"};
  const auto id = transport::node_id_of(name);
  membership_events out;
  auto it = members_.find(id);
  if (it == members_.end()) {
    now = advance(now);
    entry e{member{}, phi_accrual_detector{detector_config_}, false, {}, {}, {}};
    e.info.name = std::string{name};
    e.info.id = id;
    e.info.address = std::string{address};
    e.info.incarnation = incarnation;
    e.info.state = member_state::joining;
    e.info.since = now;
    e.detector.heartbeat(now); // the join request is the first sign of life
    auto& stored = members_.emplace(id, std::move(e)).first->second;
    out.push_back(make_event(stored, event_kind::joined, now));
    if (id == local_) go_up(stored, event_kind::up, now, out);
    return out;
  }
  entry& e = it->second;
  auto& m = e.info;
  if (m.name != name)
    return error{errc::conflict, "join of " + quote(name) + ": its id " + node_text(id) +
                                     " collides with member " + quote(m.name) +
                                     "; rename the node"};
  if (incarnation < m.incarnation)
    return error{errc::conflict, "join of " + quote(name) + ": incarnation " +
                                     std::to_string(incarnation) +
                                     " is stale (the member is at " +
                                     std::to_string(m.incarnation) + ")"};
  if (incarnation == m.incarnation) {
    if (!live(m.state))
      return error{errc::conflict, "join of " + member_text(m) + ": that generation is " +
                                       std::string{to_string(m.state)} +
                                       "; rejoin with a higher incarnation"};
    if (m.address != address)
      return error{errc::conflict,
                   "join of " + member_text(m) + " from " + quote(address) +
                       ": the name is taken by the member at " + quote(m.address)};
    return out; // a retried join
  }
  // A new generation of a known node.
  now = advance(now);
  if (live(m.state)) go_down(e, down_reason::superseded, now, out);
  m.address = std::string{address};
  m.incarnation = incarnation;
  m.state = member_state::joining;
  m.reason = down_reason::none;
  m.since = now;
  e.detector = phi_accrual_detector{detector_config_};
  e.detector.heartbeat(now);
  e.transport_failed = false;
  e.asked.clear();
  e.failed.clear();
  out.push_back(make_event(e, event_kind::rejoined, now));
  if (id == local_) go_up(e, event_kind::up, now, out);
  return out;
}

result<membership_events> membership_table::heartbeat(std::uint64_t node,
                                                      std::uint64_t incarnation,
                                                      time_point now) {
  auto found = live_entry(node, incarnation, "heartbeat");
  if (!found) return std::move(found).err();
  entry& e = **found;
  now = advance(now);
  membership_events out;
  if (node == local_) return out;
  e.detector.heartbeat(now);
  e.transport_failed = false;
  if (e.info.state == member_state::joining)
    go_up(e, event_kind::up, now, out);
  else if (e.info.state == member_state::suspect)
    go_up(e, event_kind::recovered, now, out);
  return out;
}

result<membership_events> membership_table::probe_result(std::uint64_t prober,
                                                         std::uint64_t target,
                                                         std::uint64_t incarnation,
                                                         bool reached, time_point now) {
  if (auto p = known_entry(prober, "probe result"); !p) return std::move(p).err();
  auto found = known_entry(target, "probe result");
  if (!found) return std::move(found).err();
  entry& e = **found;
  const auto& m = e.info;
  if (incarnation != m.incarnation || m.state != member_state::suspect)
    return error{errc::conflict, "probe result for " + quote(m.name) + " (incarnation " +
                                     std::to_string(incarnation) +
                                     "): " + member_text(m) + " is " +
                                     std::string{to_string(m.state)} + ", not suspect"};
  if (!e.asked.contains(prober))
    return error{errc::conflict, "probe result for " + member_text(m) + ": " +
                                     node_text(prober) +
                                     " was not asked to probe it in this suspicion"};
  now = advance(now);
  membership_events out;
  if (reached) {
    // Alive as seen from another member: clear the suspicion and restart
    // the silence from now, without recording an interval.
    e.detector.heard_of(now);
    go_up(e, event_kind::recovered, now, out);
    return out;
  }
  e.failed.insert(prober);
  if (e.failed.size() >= e.asked.size()) go_down(e, down_reason::probes_failed, now, out);
  return out;
}

result<membership_events> membership_table::transport_error(std::uint64_t node,
                                                            std::uint64_t incarnation,
                                                            time_point now) {
  auto found = known_entry(node, "transport error");
  if (!found) return std::move(found).err();
  entry& e = **found;
  membership_events out;
  if (incarnation == e.info.incarnation && !live(e.info.state)) return out;
  auto checked = live_entry(node, incarnation, "transport error");
  if (!checked) return std::move(checked).err();
  now = advance(now);
  if (node == local_) return out;
  if (e.info.state == member_state::suspect)
    go_down(e, down_reason::transport_error, now, out);
  else
    e.transport_failed = true;
  return out;
}

result<membership_events>
membership_table::leave(std::uint64_t node, std::uint64_t incarnation, time_point now) {
  auto found = known_entry(node, "leave");
  if (!found) return std::move(found).err();
  entry& e = **found;
  membership_events out;
  if (incarnation == e.info.incarnation && e.info.state == member_state::left) return out;
  auto checked = live_entry(node, incarnation, "leave");
  if (!checked) return std::move(checked).err();
  now = advance(now);
  e.info.state = member_state::left;
  e.info.since = now;
  e.asked.clear();
  e.failed.clear();
  out.push_back(make_event(e, event_kind::left, now));
  return out;
}

result<membership_table::entry*>
membership_table::live_flag_entry(std::uint64_t node, std::string_view what) {
  auto found = known_entry(node, what);
  if (!found) return found;
  const member& m = (*found)->info;
  if (!live(m.state))
    return error{errc::conflict, std::string{what} + ": " + member_text(m) + " is " +
                                     std::string{to_string(m.state)}};
  return found;
}

result<membership_events> membership_table::cordon(std::uint64_t node, time_point now) {
  auto found = live_flag_entry(node, "cordon");
  if (!found) return std::move(found).err();
  entry& e = **found;
  now = advance(now);
  membership_events out;
  if (!e.info.cordoned) {
    e.info.cordoned = true;
    out.push_back(make_event(e, event_kind::cordoned, now));
  }
  return out;
}

result<membership_events> membership_table::uncordon(std::uint64_t node, time_point now) {
  auto found = live_flag_entry(node, "uncordon");
  if (!found) return std::move(found).err();
  entry& e = **found;
  now = advance(now);
  membership_events out;
  if (e.info.cordoned || e.info.draining) {
    e.info.cordoned = false;
    e.info.draining = false;
    out.push_back(make_event(e, event_kind::uncordoned, now));
  }
  return out;
}

result<membership_events> membership_table::drain(std::uint64_t node, time_point now) {
  auto found = live_flag_entry(node, "drain");
  if (!found) return std::move(found).err();
  entry& e = **found;
  now = advance(now);
  membership_events out;
  if (!e.info.cordoned) {
    e.info.cordoned = true;
    out.push_back(make_event(e, event_kind::cordoned, now));
  }
  if (!e.info.draining) {
    e.info.draining = true;
    out.push_back(make_event(e, event_kind::draining, now));
  }
  return out;
}

std::vector<std::uint64_t> membership_table::choose_probers(std::uint64_t target) {
  std::vector<std::uint64_t> eligible;
  for (const auto& [id, e] : members_)
    if (id != target && id != local_ && e.info.state == member_state::up)
      eligible.push_back(id);
  const std::size_t n = std::min<std::size_t>(config_.indirect_probes, eligible.size());
  std::vector<std::uint64_t> chosen;
  if (n == 0) return chosen;
  const std::size_t start = probe_cursor_ % eligible.size();
  for (std::size_t i = 0; i < n; ++i)
    chosen.push_back(eligible[(start + i) % eligible.size()]);
  probe_cursor_ += n;
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

tick_output membership_table::tick(time_point now) {
  now = advance(now);
  tick_output out;
  // First every transition, then the probes, so that probers are chosen
  // among the members still up after this tick (two members falling silent
  // together are never asked to probe each other).
  std::vector<std::uint64_t> to_probe;
  for (auto& [id, e] : members_) {
    if (id == local_) continue;
    auto& m = e.info;
    if (m.state == member_state::joining || m.state == member_state::up) {
      const double phi = e.detector.phi(now);
      if (phi < config_.phi_threshold) continue;
      // Suspect from this tick on: the timeout counts time the table has
      // watched the suspicion, so a table that was itself stalled (and has
      // not yet seen the heartbeats queued meanwhile) does not down anybody
      // on its first tick back.
      m.state = member_state::suspect;
      m.since = now;
      e.suspect_since = now;
      e.asked.clear();
      e.failed.clear();
      auto ev = make_event(e, event_kind::suspect, now);
      ev.phi = phi;
      out.events.push_back(std::move(ev));
      if (e.transport_failed)
        go_down(e, down_reason::transport_error, now, out.events);
      else
        to_probe.push_back(id);
    } else if (m.state == member_state::suspect) {
      if (now - e.suspect_since >= config_.suspect_timeout)
        go_down(e, down_reason::suspect_timeout, now, out.events);
    }
  }
  for (auto id : to_probe) {
    auto probers = choose_probers(id);
    if (probers.empty()) continue;
    auto& e = members_.at(id);
    e.asked.insert(probers.begin(), probers.end());
    out.probes.push_back(probe_request{id, e.info.incarnation, std::move(probers),
                                       now + config_.probe_timeout});
  }
  return out;
}

const member* membership_table::find(std::uint64_t node) const {
  auto it = members_.find(node);
  return it == members_.end() ? nullptr : &it->second.info;
}

const member* membership_table::find(std::string_view name) const {
  const auto* m = find(transport::node_id_of(name));
  return m && m->name == name ? m : nullptr;
}

std::vector<member> membership_table::members() const {
  std::vector<member> out;
  out.reserve(members_.size());
  for (const auto& [id, e] : members_)
    out.push_back(e.info);
  return out;
}

std::size_t membership_table::count(member_state state) const {
  return static_cast<std::size_t>(
      std::count_if(members_.begin(), members_.end(),
                    [state](const auto& kv) { return kv.second.info.state == state; }));
}

double membership_table::phi(std::uint64_t node, time_point now) const {
  auto it = members_.find(node);
  if (it == members_.end() || node == local_ || !live(it->second.info.state)) return 0.0;
  return it->second.detector.phi(now);
}

} // namespace troupe::actors
