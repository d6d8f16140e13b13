#!/usr/bin/env bash
# Installs the kiln built in $1 into a fresh prefix under $2, then builds two consumers against it:
# a CMake project using find_package(kiln) and kiln::kiln, and a plain g++ line using pkg-config
# kiln-cpp; then the C ABI's example (docs/examples/c_api_example.c) twice, through find_package and
# kiln::c and through a plain cc line using pkg-config kiln.
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

pcdir=$(dirname "$(find "$work/prefix" -name kiln-cpp.pc | head -n1)")
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs --static kiln-cpp)
g++ "$here/consumer/main.cpp" $flags -o "$work/pkgconfig-consumer"
out=$("$work/pkgconfig-consumer")
echo "pkg-config consumer: $out"
grep -q "CUDA_ERROR_ILLEGAL_ADDRESS sticky=1" <<<"$out"
# The C ABI. Its example exits 0 after a right saxpy, 3 when it compiled but found no GPU.
test -f "$work/prefix/include/kiln/kiln.h"
libdir=$(dirname "$(find "$work/prefix" -name 'libkiln.so' | head -n1)")
example=$here/../../docs/examples/c_api_example.c
run_c_example() {
  local rc=0
  KILN_CACHE_DIR="$work/cache" LD_LIBRARY_PATH="$libdir" "$1" >"$work/c-example.log" 2>&1 || rc=$?
  cat "$work/c-example.log"
  [ "$rc" -eq 0 ] || { [ "$rc" -eq 3 ] && [ "${KILN_REQUIRE_GPU:-0}" != 1 ]; }
}
cmake -S "$here/c_consumer" -B "$work/c-consumer-build" -DCMAKE_PREFIX_PATH="$work/prefix" -DEXAMPLE="$example" \
      >"$work/c-configure.log"
cmake --build "$work/c-consumer-build" >"$work/c-build.log"
run_c_example "$work/c-consumer-build/c_consumer"
cc -std=c11 "$example" $(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs kiln) -o "$work/c-pkgconfig-consumer"
run_c_example "$work/c-pkgconfig-consumer"
# The Python package, where it was built: the installed copy finds the installed libkiln.so by its
# rpath, with nothing on LD_LIBRARY_PATH.
package=$(find "$work/prefix" -path '*site-packages/kiln/__init__.py' | head -n1)
if [ -n "$package" ]; then
  python=$(sed -n 's/^KILN_PYTHON_EXECUTABLE:[A-Z]*=//p' "$build/CMakeCache.txt")
  out=$(env -u PYTHONPATH PYTHONPATH="$(dirname "$(dirname "$package")")" KILN_CACHE_DIR="$work/cache" \
        "${python:-python3}" -c 'import kiln; i = kiln.compile("extern \"C\" __global__ void k() {}", target="sm_90"); print(kiln.__file__, i.target)')
  echo "python: $out"
  grep -q "^$work/prefix.*sm_90$" <<<"$out"
fi
# Nothing but the C ABI is visible in the installed library.
! nm -D --defined-only "$libdir/libkiln.so" | awk '$2 != "A" {print $3}' | grep -v '^kiln_'
echo "install test passed"
