// Modules, kernels and the launch: the one path that runs per launch, so it packs the arguments
// into a block the kernel keeps, with no Python object made on the way. Buffer arguments may be
// kiln's own memory or any object with __cuda_array_interface__ or __dlpack__ (CuPy, PyTorch,
// JAX, Numba); scalars take the size of the kernel's parameter; the count and every size are
// checked before anything is launched.
#include <pybind11/stl.h>

#include <cstring>
#include <limits>
#include <vector>

#include "native.hpp"
#include "objects.hpp"

namespace kiln_python {

const kiln_image* image_handle(py::handle image);

namespace {

constexpr std::size_t round_up(std::size_t n) {
  return (n + KILN_ARGUMENT_ALIGNMENT - 1) / KILN_ARGUMENT_ALIGNMENT * KILN_ARGUMENT_ALIGNMENT;
}

// DLPack's ABI (dlpack.h, stable since 0.6): what a "dltensor" capsule points to.
struct DLDevice {
  int32_t device_type;
  int32_t device_id;
};
struct DLDataType {
  uint8_t code, bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor*);
};
constexpr int32_t kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13;

std::string type_name(PyObject* o) { return Py_TYPE(o)->tp_name; }

struct Module {
  kiln_module* handle = nullptr;
  int device = 0;
  Module(const py::object& image, int device_ordinal) : device(device_ordinal) {
    const kiln_image* i = image_handle(image);
    checked_nogil([&](kiln_error* e) { return kiln_module_load(i, device_ordinal, &handle, e); });
  }
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  ~Module() { kiln_module_destroy(handle); }
};

class Kernel {
 public:
  Kernel(const Module& module, std::string name) : name_(std::move(name)), device_(module.device) {
    checked([&](kiln_error* e) { return kiln_module_get_kernel(module.handle, name_.c_str(), &handle_, e); });
    std::size_t count = 0;
    checked([&](kiln_error* e) { return kiln_kernel_params(handle_, nullptr, 0, &count, e); });
    sizes_.resize(count);
    checked([&](kiln_error* e) { return kiln_kernel_params(handle_, sizes_.data(), sizes_.size(), &count, e); });
    std::size_t offset = 0;
    for (std::size_t s : sizes_) {
      offsets_.push_back(offset);
      offset += round_up(s);
    }
    packed_.assign(offset, 0);
    config_.size = sizeof config_;
  }
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;
  ~Kernel() { kiln_kernel_destroy(handle_); }

  const std::string& name() const { return name_; }
  int device() const { return device_; }
  const std::vector<std::size_t>& parameter_sizes() const { return sizes_; }

  // The GIL is held throughout, so the block and the config this kernel keeps are never shared.
  void launch(py::handle grid, py::handle block, py::handle args, py::handle stream, unsigned shared_bytes) {
    dims(grid, config_.grid, "grid");
    dims(block, config_.block, "block");
    config_.dynamic_shared_bytes = shared_bytes;
    // A list becomes a tuple first: an argument's __cuda_array_interface__ runs Python code, which
    // could change a list under the loop.
    py::object tuple = py::reinterpret_borrow<py::object>(args);
    if (!PyTuple_Check(args.ptr())) {
      if (!PyList_Check(args.ptr()))
        raise_invalid(name_ + ": args must be a tuple or a list of the kernel's arguments, not " +
                      type_name(args.ptr()));
      tuple = py::reinterpret_steal<py::object>(PyList_AsTuple(args.ptr()));
    }
    const Py_ssize_t n = PyTuple_GET_SIZE(tuple.ptr());
    if (static_cast<std::size_t>(n) != sizes_.size()) refuse_count(static_cast<std::size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) pack(PyTuple_GET_ITEM(tuple.ptr(), i), static_cast<std::size_t>(i));
    kiln_stream* s;
    if (stream.is_none()) s = default_stream_ != nullptr ? default_stream_ : (default_stream_ = default_stream(device_));
    else if (py::isinstance<Stream>(stream)) s = stream.cast<Stream&>().handle;
    else raise_invalid(name_ + ": stream must be a kiln.Stream or None, not " + type_name(stream.ptr()));
    ErrorBox box;
    if (kiln_launch(handle_, s, &config_, packed_.data(), sizes_.data(), sizes_.size(), &box.error) != KILN_OK)
      [[unlikely]]
      raise(box.error);
  }

