// service/pictures.cpp: see pictures.h.
#include "service/pictures.h"

#include "engine/io.h"

namespace m2fp::service {

std::vector<std::string> picture_files(const ParseResult& r, const PictureSet& s) {
  std::vector<std::string> f = {s.dir + "/parsing.png", s.dir + "/labels_color.png", s.dir + "/labels.png"};
  if (!r.parsing.single_human) f.push_back(s.dir + "/persons.png");
  for (const std::string& n : s.union_names) f.push_back(s.dir + "/masks/" + n + ".png");
  return f;
}

std::vector<SideTask> picture_tasks(const ParseResult& r, const PictureSet& s) {
  const Parsing& p = r.parsing;
  const Parsing& in_set = s.in_set ? *s.in_set : p;
  std::vector<SideTask> t;
  t.push_back([&r, &s, &in_set] { write_parsing_png(s.dir + "/parsing.png", r.image, in_set, s.render); });
  t.push_back([&s, &in_set] {
    write_labels_color_png(s.dir + "/labels_color.png", in_set.labels.data(), in_set.width, in_set.height);
  });
  t.push_back([&s, &p] {
    const std::vector<uint8_t> png = labels_png(p, s.label_set);
    write_file_atomic(s.dir + "/labels.png", png.data(), png.size());
  });
  if (!p.single_human)
    t.push_back([&s, &p] {
      const std::vector<uint8_t> png = persons_png(p);
      write_file_atomic(s.dir + "/persons.png", png.data(), png.size());
    });
  for (const std::string& n : s.union_names)
    t.push_back([&s, &p, n] {
      const std::vector<uint8_t> m = union_mask(p, n, s.mask_dilate);
      write_png_gray8(s.dir + "/masks/" + n + ".png", m.data(), p.width, p.height);
    });
  return t;
}

}  // namespace m2fp::service
