/* kiln's C ABI (libkiln.so): everything a service needs from kiln, for C and for any language with a
 * C foreign-function interface (the Go module in bindings/go is built on it).
 *
 * Conventions
 * - Every function that can fail returns kiln_status (KILN_OK, or the domain of the failure) and
 *   takes a last `kiln_error* error` that may be NULL. When it is not NULL and the call fails, it
 *   is filled; the caller owns it and releases what it holds with kiln_error_clear(). A successful
 *   call leaves it untouched. No C++ exception ever crosses this boundary.
 * - Handles are opaque pointers. Each has one destroy function; destroying NULL does nothing. A
 *   NULL handle passed anywhere else is refused with KILN_ERRC_INVALID_HANDLE.
 * - Strings are UTF-8 and NUL-terminated. Strings kiln returns through `char**` are the caller's,
 *   released with kiln_free().
 * - Structs whose first member is `size_t size` are extensible: set size = sizeof(the struct) (the
 *   *_init functions do). Later ABI versions only append members, and kiln reads (or, for results,
 *   writes) only the members that fit in `size`, so a program built against an older kiln.h keeps
 *   working.
 * - Any thread may call anything at any time: kiln makes the right CUDA context current inside each
 *   call (when it is not already), as the C++ core does. No lock is taken on the launch path.
 * - Devices are CUDA ordinals. Device memory addresses are uint64_t (CUdeviceptr).
 *
 * ABI stability: symbols are versioned (KILN_1); KILN_ABI_VERSION changes only when an existing
 * function or struct changes incompatibly, and kiln_abi_version() says what the loaded library is.
 */
#ifndef KILN_KILN_H
#define KILN_KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KILN_C_BUILDING)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

#define KILN_ABI_VERSION 1

/* ---------------------------------------------------------------- errors */

typedef enum kiln_status {
  KILN_OK = 0,
  KILN_ERROR_DRIVER = 1, /* a CUresult (CUDA driver API) */
  KILN_ERROR_NVRTC = 2,  /* an nvrtcResult */
  KILN_ERROR_NVML = 3,   /* an nvmlReturn_t */
  KILN_ERROR_KILN = 4,   /* one of kiln's own codes (kiln_errc) */
  KILN_ERROR_NVJITLINK = 5 /* an nvJitLinkResult (the device-code linker) */
} kiln_status;

/* kiln's own codes (kiln_error.code when the domain is KILN_ERROR_KILN). */
typedef enum kiln_errc {
  KILN_ERRC_DRIVER_NOT_FOUND = 1,
  KILN_ERRC_NVRTC_NOT_FOUND = 2,
  KILN_ERRC_NVML_NOT_FOUND = 3,
  KILN_ERRC_SYMBOL_MISSING = 4,
  KILN_ERRC_DRIVER_TOO_OLD = 5,
  KILN_ERRC_INVALID_ARGUMENT = 6,
  KILN_ERRC_VERSION_MISMATCH = 7,
  KILN_ERRC_COMPILE_FAILED = 8,
  KILN_ERRC_INVALID_HANDLE = 9,
  KILN_ERRC_TIMEOUT = 10,
  KILN_ERRC_INTERNAL = 11,
  KILN_ERRC_UNAVAILABLE = 12,
  KILN_ERRC_CANCELLED = 13,
  KILN_ERRC_NVJITLINK_NOT_FOUND = 14,
  KILN_ERRC_LINK_FAILED = 15
} kiln_errc;

typedef struct kiln_error {
  kiln_status domain; /* KILN_ERROR_DRIVER ... KILN_ERROR_NVJITLINK */
  int code;           /* the number in that domain: 700 for CUDA_ERROR_ILLEGAL_ADDRESS */
  int sticky;         /* 1: the CUDA context is unusable; only a new process recovers */
  char* name;         /* "CUDA_ERROR_ILLEGAL_ADDRESS" */
  char* message;      /* the whole story: the failing call, what the code means, context, hint */
  char* hint;         /* what to do, on its own; may be empty */
  char* call;         /* the failing function ("cuLaunchKernel", "kiln_launch") */
} kiln_error;

