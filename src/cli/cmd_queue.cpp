// capforge queue init|status|retry-failed and capforge worker: one caption run spread over any
// number of workers on any number of machines, coordinated by a job store (sqlite:PATH for one
// machine, postgresql://... for a fleet). `queue init` stores the caption options in the store,
// so every worker runs exactly the same job.
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "capforge/jobstore.h"
#include "cli/caption_run.h"
#include "cli/common.h"
#include "core/log.h"
#include "pipeline/progress.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {

// Options whose values are paths: stored absolute, so workers started elsewhere find them.
bool is_path_option(const std::string& name) {
  return name == "out" || name == "mmproj" || name == "preset-file" || name == "model" || name == "rank" ||
         name == "prompts" || name == "repair-model";
}

std::string absolute_value(const std::string& name, const std::string& v) {
  if (v == "demo" || v.rfind("demo:", 0) == 0) return v;
  if (name == "rank") {  // DIR[:K]
    auto colon = v.rfind(':');
    bool k = colon != std::string::npos && colon + 1 < v.size() &&
             v.find_first_not_of("0123456789", colon + 1) == std::string::npos;
    std::string dir = k ? v.substr(0, colon) : v;
    return fs::absolute(dir).lexically_normal().string() + (k ? v.substr(colon) : "");
  }
  return fs::absolute(v).lexically_normal().string();
}

// The command line of `cmd` as --name=value words, without inputs and the store itself.
Json serialize_args(CLI::App* cmd) {
  Json args = Json::array();
  for (const CLI::Option* opt : cmd->get_options()) {
    if (opt->get_lnames().empty() || opt->count() == 0) continue;
    const std::string& name = opt->get_lnames().front();
    static const std::set<std::string> kWorkerOwn = {"db",          "inputs",       "help",
                                                     "shard-index", "num-shards",   "lease",
                                                     "progress",    "metrics-port", "metrics-host"};
    if (kWorkerOwn.count(name)) continue;
    for (auto& v : opt->results())
      args.push_back("--" + name + "=" + (is_path_option(name) ? absolute_value(name, v) : v));
  }
  return args;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  return end && *end == '\0' ? (int)x : fallback;
}

struct StatusOptions {
  std::string db;
  bool json = false;
};

int run_status(const StatusOptions& o) {
  auto store = open_job_store(o.db);
  std::map<std::string, int64_t> states;
  int64_t samples = 0, done = 0, total = 0, retried = 0;
  Json failed = Json::array();
  for (auto& r : store->list()) {
    ++total;
    states[shard_state_name(r.state)]++;
    retried += r.attempts > 1;
    if (r.state == ShardState::done) samples += r.samples, ++done;
    if (r.state == ShardState::failed)
      failed.push_back({{"shard", r.input.name}, {"attempts", r.attempts}, {"error", r.last_error}});
  }
  double started = std::atof(store->get_meta("started_at").value_or("0").c_str());
  double elapsed = started > 0 ? now_seconds() - started : 0;
  double rate = elapsed > 0 ? samples / elapsed : 0;
  int64_t left = total - done - states["failed"];
  double per_shard = done ? (double)samples / done : 0;
  double eta = rate > 0 ? left * per_shard / rate : -1;
  Json j = {{"shards", total},    {"states", states}, {"samples_done", samples},  {"samples_per_s", rate},
            {"eta_seconds", eta}, {"failed", failed}, {"retried_shards", retried}};
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%lld shards: %lld done, %lld running, %lld pending, %lld failed\n", (long long)total,
              (long long)states["done"], (long long)states["running"], (long long)states["pending"],
              (long long)states["failed"]);
  std::printf("%lld samples done", (long long)samples);
  if (rate > 0) std::printf(", %.1f samples/s since the first worker started", rate);
  if (eta >= 0 && left > 0) std::printf(", ETA %.0f s", eta);
  std::printf("\n");
  for (auto& f : failed)
    std::printf("  failed %s (attempt %d): %s\n", f["shard"].get<std::string>().c_str(),
                f["attempts"].get<int>(), f["error"].get<std::string>().c_str());
  if (!failed.empty()) std::printf("retry them with: capforge queue retry-failed --db %s\n", o.db.c_str());
  return 0;
}

struct WorkerOptions {
  std::string db;
  double lease = 60;
  int threads = 0, metrics_port = 0;
  std::string metrics_host = "127.0.0.1";  // loopback unless told
  ProgressMode progress = ProgressMode::automatic;
};

int run_worker(const WorkerOptions& w) {
  auto store = open_job_store(w.db);
  auto stored = store->get_meta("caption_args");
  if (!stored)
    throw UsageError(w.db + " holds no queue", "create one with `capforge queue init --db URL ...`");
  Json args = Json::parse(*stored, nullptr, false);
  if (!args.is_array()) throw UsageError(w.db + ": the stored caption options are unreadable");
  std::vector<std::string> argv = {"capforge", "caption"};
  for (auto& a : args) {
    std::string s = a.get<std::string>();
    if (w.threads > 0 && s.rfind("--threads=", 0) == 0) continue;  // the worker's own wins
    argv.push_back(s);
  }
  argv.push_back("--db=" + w.db);
  argv.push_back(fmt::format("--lease={}", w.lease));
  if (w.threads > 0) argv.push_back(fmt::format("--threads={}", w.threads));
  if (w.metrics_port > 0) argv.push_back(fmt::format("--metrics-port={}", w.metrics_port));
  argv.push_back("--metrics-host=" + w.metrics_host);
  CLI::App app;
  auto o = std::make_shared<CaptionOptions>();
  auto* cmd = app.add_subcommand("caption");
  add_caption_options(cmd, o);
  std::vector<const char*> cargv;
  for (auto& a : argv) cargv.push_back(a.c_str());
  try {
    app.parse((int)cargv.size(), cargv.data());
  } catch (const CLI::ParseError& e) {
    throw UsageError(std::string("the stored caption options do not parse: ") + e.what());
  }
  o->mode = CaptionOptions::Mode::worker;
  o->progress = w.progress;
  info("worker {} on {}", local_owner_id(), w.db);
  return run_caption(*o, cmd);
}

}  // namespace

