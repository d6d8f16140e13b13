// The shims declared in kiln_go.h.
#include "kiln_go.h"

#include <stdlib.h>
#include <string.h>

kiln_go_call* kiln_go_call_new(size_t size_capacity, size_t byte_capacity) {
  // One block: the frame, then the sizes, then the argument bytes (8-aligned, as every size_t is).
  size_t sizes_offset = (sizeof(kiln_go_call) + 7u) & ~(size_t)7u;
  size_t bytes_offset = sizes_offset + size_capacity * sizeof(size_t);
  unsigned char* block = calloc(1, bytes_offset + byte_capacity + 1);
  if (!block) return NULL;
  kiln_go_call* call = (kiln_go_call*)block;
  call->sizes = (size_t*)(block + sizes_offset);
  call->arguments = block + bytes_offset;
  call->size_capacity = size_capacity;
  call->byte_capacity = byte_capacity;
  return call;
}

void kiln_go_call_free(kiln_go_call* call) {
  if (call) kiln_error_clear(&call->error);
  free(call);
}

void kiln_go_noop(void) {}

kiln_status kiln_go_launch(const kiln_kernel* kernel, kiln_stream* stream, kiln_go_call* call) {
  return kiln_launch(kernel, stream, &call->config, call->arguments, call->sizes, call->count, &call->error);
}

static uint64_t field(const unsigned char* encoded, uint64_t offset) {
  uint64_t v;
  memcpy(&v, encoded + offset, sizeof v);  // the Go side does not promise alignment
  return v;
}

static const char* string_at(const unsigned char* encoded, uint64_t value) {
  return value ? (const char*)encoded + value - 1 : NULL;
}

// Points `out[i]` at the i-th string of the list whose offset is `list`.
static void strings_at(const unsigned char* encoded, uint64_t list, size_t count, const char** out) {
  for (size_t i = 0; i < count; ++i) out[i] = string_at(encoded, field(encoded, list + 8 * i));
}

// Decodes an encoded program into `p`, whose lists point into *lists (free it after the call).
static kiln_status decode_program(const unsigned char* encoded, size_t encoded_size, kiln_program* out, void** lists_out,
                                  kiln_go_call* call) {
  *lists_out = NULL;
  if (encoded_size < 8 * KILN_GO_PROGRAM_FIELDS) {  // the Go side always writes every field
    kiln_error_lookup(KILN_ERROR_KILN, KILN_ERRC_INTERNAL, &call->error);
    return KILN_ERROR_KILN;
  }
  uint64_t f[KILN_GO_PROGRAM_FIELDS];
  for (int i = 0; i < KILN_GO_PROGRAM_FIELDS; ++i) f[i] = field(encoded, 8u * (uint64_t)i);

  kiln_program p;
  kiln_program_init(&p);
  p.name = string_at(encoded, f[KILN_GO_PROGRAM_NAME]);
  p.source = string_at(encoded, f[KILN_GO_PROGRAM_SOURCE]);
  p.standard = string_at(encoded, f[KILN_GO_PROGRAM_STANDARD]);
  p.line_info = (int)f[KILN_GO_PROGRAM_LINE_INFO];
  p.fast_math = (int)f[KILN_GO_PROGRAM_FAST_MATH];
  p.max_registers = (int)f[KILN_GO_PROGRAM_MAX_REGISTERS];
  p.relocatable_device_code = (int)f[KILN_GO_PROGRAM_RELOCATABLE_DEVICE_CODE];
  p.minimal = (int)f[KILN_GO_PROGRAM_MINIMAL];

  const size_t headers = f[KILN_GO_PROGRAM_HEADER_COUNT], includes = f[KILN_GO_PROGRAM_INCLUDE_DIR_COUNT],
               names = f[KILN_GO_PROGRAM_NAME_EXPRESSION_COUNT], defines = f[KILN_GO_PROGRAM_DEFINE_COUNT],
               extras = f[KILN_GO_PROGRAM_EXTRA_OPTION_COUNT];
  const size_t strings = includes + names + defines + extras;
  // Most programs list nothing: no allocation for them.
  void* lists = NULL;
  if (strings + headers > 0) {
    lists = malloc(headers * sizeof(kiln_header) + strings * sizeof(const char*));
    if (!lists) {
      kiln_error_lookup(KILN_ERROR_KILN, KILN_ERRC_INTERNAL, &call->error);
      return KILN_ERROR_KILN;
    }
  }
  kiln_header* header_list = (kiln_header*)lists;
  const char** string_list = (const char**)(header_list + headers);
  for (size_t i = 0; i < headers; ++i) {
    header_list[i].name = string_at(encoded, field(encoded, f[KILN_GO_PROGRAM_HEADERS] + 16 * i));
    header_list[i].source = string_at(encoded, field(encoded, f[KILN_GO_PROGRAM_HEADERS] + 16 * i + 8));
  }
  const char** next = string_list;
  strings_at(encoded, f[KILN_GO_PROGRAM_INCLUDE_DIRS], includes, next);
  p.include_dirs = next;
  p.include_dir_count = includes;
  next += includes;
  strings_at(encoded, f[KILN_GO_PROGRAM_NAME_EXPRESSIONS], names, next);
  p.name_expressions = next;
  p.name_expression_count = names;
  next += names;
  strings_at(encoded, f[KILN_GO_PROGRAM_DEFINES], defines, next);
  p.defines = next;
  p.define_count = defines;
  next += defines;
  strings_at(encoded, f[KILN_GO_PROGRAM_EXTRA_OPTIONS], extras, next);
  p.extra_options = next;
  p.extra_option_count = extras;
  p.headers = header_list;
  p.header_count = headers;
  *out = p;
  *lists_out = lists;
  return KILN_OK;
}

