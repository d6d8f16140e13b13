// Compiling through the kernel cache, and what a compile gives back.
#include <cstring>

#include "c/detail/boundary.hpp"
#include "c/detail/handles.hpp"
#include "kiln/jit/compiler.hpp"
#include "kiln/jit/device_library.hpp"
#include "kiln/jit/linker.hpp"

using namespace kiln;

namespace {

std::vector<std::string> strings(const char* const* items, std::size_t count, const char* call, const char* what) {
  std::vector<std::string> out;
  if (count == 0) return out;
  if (items == nullptr)
    throw Error(Errc::invalid_argument, std::string(call) + ": program->" + what + " is NULL but its count is " +
                                            std::to_string(count));
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (items[i] == nullptr)
      throw Error(Errc::invalid_argument,
                  std::string(call) + ": program->" + what + "[" + std::to_string(i) + "] is NULL");
    out.emplace_back(items[i]);
  }
  return out;
}

const char* text_or_empty(const char* s) { return s != nullptr ? s : ""; }

jit::Program to_program(const kiln_program& p, const char* call) {
  if (p.size < offsetof(kiln_program, source) + sizeof(p.source))
    throw Error(Errc::invalid_argument, std::string(call) + ": program->size is " + std::to_string(p.size) +
                                            ": set it with kiln_program_init()");
  if (p.source == nullptr) throw Error(Errc::invalid_argument, std::string(call) + ": program->source is NULL");
  jit::Program out;
  if (p.name != nullptr && *p.name != '\0') out.name = p.name;
  out.source = p.source;
  if (KILN_C_HAS(p, header_count) && p.header_count > 0) {
    if (p.headers == nullptr)
      throw Error(Errc::invalid_argument, std::string(call) + ": program->headers is NULL but header_count is " +
                                              std::to_string(p.header_count));
    for (std::size_t i = 0; i < p.header_count; ++i) {
      if (p.headers[i].name == nullptr || p.headers[i].source == nullptr)
        throw Error(Errc::invalid_argument, std::string(call) + ": program->headers[" + std::to_string(i) +
                                                "] has a NULL name or source");
      out.headers[p.headers[i].name] = p.headers[i].source;
    }
  }
  if (KILN_C_HAS(p, include_dir_count))
    out.include_dirs = strings(p.include_dirs, p.include_dir_count, call, "include_dirs");
  if (KILN_C_HAS(p, name_expression_count))
    out.name_expressions = strings(p.name_expressions, p.name_expression_count, call, "name_expressions");
  if (KILN_C_HAS(p, standard)) out.options.standard = text_or_empty(p.standard);
  if (KILN_C_HAS(p, define_count)) out.options.defines = strings(p.defines, p.define_count, call, "defines");
  if (KILN_C_HAS(p, line_info)) out.options.line_info = p.line_info != 0;
  if (KILN_C_HAS(p, fast_math)) out.options.fast_math = p.fast_math != 0;
  if (KILN_C_HAS(p, max_registers)) out.options.max_registers = p.max_registers;
  if (KILN_C_HAS(p, relocatable_device_code)) out.options.relocatable_device_code = p.relocatable_device_code != 0;
  if (KILN_C_HAS(p, minimal)) out.options.minimal = p.minimal != 0;
  if (KILN_C_HAS(p, extra_option_count))
    out.options.extra = strings(p.extra_options, p.extra_option_count, call, "extra_options");
  return out;
}

jit::Target to_target(kiln_target t, const char* call) {
  const auto kind = c::raw(t.kind);
  if (kind != KILN_IMAGE_CUBIN && kind != KILN_IMAGE_PTX && kind != KILN_IMAGE_LTOIR)
    throw Error(Errc::invalid_argument, std::string(call) + ": target.kind " + std::to_string(kind) +
                                            " is not KILN_IMAGE_CUBIN, KILN_IMAGE_PTX or KILN_IMAGE_LTOIR");
  if (t.arch <= 0)
    throw Error(Errc::invalid_argument,
                std::string(call) + ": target.arch " + std::to_string(t.arch) + " is not positive");
  // Not Target::for_arch: its reason text is not part of the target's identity, and formatting it
  // on every memory-tier hit cost a tenth of the hit.
  const jit::ImageKind image = kind == KILN_IMAGE_PTX     ? jit::ImageKind::ptx
                              : kind == KILN_IMAGE_LTOIR ? jit::ImageKind::ltoir
                                                         : jit::ImageKind::cubin;
  return jit::Target{image, t.arch, {}};
}

