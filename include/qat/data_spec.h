// Data specs: the one way to name a dataset in a string, as `qat train
// --data`, `qat calibrate --data`, `qat pipeline --data`, the C ABI and the
// checkpoint's "run.data" metadata do.
//
//   DIR                       an IDX folder laid out like MNIST:
//                             DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
//   FEATURES.npy,LABELS.npy   two .npy arrays: float32 [N, ...] and int64
//                             (or int32, or float32) [N, ...]
//
//   QAT_ASSIGN_OR_RETURN(Model model, Model::Load("mlp.onnx"));
//   DataSpecOptions options;
//   options.split = "test";
//   QAT_ASSIGN_OR_RETURN(Dataset test, LoadDataSpec(kFashionMnistDir, model, options));
//
// IDX images are normalized as IdxOptions says and shaped for the model's
// first input ([N, 784] or [N, 1, 28, 28]: its dimensions after the first).
// A .npy pair is the same for both splits (the split names a file set only
// for IDX).  `limit` keeps the first examples of either kind.
//
// Errors: NotFound naming the file that is missing; InvalidArgument naming
// the file that does not parse or whose shapes do not match; InvalidArgument
// for a split other than "train" or "test".
// Determinism: a pure function of the files and the options.
// Thread safety: may be called from several threads at once.
#ifndef QAT_DATA_SPEC_H_
#define QAT_DATA_SPEC_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "qat/api.h"
#include "qat/dataset.h"
#include "qat/model.h"

namespace qat {

struct DataSpecOptions {
  std::string split = "train";  // "train" or "test" (IDX: the t10k files)
  int64_t limit = 0;            // keep the first `limit` examples (0: all)
  // IDX only: x -> (x / 255 - mean) / std (Fashion-MNIST's statistics).
  float mean = IdxOptions().mean;
  float std = IdxOptions().std;
};

QAT_API absl::StatusOr<Dataset> LoadDataSpec(const std::string& spec, const Model& model,
                                             const DataSpecOptions& options = {});

}  // namespace qat

#endif  // QAT_DATA_SPEC_H_
