// Caches, compiles and images: kiln_compile through a kernel cache, with the GIL released while
// NVRTC runs (or another process compiles the same key).
#include <pybind11/stl.h>

#include <memory>
#include <vector>

#include "native.hpp"

namespace kiln_python {
namespace {

struct Cache {
  kiln_cache* handle = nullptr;
  Cache(uint64_t memory_bytes, bool use_disk, const std::string& directory, uint64_t disk_max_bytes,
        bool precompiled_headers) {
    kiln_cache_options o{};
    kiln_cache_options_init(&o);
    o.memory_bytes = memory_bytes;
    o.use_disk = use_disk ? 1 : 0;
    o.disk_directory = directory.empty() ? nullptr : directory.c_str();
    o.disk_max_bytes = disk_max_bytes;
    o.precompiled_headers = precompiled_headers ? 1 : 0;
    checked([&](kiln_error* e) { return kiln_cache_create(&o, &handle, e); });
  }
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;
  ~Cache() { kiln_cache_destroy(handle); }

  py::dict stats() const {
    kiln_cache_stats s{};
    s.size = sizeof s;
    checked([&](kiln_error* e) { return kiln_cache_get_stats(handle, &s, e); });
    py::dict d;
    d["memory_hits"] = s.memory_hits;
    d["memory_misses"] = s.memory_misses;
    d["disk_hits"] = s.disk_hits;
    d["disk_misses"] = s.disk_misses;
    d["compiles"] = s.compiles;
    d["compile_failures"] = s.compile_failures;
    d["shared_waits"] = s.shared_waits;
    d["corrupt_entries"] = s.corrupt_entries;
    d["memory_bytes"] = s.memory_bytes;
    d["memory_entries"] = s.memory_entries;
    d["compile_ns_spent"] = s.compile_ns_spent;
    d["compile_ns_saved"] = s.compile_ns_saved;
    return d;
  }
};

const char* text(const char* s) { return s != nullptr ? s : ""; }

py::list diagnostics_list(const kiln_diagnostics* d) {
  py::list out;
  const std::size_t n = d != nullptr ? kiln_diagnostics_count(d) : 0;
  for (std::size_t i = 0; i < n; ++i) {
    const kiln_diagnostic* x = kiln_diagnostics_at(d, i);
    py::dict e;
    e["file"] = std::string(text(x->file));
    e["line"] = x->line;
    e["column"] = x->column;
    e["severity"] = static_cast<int>(x->severity);
    e["code"] = std::string(text(x->code));
    e["message"] = std::string(text(x->message));
    e["source_line"] = std::string(text(x->source_line));
    e["formatted"] = std::string(text(x->formatted));
    out.append(std::move(e));
  }
  return out;
}

struct DiagnosticsOwner {
  kiln_diagnostics* d = nullptr;
  ~DiagnosticsOwner() { kiln_diagnostics_destroy(d); }
};

struct Image {
  kiln_image* handle = nullptr;
  explicit Image(kiln_image* h) : handle(h) {}
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;
  ~Image() { kiln_image_destroy(handle); }

