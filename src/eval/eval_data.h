// What `capforge eval` scores: predictions (a caption run's output, or any table with a key and a
// caption column) joined by key with reference captions (COCO annotations or a table column).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace capforge::eval {

struct EvalRow {
  std::string key, url, pred, org, status, error;
  std::optional<double> re_clip, org_clip;  // CLIP x 100, from the table or computed
  std::vector<std::string> refs;
};

struct EvalSources {
  std::vector<std::string> pred_paths;  // files or directories of parquet / CSV / JSONL
  std::string pred_col = "re_caption", org_col = "org_caption", key_col = "key";
  std::string refs_path;             // COCO annotations .json, or a table
  std::string refs_col = "caption";  // table refs: a text column or a list of texts
  std::string refs_key_col = "key";
};

// Reference captions by key, from COCO annotations (.json; an image matches its id, file_name and
// file_name without extension) or a table's text or list-of-texts column.
std::map<std::string, std::vector<std::string>> load_refs(const std::string& path, const std::string& col,
                                                          const std::string& key_col);

// Rows of the prediction tables in order, each with its references (empty when none match).
// COCO images match a key equal to their id, file_name or file_name without extension.
// Throws std::runtime_error naming the file and the missing column, or the malformed JSON.
std::vector<EvalRow> load_eval_rows(const EvalSources& src);

// Image bytes of the samples in `paths` (shards, tables, folders) whose key is wanted. A broken
// shard is warned about; the images read before the break are kept.
std::unordered_map<std::string, std::string> load_images(const std::vector<std::string>& paths,
                                                         const std::set<std::string>& wanted);

// A JPEG re-encoding with the given shortest edge (EXIF applied, metadata stripped); "" when the
// bytes do not decode.
std::string thumbnail_jpeg(const std::string& bytes, int short_edge);

}  // namespace capforge::eval
