#include "core/op_schemas.h"

#include <mutex>

#include "onnx/defs/schema.h"
#include "onnx/defs/shape_inference.h"

namespace qat {
namespace {

using onnx::AttributeProto;
using onnx::OpSchema;

// Y takes X's type and shape; the mask is bool of X's shape.
void InferFakeQuant(onnx::InferenceContext& ctx) {
  const bool has_mask = ctx.getNumOutputs() > 1;
  onnx::propagateElemTypeFromInputToOutput(ctx, 0, 0);
  if (has_mask) onnx::updateOutputElemType(ctx, 1, onnx::TensorProto::BOOL);
  if (onnx::hasInputShape(ctx, 0)) {
    onnx::propagateShapeFromInputToOutput(ctx, 0, 0);
    if (has_mask) onnx::propagateShapeFromInputToOutput(ctx, 0, 1);
  }
}

OpSchema FakeQuantSchema(const char* domain, bool per_channel) {
  OpSchema s;
  s.SetName("FakeQuant").SetDomain(domain).SinceVersion(1)
      .SetDoc(per_channel
                  ? "Per-channel quantize-dequantize along `axis` (libqat)."
                  : "Per-tensor quantize-dequantize (ONNX Runtime contrib).")
      .Input(0, "X", "input", "T")
      .Input(1, "scale", "scale (a scalar, or 1-D per channel)", "T")
      .Input(2, "zero_point", "zero point, as float (a scalar, or 1-D)", "T")
      .Output(0, "Y", "quantized-dequantized input", "T")
      .Output(1, "mask", "true where the input fell inside the range",
              "T_BOOL", OpSchema::Optional)
      .Attr("quant_min", "lower end of the integer range",
            AttributeProto::INT, static_cast<int64_t>(0))
      .Attr("quant_max", "upper end of the integer range",
            AttributeProto::INT, static_cast<int64_t>(255))
      .TypeConstraint("T", {"tensor(float)"}, "float tensors")
      .TypeConstraint("T_BOOL", {"tensor(bool)"}, "bool tensors")
      .TypeAndShapeInferenceFunction(InferFakeQuant);
  if (per_channel) {
    s.Attr("axis", "the channel (or blocked) axis", AttributeProto::INT,
           static_cast<int64_t>(0));
    s.Attr("block_size",
           "0: per channel along axis; > 0: blocks of this many elements along "
           "axis, scale and zero point shaped as QuantizeLinear-21's",
           AttributeProto::INT, static_cast<int64_t>(0));
  }
  return s;
}

OpSchema FakeQuantGradSchema() {
  OpSchema s;
  s.SetName("FakeQuantGrad").SetDomain(kMicrosoftDomain).SinceVersion(1)
      .SetDoc("Straight-through gradient of FakeQuant: dX = mask ? dY : 0.")
      .Input(0, "dY", "gradient of Y", "T")
      .Input(1, "gradient_mask", "FakeQuant's mask", "T_BOOL")
      .Output(0, "dX", "gradient of X", "T")
      .TypeConstraint("T", {"tensor(float)"}, "float tensors")
      .TypeConstraint("T_BOOL", {"tensor(bool)"}, "bool tensors")
      .TypeAndShapeInferenceFunction(onnx::propagateShapeAndTypeFromFirstInput);
  return s;
}

// Outputs take the shapes of X, scale and zero point.
void InferFakeQuantLsqGrad(onnx::InferenceContext& ctx) {
  for (size_t out = 0; out < 3 && out < ctx.getNumOutputs(); ++out) {
    const size_t in = out == 0 ? 0 : out + 1;
    onnx::propagateElemTypeFromInputToOutput(ctx, in, out);
    if (onnx::hasInputShape(ctx, in)) onnx::propagateShapeFromInputToOutput(ctx, in, out);
  }
}

OpSchema FakeQuantLsqGradSchema() {
  OpSchema s;
  s.SetName("FakeQuantLsqGrad").SetDomain(kLibqatDomain).SinceVersion(1)
      .SetDoc("LSQ/LSQ+ backward of FakeQuant with a learnable scale and zero point "
              "(libqat).  A scalar scale is per tensor, a 1-D scale per channel, and "
              "block_size > 0 per block.")
      .Input(0, "X", "FakeQuant's input", "T")
      .Input(1, "dY", "gradient of FakeQuant's output", "T")
      .Input(2, "scale", "scale", "T")
      .Input(3, "zero_point", "zero point, as float", "T")
      .Output(0, "dX", "straight-through gradient of X", "T")
      .Output(1, "dScale", "gradient of the scale, times grad_scale", "T")
      .Output(2, "dZeroPoint", "gradient of the zero point, times grad_scale", "T")
      .Attr("quant_min", "lower end of the integer range", AttributeProto::INT,
            static_cast<int64_t>(0))
      .Attr("quant_max", "upper end of the integer range", AttributeProto::INT,
            static_cast<int64_t>(255))
      .Attr("axis", "the channel axis, for a 1-D scale", AttributeProto::INT,
            static_cast<int64_t>(0))
      .Attr("block_size", "> 0: per block along axis, as FakeQuant's",
            AttributeProto::INT, static_cast<int64_t>(0))
      .Attr("grad_scale", "LSQ's gradient scale g", AttributeProto::FLOAT, 1.0f)
      .TypeConstraint("T", {"tensor(float)"}, "float tensors")
      .TypeAndShapeInferenceFunction(InferFakeQuantLsqGrad);
  return s;
}

// Y is [1, C, 1, ...] for X [N, C, ...].
void InferBatchMean(onnx::InferenceContext& ctx) {
  onnx::propagateElemTypeFromInputToOutput(ctx, 0, 0);
  if (!onnx::hasInputShape(ctx, 0)) return;
  const onnx::TensorShapeProto& x = onnx::getInputShape(ctx, 0);
  if (x.dim_size() < 2) fail_shape_inference("BatchMean needs X of rank >= 2");
  onnx::TensorShapeProto* y = onnx::getOutputShape(ctx, 0);
  for (int i = 0; i < x.dim_size(); ++i) {
    if (i == 1) {
      *y->add_dim() = x.dim(1);
    } else {
      y->add_dim()->set_dim_value(1);
    }
  }
}

OpSchema BatchMeanSchema() {
  OpSchema s;
  s.SetName("BatchMean").SetDomain(kLibqatDomain).SinceVersion(1)
      .SetDoc("Per-channel mean over every axis but 1, as training-mode "
              "BatchNormalization's gradient takes it; under synchronized BatchNorm "
              "over every rank's batch (libqat).")
      .Input(0, "X", "input [N, C, ...]", "T")
      .Output(0, "Y", "the means, [1, C, 1, ...]", "T")
      .Attr("kind", "0: a batch statistic, 1: a gradient term", AttributeProto::INT,
            static_cast<int64_t>(0))
      .TypeConstraint("T", {"tensor(float)", "tensor(double)", "tensor(float16)"},
                      "float tensors")
      .TypeAndShapeInferenceFunction(InferBatchMean);
  return s;
}

void AddDomain(const char* domain) {
  auto& ranges = onnx::OpSchemaRegistry::DomainToVersionRange::Instance();
  // ONNX's own registry may already know com.microsoft in some builds.
  if (ranges.Map().count(domain) == 0) ranges.AddDomainToVersion(domain, 1, 1);
}

void RegisterIfAbsent(OpSchema schema) {
  if (onnx::OpSchemaRegistry::Schema(schema.Name(), 1, schema.domain()) != nullptr) {
    return;
  }
  onnx::RegisterSchema(std::move(schema));
}

}  // namespace

void RegisterOpSchemas() {
  static std::once_flag once;
  std::call_once(once, [] {
    AddDomain(kMicrosoftDomain);
    AddDomain(kLibqatDomain);
    RegisterIfAbsent(FakeQuantSchema(kMicrosoftDomain, false));
    RegisterIfAbsent(FakeQuantSchema(kLibqatDomain, true));
    RegisterIfAbsent(FakeQuantGradSchema());
    RegisterIfAbsent(FakeQuantLsqGradSchema());
    RegisterIfAbsent(BatchMeanSchema());
  });
}

}  // namespace qat