  kiln_image_info info() const {
    kiln_image_info i{};
    i.size = sizeof i;
    checked([&](kiln_error* e) { return kiln_image_get_info(handle, &i, e); });
    return i;
  }
};

std::vector<const char*> pointers(const std::vector<std::string>& v) {
  std::vector<const char*> out;
  out.reserve(v.size());
  for (const auto& s : v) out.push_back(s.c_str());
  return out;
}

std::unique_ptr<Image> compile(Cache& cache, const std::string& source, const std::string& name,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               const std::vector<std::string>& include_dirs,
                               const std::vector<std::string>& name_expressions, const std::string& standard,
                               const std::vector<std::string>& defines, bool line_info, bool fast_math,
                               int max_registers, bool relocatable_device_code, bool minimal,
                               const std::vector<std::string>& extra_options, int kind, int arch) {
  std::vector<kiln_header> header_views;
  header_views.reserve(headers.size());
  for (const auto& [n, s] : headers) header_views.push_back(kiln_header{n.c_str(), s.c_str()});
  const auto dirs = pointers(include_dirs), exprs = pointers(name_expressions), defs = pointers(defines),
             extras = pointers(extra_options);
  kiln_program p{};
  kiln_program_init(&p);
  p.name = name.empty() ? nullptr : name.c_str();
  p.source = source.c_str();
  p.headers = header_views.data();
  p.header_count = header_views.size();
  p.include_dirs = dirs.data();
  p.include_dir_count = dirs.size();
  p.name_expressions = exprs.data();
  p.name_expression_count = exprs.size();
  p.standard = standard.empty() ? nullptr : standard.c_str();
  p.defines = defs.data();
  p.define_count = defs.size();
  p.line_info = line_info ? 1 : 0;
  p.fast_math = fast_math ? 1 : 0;
  p.max_registers = max_registers;
  p.relocatable_device_code = relocatable_device_code ? 1 : 0;
  p.minimal = minimal ? 1 : 0;
  p.extra_options = extras.data();
  p.extra_option_count = extras.size();
  kiln_target target{static_cast<kiln_image_kind>(kind), arch};

  ErrorBox box;
  DiagnosticsOwner diagnostics;
  kiln_image* image = nullptr;
  kiln_status status;
  {
    py::gil_scoped_release release;
    status = kiln_compile(cache.handle, &p, target, &image, &diagnostics.d, &box.error);
  }
  if (status != KILN_OK) {
    py::dict extra;
    if (diagnostics.d != nullptr) extra["diagnostics"] = diagnostics_list(diagnostics.d);
    raise(box.error, extra);
  }
  return std::make_unique<Image>(image);
}

}  // namespace

// The image handle an Image object holds (for Module loading in launching.cpp).
const kiln_image* image_handle(py::handle image) { return image.cast<Image&>().handle; }

void register_compiling(py::module_& m) {
  py::class_<Cache>(m, "Cache")
      .def(py::init<uint64_t, bool, const std::string&, uint64_t, bool>(), py::arg("memory_bytes"),
           py::arg("use_disk"), py::arg("directory"), py::arg("disk_max_bytes"), py::arg("precompiled_headers"))
      .def("stats", &Cache::stats);

  py::class_<Image>(m, "Image")
      .def_property_readonly("key",
                             [](const Image& i) {
                               char hex[65] = {};
                               checked([&](kiln_error* e) { return kiln_image_key(i.handle, hex, e); });
                               return std::string(hex);
                             })
      .def_property_readonly("target",
                             [](const Image& i) {
                               const kiln_target t = i.info().target;
                               return py::make_tuple(static_cast<int>(t.kind), t.arch);
                             })
      .def_property_readonly("origin", [](const Image& i) { return static_cast<int>(i.info().origin); })
      .def_property_readonly("data",
                             [](const Image& i) {
                               const kiln_image_info info = i.info();
                               return py::bytes(static_cast<const char*>(info.data), info.data_size);
                             })
      .def_property_readonly("compile_ns", [](const Image& i) { return i.info().compile_ns; })
      .def_property_readonly("log", [](const Image& i) { return std::string(text(i.info().log)); })
      .def("lowered_name",
           [](const Image& i, const std::string& expression) {
             const char* lowered = nullptr;
             checked([&](kiln_error* e) { return kiln_image_lowered_name(i.handle, expression.c_str(), &lowered, e); });
             return std::string(lowered);
           })
      .def("diagnostics", [](const Image& i) {
        DiagnosticsOwner d;
        checked([&](kiln_error* e) { return kiln_image_diagnostics(i.handle, &d.d, e); });
        return diagnostics_list(d.d);
      });

  m.def("compile", &compile, py::arg("cache"), py::arg("source"), py::arg("name"), py::arg("headers"),
        py::arg("include_dirs"), py::arg("name_expressions"), py::arg("standard"), py::arg("defines"),
        py::arg("line_info"), py::arg("fast_math"), py::arg("max_registers"), py::arg("relocatable_device_code"),
        py::arg("minimal"), py::arg("extra_options"), py::arg("kind"), py::arg("arch"));
}

}  // namespace kiln_python
