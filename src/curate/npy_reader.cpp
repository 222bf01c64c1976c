#include "curate/npy_reader.h"

#include <fmt/format.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace capforge::curate {

namespace {
[[noreturn]] void bad(const std::string& why) { throw std::runtime_error(why); }

void skip_ws(const std::string& s, size_t& i) {
  while (i < s.size() && std::isspace((unsigned char)s[i])) ++i;
}

std::string quoted(const std::string& s, size_t& i) {
  skip_ws(s, i);
  if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) bad("malformed npy header: expected a quoted string");
  char q = s[i++];
  size_t end = s.find(q, i);
  if (end == std::string::npos) bad("malformed npy header: unterminated string");
  std::string out = s.substr(i, end - i);
  i = end + 1;
  return out;
}

void expect(const std::string& s, size_t& i, char c) {
  skip_ws(s, i);
  if (i >= s.size() || s[i] != c) bad(fmt::format("malformed npy header: expected '{}'", c));
  ++i;
}
}  // namespace

float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

NpyHeader parse_npy_header(const std::string& s) {
  NpyHeader h;
  bool have_descr = false, have_order = false, have_shape = false;
  size_t i = 0;
  expect(s, i, '{');
  for (;;) {
    skip_ws(s, i);
    if (i < s.size() && s[i] == '}') break;
    std::string key = quoted(s, i);
    expect(s, i, ':');
    skip_ws(s, i);
    if (key == "descr") {
      h.descr = quoted(s, i);
      have_descr = true;
    } else if (key == "fortran_order") {
      if (s.compare(i, 4, "True") == 0) {
        h.fortran_order = true;
        i += 4;
      } else if (s.compare(i, 5, "False") == 0) {
        i += 5;
      } else {
        bad("malformed npy header: fortran_order is not True or False");
      }
      have_order = true;
    } else if (key == "shape") {
      expect(s, i, '(');
      for (;;) {
        skip_ws(s, i);
        if (i < s.size() && s[i] == ')') break;
        size_t start = i;
        while (i < s.size() && std::isdigit((unsigned char)s[i])) ++i;
        if (i == start || i - start > 15) bad("malformed npy header: bad shape");
        h.shape.push_back(std::stoll(s.substr(start, i - start)));
        skip_ws(s, i);
        if (i < s.size() && s[i] == ',') ++i;
      }
      ++i;
      have_shape = true;
    } else {
      bad("malformed npy header: unknown key '" + key + "'");
    }
    skip_ws(s, i);
    if (i < s.size() && s[i] == ',') ++i;
  }
  if (!have_descr || !have_order || !have_shape)
    bad("malformed npy header: descr, fortran_order or shape missing");
  return h;
}

NpyMatrix read_npy(const std::string& path) {
  auto fail = [&](const std::string& why) -> void { bad(path + ": " + why); };
  std::ifstream f(path, std::ios::binary);
  if (!f) bad(path + ": cannot open");
  const uint64_t file_size = std::filesystem::file_size(path);
  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) fail("not an .npy file");
  const int major = (unsigned char)magic[6];
  if (major < 1 || major > 3) fail(fmt::format("unsupported .npy version {}", major));
  uint32_t header_len = 0;
  unsigned char lenb[4] = {0, 0, 0, 0};
  if (!f.read((char*)lenb, major == 1 ? 2 : 4)) fail("truncated header");
  header_len = lenb[0] | (lenb[1] << 8) | ((uint32_t)lenb[2] << 16) | ((uint32_t)lenb[3] << 24);
  if (header_len > (1u << 20)) fail("header too long");
  if (header_len > file_size) fail("truncated header");
  std::string dict(header_len, '\0');
  if (!f.read(dict.data(), header_len)) fail("truncated header");
  NpyHeader h;
  try {
    h = parse_npy_header(dict);
  } catch (const std::exception& e) {
    fail(e.what());
  }
  size_t elem = 0;
  if (h.descr == "<f2")
    elem = 2;
  else if (h.descr == "<f4")
    elem = 4;
  else
    fail("dtype '" + h.descr + "' is not supported (float16 '<f2' or float32 '<f4')");
  if (h.fortran_order) fail("Fortran-ordered arrays are not supported");
  NpyMatrix m;
  if (h.shape.size() == 2) {
    m.rows = h.shape[0];
    m.cols = h.shape[1];
  } else if (h.shape.size() == 1) {
    m.rows = h.shape[0];
    m.cols = 1;
  } else {
    fail(fmt::format("a {}-D array; expected (rows, dim)", h.shape.size()));
  }
  const uint64_t body = file_size - (uint64_t)f.tellg();
  if (m.cols > 0 && (uint64_t)m.rows > body / elem / (uint64_t)m.cols + 1) fail("truncated data");
  const uint64_t need = (uint64_t)m.rows * m.cols * elem;
  if (need > body)
    fail(fmt::format("truncated data: {} bytes for shape ({}, {}), {} present", need, m.rows, m.cols, body));
  if (need < body)
    fail(fmt::format("{} bytes after the data of shape ({}, {})", body - need, m.rows, m.cols));
  m.data.resize((size_t)m.rows * m.cols);
  if (elem == 4) {
    if (!f.read((char*)m.data.data(), need)) fail("read error");
  } else {
    std::vector<uint16_t> half(m.data.size());
    if (!f.read((char*)half.data(), need)) fail("read error");
    for (size_t i = 0; i < half.size(); ++i) m.data[i] = half_to_float(half[i]);
  }
  return m;
}

}  // namespace capforge::curate
