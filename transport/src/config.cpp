#include "troupe/transport/fabric.hpp"

namespace troupe::transport {

namespace {

config_schema<transport_settings> make_schema() {
  using namespace std::chrono_literals;
  using tc = transport_config;
  config_schema<transport_settings> s;
  s.section("transport", &transport_settings::transport,
            "Node-to-node fabric (UCX): listener, authentication, flow control.")
      .string("listen", &tc::listen, "127.0.0.1:0",
              "host:port to accept peers on; port 0 picks a free one.")
      .boolean("listen_enabled", &tc::listen_enabled, true,
               "Accept connections (a node that only connects out may turn this off).")
      .string(
          "transports", &tc::transports, "",
          "UCX transports (UCX_TLS), e.g. \"tcp\" or \"shm,tcp\"; empty lets UCX choose.")
      .boolean("shared_memory", &tc::shared_memory, true,
               "Allow shared memory between processes of one machine (sets UCX's "
               "SYSV/POSIX_ERROR_HANDLING unless the environment does).")
      .boolean(
          "busy_poll", &tc::busy_poll, false,
          "Spin on the UCX worker instead of sleeping: lowest latency, one busy core.")
      .boolean("direct_send", &tc::direct_send, true,
               "Send from the sender's thread while the link is idle (lower latency).")
      .one_of("inline_delivery", &tc::inline_delivery, inline_mode::marked,
              {{"off", inline_mode::off},
               {"marked", inline_mode::marked},
               {"all", inline_mode::all}},
              "Run receiving actors on the progress thread (one thread wake-up less per "
              "message): \"marked\" = actors passed to fabric::deliver_inline, \"all\" "
              "= every event-based actor, \"off\". Such handlers must be short and "
              "never block.")
      .duration("inline_budget", &tc::inline_budget, 500us,
                "Three inline runs in a row longer than this move the actor back to the "
                "scheduler for good.")
      .integer("inline_throughput", &tc::inline_throughput, 64, {1, 1 << 20},
               "Messages an actor handles per inline run before others get a turn.")
      .boolean("keep_large_buffers", &tc::keep_large_buffers, true,
               "Raise glibc's mmap threshold (process-wide) so large message buffers are "
               "reused instead of freshly mapped for every message.")
      .string("secret_file", &tc::secret_file, "",
              "File whose first line is the cluster secret (keep it mode 0600).")
      .string(
          "secret", &tc::secret, "",
          "The cluster secret itself (prefer secret_file or TROUPE_TRANSPORT_SECRET).")
      .string("next_secret", &tc::next_secret, "",
              "A second accepted secret while the cluster secret is rotated.")
      .integer("send_queue_bytes", &tc::send_queue_bytes, int64_t{256} << 20,
               {int64_t{1} << 16, int64_t{1} << 40},
               "Bytes queued for one peer before sends fail with overloaded.")
      .integer("window_bytes", &tc::window_bytes, int64_t{64} << 20,
               {int64_t{1} << 16, int64_t{1} << 40},
               "Bytes in flight to one peer before the sender waits for credit.")
      .integer("bulk_threshold", &tc::bulk_threshold, int64_t{256} << 10,
               {int64_t{1} << 10, int64_t{1} << 40},
               "Payloads at least this large travel by UCX rendezvous, without a copy.")
      .integer("max_frame_bytes", &tc::max_frame_bytes, int64_t{64} << 20,
               {int64_t{1} << 16, int64_t{1} << 32},
               "Largest frame accepted from a peer; larger ones are dropped.")
      .integer("max_payload_bytes", &tc::max_payload_bytes, int64_t{4} << 30,
               {int64_t{1} << 16, int64_t{1} << 40},
               "Largest single payload accepted from a peer.")
      .duration("connect_timeout", &tc::connect_timeout, 10s,
                "How long connecting to a peer (handshake included) may take.");
  return s;
}

} // namespace

const config_schema<transport_settings>& transport_schema() {
  static const config_schema<transport_settings> schema = make_schema();
  return schema;
}

} // namespace troupe::transport
