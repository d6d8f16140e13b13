/* kiln's C ABI end to end: compile a templated saxpy through the kernel cache, load it on GPU 0,
 * and run it on a million floats. docs/C_API.md walks through it; CTest compiles it as C11 and runs it.
 *
 *   cc -std=c11 c_api_example.c $(pkg-config --cflags --libs kiln) -o c_api_example
 *
 * Exit status: 0 when the result is right, 3 when the kernel compiled but there is no GPU, 1 on error. */
#include <kiln/kiln.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char* source =
    "template <typename T>\n"
    "__global__ void saxpy(T a, const T* x, T* y, unsigned n) {\n"
    "  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "  if (i < n) y[i] = a * x[i] + y[i];\n"
    "}\n";

/* Prints a failed call's error (message and hint) and releases it. */
static int failed(const char* what, kiln_error* error) {
  fprintf(stderr, "%s failed: %s\n", what, error->message ? error->message : "(no message)");
  kiln_error_clear(error);
  return 1;
}

/* Appends one argument to a packed block: each starts at a multiple of KILN_ARGUMENT_ALIGNMENT. */
static size_t pack(unsigned char* block, size_t offset, const void* value, size_t size, size_t* sizes, size_t* count) {
  memcpy(block + offset, value, size);
  sizes[(*count)++] = size;
  return offset + (size + KILN_ARGUMENT_ALIGNMENT - 1) / KILN_ARGUMENT_ALIGNMENT * KILN_ARGUMENT_ALIGNMENT;
}

int main(void) {
  kiln_error error = {0};
  printf("kiln %s (C ABI %d)\n", kiln_version(), kiln_abi_version());

  /* 1. Compile through the cache ($KILN_CACHE_DIR or ~/.cache/kiln): a second run is a disk hit. */
  kiln_cache* cache = NULL;
  if (kiln_cache_create(NULL, &cache, &error) != KILN_OK) return failed("kiln_cache_create", &error);

  int devices = 0;
  const int have_gpu = kiln_device_count(&devices, &error) == KILN_OK && devices > 0;
  if (!have_gpu) kiln_error_clear(&error);
  kiln_target target = {KILN_IMAGE_PTX, 90}; /* without a GPU: PTX for sm_90 */
  if (have_gpu && kiln_target_for_device(0, &target, &error) != KILN_OK)
    return failed("kiln_target_for_device", &error);

  kiln_program program;
  kiln_program_init(&program);
  program.name = "saxpy.cu";
  program.source = source;
  const char* expressions[] = {"saxpy<float>"};
  program.name_expressions = expressions;
  program.name_expression_count = 1;

  kiln_image* image = NULL;
  kiln_diagnostics* diagnostics = NULL;
  if (kiln_compile(cache, &program, target, &image, &diagnostics, &error) != KILN_OK) {
    for (size_t i = 0; i < kiln_diagnostics_count(diagnostics); ++i)
      fprintf(stderr, "%s\n", kiln_diagnostics_at(diagnostics, i)->formatted);
    kiln_diagnostics_destroy(diagnostics);
    return failed("kiln_compile", &error);
  }
  kiln_image_info info;
  memset(&info, 0, sizeof info);
  info.size = sizeof info;
  kiln_image_get_info(image, &info, NULL);
  const char* origin = info.origin == KILN_ORIGIN_COMPILED ? "compiled" : info.origin == KILN_ORIGIN_MEMORY ? "memory" : "disk";
  printf("saxpy<float>: %zu bytes of %s for arch %d (%s)\n", info.data_size,
         info.target.kind == KILN_IMAGE_PTX ? "PTX" : "CUBIN", info.target.arch, origin);
  if (!have_gpu) {
    printf("no GPU here: stopping after the compile\n");
    kiln_image_destroy(image);
    kiln_cache_destroy(cache);
    return 3;
  }

  /* 2. Load it on GPU 0 and get the kernel by its name expression. */
  kiln_module* module = NULL;
  kiln_kernel* saxpy = NULL;
  if (kiln_module_load(image, 0, &module, &error) != KILN_OK) return failed("kiln_module_load", &error);
  if (kiln_module_get_kernel(module, "saxpy<float>", &saxpy, &error) != KILN_OK)
    return failed("kiln_module_get_kernel", &error);

  /* 3. Buffers from the stream-ordered pool; copies from ordinary (pageable) memory, staged by kiln. */
  const unsigned n = 1u << 20;
  float* x = malloc(n * sizeof(float));
  float* y = malloc(n * sizeof(float));
  for (unsigned i = 0; i < n; ++i) {
    x[i] = (float)(i % 100);
    y[i] = 1.0f;
  }
  kiln_stream* stream = NULL;
  kiln_buffer *dx_buffer = NULL, *dy_buffer = NULL;
  uint64_t dx = 0, dy = 0;
  if (kiln_stream_create(0, 0, &stream, &error) != KILN_OK) return failed("kiln_stream_create", &error);
  if (kiln_buffer_create(stream, n * sizeof(float), "example-x", &dx_buffer, &dx, &error) != KILN_OK ||
      kiln_buffer_create(stream, n * sizeof(float), "example-y", &dy_buffer, &dy, &error) != KILN_OK)
    return failed("kiln_buffer_create", &error);
  if (kiln_copy_to_device(stream, dx, x, n * sizeof(float), &error) != KILN_OK ||
      kiln_copy_to_device(stream, dy, y, n * sizeof(float), &error) != KILN_OK)
    return failed("kiln_copy_to_device", &error);

  /* 4. A checked launch: the argument sizes are compared with the kernel's parameters first. */
  unsigned char block[64];
  size_t sizes[4], count = 0, offset = 0;
  const float a = 2.0f;
  offset = pack(block, offset, &a, sizeof a, sizes, &count);
  offset = pack(block, offset, &dx, sizeof dx, sizes, &count);
  offset = pack(block, offset, &dy, sizeof dy, sizes, &count);
  pack(block, offset, &n, sizeof n, sizes, &count);
  kiln_launch_config config = {sizeof(kiln_launch_config), {(n + 255) / 256, 1, 1}, {256, 1, 1}, 0, {0, 0, 0}};
  if (kiln_launch(saxpy, stream, &config, block, sizes, count, &error) != KILN_OK)
    return failed("kiln_launch", &error);
  /* A wrong argument list is refused before anything runs, with the index and both sizes. */
  if (kiln_launch(saxpy, stream, &config, block, sizes, 3, &error) == KILN_OK) return 1;
  printf("refused as it should be: %s\n", error.name);
  kiln_error_clear(&error);

  /* 5. Wait with a deadline (5 s), then copy back and check. */
  if (kiln_stream_wait(stream, 5000000000LL, NULL, &error) != KILN_OK) return failed("kiln_stream_wait", &error);
  if (kiln_copy_to_host(stream, y, dy, n * sizeof(float), &error) != KILN_OK)
    return failed("kiln_copy_to_host", &error);
  int wrong = 0;
  for (unsigned i = 0; i < n; ++i) wrong += y[i] != 2.0f * (float)(i % 100) + 1.0f;
  printf("saxpy on %u floats: %s\n", n, wrong == 0 ? "ok" : "WRONG");

  /* Every owner is released by its own destroy function, in any order. */
  kiln_buffer_destroy(dx_buffer);
  kiln_buffer_destroy(dy_buffer);
  kiln_stream_destroy(stream);
  kiln_kernel_destroy(saxpy);
  kiln_module_destroy(module);
  kiln_image_destroy(image);
  kiln_cache_destroy(cache);
  free(x);
  free(y);
  return wrong == 0 ? 0 : 1;
}
