#include "core/mapped_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace capforge {

MappedFile::MappedFile(const std::string& path, bool populate) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error(fmt::format("cannot read {}: {}", path, std::strerror(err)));
  }
  if (st.st_size <= 0) {
    ::close(fd);
    throw std::runtime_error(fmt::format("{} is empty", path));
  }
  size_ = (size_t)st.st_size;
  addr_ = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | (populate ? MAP_POPULATE : 0), fd, 0);
  const int err = errno;
  ::close(fd);
  if (addr_ == MAP_FAILED) {
    addr_ = nullptr;
    throw std::runtime_error(fmt::format("cannot map {}: {}", path, std::strerror(err)));
  }
}

MappedFile::~MappedFile() {
  if (addr_) munmap(addr_, size_);
}

}  // namespace capforge