 private:
  void dims(py::handle value, unsigned (&out)[3], const char* what) {
    PyObject* o = value.ptr();
    if (PyLong_Check(o)) {
      out[0] = dimension(o, what);
      out[1] = out[2] = 1;
      return;
    }
    if (PyTuple_Check(o) && PyTuple_GET_SIZE(o) >= 1 && PyTuple_GET_SIZE(o) <= 3) {
      const Py_ssize_t n = PyTuple_GET_SIZE(o);
      for (Py_ssize_t i = 0; i < 3; ++i) out[i] = i < n ? dimension(PyTuple_GET_ITEM(o, i), what) : 1;
      return;
    }
    raise_invalid(name_ + ": " + what + " must be an int or a tuple of 1 to 3 ints, not " + type_name(o));
  }

  unsigned dimension(PyObject* o, const char* what) {
    if (!PyLong_Check(o)) raise_invalid(name_ + ": " + what + " holds a " + type_name(o) + ", not an int");
    const unsigned long v = PyLong_AsUnsignedLong(o);
    if ((v == static_cast<unsigned long>(-1) && PyErr_Occurred()) || v == 0 ||
        v > std::numeric_limits<unsigned>::max()) {
      PyErr_Clear();
      raise_invalid(name_ + ": " + what + " holds " + std::string(py::str(o)) +
                    ": each dimension is an int from 1 to 2**32-1");
    }
    return static_cast<unsigned>(v);
  }

  std::string signature() const {
    std::string s;
    for (std::size_t i = 0; i < sizes_.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes_[i]);
    return s;
  }

  [[noreturn]] void refuse_count(std::size_t got) const {
    raise_invalid(name_ + " takes " + std::to_string(sizes_.size()) + " argument" +
                  (sizes_.size() == 1 ? "" : "s") + " (of " + signature() + " bytes); got " + std::to_string(got));
  }

  [[noreturn]] void refuse(std::size_t i, const std::string& why) const {
    raise_invalid(name_ + ": argument " + std::to_string(i) + " (" + std::to_string(sizes_[i]) +
                  " bytes in the kernel): " + why);
  }

  void pack(PyObject* a, std::size_t i) {
    unsigned char* dst = packed_.data() + offsets_[i];
    const std::size_t size = sizes_[i];
    if (PyLong_Check(a)) return pack_int(a, i, dst, size);  // bool is an int too
    // Exact: numpy.float64 is a float too, and a NumPy scalar keeps its own size (below).
    if (PyFloat_CheckExact(a)) return pack_float(PyFloat_AS_DOUBLE(a), i, dst, size);
    if (py::isinstance<DeviceMemory>(a)) {
      const auto* m = py::handle(a).cast<const DeviceMemory*>();
      if (m->address == 0) refuse(i, "the buffer was closed");
      return pack_pointer(m->address, i, dst, size, "a kiln buffer");
    }
    static PyObject* const interface_name = PyUnicode_InternFromString("__cuda_array_interface__");
    static PyObject* const dlpack_name = PyUnicode_InternFromString("__dlpack__");
    if (PyObject* interface = lookup(a, interface_name)) return pack_interface(interface, a, i, dst, size);
    // Before DLPack: NumPy scalars and arrays offer both, and their buffer says what they are.
    if (PyObject_CheckBuffer(a)) return pack_bytes(a, i, dst, size);
    if (PyObject* dlpack = lookup(a, dlpack_name)) return pack_dlpack(dlpack, a, i, dst, size);
    refuse(i, std::string("cannot pass a ") + type_name(a) +
                  ": pass an int, a float, a NumPy scalar, bytes of the parameter's size, a kiln buffer, or an "
                  "array with __cuda_array_interface__ or __dlpack__ (CuPy, PyTorch, JAX, Numba)");
  }

  // An attribute found on the type (a property, as CuPy and PyTorch define these) or the instance,
  // without raising AttributeError for the common miss. A new reference, or nullptr.
  static PyObject* lookup(PyObject* o, PyObject* key) {
    PyObject* found = nullptr;
    if (_PyType_Lookup(Py_TYPE(o), key) != nullptr) {
      found = PyObject_GetAttr(o, key);
    } else if (PyObject** dict = _PyObject_GetDictPtr(o); dict != nullptr && *dict != nullptr) {
      found = PyDict_GetItem(*dict, key);
      Py_XINCREF(found);
    }
    if (found == nullptr && PyErr_Occurred()) throw py::error_already_set();
    return found;
  }

