// Reordering and filtering a graph's node, initializer or value lists in
// place.  Only element pointers move: no message is copied, whatever arena
// the list lives on.  (Rebuilding a list into a fresh RepeatedPtrField and
// swapping it back copies every message twice when the graph is on an
// arena, as ArenaModelProto's are.)
#ifndef QAT_LIB_GRAPH_REARRANGE_H_
#define QAT_LIB_GRAPH_REARRANGE_H_

#include <numeric>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "google/protobuf/repeated_ptr_field.h"

namespace qat {
namespace graph {

// Makes `list` hold its elements order[0], order[1], ... and no others.
// `order` names each index at most once; elements it omits are deleted.
template <typename T>
void Rearrange(google::protobuf::RepeatedPtrField<T>* list, absl::Span<const int> order) {
  const int n = list->size();
  // at[p]: the original index of the element now at position p;
  // where[e]: the position of original element e.
  std::vector<int> at(static_cast<size_t>(n)), where(static_cast<size_t>(n));
  std::iota(at.begin(), at.end(), 0);
  std::iota(where.begin(), where.end(), 0);
  for (int i = 0; i < static_cast<int>(order.size()); ++i) {
    const int p = where[order[i]];
    if (p == i) continue;
    list->SwapElements(i, p);
    std::swap(at[i], at[p]);
    where[at[i]] = i;
    where[at[p]] = p;
  }
  const int kept = static_cast<int>(order.size());
  if (kept < n) list->DeleteSubrange(kept, n - kept);
}

// Deletes the elements for which keep(element) is false, keeping the
// order of the rest; true when any was deleted.
template <typename T, typename Keep>
bool KeepIf(google::protobuf::RepeatedPtrField<T>* list, Keep keep) {
  int kept = 0;
  for (int k = 0; k < list->size(); ++k) {
    if (!keep(list->Get(k))) continue;
    if (kept != k) list->SwapElements(kept, k);
    ++kept;
  }
  if (kept == list->size()) return false;
  list->DeleteSubrange(kept, list->size() - kept);
  return true;
}

}  // namespace graph
}  // namespace qat

#endif  // QAT_LIB_GRAPH_REARRANGE_H_
