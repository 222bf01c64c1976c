// Turning a candidate's tokens and text into a clean caption: loop detection, cleanup.
#pragma once

#include <string>
#include <vector>

namespace capforge::vlm {

// If the tokens end in an n-gram (n <= max_n) repeated `repeats` times in a row, returns how many
// tokens to keep (one copy of it); else -1.
int loop_cut(const std::vector<int>& tokens, int repeats, int max_n = 8);

// Cleans a candidate: drops a leading echo of the prompt, collapses whitespace, and with
// `drop_fragment` on a `truncated` text cuts the unfinished sentence after the last finished one.
// Appends the flags it sets ("prompt_echo", "fragment_dropped").
std::string clean_caption(const std::string& text, const std::string& prompt, bool drop_fragment,
                          bool truncated, std::vector<std::string>& flags);

// Position of the first stop string in `text`, or npos.
size_t find_stop(const std::string& text, const std::vector<std::string>& stops);

}  // namespace capforge::vlm
