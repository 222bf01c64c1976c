#pragma once
#include <string>
#include <string_view>

namespace capforge {
// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);
// Standard base64 with padding (OpenSSL).
std::string base64_encode(std::string_view data);
}  // namespace capforge
