// The rule every writing command follows: its outputs never land on its inputs.
#pragma once

#include <string>
#include <vector>

#include "capforge/io.h"

namespace capforge::cli {

// Refuses (UsageError, exit 2) a run whose outputs could overwrite or mix with its inputs. Call it
// before anything is written. It refuses when
// - `out_dir` is a folder given as an input argument (`caption DIR --out DIR`), or is an input image
//   folder or lies inside one;
// - any path in `outputs` is an input file: the same path once canonical, or the same file
//   (device and inode: hard links, symlinks).
// `input_args` are the paths as given on the command line, `inputs` what they expanded to.
// `out_dir` may be empty (a command whose outputs are single files).
void refuse_outputs_on_inputs(const std::vector<std::string>& input_args,
                              const std::vector<ShardInput>& inputs, const std::string& out_dir,
                              const std::vector<std::string>& outputs);

// The same check for commands whose outputs are single files (a report, a CSV, a token list) and
// whose inputs are plain paths (files or folders, not expanded).
void refuse_files_on_inputs(const std::vector<std::string>& input_paths,
                            const std::vector<std::string>& outputs);

// The files a shard's run writes in `out_dir`: {name}{ext} for each extension, and {name}_stats.json.
std::vector<std::string> shard_output_files(const std::vector<ShardInput>& inputs, const std::string& out_dir,
                                            const std::vector<std::string>& extensions, bool stats = true);

}  // namespace capforge::cli
