#include "cli/out_guard.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "cli/common.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {

fs::path canonical_path(const std::string& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(fs::absolute(p), ec);
  return ec ? fs::absolute(p).lexically_normal() : c;
}

struct FileId {
  dev_t dev;
  ino_t ino;
  auto operator<=>(const FileId&) const = default;
};

std::optional<FileId> file_id(const std::string& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return std::nullopt;
  return FileId{st.st_dev, st.st_ino};
}

// True if `inner` is `outer` or lies under it (both canonical).
bool within(const fs::path& inner, const fs::path& outer) {
  auto rel = inner.lexically_relative(outer);
  return !rel.empty() && *rel.begin() != "..";
}

bool is_dir(const std::string& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

}  // namespace

void refuse_outputs_on_inputs(const std::vector<std::string>& input_args,
                              const std::vector<ShardInput>& inputs, const std::string& out_dir,
                              const std::vector<std::string>& outputs) {
  const char* hint = "choose an --out directory apart from the inputs (outputs must never overwrite inputs)";
  if (!out_dir.empty()) {
    fs::path out = canonical_path(out_dir);
    auto out_id = file_id(out.string());
    for (auto& arg : input_args)
      if (is_dir(arg) && (canonical_path(arg) == out || (out_id && file_id(arg) == out_id)))
        throw UsageError(
            fmt::format("--out {} is the input folder {}: outputs would overwrite or mix with the "
                        "inputs",
                        out_dir, arg),
            hint);
    for (auto& in : inputs)
      if (in.format == InputFormat::folder && within(out, canonical_path(in.path)))
        throw UsageError(fmt::format("--out {} is inside the input image folder {}", out_dir, in.path), hint);
  }
  // Indexed: a run over many thousands of shards never compares every output with every input.
  std::set<std::string> in_paths;        // canonical input paths
  std::map<FileId, std::string> in_ids;  // device and inode -> canonical input path
  for (auto& in : inputs) {
    if (in.format == InputFormat::folder) continue;
    std::string c = canonical_path(in.path).string();
    in_paths.insert(c);
    if (auto id = file_id(in.path)) in_ids.emplace(*id, c);
  }
  for (auto& o : outputs) {
    std::string c = canonical_path(o).string();
    const std::string* hit = in_paths.count(c) ? &c : nullptr;
    if (auto id = hit ? std::nullopt : file_id(o))
      if (auto h = in_ids.find(*id); h != in_ids.end()) hit = &h->second;
    if (hit) throw UsageError(fmt::format("output {} would overwrite the input {}", o, *hit), hint);
  }
}

void refuse_files_on_inputs(const std::vector<std::string>& input_paths,
                            const std::vector<std::string>& outputs) {
  std::vector<ShardInput> inputs;
  for (auto& p : input_paths)
    if (!p.empty()) inputs.push_back({p, "", is_dir(p) ? InputFormat::folder : InputFormat::parquet});
  std::vector<std::string> outs;
  for (auto& o : outputs)
    if (!o.empty()) outs.push_back(o);
  refuse_outputs_on_inputs({}, inputs, "", outs);
}

std::vector<std::string> shard_output_files(const std::vector<ShardInput>& inputs, const std::string& out_dir,
                                            const std::vector<std::string>& extensions, bool stats) {
  std::vector<std::string> out;
  for (auto& in : inputs) {
    for (auto& ext : extensions) out.push_back((fs::path(out_dir) / (in.name + ext)).string());
    if (stats) out.push_back((fs::path(out_dir) / (in.name + "_stats.json")).string());
  }
  return out;
}

}  // namespace capforge::cli
