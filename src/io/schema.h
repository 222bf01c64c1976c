// Output layouts: the canonical columns each OutputSchema writes, as JSON rows with SQL types.
#pragma once

#include <string>
#include <vector>

#include "capforge/io.h"

namespace capforge {

struct ColumnSpec {
  std::string name;
  std::string type;  // DuckDB SQL type
};

// Canonical columns in output order (the samples schema's image column is not among them).
const std::vector<ColumnSpec>& canonical_columns(OutputSchema schema);
// The canonical values of `s` as a JSON object, keys in canonical_columns() order.
Json canonical_row(const Sample& s, const WriterParams& params);
// Pass-through column name for input column `name` in `schema` (prefixed with "input_" when it
// would shadow a canonical column).
// Empty: the field is folded into a canonical column (the samples schema's status and
// error_message) and is not written again.
std::string meta_output_name(OutputSchema schema, const std::string& name);
// Whether the schema carries the input's other columns (the reference-dataset schemas do not).
bool passes_through(OutputSchema schema);

}  // namespace capforge
