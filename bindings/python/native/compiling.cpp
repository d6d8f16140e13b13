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

// A program's fields as Python passes them, and the kiln_program that points into them (alive as
// long as this is).
struct ProgramArgs {
  std::string source, name, standard;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::string> include_dirs, name_expressions, defines, extra_options;
  bool line_info = false, fast_math = false, relocatable_device_code = false, minimal = false;
  int max_registers = 0;

  std::vector<kiln_header> header_views;
  std::vector<const char*> dirs, exprs, defs, extras;
  kiln_program program{};

  const kiln_program* view() {
    header_views.clear();
    for (const auto& [n, s] : headers) header_views.push_back(kiln_header{n.c_str(), s.c_str()});
    dirs = pointers(include_dirs), exprs = pointers(name_expressions), defs = pointers(defines),
    extras = pointers(extra_options);
    kiln_program_init(&program);
    program.name = name.empty() ? nullptr : name.c_str();
    program.source = source.c_str();
    program.headers = header_views.data();
    program.header_count = header_views.size();
    program.include_dirs = dirs.data();
    program.include_dir_count = dirs.size();
    program.name_expressions = exprs.data();
    program.name_expression_count = exprs.size();
    program.standard = standard.empty() ? nullptr : standard.c_str();
    program.defines = defs.data();
    program.define_count = defs.size();
    program.line_info = line_info ? 1 : 0;
    program.fast_math = fast_math ? 1 : 0;
    program.max_registers = max_registers;
    program.relocatable_device_code = relocatable_device_code ? 1 : 0;
    program.minimal = minimal ? 1 : 0;
    program.extra_options = extras.data();
    program.extra_option_count = extras.size();
    return &program;
  }
};

ProgramArgs program_args(const py::dict& p) {
  ProgramArgs a;
  a.source = p["source"].cast<std::string>();
  a.name = p["name"].cast<std::string>();
  a.standard = p["standard"].cast<std::string>();
  a.headers = p["headers"].cast<std::vector<std::pair<std::string, std::string>>>();
  a.include_dirs = p["include_dirs"].cast<std::vector<std::string>>();
  a.name_expressions = p["name_expressions"].cast<std::vector<std::string>>();
  a.defines = p["defines"].cast<std::vector<std::string>>();
  a.extra_options = p["extra_options"].cast<std::vector<std::string>>();
  a.line_info = p["line_info"].cast<bool>();
  a.fast_math = p["fast_math"].cast<bool>();
  a.max_registers = p["max_registers"].cast<int>();
  a.relocatable_device_code = p["relocatable_device_code"].cast<bool>();
  a.minimal = p["minimal"].cast<bool>();
  return a;
}

// A failed compile or link raises with NVRTC's (or nvJitLink's) diagnostics attached.
[[noreturn]] void raise_with(ErrorBox& box, DiagnosticsOwner& diagnostics) {
  py::dict extra;
  if (diagnostics.d != nullptr) extra["diagnostics"] = diagnostics_list(diagnostics.d);
  raise(box.error, extra);
}

struct DeviceLibrary {
  kiln_device_library* handle = nullptr;
  explicit DeviceLibrary(kiln_device_library* h) : handle(h) {}
  DeviceLibrary(const DeviceLibrary&) = delete;
  DeviceLibrary& operator=(const DeviceLibrary&) = delete;
  ~DeviceLibrary() { kiln_device_library_destroy(handle); }
};

std::vector<kiln_header> views_of(const std::vector<std::pair<std::string, std::string>>& headers) {
  std::vector<kiln_header> out;
  for (const auto& [n, s] : headers) out.push_back(kiln_header{n.c_str(), s.c_str()});
  return out;
}

std::unique_ptr<DeviceLibrary> library_from_source(const py::dict& program,
                                                   const std::vector<std::pair<std::string, std::string>>& headers) {
  ProgramArgs args = program_args(program);
  const auto views = views_of(headers);
  kiln_device_library* library = nullptr;
  checked([&](kiln_error* e) {
    return kiln_device_library_from_source(args.view(), views.data(), views.size(), &library, e);
  });
  return std::make_unique<DeviceLibrary>(library);
}

std::unique_ptr<DeviceLibrary> library_from_ltoir(const std::string& name, int arch, const py::bytes& ltoir,
                                                  const std::vector<std::pair<std::string, std::string>>& headers) {
  const std::string_view data = ltoir;
  const auto views = views_of(headers);
  kiln_device_library* library = nullptr;
  checked([&](kiln_error* e) {
    return kiln_device_library_from_ltoir(name.c_str(), arch, data.data(), data.size(), views.data(), views.size(),
                                          &library, e);
  });
  return std::make_unique<DeviceLibrary>(library);
}

// kiln_compile, or kiln_compile_and_link when there are libraries; the GIL is released meanwhile.
std::unique_ptr<Image> compile(Cache& cache, const py::dict& program, const std::vector<DeviceLibrary*>& libraries,
                               int kind, int arch) {
  ProgramArgs args = program_args(program);
  const kiln_program* p = args.view();
  std::vector<const kiln_device_library*> handles;
  for (const DeviceLibrary* l : libraries) handles.push_back(l->handle);
  const kiln_target target{static_cast<kiln_image_kind>(kind), arch};
  ErrorBox box;
  DiagnosticsOwner diagnostics;
  kiln_image* image = nullptr;
  kiln_status status;
  {
    py::gil_scoped_release release;
    status = handles.empty()
                 ? kiln_compile(cache.handle, p, target, &image, &diagnostics.d, &box.error)
                 : kiln_compile_and_link(cache.handle, p, handles.data(), handles.size(), target, &image,
                                         &diagnostics.d, &box.error);
  }
  if (status != KILN_OK) raise_with(box, diagnostics);
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

  py::class_<DeviceLibrary>(m, "DeviceLibrary");
  m.def("library_from_source", &library_from_source, py::arg("program"), py::arg("headers"));
  m.def("library_from_ltoir", &library_from_ltoir, py::arg("name"), py::arg("arch"), py::arg("ltoir"), py::arg("headers"));
  m.def("compile", &compile, py::arg("cache"), py::arg("program"), py::arg("libraries"), py::arg("kind"), py::arg("arch"));
}

}  // namespace kiln_python
