// libFuzzer target: every text parser of sim/'s trace loaders must return a
// value or an error for any input, never crash, hang or throw; an error
// names the source; whatever loads and passes check_troupe_trace writes in
// troupe's format and reads back equal (CSV and JSON lines).
//
// Input layout: the first byte picks the parser (its value mod 7: Alibaba
// nodes, Alibaba pods, Philly node counts, Philly jobs, AWS spot, troupe
// CSV, troupe JSON lines); the rest is the text.

#include "troupe/sim/trace.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

using namespace troupe;
using namespace troupe::sim;

constexpr std::string_view source = "fuzz";

template <class T> void check_error(const result<T>& r) {
  // Every error says where: it starts with the source's name.
  if (!r.ok() && !r.err().message().starts_with(source)) __builtin_trap();
}

/// A trace that troupe's format accepts must come back equal.
void round_trip(const trace& t, bool must_pass_check) {
  auto ok = check_troupe_trace(t);
  if (!ok.ok()) {
    if (must_pass_check) __builtin_trap();
    return;
  }
  auto csv = parse_troupe_csv(to_troupe_csv(t), "roundtrip.csv");
  if (!csv.ok() || csv->jobs != t.jobs || csv->nodes != t.nodes) __builtin_trap();
  auto jsonl = parse_troupe_jsonl(to_troupe_jsonl(t), "roundtrip.jsonl");
  if (!jsonl.ok() || jsonl->jobs != t.jobs || jsonl->nodes != t.nodes) __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view text{reinterpret_cast<const char*>(data) + 1, size - 1};
  switch (data[0] % 7) {
  case 0: {
    auto r = parse_alibaba_nodes(text, source);
    check_error(r);
    if (r.ok()) {
      trace t;
      t.nodes = *r;
      round_trip(t, false);
    }
    break;
  }
  case 1: {
    auto r = parse_alibaba_pods(text, source);
    check_error(r);
    if (r.ok()) round_trip(*r, false);
    break;
  }
  case 2:
    check_error(parse_philly_vc_nodes(text, source));
    break;
  case 3: {
    static const vc_node_counts vcs = {{"a", 2}, {"b", 1}, {"6214e9", 64}};
    auto r = parse_philly(text, source, vcs);
    check_error(r);
    if (r.ok()) round_trip(*r, true); // Philly's jobs are always valid ones
    break;
  }
  case 4:
    check_error(parse_spot_trace(text, source));
    break;
  case 5: {
    auto r = parse_troupe_csv(text, source);
    check_error(r);
    if (r.ok()) round_trip(*r, true); // what loads passes the checks
    break;
  }
  case 6: {
    auto r = parse_troupe_jsonl(text, source);
    check_error(r);
    if (r.ok()) round_trip(*r, true);
    break;
  }
  }
  return 0;
}
