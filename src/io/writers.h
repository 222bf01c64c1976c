// Internal: one factory per output format (see open_writer in io.h).
#pragma once
#include <memory>
#include <string>

#include "capforge/io.h"

namespace capforge {
std::unique_ptr<SampleWriter> open_parquet_writer(const std::string& final_path, const WriterParams& params);
std::unique_ptr<SampleWriter> open_jsonl_writer(const std::string& final_path, const WriterParams& params);
std::unique_ptr<SampleWriter> open_tar_writer(const std::string& final_path, const WriterParams& params);

// The JSON object a text format stores per sample: canonical columns then pass-through fields.
// With `with_image`, the samples schema adds image_base64 and image_ext.
Json output_object(const Sample& s, const WriterParams& params, bool with_image);
}  // namespace capforge
