# Every dependency comes from a Debian 12 package; nothing is downloaded.
#   libonnx-dev      -> targets onnx, onnx_proto (no namespace; ONNX_ML=1, ONNX_NAMESPACE=onnx)
#   libprotobuf-dev  -> protobuf::libprotobuf
#   libabsl-dev      -> absl::status, absl::statusor, absl::span, ...
#   libeigen3-dev    -> Eigen3::Eigen
find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)
find_package(ONNX REQUIRED)
find_package(absl REQUIRED)
find_package(Eigen3 REQUIRED NO_MODULE)

if(QAT_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(QAT_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED)
endif()

# Data-parallel training over MPI (Debian's libopenmpi-dev), optional: ON
# when an MPI is found; the library builds without it (qat/collective.h).
find_package(MPI COMPONENTS C QUIET)
option(QAT_WITH_MPI "Data-parallel training over MPI" ${MPI_C_FOUND})
if(QAT_WITH_MPI AND NOT MPI_C_FOUND)
  message(FATAL_ERROR "QAT_WITH_MPI is ON but no MPI was found (install libopenmpi-dev)")
endif()
message(STATUS "libqat: MPI data-parallel training ${QAT_WITH_MPI}")
