#include "io/writers.h"

#include "capforge/env.h"

#include <cstring>
#include <stdexcept>

namespace capforge {

const char* format_name(OutputFormat f) {
  switch (f) {
    case OutputFormat::parquet:
      return "parquet";
    case OutputFormat::jsonl:
      return "jsonl";
    case OutputFormat::webdataset:
      return "webdataset";
  }
  return "?";
}

std::optional<OutputFormat> output_format_from_name(const std::string& name) {
  if (name == "parquet") return OutputFormat::parquet;
  if (name == "jsonl") return OutputFormat::jsonl;
  if (name == "webdataset" || name == "tar" || name == "wds") return OutputFormat::webdataset;
  return std::nullopt;
}

std::string output_extension(OutputFormat f) {
  switch (f) {
    case OutputFormat::parquet:
      return ".parquet";
    case OutputFormat::jsonl:
      return ".jsonl";
    case OutputFormat::webdataset:
      return ".tar";
  }
  return "";
}

std::unique_ptr<SampleWriter> open_writer(OutputFormat f, const std::string& final_path,
                                          const WriterParams& params) {
  switch (f) {
    case OutputFormat::parquet:
      return open_parquet_writer(final_path, params);
    case OutputFormat::jsonl:
      return open_jsonl_writer(final_path, params);
    case OutputFormat::webdataset:
      return open_tar_writer(final_path, params);
  }
  throw std::logic_error("unknown output format");
}

std::string with_os_error(const char* message, int os_errno) {
  std::string m = message && *message ? message : "unknown error";
  if (os_errno <= 0) return m;
  std::string os = std::strerror(os_errno);
  return m.find(os) == std::string::npos ? m + ": " + os : m;
}

TempFileWriter::TempFileWriter(std::string final_path)
    : final_(std::move(final_path)), tmp_(temp_path_for(final_)) {}

TempFileWriter::~TempFileWriter() {
  if (!committed_) env().remove_file(tmp_);
}

void TempFileWriter::prepare() {
  if (prepared_) return;
  finish();
  env().fsync_file(tmp_);
  prepared_ = true;
}

void TempFileWriter::commit() {
  if (committed_) return;
  prepare();
  publish_file(tmp_, final_);
  committed_ = true;
}

}  // namespace capforge
