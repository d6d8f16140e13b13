// The table behind kiln::error_table(): every code kiln can report, with its documented meaning
// and kiln's practical advice.
//
// The numbers are literals on purpose (this file includes neither cuda.h nor nvrtc.h):
// tests/driver/test_error_table.cpp parses the toolkit headers and checks every name and value
// here against them, so the table cannot silently drift from the toolkit.
//
// Order: CUresult in cuda.h order, then nvrtcResult, nvmlReturn_t, kiln::Errc and nvJitLinkResult.
#include "kiln/driver/error.hpp"

namespace kiln {
namespace {

// The context is unusable after the error and only a new process recovers. For CUresult this is
// exactly the codes whose cuda.h documentation says "the process must be terminated and
// relaunched".
constexpr bool kSticky = true;
constexpr bool kNotSticky = false;

constexpr ErrorInfo kTable[] = {
    // CUresult (cuda.h, CUDA 13.0).
    {Domain::driver, 0, "CUDA_SUCCESS",
     "The call completed without error; for a query, the queried operation has also completed.",
     "Not an error: kiln never throws with this code. Seeing it inside an Error means a wrapper "
     "reported success as a failure, which is a kiln bug worth reporting.",
     kNotSticky},
    {Domain::driver, 1, "CUDA_ERROR_INVALID_VALUE",
     "One or more parameters of the call are outside their acceptable range of values.",
     "Usually a zero or oversized grid/block dimension, a null pointer or zero size, an unknown "
     "flag, or more dynamic shared memory than the kernel was configured for. Compare the launch "
     "or call against the device limits that `kiln doctor` prints (max threads per block, grid "
     "size, shared memory per block).",
     kNotSticky},
    {Domain::driver, 2, "CUDA_ERROR_OUT_OF_MEMORY",
     "The call could not allocate enough memory or other resources for the requested operation.",
     "Device memory is exhausted: other processes may hold it (see nvidia-smi or `kiln doctor`), "
     "buffers may be leaking, or a caching allocator keeps freed blocks. Free or reuse buffers, "
     "lower the batch size, or move the process to a less loaded GPU with CUDA_VISIBLE_DEVICES.",
     kNotSticky},
    {Domain::driver, 3, "CUDA_ERROR_NOT_INITIALIZED",
     "The CUDA driver has not been initialised with cuInit(), or initialisation failed.",
     "A driver call ran before cuInit() (kiln calls it for you, so suspect raw driver calls made "
     "elsewhere), or cuInit() failed earlier, classically in a child created by fork() after the "
     "parent had used CUDA. Fork before any CUDA call or spawn a fresh process, and run "
     "`kiln doctor` to see whether cuInit() succeeds at all.",
     kNotSticky},
    {Domain::driver, 4, "CUDA_ERROR_DEINITIALIZED",
     "The CUDA driver is in the process of shutting down.",
     "A CUDA call ran during process exit, typically from the destructor of a static or "
     "thread_local object that outlived the driver's teardown. Release kiln objects before main() "
     "returns instead of keeping them in globals.",
     kNotSticky},
    {Domain::driver, 5, "CUDA_ERROR_PROFILER_DISABLED",
     "The profiler is not initialised for this run, which happens when external profiling tools "
     "such as the Visual Profiler are in use.",
     "cuProfilerStart/cuProfilerStop were called while an external tool (Nsight Systems, Nsight "
     "Compute) owns profiling. Harmless: ignore it, or let the tool's capture-range option (e.g. "
     "`nsys --capture-range=cudaProfilerApi`) use those calls.",
     kNotSticky},
    {Domain::driver, 6, "CUDA_ERROR_PROFILER_NOT_INITIALIZED",
     "Deprecated since CUDA 5.0: it is no longer an error to enable or disable profiling without "
     "initialisation.",
     "Current drivers never return it; seeing it means a very old driver or a misreported value. "
     "Safe to ignore around cuProfilerStart/cuProfilerStop.",
     kNotSticky},
    {Domain::driver, 7, "CUDA_ERROR_PROFILER_ALREADY_STARTED",
     "Deprecated since CUDA 5.0: it is no longer an error to call cuProfilerStart() while "
     "profiling is already enabled.",
     "Current drivers never return it, and an unbalanced cuProfilerStart() is harmless. Ignore "
     "it.",
     kNotSticky},
    {Domain::driver, 8, "CUDA_ERROR_PROFILER_ALREADY_STOPPED",
     "Deprecated since CUDA 5.0: it is no longer an error to call cuProfilerStop() while "
     "profiling is already disabled.",
     "Current drivers never return it, and an unbalanced cuProfilerStop() is harmless. Ignore it.",
     kNotSticky},
    {Domain::driver, 34, "CUDA_ERROR_STUB_LIBRARY",
     "The loaded CUDA driver is a stub library rather than a real driver, so driver calls fail.",
     "The process loaded the toolkit's link-time stub (.../lib64/stubs/libcuda.so) instead of the "
     "driver's libcuda.so.1, usually because LD_LIBRARY_PATH or an rpath points into the stubs "
     "directory. Remove it from the run-time search path; `kiln doctor` shows which libcuda was "
     "loaded.",
     kNotSticky},
    {Domain::driver, 36, "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER",
     "The call requires a newer CUDA driver than the one installed.",
     "The code uses a driver API or feature introduced after the installed driver's CUDA version. "
     "Update the NVIDIA driver or avoid the feature; `kiln doctor` shows the driver's CUDA "
     "version next to the toolkit's.",
     kNotSticky},
    {Domain::driver, 46, "CUDA_ERROR_DEVICE_UNAVAILABLE",
     "The requested device is currently unavailable, often because its compute mode is "
     "exclusive-process or prohibited.",
     "Another process owns a GPU in EXCLUSIVE_PROCESS mode, or the GPU is set to PROHIBITED. "
     "Check the mode with `nvidia-smi -q -d COMPUTE` or `kiln doctor`, pick another GPU via "
     "CUDA_VISIBLE_DEVICES, or have an administrator run `nvidia-smi -c DEFAULT`.",
     kNotSticky},
    {Domain::driver, 100, "CUDA_ERROR_NO_DEVICE",
     "The installed CUDA driver detected no CUDA-capable device.",
     "The driver is loaded but sees no GPU: the container was started without GPUs (--gpus all or "
     "the NVIDIA container runtime), CUDA_VISIBLE_DEVICES is empty or names no existing GPU, or "
     "the GPU fell off the bus (look for Xid messages in dmesg). `kiln doctor` shows what the "
     "driver and NVML can see.",
     kNotSticky},
    {Domain::driver, 101, "CUDA_ERROR_INVALID_DEVICE",
     "The device ordinal does not name a valid CUDA device, or the requested action is invalid "
     "for that device.",
     "A device index at or beyond cuDeviceGetCount() (CUDA_VISIBLE_DEVICES renumbers the visible "
     "GPUs from 0), or a feature the device lacks. List the visible devices and their indices "
     "with `kiln doctor`.",
     kNotSticky},
    {Domain::driver, 102, "CUDA_ERROR_DEVICE_NOT_LICENSED",
     "The GRID (vGPU) license has not been applied.",
     "On a virtual GPU the NVIDIA license client has not obtained a license, so CUDA is refused. "
     "Check the license state in `nvidia-smi -q` and the nvidia-gridd service and license server "
     "configuration.",
     kNotSticky},
    {Domain::driver, 200, "CUDA_ERROR_INVALID_IMAGE",
     "The device kernel image is invalid, which can also mean an invalid CUDA module.",
     "The bytes given to cuModuleLoadData/cuLibraryLoadData are not a valid CUBIN, PTX or fatbin "
     "for this device: truncated or corrupted data, PTX without its terminating NUL, a stale "
     "cached binary, or a CUBIN built for another GPU architecture. Recompile for the device's "
     "sm_XX (shown by `kiln doctor`) and drop any cached copy.",
     kNotSticky},
    {Domain::driver, 201, "CUDA_ERROR_INVALID_CONTEXT",
     "Most often no context is bound to the calling thread; it can also mean the context handle "
     "is invalid (e.g. destroyed), mixes API versions, or is a green context not converted with "
     "cuCtxFromGreenCtx.",
     "Contexts are current per thread: a worker thread that never made kiln's context current, or "
     "a context destroyed while objects still used it, causes this. Make the context current on "
     "every thread that issues CUDA calls and keep it alive longer than its modules, streams and "
     "buffers.",
     kNotSticky},
    {Domain::driver, 202, "CUDA_ERROR_CONTEXT_ALREADY_CURRENT",
     "Deprecated since CUDA 3.2: the context passed was already the active context, which is no "
     "longer an error for cuCtxPushCurrent().",
     "Current drivers never return it; pushing the current context again is allowed. Ignore it.",
     kNotSticky},
    {Domain::driver, 205, "CUDA_ERROR_MAP_FAILED", "A map or register operation failed.",
     "Rare: mapping a graphics-interop resource, registered host memory or an IPC/VMM allocation "
     "into the address space failed. Check that the resource is not already mapped, that the "
     "address range and size are valid and aligned, and that the host is not short of memory.",
     kNotSticky},
    {Domain::driver, 206, "CUDA_ERROR_UNMAP_FAILED", "An unmap or unregister operation failed.",
     "The resource or range was not mapped/registered, or was already released. Pair every map or "
     "register with exactly one unmap or unregister, on the same context.",
     kNotSticky},
    {Domain::driver, 207, "CUDA_ERROR_ARRAY_IS_MAPPED",
     "The array cannot be destroyed because it is currently mapped.",
     "A graphics-interop array is still mapped. Call cuGraphicsUnmapResources before destroying "
     "or re-registering it.",
     kNotSticky},
    {Domain::driver, 208, "CUDA_ERROR_ALREADY_MAPPED", "The resource is already mapped.",
     "A graphics resource was mapped twice, or a virtual address range already has memory mapped "
     "to it. Unmap first (cuGraphicsUnmapResources or cuMemUnmap), or reserve a fresh range.",
     kNotSticky},
    {Domain::driver, 209, "CUDA_ERROR_NO_BINARY_FOR_GPU",
     "No kernel image in the module suits the device, typically because the code-generation "
     "options did not include this device's architecture.",
     "The binary holds neither a CUBIN for this GPU's architecture nor PTX the driver could JIT, "
     "e.g. an sm_90 CUBIN on an sm_80 GPU. Compile for the device's own sm_XX (check any "
     "--gpu-architecture override) or include PTX; `kiln doctor` prints each device's compute "
     "capability.",
     kNotSticky},
    {Domain::driver, 210, "CUDA_ERROR_ALREADY_ACQUIRED", "A resource has already been acquired.",
     "Typically an EGL stream frame or similar interop resource was acquired twice. Release it "
     "(e.g. cuEGLStreamConsumerReleaseFrame) before acquiring again.",
     kNotSticky},
    {Domain::driver, 211, "CUDA_ERROR_NOT_MAPPED", "A resource is not mapped.",
     "A pointer or array of a graphics resource was requested while it was unmapped. Call "
     "cuGraphicsMapResources first and use the result only until the matching unmap.",
     kNotSticky},
    {Domain::driver, 212, "CUDA_ERROR_NOT_MAPPED_AS_ARRAY",
     "A mapped resource is not available for access as an array.",
     "The resource was registered as a buffer: use cuGraphicsResourceGetMappedPointer, or "
     "register it as an image or texture to get an array.",
     kNotSticky},
    {Domain::driver, 213, "CUDA_ERROR_NOT_MAPPED_AS_POINTER",
     "A mapped resource is not available for access as a pointer.",
     "The resource was registered as an image or texture: use "
     "cuGraphicsSubResourceGetMappedArray, or register a buffer object to get a device pointer.",
     kNotSticky},
    {Domain::driver, 214, "CUDA_ERROR_ECC_UNCORRECTABLE",
     "An uncorrectable ECC error was detected during execution.",
     "A hardware memory error: the context's device memory can no longer be trusted, so treat it "
     "as fatal and restart the process. Check `nvidia-smi -q -d ECC` and dmesg (Xid 48/63/64); if "
     "errors recur, the GPU needs a reset for page retirement or row remapping, or service.",
     kNotSticky},
    {Domain::driver, 215, "CUDA_ERROR_UNSUPPORTED_LIMIT",
     "The CUlimit passed to the call is not supported by the active device.",
     "cuCtxSetLimit/cuCtxGetLimit was given a limit this GPU or driver lacks (e.g. persisting L2 "
     "cache size before sm_80). Check the compute capability before setting the limit, or skip it "
     "when unsupported.",
     kNotSticky},
    {Domain::driver, 216, "CUDA_ERROR_CONTEXT_ALREADY_IN_USE",
     "The context can be bound to only one CPU thread at a time and is already bound to another.",
     "Rare with current drivers: a context restricted to a single thread (e.g. some "
     "graphics-interop contexts) is current on another thread. Pop it there with cuCtxPopCurrent "
     "first, or use the primary context, which any number of threads may share.",
     kNotSticky},
    {Domain::driver, 217, "CUDA_ERROR_PEER_ACCESS_UNSUPPORTED",
     "Peer access is not supported between the given devices.",
     "The two GPUs cannot reach each other's memory directly (no NVLink or P2P-capable PCIe path, "
     "or an IOMMU/hypervisor blocks it). Check cuDeviceCanAccessPeer and `nvidia-smi topo -m`, "
     "and fall back to cuMemcpyPeer, which stages through host memory.",
     kNotSticky},
    {Domain::driver, 218, "CUDA_ERROR_INVALID_PTX", "PTX JIT compilation failed.",
     "The driver's JIT rejected the PTX: it targets a newer PTX ISA or architecture than this "
     "driver knows, or it is malformed. Use an NVRTC no newer than the driver or compile to CUBIN "
     "for the exact sm_XX; the JIT error log, when captured, names the offending line.",
     kNotSticky},
    {Domain::driver, 219, "CUDA_ERROR_INVALID_GRAPHICS_CONTEXT",
     "There is an error with the OpenGL or DirectX context.",
     "Graphics interop was used without a current OpenGL/Direct3D context on the calling thread, "
     "or on a GPU that does not render that context. Make the graphics context current first and "
     "use the CUDA device that drives it (cuGLGetDevices).",
     kNotSticky},
    {Domain::driver, 220, "CUDA_ERROR_NVLINK_UNCORRECTABLE",
     "An uncorrectable NVLink error was detected during execution.",
     "A link or hardware fault between GPUs; data moved over NVLink may be corrupt. Restart the "
     "process, check `nvidia-smi nvlink -e` and dmesg (Xid 74), and report recurring errors to "
     "the system administrator.",
     kNotSticky},
    {Domain::driver, 221, "CUDA_ERROR_JIT_COMPILER_NOT_FOUND",
     "The PTX JIT compiler library was not found.",
     "The driver installation lacks libnvidia-ptxjitcompiler.so, common in containers whose "
     "NVIDIA_DRIVER_CAPABILITIES omits `compute` or with a partial driver install. Expose the "
     "full compute libraries, or load CUBIN for the exact sm_XX so no JIT is needed.",
     kNotSticky},
    {Domain::driver, 222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
     "The provided PTX was compiled with an unsupported toolchain.",
     "The PTX was produced by an NVRTC/toolkit newer than the driver, whose JIT does not know "
     "that PTX ISA version. Compile to CUBIN for the exact sm_XX, use an NVRTC no newer than the "
     "driver, or update the driver; `kiln doctor` shows both versions.",
     kNotSticky},
    {Domain::driver, 223, "CUDA_ERROR_JIT_COMPILATION_DISABLED",
     "PTX JIT compilation was disabled.",
     "JIT is turned off (e.g. CUDA_DISABLE_PTX_JIT=1 in the environment) and no CUBIN matches the "
     "device. Unset the variable, or compile to CUBIN for the device's sm_XX.",
     kNotSticky},
    {Domain::driver, 224, "CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY",
     "The CUexecAffinityType passed to the call is not supported by the active device.",
     "Execution affinity (such as limiting a context's SM count) needs a device and mode that "
     "support it, e.g. Volta or newer under MPS. Check cuDeviceGetExecAffinitySupport first, or "
     "create the context without affinity parameters.",
     kNotSticky},
    {Domain::driver, 225, "CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC",
     "The code to be JIT-compiled contains an unsupported call to cudaDeviceSynchronize.",
     "Device-side cudaDeviceSynchronize() was removed from CUDA Dynamic Parallelism in CUDA 12 "
     "(CDP2). Restructure the kernel, e.g. with tail launches or by launching the dependent work "
     "from the host.",
     kNotSticky},
    {Domain::driver, 226, "CUDA_ERROR_CONTAINED",
     "A device exception (e.g. an invalid access to peer GPU memory over NVLink or certain "
     "hardware errors) was contained by the GPU, leaving the process unable to use CUDA until "
     "relaunched.",
     "The GPU isolated a fault to this process, often a bad access to peer memory over NVLink or "
     "a hardware error (dmesg shows an Xid). Exit and restart the process; if it recurs without a "
     "code change, check GPU health with `nvidia-smi -q` and dmesg.",
     kSticky},
    {Domain::driver, 300, "CUDA_ERROR_INVALID_SOURCE",
     "The device kernel source is invalid, including compilation or link errors in device code.",
     "The driver failed to compile or link device code it was handed, e.g. through cuLink* with "
     "invalid or mismatched inputs. Read the linker's error log; problems in NVRTC sources are "
     "normally reported earlier as NVRTC_ERROR_COMPILATION.",
     kNotSticky},
    {Domain::driver, 301, "CUDA_ERROR_FILE_NOT_FOUND", "The specified file was not found.",
     "cuModuleLoad, cuLibraryLoadFromFile or cuLinkAddFile got a path that does not exist or "
     "cannot be read, often a relative path resolved against an unexpected working directory. Use "
     "absolute paths and check permissions.",
     kNotSticky},
    {Domain::driver, 302, "CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND",
     "A link to a shared object failed to resolve.",
     "Rare. Check for driver libraries from different releases (e.g. a libcuda.so.1 baked into a "
     "container image), and link relocatable device code (-rdc) with cuLink* or nvJitLink before "
     "loading it so that no external device symbol is left unresolved.",
     kNotSticky},
    {Domain::driver, 303, "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED",
     "Initialisation of a shared object failed.",
     "A driver component failed to initialise, commonly because user-space driver libraries and "
     "the kernel module differ in version or /dev/nvidia* is not accessible. Check dmesg and "
     "`kiln doctor`; reboot after a driver upgrade.",
     kNotSticky},
    {Domain::driver, 304, "CUDA_ERROR_OPERATING_SYSTEM", "An operating-system call failed.",
     "A system call the driver relies on failed: typical causes are exhausted file descriptors or "
     "memory mappings, a seccomp/AppArmor profile blocking ioctls, or missing permission on "
     "/dev/nvidia*. Check `ulimit -n`, container security options and dmesg.",
     kNotSticky},
    {Domain::driver, 400, "CUDA_ERROR_INVALID_HANDLE",
     "A resource handle passed to the call (an opaque type such as CUstream or CUevent) is not "
     "valid.",
     "A stream, event, module, function or graph handle was destroyed, never created, or belongs "
     "to another context. Check object lifetimes (kiln objects must outlive the work queued with "
     "them) and never share handles between contexts or processes.",
     kNotSticky},
    {Domain::driver, 401, "CUDA_ERROR_ILLEGAL_STATE",
     "A resource required by the call is not in a valid state to perform the requested operation.",
     "The object is in the wrong phase for this call, e.g. it is still in use by a stream capture "
     "or graph, or its setup has not finished. Check the call's preconditions in the driver API "
     "reference and the ordering of operations across threads.",
     kNotSticky},
    {Domain::driver, 402, "CUDA_ERROR_LOSSY_QUERY",
     "Introspecting the object would discard semantically important information, because it uses "
     "functionality newer than the querying API or optional outputs were omitted.",
     "Typically a graph with edge data queried through an API variant without edge-data outputs "
     "(e.g. older cuStreamGetCaptureInfo or cuGraphGetEdges versions). Use the newest query "
     "variant and pass all optional output arguments.",
     kNotSticky},
    {Domain::driver, 500, "CUDA_ERROR_NOT_FOUND",
     "A named symbol (a global or constant variable, driver function, texture or surface name) "
     "was not found.",
     "cuModuleGetFunction/cuModuleGetGlobal got a name not in the module. C++ kernels have "
     "mangled names: declare them extern \"C\" or obtain the lowered name with "
     "nvrtcAddNameExpression and nvrtcGetLoweredName; also check for typos and templates that "
     "were never instantiated.",
     kNotSticky},
    {Domain::driver, 600, "CUDA_ERROR_NOT_READY",
     "Asynchronous work issued earlier has not completed yet; this is not an error but differs "
     "from CUDA_SUCCESS, and is returned by queries such as cuEventQuery() and cuStreamQuery().",
     "Not a failure: the event or stream is still busy. Poll again later, or block with "
     "cuEventSynchronize/cuStreamSynchronize.",
     kNotSticky},
    {Domain::driver, 700, "CUDA_ERROR_ILLEGAL_ADDRESS",
     "While executing a kernel, the device hit a load or store on an invalid memory address, "
     "leaving the process unable to use CUDA until relaunched.",
     "A kernel read or wrote out of bounds, or through a host, freed or uninitialised pointer "
     "(check index bounds and the order of kernel arguments). Run under "
     "`compute-sanitizer --tool memcheck` to find the faulting line, then restart the process.",
     kSticky},
    {Domain::driver, 701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
     "The launch did not happen for lack of resources, usually too many threads per block for the "
     "kernel's register count or too many (or wrongly sized) kernel arguments.",
     "Registers per thread times threads per block exceed the SM's register file. Lower the block "
     "size, cap registers with __launch_bounds__ or --maxrregcount, or launch within "
     "CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK from cuFuncGetAttribute.",
     kNotSticky},
    {Domain::driver, 702, "CUDA_ERROR_LAUNCH_TIMEOUT",
     "The kernel ran longer than the watchdog allows (only when timeouts are enabled, see "
     "CU_DEVICE_ATTRIBUTE_KERNEL_EXEC_TIMEOUT), leaving the process unable to use CUDA until "
     "relaunched.",
     "The GPU also drives a display whose watchdog killed a long-running (or endlessly looping) "
     "kernel. Split the work into shorter launches or use a GPU with no display attached, then "
     "restart the process.",
     kSticky},
    {Domain::driver, 703, "CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING",
     "The kernel launch uses an incompatible texturing mode.",
     "Legacy texture references were used in a way the device does not support. Switch to texture "
     "objects (CUtexObject), the only texturing mechanism current toolkits support.",
     kNotSticky},
    {Domain::driver, 704, "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED",
     "cuCtxEnablePeerAccess() tried to re-enable peer access that was already enabled.",
     "Harmless: peer access is already on for this context pair. Treat it as success, or remember "
     "which pairs were enabled.",
     kNotSticky},
    {Domain::driver, 705, "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED",
     "cuCtxDisablePeerAccess() tried to disable peer access that was never enabled via "
     "cuCtxEnablePeerAccess().",
     "Peer access is tracked per context pair: it was never enabled, or was enabled from another "
     "context. Only disable what this context enabled.",
     kNotSticky},
    {Domain::driver, 708, "CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE",
     "The primary context for the device has already been initialised.",
     "A setting that must precede primary-context creation (e.g. cuDevicePrimaryCtxSetFlags on "
     "older drivers) came after something, possibly another library, had already created it. Set "
     "such flags before any other use of the device, or accept the existing ones.",
     kNotSticky},
    {Domain::driver, 709, "CUDA_ERROR_CONTEXT_IS_DESTROYED",
     "The context current to the calling thread was destroyed with cuCtxDestroy, or is a primary "
     "context that has not been initialised yet.",
     "A context was destroyed (or the primary context released or reset) while a thread still had "
     "it current or objects still used it. Keep the kiln context alive until its modules, streams "
     "and buffers are gone, and don't call cuDevicePrimaryCtxReset while others use the device.",
     kNotSticky},
    {Domain::driver, 710, "CUDA_ERROR_ASSERT",
     "A device-side assert fired during kernel execution; the context cannot be used any more and "
     "must be destroyed, and all of its device allocations are invalid.",
     "A kernel's assert() failed; the failing expression, file, line, block and thread are "
     "printed on the process's stderr. Fix the condition, and treat the context as lost: recreate "
     "it and all its buffers, or simply restart the process.",
     kNotSticky},
    {Domain::driver, 711, "CUDA_ERROR_TOO_MANY_PEERS",
     "The hardware resources needed to enable peer access are exhausted on one or more of the "
     "devices.",
     "A GPU can map only a limited number of peers (commonly 8). Enable peer access only between "
     "the GPUs that actually exchange data.",
     kNotSticky},
    {Domain::driver, 712, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED",
     "The memory range passed to cuMemHostRegister() is already registered.",
     "The range, or an overlapping one, was registered earlier, possibly by another library. "
     "Register each host buffer once and unregister it before freeing it.",
     kNotSticky},
    {Domain::driver, 713, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED",
     "The pointer passed to cuMemHostUnregister() does not correspond to a registered memory "
     "region.",
     "The buffer was unregistered twice, or the pointer differs from the base address passed to "
     "cuMemHostRegister. Pass the same base pointer and unregister exactly once.",
     kNotSticky},
    {Domain::driver, 714, "CUDA_ERROR_HARDWARE_STACK_ERROR",
     "While executing a kernel, the device hit a stack error from stack corruption or exceeding "
     "the stack size limit, leaving the process unable to use CUDA until relaunched.",
     "Deep recursion, large local arrays or runaway device calls overflowed the per-thread stack. "
     "Raise it with cuCtxSetLimit(CU_LIMIT_STACK_SIZE) or reduce recursion and local memory, "
     "check with `compute-sanitizer`, and restart the process.",
     kSticky},
    {Domain::driver, 715, "CUDA_ERROR_ILLEGAL_INSTRUCTION",
     "While executing a kernel, the device encountered an illegal instruction, leaving the "
     "process unable to use CUDA until relaunched.",
     "Usually a jump into invalid code: a device function pointer or virtual call through an "
     "object created on the host, a mismatched extern declaration, or faulty inline PTX. Run "
     "under `compute-sanitizer` to locate it, and restart the process.",
     kSticky},
    {Domain::driver, 716, "CUDA_ERROR_MISALIGNED_ADDRESS",
     "While executing a kernel, the device hit a load or store on an unaligned memory address, "
     "leaving the process unable to use CUDA until relaunched.",
     "A pointer was cast to a wider type (float4, double, a struct) at an offset that is not a "
     "multiple of its alignment, e.g. into a byte buffer. Align offsets to the access size "
     "(cuMemAlloc returns 256-byte aligned memory), check with "
     "`compute-sanitizer --tool memcheck`, and restart the process.",
     kSticky},
    {Domain::driver, 717, "CUDA_ERROR_INVALID_ADDRESS_SPACE",
     "While executing a kernel, an instruction limited to certain address spaces (global, shared "
     "or local) was given an address outside them, leaving the process unable to use CUDA until "
     "relaunched.",
     "A pointer of the wrong memory space reached an address-space-specific instruction, e.g. a "
     "local or global address used where shared memory is required in inline PTX or an intrinsic. "
     "Check pointer provenance, run under `compute-sanitizer`, and restart the process.",
     kSticky},
    {Domain::driver, 718, "CUDA_ERROR_INVALID_PC",
     "While executing a kernel, the device program counter wrapped its address space, leaving the "
     "process unable to use CUDA until relaunched.",
     "Control flow jumped to garbage, e.g. through a corrupted function pointer or a return "
     "address overwritten by an out-of-bounds local array. Run under "
     "`compute-sanitizer --tool memcheck` and restart the process.",
     kSticky},
    {Domain::driver, 719, "CUDA_ERROR_LAUNCH_FAILED",
     "An exception occurred on the device while executing a kernel, commonly an invalid device "
     "pointer dereference or out-of-bounds shared memory access, leaving the process unable to "
     "use CUDA until relaunched.",
     "The generic \"unspecified launch failure\", most often from an out-of-bounds shared-memory "
     "access or a bad pointer. Run under `compute-sanitizer --tool memcheck` (and "
     "`--tool racecheck` for shared memory), check dmesg for an Xid, and restart the process.",
     kSticky},
    {Domain::driver, 720, "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE",
     "A cooperative launch requested more blocks per grid than can be resident at once (the "
     "maximum active blocks per multiprocessor times the multiprocessor count).",
     "All blocks of a cooperative kernel must be resident together. Size the grid from "
     "cuOccupancyMaxActiveBlocksPerMultiprocessor for the actual block size and dynamic shared "
     "memory, times CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, and use a grid-stride loop.",
     kNotSticky},
    {Domain::driver, 721, "CUDA_ERROR_TENSOR_MEMORY_LEAK",
     "A kernel using tensor memory exited without deallocating all of it, leaving the process "
     "unable to use CUDA until relaunched.",
     "A kernel for sm_100 or later allocated tensor memory (tcgen05.alloc) and exited on some "
     "path without the matching tcgen05.dealloc, often an early return. Deallocate on every exit "
     "path, then restart the process.",
     kSticky},
    {Domain::driver, 800, "CUDA_ERROR_NOT_PERMITTED", "The attempted operation is not permitted.",
     "The call is disallowed in this situation, e.g. a CUDA call from inside a stream callback or "
     "host function (they must not call CUDA), or an operation MPS forbids. Move the call out of "
     "the callback, or check the MPS restrictions.",
     kNotSticky},
    {Domain::driver, 801, "CUDA_ERROR_NOT_SUPPORTED",
     "The attempted operation is not supported on the current system or device.",
     "The GPU, driver, OS or virtualisation layer lacks the feature (e.g. some IPC, memory-pool "
     "or virtual memory features under vGPU or WSL). Query the matching CU_DEVICE_ATTRIBUTE_* "
     "first and provide a fallback; `kiln doctor` describes the device and environment.",
     kNotSticky},
    {Domain::driver, 802, "CUDA_ERROR_SYSTEM_NOT_READY",
     "The system is not yet ready to start CUDA work; the configuration must be valid and "
     "required driver daemons running.",
     "On NVSwitch systems (HGX/DGX) the nvidia-fabricmanager service is not running, failed, or "
     "has not finished initialising. Check `systemctl status nvidia-fabricmanager` and that its "
     "version matches the driver exactly.",
     kNotSticky},
    {Domain::driver, 803, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
     "The versions of the display driver and the CUDA driver do not match.",
     "libcuda.so.1 and the loaded kernel module come from different driver releases, typically "
     "after a driver upgrade without reboot or with a libcuda copied into a container image. "
     "Reboot after upgrading and never bundle libcuda; `kiln doctor` prints both versions.",
     kNotSticky},
    {Domain::driver, 804, "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
     "The system was set up for forward compatibility, but the visible hardware does not support "
     "that configuration.",
     "A cuda-compat package (a newer libcuda on LD_LIBRARY_PATH) is in use on a GPU it does not "
     "support; forward compatibility is for data-centre GPUs. Remove the compat libraries from "
     "the library path and upgrade the real driver, or hide unsupported GPUs with "
     "CUDA_VISIBLE_DEVICES.",
     kNotSticky},
    {Domain::driver, 805, "CUDA_ERROR_MPS_CONNECTION_FAILED",
     "The MPS client failed to connect to the MPS control daemon or the MPS server.",
     "CUDA_MPS_PIPE_DIRECTORY points to a pipe directory with no running nvidia-cuda-mps-control "
     "daemon, or the client lacks access to it (other user or container). Start the daemon, share "
     "the pipe directory with the container, or unset the MPS variables to run without MPS.",
     kNotSticky},
    {Domain::driver, 806, "CUDA_ERROR_MPS_RPC_FAILURE",
     "The remote procedure call between the MPS server and the MPS client failed.",
     "The MPS server died or was restarted during the session. Check the MPS logs "
     "(CUDA_MPS_LOG_DIRECTORY), restart the daemon if needed, and restart the client process.",
     kNotSticky},
    {Domain::driver, 807, "CUDA_ERROR_MPS_SERVER_NOT_READY",
     "The MPS server is not ready to accept new clients, e.g. while recovering from a fatal "
     "failure.",
     "Retry after a short delay; if it persists, read the MPS server log for the fault that "
     "preceded it and restart the MPS daemon.",
     kNotSticky},
    {Domain::driver, 808, "CUDA_ERROR_MPS_MAX_CLIENTS_REACHED",
     "The hardware resources required to create an MPS client have been exhausted.",
     "The GPU already serves the maximum number of MPS clients. Run fewer client processes on "
     "this GPU or spread them over more GPUs.",
     kNotSticky},
    {Domain::driver, 809, "CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED",
     "The hardware resources required to support device connections have been exhausted.",
     "MPS clients together opened more connections than the device supports. Use fewer contexts "
     "and client processes per GPU, or lower CUDA_DEVICE_MAX_CONNECTIONS for the clients.",
     kNotSticky},
    {Domain::driver, 810, "CUDA_ERROR_MPS_CLIENT_TERMINATED",
     "The MPS server terminated this client, and the process must be relaunched to use CUDA "
     "again.",
     "The MPS server ended the client, usually after a fatal GPU fault in some client of the same "
     "server or an administrator's terminate_client. Restart the process, and read the MPS server "
     "log for the originating fault.",
     kSticky},
    {Domain::driver, 811, "CUDA_ERROR_CDP_NOT_SUPPORTED",
     "The module uses CUDA Dynamic Parallelism, which the current configuration (such as MPS) "
     "does not support.",
     "Kernels that launch kernels cannot run in this setup. Run without MPS, or restructure so "
     "the child work is launched from the host.",
     kNotSticky},
    {Domain::driver, 812, "CUDA_ERROR_CDP_VERSION_MISMATCH",
     "The module contains an unsupported interaction between different versions of CUDA Dynamic "
     "Parallelism.",
     "Parts of the module were built for legacy CDP1 (CUDA_FORCE_CDP1_IF_SUPPORTED) and others "
     "for CDP2. Build all relocatable device code with the same toolkit and CDP settings.",
     kNotSticky},
    {Domain::driver, 900, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
     "The operation is not permitted while the stream is capturing.",
     "A synchronous or legacy-stream call (cuMemAlloc, cuMemcpy without Async, "
     "cuStreamSynchronize, cuCtxSynchronize) ran during graph capture. Use stream-ordered "
     "variants (cuMemAllocAsync, cuMemcpyAsync) inside the capture, or move the call before it "
     "begins.",
     kNotSticky},
    {Domain::driver, 901, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
     "The current capture sequence on the stream was invalidated by a previous error.",
     "An earlier call during the capture failed (often STREAM_CAPTURE_UNSUPPORTED, possibly from "
     "another thread), so the capture is dead. Find that first error, end the capture with "
     "cuStreamEndCapture to discard it, and capture again.",
     kNotSticky},
    {Domain::driver, 902, "CUDA_ERROR_STREAM_CAPTURE_MERGE",
     "The operation would have merged two independent capture sequences.",
     "A stream in one capture waited on an event recorded in a different capture. Keep "
     "cross-stream dependencies within a single capture, or end one capture before joining.",
     kNotSticky},
    {Domain::driver, 903, "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED",
     "The capture was not initiated in this stream.",
     "cuStreamEndCapture was called on a stream that did not call cuStreamBeginCapture (e.g. a "
     "forked stream). End the capture on the stream that began it.",
     kNotSticky},
    {Domain::driver, 904, "CUDA_ERROR_STREAM_CAPTURE_UNJOINED",
     "The capture sequence contains a fork that was not joined to the primary stream.",
     "A stream forked into the capture still has work not joined back. Record an event on each "
     "forked stream and make the origin stream wait on it before cuStreamEndCapture.",
     kNotSticky},
    {Domain::driver, 905, "CUDA_ERROR_STREAM_CAPTURE_ISOLATION",
     "A dependency would have crossed the capture sequence boundary; only implicit in-stream "
     "ordering dependencies may do so.",
     "A capturing stream waited on an event recorded outside the capture, or the reverse. Record "
     "the event inside the same capture, or move the wait before the capture begins.",
     kNotSticky},
    {Domain::driver, 906, "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
     "A disallowed implicit dependency on a current capture sequence from cudaStreamLegacy was "
     "attempted.",
     "Work went to the legacy default stream (stream 0) while another stream of the context was "
     "capturing. Create streams with CU_STREAM_NON_BLOCKING or use per-thread default streams, "
     "and never pass stream 0 during a capture.",
     kNotSticky},
    {Domain::driver, 907, "CUDA_ERROR_CAPTURED_EVENT",
     "The operation is not permitted on an event last recorded in a capturing stream.",
     "cuEventQuery, cuEventSynchronize or a wait outside the capture used an event recorded "
     "during the capture. Use such events only inside the capture; to wait on the graph, record a "
     "fresh event after launching it.",
     kNotSticky},
    {Domain::driver, 908, "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD",
     "A capture not started with CU_STREAM_CAPTURE_MODE_RELAXED was passed to cuStreamEndCapture "
     "in a different thread.",
     "Begin and end a capture on the same thread, or begin it with CU_STREAM_CAPTURE_MODE_RELAXED "
     "if it must cross threads.",
     kNotSticky},
    {Domain::driver, 909, "CUDA_ERROR_TIMEOUT",
     "The timeout specified for the wait operation has lapsed.",
     "A wait with a timeout (e.g. on an external semaphore's keyed mutex) expired before its "
     "condition held. Check that the producer signals, and that the timeout suits the workload.",
     kNotSticky},
    {Domain::driver, 910, "CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE",
     "The graph update was not performed because it violated constraints specific to updating an "
     "instantiated graph.",
     "cuGraphExecUpdate can change node parameters but not topology, node types or contexts. "
     "Inspect the CUgraphExecUpdateResultInfo it returns for the offending node, or instantiate "
     "the graph again when its shape changes.",
     kNotSticky},
    {Domain::driver, 911, "CUDA_ERROR_EXTERNAL_DEVICE",
     "A device outside CUDA signalled an asynchronous error, marking shared data invalid, and the "
     "process must be relaunched to use CUDA again.",
     "An external producer sharing memory through an external semaphore (a camera, video or DMA "
     "engine, another API) reported an error. Check that device's driver logs, and restart the "
     "process.",
     kSticky},
    {Domain::driver, 912, "CUDA_ERROR_INVALID_CLUSTER_SIZE",
     "A kernel launch failed because of a cluster misconfiguration.",
     "Thread-block clusters need sm_90 or newer, a grid divisible by the cluster dimensions, and "
     "at most 8 blocks per cluster unless CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED is "
     "set. Check the cluster shape against the grid and cuOccupancyMaxActiveClusters.",
     kNotSticky},
    {Domain::driver, 913, "CUDA_ERROR_FUNCTION_NOT_LOADED",
     "A function handle is not loaded when calling an API that requires a loaded function.",
     "With lazy loading (CUDA_MODULE_LOADING=LAZY, the default since CUDA 12.2) functions load on "
     "first use. Call cuFuncLoad, or get the function with cuKernelGetFunction in the current "
     "context, before querying or setting its attributes.",
     kNotSticky},
    {Domain::driver, 914, "CUDA_ERROR_INVALID_RESOURCE_TYPE",
     "One or more resources passed in are not valid resource types for the operation.",
     "A green-context or device-resource call (cuDevResourceGenerateDesc, cuGreenCtxCreate) got a "
     "resource of a CUdevResourceType it does not accept. Pass only the resource types the call "
     "documents.",
     kNotSticky},
    {Domain::driver, 915, "CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION",
     "One or more resources are insufficient or not applicable for the operation.",
     "A green-context split asked for more SMs than available or a group size the architecture "
     "cannot partition. Query the SM resource with cuDeviceGetDevResource and split it with "
     "cuDevSmResourceSplitByCount, honouring the minimum partition size.",
     kNotSticky},
    {Domain::driver, 916, "CUDA_ERROR_KEY_ROTATION",
     "An error happened during the key rotation sequence.",
     "In confidential-computing mode (Hopper or newer with CC enabled) rotating the keys that "
     "encrypt CPU-GPU transfers failed. Restart the process, check the driver logs, and report "
     "recurrences to the platform operator.",
     kNotSticky},
    {Domain::driver, 999, "CUDA_ERROR_UNKNOWN", "An unknown internal error has occurred.",
     "The driver reported a failure it could not classify, often a driver or hardware fault or a "
     "driver/kernel-module mismatch. Check dmesg for Xid messages and run `kiln doctor`; if it "
     "reproduces, reduce it to a small case for NVIDIA.",
     kNotSticky},

    // nvrtcResult (nvrtc.h).
    {Domain::nvrtc, 0, "NVRTC_SUCCESS", "The call succeeded.",
     "Not an error: kiln never throws with this code.", kNotSticky},
    {Domain::nvrtc, 1, "NVRTC_ERROR_OUT_OF_MEMORY", "NVRTC ran out of host memory.",
     "Host allocation failed while compiling: very large sources, heavy template instantiation or "
     "many parallel compiles under a tight container memory limit. Raise the limit or compile "
     "fewer programs at once.",
     kNotSticky},
    {Domain::nvrtc, 2, "NVRTC_ERROR_PROGRAM_CREATION_FAILURE", "The program could not be created.",
     "nvrtcCreateProgram failed, usually from lack of memory or inconsistent header arguments. "
     "Check that numHeaders matches the sizes of the headers and includeNames arrays.",
     kNotSticky},
    {Domain::nvrtc, 3, "NVRTC_ERROR_INVALID_INPUT",
     "An input argument is invalid, such as a null pointer.",
     "A null source, program or output pointer, or a negative count, reached NVRTC. Check the "
     "arguments of direct NVRTC calls; through kiln's API it indicates a kiln bug.",
     kNotSticky},
    {Domain::nvrtc, 4, "NVRTC_ERROR_INVALID_PROGRAM", "The program handle is invalid.",
     "The nvrtcProgram was never created or was already destroyed with nvrtcDestroyProgram. Check "
     "lifetimes and don't share a program between owners.",
     kNotSticky},
    {Domain::nvrtc, 5, "NVRTC_ERROR_INVALID_OPTION",
     "A compile option is invalid or not recognised.",
     "Typical mistakes: nvcc-only flags (-c, -o, -ccbin, --compiler-options), an option and its "
     "value in two strings or separated by a space (write \"--gpu-architecture=sm_90\", "
     "\"-I/path\"), stray whitespace, or an architecture this NVRTC does not know. Check the list "
     "in the NVRTC documentation for the installed version.",
     kNotSticky},
    {Domain::nvrtc, 6, "NVRTC_ERROR_COMPILATION", "Compilation of the program failed.",
     "The source has errors: read the compiler log in the error's detail (nvrtcGetProgramLog). "
     "Common causes are headers not found (pass their directory with -I or supply them as named "
     "headers) and host-only code called from device functions.",
     kNotSticky},
    {Domain::nvrtc, 7, "NVRTC_ERROR_BUILTIN_OPERATION_FAILURE",
     "A builtin operation of NVRTC failed.",
     "Often libnvrtc-builtins.so is missing or from another version than libnvrtc. Install the "
     "libnvrtc-builtins.so.MAJOR.MINOR of the same toolkit next to libnvrtc; `kiln doctor` shows "
     "which NVRTC was loaded.",
     kNotSticky},
    {Domain::nvrtc, 8, "NVRTC_ERROR_NO_NAME_EXPRESSIONS_AFTER_COMPILATION",
     "Name expressions cannot be added after the program has been compiled.",
     "nvrtcAddNameExpression was called after nvrtcCompileProgram. Register every kernel name and "
     "template instantiation first, then compile.",
     kNotSticky},
    {Domain::nvrtc, 9, "NVRTC_ERROR_NO_LOWERED_NAMES_BEFORE_COMPILATION",
     "Lowered names are not available before the program has been compiled.",
     "nvrtcGetLoweredName was called before a successful nvrtcCompileProgram. Compile first, and "
     "check that the compile did not fail.",
     kNotSticky},
    {Domain::nvrtc, 10, "NVRTC_ERROR_NAME_EXPRESSION_NOT_VALID",
     "The name expression is not valid, or was not registered before compilation.",
     "nvrtcGetLoweredName was given a string not passed verbatim to nvrtcAddNameExpression, or "
     "the expression does not denote a __global__ function or __device__ variable in the source. "
     "Use exactly the same string (e.g. \"scale<float, 4>\"; spelling and spacing matter).",
     kNotSticky},
    {Domain::nvrtc, 11, "NVRTC_ERROR_INTERNAL_ERROR", "NVRTC encountered an internal error.",
     "A compiler bug or a damaged installation. Try another optimisation level or a newer NVRTC, "
     "and reduce the source to a reproducer for NVIDIA.",
     kNotSticky},
    {Domain::nvrtc, 12, "NVRTC_ERROR_TIME_FILE_WRITE_FAILED",
     "NVRTC could not write the compilation-time report requested with --time.",
     "The file named by --time is not writable. Point it to a writable location or drop the "
     "option.",
     kNotSticky},
    {Domain::nvrtc, 13, "NVRTC_ERROR_NO_PCH_CREATE_ATTEMPTED",
     "No precompiled header creation was attempted by the preceding compilation.",
     "Returned by nvrtcGetPCHCreateStatus when the compile did not request a PCH (--pch or "
     "--create-pch) or, in automatic mode, the compiler chose not to create one. Not a compile "
     "failure; pass --create-pch=<file> to force creation.",
     kNotSticky},
    {Domain::nvrtc, 14, "NVRTC_ERROR_PCH_CREATE_HEAP_EXHAUSTED",
     "Precompiled header creation failed because the PCH heap was exhausted.",
     "Read the required size with nvrtcGetPCHHeapSizeRequired, raise it with nvrtcSetPCHHeapSize, "
     "and compile again; the compiled code itself is still usable.",
     kNotSticky},
    {Domain::nvrtc, 15, "NVRTC_ERROR_PCH_CREATE", "Precompiled header creation failed.",
     "The compile succeeded but no PCH was written. Read the program log for the reason, and "
     "check that the PCH output location is writable.",
     kNotSticky},
    {Domain::nvrtc, 16, "NVRTC_ERROR_CANCELLED",
     "The compilation was cancelled by the user's callback.",
     "A callback registered with nvrtcSetFlowCallback asked NVRTC to stop. Expected when your "
     "code requested cancellation (e.g. a deadline or shutdown); otherwise check the callback's "
     "return value.",
     kNotSticky},
    {Domain::nvrtc, 17, "NVRTC_ERROR_TIME_TRACE_FILE_WRITE_FAILED",
     "NVRTC could not write the time-trace file requested with --fdevice-time-trace.",
     "The path given to --fdevice-time-trace is not writable. Point it to a writable location or "
     "drop the option.",
     kNotSticky},

    // nvmlReturn_t (nvml.h).
    {Domain::nvml, 0, "NVML_SUCCESS", "The operation was successful.",
     "Not an error: kiln never throws with this code.", kNotSticky},
    {Domain::nvml, 1, "NVML_ERROR_UNINITIALIZED", "NVML was not first initialised with nvmlInit().",
     "An NVML call ran before nvmlInit_v2 or after the last matching nvmlShutdown (initialisation "
     "is reference counted). Keep NVML initialised until the last query, and avoid NVML calls "
     "from static destructors.",
     kNotSticky},
    {Domain::nvml, 2, "NVML_ERROR_INVALID_ARGUMENT", "A supplied argument is invalid.",
     "Typically a stale device handle, an index at or beyond nvmlDeviceGetCount, or a null output "
     "pointer. Note that NVML indices need not match CUDA device indices: match devices by UUID "
     "or PCI bus id.",
     kNotSticky},
    {Domain::nvml, 3, "NVML_ERROR_NOT_SUPPORTED",
     "The requested operation is not available on the target device.",
     "Common on GeForce GPUs, MIG instances, vGPUs and older architectures, where many queries "
     "(power, ECC, clocks, per-instance utilisation) do not exist. Treat the value as unavailable "
     "instead of failing.",
     kNotSticky},
    {Domain::nvml, 4, "NVML_ERROR_NO_PERMISSION",
     "The current user does not have permission for the operation.",
     "Changing clocks, power limits, persistence or compute mode needs root. Apply such settings "
     "once as an administrator (nvidia-smi) rather than from the service, or only read the "
     "values.",
     kNotSticky},
    {Domain::nvml, 5, "NVML_ERROR_ALREADY_INITIALIZED",
     "Deprecated: multiple initialisations are now allowed through reference counting.",
     "Current NVML never returns it; repeated nvmlInit calls are simply counted. Ignore it.",
     kNotSticky},
    {Domain::nvml, 6, "NVML_ERROR_NOT_FOUND", "A query to find an object was unsuccessful.",
     "A lookup by UUID, serial or PCI bus id matched no device, e.g. a stale UUID or a bus id in "
     "a different format. Compare against `nvidia-smi -L` and pass the full \"GPU-...\" UUID.",
     kNotSticky},
    {Domain::nvml, 7, "NVML_ERROR_INSUFFICIENT_SIZE", "An input argument is not large enough.",
     "The output buffer or array is too small. Call again with the size NVML returned in the "
     "count argument, in a loop, since process and instance lists can grow between calls.",
     kNotSticky},
    {Domain::nvml, 8, "NVML_ERROR_INSUFFICIENT_POWER",
     "A device's external power cables are not properly attached.",
     "A hardware problem: the GPU's auxiliary power connectors are unplugged or underpowered. "
     "Have the cabling and power supply checked; the GPU is unusable until then.",
     kNotSticky},
    {Domain::nvml, 9, "NVML_ERROR_DRIVER_NOT_LOADED", "The NVIDIA driver is not loaded.",
     "The kernel module is not running (not installed, or not rebuilt after a kernel update) or "
     "the container lacks /dev/nvidiactl. Check `lsmod | grep nvidia` and dmesg, use the NVIDIA "
     "container runtime, and run `kiln doctor`.",
     kNotSticky},
    {Domain::nvml, 10, "NVML_ERROR_TIMEOUT", "The user-provided timeout passed.",
     "A call with a timeout, such as nvmlEventSetWait_v2, returned before any event arrived. "
     "Usually not a failure: wait again.",
     kNotSticky},
    {Domain::nvml, 11, "NVML_ERROR_IRQ_ISSUE",
     "The NVIDIA kernel module detected an interrupt issue with a GPU.",
     "The GPU's interrupts are not delivered, usually a platform problem (MSI/MSI-X, BIOS, PCI "
     "passthrough). Check dmesg and update the BIOS/firmware or hypervisor configuration.",
     kNotSticky},
    {Domain::nvml, 12, "NVML_ERROR_LIBRARY_NOT_FOUND",
     "The NVML shared library could not be found or loaded.",
     "NVML, or a library it needs such as libcuda.so.1 for driver-version queries, is not "
     "installed or not visible. Install the driver's user-space libraries; in containers include "
     "`utility` and `compute` in NVIDIA_DRIVER_CAPABILITIES.",
     kNotSticky},
    {Domain::nvml, 13, "NVML_ERROR_FUNCTION_NOT_FOUND",
     "The local version of NVML does not implement this function.",
     "The driver's libnvidia-ml is older than the API being called. Update the driver, or treat "
     "the feature as unavailable.",
     kNotSticky},
    {Domain::nvml, 14, "NVML_ERROR_CORRUPTED_INFOROM", "The GPU's infoROM is corrupted.",
     "The GPU's configuration ROM failed its checksum; the GPU may still run but some queries and "
     "ECC bookkeeping fail. `nvidia-smi -q` shows an InfoROM warning; contact the vendor for a "
     "reflash or replacement.",
     kNotSticky},
    {Domain::nvml, 15, "NVML_ERROR_GPU_IS_LOST",
     "The GPU has fallen off the bus or has otherwise become inaccessible.",
     "A severe hardware or driver event (Xid 79 in dmesg) affecting every process on that GPU. "
     "The node needs a GPU reset or reboot: drain it and alert the operator.",
     kNotSticky},
    {Domain::nvml, 16, "NVML_ERROR_RESET_REQUIRED",
     "The GPU requires a reset before it can be used again.",
     "A pending ECC page retirement, row remapping or earlier fatal error needs a reset. Stop all "
     "processes on the GPU and run `nvidia-smi -r -i <index>` as root, or reboot.",
     kNotSticky},
    {Domain::nvml, 17, "NVML_ERROR_OPERATING_SYSTEM",
     "The GPU control device has been blocked by the operating system or cgroups.",
     "A device cgroup or container policy denies /dev/nvidiactl or /dev/nvidia*. Allow the "
     "devices in the container or cgroup configuration (the NVIDIA container runtime does this).",
     kNotSticky},
    {Domain::nvml, 18, "NVML_ERROR_LIB_RM_VERSION_MISMATCH",
     "The resource manager detected a version mismatch between the driver and the NVML library.",
     "libnvidia-ml.so and the loaded kernel module come from different driver releases, usually "
     "after an upgrade without reboot (nvidia-smi then reports \"Driver/library version "
     "mismatch\"). Reboot, or reload the nvidia kernel modules.",
     kNotSticky},
    {Domain::nvml, 19, "NVML_ERROR_IN_USE",
     "The operation cannot be performed because the GPU is currently in use.",
     "Changing ECC or MIG mode, or resetting the GPU, requires that no process uses it. Stop the "
     "processes that nvidia-smi lists on that GPU, then retry.",
     kNotSticky},
    {Domain::nvml, 20, "NVML_ERROR_MEMORY", "There was insufficient memory.",
     "NVML or the driver could not allocate host memory for the request. Check the process's or "
     "container's memory limit.",
     kNotSticky},
    {Domain::nvml, 21, "NVML_ERROR_NO_DATA", "No data is available.",
     "No samples exist yet for the requested period (e.g. utilisation or process samples since a "
     "timestamp). Wait one sampling interval and query again; not a failure.",
     kNotSticky},
    {Domain::nvml, 22, "NVML_ERROR_VGPU_ECC_NOT_SUPPORTED",
     "The requested vGPU operation is not available on the target device because ECC is enabled.",
     "Some vGPU types cannot be created while ECC is on. Disable ECC on the host "
     "(`nvidia-smi -e 0` and a reset) or choose a vGPU type that supports ECC.",
     kNotSticky},
    {Domain::nvml, 23, "NVML_ERROR_INSUFFICIENT_RESOURCES",
     "Critical resources other than memory ran out.",
     "A driver or hardware resource such as MIG or vGPU slots or encoder sessions is exhausted. "
     "Release unused instances or sessions, or use another GPU.",
     kNotSticky},
    {Domain::nvml, 24, "NVML_ERROR_FREQ_NOT_SUPPORTED", "The requested frequency is not supported.",
     "The clock value is not one the device supports. Choose from "
     "nvmlDeviceGetSupportedMemoryClocks/GraphicsClocks (`nvidia-smi -q -d SUPPORTED_CLOCKS`).",
     kNotSticky},
    {Domain::nvml, 25, "NVML_ERROR_ARGUMENT_VERSION_MISMATCH",
     "The version of the provided argument is invalid or unsupported.",
     "A versioned structure carries a version this NVML does not know, typically code built "
     "against a newer nvml.h than the installed driver. Use the struct version of the installed "
     "driver, or update the driver.",
     kNotSticky},
    {Domain::nvml, 26, "NVML_ERROR_DEPRECATED", "The requested functionality has been deprecated.",
     "The driver no longer supports this call. Use the replacement that nvml.h documents for it.",
     kNotSticky},
    {Domain::nvml, 27, "NVML_ERROR_NOT_READY", "The system is not ready for the request.",
     "The driver or GPU is still initialising (on NVSwitch systems, fabric manager may not be "
     "done). Retry after a short delay.",
     kNotSticky},
    {Domain::nvml, 28, "NVML_ERROR_GPU_NOT_FOUND", "No GPUs were found.",
     "NVML sees no GPU: none is installed, none is exposed to the container, or all failed to "
     "initialise. Check `nvidia-smi` and `kiln doctor`.",
     kNotSticky},
    {Domain::nvml, 29, "NVML_ERROR_INVALID_STATE",
     "A resource is not in the correct state to perform the requested operation.",
     "The GPU or instance is in the wrong mode for the call, e.g. a MIG operation with MIG "
     "disabled or a mode change still pending a reset. Check current and pending modes with "
     "`nvidia-smi -q`.",
     kNotSticky},
    {Domain::nvml, 30, "NVML_ERROR_RESET_TYPE_NOT_SUPPORTED",
     "The reset type is not supported for the given device or parameters.",
     "The GPU or platform cannot perform the requested kind of reset. Use another reset type or "
     "reboot the node.",
     kNotSticky},
    {Domain::nvml, 999, "NVML_ERROR_UNKNOWN", "An internal driver error occurred.",
     "NVML hit an unexpected driver failure. Check dmesg for Xid messages and the consistency of "
     "the driver installation; `kiln doctor` summarises both.",
     kNotSticky},

    // kiln::Errc (kiln/driver/error.hpp).
    {Domain::kiln, 1, "KILN_ERROR_DRIVER_NOT_FOUND",
     "The NVIDIA driver library libcuda.so.1 could not be loaded.",
     "No NVIDIA driver is installed or visible: install the driver, and in containers make sure "
     "the runtime exposes libcuda.so.1 (--gpus all, NVIDIA_DRIVER_CAPABILITIES including "
     "`compute`). `kiln doctor` lists the paths that were tried.",
     kNotSticky},
    {Domain::kiln, 2, "KILN_ERROR_NVRTC_NOT_FOUND",
     "No NVRTC library was found in kiln's search order.",
     "kiln searches KILN_NVRTC_PATH, then CUDA_HOME/CUDA_PATH, then the toolkit found at build "
     "time, then the loader path. Set KILN_NVRTC_PATH to the library file (e.g. "
     "/usr/local/cuda/lib64/libnvrtc.so.13) or install the toolkit's NVRTC package; `kiln doctor` "
     "shows every candidate.",
     kNotSticky},
    {Domain::kiln, 3, "KILN_ERROR_NVML_NOT_FOUND",
     "libnvidia-ml.so.1 could not be loaded; NVML is optional.",
     "Only monitoring (temperatures, clocks, utilisation) is unavailable; kernels still run. NVML "
     "ships with the driver: in containers include `utility` in NVIDIA_DRIVER_CAPABILITIES.",
     kNotSticky},
    {Domain::kiln, 4, "KILN_ERROR_SYMBOL_MISSING",
     "A loaded library lacks an entry point kiln needs.",
     "kiln loaded something other than the expected library: a stub, another major version, or an "
     "unrelated file with a matching name. Check the path in the detail with `kiln doctor`, and "
     "point KILN_NVRTC_PATH or the loader path at a genuine library.",
     kNotSticky},
    {Domain::kiln, 5, "KILN_ERROR_DRIVER_TOO_OLD",
     "The entry point kiln needs exists only in a newer driver than the one installed.",
     "The feature named in the detail needs a newer NVIDIA driver. Update the driver or avoid the "
     "feature; `kiln doctor` prints the driver's CUDA version.",
     kNotSticky},
    {Domain::kiln, 6, "KILN_ERROR_INVALID_ARGUMENT",
     "A caller passed an argument that kiln rejects before any driver call.",
     "The detail names the argument and the rule it broke (e.g. an empty launch, a null buffer, a "
     "kernel argument count that does not match). Fix the call site; nothing reached the GPU.",
     kNotSticky},
    {Domain::kiln, 7, "KILN_ERROR_VERSION_MISMATCH",
     "Components have incompatible versions, such as an NVRTC newer than the driver.",
     "Two parts come from different toolkits. An NVRTC newer than the driver writes PTX the driver "
     "cannot JIT (use an NVRTC no newer than the driver, compile to CUBIN for the exact sm_XX, or update "
     "the driver); an NVRTC older than the GPU cannot target it (use a newer toolkit's NVRTC, or PTX for "
     "an older virtual architecture). `kiln doctor` shows every version and what does not line up.",
     kNotSticky},
    {Domain::kiln, 8, "KILN_ERROR_COMPILE_FAILED",
     "NVRTC rejected the kernel source; the log is in the detail.",
     "Read the compiler log in the detail: it gives file, line and message. Missing headers need "
     "-I options or named headers, and --gpu-architecture must name an architecture this NVRTC "
     "supports.",
     kNotSticky},
    {Domain::kiln, 9, "KILN_ERROR_INVALID_HANDLE", "A moved-from or empty kiln object was used.",
     "An object was used after std::move or after default construction without a resource (C++), or a "
     "handle was NULL, already destroyed or closed (the C ABI, the Go module). A moved-from kiln object may "
     "only be assigned to or destroyed, a destroyed handle not used at all; the message names the call.",
     kNotSticky},
    {Domain::kiln, 10, "KILN_ERROR_TIMEOUT", "A deadline passed before the work finished.",
     "The compile or GPU work outlasted its deadline and may still be running. Raise the "
     "deadline, or look for a hung kernel (an endless loop, a wait on a flag nobody sets) with "
     "compute-sanitizer or Nsight Systems.",
     kNotSticky},
    {Domain::kiln, 11, "KILN_ERROR_INTERNAL", "An invariant inside kiln was broken.",
     "This is a kiln bug: please report it with the full message, including the source location, "
     "and the output of `kiln doctor`.",
     kNotSticky},
    {Domain::kiln, 12, "KILN_ERROR_UNAVAILABLE", "A service kiln was told to use cannot be reached or refused a command.",
     "Check that the service (Redis for kilnd's shared queue) runs at the address given, accepts this client and "
     "is version 6.2 or newer (XAUTOCLAIM); the message names the address and the command.",
     kNotSticky},
    {Domain::kiln, 13, "KILN_ERROR_CANCELLED", "The caller cancelled a wait before the work finished.",
     "The wait was abandoned (a cancelled std::stop_token, a Go context, a kiln_cancel); the GPU work it waited "
     "for cannot be stopped from the host and may still be running: the message names it. Wait again, or let "
     "the stream's later work order after it.",
     kNotSticky},
    {Domain::kiln, 14, "KILN_ERROR_NVJITLINK_NOT_FOUND",
     "No nvJitLink library was found in kiln's search order.",
     "Only linking (LTO-IR, device libraries, relocatable device code) needs nvJitLink; compiling and "
     "launching work without it. kiln searches KILN_NVJITLINK_PATH, then CUDA_HOME/CUDA_PATH, then the "
     "toolkit found at build time, then the loader path. Set KILN_NVJITLINK_PATH to the library file (e.g. "
     "/usr/local/cuda/lib64/libnvJitLink.so.13) or install the toolkit's nvJitLink package (the same "
     "version as NVRTC); `kiln doctor` shows every candidate.",
     kNotSticky},
    {Domain::kiln, 15, "KILN_ERROR_LINK_FAILED", "nvJitLink rejected the inputs of a link.",
     "The detail lists each error with the symbol and the input it concerns: an undefined symbol means "
     "no input defines a function or variable another declares extern (add the device library that "
     "defines it, or check the name's spelling and extern \"C\"); a symbol defined twice means two "
     "inputs define it (drop one, or make one static). LTO-IR inputs need an nvJitLink of NVRTC's major "
     "version and no older.",
     kNotSticky},

    // nvJitLinkResult (nvJitLink.h, CUDA 13.0).
    {Domain::nvjitlink, 0, "NVJITLINK_SUCCESS", "The call succeeded.",
     "Not an error: kiln never throws with this code.", kNotSticky},
    {Domain::nvjitlink, 1, "NVJITLINK_ERROR_UNRECOGNIZED_OPTION", "An option given to nvJitLinkCreate is unknown.",
     "An option in LinkOptions::extra is not one this nvJitLink knows (it may be newer than the library, or "
     "an NVRTC/ptxas spelling). Check nvJitLink's option list for its version; pass ptxas options as "
     "-Xptxas=<opt>.",
     kNotSticky},
    {Domain::nvjitlink, 2, "NVJITLINK_ERROR_MISSING_ARCH", "The option -arch=sm_NN was not given.",
     "kiln always passes the target's -arch; seeing this means an empty or virtual target reached the "
     "linker. Link for a real architecture (sm_90), which is what Target::for_arch gives.",
     kNotSticky},
    {Domain::nvjitlink, 3, "NVJITLINK_ERROR_INVALID_INPUT", "An input or argument of the call is invalid.",
     "An input is empty or a handle was misused. Check that every link input holds bytes (a file that "
     "read as empty, an artifact that was never compiled).",
     kNotSticky},
    {Domain::nvjitlink, 4, "NVJITLINK_ERROR_PTX_COMPILE", "Compiling PTX to machine code failed during the link.",
     "ptxas rejected the linked program: most often an unresolved extern function or variable (the log "
     "names it; no input defines it), or PTX for a newer ISA than this nvJitLink knows. Add the input that "
     "defines the symbol, or use an nvJitLink at least as new as the PTX's producer.",
     kNotSticky},
    {Domain::nvjitlink, 5, "NVJITLINK_ERROR_NVVM_COMPILE", "Optimising or compiling LTO-IR failed during the link.",
     "The link-time optimiser rejected the LTO-IR: a symbol defined in two inputs ('symbol multiply "
     "defined'), LTO-IR from a newer or other-major NVRTC, or a broken input. The log names the input and "
     "the symbol.",
     kNotSticky},
    {Domain::nvjitlink, 6, "NVJITLINK_ERROR_INTERNAL", "nvJitLink encountered an internal error.",
     "Retry once; if it persists, reduce the inputs to a small reproducer and report it to NVIDIA with the "
     "nvJitLink version `kiln doctor` shows. kiln also returns this for an optional entry point the loaded "
     "nvJitLink lacks.",
     kNotSticky},
    {Domain::nvjitlink, 7, "NVJITLINK_ERROR_THREADPOOL", "nvJitLink could not use its thread pool.",
     "Split compilation (-split-compile) could not start threads: the process may be out of threads or "
     "memory. Drop -split-compile or raise the process's limits.",
     kNotSticky},
    {Domain::nvjitlink, 8, "NVJITLINK_ERROR_UNRECOGNIZED_INPUT", "An input's bytes are not of any kind nvJitLink reads.",
     "The bytes are neither CUBIN, PTX, LTO-IR, fatbin nor a host object: a truncated or damaged file, or "
     "a file of another format. Rebuild the input (kiln compile --lto writes LTO-IR).",
     kNotSticky},
    {Domain::nvjitlink, 9, "NVJITLINK_ERROR_FINALIZE", "Finalising the linked image failed.",
     "Often an undefined reference when linking without LTO: the log says 'Undefined reference to <symbol> "
     "in <input>'. Add the input that defines the symbol.",
     kNotSticky},
    {Domain::nvjitlink, 10, "NVJITLINK_ERROR_NULL_INPUT", "A null pointer was passed as input.",
     "A kiln bug if it reaches you through kiln's linker (it never passes null data): please report it.",
     kNotSticky},
    {Domain::nvjitlink, 11, "NVJITLINK_ERROR_INCOMPATIBLE_OPTIONS", "Two of the link options cannot be combined.",
     "For example -ptx without -lto: PTX output needs LTO (every input LTO-IR). Remove one of the options.",
     kNotSticky},
    {Domain::nvjitlink, 12, "NVJITLINK_ERROR_INCORRECT_INPUT_TYPE", "An input was declared as a kind it is not.",
     "The bytes do not match the declared kind (PTX given as LTO-IR, a CUBIN as PTX). Declare the input's "
     "real kind; LinkInput::from_file guesses it from the extension (.ltoir, .ptx, .cubin, .fatbin, .o).",
     kNotSticky},
    {Domain::nvjitlink, 13, "NVJITLINK_ERROR_ARCH_MISMATCH", "An input was built for another architecture than -arch.",
     "A CUBIN or LTO-IR for sm_80 cannot link into sm_90. Rebuild the input for the link's architecture, "
     "or give PTX, which any newer architecture accepts.",
     kNotSticky},
    {Domain::nvjitlink, 14, "NVJITLINK_ERROR_OUTDATED_LIBRARY", "The nvJitLink library is older than the input needs.",
     "An input (usually LTO-IR) was written by a newer toolkit than this nvJitLink. Use the nvJitLink of "
     "the toolkit that made the input (KILN_NVJITLINK_PATH); `kiln doctor` shows both versions.",
     kNotSticky},
    {Domain::nvjitlink, 15, "NVJITLINK_ERROR_MISSING_FATBIN", "A required fatbin input is missing.",
     "A host object or library refers to device code whose fatbin was not given. Add the fatbin or the "
     "object that embeds it.",
     kNotSticky},
    {Domain::nvjitlink, 16, "NVJITLINK_ERROR_UNRECOGNIZED_ARCH", "The -arch value is not a known architecture.",
     "The architecture is malformed or newer than this nvJitLink. Use sm_NN of a real GPU this nvJitLink "
     "version knows.",
     kNotSticky},
    {Domain::nvjitlink, 17, "NVJITLINK_ERROR_UNSUPPORTED_ARCH", "The -arch value is not supported by this nvJitLink.",
     "The architecture was dropped (too old) or is not yet supported. Use an nvJitLink that supports it.",
     kNotSticky},
    {Domain::nvjitlink, 18, "NVJITLINK_ERROR_LTO_NOT_ENABLED", "An LTO-IR input was given without -lto.",
     "kiln adds -lto when any input is LTO-IR; seeing this means LinkOptions::lto was forced off. Let kiln "
     "choose, or give PTX or CUBIN inputs instead.",
     kNotSticky},
};

}  // namespace

std::span<const ErrorInfo> error_table() noexcept { return kTable; }

}  // namespace kiln
