// The NVRTC entry points of CUDA 12 and 13 that kiln takes when the loaded NVRTC has them
// (nvrtc_functions.def, all optional), declared by kiln so that it also builds against older
// headers (CUDA 11.8's nvrtc.h lacks them; docs/PORTABILITY.md). Nothing links against them: kiln
// only takes their types (decltype) and resolves them with dlsym. Against newer headers these are
// redeclarations of the same C functions, so the compiler checks that the signatures agree.
#pragma once

#include <nvrtc.h>

#include <cstddef>

extern "C" {
nvrtcResult nvrtcGetLTOIRSize(nvrtcProgram prog, size_t* LTOIRSizeRet);  // CUDA 12.0
nvrtcResult nvrtcGetLTOIR(nvrtcProgram prog, char* LTOIR);
nvrtcResult nvrtcGetPCHHeapSize(size_t* ret);  // CUDA 12.4 (automatic precompiled headers)
nvrtcResult nvrtcSetPCHHeapSize(size_t size);
nvrtcResult nvrtcGetPCHCreateStatus(nvrtcProgram prog);
nvrtcResult nvrtcGetPCHHeapSizeRequired(nvrtcProgram prog, size_t* size);
nvrtcResult nvrtcSetFlowCallback(nvrtcProgram prog, int (*callback)(void*, void*), void* payload);
}
