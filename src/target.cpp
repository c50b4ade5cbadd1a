#include "cnnvis/target.hpp"

#include <ATen/ATen.h>

#include "cnnvis/error.hpp"

namespace cnnvis {
namespace {

void check_range(const std::vector<int64_t>& indices, int64_t classes) {
  for (auto index : indices) {
    if (index < 0 || index >= classes) {
      throw usage_error("target class " + std::to_string(index) + " is outside the model's " +
                        std::to_string(classes) + " classes; use --target 0.." +
                        std::to_string(classes - 1) + " or a class name");
    }
  }
}

void check_classes(const std::vector<int64_t>& indices, const at::Tensor& logits) {
  if (logits.dim() != 2) {
    throw usage_error("the model's output " + c10::str(logits.sizes()) +
                      " is not logits [N, classes]" +
                      (logits.dim() == 4 ? std::string(" but a dense map (segmentation): explain "
                                                       "a class over a region (--target-mask, "
                                                       "Target::region_logit)")
                                         : std::string("")));
  }
  check_range(indices, logits.size(1));
}

// A region [h, w] for a dense output [N, C, h, w]; `what` starts the message.
void check_region(const char* what, const at::Tensor& region, const at::Tensor& output) {
  if (region.dim() != 2 || region.size(0) != output.size(2) || region.size(1) != output.size(3)) {
    throw usage_error(std::string(what) + ": the region " + c10::str(region.sizes()) +
                      " does not match the output's " + std::to_string(output.size(2)) + "x" +
                      std::to_string(output.size(3)) + " pixels");
  }
}

}  // namespace

Target Target::class_logit(int64_t index) {
  return Target(
      [index](const ForwardResult& r) {
        check_classes({index}, r.output);
        return r.output.select(1, index);
      },
      {}, "class " + std::to_string(index));
}

Target Target::class_logits(std::vector<int64_t> indices) {
  std::string description = "classes";
  for (auto i : indices) description += " " + std::to_string(i);
  Target target(
      [indices](const ForwardResult& r) {
        if (static_cast<int64_t>(indices.size()) != r.output.size(0)) {
          throw usage_error("the target names " + std::to_string(indices.size()) +
                            " classes for a batch of " + std::to_string(r.output.size(0)) +
                            " images; give one class per image");
        }
        check_classes(indices, r.output);
        auto index = at::tensor(indices, at::TensorOptions().dtype(at::kLong))
                         .to(r.output.device())
                         .unsqueeze(1);
        return r.output.gather(1, index).squeeze(1);
      },
      {}, description);
  target.per_image_ = std::move(indices);
  return target;
}

Target Target::region_logit(int64_t index, at::Tensor mask) {
  if (mask.dim() != 2) {
    throw usage_error("region target: the mask must be [H, W], got " + c10::str(mask.sizes()));
  }
  const int64_t pixels = static_cast<int64_t>(mask.ne(0).sum().item<double>());
  return Target(
      [index, mask](const ForwardResult& r) {
        const auto& out = r.output;
        if (out.dim() != 4) {
          throw usage_error("a region target needs a dense output [N, C, H, W], the model's is " +
                            c10::str(out.sizes()) + "; explain a class with --target alone");
        }
        check_range({index}, out.size(1));
        if (out.size(2) != mask.size(0) || out.size(3) != mask.size(1)) {
          throw usage_error("the region mask is " + c10::str(mask.sizes()) +
                            " but the model's output is " + std::to_string(out.size(2)) + "x" +
                            std::to_string(out.size(3)) + " pixels");
        }
        return (out.select(1, index) * mask.to(out.options())).sum({1, 2});
      },
      {}, "class " + std::to_string(index) + " over " + std::to_string(pixels) + " pixels");
}

Target Target::region_logits(std::vector<int64_t> indices, at::Tensor masks) {
  if (masks.dim() != 3 || masks.size(0) != static_cast<int64_t>(indices.size())) {
    throw usage_error("region targets: expected one mask [H, W] per class, masks [" +
                      std::to_string(indices.size()) + ", H, W], got " + c10::str(masks.sizes()));
  }
  std::string description = "classes";
  for (auto i : indices) description += " " + std::to_string(i);
  description += " over their regions";
  Target target(
      [indices, masks](const ForwardResult& r) {
        const auto& out = r.output;
        if (out.dim() != 4) {
          throw usage_error("a region target needs a dense output [N, C, H, W], the model's is " +
                            c10::str(out.sizes()));
        }
        if (out.size(0) != masks.size(0)) {
          throw usage_error("the region targets name " + std::to_string(masks.size(0)) +
                            " images for a batch of " + std::to_string(out.size(0)));
        }
        check_range(indices, out.size(1));
        if (out.size(2) != masks.size(1) || out.size(3) != masks.size(2)) {
          throw usage_error("the region masks are " + std::to_string(masks.size(1)) + "x" +
                            std::to_string(masks.size(2)) + " but the model's output is " +
                            std::to_string(out.size(2)) + "x" + std::to_string(out.size(3)) +
                            " pixels");
        }
        const auto index = at::tensor(indices, at::TensorOptions().dtype(at::kLong))
                               .to(out.device())
                               .view({-1, 1, 1, 1})
                               .expand({out.size(0), 1, out.size(2), out.size(3)});
        return (out.gather(1, index).squeeze(1) * masks.to(out.options())).sum({1, 2});
      },
      {}, description);
  target.per_image_ = std::move(indices);
  target.per_image_masks_ = std::move(masks);
  return target;
}

at::Tensor predicted_region(const at::Tensor& output, int64_t index) {
  if (output.dim() != 4 || output.size(0) != 1) {
    throw usage_error("predicted_region: expected a dense output [1, C, H, W], got " +
                      c10::str(output.sizes()));
  }
  check_range({index}, output.size(1));
  return output[0].detach().argmax(0).eq(index).to(at::kFloat);
}

int64_t top_class(const at::Tensor& output, const at::Tensor& region) {
  if (output.dim() == 2 && output.size(0) == 1) return output[0].argmax().item<int64_t>();
  if (output.dim() != 4 || output.size(0) != 1) {
    throw usage_error("top class: expected the output of one image, [1, C] or [1, C, H, W], got " +
                      c10::str(output.sizes()));
  }
  auto predicted = output[0].detach().argmax(0);
  if (region.defined()) {
    check_region("top class", region, output);
    predicted = predicted.masked_select(region.to(predicted.device()).ne(0));
  }
  if (predicted.numel() == 0) throw usage_error("top class: the region has no pixel");
  return at::bincount(predicted.flatten(), {}, output.size(1)).argmax().item<int64_t>();
}

at::Tensor class_probability(const at::Tensor& output, int64_t index, const at::Tensor& region) {
  if (output.dim() != 2 && output.dim() != 4) {
    throw usage_error("class probability: expected logits [N, C] or a dense output [N, C, H, W], "
                      "got " + c10::str(output.sizes()));
  }
  check_range({index}, output.size(1));
  const auto p = at::softmax(output.detach().to(at::kDouble), 1).select(1, index);
  if (output.dim() == 2) return p.to(at::kCPU);
  if (!region.defined()) return p.mean({1, 2}).to(at::kCPU);
  check_region("class probability", region, output);
  const auto w = region.to(p.options());
  const double total = w.sum().item<double>();
  if (total <= 0) throw usage_error("class probability: the region has no pixel");
  return ((p * w).sum({1, 2}) / total).to(at::kCPU);
}

Reduction parse_reduction(const std::string& name) {
  if (name == "mean") return Reduction::kMean;
  if (name == "sum") return Reduction::kSum;
  if (name == "abs-sum") return Reduction::kAbsSum;
  throw usage_error("unknown reduction '" + name + "'; expected mean, sum or abs-sum");
}

const char* to_string(Reduction reduction) {
  switch (reduction) {
    case Reduction::kMean: return "mean";
    case Reduction::kSum: return "sum";
    case Reduction::kAbsSum: return "abs-sum";
  }
  return "?";
}

Target Target::layer_unit(const std::string& layer, int64_t filter, Reduction reduction) {
  if (filter < 0) throw usage_error("filter index " + std::to_string(filter) + " is negative");
  return Target(
      [layer, filter, reduction](const ForwardResult& r) {
        const auto& a = r.taps.at(layer);
        if (a.dim() < 2 || filter >= a.size(1)) {
          throw usage_error("filter " + std::to_string(filter) + " of layer " + layer +
                            ": the layer has " + std::to_string(a.dim() < 2 ? 0 : a.size(1)) +
                            " channels (0.." + std::to_string(a.dim() < 2 ? 0 : a.size(1) - 1) +
                            ")");
        }
        auto unit = a.select(1, filter).reshape({a.size(0), -1});
        switch (reduction) {
          case Reduction::kMean: return unit.mean(1);
          case Reduction::kSum: return unit.sum(1);
          case Reduction::kAbsSum: return unit.abs().sum(1);
        }
        return unit.mean(1);
      },
      {layer},
      std::string(to_string(reduction)) + " of filter " + std::to_string(filter) + " at " + layer);
}

Target Target::select(int64_t i) const {
  if (per_image_.empty()) return *this;
  if (i < 0 || i >= static_cast<int64_t>(per_image_.size())) {
    throw usage_error("target select: image " + std::to_string(i) + " of " +
                      std::to_string(per_image_.size()));
  }
  if (per_image_masks_.defined()) return region_logit(per_image_[i], per_image_masks_[i]);
  return class_logit(per_image_[i]);
}

Target Target::rows(int64_t begin, int64_t end) const {
  if (per_image_.empty()) return *this;
  if (begin < 0 || end > static_cast<int64_t>(per_image_.size()) || begin >= end) {
    throw usage_error("target rows: [" + std::to_string(begin) + ", " + std::to_string(end) +
                      ") of " + std::to_string(per_image_.size()) + " images");
  }
  std::vector<int64_t> indices(per_image_.begin() + begin, per_image_.begin() + end);
  if (per_image_masks_.defined()) {
    return region_logits(std::move(indices), per_image_masks_.slice(0, begin, end));
  }
  return class_logits(std::move(indices));
}

Target Target::repeat_interleave(int64_t k) const {
  if (k < 1) throw usage_error("repeat_interleave: k must be >= 1");
  if (per_image_.empty() || k == 1) return *this;
  std::vector<int64_t> repeated;
  for (auto index : per_image_) repeated.insert(repeated.end(), k, index);
  if (per_image_masks_.defined()) {
    return region_logits(std::move(repeated), per_image_masks_.repeat_interleave(k, 0));
  }
  return class_logits(std::move(repeated));
}

Target Target::custom(ScoreFn score, std::vector<std::string> taps, std::string description) {
  return Target(std::move(score), std::move(taps), std::move(description));
}

at::Tensor Target::score(const ForwardResult& result) const { return score_(result); }

}  // namespace cnnvis
