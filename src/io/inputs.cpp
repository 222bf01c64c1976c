// Input discovery and the reader factory.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "capforge/image.h"
#include "capforge/io.h"
#include "core/text.h"
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

}  // namespace

std::vector<ShardInput> discover_inputs(const std::vector<std::string>& paths, bool unique_names) {
  std::vector<ShardInput> out;
  for (const auto& path : paths) {
    std::error_code ec;
    auto st = fs::status(path, ec);
    if (ec || !fs::exists(st)) throw std::runtime_error(fmt::format("input {} does not exist", path));
    if (fs::is_directory(st)) {
      std::vector<ShardInput> shards;
      for (auto& e : fs::directory_iterator(path, ec)) {
        if (!e.is_regular_file()) continue;
        if (auto f = format_of_file(e.path().string())) shards.push_back({e.path().string(), "", *f});
      }
      if (!shards.empty()) {
        std::sort(shards.begin(), shards.end(), [](auto& a, auto& b) { return a.path < b.path; });
        out.insert(out.end(), shards.begin(), shards.end());
      } else {  // no shard files: an image folder (images may be nested)
        out.push_back({path, "", InputFormat::folder});
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
  switch (in.format) {
    case InputFormat::webdataset:
      return open_tar_reader(in, params);
    case InputFormat::folder:
      return open_folder_reader(in, params);
    default:
      return open_table_reader(in, params);
  }
}

}  // namespace capforge
