// Turns the exceptions that the standard library throws for sizes and
// resources into a Status, at the library's entry points.
//
// The library itself reports errors as values, but std::vector, std::string,
// std::thread and Tensor's constructor throw: std::bad_alloc when memory
// runs out, std::length_error for a size too large to hold (Tensor throws it
// for dims whose count does not fit, see qat/tensor.h), std::system_error
// when the system refuses a thread.  None of them may end a process, so an
// entry point that can allocate in proportion to its input runs its body
// through CatchExceptions:
//
//   std::bad_alloc, std::system_error -> ResourceExhausted
//   std::length_error                 -> InvalidArgument
//   any other std::exception          -> Internal
//
// with the message prefixed by `what` ("reading 'x.idx'").
#ifndef QAT_LIB_CORE_CATCH_EXCEPTIONS_H_
#define QAT_LIB_CORE_CATCH_EXCEPTIONS_H_

#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace qat {

// The Status for the exception being handled (call inside a catch block).
inline absl::Status StatusFromCurrentException(absl::string_view what) {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": out of memory"));
  } catch (const std::length_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", e.what()));
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
}

// Calls fn(), which returns absl::Status or absl::StatusOr<T>, and returns
// its result, or the Status of what it threw.
template <typename F>
auto CatchExceptions(absl::string_view what, F&& fn) -> decltype(fn()) {
  try {
    return std::forward<F>(fn)();
  } catch (const std::exception&) {
    return StatusFromCurrentException(what);
  }
}

}  // namespace qat

#endif  // QAT_LIB_CORE_CATCH_EXCEPTIONS_H_
