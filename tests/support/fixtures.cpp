#include "support/fixtures.h"

#include <archive.h>
#include <archive_entry.h>
#include <vips/vips.h>
#include <zlib.h>
#include <cmath>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include "capforge/image.h"
#include "io/duckdb_util.h"
#include "io/utf8_locale.h"

namespace fs = std::filesystem;

namespace capforge::test {

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "capforge-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}
TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

VipsImage* noise_image(int w, int h, uint32_t seed, int bands, bool sixteen) {
  std::mt19937 rng(seed);
  size_t n = (size_t)w * h * bands;
  VipsImage* im = nullptr;
  if (sixteen) {
    std::vector<uint16_t> px(n);
    for (size_t i = 0; i < n; ++i) px[i] = (uint16_t)((i % 97) * 600 + rng() % 500);
    im = vips_image_new_from_memory_copy(px.data(), n * 2, w, h, bands, VIPS_FORMAT_USHORT);
    if (im) im->Type = bands >= 3 ? VIPS_INTERPRETATION_RGB16 : VIPS_INTERPRETATION_GREY16;
  } else {
    std::vector<uint8_t> px(n);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int b = 0; b < bands; ++b)
          px[((size_t)y * w + x) * bands + b] = (uint8_t)((x * 3 + y * 5 + b * 40 + (rng() % 16)) & 255);
    im = vips_image_new_from_memory_copy(px.data(), n, w, h, bands, VIPS_FORMAT_UCHAR);
    if (im) im->Type = bands >= 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W;
  }
  if (!im) throw std::runtime_error("vips image creation failed");
  return im;
}

std::string take_buffer(void* buf, size_t len) {
  std::string out((const char*)buf, len);
  g_free(buf);
  return out;
}

std::string save_jpeg(VipsImage* im, int quality) {
  void* buf = nullptr;
  size_t len = 0;
  if (vips_jpegsave_buffer(im, &buf, &len, "Q", quality, nullptr))
    throw std::runtime_error(vips_error_buffer());
  return take_buffer(buf, len);
}

void put_u32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s += (char)((v >> (8 * i)) & 255);
}
std::string png_chunk(const std::string& type, const std::string& data) {
  std::string c;
  put_u32(c, (uint32_t)data.size());
  std::string td = type + data;
  c += td;
  put_u32(c, (uint32_t)crc32(0, (const Bytef*)td.data(), (uInt)td.size()));
  return c;
}

}  // namespace

std::string make_jpeg(int w, int h, uint32_t seed, int quality) {
  init_vips();
  VipsImage* im = noise_image(w, h, seed, 3, false);
  std::string out = save_jpeg(im, quality);
  g_object_unref(im);
  return out;
}

std::string make_png(int w, int h, uint32_t seed, int bands, bool sixteen_bit) {
  init_vips();
  VipsImage* im = noise_image(w, h, seed, bands, sixteen_bit);
  void* buf = nullptr;
  size_t len = 0;
  int rc = vips_pngsave_buffer(im, &buf, &len, "compression", 1, nullptr);
  g_object_unref(im);
  if (rc) throw std::runtime_error(vips_error_buffer());
  return take_buffer(buf, len);
}

std::string make_jpeg_with_orientation(int w, int h, int orientation) {
  init_vips();
  VipsImage* im = noise_image(w, h, 3, 3, false);
  VipsImage* copy = nullptr;
  vips_copy(im, &copy, nullptr);
  g_object_unref(im);
  vips_image_set_int(copy, VIPS_META_ORIENTATION, orientation);
  std::string out = save_jpeg(copy, 85);
  g_object_unref(copy);
  return out;
}

std::string make_cmyk_jpeg(int w, int h) {
  init_vips();
  VipsImage* im = noise_image(w, h, 5, 4, false);
  im->Type = VIPS_INTERPRETATION_CMYK;
  std::string out = save_jpeg(im, 90);
  g_object_unref(im);
  return out;
}

std::string make_animated_gif(int w, int h, int frames) {
  init_vips();
  VipsImage* im = noise_image(w, h * frames, 9, 3, false);
  VipsImage* copy = nullptr;
  vips_copy(im, &copy, nullptr);
  g_object_unref(im);
  vips_image_set_int(copy, "page-height", h);
  void* buf = nullptr;
  size_t len = 0;
  int rc = vips_gifsave_buffer(copy, &buf, &len, nullptr);
  g_object_unref(copy);
  if (rc) throw std::runtime_error(vips_error_buffer());
  return take_buffer(buf, len);
}

