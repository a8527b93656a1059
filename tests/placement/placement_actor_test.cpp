// The placement actor on a real node, its durable state across a restart,
// and the JSON codec's handling of hostile input.

#include "troupe/placement/codec.hpp"
#include "troupe/placement/errc.hpp"
#include "troupe/placement/placement_actor.hpp"
#include "troupe/runtime/metrics.hpp"
#include "troupe/runtime/node.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unistd.h>

using namespace std::chrono_literals;
using namespace troupe::placement;

namespace {

std::unique_ptr<troupe::node> make_node() {
  auto cfg = troupe::default_config();
  cfg.scheduler.threads = 2;
  cfg.metrics.enabled = false;
  cfg.log.level = troupe::log_level::off;
  auto n = troupe::node::start(cfg);
  REQUIRE(n.ok());
  return std::move(*n);
}

placement_actor_config small_cluster(std::string store_path = {}) {
  generated_cluster g;
  g.racks = 1;
  g.nodes_per_rack = 2;
  g.gpus_per_node = 8;
  placement_actor_config c;
  c.topology = generate_cluster(g);
  c.store_path = std::move(store_path);
  c.schedule_interval = 50ms;
  return c;
}

std::string request_json(uint32_t gpus, strategy s = strategy::strict_pack) {
  gang_request r;
  r.tenant = "acme";
  bundle b;
  b.gpus = gpus;
  b.cpu_milli = 1000;
  r.bundles.push_back(b);
  r.placement_strategy = s;
  r.runtime_estimate = std::chrono::hours{1};
  return encode(r);
}

template <class T, class... Ts>
T ask(troupe::node& n, const troupe::actor_ref& a, Ts... xs) {
  auto r = n.request<T>(a, 5s, xs...);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.err().to_string()));
  return *r;
}

} // namespace

TEST_SUITE("placement actor") {
  TEST_CASE("requests are placed, explained while pending, and placed after a release") {
    auto n = make_node();
    auto pa = n->adopt(spawn_placement_actor(n->system(), small_cluster()));
    auto first = ask<uint64_t>(*n, pa, submit_atom::value, request_json(8));
    auto second = ask<uint64_t>(*n, pa, submit_atom::value, request_json(8));
    auto third = ask<uint64_t>(*n, pa, submit_atom::value, request_json(8));
    CHECK(first == 1);
    CHECK(third == 3);
    auto why3 = ask<std::string>(*n, pa, why_atom::value, third);
    CHECK(why3.rfind("pending: needs 8 GPUs on one node; most free on one node is 0",
                     0) == 0);
    auto why1 = ask<std::string>(*n, pa, why_atom::value, first);
    CHECK(why1.rfind("running as allocation 1 on n", 0) == 0);
    auto status = nlohmann::json::parse(ask<std::string>(*n, pa, status_atom::value));
    CHECK(status["allocated_gpu_milli"] == 16000);
    CHECK(status["allocations"].size() == 2);
    REQUIRE(ask<bool>(*n, pa, release_atom::value, uint64_t{1}));
    auto why3b = ask<std::string>(*n, pa, why_atom::value, third);
    CHECK(why3b.rfind("running as allocation 3", 0) == 0);
    static_cast<void>(second);
    auto bad =
        n->request<uint64_t>(pa, 5s, submit_atom::value, std::string{"{\"id\": 1}"});
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.err().message().find("request.tenant: missing") != std::string::npos);
    auto unknown = n->request<bool>(pa, 5s, release_atom::value, uint64_t{99});
    REQUIRE_FALSE(unknown.ok());
    CHECK(unknown.err().message().find("no allocation 99") != std::string::npos);
  }

  TEST_CASE("a restarted placement actor recovers allocations and pending requests") {
    auto dir = std::filesystem::temp_directory_path() /
               ("troupe-placement-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    {
      auto n = make_node();
      auto pa = n->adopt(spawn_placement_actor(n->system(), small_cluster(dir.string())));
      ask<uint64_t>(*n, pa, submit_atom::value, request_json(6));
      ask<uint64_t>(*n, pa, submit_atom::value, request_json(6));
      ask<uint64_t>(*n, pa, submit_atom::value, request_json(6)); // pending
      REQUIRE(ask<bool>(*n, pa, checkpoint_atom::value, uint64_t{2}, int64_t{123}));
      n->stop();
    }
    auto n = make_node();
    auto pa = n->adopt(spawn_placement_actor(n->system(), small_cluster(dir.string())));
    auto status = nlohmann::json::parse(ask<std::string>(*n, pa, status_atom::value));
    CHECK(status["allocated_gpu_milli"] == 12000);
    CHECK(status["allocations"].size() == 2);
    CHECK(ask<std::string>(*n, pa, why_atom::value, uint64_t{3}).rfind("pending: ", 0) ==
          0);
    auto next = ask<uint64_t>(*n, pa, submit_atom::value, request_json(1));
    CHECK(next == 4); // ids continue after the recovered ones
    CHECK(ask<std::string>(*n, pa, why_atom::value, uint64_t{4}).rfind("running as", 0) ==
          0);
    n->stop();
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("subscribers hear about every placement") {
    auto n = make_node();
    auto pa = n->adopt(spawn_placement_actor(n->system(), small_cluster()));
    std::atomic<int> heard{0};
    auto listener = n->spawn("listener", [&](troupe::actor&) -> troupe::behavior {
      return {[&](placed_atom, uint64_t, uint64_t, const std::string& json) {
        auto a = decode_allocation(json);
        if (a.ok()) ++heard;
      }};
    });
    REQUIRE(ask<bool>(*n, pa, subscribe_atom::value, listener.handle()));
    ask<uint64_t>(*n, pa, submit_atom::value, request_json(2));
    ask<uint64_t>(*n, pa, submit_atom::value, request_json(2));
    for (int i = 0; i < 500 && heard < 2; ++i)
      std::this_thread::sleep_for(2ms);
    CHECK(heard == 2);
  }
}