kiln_origin to_c(jit::Origin origin) {
  switch (origin) {
    case jit::Origin::memory: return KILN_ORIGIN_MEMORY;
    case jit::Origin::disk: return KILN_ORIGIN_DISK;
    case jit::Origin::compiled: break;
  }
  return KILN_ORIGIN_COMPILED;
}

kiln_severity to_c(jit::Severity s) {
  switch (s) {
    case jit::Severity::remark: return KILN_SEVERITY_REMARK;
    case jit::Severity::warning: return KILN_SEVERITY_WARNING;
    case jit::Severity::error: return KILN_SEVERITY_ERROR;
    case jit::Severity::fatal: break;
  }
  return KILN_SEVERITY_FATAL;
}

std::map<std::string, std::string> to_headers(const kiln_header* headers, std::size_t count, const char* call) {
  std::map<std::string, std::string> out;
  if (count == 0) return out;
  if (headers == nullptr)
    throw Error(Errc::invalid_argument, std::string(call) + ": headers is NULL but header_count is " + std::to_string(count));
  for (std::size_t i = 0; i < count; ++i) {
    if (headers[i].name == nullptr || headers[i].source == nullptr)
      throw Error(Errc::invalid_argument,
                  std::string(call) + ": headers[" + std::to_string(i) + "] has a NULL name or source");
    out[headers[i].name] = headers[i].source;
  }
  return out;
}

std::string_view problem_code(jit::LinkProblem p) noexcept {
  switch (p) {
    case jit::LinkProblem::undefined_symbol: return "undefined_symbol";
    case jit::LinkProblem::duplicate_symbol: return "duplicate_symbol";
    case jit::LinkProblem::other: break;
  }
  return "other";
}

