// jit::compile with the real NVRTC: images, diagnostics, name expressions, automatic includes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "kernels.hpp"
#include "kiln/driver/cuda_api.hpp"
#include "kiln/jit/compiler.hpp"
#include "support/nvrtc_compile.hpp"

namespace {

using namespace kiln::jit;
using kiln::Errc;
namespace fs = std::filesystem;

Program program_of(std::string source, std::string name = "kernel.cu") {
  Program p;
  p.name = std::move(name);
  p.source = std::move(source);
  return p;
}

TEST(Compile, SaxpyToCubinIsAnElfImage) {
  CompileResult r = compile(program_of(test_kernels::kSaxpy), Target::for_arch(90));
  ASSERT_TRUE(r.ok()) << r.log;
  const Artifact& a = r.value();
  EXPECT_EQ(a.kind(), ImageKind::cubin);
  EXPECT_EQ(a.arch(), 90);
  ASSERT_GT(a.size(), 4u);
  EXPECT_EQ(a.image().substr(0, 4), "\x7f" "ELF");
  EXPECT_EQ(a.origin(), Origin::compiled);
  EXPECT_GT(a.compile_time().count(), 0);
  EXPECT_EQ(a.key(), cache_key(program_of(test_kernels::kSaxpy), Target::for_arch(90)));
  EXPECT_TRUE(a.diagnostics().empty()) << a.log();
}

// NVRTC's -minimal: a kernel that includes nothing compiles with it; one that needs CUB's headers
// does not (they use what -minimal leaves out). The option reaches NVRTC (the CUB refusal says so).
TEST(Compile, MinimalCompilesPlainKernelsAndRefusesLibraryHeaders) {
  KILN_SKIP_UNLESS_NVRTC(12000, "NVRTC's -minimal option (NVRTC 11.8 does not know it)");
  Program plain = program_of(test_kernels::kSaxpy);
  plain.options.minimal = true;
  EXPECT_TRUE(compile(plain, Target::for_arch(90)).ok());
  Program cub = program_of(test_kernels::kCubReduce);
  cub.options.minimal = true;
  EXPECT_FALSE(compile(cub, Target::for_arch(90)).ok()) << "CUB compiled with -minimal: the option did not reach NVRTC?";
}

TEST(Compile, PtxIsNulTerminatedText) {
  const Artifact a = compile(program_of(test_kernels::kSaxpy), Target::for_arch(80, ImageKind::ptx)).value();
  EXPECT_EQ(a.kind(), ImageKind::ptx);
  EXPECT_NE(a.image().find(".target sm_80"), std::string_view::npos);
  EXPECT_NE(a.image().find(".entry saxpy"), std::string_view::npos);
  EXPECT_EQ(static_cast<const char*>(a.data())[a.size()], '\0');
  EXPECT_NE(a.image().back(), '\0');
}

TEST(Compile, ErrorNamesFileLineAndColumnWithTheSourceLine) {
  KILN_SKIP_UNLESS_NVRTC(12000, "column numbers in NVRTC's diagnostics (NVRTC 11.8 reports the line only)");
  const std::string source = "__global__ void f(float* x) {\n  int unused = 1;\n  x[0] = z;\n}\n";
  CompileResult r = compile(program_of(source, "broken.cu"), Target::for_arch(90));
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.diagnostics.size(), 2u) << r.log;
  const Diagnostic& e = r.diagnostics[0];
  EXPECT_EQ(e.file, "broken.cu");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.column, 10);  // the 'z'
  EXPECT_EQ(e.severity, Severity::error);
  EXPECT_EQ(e.message, "identifier \"z\" is undefined");
  EXPECT_EQ(e.source_line, "  x[0] = z;");
  const Diagnostic& w = r.diagnostics[1];
  EXPECT_EQ(w.severity, Severity::warning);
  EXPECT_EQ(w.line, 2);
  EXPECT_EQ(w.column, 7);
  EXPECT_EQ(w.code, "177-D");

  try {
    r.value();
    FAIL() << "value() of a failed compile must throw";
  } catch (const kiln::Error& err) {
    EXPECT_TRUE(err.is(Errc::compile_failed));
    const std::string text = err.what();
    EXPECT_NE(text.find("broken.cu:3:10: error: identifier \"z\" is undefined\n    x[0] = z;\n           ^"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("broken.cu:2:7: warning: variable \"unused\""), std::string::npos) << text;
    EXPECT_NE(text.find("sm_90"), std::string::npos) << text;
  }
}

TEST(Compile, WarningsOfASuccessfulCompileAreKept) {
  const Artifact a =
      compile(program_of("__global__ void f() { int unused = 0; }\n"), Target::for_arch(90)).value();
  ASSERT_EQ(a.diagnostics().size(), 1u) << a.log();
  EXPECT_EQ(a.diagnostics()[0].severity, Severity::warning);
  EXPECT_EQ(a.diagnostics()[0].line, 1);
  EXPECT_FALSE(has_errors(a.diagnostics()));
}

TEST(Compile, NameExpressionsGiveLoweredNames) {
  Program p = program_of(test_kernels::kTemplated);
  p.name_expressions = {"fill<3>", "fill<-1>"};
  const Artifact a = compile(p, Target::for_arch(90)).value();
  EXPECT_EQ(a.lowered_name("fill<3>"), "_Z4fillILi3EEvPi");
  EXPECT_EQ(a.lowered_name("fill<-1>"), "_Z4fillILin1EEvPi");
  EXPECT_EQ(a.lowered_names().size(), 2u);
  try {
    a.lowered_name("fill<4>");
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(Errc::invalid_argument));
    EXPECT_NE(std::string(e.what()).find("'fill<4>'"), std::string::npos) << e.what();
  }
}

