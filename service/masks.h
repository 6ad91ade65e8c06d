// service/masks.h: instance masks in the forms their readers expect (COCO RLE, 0/255 PNG), the
// ModelScope pipeline answer (masks / labels / scores), the person map picture, the palette label
// map, label sets (CIHP -> LIP / ATR) and named union masks for try-on and editing (docs/LABELS.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/parsing.h"

namespace m2fp::service {

// COCO compressed RLE of an instance's mask at the photo's size: {"size": [h, w], "counts": "..."},
// column-major, the string pycocotools' encode writes.
nlohmann::json instance_rle(const Instance& in, int width, int height);
// The run lengths themselves (column-major, starting with a run of zeros) and their string form.
// Two ways to the same runs: from the mask's vertical transitions (each row against the one above:
// work per transition, for masks of large regions) or by transposing 64x64 bit blocks (work per
// pixel of the box, for noisy masks); by default the first, unless the mask turns out to change
// more than once per 64 pixels.
enum class RunsBy { Choose, Transitions, Transpose };
std::vector<uint32_t> instance_runs(const Instance& in, int width, int height, RunsBy how = RunsBy::Choose);
std::string rle_counts_string(const std::vector<uint32_t>& runs);

// The instance's mask as 0/255 bytes [height * width].
std::vector<uint8_t> instance_mask(const Instance& in, int width, int height);

enum class MaskFormat { Png, Rle, None };
MaskFormat parse_mask_format(const std::string& s);  // "png" (or ""), "rle", "none"; throws invalid_argument

enum class LabelSet { Cihp, Lip, Atr };
LabelSet parse_label_set(const std::string& s);  // "cihp" (or ""), "lip", "atr"; throws invalid_argument
const char* label_set_name(LabelSet s);
// The CIHP class names (Background ... Right-shoe, Human), as the ModelScope model has them.
const std::vector<std::string>& cihp_classes();
// Class names of a label set (CIHP: the model's classes).
std::vector<std::string> label_set_classes(LabelSet s, const std::vector<std::string>& model_classes);
// CIHP class id -> the set's id (0 where the class has no counterpart); identity for CIHP.
int map_label(LabelSet s, int cihp_id);
// The label map in a label set's ids.
std::vector<uint8_t> map_labels(const std::vector<uint8_t>& labels, LabelSet s);
// The same for a model whose classes are `model_classes`: the CIHP tables above for a CIHP model;
// for a LIP model (the single-person sister, 20 classes with Jumpsuits at 10) its ids are already
// LIP's, so cihp (its own classes) and lip are the identity and atr maps Jumpsuits to Dress
// (docs/LABELS.md).
int map_label(LabelSet s, int model_id, const std::vector<std::string>& model_classes);
std::vector<uint8_t> map_labels(const std::vector<uint8_t>& labels, LabelSet s,
                                const std::vector<std::string>& model_classes);
// The parsing as a label set has it: the label map in the set's ids, class_names the set's,
// label_fractions recounted (so labels.png, the coloured pictures, the legend and the label shares
// drawn from it follow the set); instances, persons, the person map and the scores unchanged (their
// category_id / label stay the model's CIHP ones: report.h's add_label_set_keys adds the set's).
// CIHP: a plain copy.
Parsing in_label_set(const Parsing& p, LabelSet s);

// ModelScope's ImageHumanParsingPipeline.postprocess answer: {"masks", "labels", "scores"}, aligned.
// Multi-person: the part instances then the human instances, score > 0; single-person: one mask per
// class present in the label map (ascending ids, background included), score = the mean of the
// class's sigmoid(semantic) over its pixels (sum / (count + 1)). With a label set other than CIHP,
// labels are the set's names and instances whose class has no counterpart are left out.
nlohmann::json modelscope_answer(const Parsing& p, MaskFormat fmt, LabelSet set = LabelSet::Cihp);

// The person index per pixel as a PNG (8-bit, 16-bit when more than 255 persons): 0 = nobody, i =
// persons[i - 1], from the human instances' masks where they are the person map's choice.
std::vector<uint8_t> persons_png(const Parsing& p);
// labels.png: a palette PNG whose pixel values are the class ids (of `set`), palette the project's
// colour table.
std::vector<uint8_t> labels_png(const Parsing& p, LabelSet set = LabelSet::Cihp);

// Named union masks (docs/LABELS.md): upper_body, lower_body, dresses, agnostic, clothes, hair,
// face, skin, or "label:Name+Name" (CIHP class names). 0/255 [height * width], dilated by `dilate`
// pixels (square). Throws invalid_argument for an unknown name.
std::vector<std::string> union_mask_names();
std::vector<int> union_mask_classes(const std::string& name, const std::vector<std::string>& classes);
// A comma-separated list of union mask names, each checked against `classes`.
std::vector<std::string> parse_union_names(const std::string& csv, const std::vector<std::string>& classes);
std::vector<uint8_t> union_mask(const Parsing& p, const std::string& name, int dilate = 0);

}  // namespace m2fp::service