  void pack_int(PyObject* a, std::size_t i, unsigned char* dst, std::size_t size) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(a, &overflow);
    unsigned long long u = static_cast<unsigned long long>(v);
    if (overflow > 0) {  // beyond int64: only an unsigned 64-bit parameter takes it
      u = PyLong_AsUnsignedLongLong(a);
      if (PyErr_Occurred()) {
        PyErr_Clear();
        refuse(i, std::string(py::str(a)) + " does not fit in 64 bits");
      }
      if (size != 8) refuse(i, std::string(py::str(a)) + " does not fit in " + std::to_string(size) + " bytes");
      std::memcpy(dst, &u, 8);
      return;
    }
    if (overflow < 0) refuse(i, std::string(py::str(a)) + " does not fit in 64 bits");
    // Signed or unsigned: a value fits when one of the two readings of `size` bytes holds it.
    const unsigned bits = static_cast<unsigned>(size * 8);
    bool fits = false;
    if (size == 8) fits = true;
    else if (size == 1 || size == 2 || size == 4)
      fits = v >= -(1LL << (bits - 1)) && v < (1LL << bits);
    if (!fits)
      refuse(i, size == 1 || size == 2 || size == 4
                    ? std::to_string(v) + " does not fit in " + std::to_string(size) + " bytes"
                    : "an int cannot fill a parameter of this size: pass bytes or a NumPy scalar of it");
    std::memcpy(dst, &u, size);  // little-endian: the low bytes
  }

  void pack_float(double v, std::size_t i, unsigned char* dst, std::size_t size) {
    if (size == 8) {
      std::memcpy(dst, &v, 8);
    } else if (size == 4) {
      const auto f = static_cast<float>(v);
      std::memcpy(dst, &f, 4);
    } else {
      refuse(i, "a float fills a float (4 bytes) or a double (8 bytes): pass a NumPy scalar (numpy.float16) or "
                "bytes for other sizes");
    }
  }

  void pack_pointer(uint64_t address, std::size_t i, unsigned char* dst, std::size_t size, const char* what) {
    if (size != sizeof(void*)) refuse(i, std::string(what) + " is a pointer (8 bytes)");
    std::memcpy(dst, &address, 8);
  }

  void pack_interface(PyObject* interface, PyObject* a, std::size_t i, unsigned char* dst, std::size_t size) {
    py::object owner = py::reinterpret_steal<py::object>(interface);
    PyObject* data = PyDict_Check(interface) ? PyDict_GetItemString(interface, "data") : nullptr;
    if (data == nullptr || !PyTuple_Check(data) || PyTuple_GET_SIZE(data) < 1)
      refuse(i, std::string("the __cuda_array_interface__ of a ") + type_name(a) + " has no data (pointer, read-only)");
    const uint64_t address = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(data, 0));
    if (PyErr_Occurred()) {
      PyErr_Clear();
      refuse(i, std::string("the __cuda_array_interface__ of a ") + type_name(a) + " holds no integer pointer");
    }
    pack_pointer(address, i, dst, size, type_name(a).c_str());
  }

  void pack_dlpack(PyObject* method, PyObject* a, std::size_t i, unsigned char* dst, std::size_t size) {
    py::object bound = py::reinterpret_steal<py::object>(method);
    py::object capsule = bound();
    auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
    if (managed == nullptr) {
      PyErr_Clear();
      refuse(i, std::string("the __dlpack__ of a ") + type_name(a) + " gave no \"dltensor\" capsule");
    }
    const DLTensor& t = managed->dl_tensor;
    const int32_t kind = t.device.device_type;
    if (kind != kDLCUDA && kind != kDLCUDAHost && kind != kDLCUDAManaged)
      refuse(i, std::string("the ") + type_name(a) + " lives in host memory (DLPack device type " +
                    std::to_string(kind) + "): kernels read device memory: copy it to the GPU first");
    // The capsule is not consumed: dropping it hands the tensor back to its owner, which `a` keeps.
    pack_pointer(reinterpret_cast<uint64_t>(t.data) + t.byte_offset, i, dst, size, type_name(a).c_str());
  }

  // By value: a NumPy scalar or a 0-d array of the parameter's size, or bytes (a struct).
  void pack_bytes(PyObject* a, std::size_t i, unsigned char* dst, std::size_t size) {
    Py_buffer view;
    if (PyObject_GetBuffer(a, &view, PyBUF_C_CONTIGUOUS) != 0) {
      PyErr_Clear();
      refuse(i, std::string("a ") + type_name(a) + " is not contiguous");
    }
    const bool scalar = view.ndim == 0;
    const bool raw = PyBytes_Check(a) || PyByteArray_Check(a) || PyMemoryView_Check(a);
    const auto len = static_cast<std::size_t>(view.len);
    if (scalar || raw) {
      if (len == size) std::memcpy(dst, view.buf, size);
      PyBuffer_Release(&view);
      if (len != size) refuse(i, std::string("a ") + type_name(a) + " of " + std::to_string(len) + " bytes");
      return;
    }
    PyBuffer_Release(&view);
    refuse(i, std::string("a ") + type_name(a) + " with a shape is host memory: kernels read device memory: "
                                                 "pass kiln.to_device(array), a CuPy array or a CUDA tensor");
  }

  kiln_kernel* handle_ = nullptr;
  std::string name_;
  int device_ = 0;
  std::vector<std::size_t> sizes_, offsets_;
  std::vector<unsigned char> packed_;
  kiln_launch_config config_{};
  kiln_stream* default_stream_ = nullptr;  // the device's, found on the first launch that names none
};

