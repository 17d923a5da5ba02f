#!/usr/bin/env bash
# Builds and runs one consumer of libqat; called by ctest.
#   run_consumer.sh install        BUILD_DIR WORK_DIR
#   run_consumer.sh find_package   SOURCE_DIR WORK_DIR
#   run_consumer.sh add_subdirectory SOURCE_DIR WORK_DIR
#   run_consumer.sh pkg_config     SOURCE_DIR WORK_DIR
set -euo pipefail
mode=$1 dir=$2 work=$3
prefix=$work/prefix
here=$(cd "$(dirname "$0")" && pwd)

case "$mode" in
  install)
    rm -rf "$prefix"
    cmake --install "$dir" --prefix "$prefix" > "$work/install.log"
    for f in include/qat/c_api.h include/qat/fake_quant.h include/qat/version.h \
             lib/libqat.a lib/cmake/qat/qatConfig.cmake \
             lib/cmake/qat/qatConfigVersion.cmake lib/pkgconfig/qat.pc bin/qat; do
      [ -e "$prefix/$f" ] || { echo "missing after install: $f"; exit 1; }
    done
    soname=$(objdump -p "$prefix/lib/libqat.so" | awk '/SONAME/ {print $2}')
    [[ "$soname" =~ ^libqat\.so\.[0-9]+$ ]] || { echo "bad SONAME '$soname'"; exit 1; }
    "$prefix/bin/qat" --version
    ;;
  find_package)
    rm -rf "$work/find_package"
    cmake -S "$here/find_package" -B "$work/find_package" \
      -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release > /dev/null
    cmake --build "$work/find_package" -j 2 > /dev/null
    LD_LIBRARY_PATH="$prefix/lib" "$work/find_package/consumer_shared"
    "$work/find_package/consumer_static"
    # The shared consumer really loads the installed libqat.so.
    deps=$(LD_LIBRARY_PATH="$prefix/lib" ldd "$work/find_package/consumer_shared")
    grep -q "$prefix/lib/libqat.so" <<< "$deps" ||
      { echo "consumer_shared does not load $prefix/lib/libqat.so:"; echo "$deps"; exit 1; }
    ;;
  add_subdirectory)
    rm -rf "$work/add_subdirectory"
    cmake -S "$here/add_subdirectory" -B "$work/add_subdirectory" \
      -DQAT_SOURCE_DIR="$dir" -DCMAKE_BUILD_TYPE=Release > /dev/null
    cmake --build "$work/add_subdirectory" -j 2 --target consumer > /dev/null
    "$work/add_subdirectory/consumer"
    ;;
  pkg_config)
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
    pkg-config --exists qat
    # shellcheck disable=SC2046
    cc -std=c99 -Wall -Werror -o "$work/c_consumer" "$here/c_consumer.c" \
      $(pkg-config --cflags --libs qat)
    LD_LIBRARY_PATH="$prefix/lib" "$work/c_consumer"
    ;;
  *)
    echo "unknown mode $mode"; exit 2 ;;
esac
