// Test fixtures generated on the fly: images (libvips), tars (libarchive), parquet (DuckDB).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "capforge/io.h"

namespace capforge::test {

// Parses JSON lines (empty lines skipped).
std::vector<Json> json_lines(const std::string& text);
// Cosine similarity, accumulated in double.
double cosine(const std::vector<float>& a, const std::vector<float>& b);
// Deterministic RGB noise.
Image noise_image(int w, int h, uint32_t seed);

// Every sample a reader yields; `error` receives the reader's break report.
std::vector<Sample> read_all(const ShardInput& in, std::string* error = nullptr, const ReaderParams& p = {});

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Encodes a deterministic pseudo-random RGB(A) image. bands: 1 (grey), 3, 4 (alpha).
std::string make_jpeg(int w, int h, uint32_t seed = 1, int quality = 85);
std::string make_png(int w, int h, uint32_t seed = 1, int bands = 3, bool sixteen_bit = false);
// A JPEG whose EXIF orientation tag is `orientation` (pixels stored w x h).
std::string make_jpeg_with_orientation(int w, int h, int orientation);
std::string make_cmyk_jpeg(int w, int h);
std::string make_animated_gif(int w, int h, int frames);
// Encodes RGB pixels as PNG (lossless: a decoder gets the same pixels back).
std::string encode_png(const Image& img);

// A PNG header claiming w x h with a tiny body: a decompression bomb stand-in.
std::string make_png_bomb(int w, int h);
// Flips one byte inside the first IDAT chunk's data, so its CRC no longer matches.
std::string corrupt_png_crc(std::string png);

struct Member {
  std::string name, data;
};
// Member names are written as UTF-8 whatever the locale; a member named in `links` is a symbolic
// link whose target is its data.
void write_tar(const std::string& path, const std::vector<Member>& members,
               const std::set<std::string>& links = {});
// Member names of a tar, in UTF-8, in archive order.
std::vector<std::string> tar_member_names(const std::string& path);
// A webdataset shard: per sample {key}.jpg, {key}.txt, {key}.json (url, meta fields).
std::vector<Member> wds_members(const std::string& shard, int n, uint32_t seed = 7);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& data);

// Runs DuckDB SQL (e.g. COPY ... TO 'x.parquet') in a throwaway in-memory database.
void duckdb_exec(const std::string& sql);
// First column of every row, as text.
std::vector<std::string> duckdb_column(const std::string& sql);

}  // namespace capforge::test
