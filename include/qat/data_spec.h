// Data specs: the one way to name a dataset in a string, as `qat train
// --data`, `qat calibrate --data`, `qat pipeline --data`, the C ABI and the
// checkpoint's "run.data" metadata do.
//
//   DIR                       an IDX folder laid out like MNIST:
//                             DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
//   DIR                       (no IDX files in it) a folder of .npy files, one per
//                             model input and named after it (input_ids.npy,
//                             attention_mask.npy), and labels.npy when the set has
//                             labels; DIR/train/ and DIR/test/ when they exist
//   DATA.npz                  the same names as members of an .npz archive
//   FEATURES.npy              one array for a single-input model, no labels
//   FEATURES.npy,LABELS.npy   two .npy arrays: [N, ...] of the input's type and
//                             int64 (or int32, uint8, or float32) [N, ...] labels
//
// The first axis is the sample axis.  .npy inputs are memory-mapped (a batch
// reads its rows); labels are read whole.  Dataset::Bind matches the inputs
// to the model's inputs and checks their shapes and types.
//
//   QAT_ASSIGN_OR_RETURN(Model model, Model::Load("mlp.onnx"));
//   DataSpecOptions options;
//   options.split = "test";
//   QAT_ASSIGN_OR_RETURN(Dataset test, LoadDataSpec(kFashionMnistDir, model, options));
//
// IDX images are normalized as IdxOptions says and shaped for the model's
// first input ([N, 784] or [N, 1, 28, 28]: its dimensions after the first).
// .npy and .npz data is the same for both splits unless the folder has train/
// and test/.  `limit` keeps the first examples of every kind.
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
