// Rule-based grammar and punctuation repair of a caption (the default repair stage).
#pragma once

#include <string>

namespace capforge::repair {

// Collapses whitespace, removes spaces before , . ; : ! ?, collapses immediately repeated words
// ("the the"), drops a dangling trailing connective ("... sitting on a", "... and"), capitalises
// the first letter and ends the caption with a period unless it ends in . ! or ?.
std::string repair_caption(const std::string& caption);

}  // namespace capforge::repair
