// service/photo_folder.cpp: see photo_folder.h.
#include "service/photo_folder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "engine/image.h"

namespace fs = std::filesystem;

namespace m2fp::service {

namespace {

// "" for a photo the engine decodes, else why it is skipped. Reads at most 64 bytes.
std::string classify(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::string("unreadable: ") + std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return std::string("unreadable: ") + std::strerror(errno);
  uint8_t head[64];
  ssize_t n;
  do {
    n = ::read(fd, head, sizeof head);
  } while (n < 0 && errno == EINTR);
  const int err = errno;
  ::close(fd);
  if (n < 0) return std::string("unreadable: ") + std::strerror(err);
  if (n == 0) return "empty file";
  const ImageFormat f = sniff_image_format(head, static_cast<size_t>(n));
  switch (f) {
    case ImageFormat::Jpeg:
    case ImageFormat::Png:
    case ImageFormat::Bmp:
      return "";
    case ImageFormat::Unknown:
      return "not an image";
    default:
      return std::string(image_format_name(f)) + " is not supported (JPEG, PNG, BMP)";
  }
}

void walk(const std::string& root, const std::string& rel_dir, bool recursive, const std::string& exclude,
          PhotoFolder& out) {
  const std::string dir = rel_dir.empty() ? root : root + "/" + rel_dir;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    if (rel_dir.empty()) throw std::runtime_error(dir + ": cannot list the folder: " + ec.message());
    out.skipped.push_back({dir, "unreadable folder: " + ec.message()});
    return;
  }
  std::vector<std::string> names;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    names.push_back(it->path().filename().string());
  }
  if (ec) out.skipped.push_back({dir, "listing stopped: " + ec.message()});
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string rel = rel_dir.empty() ? name : rel_dir + "/" + name;
    const std::string path = root + "/" + rel;
    const bool link = fs::is_symlink(fs::symlink_status(path, ec));
    if (fs::is_directory(fs::status(path, ec))) {
      if (link)
        out.skipped.push_back({path, "a link to a folder (not followed)"});
      else if (!recursive)
        out.skipped.push_back({path, "a sub-folder (--recursive parses sub-folders)"});
      else if (!exclude.empty() && fs::equivalent(path, exclude, ec))
        out.skipped.push_back({path, "the output folder"});
      else if (fs::exists(path + "/result.json", ec))
        out.skipped.push_back({path, "an m2fp output folder (holds result.json)"});
      else
        walk(root, rel, recursive, exclude, out);
      continue;
    }
    const std::string why = classify(path);
    if (why.empty())
      out.photos.push_back({path, rel});
    else
      out.skipped.push_back({path, why});
  }
}

}  // namespace

PhotoFolder list_photo_folder(const std::string& dir, bool recursive, const std::string& exclude) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir + ": not a folder");
  std::string root = dir;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  PhotoFolder out;
  walk(root, "", recursive, exclude, out);
  std::sort(out.photos.begin(), out.photos.end(),
            [](const FolderPhoto& a, const FolderPhoto& b) { return a.rel < b.rel; });
  std::sort(out.skipped.begin(), out.skipped.end(),
            [](const SkippedFile& a, const SkippedFile& b) { return a.path < b.path; });
  return out;
}

}  // namespace m2fp::service
