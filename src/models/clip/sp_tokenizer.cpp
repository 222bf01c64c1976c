#include "models/clip/sp_tokenizer.h"

#include <fmt/format.h>
#include <sentencepiece_processor.h>
#include <utf8proc.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/text.h"

namespace capforge::clip {

namespace {

const char kUnderline[] = "\xE2\x96\x81";  // U+2581, SentencePiece's word boundary

// Python's str.isspace() (what \s and strip() match in a str pattern).
bool py_space(int32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

std::vector<int32_t> code_points(std::string_view s) {
  std::string fixed(s);
  repair_utf8(fixed);
  std::vector<int32_t> out;
  const auto* p = (const utf8proc_uint8_t*)fixed.data();
  for (size_t i = 0; i < fixed.size();) {
    utf8proc_int32_t cp;
    auto n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(fixed.size() - i), &cp);
    if (n <= 0) break;
    out.push_back(cp);
    i += (size_t)n;
  }
  return out;
}

void append(std::string& out, int32_t cp) {
  uint8_t buf[4];
  auto n = utf8proc_encode_char(cp, buf);
  out.append((const char*)buf, (size_t)n);
}

// protobuf merge semantics: a second normalizer_spec (field 3) holding add_dummy_prefix = false
// (field 3, varint 0) appended to a ModelProto is merged into the first, as HF's MergeFrom does.
std::string without_dummy_prefix(std::string proto) { return proto + std::string("\x1A\x02\x18\x00", 4); }

}  // namespace

std::string lower_utf8(std::string_view text) {
  std::string out;
  for (int32_t c : code_points(text)) append(out, utf8proc_tolower(c));
  return out;
}

std::string siglip_canonicalize(std::string_view text) {
  static const std::string punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  std::string out;
  bool pending_space = false;
  for (int32_t c : code_points(text)) {
    if (c < 128 && punct.find((char)c) != std::string::npos) continue;
    if (py_space(c)) {
      pending_space = true;
      continue;
    }
    if (pending_space && !out.empty()) out += ' ';
    pending_space = false;
    append(out, c);
  }
  return out;
}

SpTokenizer::SpTokenizer(const std::string& file, const SpOptions& o)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), o_(o) {
  std::ifstream f(file, std::ios::binary);
  if (!f) throw std::runtime_error(fmt::format("cannot read {}", file));
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string proto = ss.str();
  // The file is parsed as it is first: the appended field below could otherwise complete a
  // truncated last piece and let a damaged file load.
  auto st = sp_->LoadFromSerializedProto(proto);
  if (st.ok() && o.unk_prefix) st = sp_->LoadFromSerializedProto(without_dummy_prefix(proto));
  if (!st.ok())
    throw std::runtime_error(
        fmt::format("{}: not a SentencePiece model, or a damaged one ({})", file, st.ToString()));
  auto id = [&](const std::string& piece, const char* role) {
    int i = sp_->PieceToId(piece);
    if (i == sp_->unk_id() && piece != o.unk_token)
      throw std::runtime_error(
          fmt::format("{}: the {} token '{}' is not in the vocabulary", file, role, piece));
    return i;
  };
  pad_id_ = id(o.pad_token, "pad");
  if (o.add_eos) eos_id_ = id(o.eos_token, "eos");
  if (o.add_bos) bos_id_ = id(o.bos_token, "bos");
  if (o.unk_prefix) {
    std::vector<std::string> pieces;
    sp_->Encode(o.unk_token, &pieces).IgnoreError();
    unk_pieces_ = pieces.size();
  }
}

SpTokenizer::~SpTokenizer() = default;
SpTokenizer::SpTokenizer(SpTokenizer&&) noexcept = default;

size_t SpTokenizer::vocab_size() const { return (size_t)sp_->GetPieceSize(); }

std::vector<int> SpTokenizer::encode_raw(std::string_view text) const {
  std::string t(text);
  repair_utf8(t);
  if (o_.lower_case) t = lower_utf8(t);
  std::vector<int> ids;
  if (o_.unk_prefix) {
    // SiglipTokenizer.tokenize: "▁" + text (with "▁" in the text made a space); _tokenize then
    // canonicalises that and encodes "<unk>" + it, dropping the pieces of "<unk>".
    std::string marked;
    for (size_t p = 0;;) {
      size_t q = t.find(kUnderline, p);
      marked += t.substr(p, q == std::string::npos ? std::string::npos : q - p);
      if (q == std::string::npos) break;
      marked += ' ';
      p = q + 3;
    }
    std::string body = kUnderline + marked;
    if (o_.siglip_canonicalize) body = siglip_canonicalize(body);
    sp_->Encode(o_.unk_token + body, &ids).IgnoreError();
    ids.erase(ids.begin(), ids.begin() + (ptrdiff_t)std::min(unk_pieces_, ids.size()));
  } else {
    if (o_.siglip_canonicalize) t = siglip_canonicalize(t);
    sp_->Encode(t, &ids).IgnoreError();
  }
  return ids;
}

std::vector<int> SpTokenizer::encode(std::string_view text) const {
  std::vector<int> body = encode_raw(text);
  const size_t specials = (o_.add_bos ? 1 : 0) + (o_.add_eos ? 1 : 0);
  const size_t room = o_.pad_to > 0 ? (size_t)std::max<int>(0, o_.pad_to - (int)specials) : body.size();
  if (body.size() > room) body.resize(room);
  std::vector<int> ids;
  if (o_.add_bos) ids.push_back(bos_id_);
  ids.insert(ids.end(), body.begin(), body.end());
  if (o_.add_eos) ids.push_back(eos_id_);
  if (o_.pad_to > 0) ids.resize((size_t)o_.pad_to, pad_id_);
  return ids;
}

}  // namespace capforge::clip
