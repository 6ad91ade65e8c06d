// app/cmd_info.cpp: `m2fp info` (configuration, parameter counts) and `m2fp inspect` (the layer
// table with output shapes and multiply-adds per stage for an input size).
#include <cstdio>
#include <map>

#include "app/args.h"
#include "app/commands.h"
#include "engine/m2fp.h"
#include "engine/preprocess.h"
#include "model_loader/config.h"
#include "model_loader/safetensors.h"
#include "service/report.h"

namespace m2fp::app {

namespace {

const OptionSpec kModelOption = {
    "model", "FILE", "", "the converted model (.safetensors; tools/convert_weights.py converts a PyTorch checkpoint); required"};

const CommandSpec& info_spec() {
  static const CommandSpec spec = {"m2fp info --model FILE",
                                   "A model file's configuration (mode, backbone, decoder, classes), whether its weights "
                                   "are synthetic,\nand its parameter counts per component.",
                                   {kModelOption},
                                   ""};
  return spec;
}

const CommandSpec& inspect_spec() {
  static const CommandSpec spec = {
      "m2fp inspect --model FILE [--height H --width W]",
      "The layer table: every layer's output shape and multiply-adds per stage for a photo of the given size\n"
      "(single-person models: their fixed input size).",
      {kModelOption,
       {"height", "PX", "342", "the photo's height in pixels, 1..100000 (multi-person models)"},
       {"width", "PX", "548", "the photo's width in pixels, 1..100000 (multi-person models)"},
       {"short-edge", "PX", "640", "the short edge the photo is resized to, in pixels, 32..4096 (as m2fp parse)"},
       {"max-size", "PX", "1333", "the long edge's limit after resizing, in pixels, 32..8192 (as m2fp parse)"}},
      ""};
  return spec;
}

}  // namespace

int cmd_info(int argc, char** argv) {
  Args a(argc, argv, 2, info_spec());
  if (a.has("help")) return print_help(info_spec());
  if (!a.positional().empty()) throw UsageError("unexpected argument '" + a.positional()[0] + "'");
  const std::string path = a.require("model");
  auto file = SafetensorsFile::open(path);
  const ModelConfig c = read_model_config(*file);
  const ParamCount pc = count_parameters(*file);
  std::printf("model:      %s\n", path.c_str());
  std::printf("summary:    %s\n", c.summary().c_str());
  std::printf("weights:    %s\n", c.synthetic ? service::kSyntheticWarning : "converted checkpoint (not synthetic)");
  if (!c.source.empty()) std::printf("source:     %s\n", c.source.c_str());
  std::printf("mode:       %s\n", c.single_human ? "single-person (semantic parsing)" : "multi-person (instance parsing)");
  std::printf("backbone:   DeepLab ResNet-%d, stem %d, res2 %d channels\n", c.depth, c.stem_out_channels,
              c.res2_out_channels);
  std::printf("pixel dec.: %d deformable encoder layers, d=%d, %d heads, FFN %d, levels %s/%s/%s\n", c.enc_layers,
              c.conv_dim, c.enc_nheads, c.enc_dim_feedforward, c.transformer_in_features[0].c_str(),
              c.transformer_in_features[1].c_str(), c.transformer_in_features[2].c_str());
  std::printf("decoder:    %d layers, %d queries, d=%d, %d heads, FFN %d\n", c.dec_layers, c.num_queries,
              c.hidden_dim, c.dec_nheads, c.dec_dim_feedforward);
  std::printf("classes:    %d:", c.num_classes);
  for (size_t i = 0; i < c.classes.size(); ++i) std::printf("%s %s", i ? "," : "", c.classes[i].c_str());
  std::printf("\n");
  std::printf("parameters: %lld total\n", (long long)pc.total());
  std::printf("  backbone             %12lld\n", (long long)pc.backbone);
  std::printf("  pixel decoder        %12lld\n", (long long)pc.pixel_decoder);
  std::printf("  transformer decoder  %12lld\n", (long long)pc.transformer_decoder);
  if (pc.other) std::printf("  other                %12lld\n", (long long)pc.other);
  std::printf("buffers:    %lld (BatchNorm statistics)\n", (long long)pc.buffers);
  std::printf("tensors:    %lld (%zu in file), %.1f MB\n", (long long)pc.tensors, file->tensors().size(),
              file->file_size() / 1e6);
  return 0;
}

int cmd_inspect(int argc, char** argv) {
  Args a(argc, argv, 2, inspect_spec());
  if (a.has("help")) return print_help(inspect_spec());
  if (!a.positional().empty()) throw UsageError("unexpected argument '" + a.positional()[0] + "'");
  const auto model = M2FP::load(a.require("model"));
  const ModelConfig& c = model->config();
  // The padded network input for a photo of --height x --width (default: 548 x 342 -> 640 x 1056).
  int64_t Hp, Wp;
  if (c.single_human) {
    Hp = (c.single_human_size[1] + 31) / 32 * 32;
    Wp = (c.single_human_size[0] + 31) / 32 * 32;
  } else {
    const int h = a.get_int("height", 342, 1, 100000), w = a.get_int("width", 548, 1, 100000);
    auto [nh, nw] = multi_person_resize_shape(h, w, a.get_int("short-edge", 640, 32, 4096),
                                              a.get_int("max-size", 1333, 32, 8192));
    Hp = (nh + 31) / 32 * 32;
    Wp = (nw + 31) / 32 * 32;
    std::printf("photo %dx%d -> resized %dx%d -> padded %lldx%lld (h x w)\n\n", h, w, nh, nw, (long long)Hp,
                (long long)Wp);
  }
  const auto rows = model->layer_costs(Hp, Wp);
  std::map<std::string, double> per_stage;
  double total = 0;
  std::printf("%-20s %-58s %-22s %12s\n", "stage", "layer", "output", "GMAC");
  std::string last;
  for (const LayerCost& r : rows) {
    if (r.stage != last && !last.empty()) std::printf("\n");
    last = r.stage;
    std::printf("%-20s %-58s %-22s %12.3f\n", r.stage.c_str(), r.name.c_str(), r.out_shape.c_str(), r.macs / 1e9);
    per_stage[r.stage] += r.macs;
    total += r.macs;
  }
  std::printf("\n%-20s %12s %12s\n", "stage", "GMAC", "GFLOP");
  for (const char* s : {"backbone", "pixel_decoder", "transformer_decoder"})
    std::printf("%-20s %12.2f %12.2f\n", s, per_stage[s] / 1e9, 2 * per_stage[s] / 1e9);
  std::printf("%-20s %12.2f %12.2f\n", "total", total / 1e9, 2 * total / 1e9);
  std::printf("\n(the upstream network's multiply-adds; m2fp.cpp computes the intermediate decoder heads'\n"
              " attention-mask logits at each level's size, which saves part of the heads' cost)\n");
  return 0;
}

}  // namespace m2fp::app
