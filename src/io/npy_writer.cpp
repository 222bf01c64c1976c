#include "io/npy_writer.h"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

namespace capforge {

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds past 65504: infinity
  if (abs < 0x38800000u) {                                    // below 2^-14: subnormal or zero
    if (abs < 0x33000000u) return (uint16_t)sign;             // below half the smallest subnormal
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;  // 14..24: the value is mant * 2^(exp-150) = h * 2^-24
    uint32_t h = mant >> shift;
    const uint32_t rest = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1u))) ++h;
    return (uint16_t)(sign | h);
  }
  // normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even
  uint32_t h = ((abs >> 13) - (112u << 10));
  const uint32_t rest = abs & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry may roll into the exponent
  return (uint16_t)(sign | h);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {  // subnormal: mant * 2^-24
      float v = (float)mant / 16777216.0f;
      std::memcpy(&x, &v, 4);
      x |= sign;
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 112u) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

std::string npy_f16_bytes(const std::vector<uint16_t>& data, size_t rows, size_t cols) {
  if (data.size() != rows * cols)
    throw std::invalid_argument(fmt::format("npy: {} values for shape ({}, {})", data.size(), rows, cols));
  std::string dict =
      fmt::format("{{'descr': '<f2', 'fortran_order': False, 'shape': ({}, {}), }}", rows, cols);
  // magic (6) + version (2) + header length (2) + dict + padding + '\n' = a multiple of 64
  size_t total = 10 + dict.size() + 1;
  size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict.push_back('\n');
  if (dict.size() > 65535) throw std::invalid_argument("npy: header too long");
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back((char)(dict.size() & 0xff));
  out.push_back((char)(dict.size() >> 8));
  out += dict;
  out.reserve(out.size() + data.size() * 2);
  for (uint16_t v : data) {  // little-endian whatever the host
    out.push_back((char)(v & 0xff));
    out.push_back((char)(v >> 8));
  }
  return out;
}

}  // namespace capforge