std::string encode_png(const Image& img) {
  init_vips();
  VipsImage* im = vips_image_new_from_memory_copy(img.rgb.data(), img.rgb.size(), img.width, img.height, 3,
                                                  VIPS_FORMAT_UCHAR);
  void* buf = nullptr;
  size_t len = 0;
  int rc = vips_pngsave_buffer(im, &buf, &len, nullptr);
  g_object_unref(im);
  if (rc) throw std::runtime_error(vips_error_buffer());
  return take_buffer(buf, len);
}

std::string make_png_bomb(int w, int h) {
  std::string ihdr;
  put_u32(ihdr, (uint32_t)w);
  put_u32(ihdr, (uint32_t)h);
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);
  std::string zeros(1000, '\0'), z(compressBound(1000), '\0');
  uLongf zlen = z.size();
  compress((Bytef*)z.data(), &zlen, (const Bytef*)zeros.data(), zeros.size());
  z.resize(zlen);
  return std::string("\x89PNG\r\n\x1A\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", z) +
         png_chunk("IEND", "");
}

std::string corrupt_png_crc(std::string png) {
  size_t at = png.find("IDAT");
  if (at == std::string::npos || at + 24 >= png.size()) throw std::runtime_error("no IDAT");
  png[at + 20] ^= (char)0xFF;
  return png;
}

void write_tar(const std::string& path, const std::vector<Member>& members,
               const std::set<std::string>& links) {
  Utf8LocaleScope utf8;  // names are UTF-8 in the pax header whatever the test's locale
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (archive_write_open_filename(a, path.c_str()) != ARCHIVE_OK)
    throw std::runtime_error("cannot write " + path);
  for (auto& m : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname_utf8(e, m.name.c_str());
    bool link = links.count(m.name) > 0;
    if (link) archive_entry_set_symlink_utf8(e, m.data.c_str());
    archive_entry_set_size(e, link ? 0 : (la_int64_t)m.data.size());
    archive_entry_set_filetype(e, link ? AE_IFLNK : AE_IFREG);
    archive_entry_set_perm(e, 0644);
    if (archive_write_header(a, e) != ARCHIVE_OK)
      throw std::runtime_error("cannot add " + m.name + " to " + path);
    if (!link) archive_write_data(a, m.data.data(), m.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
}

std::vector<std::string> tar_member_names(const std::string& path) {
  Utf8LocaleScope utf8;
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  std::vector<std::string> out;
  if (archive_read_open_filename(a, path.c_str(), 1 << 16) != ARCHIVE_OK) {
    archive_read_free(a);
    throw std::runtime_error("cannot read " + path);
  }
  archive_entry* e = nullptr;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    const char* n = archive_entry_pathname_utf8(e);
    out.push_back(n ? n : "<unconvertible>");
  }
  archive_read_free(a);
  return out;
}

std::vector<Member> wds_members(const std::string& shard, int n, uint32_t seed) {
  std::vector<Member> out;
  for (int i = 0; i < n; ++i) {
    char key[64];
    std::snprintf(key, sizeof key, "%s%04d", shard.c_str(), i);
    std::string k = key;
    out.push_back({k + ".jpg", make_jpeg(48 + i % 7, 40 + i % 5, seed + (uint32_t)i)});
    out.push_back({k + ".txt", "a photo of thing " + std::to_string(i)});
    out.push_back({k + ".json", "{\"url\":\"http://example.com/" + k + ".jpg\",\"key\":\"" + k +
                                    "\",\"punsafe\":" + std::to_string(i * 0.01) + ",\"source\":\"test\"}"});
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return {std::istreambuf_iterator<char>(f), {}};
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  f.write(data.data(), (std::streamsize)data.size());
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::vector<Json> json_lines(const std::string& text) {
  std::vector<Json> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(Json::parse(l));
  return out;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i)
    d += (double)a[i] * b[i], na += (double)a[i] * a[i], nb += (double)b[i] * b[i];
  return d / std::sqrt(na * nb);
}

Image noise_image(int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  Image img;
  img.width = w, img.height = h;
  img.rgb.resize((size_t)w * h * 3);
  for (auto& v : img.rgb) v = (uint8_t)(rng() & 255);
  return img;
}

std::vector<Sample> read_all(const ShardInput& in, std::string* error, const ReaderParams& p) {
  auto r = open_reader(in, p);
  std::vector<Sample> out;
  Sample s;
  while (r->next(s)) out.push_back(std::move(s));
  if (error) *error = r->error();
  return out;
}

void duckdb_exec(const std::string& sql) {
  duck::Database db;
  db.exec(sql);
}

std::vector<std::string> duckdb_column(const std::string& sql) {
  duck::Database db;
  std::vector<std::string> out;
  for (auto& r : db.rows(sql)) out.push_back(r[0].value_or("<null>"));
  return out;
}

}  // namespace capforge::test
