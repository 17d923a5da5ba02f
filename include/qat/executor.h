// Executor: runs an ONNX model on the CPU.
//
//   QAT_ASSIGN_OR_RETURN(qat::Model model, qat::Model::Load("mlp.onnx"));
//   QAT_ASSIGN_OR_RETURN(auto executor, qat::Executor::Create(model));
//   QAT_ASSIGN_OR_RETURN(auto outputs, executor->Run({{"input", batch}}));
//
// Create() compiles the model once into a plan: the nodes in topological
// order, each bound to its kernel with its attributes already parsed, and the
// intermediate values assigned to buffers, shared between values whose
// lifetimes do not overlap.  Run() may then be called any number of times;
// buffers are kept from one run to the next and reallocated only when a
// value grows, so a dynamic batch dimension just works.
//
// Errors (absl::Status; nothing throws and bad input never crashes):
// - Create: Unimplemented for an op that is not supported, naming the op,
//   its domain, the opset and the node; InvalidArgument for a graph with a
//   cycle, a node input that nothing produces, or bad attributes.
// - Run: InvalidArgument for a missing or unknown input, a wrong dtype or a
//   shape that contradicts the model's declaration, and for shapes that
//   turn out to be incompatible inside a node (the message names the node).
//
// Determinism: kernels cut their work into tasks by size alone, so a run's
// results do not depend on how tasks land on threads; for a given thread
// count (and seed, for Dropout in training mode) they are bit-identical.
//
// Thread safety: Run() calls on one Executor are serialized.  Use one
// Executor per thread to run concurrently.
#ifndef QAT_EXECUTOR_H_
#define QAT_EXECUTOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "qat/api.h"
#include "qat/model.h"
#include "qat/tensor.h"

namespace qat {

// Synchronized BatchNorm (docs/training.md): the batch reductions of a
// training-mode BatchNormalization and of its gradient's ai.libqat
// BatchMean nodes, over every data-parallel rank.  `values` is [count,
// per-channel sums...] of this rank's batch, in double; the reducer
// replaces it by the sum over the ranks, in rank order (the trainer moves
// the doubles exactly, AllgatherWords: a per-channel sum can cancel, and
// float partial sums would lose what the whole batch's double sum keeps).  kStatistic: the forward's mean and
// variance (plain sums); kGradient: the batch means in the gradient rule,
// whose terms each rank computes as the gradient of its own loss (the
// trainer weighs them as it weighs the ranks' gradients).
enum class BatchReduction { kStatistic = 0, kGradient = 1 };
using BatchReducer = std::function<absl::Status(absl::Span<double> values, BatchReduction kind)>;

struct ExecutorOptions {
  // Threads used by the kernels, counting the caller; 0 means one per core.
  // At most kMaxThreads (qat/thread_pool.h); more is InvalidArgument.
  int num_threads = 0;
  // Seeds random ops that have no seed attribute (Dropout in training mode).
  // Each run draws new numbers: run k of an executor always draws the same.
  uint64_t seed = 0;
  // Applies a Relu, or a Clip with constant bounds, inside the Conv it reads
  // when it is that Conv's only reader (no separate pass or buffer; the
  // same bits).  false runs every node on its own: the reference the tests
  // compare with.
  bool fuse_conv_activations = true;
  // Empty (one process): batch statistics are the local batch's.
  BatchReducer batch_reducer;
};

class QAT_API Executor {
 public:
  static absl::StatusOr<std::unique_ptr<Executor>> Create(
      const Model& model, const ExecutorOptions& options = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // The graph inputs Run() expects (initializers excluded) and the outputs
  // it returns.
  const std::vector<ValueInfo>& inputs() const;
  const std::vector<ValueInfo>& outputs() const;
  int num_threads() const;
  // The bytes allocated for the main graph's intermediate values, which the
  // executor keeps from one run to the next (outputs handed out excluded).
  // Runs with the same input shapes stop changing it after the first three
  // (the first frees values early, the next plan the buffers with the sizes
  // the runs measured).
  int64_t buffer_bytes() const;

  // Runs the model.  `inputs` must hold every graph input, by name; the
  // result holds every graph output, by name.
  absl::StatusOr<std::map<std::string, Tensor>> Run(
      const std::map<std::string, Tensor>& inputs);

  // The same without copies, for loops such as a trainer's: the inputs are
  // read in place, and each output is swapped into (*outputs)[name], whose
  // previous tensor becomes the executor's buffer for the next run.  Passing
  // the same map every time, a loop allocates nothing after its first run.
  absl::Status Run(const std::map<std::string, const Tensor*>& inputs,
                   std::map<std::string, Tensor>* outputs);

 private:
  struct Plan;
  explicit Executor(std::unique_ptr<Plan> plan);
  std::unique_ptr<Plan> plan_;
};

}  // namespace qat

#endif  // QAT_EXECUTOR_H_