// kernel(grid, block, args=(), *, stream=None, shared_mem=0) as the type's own call slot: pybind11's
// dispatcher (overloads, keyword matching, casters) cost about 1 µs a launch with keywords on the
// H200 machine, twice CuPy's whole Python part.
PyObject* call_kernel(PyObject* self, PyObject* args, PyObject* kwargs) {
  static constexpr const char* kUsage = "kernel(grid, block, args=(), *, stream=None, shared_mem=0)";
  try {
    auto* kernel = py::handle(self).cast<Kernel*>();
    const Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 2 || n > 3)
      raise_invalid(std::string(kUsage) + ": " + std::to_string(n) + " positional arguments given");
    static PyObject* const no_arguments = PyTuple_New(0);
    PyObject* arguments = n == 3 ? PyTuple_GET_ITEM(args, 2) : no_arguments;
    PyObject* stream = Py_None;
    unsigned shared_bytes = 0;
    if (kwargs != nullptr) {
      Py_ssize_t position = 0;
      PyObject *key, *value;
      while (PyDict_Next(kwargs, &position, &key, &value)) {
        if (PyUnicode_CompareWithASCIIString(key, "stream") == 0) {
          stream = value;
        } else if (PyUnicode_CompareWithASCIIString(key, "shared_mem") == 0) {
          const unsigned long bytes = PyLong_AsUnsignedLong(value);
          if ((bytes == static_cast<unsigned long>(-1) && PyErr_Occurred()) ||
              bytes > std::numeric_limits<unsigned>::max()) {
            PyErr_Clear();
            raise_invalid(std::string(kUsage) + ": shared_mem is a number of bytes from 0 to 2**32-1");
          }
          shared_bytes = static_cast<unsigned>(bytes);
        } else if (PyUnicode_CompareWithASCIIString(key, "args") == 0 && n == 2) {
          arguments = value;
        } else {
          raise_invalid(std::string(kUsage) + ": unexpected keyword " + std::string(py::str(key)));
        }
      }
    }
    kernel->launch(PyTuple_GET_ITEM(args, 0), PyTuple_GET_ITEM(args, 1), arguments, stream, shared_bytes);
    Py_RETURN_NONE;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (py::builtin_exception& e) {
    e.set_error();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

}  // namespace

void register_launching(py::module_& m) {
  py::class_<Module>(m, "Module")
      .def(py::init<const py::object&, int>(), py::arg("image"), py::arg("device"))
      .def_property_readonly("device", [](const Module& mod) { return mod.device; });

  py::class_<Kernel> kernel(m, "Kernel", "A kernel: kernel(grid, block, args=(), *, stream=None, shared_mem=0)");
  kernel.def(py::init<const Module&, std::string>(), py::arg("module"), py::arg("name"))
      .def_property_readonly("name", &Kernel::name)
      .def_property_readonly("device", &Kernel::device)
      .def_property_readonly("parameter_sizes", &Kernel::parameter_sizes);
  auto* type = reinterpret_cast<PyTypeObject*>(kernel.ptr());
  type->tp_call = &call_kernel;
  PyType_Modified(type);
}

}  // namespace kiln_python
