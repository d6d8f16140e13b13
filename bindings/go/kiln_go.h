/* The Go binding's C side: small shims that let one cgo call do one whole operation, with every
 * output in C memory (a kiln_go_call frame the Go side pools), so no call passes a Go pointer to
 * memory holding Go pointers and the hot paths allocate nothing. */
#ifndef KILN_GO_H
#define KILN_GO_H

#include <kiln/kiln.h>
#include <stddef.h>
#include <stdint.h>

/* The fields of an encoded program (kiln_go_compile): uint64 values at the start of the block.
 * A string is its offset + 1 (0: NULL), NUL-terminated; a list is a count and the offset of that
 * many uint64 string fields (a header list: name, source pairs). */
enum kiln_go_program_field {
  KILN_GO_PROGRAM_NAME,
  KILN_GO_PROGRAM_SOURCE,
  KILN_GO_PROGRAM_STANDARD,
  KILN_GO_PROGRAM_HEADER_COUNT,
  KILN_GO_PROGRAM_HEADERS,
  KILN_GO_PROGRAM_INCLUDE_DIR_COUNT,
  KILN_GO_PROGRAM_INCLUDE_DIRS,
  KILN_GO_PROGRAM_NAME_EXPRESSION_COUNT,
  KILN_GO_PROGRAM_NAME_EXPRESSIONS,
  KILN_GO_PROGRAM_DEFINE_COUNT,
  KILN_GO_PROGRAM_DEFINES,
  KILN_GO_PROGRAM_EXTRA_OPTION_COUNT,
  KILN_GO_PROGRAM_EXTRA_OPTIONS,
  KILN_GO_PROGRAM_LINE_INFO,
  KILN_GO_PROGRAM_FAST_MATH,
  KILN_GO_PROGRAM_MAX_REGISTERS,
  KILN_GO_PROGRAM_RELOCATABLE_DEVICE_CODE,
  KILN_GO_PROGRAM_MINIMAL,
  KILN_GO_PROGRAM_FIELDS
};

typedef struct kiln_go_compile_result {
  kiln_image* image;
  kiln_diagnostics* diagnostics; /* on a compile failure */
  size_t diagnostic_count;
  kiln_image_info info; /* on success */
} kiln_go_compile_result;

/* One call's inputs and outputs, in C memory. `sizes` and `arguments` point into the same block. */
typedef struct kiln_go_call {
  kiln_error error;
  void* handle;     /* the handle a create function returns */
  void* data;       /* a host pointer a create function returns */
  uint64_t address; /* a device address a create function returns */
  kiln_launch_config config;
  size_t count;
  size_t* sizes;            /* size_capacity entries */
  unsigned char* arguments; /* byte_capacity bytes, 8-aligned; also scratch for a tag string */
  size_t size_capacity;
  size_t byte_capacity;
  kiln_go_compile_result compile;
  kiln_device_info device_info;
  kiln_target target;
  kiln_pool_stats pool_stats;
  kiln_pinned_pool_stats pinned_pool_stats;
  kiln_cache_stats cache_stats;
} kiln_go_call;

kiln_go_call* kiln_go_call_new(size_t size_capacity, size_t byte_capacity);
void kiln_go_call_free(kiln_go_call* call);

/* Empty: what a cgo call costs by itself (the benchmarks report it). */
void kiln_go_noop(void);

kiln_status kiln_go_launch(const kiln_kernel* kernel, kiln_stream* stream, kiln_go_call* call);
/* kiln_compile, or kiln_compile_and_link with the libraries when library_count > 0. */
kiln_status kiln_go_compile(kiln_cache* cache, const unsigned char* encoded, size_t encoded_size, kiln_target target,
                            const kiln_device_library* const* libraries, size_t library_count, kiln_go_call* call);
/* kiln_device_library_from_source; the library is call->handle. */
kiln_status kiln_go_library_from_source(const unsigned char* encoded, size_t encoded_size, kiln_go_call* call);
/* Copies min(count, capacity) entries into `out` and returns the count. */
size_t kiln_go_diagnostics_read(const kiln_diagnostics* diagnostics, kiln_diagnostic* out, size_t capacity);

/* The create functions with their outputs in the frame; the tag is the frame's argument bytes. */
kiln_status kiln_go_buffer_create(kiln_stream* stream, size_t bytes, int has_tag, kiln_go_call* call);
kiln_status kiln_go_pinned_create(kiln_pinned_pool* pool, size_t bytes, int has_tag, kiln_go_call* call);
kiln_status kiln_go_managed_create(int device, size_t bytes, int has_tag, kiln_go_call* call);

#endif /* KILN_GO_H */
