# Cross build for 64-bit Arm Linux with Debian's g++-aarch64-linux-gnu (docs/PORTABILITY.md).
#
# The C library and libstdc++ are the cross compiler's own (/usr/aarch64-linux-gnu). Everything
# else arm64 comes from KILN_AARCH64_SYSROOT, a folder of Debian arm64 packages unpacked with
# `dpkg -x` (scripts/portability makes one): CUDA 11.8's headers (nvidia-cuda-dev:arm64), the
# arm64 NVRTC 11.8, OpenSSL, GoogleTest, nlohmann-json and CLI11. Programs built here run under
# qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR), so ctest runs the tests under QEMU.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

if(NOT KILN_AARCH64_SYSROOT)
  set(KILN_AARCH64_SYSROOT "$ENV{KILN_AARCH64_SYSROOT}")
endif()
if(NOT KILN_AARCH64_SYSROOT)
  get_filename_component(KILN_AARCH64_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../../.portability/aarch64/sysroot" ABSOLUTE)
endif()
set(KILN_AARCH64_SYSROOT "${KILN_AARCH64_SYSROOT}" CACHE PATH "arm64 packages unpacked with dpkg -x")
# try_compile projects see the variable too.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES KILN_AARCH64_SYSROOT)
if(NOT EXISTS "${KILN_AARCH64_SYSROOT}/usr/include")
  message(FATAL_ERROR "KILN_AARCH64_SYSROOT=${KILN_AARCH64_SYSROOT} holds no usr/include: run scripts/portability")
endif()
set(KILN_AARCH64_RUNTIME /usr/aarch64-linux-gnu)  # the cross compiler's libc and libstdc++

# Libraries, headers and CMake packages only from the arm64 folders; programs (go, protoc,
# python3, clang++) are the host's, and the parts that need them are off in the cross build.
set(CMAKE_FIND_ROOT_PATH "${KILN_AARCH64_SYSROOT}" "${KILN_AARCH64_RUNTIME}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Debian's multiarch folders of the unpacked packages (OpenSSL's configuration.h lives in
# usr/include/aarch64-linux-gnu).
set(CMAKE_C_FLAGS_INIT "-isystem ${KILN_AARCH64_SYSROOT}/usr/include/aarch64-linux-gnu")
set(CMAKE_CXX_FLAGS_INIT "-isystem ${KILN_AARCH64_SYSROOT}/usr/include/aarch64-linux-gnu")
foreach(kind EXE SHARED MODULE)
  set(CMAKE_${kind}_LINKER_FLAGS_INIT
      "-L${KILN_AARCH64_SYSROOT}/usr/lib/aarch64-linux-gnu -Wl,-rpath-link,${KILN_AARCH64_SYSROOT}/usr/lib/aarch64-linux-gnu")
endforeach()

# qemu-aarch64 runs what was built: its dynamic loader and libc from the cross compiler's folder,
# the unpacked libraries (libcrypto, libnvrtc.so.11.2) through the guest's LD_LIBRARY_PATH.
# KILN_TEST_EMULATOR tells the tests they run under QEMU (a child program they start is not).
find_program(KILN_QEMU_AARCH64 qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR
    "${KILN_QEMU_AARCH64};-L;${KILN_AARCH64_RUNTIME};-E;LD_LIBRARY_PATH=${KILN_AARCH64_SYSROOT}/usr/lib/aarch64-linux-gnu;-E;KILN_TEST_EMULATOR=${KILN_QEMU_AARCH64} -L ${KILN_AARCH64_RUNTIME}")
