// capforge download URL_LIST... --out DIR: img2dataset's job and layout on libcurl + libvips.
#include <fmt/format.h>

#include <filesystem>
#include <thread>

#include "capforge/env.h"
#include "cli/common.h"
#include "cli/out_guard.h"
#include "core/cpus.h"
#include "core/log.h"
#include "fetch/ssrf.h"
#include "io/duckdb_util.h"
#include "pipeline/download_stages.h"
#include "pipeline/output_sink.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {

struct DownloadOptions {
  std::vector<std::string> inputs, save_cols, formats = {"webdataset", "parquet"};
  std::string out, resize_mode = "keep_ratio", verify_hash_col, bbox_col;
  int samples_per_shard = 10000, threads = 0, fetch_workers = 0;
  ReaderParams reader;
  ResizeParams resize;
  fetch::FetchParams fetch;
  ProgressMode progress = ProgressMode::automatic;
};

// Splits every URL list into shards of `per` rows, numbered across all inputs.
std::vector<ShardInput> plan_shards(const DownloadOptions& o) {
  std::vector<ShardInput> lists;
  try {
    lists = discover_inputs(o.inputs, /*unique_names=*/false);
  } catch (const std::exception& e) {
    throw UsageError(e.what(),
                     "download takes URL lists: .parquet, .csv, .tsv, .jsonl or .txt (one URL per line)");
  }
  std::vector<ShardInput> shards;
  int64_t id = 0;
  for (auto& in : lists) {
    if (in.format == InputFormat::webdataset || in.format == InputFormat::folder)
      throw UsageError(in.path + " is not a URL list", "download reads parquet, csv, tsv, jsonl or txt");
    try {
      open_reader(in, o.reader);      // validates the file and the configured columns
    } catch (const ColumnError& e) {  // a named column that is not there: bad usage
      throw UsageError(e.what(),
                       "--url-col, --caption-col, --save-cols, --verify-hash-col and --bbox-col name "
                       "columns of the URL lists");
    }
    int64_t rows = count_rows(in);
    for (int64_t b = 0; b < rows; b += o.samples_per_shard) {
      ShardInput s = in;
      s.row_begin = b;
      s.row_count = std::min<int64_t>(o.samples_per_shard, rows - b);
      s.name = fmt::format("{:05d}", id++);
      shards.push_back(s);
    }
  }
  return shards;
}

int run_download(DownloadOptions& o) {
  o.resize.mode = *resize_mode_from_name(o.resize_mode);
  o.reader.keep_cols = o.save_cols;
  o.reader.require_url = true;
  if (!o.verify_hash_col.empty() &&
      std::find(o.save_cols.begin(), o.save_cols.end(), o.verify_hash_col) == o.save_cols.end())
    o.reader.keep_cols.push_back(o.verify_hash_col);
  if (!o.bbox_col.empty() &&  // read like a saved column (and written too, as DataComp keeps it)
      std::find(o.reader.keep_cols.begin(), o.reader.keep_cols.end(), o.bbox_col) == o.reader.keep_cols.end())
    o.reader.keep_cols.push_back(o.bbox_col);
  if (o.threads <= 0) o.threads = available_cpus();
  if (o.fetch_workers <= 0) o.fetch_workers = std::max(2, o.threads);
  auto all = plan_shards(o);
  std::vector<std::string> exts;
  for (auto& f : o.formats) exts.push_back(output_extension(*output_format_from_name(f)));
  refuse_outputs_on_inputs(o.inputs, discover_inputs(o.inputs, /*unique_names=*/false), o.out,
                           shard_output_files(all, o.out, exts));
  env().make_dirs(o.out);
  remove_stale_temp_files(o.out);
  int digits = 1;
  for (int64_t n = 10; n < o.samples_per_shard; n *= 10) ++digits;
  o.reader.index_digits = std::max(4, digits);
  std::vector<ShardInput> todo;
  for (auto& s : all)
    if (!fs::exists(fs::path(o.out) / (s.name + "_stats.json"))) todo.push_back(s);
  if (todo.size() < all.size()) info("skipping {} finished shard(s)", all.size() - todo.size());
  ListScheduler sched(todo);
  std::vector<std::unique_ptr<Stage>> stages;
  stages.push_back(make_fetch_stage(o.fetch, o.fetch_workers));
  stages.push_back(make_resize_stage(o.resize, o.threads, o.verify_hash_col, o.bbox_col));
  PipelineParams pp;
  pp.reader = o.reader;
  pp.progress = o.progress;
  pp.cancel = install_interrupt_handler();
  pp.max_in_flight = (size_t)(o.fetch.concurrency * o.fetch_workers * 2 + 64);
  pp.queue_capacity = (size_t)o.fetch.concurrency * 2;
  auto summary = run_pipeline(
      sched, stages,
      [&](const ShardInput& in, const SampleReader& reader) {
        WriterParams wp;
        wp.schema = OutputSchema::img2dataset;
        wp.meta_types = reader.meta_types();
        wp.include_images = false;
        std::vector<std::unique_ptr<SampleWriter>> writers;
        for (auto& f : o.formats) {
          auto fmt_out = *output_format_from_name(f);
          writers.push_back(
              open_writer(fmt_out, (fs::path(o.out) / (in.name + output_extension(fmt_out))).string(), wp));
        }
        return std::make_unique<OutputSink>(std::move(writers),
                                            (fs::path(o.out) / (in.name + "_stats.json")).string());
      },
      pp);
  remove_own_temp_dir(o.out);
  std::string statuses;
  for (auto& [k, v] : summary.status_dict)
    statuses += fmt::format("{}{} {}", statuses.empty() ? "" : ", ", k, v);
  info("downloaded {} shard(s), {} sample(s) in {:.1f}s ({:.1f}/s): {}", summary.shards_done, summary.samples,
       summary.seconds, summary.seconds > 0 ? summary.samples / summary.seconds : 0.0,
       statuses.empty() ? "nothing" : statuses);
  if (summary.cancelled) return 130;
  return summary.shards_failed ? 1 : 0;
}

}  // namespace

