// Input discovery and the reader factory.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "capforge/image.h"
#include "capforge/io.h"
#include "core/text.h"
#include "io/keys.h"
#include "io/readers.h"

namespace fs = std::filesystem;

namespace capforge {

const char* format_name(InputFormat f) {
  switch (f) {
    case InputFormat::webdataset:
      return "webdataset";
    case InputFormat::parquet:
      return "parquet";
    case InputFormat::csv:
      return "csv";
    case InputFormat::tsv:
      return "tsv";
    case InputFormat::jsonl:
      return "jsonl";
    case InputFormat::folder:
      return "folder";
    case InputFormat::txt:
      return "txt";
  }
  return "?";
}

namespace {

std::optional<InputFormat> format_of_file(const std::string& path) {
  std::string p = ascii_lower(path);
  auto ends = [&](const char* s) {
    std::string e(s);
    return p.size() >= e.size() && p.compare(p.size() - e.size(), e.size(), e) == 0;
  };
  for (auto [suffix, fmt] :
       std::initializer_list<std::pair<const char*, InputFormat>>{{".tar", InputFormat::webdataset},
                                                                  {".tar.gz", InputFormat::webdataset},
                                                                  {".tgz", InputFormat::webdataset},
                                                                  {".tar.zst", InputFormat::webdataset},
                                                                  {".parquet", InputFormat::parquet},
                                                                  {".csv", InputFormat::csv},
                                                                  {".csv.gz", InputFormat::csv},
                                                                  {".tsv", InputFormat::tsv},
                                                                  {".tsv.gz", InputFormat::tsv},
                                                                  {".jsonl", InputFormat::jsonl},
                                                                  {".ndjson", InputFormat::jsonl},
                                                                  {".jsonl.gz", InputFormat::jsonl},
                                                                  {".txt", InputFormat::txt}})
    if (ends(suffix)) return fmt;
  return std::nullopt;
}

// The first file found under `dir` (recursively) whose extension is an image's, supported or
// not; "" if none.
// The first file with an image extension (supported or refused) under `dir`: at any depth, or
// only at its top level.
std::string first_image_file(const std::string& dir, bool top_level_only = false) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (top_level_only && it->is_directory(ec)) it.disable_recursion_pending();
    if (!it->is_directory(ec) && has_image_file_ext(it->path().filename().string()))
      return it->path().string();
  }
  return "";
}

// Gives every sample a safe key, unique within the shard (see io/keys.h), whatever the format.
class KeyedReader : public SampleReader {
 public:
  explicit KeyedReader(std::unique_ptr<SampleReader> inner) : inner_(std::move(inner)) {}
  bool next(Sample& out) override {
    if (!inner_->next(out)) return false;
    finalize_key(out, keys_);
    return true;
  }
  const std::string& error() const override { return inner_->error(); }
  std::vector<std::pair<std::string, std::string>> meta_types() const override {
    return inner_->meta_types();
  }

 private:
  std::unique_ptr<SampleReader> inner_;
  KeyDeduper keys_;
};

std::unique_ptr<SampleReader> open_format_reader(const ShardInput& in, const ReaderParams& params) {
  switch (in.format) {
    case InputFormat::webdataset:
      return open_tar_reader(in, params);
    case InputFormat::folder:
      return open_folder_reader(in, params);
    default:
      return open_table_reader(in, params);
  }
}

}  // namespace

std::vector<ShardInput> discover_inputs(const std::vector<std::string>& paths, bool unique_names) {
  std::vector<ShardInput> out;
  for (const auto& path : paths) {
    std::error_code ec;
    auto st = fs::status(path, ec);
    if (ec || !fs::exists(st)) throw std::runtime_error(fmt::format("input {} does not exist", path));
    if (fs::is_directory(st)) {
      // A directory whose top level holds container shards (.tar, .parquet, ...) is a shard
      // directory: those shards are the inputs (images in its subfolders are not samples). Any
      // other directory holding an image file at any depth is an image folder (its .txt/.json
      // files are sidecars); else its top-level TXT URL lists are the inputs. Images next to
      // container shards at the top level are refused as ambiguous.
      std::vector<ShardInput> shards;
      bool containers = false;
      for (auto& e : fs::directory_iterator(path, ec)) {
        if (!e.is_regular_file()) continue;
        if (auto f = format_of_file(e.path().string())) {
          shards.push_back({e.path().string(), "", *f});
          containers |= *f != InputFormat::txt;
        }
      }
      std::string image = first_image_file(path, /*top_level_only=*/containers);
      if (containers && !image.empty())
        throw std::runtime_error(
            fmt::format("directory {} holds both images (e.g. {}) and shard files (e.g. {}); pass the shard "
                        "files or an image folder, not a mix",
                        path, image, std::find_if(shards.begin(), shards.end(), [](auto& s) {
                                       return s.format != InputFormat::txt;
                                     })->path));
      if (!containers && (!image.empty() || shards.empty())) {
        out.push_back({path, "", InputFormat::folder});
      } else {
        std::sort(shards.begin(), shards.end(), [](auto& a, auto& b) { return a.path < b.path; });
        out.insert(out.end(), shards.begin(), shards.end());
      }
      continue;
    }
    auto f = format_of_file(path);
    if (!f)
      throw std::runtime_error(fmt::format(
          "cannot tell the format of {}: expected .tar, .parquet, .csv, .tsv, .jsonl or an image folder",
          path));
    out.push_back({path, "", *f});
  }
  std::map<std::string, std::string> seen;
  for (auto& s : out) {
    s.name = path_stem(s.path);
    if (s.name.empty() || s.name == "." || s.name == "..") s.name = "shard";
    auto [it, fresh] = seen.emplace(s.name, s.path);
    if (!fresh && unique_names)
      throw std::runtime_error(
          fmt::format("inputs {} and {} would both write shard '{}'; rename one or run them "
                      "into different --out directories",
                      it->second, s.path, s.name));
  }
  return out;
}

std::unique_ptr<SampleReader> open_reader(const ShardInput& in, const ReaderParams& params) {
  return std::make_unique<KeyedReader>(open_format_reader(in, params));
}

}  // namespace capforge
