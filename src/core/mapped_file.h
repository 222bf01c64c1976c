// A whole file mapped read-only (MAP_PRIVATE: the file is never written through it), unmapped on
// destruction. The mapping shows the file as it is on disk: a file truncated by someone else while
// mapped faults on access (SIGBUS), as llama.cpp's own mmap loading does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace capforge {

class MappedFile {
 public:
  // Throws std::runtime_error naming `path` when it cannot be opened, is empty, or cannot be
  // mapped. `populate`: read the whole file into the mapping now (MAP_POPULATE), which costs far
  // less than one page fault per 4 KiB page later.
  explicit MappedFile(const std::string& path, bool populate = false);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return (const uint8_t*)addr_; }
  size_t size() const { return size_; }

 private:
  void* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace capforge
