// Parquet output via DuckDB: rows are appended to an in-memory table (spilling to disk when
// large) and COPY'd to a zstd parquet file in input order on commit.
#include <fmt/format.h>

#include <filesystem>
#include <set>
#include <stdexcept>

#include "capforge/env.h"
#include "io/duckdb_util.h"
#include "io/schema.h"
#include "io/writers.h"

namespace capforge {

namespace {

bool is_nested_type(const std::string& t) {
  return t.find('(') != std::string::npos || (!t.empty() && t.back() == ']');
}

std::string json_path(const std::string& key) {
  std::string k;
  for (char c : key) {
    if (c == '"' || c == '\\') k += '\\';
    k += c;
  }
  return duck::quote_string("$.\"" + k + "\"");
}

// Select expression for column `name` of JSON column `src` as SQL `type`.
std::string typed_extract(const std::string& src, const std::string& name, const std::string& type) {
  if (type == "JSON") return fmt::format("json_extract({}, {})", src, json_path(name));
  if (is_nested_type(type))
    return fmt::format("CAST(json_extract({}, {}) AS {})", src, json_path(name), type);
  return fmt::format("CAST(json_extract_string({}, {}) AS {})", src, json_path(name), type);
}

// json_group_structure says "NULL" where every value was null (those become VARCHAR) and
// UBIGINT for non-negative integers (BIGINT reads better everywhere).
void normalize_types(Json& structure) {
  if (structure.is_string()) {
    if (structure == "NULL")
      structure = "VARCHAR";
    else if (structure == "UBIGINT")
      structure = "BIGINT";
  } else if (structure.is_object() || structure.is_array()) {
    for (auto& v : structure) normalize_types(v);
  }
}

std::string structure_to_type(const Json& s) {
  if (s.is_string()) return s.get<std::string>();
  if (s.is_array()) return s.empty() ? "VARCHAR[]" : structure_to_type(s[0]) + "[]";
  std::string out = "STRUCT(";
  bool first = true;
  for (auto& [k, v] : s.items()) {
    out += (first ? "" : ", ") + duck::quote_ident(k) + " " + structure_to_type(v);
    first = false;
  }
  return out + ")";
}

class ParquetWriter : public TempFileWriter {
 public:
  ParquetWriter(std::string final_path, const WriterParams& params)
      : TempFileWriter(std::move(final_path)),
        params_(params),
        columns_(output_columns(params)),  // throws on a repeated prompt name, before any row
        db_(2, "1GB") {
    db_.exec("SET temp_directory = " + duck::quote_string(tmp_ + ".spill"));
    db_.exec("CREATE TABLE rows (idx BIGINT, c VARCHAR, m VARCHAR, img BLOB, img_path VARCHAR)");
    if (duckdb_appender_create(db_.conn(), nullptr, "rows", &app_) != DuckDBSuccess)
      throw std::runtime_error("cannot create DuckDB appender");
  }

  ~ParquetWriter() override {
    if (app_) duckdb_appender_destroy(&app_);
    std::error_code ec;
    std::filesystem::remove_all(tmp_ + ".spill", ec);
  }

  void write(const Sample& s) override {
    std::string c = canonical_row(s, params_).dump(-1, ' ', false, Json::error_handler_t::replace);
    std::string m = s.meta.dump(-1, ' ', false, Json::error_handler_t::replace);
    for (auto& [k, v] : s.meta.items()) meta_keys_.insert(k);
    bool ok = duckdb_appender_begin_row(app_) == DuckDBSuccess &&
              duckdb_append_int64(app_, rows_++) == DuckDBSuccess &&
              duckdb_append_varchar_length(app_, c.data(), c.size()) == DuckDBSuccess &&
              duckdb_append_varchar_length(app_, m.data(), m.size()) == DuckDBSuccess;
    bool with_image = params_.schema == OutputSchema::samples && params_.include_images && s.has_image;
    if (ok && with_image) {
      std::string path = s.key + "." + (s.image_ext.empty() ? "bin" : s.image_ext);
      ok = duckdb_append_blob(app_, s.image_bytes.data(), s.image_bytes.size()) == DuckDBSuccess &&
           duckdb_append_varchar_length(app_, path.data(), path.size()) == DuckDBSuccess;
    } else if (ok) {
      ok = duckdb_append_null(app_) == DuckDBSuccess && duckdb_append_null(app_) == DuckDBSuccess;
    }
    if (!ok || duckdb_appender_end_row(app_) != DuckDBSuccess) {
      const char* e = duckdb_appender_error(app_);
      throw std::runtime_error(fmt::format("cannot buffer row for {}: {}", final_, e ? e : "unknown"));
    }
  }

  void finish() override {
    if (duckdb_appender_flush(app_) != DuckDBSuccess) {
      const char* e = duckdb_appender_error(app_);
      throw std::runtime_error(fmt::format("cannot buffer rows for {}: {}", final_, e ? e : "unknown"));
    }
    std::vector<std::string> cols;
    std::set<std::string> used;
    for (auto& c : columns_) {
      cols.push_back(typed_extract("c", c.name, c.type) + " AS " + duck::quote_ident(c.name));
      used.insert(c.name);
    }
    if (params_.schema == OutputSchema::samples && params_.include_images) {
      cols.push_back(
          "CASE WHEN img IS NULL THEN NULL ELSE struct_pack(bytes := img, path := img_path) END AS image");
      used.insert("image");
    }
    for (auto& [name, type] : passes_through(params_.schema) ? meta_columns() : decltype(meta_columns()){}) {
      std::string out = meta_output_name(params_, name);
      if (out.empty()) continue;
      while (!used.insert(out).second) out = "input_" + out;  // never drop a column that collides
      cols.push_back(typed_extract("m", name, type) + " AS " + duck::quote_ident(out));
    }
    std::string select;
    for (auto& c : cols) select += (select.empty() ? "" : ", ") + c;
    try {
      db_.exec(fmt::format("COPY (SELECT {} FROM rows ORDER BY idx) TO {} (FORMAT parquet, COMPRESSION zstd)",
                           select, duck::quote_string(tmp_)));
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("cannot write {}: {}", final_, e.what()));
    }
  }

 private:
  // Pass-through columns with their types: the reader's when it knew them, else inferred.
  std::vector<std::pair<std::string, std::string>> meta_columns() {
    if (!params_.meta_types.empty()) return params_.meta_types;
    std::vector<std::pair<std::string, std::string>> out;
    if (meta_keys_.empty()) return out;
    auto rows = db_.rows("SELECT json_group_structure(m::JSON) FROM rows");
    Json structure = rows.empty() || !rows[0][0] ? Json::object() : Json::parse(*rows[0][0], nullptr, false);
    if (!structure.is_object()) return out;
    normalize_types(structure);
    for (auto& [k, v] : structure.items())
      out.emplace_back(k, v.is_string() ? v.get<std::string>() : structure_to_type(v));
    return out;
  }

  WriterParams params_;
  std::vector<ColumnSpec> columns_;  // output_columns(params_)
  duck::Database db_;
  duckdb_appender app_ = nullptr;
  int64_t rows_ = 0;
  std::set<std::string> meta_keys_;
};

}  // namespace

std::unique_ptr<SampleWriter> open_parquet_writer(const std::string& final_path, const WriterParams& params) {
  return std::make_unique<ParquetWriter>(final_path, params);
}

}  // namespace capforge
