// capforge rate serve | report: the LAION-COCO human study (human or AI? and a 0-5 rating, blind
// and shuffled) as a small web app with its state in SQLite, and its tables.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include "capforge/env.h"
#include "capforge/io.h"
#include "cli/common.h"
#include "cli/out_guard.h"
#include "core/log.h"
#include "eval/eval_data.h"
#include "rate/server.h"
#include "rate/tables.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {

struct ServeOptions {
  eval::EvalSources src;
  std::vector<std::string> images, raters;
  std::string db = "rating.sqlite", tokens_out, human = "auto";
  size_t max_samples = 0;
  uint64_t seed = 0;
  int image_size = 512;
  rate::ServeParams serve;
};

struct ReportOptions {
  std::string db = "rating.sqlite", csv;
  bool json = false;
};

// The study's samples: successful model captions with a human caption and a decodable image.
std::vector<rate::StudySample> build_study(const ServeOptions& o) {
  bool use_refs = o.human == "refs" || (o.human == "auto" && !o.src.refs_path.empty());
  if (use_refs && o.src.refs_path.empty()) throw UsageError("--human refs needs --refs");
  std::vector<eval::EvalRow> rows;
  try {
    rows = eval::load_eval_rows(o.src);
  } catch (const std::exception& e) {
    throw UsageError(e.what(), "--samples takes caption outputs (parquet with key, re_caption, org_caption)");
  }
  size_t failed = 0, no_human = 0, no_image = 0;
  std::vector<const eval::EvalRow*> keep;
  for (auto& r : rows) {
    const std::string& human = use_refs ? (r.refs.empty() ? "" : r.refs.front()) : r.org;
    if (r.status != "success" || r.pred.empty())
      ++failed;
    else if (human.empty())
      ++no_human;
    else
      keep.push_back(&r);
    if (o.max_samples && keep.size() == o.max_samples) break;
  }
  std::set<std::string> wanted;
  for (auto* r : keep) wanted.insert(r->key);
  const auto& image_paths = o.images.empty() ? o.src.pred_paths : o.images;
  auto images = eval::load_images(image_paths, wanted);
  std::vector<rate::StudySample> out;
  for (auto* r : keep) {
    auto it = images.find(r->key);
    std::string jpeg = it == images.end() ? "" : eval::thumbnail_jpeg(it->second, o.image_size);
    if (jpeg.empty()) {
      ++no_image;
      continue;
    }
    out.push_back({r->key, std::move(jpeg), use_refs ? r->refs.front() : r->org,
                   use_refs ? "reference" : "org_caption", r->pred});
  }
  info(
      "study: {} samples ({} read; skipped: {} without a model caption, {} without a human caption, {} "
      "without a "
      "decodable image)",
      out.size(), rows.size(), failed, no_human, no_image);
  if (out.empty())
    throw UsageError("no sample has a model caption, a human caption and an image",
                     no_image ? "pass the shards the captions were made from with --images" : "");
  return out;
}

void write_tokens(const std::string& path, const Json& links) {
  std::string tmp = path + ".partial";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) throw UsageError("cannot write --tokens-out " + path);
  ::chmod(tmp.c_str(), 0600);  // rater links are secrets
  std::string s = links.dump(1) + "\n";
  bool ok = std::fwrite(s.data(), 1, s.size(), f) == s.size();
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0)
    throw UsageError("cannot write --tokens-out " + path);
}