// A link's problems as the entries kiln_diagnostics holds: the input as the file, no position.
std::vector<jit::Diagnostic> as_diagnostics(const std::vector<jit::LinkDiagnostic>& problems) {
  std::vector<jit::Diagnostic> out;
  for (const jit::LinkDiagnostic& p : problems) {
    jit::Diagnostic d;
    d.file = p.inputs.empty() ? std::string() : p.inputs.front();
    d.severity = p.severity;
    d.code = problem_code(p.problem);
    d.message = p.message;
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace

namespace kiln::c {

kiln_diagnostics* make_diagnostics(std::vector<jit::Diagnostic> entries) {
  auto d = std::make_unique<kiln_diagnostics>();
  d->entries = std::move(entries);
  d->formatted.reserve(d->entries.size());
  for (const auto& e : d->entries) d->formatted.push_back(e.format());
  d->views.reserve(d->entries.size());
  for (std::size_t i = 0; i < d->entries.size(); ++i) {
    const auto& e = d->entries[i];
    d->views.push_back(kiln_diagnostic{e.file.c_str(), e.line, e.column, to_c(e.severity), e.code.c_str(),
                                       e.message.c_str(), e.source_line.c_str(), d->formatted[i].c_str()});
  }
  return d.release();
}

}  // namespace kiln::c

extern "C" {

void kiln_program_init(kiln_program* program) {
  if (program == nullptr) return;
  *program = kiln_program{};
  program->size = sizeof(kiln_program);
}

void kiln_cache_options_init(kiln_cache_options* options) {
  if (options == nullptr) return;
  *options = kiln_cache_options{};
  options->size = sizeof(kiln_cache_options);
  options->use_disk = 1;
}

kiln_status kiln_cache_create(const kiln_cache_options* options, kiln_cache** cache, kiln_error* error) {
  return c::guarded(error, "kiln_cache_create", [&] {
    c::need_pointer(cache, "kiln_cache_create", "cache");
    *cache = nullptr;
    jit::KernelCacheOptions o;
    if (options != nullptr) {
      const kiln_cache_options& in = *options;
      if (KILN_C_HAS(in, memory_bytes) && in.memory_bytes != 0) o.memory_bytes = in.memory_bytes;
      if (KILN_C_HAS(in, use_disk)) o.use_disk = in.use_disk != 0;
      if (KILN_C_HAS(in, disk_directory) && in.disk_directory != nullptr) o.disk.directory = in.disk_directory;
      if (KILN_C_HAS(in, disk_max_bytes)) o.disk.max_bytes = in.disk_max_bytes;
      if (KILN_C_HAS(in, precompiled_headers)) o.precompiled_headers = in.precompiled_headers != 0;
    }
    *cache = new kiln_cache{jit::KernelCache(std::move(o))};
  });
}

void kiln_cache_destroy(kiln_cache* cache) { delete cache; }

kiln_status kiln_cache_get_stats(kiln_cache* cache, kiln_cache_stats* stats, kiln_error* error) {
  return c::guarded(error, "kiln_cache_get_stats", [&] {
    kiln_cache& owner = c::need(cache, "kiln_cache_get_stats", "cache");
    kiln_cache_stats& caller = *c::need_pointer(stats, "kiln_cache_get_stats", "stats");
    kiln_cache_stats out{};
    const jit::CacheStats s = owner.cache.stats();
    out.memory_hits = s.memory_hits;
    out.memory_misses = s.memory_misses;
    out.disk_hits = s.disk_hits;
    out.disk_misses = s.disk_misses;
    out.compiles = s.compiles;
    out.compile_failures = s.compile_failures;
    out.shared_waits = s.shared_waits;
    out.corrupt_entries = s.corrupt_entries;
    out.memory_bytes = s.memory_bytes;
    out.memory_entries = s.memory_entries;
    out.compile_ns_spent = s.compile_time_spent.count();
    out.compile_ns_saved = s.compile_time_saved.count();
    c::write_out(caller, out, "kiln_cache_get_stats");
  });
}

kiln_status kiln_compile(kiln_cache* cache, const kiln_program* program, kiln_target target, kiln_image** image,
                         kiln_diagnostics** diagnostics, kiln_error* error) {
  if (diagnostics != nullptr) *diagnostics = nullptr;
  if (image != nullptr) *image = nullptr;
  return c::guarded(error, "kiln_compile", [&] {
    kiln_cache& owner = c::need(cache, "kiln_compile", "cache");
    const kiln_program& p = *c::need_pointer(program, "kiln_compile", "program");
    c::need_pointer(image, "kiln_compile", "image");
    jit::CompileResult result = owner.cache.try_compile(to_program(p, "kiln_compile"), to_target(target, "kiln_compile"));
    if (!result.ok()) {
      Error failure = result.error();
      if (diagnostics != nullptr) *diagnostics = c::make_diagnostics(std::move(result.diagnostics));
      throw failure;
    }
    auto out = std::make_unique<kiln_image>();
    out->artifact = std::move(*result.artifact);
    *image = out.release();
  });
}

void kiln_image_destroy(kiln_image* image) { delete image; }

kiln_status kiln_image_get_info(const kiln_image* image, kiln_image_info* info, kiln_error* error) {
  return c::guarded(error, "kiln_image_get_info", [&] {
    const kiln_image& im = c::need(image, "kiln_image_get_info", "image");
    kiln_image_info& caller = *c::need_pointer(info, "kiln_image_get_info", "info");
    kiln_image_info out{};
    const jit::Artifact& a = im.artifact;
    out.target = kiln_target{a.kind() == jit::ImageKind::ptx     ? KILN_IMAGE_PTX
                             : a.kind() == jit::ImageKind::ltoir ? KILN_IMAGE_LTOIR
                                                                 : KILN_IMAGE_CUBIN,
                             a.arch()};
    out.origin = to_c(a.origin());
    out.data = a.data();
    out.data_size = a.size();
    out.compile_ns = a.compile_time().count();
    out.log = a.log().c_str();
    out.name_expression_count = a.lowered_names().size();
    c::write_out(caller, out, "kiln_image_get_info");
  });
}

kiln_status kiln_image_key(const kiln_image* image, char hex[65], kiln_error* error) {
  return c::guarded(error, "kiln_image_key", [&] {
    const kiln_image& im = c::need(image, "kiln_image_key", "image");
    c::need_pointer(hex, "kiln_image_key", "hex");
    const std::string text = im.artifact.key().hex();
    std::memcpy(hex, text.c_str(), text.size() + 1);
  });
}

kiln_status kiln_image_lowered_name(const kiln_image* image, const char* name_expression, const char** lowered,
                                    kiln_error* error) {
  return c::guarded(error, "kiln_image_lowered_name", [&] {
    const kiln_image& im = c::need(image, "kiln_image_lowered_name", "image");
    c::need_pointer(name_expression, "kiln_image_lowered_name", "name_expression");
    *c::need_pointer(lowered, "kiln_image_lowered_name", "lowered") =
        im.artifact.lowered_name(name_expression).c_str();
  });
}

kiln_status kiln_image_diagnostics(const kiln_image* image, kiln_diagnostics** diagnostics, kiln_error* error) {
  return c::guarded(error, "kiln_image_diagnostics", [&] {
    const kiln_image& im = c::need(image, "kiln_image_diagnostics", "image");
    *c::need_pointer(diagnostics, "kiln_image_diagnostics", "diagnostics") =
        c::make_diagnostics(im.artifact.diagnostics());
  });
}

size_t kiln_diagnostics_count(const kiln_diagnostics* diagnostics) {
  return diagnostics != nullptr ? diagnostics->views.size() : 0;
}

const kiln_diagnostic* kiln_diagnostics_at(const kiln_diagnostics* diagnostics, size_t i) {
  if (diagnostics == nullptr || i >= diagnostics->views.size()) return nullptr;
  return &diagnostics->views[i];
}

void kiln_diagnostics_destroy(kiln_diagnostics* diagnostics) { delete diagnostics; }

kiln_status kiln_device_library_from_source(const kiln_program* program, const kiln_header* headers, size_t header_count,
                                            kiln_device_library** library, kiln_error* error) {
  if (library != nullptr) *library = nullptr;
  return c::guarded(error, "kiln_device_library_from_source", [&] {
    const char* call = "kiln_device_library_from_source";
    const kiln_program& p = *c::need_pointer(program, call, "program");
    c::need_pointer(library, call, "library");
    *library = new kiln_device_library{
        jit::DeviceLibrary::from_program(to_program(p, call), to_headers(headers, header_count, call))};
  });
}

kiln_status kiln_device_library_from_ltoir(const char* name, int arch, const void* ltoir, size_t ltoir_size,
                                           const kiln_header* headers, size_t header_count, kiln_device_library** library,
                                           kiln_error* error) {
  if (library != nullptr) *library = nullptr;
  return c::guarded(error, "kiln_device_library_from_ltoir", [&] {
    const char* call = "kiln_device_library_from_ltoir";
    c::need_pointer(library, call, "library");
    if (ltoir_size == 0) throw Error(Errc::invalid_argument, std::string(call) + ": ltoir_size is 0");
    c::need_pointer(ltoir, call, "ltoir");
    std::string bytes(static_cast<const char*>(ltoir), ltoir_size);
    *library = new kiln_device_library{jit::DeviceLibrary::from_ltoir(name != nullptr && *name != '\0' ? name : "library.ltoir",
                                                                      arch, std::move(bytes),
                                                                      to_headers(headers, header_count, call))};
  });
}

void kiln_device_library_destroy(kiln_device_library* library) { delete library; }

kiln_status kiln_compile_and_link(kiln_cache* cache, const kiln_program* program,
                                  const kiln_device_library* const* libraries, size_t library_count, kiln_target target,
                                  kiln_image** image, kiln_diagnostics** diagnostics, kiln_error* error) {
  if (diagnostics != nullptr) *diagnostics = nullptr;
  if (image != nullptr) *image = nullptr;
  return c::guarded(error, "kiln_compile_and_link", [&] {
    const char* call = "kiln_compile_and_link";
    kiln_cache& owner = c::need(cache, call, "cache");
    const kiln_program& p = *c::need_pointer(program, call, "program");
    c::need_pointer(image, call, "image");
    if (library_count > 0) c::need_pointer(libraries, call, "libraries");
    std::vector<const jit::DeviceLibrary*> libs;
    for (std::size_t i = 0; i < library_count; ++i)
      libs.push_back(&c::need(libraries[i], call, ("libraries[" + std::to_string(i) + "]").c_str()).library);
    const jit::Target linked_target = to_target(target, call);
    const jit::Program kernel = to_program(p, call);

    // compile_and_link's steps, apart, so that a rejected compile or link hands its diagnostics back.
    jit::Program with_headers = kernel;
    for (const jit::DeviceLibrary* lib : libs)
      for (const auto& [name, text] : lib->headers()) with_headers.headers.emplace(name, text);
    jit::CompileResult compiled =
        owner.cache.try_compile(with_headers, jit::Target::for_arch(linked_target.arch, jit::ImageKind::ltoir));
    if (!compiled.ok()) {
      Error failure = compiled.error();
      if (diagnostics != nullptr) *diagnostics = c::make_diagnostics(std::move(compiled.diagnostics));
      throw failure;
    }
    jit::LinkJob job;
    job.name = kernel.name;
    job.lowered_names = compiled.artifact->lowered_names();
    job.inputs.push_back(jit::LinkInput::from_artifact(*compiled.artifact, kernel.name + ".ltoir"));
    for (const jit::DeviceLibrary* lib : libs) job.inputs.push_back(lib->input_for(owner.cache, linked_target));
    jit::LinkResult linked = owner.cache.try_link(job, linked_target);
    if (!linked.ok()) {
      Error failure = linked.error();
      if (diagnostics != nullptr) *diagnostics = c::make_diagnostics(as_diagnostics(linked.diagnostics));
      throw failure;
    }
    auto out = std::make_unique<kiln_image>();
    out->artifact = std::move(*linked.artifact);
    *image = out.release();
  });
}

}  // extern "C"
