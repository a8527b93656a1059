// `troupe submit`, `jobs`, `job`, `cancel`, `logs`, `token`: the head's HTTP
// API (docs/API.md) from the command line. The API's URL and an admin token
// come from a local cluster's directory (`troupe up`), or from --url and
// --token / TROUPE_TOKEN for any cluster.

#include "jobs_cmds.hpp"

#include "api_client.hpp"
#include "troupe/actors/api_tokens.hpp"
#include "troupe/actors/job_spec.hpp"
#include "troupe/actors/local_cluster.hpp"

#include <cstdlib>
#include <fstream>
#include <httplib.h>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

namespace troupe::tools {
namespace {

using json = nlohmann::json;

struct submit_opts {
  std::string file;
  std::string name;
  uint32_t replicas = 1;
  uint32_t gpus = 0;
  std::string restart;
  std::string tenant_note;
  std::vector<std::string> command;
};

std::string replicas_summary(const json& job) {
  std::map<std::string, int> by_state;
  for (auto& r : job["replicas"])
    ++by_state[r.value("state", "?")];
  std::string s;
  for (auto& [k, v] : by_state)
    s += (s.empty() ? "" : " ") + std::to_string(v) + " " + k;
  return s;
}

int run_submit(api_opts o, const submit_opts& s) {
  if (!resolve(o, "submit")) return 2;
  std::string body;
  if (!s.file.empty()) {
    std::stringstream ss;
    if (s.file == "-") {
      ss << std::cin.rdbuf();
    } else {
      std::ifstream in{s.file};
      if (!in) {
        std::cerr << "troupe submit: cannot read " << s.file << '\n';
        return 2;
      }
      ss << in.rdbuf();
    }
    body = ss.str();
  } else {
    if (s.command.empty() || s.name.empty()) {
      std::cerr
          << "troupe submit: give a spec file (--file) or --name and a command after "
             "--\n";
      return 2;
    }
    json spec = {{"name", s.name}, {"replicas", s.replicas}};
    spec["command"] = s.command.size() == 1 ? json(s.command[0]) : json(s.command);
    if (s.gpus > 0) spec["resources"] = {{"gpus", s.gpus}};
    if (!s.restart.empty()) spec["restart"] = {{"policy", s.restart}};
    body = spec.dump();
  }
  // Checked here first, for an error that names the field before anything is sent.
  if (auto d = actors::decode_job_spec(body); !d) {
    std::cerr << "troupe submit: " << d.err().message() << '\n';
    return 2;
  }
  auto j = call(o, "submit", "POST", "/v1/jobs", body);
  if (!j) return 1;
  if (o.json_out)
    std::cout << j->dump(2) << '\n';
  else
    std::cout << j->value("id", "") << " " << j->value("state", "") << '\n';
  return 0;
}

int run_jobs(api_opts o, uint32_t limit) {
  if (!resolve(o, "jobs")) return 2;
  auto j = call(o, "jobs", "GET", "/v1/jobs?limit=" + std::to_string(limit));
  if (!j) return 1;
  if (o.json_out) {
    std::cout << j->dump(2) << '\n';
    return 0;
  }
  std::cout << std::left << std::setw(10) << "ID" << std::setw(20) << "NAME"
            << std::setw(12) << "TENANT" << std::setw(11) << "STATE"
            << "REPLICAS\n";
  for (auto& job : (*j)["jobs"])
    std::cout << std::left << std::setw(10) << job.value("id", "") << std::setw(20)
              << job.value("name", "") << std::setw(12) << job.value("tenant", "")
              << std::setw(11) << job.value("state", "") << replicas_summary(job) << '\n';
  if (!(*j)["next"].get<std::string>().empty())
    std::cout << "(more: --limit " << limit * 2 << ")\n";
  return 0;
}

int run_job(api_opts o, const std::string& id) {
  if (!resolve(o, "job")) return 2;
  auto j = call(o, "job", "GET", "/v1/jobs/" + id);
  if (!j) return 1;
  if (o.json_out) {
    std::cout << j->dump(2) << '\n';
    return 0;
  }
  std::cout << j->value("id", "") << " " << j->value("name", "") << " ("
            << j->value("tenant", "") << "): " << j->value("state", "");
  if (!j->value("reason", "").empty()) std::cout << ", " << j->value("reason", "");
  std::cout << "\n  submitted " << j->value("submitted", "") << '\n';
  if (j->contains("why_pending"))
    std::cout << "  why pending: " << (*j)["why_pending"].get<std::string>() << '\n';
  if (auto sp = j->find("spot"); sp != j->end() && sp->is_object())
    std::cout << "  spot: " << (sp->value("allowed", false) ? "allowed" : "kept off spot")
              << " (" << sp->value("reason", "") << ")\n";
  std::cout << std::left << "  " << std::setw(9) << "REPLICA" << std::setw(11) << "STATE"
            << std::setw(26) << "NODE" << std::setw(10) << "GPUS" << std::setw(10)
            << "RESTARTS"
            << "LAST EXIT\n";
  for (auto& r : (*j)["replicas"]) {
    std::string gpus;
    for (auto& g : r["gpus"])
      gpus += (gpus.empty() ? "" : ",") + std::to_string(g.get<int>());
    std::cout << "  " << std::setw(9) << r.value("index", 0) << std::setw(11)
              << r.value("state", "") << std::setw(26) << r.value("node", "")
              << std::setw(10) << gpus << std::setw(10) << r.value("restarts", 0)
              << r.value("last_exit", "") << '\n';
  }
  return 0;
}

int run_cancel(api_opts o, const std::string& id) {
  if (!resolve(o, "cancel")) return 2;
  auto j = call(o, "cancel", "POST", "/v1/jobs/" + id + "/cancel");
  if (!j) return 1;
  std::cout << j->value("id", "") << " " << j->value("state", "") << '\n';
  return 0;
}

int run_logs(api_opts o, const std::string& id, uint32_t replica, bool err, bool follow) {
  if (!resolve(o, "logs")) return 2;
  std::string path = "/v1/jobs/" + id + "/replicas/" + std::to_string(replica) +
                     "/logs?stream=" + (err ? "stderr" : "stdout");
  if (!follow) {
    uint64_t offset = 0;
    for (;;) {
      auto j = call(o, "logs", "GET", path + "&offset=" + std::to_string(offset));
      if (!j) return 1;
      auto data = j->value("data", std::string{});
      std::cout << data;
      auto next = j->value("next_offset", offset);
      if (data.empty() || next <= offset) break;
      offset = next;
    }
    std::cout.flush();
    return 0;
  }
  httplib::Client cli(o.url);
  cli.set_read_timeout(60);
  std::string pending;
  bool finished = false;
  auto r = cli.Get((path + "&follow=1").c_str(), {{"Authorization", "Bearer " + o.token}},
                   [&](const char* data, size_t n) {
                     pending.append(data, n);
                     size_t nl;
                     while ((nl = pending.find('\n')) != std::string::npos) {
                       auto chunk = json::parse(pending.substr(0, nl), nullptr, false);
                       pending.erase(0, nl + 1);
                       if (chunk.is_discarded()) continue;
                       std::cout << chunk.value("data", std::string{}) << std::flush;
                       finished |= chunk.value("finished", false);
                     }
                     return true;
                   });
  if (!r) {
    std::cerr << "troupe logs: cannot reach " << o.url << '\n';
    return 1;
  }
  if (r->status >= 300) {
    std::cerr << "troupe logs: HTTP " << r->status << '\n';
    return 1;
  }
  return 0;
}

int run_token(const std::string& tenant, bool admin) {
  auto t = actors::mint_api_token(tenant, admin);
  if (!t) {
    std::cerr << "troupe token: " << t.err().message() << '\n';
    return 2;
  }
  std::cout << "token (give it to the tenant; it is not stored): " << t->token << '\n'
            << "line for the head's tokens file:\n"
            << t->line << '\n';
  return 0;
}

} // namespace

void add_job_commands(CLI::App& app, std::function<int()>& run) {
  auto o = std::make_shared<api_opts>();
  auto s = std::make_shared<submit_opts>();
  auto* submit =
      app.add_subcommand("submit", "Submit a job: a spec file, or --name and a "
                                   "command after --");
  add_api_options(submit, *o);
  submit->add_option("--file,-f", s->file, "Job spec JSON (docs/API.md; - for stdin)");
  submit->add_option("--name", s->name, "Job name");
  submit->add_option("--replicas", s->replicas, "Replicas")->check(CLI::Range(1, 10000));
  submit->add_option("--gpus", s->gpus, "GPUs per replica")->check(CLI::Range(0, 1024));
  submit->add_option("--restart", s->restart, "never | on-failure | always");
  submit->add_option("command", s->command, "The command (one argument: run by /bin/sh)");
  submit->callback([&run, o, s] { run = [o, s] { return run_submit(*o, *s); }; });

  auto limit = std::make_shared<uint32_t>(50);
  auto* jobs = app.add_subcommand("jobs", "List jobs, newest first");
  add_api_options(jobs, *o);
  jobs->add_option("--limit", *limit, "How many")->check(CLI::Range(1, 1000));
  jobs->callback([&run, o, limit] { run = [o, limit] { return run_jobs(*o, *limit); }; });

  auto id = std::make_shared<std::string>();
  auto* job = app.add_subcommand("job", "Describe one job and its replicas");
  add_api_options(job, *o);
  job->add_option("id", *id, "Job id")->required();
  job->callback([&run, o, id] { run = [o, id] { return run_job(*o, *id); }; });

  auto* cancel = app.add_subcommand("cancel", "Cancel a job (SIGTERM, then SIGKILL)");
  add_api_options(cancel, *o);
  cancel->add_option("id", *id, "Job id")->required();
  cancel->callback([&run, o, id] { run = [o, id] { return run_cancel(*o, *id); }; });

  auto replica = std::make_shared<uint32_t>(0);
  auto err = std::make_shared<bool>(false);
  auto follow = std::make_shared<bool>(false);
  auto* logs = app.add_subcommand("logs", "A replica's output");
  add_api_options(logs, *o);
  logs->add_option("id", *id, "Job id")->required();
  logs->add_option("--replica,-r", *replica, "Replica index");
  logs->add_flag("--stderr", *err, "stderr instead of stdout");
  logs->add_flag("--follow,-f", *follow, "Keep printing until the replica ends");
  logs->callback([&run, o, id, replica, err, follow] {
    run = [o, id, replica, err, follow] {
      return run_logs(*o, *id, *replica, *err, *follow);
    };
  });

  auto tenant = std::make_shared<std::string>();
  auto admin = std::make_shared<bool>(false);
  auto* token = app.add_subcommand("token", "Mint an API token and its tokens-file line");
  token->add_option("tenant", *tenant, "Tenant")->required();
  token->add_flag("--admin", *admin, "An admin token");
  token->callback([&run, tenant, admin] {
    run = [tenant, admin] { return run_token(*tenant, *admin); };
  });
}

} // namespace troupe::tools
