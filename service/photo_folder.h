// service/photo_folder.h: the photos of a folder, for `m2fp parse DIR` (and any front door that takes
// a folder): sorted, optionally recursive, with what was skipped and why.
//
// A file is a photo when its first bytes are those of a format the engine decodes (JPEG, PNG, BMP:
// engine/image.h sniff_image_format), whatever its name. Everything else is skipped with a reason:
// other image formats ("GIF is not supported"), non-images ("not an image"), empty files, files that
// cannot be opened ("unreadable: Permission denied"), special files (FIFOs, sockets, devices: never
// opened, so a FIFO cannot hang the listing), and, without `recursive`, sub-folders. With it, a
// sub-folder that is `exclude` (the output folder) or holds a result.json (an m2fp output folder: its
// PNGs are outputs, not photos) is skipped too. Symbolic links to
// files are followed; links to folders are not descended into (no loops). Entries are sorted by
// their path relative to the folder (byte order), so the order does not depend on the file system.
#pragma once

#include <string>
#include <vector>

namespace m2fp::service {

struct FolderPhoto {
  std::string path;  // folder + "/" + relative
  std::string rel;   // relative to the folder given, "a/b.jpg"
};

struct SkippedFile {
  std::string path;
  std::string reason;  // "not an image", "unreadable: Permission denied", "a sub-folder (--recursive ...)"
};

struct PhotoFolder {
  std::vector<FolderPhoto> photos;
  std::vector<SkippedFile> skipped;
};

// Throws std::runtime_error naming the folder if it cannot be listed.
PhotoFolder list_photo_folder(const std::string& dir, bool recursive, const std::string& exclude = "");

}  // namespace m2fp::service