TEST(Compile, CubIncludeNeedsNoFlags) {
  KILN_SKIP_UNLESS_NVRTC(12000, "the toolkit's CCCL headers (CUB, libcu++, cuda_fp16.h of CUDA 13 refuse an older NVRTC)");
  ASSERT_FALSE(toolkit_include_dirs().empty());
  EXPECT_TRUE(fs::exists(fs::path(toolkit_include_dirs()[0]) / "cuda.h"));
  CompileResult r = compile(program_of(test_kernels::kCubReduce), Target::for_arch(90));
  EXPECT_TRUE(r.ok()) << r.log;
}

TEST(Compile, HeadersFromMemoryAndDefines) {
  Program p = program_of(
      "#include \"config.h\"\n"
      "#if VALUE != 7 || !defined(FLAG) || SCALE != 3\n#error wrong configuration\n#endif\n"
      "__global__ void f(int* o) { *o = VALUE * SCALE; }\n");
  p.headers["config.h"] = "#define VALUE 7\n";
  p.options.defines = {"FLAG", "SCALE=3"};
  EXPECT_TRUE(compile(p, Target::for_arch(90)).ok());
  p.options.defines = {"FLAG", "SCALE=4"};
  CompileResult r = compile(p, Target::for_arch(90));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.diagnostics.at(0).line, 3);
  EXPECT_NE(r.diagnostics.at(0).message.find("wrong configuration"), std::string::npos);
}

TEST(Compile, ErrorInAHeaderNamesTheHeader) {
  Program p = program_of("#include \"bad.h\"\n__global__ void f() {}\n");
  p.headers["bad.h"] = "\nint broken = ;\n";
  CompileResult r = compile(p, Target::for_arch(90));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.diagnostics.at(0).file, "bad.h");
  EXPECT_EQ(r.diagnostics.at(0).line, 2);
}

TEST(Compile, IncludeDirsAreSearched) {
  fs::path dir = fs::temp_directory_path() / ("kiln-jit-inc-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "answer.h") << "#define ANSWER 42\n";
  Program p = program_of("#include <answer.h>\n__global__ void f(int* o) { *o = ANSWER; }\n");
  EXPECT_FALSE(compile(p, Target::for_arch(90)).ok());
  p.include_dirs = {dir.string()};
  EXPECT_TRUE(compile(p, Target::for_arch(90)).ok());
  fs::remove_all(dir);
}

TEST(Compile, StructuredOptionsReachNvrtc) {
  CompileOptions o;
  o.standard = "c++17";
  o.defines = {"A=1"};
  o.line_info = true;
  o.fast_math = true;
  o.max_registers = 32;
  o.relocatable_device_code = true;
  o.extra = {"-default-device"};
  EXPECT_EQ(o.to_nvrtc(), (std::vector<std::string>{"--std=c++17", "-DA=1", "-lineinfo", "--use_fast_math",
                                                     "--maxrregcount=32", "-rdc=true", "-default-device"}));
  Program p = program_of("#if __cplusplus != 201703L\n#error not c++17\n#endif\n__global__ void f() {}\n");
  p.options = o;
  EXPECT_TRUE(compile(p, Target::for_arch(90)).ok());
}

TEST(Compile, MalformedOptionsAreRefusedByName) {
  CompileOptions o;
  o.defines = {"1BAD=2"};
  try {
    o.to_nvrtc();
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(Errc::invalid_argument));
    EXPECT_NE(std::string(e.what()).find("'1BAD=2'"), std::string::npos) << e.what();
  }
  o.defines = {};
  o.max_registers = -4;
  EXPECT_THROW(o.to_nvrtc(), kiln::Error);
}

TEST(Compile, UnknownNvrtcOptionIsADiagnostic) {
  Program p = program_of(test_kernels::kSaxpy);
  p.options.extra = {"--no-such-option"};
  CompileResult r = compile(p, Target::for_arch(90));
  ASSERT_FALSE(r.ok());
  ASSERT_FALSE(r.diagnostics.empty());
  EXPECT_NE(r.error().detail().find("--no-such-option"), std::string::npos) << r.error().detail();
}

TEST(Compile, NulBytesAreRefused) {
  std::string source = "__global__ void f() {}\n";
  source += '\0';
  source += "__global__ void hidden() {}\n";
  try {
    compile(program_of(source, "nul.cu"), Target::for_arch(90));
    FAIL() << "a NUL byte must be refused";
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(Errc::invalid_argument));
    EXPECT_NE(std::string(e.what()).find("'nul.cu'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("NUL byte at offset 23"), std::string::npos) << e.what();
  }
  Program p = program_of(test_kernels::kSaxpy);
  p.headers["h.h"] = std::string("int a;\0int b;", 13);
  EXPECT_THROW(compile(p, Target::for_arch(90)), kiln::Error);
}

TEST(Compile, FromFileReadsAndNamesTheFile) {
  fs::path file = fs::temp_directory_path() / ("kiln-jit-" + std::to_string(::getpid()) + ".cu");
  std::ofstream(file) << test_kernels::kSaxpy;
  Program p = Program::from_file(file);
  EXPECT_EQ(p.name, file.filename().string());
  EXPECT_EQ(p.source, test_kernels::kSaxpy);
  fs::remove(file);
  try {
    Program::from_file(file);
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  }
}

TEST(Compile, EmptyArtifactRefusesAccess) {
  Artifact empty;
  EXPECT_FALSE(empty.valid());
  try {
    empty.size();
    FAIL();
  } catch (const kiln::Error& e) {
    EXPECT_TRUE(e.is(Errc::invalid_handle));
  }
}

}  // namespace
