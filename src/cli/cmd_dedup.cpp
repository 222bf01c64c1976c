// capforge dedup OUT... --out DIR: exact and near duplicates across output sets (docs/dedup.md).
#include <fmt/format.h>

#include <filesystem>

#include "cli/common.h"
#include "cli/out_guard.h"
#include "core/log.h"
#include "curate/dedup.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {
struct DedupOptions {
  std::vector<std::string> inputs, by = {"sha256", "url"};
  curate::DedupParams params;
};

const char* kDedupHint =
    "dedup takes output sets (the --out folders of caption or download), e.g. `capforge dedup runs/a runs/b "
    "--by sha256,url,phash --out runs/dedup`";

int run_dedup_cmd(DedupOptions& o) {
  auto& p = o.params;
  p.inputs = o.inputs;
  p.methods.clear();
  for (auto& b : o.by) {
    curate::DedupMethod m;
    if (!curate::method_from_name(b, m)) throw UsageError("unknown --by method " + b, kDedupHint);
    if (std::find(p.methods.begin(), p.methods.end(), m) == p.methods.end()) p.methods.push_back(m);
  }
  std::vector<curate::OutputSet> sets;
  try {
    sets = curate::discover_sets(o.inputs);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what(), kDedupHint);
  }
  // Outputs never land on inputs: --out is no input set and lies in none, and no file written is an
  // input file (the sets are listed as folders, their shards, tars and embedding files as files).
  std::vector<ShardInput> inputs;
  std::vector<std::string> outputs = {(fs::path(p.out) / "duplicates" / "duplicates.parquet").string(),
                                      (fs::path(p.out) / "dedup_summary.json").string()};
  for (auto& s : sets) {
    inputs.push_back({s.dir, "", InputFormat::folder});
    std::error_code ec;
    for (auto& e : fs::recursive_directory_iterator(s.dir, ec))
      if (e.is_regular_file()) inputs.push_back({e.path().string(), "", InputFormat::parquet});
    for (auto& shard : s.shards)
      outputs.push_back((fs::path(p.out) / s.out_subdir / fs::path(shard).filename()).string());
  }
  refuse_outputs_on_inputs(o.inputs, inputs, p.out, outputs);
  p.cancel =
      install_interrupt_handler("\ninterrupted: stopping; image hashes done so far are kept for a rerun\n");
  curate::DedupSummary sum;
  try {
    sum = curate::run_dedup(p, sets);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what(), kDedupHint);
  } catch (const std::exception& e) {
    if (p.cancel->load()) return 130;  // hashes of finished shards stay cached
    throw;
  }
  info("dedup: {} row(s), {} group(s), {} duplicate(s) marked in {:.1f}s; wrote {} file(s) in {}", sum.rows,
       sum.groups, sum.duplicates, sum.seconds, sum.written.size(), p.out);
  for (auto& [m, n] : sum.rows_by_method) info("dedup:   {} duplicate(s) by {}", n, m);
  return 0;
}
}  // namespace

void add_dedup(CLI::App& app, Action& action) {
  auto o = std::make_shared<DedupOptions>();
  auto* cmd = app.add_subcommand(
      "dedup",
      "Find exact (sha256, normalised URL) and near (pHash, CLIP embedding) duplicates across output sets; "
      "writes duplicates/duplicates.parquet and each shard again with a dup_of column (docs/dedup.md)");
  cmd->add_option("inputs", o->inputs,
                  "output sets: folders of {shard}.parquet (+ {shard}.tar, img_emb/, metadata/)")
      ->required();
  cmd->add_option("--out", o->params.out, "output directory")->required();
  cmd->add_option("--by", o->by, "methods: sha256, url, phash, embedding (comma-separated)")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"sha256", "url", "phash", "embedding"}));
  cmd->add_option("--images", o->params.image_dirs,
                  "pHash: folders holding the shards' images as {shard}.tar, when they are not beside the "
                  "parquet (e.g. the input shards of a caption run)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--phash-distance", o->params.phash_bits,
                  "pHash: images within this many differing bits (of 64) are duplicates")
      ->capture_default_str()
      ->check(int_range(0, 15));
  auto& e = o->params.embedding;
  cmd->add_option("--min-cosine", e.min_cosine,
                  "embedding: cosine similarity at or above which rows are duplicates")
      ->capture_default_str()
      ->check(number_range(0, 1, true));
  cmd->add_option("--ivf-above", e.ivf_above,
                  "embedding: exact search up to this many rows, an IVF index above")
      ->capture_default_str()
      ->check(int_range(1, 1LL << 40));
  cmd->add_option("--nlist", e.nlist, "embedding: IVF lists (0: sqrt of the rows)")
      ->capture_default_str()
      ->check(int_range(0, 1 << 24));
  cmd->add_option("--nprobe", e.nprobe, "embedding: IVF lists searched per row")
      ->capture_default_str()
      ->check(int_range(1, 1 << 24));
  cmd->add_option("--threads", o->params.threads,
                  "threads for hashing, DuckDB and Faiss (0: the CPUs this process may use)")
      ->capture_default_str()
      ->check(threads_count());
  cmd->add_option("--memory-limit", o->params.memory_limit,
                  "DuckDB's memory limit; it spills to --out/.dedup/tmp")
      ->capture_default_str();
  cmd->callback([o, &action] { action = [o] { return run_dedup_cmd(*o); }; });
}

}  // namespace capforge::cli
