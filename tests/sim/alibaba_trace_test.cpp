#include "troupe/runtime/errc.hpp"
#include "troupe/sim/trace.hpp"

#include <doctest/doctest.h>

using namespace troupe;
using namespace troupe::sim;

TEST_CASE("Alibaba pod list: whole, shared, CPU-only pods and GPU-model constraints") {
  constexpr std::string_view text =
      "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
      "deletion_time,scheduled_time\n"
      "p1,12000,16384,1,1000,,LS,Running,10,110,10\n"
      "p0,6000,12288,1,460,V100M16|V100M32,BE,Running,5,20,5\n"
      "p2,4000,8192,0,0,,LS,Running,10,,10\n"
      "p3,32000,65536,8,1000,A10,LS,Running,30,90,30\n";
  auto t = parse_alibaba_pods(text, "pods.csv");
  REQUIRE(t.ok());
  REQUIRE(t->jobs.size() == 4);
  CHECK(t->jobs[0].name == "p0"); // sorted by creation time
  CHECK(t->jobs[0].gpu_milli == 460);
  CHECK(t->jobs[0].gpus == 0);
  CHECK(t->jobs[0].gpu_models == std::vector<std::string>{"V100M16", "V100M32"});
  CHECK(t->jobs[0].run_time == std::chrono::seconds(15));
  CHECK(t->jobs[0].qos == "BE");
  CHECK(t->jobs[1].gpus == 1);
  CHECK(t->jobs[1].gpu_milli == 0);
  CHECK(t->jobs[2].gpus == 0); // CPU only
  CHECK(t->jobs[2].run_time == duration{0});
  CHECK(t->jobs[3].gpus == 8);
  CHECK(t->jobs[3].gpu_models == std::vector<std::string>{"A10"});

  auto req = to_gang_request(t->jobs[3], placement::request_id{7});
  REQUIRE(req.bundles.size() == 1);
  CHECK(req.bundles[0].gpus == 8);
  CHECK(req.validate().ok());
}

TEST_CASE("Alibaba pod list: malformed rows name the line and column") {
  constexpr std::string_view header =
      "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
      "deletion_time,scheduled_time\n";
  auto bad = parse_alibaba_pods(
      std::string(header) + "p1,12000,16384,x,1000,,LS,R,0,1,0\n", "pods.csv");
  REQUIRE(!bad.ok());
  CHECK(bad.err().is(runtime::errc::invalid_argument));
  CHECK(bad.err().message() ==
        "pods.csv:2:4 (num_gpu): expected an unsigned integer, got \"x\"");
}