void add_download(CLI::App& app, Action& action) {
  auto o = std::make_shared<DownloadOptions>();
  auto* cmd = app.add_subcommand("download",
                                 "Download URL lists into img2dataset's shard layout ({shard}.tar, "
                                 "{shard}.parquet, {shard}_stats.json); finished shards are skipped");
  cmd->add_option("inputs", o->inputs, "URL lists: .parquet .csv .tsv .jsonl or .txt (one URL per line)")
      ->required();
  cmd->add_option("--out", o->out, "output directory")->required();
  cmd->add_option("--save-cols", o->save_cols, "input columns to carry into the outputs (comma-separated)")
      ->delimiter(',');
  cmd->add_option("--output-format", o->formats,
                  "webdataset and/or parquet (the parquet always lists every row)")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"webdataset", "parquet", "jsonl"}));
  cmd->add_option("--samples-per-shard", o->samples_per_shard, "rows per shard")
      ->capture_default_str()
      ->check(int_range(1, 100000000));
  const char* im = "Images";
  cmd->add_option("--image-size", o->resize.image_size, "target size")
      ->capture_default_str()
      ->check(int_range(1, 65536))
      ->group(im);
  cmd->add_option("--resize-mode", o->resize_mode, "no, keep_ratio, keep_ratio_largest, center_crop, border")
      ->capture_default_str()
      ->check(CLI::IsMember({"no", "keep_ratio", "keep_ratio_largest", "center_crop", "border"}))
      ->group(im);
  cmd->add_flag("--resize-only-if-bigger", o->resize.only_if_bigger, "never enlarge")->group(im);
  cmd->add_option("--min-image-size", o->resize.min_image_size, "refuse smaller images (0: off)")
      ->check(int_range(0, 65536))
      ->group(im);
  cmd->add_option("--max-aspect-ratio", o->resize.max_aspect_ratio, "refuse more elongated images (0: off)")
      ->check(number_range(0, 1e6))
      ->group(im);
  cmd->add_option("--encode-format", o->resize.format, "jpg, png or webp")
      ->capture_default_str()
      ->check(CLI::IsMember({"jpg", "png", "webp"}))
      ->group(im);
  cmd->add_option("--encode-quality", o->resize.quality, "jpg/webp quality")
      ->capture_default_str()
      ->check(int_range(1, 100))
      ->group(im);
  cmd->add_option("--verify-hash-col", o->verify_hash_col, "column with each image's expected sha256")
      ->group(im);
  cmd->add_option("--bbox-col", o->bbox_col,
                  "column of boxes to blur (e.g. DataComp's face_bboxes: [[x0, y0, x1, y1], ...], normalised "
                  "to the original image), blurred before encoding; a malformed value fails the sample")
      ->group(im);
  const char* net = "Fetching";
  cmd->add_option("--timeout", o->fetch.timeout, "seconds per attempt")
      ->capture_default_str()
      ->check(number_range(0, 86400, /*lo_open=*/true))
      ->group(net);
  cmd->add_option("--retries", o->fetch.retries, "retries after transient failures (with backoff)")
      ->capture_default_str()
      ->check(int_range(0, 100))
      ->group(net);
  cmd->add_option("--max-redirects", o->fetch.max_redirects)
      ->capture_default_str()
      ->check(int_range(0, 100))
      ->group(net);
  cmd->add_option("--max-bytes", o->fetch.max_bytes, "largest body accepted")
      ->capture_default_str()
      ->check(int_range(1, 1ll << 40))
      ->group(net);
  cmd->add_option("--user-agent", o->fetch.user_agent)->capture_default_str()->group(net);
  cmd->add_option("--concurrency", o->fetch.concurrency, "transfers in flight per fetch worker")
      ->capture_default_str()
      ->check(int_range(1, 4096))
      ->group(net);
  cmd->add_option("--fetch-workers", o->fetch_workers, "fetch threads (default: threads, at least 2)")
      ->check(int_range(0, 4096))
      ->group(net);
  cmd->add_option("--disallowed-header-directives", o->fetch.disallowed_directives,
                  "X-Robots-Tag directives that forbid use (comma-separated; empty string: none)")
      ->delimiter(',')
      ->capture_default_str()
      ->group(net);
  cmd->add_flag("--allow-private-networks", o->fetch.allow_private_networks,
                "let downloads reach loopback, private, link-local and metadata addresses (off: SSRF guard)")
      ->group(net);
  cmd->add_option("--allow-network", o->fetch.allow_networks,
                  "a network (CIDR) the SSRF guard lets through, e.g. an internal mirror (repeatable)")
      ->check([](const std::string& v) {
        try {
          fetch::Network::parse(v);
          return std::string();
        } catch (const std::exception& e) {
          return std::string(e.what());
        }
      })
      ->group(net);
  cmd->add_option("--threads", o->threads, "resize threads (0: the CPUs this process may use)")
      ->check(threads_count());
  add_reader_options(cmd, o->reader);
  add_progress_option(cmd, o->progress);
  cmd->callback([o, &action] { action = [o] { return run_download(*o); }; });
}

}  // namespace capforge::cli
