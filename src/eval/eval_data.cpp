#include "eval/eval_data.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "capforge/image.h"
#include "capforge/io.h"
#include "capforge/sample.h"
#include "core/log.h"
#include "io/duckdb_util.h"
#include "io/readers.h"

namespace capforge::eval {

namespace {

std::vector<std::string> columns_of(duck::Database& db, const std::string& source) {
  std::vector<std::string> names;
  for (auto& r : db.rows("SELECT column_name FROM (DESCRIBE SELECT * FROM " + source + ")"))
    names.push_back(r[0].value_or(""));
  return names;
}

bool has(const std::vector<std::string>& cols, const std::string& c) {
  return std::find(cols.begin(), cols.end(), c) != cols.end();
}

void require(const std::vector<std::string>& cols, const std::string& c, const char* flag,
             const std::string& path) {
  if (has(cols, c)) return;
  std::string names;
  for (auto& n : cols) names += (names.empty() ? "" : ", ") + n;
  throw std::runtime_error(
      fmt::format("{} has no column '{}' ({}); its columns are: {}", path, c, flag, names));
}

std::string text_or_null(const std::vector<std::string>& cols, const std::string& c) {
  return has(cols, c) ? "CAST(" + duck::quote_ident(c) + " AS VARCHAR)" : "NULL";
}

std::optional<double> number(const std::optional<std::string>& v) {
  if (!v || v->empty()) return std::nullopt;
  try {
    return std::stod(*v);
  } catch (...) {
    return std::nullopt;
  }
}

using RefMap = std::map<std::string, std::vector<std::string>>;

RefMap coco_refs(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read references " + path);
  Json j = Json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("annotations") || !j["annotations"].is_array())
    throw std::runtime_error(path +
                             " is not COCO caption annotations (an object with an \"annotations\" list)");
  std::map<std::string, std::vector<std::string>> by_id;
  for (auto& a : j["annotations"]) {
    if (!a.is_object() || !a.contains("image_id") || !a.contains("caption") || !a["caption"].is_string())
      throw std::runtime_error(path + ": an annotation without image_id and caption text");
    by_id[a["image_id"].dump()].push_back(a["caption"].get<std::string>());
  }
  RefMap out;
  for (auto& [id, caps] : by_id) out[id.front() == '"' ? Json::parse(id).get<std::string>() : id] = caps;
  if (j.contains("images") && j["images"].is_array())
    for (auto& im : j["images"]) {
      if (!im.is_object() || !im.contains("id") || !im.contains("file_name") || !im["file_name"].is_string())
        continue;
      auto it = by_id.find(im["id"].dump());
      if (it == by_id.end()) continue;
      std::string fname = im["file_name"];
      out[fname] = it->second;
      out[std::filesystem::path(fname).stem().string()] = it->second;
    }
  return out;
}

RefMap table_refs(const std::string& path, const std::string& col, const std::string& key_col) {
  RefMap out;
  duck::Database db;
  for (auto& in : discover_inputs({path}, false)) {
    std::string source = table_source_sql(in);
    auto cols = columns_of(db, source);
    require(cols, key_col, "--refs-key-col", in.path);
    require(cols, col, "--refs-col", in.path);
    duck::Stream s(db, "SELECT CAST(" + duck::quote_ident(key_col) + " AS VARCHAR), to_json(" +
                           duck::quote_ident(col) + ")::VARCHAR FROM " + source);
    while (s.next_chunk())
      for (size_t r = 0; r < s.rows(); ++r) {
        auto k = s.str(0, r);
        auto v = s.str(1, r);
        if (!k || !v) continue;
        Json j = Json::parse(*v, nullptr, false);
        auto& refs = out[std::string(*k)];
        if (j.is_string()) refs.push_back(j.get<std::string>());
        if (j.is_array())
          for (auto& x : j)
            if (x.is_string()) refs.push_back(x.get<std::string>());
      }
  }
  return out;
}

}  // namespace

RefMap load_refs(const std::string& path, const std::string& col, const std::string& key_col) {
  bool coco = path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  return coco ? coco_refs(path) : table_refs(path, col, key_col);
}

std::vector<EvalRow> load_eval_rows(const EvalSources& src) {
  RefMap refs = src.refs_path.empty() ? RefMap{} : load_refs(src.refs_path, src.refs_col, src.refs_key_col);
  std::vector<EvalRow> rows;
  duck::Database db;
  for (auto& in : discover_inputs(src.pred_paths, false)) {
    if (in.format == InputFormat::webdataset || in.format == InputFormat::folder)
      throw std::runtime_error(
          in.path + " is not a table: --pred takes the parquet (or CSV/JSONL) a caption run wrote");
    std::string source = table_source_sql(in);
    auto cols = columns_of(db, source);
    require(cols, src.key_col, "--key-col", in.path);
    require(cols, src.pred_col, "--pred-col", in.path);
    duck::Stream s(db, "SELECT " + text_or_null(cols, src.key_col) + ", " + text_or_null(cols, src.pred_col) +
                           ", " + text_or_null(cols, src.org_col) + ", " + text_or_null(cols, "status") +
                           ", " + text_or_null(cols, "error_message") + ", " +
                           text_or_null(cols, "re_clip_score") + ", " + text_or_null(cols, "org_clip_score") +
                           ", " + (has(cols, "url") ? text_or_null(cols, "url") : text_or_null(cols, "URL")) +
                           " FROM " + source);
    while (s.next_chunk())
      for (size_t r = 0; r < s.rows(); ++r) {
        auto str = [&](size_t c) { return std::string(s.str(c, r).value_or("")); };
        auto opt = [&](size_t c) { return s.str(c, r) ? std::optional<std::string>(str(c)) : std::nullopt; };
        EvalRow row;
        row.key = str(0);
        row.pred = str(1);
        row.org = str(2);
        row.status = s.str(3, r) ? str(3) : (s.str(1, r) ? "success" : "no_caption");
        row.error = str(4);
        row.re_clip = number(opt(5));
        row.org_clip = number(opt(6));
        row.url = str(7);
        if (auto it = refs.find(row.key); it != refs.end()) row.refs = it->second;
        rows.push_back(std::move(row));
      }
  }
  return rows;
}

std::unordered_map<std::string, std::string> load_images(const std::vector<std::string>& paths,
                                                         const std::set<std::string>& wanted) {
  std::unordered_map<std::string, std::string> out;
  for (auto& in : discover_inputs(paths, false)) {
    auto reader = open_reader(in, {});
    Sample s;
    while (reader->next(s))
      if (s.has_image && wanted.count(s.key)) out[s.key] = std::move(s.image_bytes);
    if (!reader->error().empty()) warn("{}: {} (images after it are missing)", in.path, reader->error());
  }
  return out;
}

std::string thumbnail_jpeg(const std::string& bytes, int short_edge) {
  DecodeParams dp;
  dp.short_edge = short_edge;
  DecodedImage d;
  if (!decode_image(bytes, dp, d).empty()) return "";
  try {
    return encode_jpeg(d.pixels, 80);
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace capforge::eval
