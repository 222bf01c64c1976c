// Internal: one factory per output format (see open_writer in io.h).
#pragma once
#include <memory>
#include <string>

#include "capforge/io.h"

namespace capforge {
std::unique_ptr<SampleWriter> open_parquet_writer(const std::string& final_path, const WriterParams& params);
std::unique_ptr<SampleWriter> open_jsonl_writer(const std::string& final_path, const WriterParams& params);
std::unique_ptr<SampleWriter> open_tar_writer(const std::string& final_path, const WriterParams& params);

// A writer that builds its file under a temp name beside the final path and renames it into
// place. Subclasses write to tmp_ and implement finish() (complete and close the temp file).
// prepare() finishes and fsyncs once; commit() prepares if needed and renames once (a second call
// does nothing, so a job store may retry a publish). Never committed: the temp file is removed.
class TempFileWriter : public SampleWriter {
 public:
  explicit TempFileWriter(std::string final_path);
  ~TempFileWriter() override;
  void prepare() final;
  void commit() final;
  const std::string& path() const final { return final_; }

 protected:
  virtual void finish() = 0;
  const std::string final_, tmp_;

 private:
  bool prepared_ = false, committed_ = false;
};

// A library's error message with the OS error behind it: "Write error: No space left on device"
// (libarchive says only "Write error"). `os_errno` 0: the message alone.
std::string with_os_error(const char* message, int os_errno);

// The JSON object a text format stores per sample: canonical columns then pass-through fields.
// With `with_image`, the samples schema adds image_base64 and image_ext.
Json output_object(const Sample& s, const WriterParams& params, bool with_image);
}  // namespace capforge
