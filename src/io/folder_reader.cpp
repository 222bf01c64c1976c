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

// True when `p` resolves (symlinks followed) to a path inside `root` (already canonical).
bool stays_inside(const fs::path& p, const fs::path& root) {
  std::error_code ec;
  fs::path target = fs::weakly_canonical(p, ec);
  if (ec) return false;
  auto rel = target.lexically_relative(root);
  return !rel.empty() && *rel.begin() != "..";
}

class FolderReader : public SampleReader {
 public:
  // Samples: every file (or symlink to a file) with an image extension, supported or not, sorted
  // by path. Symlinked directories are not descended into.
  FolderReader(const ShardInput& in, const ReaderParams& p) : root_(in.path), params_(p) {
    std::error_code ec;
    if (!fs::is_directory(root_, ec)) throw std::runtime_error(in.path + " is not a directory");
    canonical_root_ = fs::canonical(root_, ec);
    if (ec) throw std::runtime_error("cannot resolve " + in.path + ": " + ec.message());
    for (auto it = fs::recursive_directory_iterator(root_, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code fec;
      if (!it->is_symlink(fec) && !it->is_regular_file(fec)) continue;
      if (it->is_symlink(fec) && it->is_directory(fec)) continue;
      if (has_image_file_ext(it->path().filename().string())) images_.push_back(it->path());
    }
    if (ec) throw std::runtime_error("cannot list " + in.path + ": " + ec.message());
    std::sort(images_.begin(), images_.end());
  }

  // Key: the path relative to the folder, from the file's (or link's) own name, extension cut.
  // A symlink that resolves outside the folder is not followed: the image fails with
  // failed_to_read, a sidecar is skipped with a note.
  bool next(Sample& out) override {
    if (next_ >= images_.size()) return false;
    const fs::path& img = images_[next_];
    MemberGroup g;
    g.key = img.lexically_relative(root_).replace_extension().generic_string();
    std::string err, bytes, notes;
    bool ok =
        stays_inside(img, canonical_root_)
            ? read_file(img, bytes, params_.max_member_bytes, err)
            : (err = img.string() + " is a symlink to a file outside the image folder; not followed", false);
    g.members.emplace_back(ascii_lower(img.extension().string().substr(1)), std::move(bytes));
    for (const char* side : {".txt", ".json"}) {
      fs::path sp = fs::path(img).replace_extension(side);
      std::error_code ec;
      if (!fs::exists(fs::symlink_status(sp, ec))) continue;
      std::string data, serr;
      if (!stays_inside(sp, canonical_root_))
        notes +=
            (notes.empty() ? "" : "; ") + sp.string() + " is a symlink to outside the image folder; not read";
      else if (read_file(sp, data, params_.max_member_bytes, serr))
        g.members.emplace_back(side + 1, std::move(data));
      else
        notes += (notes.empty() ? "" : "; ") + serr;
    }
    out = build_sample(std::move(g), (int64_t)next_++);
    if (!ok) out.fail(Status::failed_to_read, err);
    if (!notes.empty()) out.note(notes);
    return true;
  }

  const std::string& error() const override { return error_; }

 private:
  fs::path root_, canonical_root_;
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
