// Image folders: every image file is a sample, with optional sidecar {stem}.txt / {stem}.json.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "capforge/image.h"
#include "core/text.h"
#include "io/readers.h"
#include "io/sample_builder.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

bool read_file(const fs::path& p, std::string& out, size_t limit, std::string& err) {
  std::error_code ec;
  auto size = fs::file_size(p, ec);
  if (ec) return err = "cannot stat " + p.string() + ": " + ec.message(), false;
  if (size > limit)
    return err = fmt::format("{} is {} bytes, above the {}-byte limit", p.string(), size, limit), false;
  std::ifstream f(p, std::ios::binary);
  if (!f) return err = "cannot open " + p.string(), false;
  out.assign(std::istreambuf_iterator<char>(f), {});
  if (f.bad()) return err = "cannot read " + p.string(), false;
  return true;
}

class FolderReader : public SampleReader {
 public:
  FolderReader(const ShardInput& in, const ReaderParams& p) : root_(in.path), params_(p) {
    std::error_code ec;
    if (!fs::is_directory(root_, ec)) throw std::runtime_error(in.path + " is not a directory");
    for (auto it = fs::recursive_directory_iterator(root_, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file()) continue;
      auto ext = it->path().extension().string();
      if (!ext.empty() && is_image_ext(ext.substr(1))) images_.push_back(it->path());
    }
    if (ec) throw std::runtime_error("cannot list " + in.path + ": " + ec.message());
    std::sort(images_.begin(), images_.end());
  }

  bool next(Sample& out) override {
    if (next_ >= images_.size()) return false;
    const fs::path& img = images_[next_];
    MemberGroup g;
    g.key = fs::relative(img, root_).replace_extension().generic_string();
    std::string err, bytes;
    bool ok = read_file(img, bytes, params_.max_member_bytes, err);
    g.members.emplace_back(ascii_lower(img.extension().string().substr(1)), std::move(bytes));
    for (const char* side : {".txt", ".json"}) {
      fs::path sp = fs::path(img).replace_extension(side);
      std::string data, serr;
      if (fs::exists(sp) && read_file(sp, data, params_.max_member_bytes, serr))
        g.members.emplace_back(side + 1, std::move(data));
    }
    out = build_sample(std::move(g), (int64_t)next_++);
    if (!ok) out.fail(Status::failed_to_read, err);
    return true;
  }

  const std::string& error() const override { return error_; }

 private:
  fs::path root_;
  ReaderParams params_;
  std::vector<fs::path> images_;
  size_t next_ = 0;
  std::string error_;
};

}  // namespace

std::unique_ptr<SampleReader> open_folder_reader(const ShardInput& in, const ReaderParams& params) {
  return std::make_unique<FolderReader>(in, params);
}

}  // namespace capforge