int run_serve(const ServeOptions& o) {
  std::vector<std::string> ins = o.src.pred_paths;
  ins.insert(ins.end(), o.images.begin(), o.images.end());
  ins.push_back(o.db);
  refuse_files_on_inputs(ins, {o.tokens_out});
  if (o.src.pred_paths.empty() && !fs::exists(o.db))
    throw UsageError(o.db + " does not exist", "build a study with --samples PARQUET (and --images SHARDS)");
  rate::RateStore store(o.db);
  if (store.sample_count() == 0) {
    if (o.src.pred_paths.empty())
      throw UsageError(o.db + " has no study yet", "build one with --samples PARQUET");
    store.add_samples(build_study(o), o.seed);
  } else if (!o.src.pred_paths.empty()) {
    warn("{} already holds a study of {} samples; --samples is ignored", o.db, store.sample_count());
  }
  rate::RateServer server(store, o.serve);
  int port = server.bind();
  std::string base = fmt::format("http://{}:{}", o.serve.host, port);
  auto existing = store.rater_names();
  Json links = Json::object();
  for (auto& name : o.raters) {
    if (std::find(existing.begin(), existing.end(), name) != existing.end()) {
      info("rater {} exists already (their link was shown when it was made)", name);
      continue;
    }
    try {
      links[name] = base + "/r/" + store.add_rater(name);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    std::printf("rater %s: %s\n", name.c_str(), links[name].get<std::string>().c_str());
  }
  if (!o.tokens_out.empty()) write_tokens(o.tokens_out, links);
  if (store.rater_names().empty()) warn("no raters yet: add them with --raters NAME,NAME");
  std::printf("serving %lld samples on %s (Ctrl-C to stop)\n", (long long)store.sample_count(), base.c_str());
  std::fflush(stdout);
  const std::atomic<bool>* stop = install_interrupt_handler("\nstopping the rating app\n");
  std::atomic<bool> ended{false};
  std::thread watch([&] {
    while (!stop->load() && !ended.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.stop();
  });
  server.run();
  ended = true;
  watch.join();
  info("stopped; ratings are in {}", o.db);
  return 0;
}

int run_report(const ReportOptions& o) {
  if (!fs::exists(o.db)) throw UsageError(o.db + " does not exist", "pass the --db that `rate serve` used");
  refuse_files_on_inputs({o.db}, {o.csv});
  rate::RateStore store(o.db);
  auto rows = store.ratings();
  auto t = rate::summarize(rows);
  if (!o.csv.empty()) {
    write_file_atomic(o.csv, rate::ratings_csv(rows));
    info("wrote {} ratings to {}", rows.size(), o.csv);
  }
  if (o.json)
    std::printf("%s\n", t.to_json().dump().c_str());
  else
    std::printf("%s", rate::format_tables(t).c_str());
  return 0;
}

}  // namespace

void add_rate(CLI::App& app, Action& action) {
  auto* rate =
      app.add_subcommand("rate", "Human rating study of captions (LAION-COCO's: human or AI? and 0-5)");
  rate->require_subcommand(1);

  auto o = std::make_shared<ServeOptions>();
  auto* serve =
      rate->add_subcommand("serve", "Serve the rating app; builds the study from --samples on first use");
  serve->add_option("--samples", o->src.pred_paths, "caption outputs (parquet, ...) to build the study from");
  serve->add_option("--images", o->images, "shards with the images, matched by key (default: --samples)");
  serve->add_option("--refs", o->src.refs_path, "human captions: COCO annotations .json or a table");
  serve->add_option("--refs-col", o->src.refs_col, "table refs: text or list-of-texts column")
      ->capture_default_str();
  serve->add_option("--refs-key-col", o->src.refs_key_col, "table refs: key column")->capture_default_str();
  serve->add_option("--human", o->human, "the human caption: org (alt-text), refs, or auto (refs if given)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "org", "refs"}));
  serve->add_option("--pred-col", o->src.pred_col, "model caption column")->capture_default_str();
  serve->add_option("--org-col", o->src.org_col, "alt-text column")->capture_default_str();
  serve->add_option("--key-col", o->src.key_col, "key column")->capture_default_str();
  serve->add_option("--max-samples", o->max_samples, "at most this many samples (0: all)")
      ->capture_default_str()
      ->check(int_range(0, 100000000));
  serve->add_option("--seed", o->seed, "seed of every rater's shuffle")
      ->capture_default_str()
      ->check(seed_value());
  serve->add_option("--image-size", o->image_size, "shortest edge of the images shown")
      ->capture_default_str()
      ->check(int_range(16, 4096));
  serve->add_option("--db", o->db, "the study's SQLite file")->capture_default_str();
  serve->add_option("--raters", o->raters, "new raters' names; each gets a secret link")->delimiter(',');
  serve->add_option("--tokens-out", o->tokens_out,
                    "also write the new raters' links to this JSON file (0600)");
  serve->add_option("--host", o->serve.host, "address to listen on")->capture_default_str();
  serve->add_option("--port", o->serve.port, "port (0: any free port)")
      ->capture_default_str()
      ->check(port_number());
  serve->add_option("--title", o->serve.title, "page title")->capture_default_str();
  serve->callback([o, &action] { action = [o] { return run_serve(*o); }; });

  auto r = std::make_shared<ReportOptions>();
  auto* report = rate->add_subcommand("report",
                                      "The study's tables: ratings by true and believed source, % AI judged "
                                      "human; --csv exports every rating");
  report->add_option("--db", r->db, "the study's SQLite file")->capture_default_str();
  report->add_option("--csv", r->csv, "write every rating to this CSV file");
  report->add_flag("--json", r->json, "print the tables as JSON");
  report->callback([r, &action] { action = [r] { return run_report(*r); }; });
}

}  // namespace capforge::cli