/* Releases the strings an error holds and zeroes it, ready for reuse. */
KILN_API void kiln_error_clear(kiln_error* error);
/* Fills `error` with the table entry for a code (name, hint, sticky; the message is the
 * description). KILN_OK when the code is known, else KILN_ERROR_KILN with INVALID_ARGUMENT. */
KILN_API kiln_status kiln_error_lookup(kiln_status domain, int code, kiln_error* error);
/* Every table entry `text` names, as `kiln explain` reads it: "CUDA_ERROR_ILLEGAL_ADDRESS", "700"
 * (that number in every domain), "nvrtc:6", "kiln:1". Fills min(capacity, count) of `found` as
 * kiln_error_lookup does (clear each), sets *count; no entry is not a failure (*count is 0). */
KILN_API kiln_status kiln_error_find(const char* text, kiln_error* found, size_t capacity, size_t* count,
                                     kiln_error* error);
/* Releases a string or array kiln returned. */
KILN_API void kiln_free(void* p);

/* ---------------------------------------------------------------- version, environment */

KILN_API const char* kiln_version(void); /* "0.1.0" */
KILN_API int kiln_abi_version(void);     /* KILN_ABI_VERSION of the loaded library */

/* What `kiln doctor --json` prints: libraries found (paths, versions), every GPU, every problem
 * with its hint. Never fails for lack of a GPU: that is a problem in the report. */
KILN_API kiln_status kiln_environment_json(char** json, kiln_error* error);
/* The number of CUDA devices; fails (driver_not_found, or the driver's error) without a driver. */
KILN_API kiln_status kiln_device_count(int* count, kiln_error* error);

typedef struct kiln_device_info {
  size_t size;
  int ordinal;
  char name[256];
  char uuid[64];       /* "GPU-xxxxxxxx-...", as nvidia-smi prints it */
  char pci_bus_id[32]; /* "0000:00:05.0" */
  int cc_major, cc_minor;
  int multiprocessors;
  uint64_t memory_total;
} kiln_device_info;

KILN_API kiln_status kiln_device_get_info(int ordinal, kiln_device_info* info, kiln_error* error);
/* The device's free and total memory as the driver sees them now (cuMemGetInfo). */
KILN_API kiln_status kiln_device_memory(int ordinal, uint64_t* free_bytes, uint64_t* total_bytes, kiln_error* error);

/* ---------------------------------------------------------------- compiling */

typedef enum kiln_image_kind { KILN_IMAGE_CUBIN = 0, KILN_IMAGE_PTX = 1 } kiln_image_kind;

typedef struct kiln_target {
  kiln_image_kind kind;
  int arch; /* 90 for sm_90 / compute_90 */
} kiln_target;

/* "sm_90", "compute_90", "90", "9.0". */
KILN_API kiln_status kiln_target_parse(const char* text, kiln_target* target, kiln_error* error);
/* The best target for a device: CUBIN for its architecture when NVRTC has it, else PTX. */
KILN_API kiln_status kiln_target_for_device(int ordinal, kiln_target* target, kiln_error* error);

typedef struct kiln_header {
  const char* name; /* the include name: #include "name" */
  const char* source;
} kiln_header;

typedef struct kiln_program {
  size_t size;
  const char* name;   /* the file name diagnostics use; NULL: "kernel.cu" */
  const char* source; /* required */
  const kiln_header* headers;
  size_t header_count;
  const char* const* include_dirs;
  size_t include_dir_count;
  const char* const* name_expressions; /* "scale<float>": their lowered names come back */
  size_t name_expression_count;
  /* options */
  const char* standard; /* "c++17"; NULL or "": NVRTC's default */
  const char* const* defines; /* "NAME" or "NAME=VALUE" */
  size_t define_count;
  int line_info;
  int fast_math;
  int max_registers; /* 0: no cap */
  int relocatable_device_code;
  int minimal; /* -minimal (NVRTC 12.4+): faster compiles of kernels that include no library */
  const char* const* extra_options; /* passed to NVRTC verbatim, in order */
  size_t extra_option_count;
} kiln_program;

