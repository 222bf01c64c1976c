#include "curate/embeddings.h"

#include <fmt/format.h>

#include <filesystem>
#include <stdexcept>

#include "capforge/env.h"
#include "io/duckdb_util.h"
#include "io/npy_writer.h"

namespace fs = std::filesystem;

namespace capforge {

std::vector<std::string> embedding_set_paths(const std::string& out_dir, const std::string& shard) {
  fs::path o(out_dir);
  return {(o / "img_emb" / ("img_emb_" + shard + ".npy")).string(),
          (o / "text_emb" / ("text_emb_" + shard + ".npy")).string(),
          (o / "metadata" / ("metadata_" + shard + ".parquet")).string()};
}

namespace {

class EmbeddingWriter : public SampleWriter {
 public:
  explicit EmbeddingWriter(const EmbeddingSetParams& p) : p_(p), db_(1, "512MB") {
    if (p_.dim <= 0) throw std::invalid_argument("embedding writer: no embedding dimension");
    final_ = embedding_set_paths(p_.out_dir, p_.shard);
    for (auto& f : final_) {
      env().make_dirs(fs::path(f).parent_path().string());
      // temp files in OUT's own temp folder (same file system: the rename is atomic), where a rerun's
      // remove_stale_temp_files(OUT) finds what a killed run left
      tmp_.push_back(temp_path_for((fs::path(p_.out_dir) / fs::path(f).filename()).string()));
    }
    db_.exec("SET temp_directory = " + duck::quote_string(tmp_[2] + ".spill"));
    db_.exec(
        "CREATE TABLE m (idx BIGINT, key VARCHAR, url VARCHAR, caption VARCHAR, punsafe DOUBLE, "
        "unsafe_concept VARCHAR, unsafe_margin DOUBLE)");
    if (duckdb_appender_create(db_.conn(), nullptr, "m", &app_) != DuckDBSuccess)
      throw std::runtime_error("cannot create DuckDB appender");
  }

  ~EmbeddingWriter() override {
    if (app_) duckdb_appender_destroy(&app_);
    std::error_code ec;
    fs::remove_all(tmp_[2] + ".spill", ec);
    if (!committed_)
      for (auto& t : tmp_) env().remove_file(t);
  }

  void write(const Sample& s) override {
    // a filtered row (e.g. --filter-unsafe) stays out of the set: an index built from it would
    // otherwise hold images the user filtered out
    if (s.img_emb.empty() || s.status == Status::filtered) return;
    const size_t dim = (size_t)p_.dim;
    if (s.img_emb.size() != dim || (!s.text_emb.empty() && s.text_emb.size() != dim))
      throw std::runtime_error(fmt::format("{}: sample {} has a {}-value embedding; the set holds {}",
                                           final_[0], s.key, s.img_emb.size(), dim));
    for (float v : s.img_emb) img_.push_back(float_to_half(v));
    for (size_t k = 0; k < dim; ++k) text_.push_back(s.text_emb.empty() ? 0 : float_to_half(s.text_emb[k]));
    auto str = [&](const std::string& v) {
      return duckdb_append_varchar_length(app_, v.data(), v.size()) == DuckDBSuccess;
    };
    auto null = [&] { return duckdb_append_null(app_) == DuckDBSuccess; };
    auto num = [&](const std::optional<double>& v) {
      return v ? duckdb_append_double(app_, *v) == DuckDBSuccess : null();
    };
    bool ok = duckdb_appender_begin_row(app_) == DuckDBSuccess &&
              duckdb_append_int64(app_, rows_) == DuckDBSuccess && str(s.key) &&
              (s.url.empty() ? null() : str(s.url)) && (s.caption ? str(*s.caption) : null()) &&
              num(s.punsafe) && (s.unsafe_concept ? str(*s.unsafe_concept) : null()) &&
              num(s.unsafe_margin) && duckdb_appender_end_row(app_) == DuckDBSuccess;
    if (!ok) {
      const char* e = duckdb_appender_error(app_);
      throw std::runtime_error(fmt::format("cannot buffer row for {}: {}", final_[2], e ? e : "unknown"));
    }
    ++rows_;
  }

  void prepare() override {
    if (prepared_) return;
    env().write_file(tmp_[0], npy_f16_bytes(img_, (size_t)rows_, (size_t)p_.dim));
    env().write_file(tmp_[1], npy_f16_bytes(text_, (size_t)rows_, (size_t)p_.dim));
    if (duckdb_appender_flush(app_) != DuckDBSuccess) {
      const char* e = duckdb_appender_error(app_);
      throw std::runtime_error(fmt::format("cannot buffer rows for {}: {}", final_[2], e ? e : "unknown"));
    }
    std::string cols = "key, url, caption";
    if (p_.punsafe_column) cols += ", punsafe";
    if (p_.concept_columns) cols += ", unsafe_concept, unsafe_margin";
    try {
      db_.exec(fmt::format("COPY (SELECT {} FROM m ORDER BY idx) TO {} (FORMAT parquet, COMPRESSION zstd)",
                           cols, duck::quote_string(tmp_[2])));
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("cannot write {}: {}", final_[2], e.what()));
    }
    for (auto& t : tmp_) env().fsync_file(t);
    img_.clear(), img_.shrink_to_fit(), text_.clear(), text_.shrink_to_fit();
    prepared_ = true;
  }

  // The embeddings first, the metadata last: a set with its metadata file has its embeddings.
  void commit() override {
    if (committed_) return;
    prepare();
    for (; published_ < 3; ++published_) publish_file(tmp_[published_], final_[published_]);
    committed_ = true;
  }

  const std::string& path() const override { return final_[2]; }

 private:
  EmbeddingSetParams p_;
  std::vector<std::string> final_, tmp_;
  duck::Database db_;
  duckdb_appender app_ = nullptr;
  int64_t rows_ = 0;
  std::vector<uint16_t> img_, text_;
  bool prepared_ = false, committed_ = false;
  int published_ = 0;  // files renamed so far (a retried commit goes on from there)
};

}  // namespace

std::unique_ptr<SampleWriter> open_embedding_writer(const EmbeddingSetParams& params) {
  return std::make_unique<EmbeddingWriter>(params);
}

}  // namespace capforge
