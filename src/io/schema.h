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
// Every column the writers emit before the pass-through ones: canonical_columns(params.schema),
// then one group per NAMED prompt of params.prompt_names, in prompt order:
//   caption (capforge): caption_NAME VARCHAR, candidates_NAME (the candidates column's type),
//                       clip_score_NAME DOUBLE, length_NAME INTEGER
//   recap:              a prompt named `condition`: re_caption_condition_diverse_topk VARCHAR,
//                       re_condition_length INTEGER (Recap-DataComp-1B's names); any other:
//                       caption_NAME VARCHAR, clip_score_NAME DOUBLE, length_NAME INTEGER
//   laion_coco:         caption_NAME VARCHAR, clip_score_NAME DOUBLE, length_NAME INTEGER
//   samples, img2dataset: no prompt columns.
// Then the safety columns and, with WriterParams::repair_columns (model repair, docs/repair.md),
// re_caption_unrepaired (laion-coco: top_caption_unrepaired) VARCHAR, repair_status VARCHAR and per
// named prompt caption_unrepaired_NAME, repair_status_NAME (recap's `condition`:
// re_caption_condition_diverse_topk_unrepaired, repair_status_condition).
// Throws std::invalid_argument when two prompts would write the same column (a repeated name).
std::vector<ColumnSpec> output_columns(const WriterParams& params);
// The values of `s` as a JSON object, keys in output_columns() order. Prompt 0's group comes from
// the sample's own re_caption / candidates / re_clip_score, prompt i > 0's from
// s.more_outputs[i - 1] (by index); a prompt the sample has no output for (a failed sample) gets
// nulls and an empty candidate list. Lengths are word_count() of the caption, like re_length.
Json canonical_row(const Sample& s, const WriterParams& params);
// Pass-through column name for input column `name` in `schema` (prefixed with "input_" when it
// would shadow a canonical column).
// Empty: the field is folded into a canonical column (the samples schema's status and
// error_message) and is not written again.
std::string meta_output_name(OutputSchema schema, const std::string& name);
// The same, also prefixing "input_" when `name` would shadow one of params' prompt columns.
std::string meta_output_name(const WriterParams& params, const std::string& name);
// Whether the schema carries the input's other columns (the reference-dataset schemas do not).
bool passes_through(OutputSchema schema);

}  // namespace capforge