KILN_API void kiln_program_init(kiln_program* program);

typedef struct kiln_cache_options {
  size_t size;
  uint64_t memory_bytes; /* memory tier capacity; 0: 256 MiB */
  int use_disk;          /* 1 (the default from kiln_cache_options_init): the disk tier too */
  const char* disk_directory; /* NULL: $KILN_CACHE_DIR, else ~/.cache/kiln */
  uint64_t disk_max_bytes;    /* 0: $KILN_CACHE_MAX_BYTES, else 4 GiB */
  int precompiled_headers;
} kiln_cache_options;

KILN_API void kiln_cache_options_init(kiln_cache_options* options);

typedef struct kiln_cache kiln_cache;
typedef struct kiln_image kiln_image;

/* A kernel cache: memory tier, disk tier shared by processes, one compile per key. Thread-safe. */
KILN_API kiln_status kiln_cache_create(const kiln_cache_options* options, kiln_cache** cache, kiln_error* error);
KILN_API void kiln_cache_destroy(kiln_cache* cache);

typedef struct kiln_cache_stats {
  size_t size;
  uint64_t memory_hits, memory_misses, disk_hits, disk_misses;
  uint64_t compiles, compile_failures, shared_waits, corrupt_entries;
  uint64_t memory_bytes, memory_entries;
  int64_t compile_ns_spent, compile_ns_saved;
} kiln_cache_stats;

KILN_API kiln_status kiln_cache_get_stats(kiln_cache* cache, kiln_cache_stats* stats, kiln_error* error);

/* Compiles through the cache. On success *image is the caller's (kiln_image_destroy).
 * When NVRTC rejects the program the call fails with KILN_ERRC_COMPILE_FAILED (the message holds
 * the compiler-style diagnostics) and, when `diagnostics` is not NULL, *diagnostics receives them
 * structured (kiln_diagnostics_destroy); it is set to NULL otherwise. */
typedef struct kiln_diagnostics kiln_diagnostics;
KILN_API kiln_status kiln_compile(kiln_cache* cache, const kiln_program* program, kiln_target target,
                                  kiln_image** image, kiln_diagnostics** diagnostics, kiln_error* error);
KILN_API void kiln_image_destroy(kiln_image* image);

typedef enum kiln_origin { KILN_ORIGIN_COMPILED = 0, KILN_ORIGIN_MEMORY = 1, KILN_ORIGIN_DISK = 2 } kiln_origin;

typedef struct kiln_image_info {
  size_t size;
  kiln_target target;
  kiln_origin origin;
  const void* data; /* CUBIN bytes or PTX text; valid while the image lives */
  size_t data_size;
  int64_t compile_ns;
  const char* log;     /* NVRTC's log */
  size_t name_expression_count;
} kiln_image_info;

KILN_API kiln_status kiln_image_get_info(const kiln_image* image, kiln_image_info* info, kiln_error* error);
/* The image's cache key as 64 lowercase hex digits and a NUL (the name of its disk cache entry). */
KILN_API kiln_status kiln_image_key(const kiln_image* image, char hex[65], kiln_error* error);
/* The lowered (mangled) name of a name expression the program listed; valid while the image lives.
 * Fails with INVALID_ARGUMENT naming an expression that was not listed. */
KILN_API kiln_status kiln_image_lowered_name(const kiln_image* image, const char* name_expression,
                                             const char** lowered, kiln_error* error);
/* The warnings (and remarks) NVRTC gave for a program it accepted. */
KILN_API kiln_status kiln_image_diagnostics(const kiln_image* image, kiln_diagnostics** diagnostics, kiln_error* error);

typedef enum kiln_severity {
  KILN_SEVERITY_REMARK = 0,
  KILN_SEVERITY_WARNING = 1,
  KILN_SEVERITY_ERROR = 2,
  KILN_SEVERITY_FATAL = 3
} kiln_severity;

typedef struct kiln_diagnostic {
  const char* file;
  int line;   /* 1-based; 0 when unknown */
  int column; /* 1-based; 0 when unknown */
  kiln_severity severity;
  const char* code; /* NVRTC's number, "177-D"; may be empty */
  const char* message;
  const char* source_line;
  const char* formatted; /* "file:line:col: error: message", the line and a caret */
} kiln_diagnostic;

