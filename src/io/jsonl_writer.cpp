// JSON Lines output: one object per sample, canonical columns first, then pass-through fields.
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "capforge/env.h"
#include "core/hash.h"
#include "io/schema.h"
#include "io/writers.h"

namespace capforge {

Json output_object(const Sample& s, const WriterParams& params, bool with_image) {
  Json o = canonical_row(s, params);
  if (with_image && params.schema == OutputSchema::samples && s.has_image) {
    o["image_base64"] = base64_encode(s.image_bytes);
    o["image_ext"] = s.image_ext;
  }
  if (!passes_through(params.schema)) return o;
  for (auto& [k, v] : s.meta.items()) {
    std::string name = meta_output_name(params, k);
    if (name.empty()) continue;
    while (o.contains(name)) name = "input_" + name;  // never drop a field that collides
    o[name] = v;
  }
  return o;
}

namespace {

class JsonlWriter : public TempFileWriter {
 public:
  JsonlWriter(std::string final_path, const WriterParams& params)
      : TempFileWriter(std::move(final_path)), params_(params) {
    output_columns(params_);  // throws on a repeated prompt name, before the file exists
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) throw std::runtime_error(fmt::format("cannot create {}: {}", tmp_, std::strerror(errno)));
  }
  ~JsonlWriter() override {
    if (f_) std::fclose(f_);
  }

  void write(const Sample& s) override {
    std::string line = output_object(s, params_, params_.include_images)
                           .dump(-1, ' ', false, Json::error_handler_t::replace);
    line += '\n';
    if (std::fwrite(line.data(), 1, line.size(), f_) != line.size())
      throw std::runtime_error(fmt::format("cannot write {}: {}", tmp_, std::strerror(errno)));
  }

  void finish() override {
    int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) throw std::runtime_error(fmt::format("cannot write {}: {}", tmp_, std::strerror(errno)));
  }

 private:
  WriterParams params_;
  FILE* f_ = nullptr;
};

}  // namespace

std::unique_ptr<SampleWriter> open_jsonl_writer(const std::string& final_path, const WriterParams& params) {
  return std::make_unique<JsonlWriter>(final_path, params);
}

}  // namespace capforge