std::vector<ShardInput> select_partition(const std::vector<ShardInput>& inputs, int index, int count) {
  if (index < 0) index = env_int("SLURM_ARRAY_TASK_ID", env_int("JOB_COMPLETION_INDEX", -1));
  if (count <= 0) count = env_int("SLURM_ARRAY_TASK_COUNT", env_int("CAPFORGE_NUM_SHARDS", 0));
  if (index < 0 && count <= 0) return inputs;
  if (index < 0 || count <= 0 || index >= count)
    throw UsageError(fmt::format("array task {} of {} does not make sense", index, count),
                     "--shard-index I --num-shards N with 0 <= I < N");
  std::vector<ShardInput> out;
  for (size_t i = 0; i < inputs.size(); ++i)
    if ((int)(i % (size_t)count) == index) out.push_back(inputs[i]);
  info("array task {} of {}: {} of {} inputs", index, count, out.size(), inputs.size());
  return out;
}

int init_queue(const CaptionOptions& o, CLI::App* cmd, const std::vector<ShardInput>& inputs) {
  if (o.db.empty()) throw UsageError("queue init needs --db", "--db sqlite:PATH or --db postgresql://...");
  auto store = open_job_store(o.db);
  size_t before = store->list().size();
  check_store_matches(*store, config_fingerprint(o), inputs, o.db, "use another database (or schema)");
  store->set_meta("caption_args", serialize_args(cmd).dump());
  store->add_shards(inputs);
  size_t after = store->list().size();
  std::printf("queued %zu shard(s) (%zu new) in %s\nstart workers with: capforge worker --db %s\n",
              inputs.size(), after - before, o.db.c_str(), o.db.c_str());
  return 0;
}

void add_queue(CLI::App& app, Action& action) {
  auto* queue = app.add_subcommand("queue", "A caption run shared by many workers through a job store");
  queue->require_subcommand(1);

  auto o = std::make_shared<CaptionOptions>();
  auto* init = queue->add_subcommand("init", "Register inputs and the caption settings (any `caption` flag)");
  add_caption_options(init, o);
  // --inputs adds to the positional inputs (a callback appends; binding both options to one
  // vector made the later one replace the other). One value per use: the rest of a glob lands in
  // the positionals, so `--inputs GLOB` still queues every file.
  init->add_option(
          "--inputs",
          [o](const CLI::results_t& v) {
            o->inputs.insert(o->inputs.end(), v.begin(), v.end());
            return true;
          },
          "shards or image folders (like caption's positional inputs)")
      ->type_name("TEXT")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  init->get_option("--db")->required()->description(
      "job store URL: sqlite:PATH or postgresql://... (give the workers the same)");
  init->callback([o, init, &action] {
    action = [o, init] {
      o->mode = CaptionOptions::Mode::queue_init;
      return run_caption(*o, init);
    };
  });

  auto s = std::make_shared<StatusOptions>();
  auto* status = queue->add_subcommand("status", "Shards per state, samples done, throughput and ETA");
  status->add_option("--db", s->db, "job store URL")->required();
  status->add_flag("--json", s->json, "print JSON");
  status->callback([s, &action] { action = [s] { return run_status(*s); }; });

  auto r = std::make_shared<std::string>();
  auto* retry =
      queue->add_subcommand("retry-failed", "Make failed shards pending again (attempts start over)");
  retry->add_option("--db", *r, "job store URL")->required();
  retry->callback([r, &action] {
    action = [r] {
      int n = open_job_store(*r)->reset_failed();
      std::printf("%d failed shard(s) are pending again\n", n);
      return 0;
    };
  });

  auto w = std::make_shared<WorkerOptions>();
  auto* worker =
      app.add_subcommand("worker", "Process a queue's shards until none is left (any number at once)");
  worker->add_option("--db", w->db, "job store URL (sqlite:PATH or postgresql://...)")->required();
  worker->add_option("--lease", w->lease, "lease in seconds, >= 1 (heartbeats renew it every third of it)")
      ->capture_default_str()
      ->check(lease_seconds());
  worker->add_option("--threads", w->threads, "threads (default: the queue's setting)")
      ->check(threads_count());
  worker->add_option("--metrics-port", w->metrics_port, "serve Prometheus metrics on this port (/metrics)")
      ->check(port_number());
  worker
      ->add_option(
          "--metrics-host", w->metrics_host,
          "address for --metrics-port (0.0.0.0: every interface; the default serves this machine only)")
      ->capture_default_str();
  add_progress_option(worker, w->progress);
  worker->callback([w, &action] { action = [w] { return run_worker(*w); }; });
}

}  // namespace capforge::cli
