#!/usr/bin/env bash
# Installs the kiln built in $1 into a fresh prefix under $2, then builds two consumers against it:
# a CMake project using find_package(kiln) and kiln::kiln, and a plain g++ line using pkg-config.
set -euo pipefail
build=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"

test -f "$work/prefix/include/kiln/driver/error.hpp"
test -f "$work/prefix/include/kiln/version.hpp"
test -f "$work/prefix/lib/cmake/kiln/kilnConfig.cmake" || test -f "$work"/prefix/lib*/cmake/kiln/kilnConfig.cmake
test -x "$work/prefix/bin/kiln"

cmake -S "$here/consumer" -B "$work/consumer-build" -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log"
cmake --build "$work/consumer-build" >"$work/build.log"
out=$("$work/consumer-build/consumer")
echo "cmake consumer: $out"
grep -q "CUDA_ERROR_ILLEGAL_ADDRESS sticky=1" <<<"$out"

pcdir=$(dirname "$(find "$work/prefix" -name kiln.pc | head -n1)")
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs --static kiln)
g++ "$here/consumer/main.cpp" $flags -o "$work/pkgconfig-consumer"
out=$("$work/pkgconfig-consumer")
echo "pkg-config consumer: $out"
grep -q "CUDA_ERROR_ILLEGAL_ADDRESS sticky=1" <<<"$out"
echo "install test passed"
