// A sample as it flows through every stage: one input row in, exactly one output row out.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace capforge {

using Json = nlohmann::ordered_json;

// Per-sample outcome. Names are written verbatim to the `status` column; the first three are
// img2dataset's.
enum class Status {
  success,
  failed_to_download,  // no image bytes could be obtained
  failed_to_resize,    // img2dataset: decoded but could not be resized
  failed_to_decode,    // bytes present but not a decodable image (corrupt, bomb, unknown format)
  failed_to_read,      // the container broke inside this sample (e.g. tar truncated mid-member)
  failed_to_caption,   // a model stage rejected the sample
  filtered,            // kept as a row but left out by a curation filter (not a failure; done)
};
const char* status_name(Status s);
std::optional<Status> status_from_name(const std::string& name);

// 8-bit interleaved RGB pixels.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3
  bool empty() const { return rgb.empty(); }
};

// One caption candidate from the captioner, with its ranker score.
struct Candidate {
  std::string text;
  std::optional<double> score;     // ranker cosine similarity, when ranked
  std::vector<std::string> flags;  // e.g. "loop", "max_length", "harvested"
  int tokens = 0;
  double logprob = 0;
};

// What one more prompt of a multi-prompt run made of a sample (the first prompt's outputs are
// Sample's own candidates / re_caption / re_clip_score).
struct PromptOutput {
  std::string name;  // the prompt's name (output columns caption_NAME, ...)
  std::vector<Candidate> candidates;
  std::optional<std::string> re_caption;  // the winner (repaired when repair runs)
  std::optional<double> re_clip_score;    // cosine x 100, when ranked
  // Model repair (--repair-model; docs/repair.md): the caption before repair and what repair made
  // of it ("repaired", "unchanged", "rejected_drift", "repair_failed"; empty: not repaired).
  std::optional<std::string> re_caption_unrepaired;
  std::string repair_status;
};

struct Sample {
  // identity
  std::string key;
  int64_t index = -1;  // position within its shard, 0-based; output order follows it

  // input fields
  std::string url;
  std::optional<std::string> caption;  // the original (alt-text) caption
  Json meta = Json::object();          // pass-through columns / .json fields, in input order
  bool has_image = false;              // the input had an image for this sample (maybe 0 bytes)
  std::string image_bytes;             // encoded image as stored
  std::string image_ext;               // "jpg", "png", ... (empty: unknown, sniffed when needed)
  std::map<std::string, std::string> extra_members;  // other tar members by extension

  // derived
  std::string sha256;                 // of image_bytes, hex
  int width = 0, height = 0;          // original (EXIF-oriented) size of the image
  int out_width = 0, out_height = 0;  // size of image_bytes after a download's resize
  std::string exif;                   // JSON of the EXIF fields (downloads)
  Image pixels;                       // decoded, shrunk to what the model stages need (may be empty)

  // model outputs (empty until the model stages run)
  std::vector<Candidate> candidates;
  std::optional<std::string> re_caption;                // the winner, repaired
  std::optional<double> re_clip_score, org_clip_score;  // cosine x 100
  std::string ranker;                                   // ranker that produced the scores
  std::vector<PromptOutput> more_outputs;               // prompts 2.. of a multi-prompt run, in order
  // Model repair of re_caption (--repair-model; as PromptOutput's): the text before repair and the
  // outcome ("repaired", "unchanged", "rejected_drift", "repair_failed"; empty: not repaired).
  std::optional<std::string> re_caption_unrepaired;
  std::string repair_status;
  // The first ranker's L2-normalised embeddings (rank stage): of the image (empty when it was not
  // embedded: failed or unranked samples) and of the original caption (empty when there is none).
  std::vector<float> img_emb, text_emb;
  // Safety stage, from img_emb: the NSFW head's output (--nsfw-head), and the zero-shot concepts'
  // largest margin (cosine - threshold) with the concept when it is positive (--unsafe-concepts).
  std::optional<double> punsafe, unsafe_margin;
  std::optional<std::string> unsafe_concept;

  // outcome
  Status status = Status::success;
  std::string error;  // why it failed; for successful samples, notes (e.g. repaired UTF-8)

  void fail(Status s, std::string why) {
    status = s;
    error = std::move(why);
  }
  void note(const std::string& what) { error = error.empty() ? what : error + "; " + what; }
  // Marks the sample filtered by `reason` (a criterion's name, e.g. min_image_size): later stages
  // skip it, its row stays (status filtered, error "filtered: REASON (DETAIL)" before any notes).
  void filter(const std::string& reason, const std::string& detail = "") {
    status = Status::filtered;
    filtered_by = reason;
    std::string why = "filtered: " + reason + (detail.empty() ? "" : " (" + detail + ")");
    error = error.empty() ? why : why + "; " + error;
  }
  std::string filtered_by;  // the filter's reason when status is filtered
  bool ok() const { return status == Status::success; }
};

}  // namespace capforge