KILN_API size_t kiln_diagnostics_count(const kiln_diagnostics* diagnostics);
/* The i-th entry, valid while `diagnostics` lives; NULL past the end. */
KILN_API const kiln_diagnostic* kiln_diagnostics_at(const kiln_diagnostics* diagnostics, size_t i);
KILN_API void kiln_diagnostics_destroy(kiln_diagnostics* diagnostics);

/* ---------------------------------------------------------------- modules and kernels */

typedef struct kiln_module kiln_module;
typedef struct kiln_kernel kiln_kernel;

/* Loads an image into a device's primary context. The image may be destroyed afterwards. */
KILN_API kiln_status kiln_module_load(const kiln_image* image, int device, kiln_module** module, kiln_error* error);
KILN_API void kiln_module_destroy(kiln_module* module);
/* A kernel by its name or by a name expression of the image it was loaded from. The kernel keeps
 * its module's code loaded, so the module may be destroyed first. */
KILN_API kiln_status kiln_module_get_kernel(const kiln_module* module, const char* name, kiln_kernel** kernel,
                                            kiln_error* error);
KILN_API void kiln_kernel_destroy(kiln_kernel* kernel);
KILN_API int kiln_kernel_device(const kiln_kernel* kernel); /* -1 for NULL */
/* The parameter sizes in bytes, in order: writes min(capacity, count) of them, sets *count. */
KILN_API kiln_status kiln_kernel_params(const kiln_kernel* kernel, size_t* sizes, size_t capacity, size_t* count,
                                        kiln_error* error);

/* ---------------------------------------------------------------- streams, events, waits */

typedef struct kiln_stream kiln_stream;
typedef struct kiln_event kiln_event;
/* A cancellation flag a wait watches: another thread sets it with kiln_cancel_request(). */
typedef struct kiln_cancel kiln_cancel;

KILN_API kiln_status kiln_stream_create(int device, int priority, kiln_stream** stream, kiln_error* error);
/* A kiln stream over a CUstream another library made (CuPy's Stream.ptr, torch.cuda.Stream's
 * cuda_stream, cuda.core's __cuda_stream__), so kiln's launches and copies join its order. `handle`
 * is the CUstream as an integer (0, CU_STREAM_LEGACY and CU_STREAM_PER_THREAD too); it must belong
 * to `device`'s primary context (checked). kiln never destroys it: its owner keeps it alive while
 * this handle and the buffers allocated on it live. kiln_stream_destroy releases only kiln's part. */
KILN_API kiln_status kiln_stream_borrow(int device, uint64_t handle, kiln_stream** stream, kiln_error* error);
/* Work already enqueued completes; the stream is freed by the driver afterwards. */
KILN_API void kiln_stream_destroy(kiln_stream* stream);
KILN_API int kiln_stream_device(const kiln_stream* stream); /* -1 for NULL */
/* The CUstream as an integer, as other libraries take it (__cuda_array_interface__'s "stream",
 * CuPy's ExternalStream, torch.cuda.ExternalStream); 0 for NULL. */
KILN_API uint64_t kiln_stream_handle(const kiln_stream* stream);
KILN_API kiln_status kiln_stream_synchronize(kiln_stream* stream, kiln_error* error);
/* Waits for the work enqueued so far. timeout_ns < 0: no deadline. Fails with KILN_ERRC_TIMEOUT or
 * KILN_ERRC_CANCELLED (the message names the work still running: nothing can stop a kernel) or with
 * the error the work raised. */
KILN_API kiln_status kiln_stream_wait(kiln_stream* stream, int64_t timeout_ns, const kiln_cancel* cancel,
                                      kiln_error* error);
/* Later work on `stream` waits for `event` (which may be of another device). */
KILN_API kiln_status kiln_stream_wait_event(kiln_stream* stream, const kiln_event* event, kiln_error* error);