TEST_SUITE("placement actor with FGD") {
  TEST_CASE("an FGD-scoring placement actor places work and reports fragmentation") {
    auto n = make_node();
    auto cfg = small_cluster();
    cfg.scorer = scorer_kind::fgd;
    workload_class whole;
    whole.gpus = 1;
    whole.weight = 0.5;
    workload_class half;
    half.gpu_milli = 500;
    half.weight = 0.5;
    cfg.expected_mix.classes = {whole, half};
    auto pa = n->adopt(spawn_placement_actor(n->system(), cfg));
    gang_request share;
    share.tenant = "acme";
    bundle b;
    b.gpu_milli = 300;
    share.bundles.push_back(b);
    auto a = ask<uint64_t>(*n, pa, submit_atom::value, encode(share));
    auto c = ask<uint64_t>(*n, pa, submit_atom::value, request_json(2, strategy::pack));
    CHECK(ask<std::string>(*n, pa, why_atom::value, a).rfind("running as", 0) == 0);
    CHECK(ask<std::string>(*n, pa, why_atom::value, c).rfind("running as", 0) == 0);
    auto text = n->metrics().expose();
    CHECK(text.find("troupe_placement_placed_total 2") != std::string::npos);
    CHECK(text.find("troupe_placement_allocated_gpu_milli 2300") != std::string::npos);
    CHECK(text.find("troupe_placement_fragmentation_rate ") != std::string::npos);
    CHECK(text.find("troupe_placement_pending_requests 0") != std::string::npos);
  }
}

TEST_SUITE("placement actor with troupe's scorer") {
  TEST_CASE("the scorer setting names every scorer kind and rejects others") {
    for (auto k : {scorer_kind::best_fit, scorer_kind::fgd, scorer_kind::fgd_simulator,
                   scorer_kind::troupe}) {
      auto back = parse_scorer_kind(to_string(k));
      REQUIRE(back.ok());
      CHECK(*back == k);
    }
    auto bad = parse_scorer_kind("fgdd");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.err().message().find("best_fit|fgd|fgd_simulator|troupe") !=
          std::string::npos);
    CHECK(bad.err().message().find("\"fgdd\"") != std::string::npos);
  }

  TEST_CASE("a placement actor with troupe's scorer places work and reports "
            "fragmentation") {
    auto n = make_node();
    auto cfg = small_cluster();
    cfg.scorer = *parse_scorer_kind("troupe");
    workload_class whole;
    whole.gpus = 1;
    whole.cpu_milli = 4000;
    whole.weight = 0.5;
    workload_class half;
    half.gpu_milli = 500;
    half.weight = 0.5;
    cfg.expected_mix.classes = {whole, half};
    auto pa = n->adopt(spawn_placement_actor(n->system(), cfg));
    gang_request share;
    share.tenant = "acme";
    bundle b;
    b.gpu_milli = 300;
    share.bundles.push_back(b);
    auto a = ask<uint64_t>(*n, pa, submit_atom::value, encode(share));
    auto c = ask<uint64_t>(*n, pa, submit_atom::value, request_json(2, strategy::pack));
    CHECK(ask<std::string>(*n, pa, why_atom::value, a).rfind("running as", 0) == 0);
    CHECK(ask<std::string>(*n, pa, why_atom::value, c).rfind("running as", 0) == 0);
    auto text = n->metrics().expose();
    CHECK(text.find("troupe_placement_placed_total 2") != std::string::npos);
    CHECK(text.find("troupe_placement_allocated_gpu_milli 2300") != std::string::npos);
    CHECK(text.find("troupe_placement_fragmentation_rate ") != std::string::npos);
  }
}

