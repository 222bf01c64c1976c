// Shard readers and writers. Every format sits behind one of these two interfaces.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "capforge/sample.h"

namespace capforge {

enum class InputFormat { webdataset, parquet, csv, tsv, jsonl, folder, txt };
const char* format_name(InputFormat f);

// One unit of work: an input file (or image folder) and the shard name its outputs carry.
struct ShardInput {
  std::string path;
  std::string name;  // output stem, e.g. "00012" for 00012.tar
  InputFormat format = InputFormat::webdataset;
  // Table formats: a slice of the rows (downloads split URL lists into shards).
  int64_t row_begin = 0, row_count = -1;  // -1: to the end
};

// Expands CLI paths (files, directories of shards, image folders) into shards, directory contents
// sorted. Throws std::runtime_error with a hint on missing paths, unknown formats, or (with
// unique_names) two inputs that would write the same shard name.
std::vector<ShardInput> discover_inputs(const std::vector<std::string>& paths, bool unique_names = true);

struct ReaderParams {
  // Column names for table formats. Empty: auto (url|URL, caption|text|TEXT, key|uid,
  // image|jpg|png|image_bytes|image_base64).
  std::string url_col, caption_col, key_col, image_col;
  size_t max_member_bytes = 256u << 20;  // tar members larger than this are refused
  // Table formats: only these columns pass through (empty: all).
  std::vector<std::string> keep_cols;
  // > 0: keys are img2dataset's, the shard name then the index zero-padded to this many digits.
  int index_digits = 0;
  bool require_url = false;  // a table without a url column is an error (downloads)
};

// A configured column (--url-col, --caption-col, --key-col, --image-col, --save-cols) is missing or
// has a type it cannot have: bad usage, not bad data. Thrown by open_reader.
struct ColumnError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Streams the samples of one shard in order with bounded memory.
class SampleReader {
 public:
  virtual ~SampleReader() = default;
  // Fills `out` with the next sample; false at the end (or after a fatal break, see error()).
  virtual bool next(Sample& out) = 0;
  // Set when the container broke (truncated tar, unreadable file): samples before the break were
  // delivered, nothing after it.
  virtual const std::string& error() const = 0;
  // DuckDB type of each pass-through column when the format knows it (empty for tar/folder).
  virtual std::vector<std::pair<std::string, std::string>> meta_types() const { return {}; }
};

// Opens a reader; throws std::runtime_error with a clear message if the input cannot be opened
// (missing file, malformed parquet, configured column absent).
std::unique_ptr<SampleReader> open_reader(const ShardInput& in, const ReaderParams& params);

// Rows of a table input (parquet from its metadata; others by a streaming count). Throws on errors.
int64_t count_rows(const ShardInput& in);

// Output layouts: which canonical columns a command writes before the pass-through ones.
enum class OutputSchema {
  samples,      // convert: key, url, caption, image{bytes,path} + pass-through
  caption,      // caption: canonical capforge columns + pass-through
  laion_coco,   // LAION-COCO's columns (+ status, error_message)
  recap,        // Recap-DataComp-1B's columns (+ status, error_message)
  img2dataset,  // download: url, caption, key, status, ... as img2dataset (webdataset: successes only)
};
const char* schema_name(OutputSchema s);
std::optional<OutputSchema> schema_from_name(const std::string& name);

enum class OutputFormat { parquet, jsonl, webdataset };
const char* format_name(OutputFormat f);
std::optional<OutputFormat> output_format_from_name(const std::string& name);
std::string output_extension(OutputFormat f);  // ".parquet", ".jsonl", ".tar"

struct WriterParams {
  OutputSchema schema = OutputSchema::samples;
  std::vector<std::pair<std::string, std::string>> meta_types;  // from the reader, may be empty
  std::string captioner = "none";                               // recorded in the caption schema
  bool include_images = true;                                   // samples schema: embed the image bytes
  // The captioner's prompts in order ("" for an unnamed first prompt). Each named prompt gets a
  // column group (caption_NAME, candidates_NAME, clip_score_NAME, length_NAME; see schema.h):
  // prompt 0 from the sample's main fields, prompt i > 0 from Sample::more_outputs[i - 1].
  std::vector<std::string> prompt_names;
  // Safety columns (caption schemas; docs/curate-embeddings.md): punsafe DOUBLE from the NSFW
  // head (laion-coco: fills its punsafe column instead of the input's), and unsafe_concept VARCHAR
  // + unsafe_margin DOUBLE from the zero-shot concepts. An input column of that name becomes input_NAME.
  bool punsafe_column = false, concept_columns = false;
  // Model repair columns (--repair-model; docs/repair.md): the pre-repair caption and the repair
  // status of prompt 0 and of each named prompt (see schema.h).
  bool repair_columns = false;
};

// Writes one shard's output to a temporary file; commit() fsyncs and renames it into place.
// Destroying an uncommitted writer removes the temporary file.
class SampleWriter {
 public:
  virtual ~SampleWriter() = default;
  virtual void write(const Sample& s) = 0;  // in output order
  // The whole file, durable under its temp name (the slow part). Throws on I/O errors.
  virtual void prepare() = 0;
  // prepare() if not done yet, then renames into place; a second call does nothing. Throws on I/O
  // errors; the final file is then absent. A writer destroyed before commit() removes its temp file.
  virtual void commit() = 0;
  virtual const std::string& path() const = 0;  // the final path
};

std::unique_ptr<SampleWriter> open_writer(OutputFormat f, const std::string& final_path,
                                          const WriterParams& params);

}  // namespace capforge
