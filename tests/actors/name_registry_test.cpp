// The cluster registry's plain-code core: names, conflicts, removals by
// actor and by node, watchers told once, hostile names.

#include "troupe/actors/name_registry.hpp"

#include <doctest/doctest.h>
#include <string>

using namespace troupe::actors;

namespace {

registry_entry entry(std::string name, uint64_t node, uint64_t actor) {
  return registry_entry{std::move(name), node, 1, actor};
}

} // namespace

TEST_CASE("names: add, idempotent re-add, conflict, find, remove") {
  name_registry r;
  REQUIRE(r.add(entry("svc", 10, 5)).ok());
  REQUIRE(r.add(entry("svc", 10, 5)).ok()); // the same registration
  auto taken = r.add(entry("svc", 11, 7));
  REQUIRE_FALSE(taken.ok());
  CHECK(taken.err().is(errc::conflict));
  CHECK(taken.err().message().find("node 10") != std::string::npos);
  REQUIRE(r.find("svc") != nullptr);
  CHECK(r.find("svc")->actor == 5);
  CHECK(r.find("nope") == nullptr);
  // Only the holder removes it.
  CHECK(r.remove("svc", 11, 7).err().is(errc::not_found));
  auto gone = r.remove("svc", 10, 5);
  REQUIRE(gone.ok());
  CHECK(gone->reason == removal_reason::unregistered);
  CHECK(r.size() == 0);
}

TEST_CASE("removals: by actor, by node, watchers told once and forgotten") {
  name_registry r;
  REQUIRE(r.add(entry("a", 10, 1)).ok());
  REQUIRE(r.add(entry("b", 10, 1)).ok());
  REQUIRE(r.add(entry("c", 10, 2)).ok());
  REQUIRE(r.add(entry("d", 20, 1)).ok());
  r.watch("a", 100);
  r.watch("a", 101);
  r.watch("c", 100);
  r.watch("later", 102); // a free name: kept until registered and removed

  auto exited = r.actor_exited(10, 1);
  REQUIRE(exited.size() == 2);
  CHECK(exited[0].entry.name == "a");
  CHECK(exited[0].reason == removal_reason::actor_exited);
  CHECK(exited[0].watchers == std::vector<uint64_t>{100, 101});
  CHECK(exited[1].watchers.empty());

  r.forget_watcher(100);
  auto down = r.node_gone(10, 1, removal_reason::node_down);
  REQUIRE(down.size() == 1);
  CHECK(down[0].entry.name == "c");
  CHECK(down[0].reason == removal_reason::node_down);
  CHECK(down[0].watchers.empty()); // 100 was forgotten
  CHECK(r.size() == 1);
  CHECK(r.find("d") != nullptr);

  // A newer generation of a node is not removed for an older one.
  REQUIRE(r.add(registry_entry{"e", 30, 5, 1}).ok());
  CHECK(r.node_gone(30, 4, removal_reason::node_left).empty());
  CHECK(r.node_gone(30, 5, removal_reason::node_left).size() == 1);

  REQUIRE(r.add(entry("later", 40, 9)).ok());
  auto later = r.remove("later", 40, 9);
  REQUIRE(later.ok());
  CHECK(later->watchers == std::vector<uint64_t>{102});
  // Told once: a second registration and removal has no watchers left.
  REQUIRE(r.add(entry("later", 40, 9)).ok());
  CHECK(r.remove("later", 40, 9)->watchers.empty());
}

TEST_CASE("hostile names and entries") {
  name_registry r;
  struct row {
    const char* what;
    registry_entry e;
  };
  const row rows[] = {
      {"empty name", entry("", 1, 1)},
      {"control character", entry(std::string{"a\nb"}, 1, 1)},
      {"NUL inside", entry(std::string{"a\0b", 3}, 1, 1)},
      {"DEL", entry("a\x7f", 1, 1)},
      {"too long", entry(std::string(257, 'x'), 1, 1)},
      {"node 0", entry("x", 0, 1)},
      {"actor 0", entry("x", 1, 0)},
  };
  for (const auto& row : rows) {
    CAPTURE(row.what);
    auto res = r.add(row.e);
    REQUIRE_FALSE(res.ok());
    CHECK(res.err().is(errc::invalid_argument));
  }
  CHECK(r.size() == 0);
  CHECK(r.add(entry(std::string(256, 'x'), 1, 1)).ok()); // at the limit
}
