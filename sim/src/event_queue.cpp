#include "troupe/sim/event_queue.hpp"

#include "troupe/runtime/result.hpp"

#include <utility>

namespace troupe::sim {

void event_queue::push(time_point at, event_kind kind, uint64_t subject, uint32_t tag) {
  event e{at, seq_++, subject, tag, kind};
  // Sift up.
  size_t i = heap_.size();
  heap_.push_back(e);
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!later(heap_[parent], e)) break;
    heap_[i] = heap_[parent];
    i = parent;
  }
  heap_[i] = e;
}

event event_queue::pop() {
  TROUPE_ASSERT(!heap_.empty(), "pop from an empty event queue");
  event out = heap_.front();
  event last = heap_.back();
  heap_.pop_back();
  size_t n = heap_.size();
  if (n == 0) return out;
  // Sift the last element down from the root.
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= n) break;
    size_t m = l;
    if (l + 1 < n && later(heap_[l], heap_[l + 1])) m = l + 1;
    if (!later(last, heap_[m])) break;
    heap_[i] = heap_[m];
    i = m;
  }
  heap_[i] = last;
  return out;
}

} // namespace troupe::sim
