#pragma once
// A timer for detached actors, private to actors/.
#include "troupe/runtime/clock.hpp"

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/actor_cast.hpp>
#include <caf/send.hpp>
#include <thread>

namespace troupe::actors::detail {

/// Sends `tick` to the actor every `interval` from a thread of its own that
/// holds only a weak handle. (CAF 0.17's clock keeps a strong reference for
/// every delayed message and request timeout until it fires, and drops
/// pending ones only after waiting for detached actors at shutdown, so a
/// detached actor that re-arms a timer could never be destroyed.) The
/// thread ends at the first tick after the actor is gone.
template <class Atom>
void start_ticker(caf::actor_addr weak, duration interval, Atom tick) {
  std::thread{[weak = std::move(weak), interval, tick] {
    for (;;) {
      std::this_thread::sleep_for(interval);
      auto self = caf::actor_cast<caf::actor>(weak);
      if (!self) return;
      caf::anon_send(self, tick);
    }
  }}.detach();
}

} // namespace troupe::actors::detail