TEST_SUITE("placement codec") {
  TEST_CASE("requests and allocations round-trip through JSON") {
    gang_request r;
    r.id = request_id{7};
    r.tenant = "t";
    r.cost_labels["team"] = "infra";
    bundle b;
    b.gpus = 2;
    b.gpu_models = {"H100-80GB"};
    b.node_selector["zone"] = "a";
    r.bundles = {b, b};
    r.min_bundles = 1;
    r.placement_strategy = strategy::topology;
    r.priority = -3;
    r.preemptible = true;
    r.runtime_estimate = std::chrono::seconds{90};
    r.spot_tolerant = r.cheapest_first = true;
    auto back = decode_request(encode(r));
    REQUIRE(back.ok());
    CHECK(back->spot_tolerant);
    CHECK(back->cheapest_first);
    CHECK(back->bundles == r.bundles);
    CHECK(back->cost_labels == r.cost_labels);
    CHECK(back->priority == -3);
    CHECK(back->placement_strategy == strategy::topology);
    CHECK(back->runtime_estimate == r.runtime_estimate);
    allocation a;
    a.id = allocation_id{3};
    a.request = r;
    bundle_placement bp;
    bp.node = node_id{1};
    bp.gpus = {0, 1};
    bp.shared_gpu = 4;
    bp.mig_profile = "1g.10gb";
    bp.mig_start = 6;
    a.plan.bundles = {bp};
    auto ab = decode_allocation(encode(a));
    REQUIRE(ab.ok());
    CHECK(ab->id == a.id);
    CHECK(ab->plan.bundles[0].gpus == bp.gpus);
    CHECK(ab->plan.bundles[0].shared_gpu == bp.shared_gpu);
    CHECK(ab->plan.bundles[0].mig_start == 6);
  }

  TEST_CASE("hostile request documents give a clear error naming the field") {
    auto good = nlohmann::json::parse(request_json(1));
    auto with = [&](const char* key, nlohmann::json v) {
      auto j = good;
      j[key] = std::move(v);
      return j.dump();
    };
    auto without = [&](const char* key) {
      auto j = good;
      j.erase(key);
      return j.dump();
    };
    struct row {
      std::string input;
      std::string expect;
    };
    std::vector<row> rows = {
        {"", "malformed JSON"},
        {"{", "malformed JSON"},
        {"[]", "request: expected an object"},
        {"null", "request: expected an object"},
        {"\"text\"", "request: expected an object"},
        {std::string("{\"id\":1,\"tenant\":\"\xff\"}"), "malformed JSON"},
        {without("tenant"), "request.tenant: missing"},
        {without("bundles"), "request.bundles: missing"},
        {with("tenant", 5), "request.tenant: expected a string"},
        {with("id", -1), "request.id: expected a non-negative integer"},
        {with("id", 1.5), "request.id: expected a non-negative integer"},
        {with("bundles", "x"), "request.bundles: expected an array"},
        {with("bundles", nlohmann::json::array()), "gang has no bundles"},
        {with("bundles", nlohmann::json::array({1})),
         "request.bundles[0]: expected an object"},
        {with("bundles", nlohmann::json::array({{{"gpus", 1}}})),
         "request.bundles[0].gpu_milli: missing"},
        {with("bundles", nlohmann::json::array({{{"gpus", 1},
                                                 {"gpu_milli", 1000},
                                                 {"cpu_milli", 0},
                                                 {"memory_mib", 0}}})),
         "request.bundles[0].gpu_milli: 1000 is out of range"},
        {with("bundles", nlohmann::json::array({{{"gpus", 99999},
                                                 {"gpu_milli", 0},
                                                 {"cpu_milli", 0},
                                                 {"memory_mib", 0}}})),
         "request.bundles[0].gpus: 99999 is out of range"},
        {with(
             "bundles",
             nlohmann::json::array(
                 {{{"gpus", 1}, {"gpu_milli", 5}, {"cpu_milli", 0}, {"memory_mib", 0}}})),
         "asks for more than one of whole GPUs"},
        {with("strategy", "packk"), "request.strategy: expected one of pack|spread|"},
        {with("priority", 1e12), "request.priority: expected an integer"},
        {with("priority", 99999999999LL), "request.priority: out of range"},
        {with("preemptible", "yes"), "request.preemptible: expected true or false"},
        {with("min_bundles", 5), "min_bundles 5 exceeds bundles"},
        {with("cost_labels", {{"team", 1}}),
         "request.cost_labels.team: expected a string"},
        {with("runtime_estimate_ns", "1h"),
         "request.runtime_estimate_ns: expected an integer"},
        {std::string(100000, '['), "malformed JSON"},
    };
    for (auto& r : rows) {
      auto res = decode_request(r.input);
      INFO("input: " << r.input.substr(0, 120));
      REQUIRE_FALSE(res.ok());
      CHECK(res.err().is(errc::invalid_argument));
      CHECK(res.err().message().find(r.expect) != std::string::npos);
    }
  }

  TEST_CASE("hostile allocation documents are rejected, not trusted") {
    auto bad_gpu =
        R"({"id":1,"request":)" + request_json(1) +
        R"(,"plan":{"bundles":[{"bundle":0,"node":0,"gpus":[999],"gpu_milli":0,"cpu_milli":0,"memory_mib":0}]},"start_ns":0})";
    auto r = decode_allocation(bad_gpu);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().message().find(
              "allocation.plan.bundles[0].gpus: expected GPU indices below") !=
          std::string::npos);
    auto r2 = decode_allocation(R"({"id":1})");
    REQUIRE_FALSE(r2.ok());
    CHECK(r2.err().message().find("allocation.request: missing") != std::string::npos);
  }

  TEST_CASE("nodes join a placement actor that starts empty; bundles of a lost node are "
            "freed; a restart keeps nodes and allocations, unschedulable until up") {
    auto dir = std::filesystem::temp_directory_path() /
               ("troupe-placement-dyn-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    auto node_json = [](const std::string& name, int gpus) {
      node_spec n;
      n.name = name;
      n.cpu_milli = 64000;
      n.memory_mib = 512000;
      n.node_labels = {{"zone", "a"}};
      n.capacity = capacity_type::spot;
      n.price_per_gpu_hour = troupe::micro_usd{1'500'000};
      for (int i = 0; i < gpus; ++i)
        n.gpus.push_back(gpu_spec{});
      return encode(n);
    };
    auto two_replicas = [] {
      gang_request r;
      r.tenant = "acme";
      bundle b;
      b.gpus = 4;
      r.bundles = {b, b};
      r.placement_strategy = strategy::strict_spread;
      r.spot_tolerant = true; // the nodes below are spot
      return encode(r);
    };
    {
      auto n = make_node();
      placement_actor_config c;
      c.store_path = dir.string();
      c.schedule_interval = 50ms;
      auto pa = n->adopt(spawn_placement_actor(n->system(), c));
      auto s0 = nlohmann::json::parse(ask<std::string>(*n, pa, status_atom::value));
      CHECK(s0["total_gpu_milli"] == 0);
      auto id = ask<uint64_t>(*n, pa, submit_atom::value, two_replicas());
      CHECK(ask<std::string>(*n, pa, why_atom::value, id).rfind("pending: ", 0) == 0);
      REQUIRE(ask<bool>(*n, pa, node_up_atom::value, node_json("w1", 8)));
      REQUIRE(ask<bool>(*n, pa, node_up_atom::value, node_json("w2", 8)));
      CHECK(ask<bool>(*n, pa, node_up_atom::value, node_json("w2", 8))); // again: no-op
      auto why = ask<std::string>(*n, pa, why_atom::value, id);
      CAPTURE(why);
      CHECK(why.rfind("running as allocation 1 on ", 0) == 0);
      auto s1 = nlohmann::json::parse(ask<std::string>(*n, pa, status_atom::value));
      CHECK(s1["total_gpu_milli"] == 16000);
      CHECK(s1["allocated_gpu_milli"] == 8000);
      // w2 is lost: its replica's bundle is freed, the other one stays.
      REQUIRE(ask<bool>(*n, pa, node_down_atom::value, std::string{"w2"}));
      auto bad = n->request<bool>(pa, 5s, node_down_atom::value, std::string{"nope"});
      CHECK_FALSE(bad.ok());
      // Which bundle sits on w2 depends on the placer; free bundle 1 and
      // check the accounting.
      REQUIRE(ask<bool>(*n, pa, release_bundle_atom::value, uint64_t{1}, uint32_t{1}));
      auto again =
          n->request<bool>(pa, 5s, release_bundle_atom::value, uint64_t{1}, uint32_t{1});
      CHECK_FALSE(again.ok()); // that bundle is gone
      auto s2 = nlohmann::json::parse(ask<std::string>(*n, pa, status_atom::value));
      CHECK(s2["allocated_gpu_milli"] == 4000);
      CHECK(s2["allocations"].size() == 1);
      // A bad node spec is refused with the field named; nothing changes.
      auto hostile = n->request<bool>(pa, 5s, node_up_atom::value,
                                      std::string{R"({"name":"x","gpus":7})"});
      REQUIRE_FALSE(hostile.ok());
      CHECK(hostile.err().to_string().find("node.gpus") != std::string::npos);
      n->stop();
    }
    auto n = make_node();
    placement_actor_config c;
    c.store_path = dir.string();
    c.schedule_interval = 50ms;
    auto pa = n->adopt(spawn_placement_actor(n->system(), c));
    auto s3 = nlohmann::json::parse(ask<std::string>(*n, pa, status_atom::value));
    CHECK(s3["total_gpu_milli"] == 16000);
    CHECK(s3["allocated_gpu_milli"] == 4000);
    // Nodes are unschedulable until they are up: a 1-GPU request waits.
    gang_request one;
    one.tenant = "acme";
    one.bundles.push_back(bundle{});
    one.bundles[0].gpus = 1;
    one.spot_tolerant = true;
    auto id = ask<uint64_t>(*n, pa, submit_atom::value, encode(one));
    CHECK(ask<std::string>(*n, pa, why_atom::value, id).rfind("pending: ", 0) == 0);
    REQUIRE(ask<bool>(*n, pa, node_up_atom::value, node_json("w1", 8)));
    CHECK(ask<std::string>(*n, pa, why_atom::value, id).rfind("running as", 0) == 0);
    // The last bundle of allocation 1 released: the allocation goes.
    auto s4 = nlohmann::json::parse(ask<std::string>(*n, pa, status_atom::value));
    uint32_t left = 0;
    for (uint32_t b = 0; b < 2; ++b)
      if (n->request<bool>(pa, 5s, release_bundle_atom::value, uint64_t{1}, b).ok())
        ++left;
    CHECK(left == 1);
    auto s5 = nlohmann::json::parse(ask<std::string>(*n, pa, status_atom::value));
    CHECK(s5["allocations"].size() == s4["allocations"].size() - 1);
    n->stop();
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("node specs round-trip through JSON; hostile ones name the field") {
    node_spec n;
    n.name = "gpu-7";
    n.gpus = {gpu_spec{}, gpu_spec{"A100-80GB", 81920, 1, 2, 1, 3, gpu_sharing::mig, 1}};
    n.cpu_milli = 96000;
    n.memory_mib = 1 << 20;
    n.node_labels = {{"pool", "spot-a"}};
    n.capacity = capacity_type::reserved;
    n.price_per_gpu_hour = troupe::micro_usd{2'000'000};
    auto back = decode_node_spec(encode(n));
    REQUIRE(back.ok());
    CHECK(encode(*back) == encode(n));
    struct row {
      const char* doc;
      const char* field;
    };
    const row rows[] = {
        {"", "malformed JSON"},
        {"[]", "node: expected an object"},
        {R"({"gpus":[]})", "node.name: missing"},
        {R"({"name":"","gpus":[]})", "node.name"},
        {R"({"name":"a","gpus":{}})", "node.gpus"},
        {R"({"name":"a","gpus":[{"model":1}]})", "node.gpus[0].model"},
        {R"({"name":"a","gpus":[{"model":"x","memory_mib":-1}]})",
         "node.gpus[0].memory_mib"},
        {R"({"name":"a","gpus":[],"cpu_milli":1,"memory_mib":1,"capacity":"free"})",
         "node.capacity"},
        {R"({"name":"a","gpus":[],"cpu_milli":1,"memory_mib":1,"capacity":"spot",)"
         R"("price_per_gpu_hour_micro_usd":1,"nic_gbps":"fast"})",
         "node.nic_gbps"},
    };
    for (auto& r : rows) {
      CAPTURE(r.doc);
      auto d = decode_node_spec(r.doc);
      REQUIRE_FALSE(d.ok());
      CHECK(d.err().message().find(r.field) != std::string::npos);
    }
  }
}
