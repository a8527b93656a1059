/// Loader of the Alibaba GPU-sharing trace (cluster-trace-gpu-v2023).
#include "csv.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/sim/trace.hpp"

#include <algorithm>

namespace troupe::sim {

using runtime::errc;

namespace {

/// Times past this do not fit the nanosecond clock once added up.
constexpr auto max_trace_s = static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::seconds>(max_trace_time).count());

/// Splits a `gpu_spec` ("V100M16|V100M32") into models; empty: any.
std::vector<std::string> split_models(std::string_view spec) {
  std::vector<std::string> out;
  while (!spec.empty()) {
    auto bar = spec.find('|');
    auto part = spec.substr(0, bar);
    if (!part.empty()) out.emplace_back(part);
    if (bar == std::string_view::npos) break;
    spec.remove_prefix(bar + 1);
  }
  return out;
}

} // namespace

result<std::vector<trace_node>> parse_alibaba_nodes(std::string_view text,
                                                    std::string_view source) {
  auto t = csv::table::parse(text, source);
  if (!t) return t.err();
  auto sn = t->column("sn");
  auto cpu = t->column("cpu_milli");
  auto mem = t->column("memory_mib");
  auto gpu = t->column("gpu");
  auto model = t->column("model");
  for (auto* c : {&sn, &cpu, &mem, &gpu, &model})
    if (!*c) return c->err();
  std::vector<trace_node> out;
  out.reserve(t->rows().size());
  for (const auto& r : t->rows()) {
    trace_node n;
    auto name = t->text(r, *sn);
    if (!name) return name.err();
    if (name->empty()) return t->fail(r, *sn, "empty node name");
    n.name = std::string(*name);
    auto c = t->u64(r, *cpu);
    if (!c) return c.err();
    auto m = t->u64(r, *mem);
    if (!m) return m.err();
    auto g = t->u64(r, *gpu);
    if (!g) return g.err();
    if (*g > placement::max_gpus_per_node)
      return t->fail(r, *gpu,
                     std::to_string(*g) + " GPUs is more than a node may have (" +
                         std::to_string(placement::max_gpus_per_node) + ")");
    auto mo = t->text(r, *model);
    if (!mo) return mo.err();
    if (*g > 0 && mo->empty())
      return t->fail(r, *model, "a node with GPUs needs a model");
    n.cpu_milli = *c;
    n.memory_mib = *m;
    n.gpus = static_cast<uint32_t>(*g);
    n.gpu_model = std::string(*mo);
    out.push_back(std::move(n));
  }
  return out;
}

result<std::vector<trace_node>> load_alibaba_nodes(const std::string& path) {
  auto text = csv::read_file(path);
  if (!text) return text.err();
  return parse_alibaba_nodes(*text, path);
}

result<trace> parse_alibaba_pods(std::string_view text, std::string_view source) {
  auto t = csv::table::parse(text, source);
  if (!t) return t.err();
  auto name = t->column("name");
  auto cpu = t->column("cpu_milli");
  auto mem = t->column("memory_mib");
  auto num = t->column("num_gpu");
  auto milli = t->column("gpu_milli");
  auto created = t->column("creation_time");
  for (auto* c : {&name, &cpu, &mem, &num, &milli, &created})
    if (!*c) return c->err();
  auto spec = t->find_column("gpu_spec");
  auto qos = t->find_column("qos");
  auto deleted = t->find_column("deletion_time");

  trace out;
  out.source = std::string(source);
  out.jobs.reserve(t->rows().size());
  for (const auto& r : t->rows()) {
    trace_job j;
    auto n = t->text(r, *name);
    if (!n) return n.err();
    if (n->empty()) return t->fail(r, *name, "empty pod name");
    j.name = std::string(*n);
    auto c = t->u64(r, *cpu);
    if (!c) return c.err();
    auto m = t->u64(r, *mem);
    if (!m) return m.err();
    auto g = t->u64(r, *num);
    if (!g) return g.err();
    auto gm = t->u64(r, *milli);
    if (!gm) return gm.err();
    if (*g > placement::max_gpus_per_node)
      return t->fail(r, *num,
                     std::to_string(*g) + " GPUs on one node is more than " +
                         std::to_string(placement::max_gpus_per_node));
    if (*gm > 1000) return t->fail(r, *milli, "expected 0..1000 milli-GPU per GPU");
    if (*g > 1 && *gm != 1000)
      return t->fail(r, *milli,
                     "a pod of " + std::to_string(*g) +
                         " GPUs must take whole GPUs (1000), got " + std::to_string(*gm));
    if (*g == 1 && *gm == 0)
      return t->fail(r, *milli, "a pod of one GPU needs gpu_milli > 0");
    j.cpu_milli = *c;
    j.memory_mib = *m;
    if (*g == 1 && *gm < 1000) {
      j.gpu_milli = static_cast<uint32_t>(*gm);
    } else {
      j.gpus = static_cast<uint32_t>(*g); // 0: CPU only, whatever gpu_milli says
    }
    if (spec) {
      auto s = t->text(r, *spec);
      if (!s) return s.err();
      j.gpu_models = split_models(*s);
    }
    if (qos) {
      auto q = t->text(r, *qos);
      if (!q) return q.err();
      j.qos = std::string(*q);
    }
    auto cr = t->u64(r, *created);
    if (!cr) return cr.err();
    if (*cr > max_trace_s)
      return t->fail(r, *created,
                     "creation_time " + std::to_string(*cr) +
                         " is more than 100 years (max_trace_time)");
    j.submit = std::chrono::seconds(*cr);
    if (deleted) {
      auto d = t->text(r, *deleted);
      if (!d) return d.err();
      if (!d->empty()) {
        auto dv = t->u64(r, *deleted);
        if (!dv) return dv.err();
        if (*dv < *cr)
          return t->fail(r, *deleted,
                         "deletion_time " + std::to_string(*dv) +
                             " is before creation_time " + std::to_string(*cr));
        if (*dv - *cr > max_trace_s)
          return t->fail(r, *deleted,
                         "the pod runs more than 100 years (max_trace_time)");
        j.run_time = std::chrono::seconds(*dv - *cr);
      }
    }
    out.jobs.push_back(std::move(j));
  }
  std::stable_sort(
      out.jobs.begin(), out.jobs.end(),
      [](const trace_job& a, const trace_job& b) { return a.submit < b.submit; });
  return out;
}

result<trace> load_alibaba_pods(const std::string& path) {
  auto text = csv::read_file(path);
  if (!text) return text.err();
  return parse_alibaba_pods(*text, path);
}

} // namespace troupe::sim
