// A ModelProto that owns the protobuf arena it lives on.
//
// A pipeline builds and rewrites models of hundreds of thousands of small
// messages (nodes, their input and output names, attributes).  On the heap
// each is one or more malloc/free pairs, and glibc's allocator then spends
// as long as the passes themselves; on an arena they are carved from large
// blocks and released together with the model.  Messages a pass removes
// stay allocated until then, which for a model's graph is a small fraction
// of its weights (tensor data is held in strings that free with their
// message either way).
#ifndef QAT_LIB_CORE_ARENA_MODEL_PROTO_H_
#define QAT_LIB_CORE_ARENA_MODEL_PROTO_H_

#include <memory>
#include <utility>

#include "google/protobuf/arena.h"
#include "onnx/onnx_pb.h"

namespace qat {

class ArenaModelProto {
 public:
  ArenaModelProto()
      : arena_(std::make_unique<google::protobuf::Arena>()),
        proto_(google::protobuf::Arena::CreateMessage<onnx::ModelProto>(arena_.get())) {}
  // A deep copy of `from` on a new arena.
  explicit ArenaModelProto(const onnx::ModelProto& from) : ArenaModelProto() {
    proto_->CopyFrom(from);
  }
  // Takes over a heap proto (a copy: messages cannot change arenas).
  explicit ArenaModelProto(onnx::ModelProto&& from) : ArenaModelProto() {
    *proto_ = std::move(from);
  }
  ArenaModelProto(ArenaModelProto&& other) noexcept
      : arena_(std::move(other.arena_)), proto_(std::exchange(other.proto_, nullptr)) {}
  ArenaModelProto& operator=(ArenaModelProto&& other) noexcept {
    arena_ = std::move(other.arena_);
    proto_ = std::exchange(other.proto_, nullptr);
    return *this;
  }
  ArenaModelProto(const ArenaModelProto&) = delete;
  ArenaModelProto& operator=(const ArenaModelProto&) = delete;

  onnx::ModelProto* get() const { return proto_; }
  onnx::ModelProto& operator*() const { return *proto_; }
  onnx::ModelProto* operator->() const { return proto_; }

 private:
  std::unique_ptr<google::protobuf::Arena> arena_;  // owns *proto_
  onnx::ModelProto* proto_;
};

}  // namespace qat

#endif  // QAT_LIB_CORE_ARENA_MODEL_PROTO_H_
