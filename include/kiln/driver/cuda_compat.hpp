// What kiln uses of the CUDA 12 and 13 driver API that older headers (CUDA 11.8's cuda.h and
// cudaTypedefs.h) lack, declared by kiln so that it builds against them (docs/PORTABILITY.md).
//
// Each declaration is the driver's ABI as CUDA 13.0's headers describe it: a kiln built against
// 11.8 still asks a newer driver for the same entry points, in the same versions, and calls them
// through the same signatures (cuda_loader.cpp). Built against headers that have a declaration,
// kiln's own is not used but checked against it (static_assert), so every normal build verifies
// what an 11.8 build relies on.
//
// Only handles and function pointer types are declared; of the structures only those kiln fills
// itself (CUgraphExecUpdateResultInfo). The others (CUctxCreateParams, CUDA_KERNEL_NODE_PARAMS_v2)
// stay incomplete: kiln passes null or does not use them.
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>

#include <cstddef>
#include <type_traits>

// KILN_PFN_<version>(PFN name, (parameters)): declares the function pointer type where the headers
// are older than <version>, checks it against cudaTypedefs.h's otherwise.
#define KILN_DECLARE_PFN(name, params) typedef CUresult(CUDAAPI* PFN_##name) params;
#define KILN_CHECK_PFN(name, params)                                       \
  static_assert(std::is_same_v<PFN_##name, CUresult(CUDAAPI*) params>,   \
                "kiln's PFN_" #name " (cuda_compat.hpp) differs from cudaTypedefs.h's");

#if CUDA_VERSION < 12000
#define KILN_PFN_12000 KILN_DECLARE_PFN
#else
#define KILN_PFN_12000 KILN_CHECK_PFN
#endif
#if CUDA_VERSION < 12020
#define KILN_PFN_12020 KILN_DECLARE_PFN
#else
#define KILN_PFN_12020 KILN_CHECK_PFN
#endif
#if CUDA_VERSION < 12030
#define KILN_PFN_12030 KILN_DECLARE_PFN
#else
#define KILN_PFN_12030 KILN_CHECK_PFN
#endif
#if CUDA_VERSION < 12040
#define KILN_PFN_12040 KILN_DECLARE_PFN
#else
#define KILN_PFN_12040 KILN_CHECK_PFN
#endif
#if CUDA_VERSION < 12050
#define KILN_PFN_12050 KILN_DECLARE_PFN
#else
#define KILN_PFN_12050 KILN_CHECK_PFN
#endif
#if CUDA_VERSION < 12080
#define KILN_PFN_12080 KILN_DECLARE_PFN
#else
#define KILN_PFN_12080 KILN_CHECK_PFN
#endif
#if CUDA_VERSION < 13000
#define KILN_PFN_13000 KILN_DECLARE_PFN
#else
#define KILN_PFN_13000 KILN_CHECK_PFN
#endif

namespace kiln::driver::compat {

// CUgraphExecUpdateResultInfo (CUDA 12.0), which cuGraphExecUpdate_v12000 fills.
struct GraphExecUpdateResultInfo {
  CUgraphExecUpdateResult result;
  CUgraphNode errorNode;
  CUgraphNode errorFromNode;
};

}  // namespace kiln::driver::compat

#if CUDA_VERSION < 12000
typedef struct CUlib_st* CUlibrary;
typedef struct CUkern_st* CUkernel;
typedef enum CUlibraryOption_enum : int {} CUlibraryOption;  // kiln passes none
typedef kiln::driver::compat::GraphExecUpdateResultInfo CUgraphExecUpdateResultInfo;
typedef struct CUDA_KERNEL_NODE_PARAMS_v2_st CUDA_KERNEL_NODE_PARAMS_v2;
#else
static_assert(sizeof(kiln::driver::compat::GraphExecUpdateResultInfo) == sizeof(CUgraphExecUpdateResultInfo));
static_assert(offsetof(kiln::driver::compat::GraphExecUpdateResultInfo, result) ==
              offsetof(CUgraphExecUpdateResultInfo, result));
static_assert(offsetof(kiln::driver::compat::GraphExecUpdateResultInfo, errorNode) ==
              offsetof(CUgraphExecUpdateResultInfo, errorNode));
static_assert(offsetof(kiln::driver::compat::GraphExecUpdateResultInfo, errorFromNode) ==
              offsetof(CUgraphExecUpdateResultInfo, errorFromNode));
#endif
#if CUDA_VERSION < 12000
// cuGetProcAddress_v2's answer about the symbol (CUDA 12.0).
typedef enum CUdriverProcAddressQueryResult_enum {
  CU_GET_PROC_ADDRESS_SUCCESS = 0,
  CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND = 1,
  CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT = 2
} CUdriverProcAddressQueryResult;
#else
static_assert(CU_GET_PROC_ADDRESS_SUCCESS == 0 && CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND == 1 &&
              CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT == 2);
#endif
#if CUDA_VERSION < 12040
typedef struct CUgreenCtx_st* CUgreenCtx;
#endif
#if CUDA_VERSION < 12050
typedef struct CUctxCreateParams_st CUctxCreateParams;
#endif

KILN_PFN_12000(cuGetProcAddress_v12000, (const char* symbol, void** pfn, int driverVersion, cuuint64_t flags,
                                         CUdriverProcAddressQueryResult* symbolFound))
KILN_PFN_12000(cuCtxGetId_v12000, (CUcontext ctx, unsigned long long* ctxId))
KILN_PFN_12000(cuStreamGetId_v12000, (CUstream hStream, unsigned long long* streamId))
KILN_PFN_12000(cuLibraryLoadData_v12000,
               (CUlibrary* library, const void* code, CUjit_option* jitOptions, void** jitOptionsValues,
                unsigned int numJitOptions, CUlibraryOption* libraryOptions, void** libraryOptionValues,
                unsigned int numLibraryOptions))
KILN_PFN_12000(cuLibraryUnload_v12000, (CUlibrary library))
KILN_PFN_12000(cuLibraryGetKernel_v12000, (CUkernel* pKernel, CUlibrary library, const char* name))
KILN_PFN_12000(cuLibraryGetModule_v12000, (CUmodule* pMod, CUlibrary library))
KILN_PFN_12000(cuLibraryGetGlobal_v12000, (CUdeviceptr* dptr, size_t* bytes, CUlibrary library, const char* name))
KILN_PFN_12000(cuKernelGetFunction_v12000, (CUfunction* pFunc, CUkernel kernel))
KILN_PFN_12000(cuKernelGetAttribute_v12000, (int* pi, CUfunction_attribute attrib, CUkernel kernel, CUdevice dev))
KILN_PFN_12000(cuKernelSetAttribute_v12000, (CUfunction_attribute attrib, int val, CUkernel kernel, CUdevice dev))
KILN_PFN_12000(cuGraphExecUpdate_v12000,
               (CUgraphExec hGraphExec, CUgraph hGraph, CUgraphExecUpdateResultInfo* resultInfo))
KILN_PFN_12000(cuGraphKernelNodeGetParams_v12000, (CUgraphNode hNode, CUDA_KERNEL_NODE_PARAMS_v2* nodeParams))
KILN_PFN_12000(cuGraphExecKernelNodeSetParams_v12000,
               (CUgraphExec hGraphExec, CUgraphNode hNode, const CUDA_KERNEL_NODE_PARAMS_v2* nodeParams))
KILN_PFN_12000(cuGraphAddKernelNode_v12000,
               (CUgraphNode* phGraphNode, CUgraph hGraph, const CUgraphNode* dependencies, size_t numDependencies,
                const CUDA_KERNEL_NODE_PARAMS_v2* nodeParams))
KILN_PFN_12020(cuMemPrefetchAsync_v12020,
               (CUdeviceptr_v2 devPtr, size_t count, CUmemLocation_v1 location, unsigned int flags, CUstream hStream))
KILN_PFN_12020(cuMemAdvise_v12020, (CUdeviceptr_v2 devPtr, size_t count, CUmem_advise advice, CUmemLocation_v1 location))
KILN_PFN_12030(cuKernelGetName_v12030, (const char** name, CUkernel hfunc))
KILN_PFN_12030(cuFuncGetName_v12030, (const char** name, CUfunction hfunc))
KILN_PFN_12040(cuKernelGetParamInfo_v12040, (CUkernel kernel, size_t paramIndex, size_t* paramOffset, size_t* paramSize))
KILN_PFN_12040(cuFuncGetParamInfo_v12040, (CUfunction func, size_t paramIndex, size_t* paramOffset, size_t* paramSize))
KILN_PFN_12050(cuCtxCreate_v12050, (CUcontext* pctx, CUctxCreateParams* ctxCreateParams, unsigned int flags, CUdevice dev))
KILN_PFN_12050(cuStreamGetCtx_v12050, (CUstream hStream, CUcontext* pctx, CUgreenCtx* pGreenCtx))
KILN_PFN_12080(cuEventElapsedTime_v12080, (float* pMilliseconds, CUevent hStart, CUevent hEnd))
KILN_PFN_13000(cuCtxGetDevice_v13000, (CUdevice* device, CUcontext ctx))
KILN_PFN_13000(cuCtxSynchronize_v13000, (CUcontext ctx))

#undef KILN_PFN_12000
#undef KILN_PFN_12020
#undef KILN_PFN_12030
#undef KILN_PFN_12040
#undef KILN_PFN_12050
#undef KILN_PFN_12080
#undef KILN_PFN_13000
#undef KILN_DECLARE_PFN
#undef KILN_CHECK_PFN

namespace kiln::driver::compat {

// CU_MEM_LOCATION_TYPE_HOST (CUDA 12.2): managed memory prefetched or advised to the host.
#if CUDA_VERSION >= 12020
inline constexpr CUmemLocationType mem_location_type_host = CU_MEM_LOCATION_TYPE_HOST;
static_assert(mem_location_type_host == 0x2);
#else
inline constexpr CUmemLocationType mem_location_type_host = static_cast<CUmemLocationType>(0x2);
#endif

}  // namespace kiln::driver::compat
