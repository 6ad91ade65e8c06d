// service/pictures.h: the pictures `m2fp parse` writes beside result.json (docs/OUTPUTS.md), as
// tasks for run_side_by_side, so that they are made side by side with the document's parts.
#pragma once

#include <string>
#include <vector>

#include "engine/pipeline.h"
#include "service/masks.h"
#include "service/render.h"
#include "service/side_by_side.h"

namespace m2fp::service {

struct PictureSet {
  std::string dir;                        // the folder they are written into
  LabelSet label_set = LabelSet::Cihp;    // labels.png's ids
  const Parsing* in_set = nullptr;        // the parsing in the label set's ids (labels_color.png,
                                          // parsing.png); null: the parse result's own (CIHP)
  std::vector<std::string> union_names;   // masks/<name>.png for each (union_mask; the folder exists)
  int mask_dilate = 0;
  RenderOptions render;                   // parsing.png's
};

// The files (dir + "/" + name) in the order the tasks make them, the longest first: parsing.png,
// labels_color.png, labels.png, persons.png (multi-person parsings), masks/<name>.png.
std::vector<std::string> picture_files(const ParseResult& r, const PictureSet& s);
// One task per file of picture_files, in that order; each writes its file atomically (IoError when
// it cannot). The tasks refer to r and s, which must outlive them.
std::vector<SideTask> picture_tasks(const ParseResult& r, const PictureSet& s);

}  // namespace m2fp::service
