// Internal: one factory per input format (see open_reader in io.h).
#pragma once
#include <memory>

#include "capforge/io.h"

namespace capforge {
std::unique_ptr<SampleReader> open_tar_reader(const ShardInput& in, const ReaderParams& params);
std::unique_ptr<SampleReader> open_table_reader(const ShardInput& in, const ReaderParams& params);
std::unique_ptr<SampleReader> open_folder_reader(const ShardInput& in, const ReaderParams& params);
// TXT URL lists (one URL per line, trimmed, blank lines skipped); open_table_reader dispatches here.
std::unique_ptr<SampleReader> open_txt_reader(const ShardInput& in, const ReaderParams& params);
int64_t count_txt_urls(const std::string& path);
// DuckDB's table function over a table input, e.g. read_parquet('x.parquet').
std::string table_source_sql(const ShardInput& in);
}  // namespace capforge