#define KILN_EVENT_TIMING 1u
KILN_API kiln_status kiln_event_create(int device, unsigned flags, kiln_event** event, kiln_error* error);
KILN_API void kiln_event_destroy(kiln_event* event);
KILN_API kiln_status kiln_event_record(kiln_event* event, kiln_stream* stream, kiln_error* error);
KILN_API kiln_status kiln_event_wait(const kiln_event* event, int64_t timeout_ns, const kiln_cancel* cancel,
                                     kiln_error* error);
/* Milliseconds between two recorded KILN_EVENT_TIMING events. */
KILN_API kiln_status kiln_event_elapsed_ms(const kiln_event* start, const kiln_event* end, float* ms,
                                           kiln_error* error);

KILN_API kiln_status kiln_cancel_create(kiln_cancel** cancel, kiln_error* error);
KILN_API void kiln_cancel_request(kiln_cancel* cancel); /* safe from any thread, any number of times */
KILN_API void kiln_cancel_destroy(kiln_cancel* cancel);

/* ---------------------------------------------------------------- launching */

typedef struct kiln_launch_config {
  size_t size;       /* sizeof(kiln_launch_config) */
  unsigned grid[3];  /* 0 is read as 1 */
  unsigned block[3]; /* 0 is read as 1 */
  unsigned dynamic_shared_bytes;
  unsigned cluster[3]; /* thread-block cluster (sm_90+); all 0 or 1: none */
} kiln_launch_config;

/* The offset of argument i in a packed argument block: each argument starts at the next multiple
 * of 8 bytes after the previous one (its size rounded up to 8). */
#define KILN_ARGUMENT_ALIGNMENT 8

/* Checked launch: `sizes[i]` is the size of argument i, which lies in `arguments` at its offset
 * (KILN_ARGUMENT_ALIGNMENT). A count or a size that differs from the kernel's parameters is
 * refused before anything is launched, naming the argument and both sizes; so is a stream of
 * another device than a module kernel's. */
KILN_API kiln_status kiln_launch(const kiln_kernel* kernel, kiln_stream* stream, const kiln_launch_config* config,
                                 const void* arguments, const size_t* sizes, size_t count, kiln_error* error);

/* ---------------------------------------------------------------- memory */

/* Device memory from a device's stream-ordered pool (cuMemPool, with kiln's per-stream cache in
 * front). A buffer is freed in order on the stream it was allocated on. Tags (here and below) are
 * copied: they name the allocation in kiln_allocation_report. */
typedef struct kiln_buffer kiln_buffer;
KILN_API kiln_status kiln_buffer_create(kiln_stream* stream, size_t bytes, const char* tag, kiln_buffer** buffer,
                                        uint64_t* address, kiln_error* error);
KILN_API void kiln_buffer_destroy(kiln_buffer* buffer);
KILN_API int kiln_buffer_device(const kiln_buffer* buffer); /* -1 for NULL */

typedef struct kiln_pool_stats {
  size_t size;
  uint64_t in_use, peak, reserved, allocations, deallocations;
} kiln_pool_stats;
/* The stats of the device's pool that kiln_buffer_create draws from. */
KILN_API kiln_status kiln_device_pool_stats(int device, kiln_pool_stats* stats, kiln_error* error);

/* Pinned host memory from a caching pool (power-of-two classes, per-thread shards). */
typedef enum kiln_host_memory {
  KILN_HOST_PINNED = 0, /* cuMemHostAlloc, portable: needs a driver */
  KILN_HOST_PLAIN = 1   /* malloc: the pool's bookkeeping without a driver (tests, tools) */
} kiln_host_memory;
typedef struct kiln_pinned_pool kiln_pinned_pool;
typedef struct kiln_pinned kiln_pinned;
/* `device`: the device whose primary context allocates the memory (portable: usable by all). */
KILN_API kiln_status kiln_pinned_pool_create(int device, kiln_host_memory memory, uint64_t max_cached_bytes,
                                             kiln_pinned_pool** pool, kiln_error* error);
/* The pool keeps its memory until destroyed; blocks still handed out stay valid until freed. */
KILN_API void kiln_pinned_pool_destroy(kiln_pinned_pool* pool);
KILN_API kiln_status kiln_pinned_create(kiln_pinned_pool* pool, size_t bytes, const char* tag, kiln_pinned** block,
                                        void** data, kiln_error* error);