kiln_status kiln_go_compile(kiln_cache* cache, const unsigned char* encoded, size_t encoded_size, kiln_target target,
                            const kiln_device_library* const* libraries, size_t library_count, kiln_go_call* call) {
  kiln_go_compile_result* r = &call->compile;
  memset(r, 0, sizeof *r);
  kiln_program p;
  void* lists = NULL;
  kiln_status status = decode_program(encoded, encoded_size, &p, &lists, call);
  if (status != KILN_OK) return status;
  status = library_count == 0
               ? kiln_compile(cache, &p, target, &r->image, &r->diagnostics, &call->error)
               : kiln_compile_and_link(cache, &p, libraries, library_count, target, &r->image, &r->diagnostics,
                                       &call->error);
  free(lists);
  if (status != KILN_OK) {
    if (r->diagnostics) r->diagnostic_count = kiln_diagnostics_count(r->diagnostics);
    return status;
  }
  r->info.size = sizeof r->info;
  status = kiln_image_get_info(r->image, &r->info, &call->error);
  if (status != KILN_OK) {
    kiln_image_destroy(r->image);
    r->image = NULL;
  }
  return status;
}

size_t kiln_go_diagnostics_read(const kiln_diagnostics* diagnostics, kiln_diagnostic* out, size_t capacity) {
  const size_t count = kiln_diagnostics_count(diagnostics);
  for (size_t i = 0; i < count && i < capacity; ++i) out[i] = *kiln_diagnostics_at(diagnostics, i);
  return count;
}

static const char* tag_of(int has_tag, kiln_go_call* call) { return has_tag ? (const char*)call->arguments : NULL; }

kiln_status kiln_go_buffer_create(kiln_stream* stream, size_t bytes, int has_tag, kiln_go_call* call) {
  return kiln_buffer_create(stream, bytes, tag_of(has_tag, call), (kiln_buffer**)&call->handle, &call->address,
                            &call->error);
}

kiln_status kiln_go_pinned_create(kiln_pinned_pool* pool, size_t bytes, int has_tag, kiln_go_call* call) {
  return kiln_pinned_create(pool, bytes, tag_of(has_tag, call), (kiln_pinned**)&call->handle, &call->data,
                            &call->error);
}

kiln_status kiln_go_managed_create(int device, size_t bytes, int has_tag, kiln_go_call* call) {
  kiln_status status = kiln_managed_create(device, bytes, tag_of(has_tag, call), (kiln_managed**)&call->handle,
                                           &call->address, &call->error);
  call->data = (void*)(uintptr_t)call->address;  // the host's view of the same address
  return status;
}

kiln_status kiln_go_library_from_source(const unsigned char* encoded, size_t encoded_size, kiln_go_call* call) {
  kiln_program p;
  void* lists = NULL;
  kiln_status status = decode_program(encoded, encoded_size, &p, &lists, call);
  if (status != KILN_OK) return status;
  // The program's headers are the library's declarations: added to every kernel linked with it.
  kiln_device_library* library = NULL;
  status = kiln_device_library_from_source(&p, p.headers, p.header_count, &library, &call->error);
  free(lists);
  call->handle = library;
  return status;
}
