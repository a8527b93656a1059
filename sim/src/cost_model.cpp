#include "troupe/sim/cost_model.hpp"

#include "troupe/runtime/errc.hpp"

#include <algorithm>

namespace troupe::sim {

using runtime::errc;

result<void> checkpoint_model::validate() const {
  std::string bad;
  if (interval.count() < 0) bad += "interval is negative; ";
  if (cost.count() < 0) bad += "cost is negative; ";
  if (restart_delay.count() < 0) bad += "restart_delay is negative; ";
  if (interval.count() == 0 && cost.count() > 0)
    bad += "a checkpoint cost without an interval (set interval, or cost 0); ";
  if (bad.empty()) return ok();
  bad.resize(bad.size() - 2);
  return error{errc::invalid_argument, "checkpoint model: " + bad};
}

segment_state segment_after(const checkpoint_model& m, duration saved, duration total,
                            duration wall, bool restart) noexcept {
  segment_state s;
  s.done = saved;
  s.saved = saved;
  duration t = wall - (restart ? m.restart_delay : duration{0});
  if (t.count() <= 0 || saved >= total) return s;
  duration left = total - saved;
  if (m.interval.count() == 0) {
    s.done = saved + std::min(t, left);
    return s;
  }
  duration cycle = m.interval + m.cost;
  auto full = t / cycle; // complete work+checkpoint cycles
  duration rem = t - full * cycle;
  duration work = full * m.interval;
  if (work >= left) { // finished (no checkpoint is taken at the end)
    s.done = total;
    s.saved = saved + ((left - duration{1}) / m.interval) * m.interval;
    return s;
  }
  s.saved = saved + work;
  duration more = std::min(rem, m.interval);
  s.done = std::min(total, saved + work + more);
  s.checkpointing = rem > m.interval && s.done < total;
  return s;
}

duration segment_wall_time(const checkpoint_model& m, duration saved, duration total,
                           bool restart) noexcept {
  duration d = restart ? m.restart_delay : duration{0};
  if (saved >= total) return d;
  duration left = total - saved;
  if (m.interval.count() == 0) return d + left;
  // Checkpoints at every full interval strictly before the end.
  auto checkpoints = (left - duration{1}) / m.interval;
  return d + left + checkpoints * m.cost;
}

eviction evict_segment(const checkpoint_model& m, duration saved, duration total,
                       duration wall, bool restart, duration notice) noexcept {
  eviction ev;
  auto now = segment_after(m, saved, total, wall, restart);
  if (notice.count() <= 0 || m.interval.count() == 0) {
    if (notice.count() > 0) now = segment_after(m, saved, total, wall + notice, restart);
    ev.saved = now.saved;
    ev.lost = now.done - now.saved;
    ev.release_after = notice.count() > 0 ? notice : duration{0};
    return ev;
  }
  if (now.checkpointing) {
    // Finish the checkpoint in progress: it saves everything done so far.
    duration d = restart ? m.restart_delay : duration{0};
    duration cycle = m.interval + m.cost;
    duration into = (wall - d) % cycle - m.interval; // time spent checkpointing
    duration rest = m.cost - into;
    if (rest <= notice) {
      ev.saved = now.done;
      ev.lost = duration{0};
      ev.release_after = rest;
      return ev;
    }
  } else if (m.cost <= notice) {
    ev.saved = now.done;
    ev.lost = duration{0};
    ev.release_after = m.cost;
    return ev;
  }
  auto at_end = segment_after(m, saved, total, wall + notice, restart);
  ev.saved = at_end.saved;
  ev.lost = at_end.done - at_end.saved;
  ev.release_after = notice;
  return ev;
}

} // namespace troupe::sim