KILN_API void kiln_pinned_destroy(kiln_pinned* block);

typedef struct kiln_pinned_pool_stats {
  size_t size;
  uint64_t in_use, cached, hits, misses, allocator_bytes;
} kiln_pinned_pool_stats;
KILN_API kiln_status kiln_pinned_pool_get_stats(kiln_pinned_pool* pool, kiln_pinned_pool_stats* stats,
                                                kiln_error* error);

/* Managed (unified) memory: *address is valid on the device and, as a pointer, on the host. */
typedef struct kiln_managed kiln_managed;
KILN_API kiln_status kiln_managed_create(int device, size_t bytes, const char* tag, kiln_managed** buffer,
                                         uint64_t* address, kiln_error* error);
KILN_API void kiln_managed_destroy(kiln_managed* buffer);
/* Migrates the pages in order on `stream`: to the stream's device, or to the host when to_host. */
KILN_API kiln_status kiln_managed_prefetch(kiln_managed* buffer, int to_host, kiln_stream* stream, kiln_error* error);

/* Copies. The synchronous forms return when the host memory may be reused (to device) or holds the
 * data (to host): pageable memory is staged through pinned buffers at close to pinned speed.
 * The async forms need pinned or managed host memory and return at once. */
KILN_API kiln_status kiln_copy_to_device(kiln_stream* stream, uint64_t dst, const void* src, size_t bytes,
                                         kiln_error* error);
KILN_API kiln_status kiln_copy_to_host(kiln_stream* stream, void* dst, uint64_t src, size_t bytes, kiln_error* error);
KILN_API kiln_status kiln_copy_to_device_async(kiln_stream* stream, uint64_t dst, const void* src, size_t bytes,
                                               kiln_error* error);
KILN_API kiln_status kiln_copy_to_host_async(kiln_stream* stream, void* dst, uint64_t src, size_t bytes,
                                             kiln_error* error);
KILN_API kiln_status kiln_memset_async(kiln_stream* stream, uint64_t dst, unsigned char value, size_t bytes,
                                       kiln_error* error);

/* Live kiln allocations, one line each (what the leak report at exit prints). */
KILN_API kiln_status kiln_allocation_report(char** text, uint64_t* live_bytes, kiln_error* error);
/* For bindings whose garbage collector found an owner its program never closed: counts it, and
 * prints "kiln: LEAK: <what>" to stderr. kiln_leaks_reported() says how many so far. */
KILN_API void kiln_report_leak(const char* what);
KILN_API uint64_t kiln_leaks_reported(void);

/* ---------------------------------------------------------------- topology */

/* The topology as `kiln topo --json` prints it. fixture_dir: a recorded machine (DIR/sysfs and
 * DIR/facts.json), or NULL for this one. */
KILN_API kiln_status kiln_topology_json(const char* fixture_dir, char** json, kiln_error* error);
typedef struct kiln_placement_constraints {
  size_t size;
  uint64_t min_free_bytes;     /* each chosen GPU has this much free */
  int numa_node;               /* only GPUs local to this NUMA node; -1: any */
  const char* const* exclude;  /* UUIDs or PCI bus ids never to choose */
  size_t exclude_count;
} kiln_placement_constraints;

KILN_API void kiln_placement_constraints_init(kiln_placement_constraints* constraints);
/* The k GPUs placement picks under the constraints (NULL: none): all joined by NVLink if possible,
 * then under one PCIe switch, one root complex, one NUMA node; ties broken by free memory. As JSON:
 * {"gpus":[{"uuid","pci_bus_id","cuda_ordinal","index"}],"link":"NV18","reason":"..."}. Fails with
 * INVALID_ARGUMENT saying why the others were left out when fewer than k qualify. */
KILN_API kiln_status kiln_topology_choose(const char* fixture_dir, size_t k,
                                          const kiln_placement_constraints* constraints, char** json,
                                          kiln_error* error);

#ifdef __cplusplus
}
#endif

#endif /* KILN_KILN_H */
