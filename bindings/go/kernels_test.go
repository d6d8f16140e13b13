package kiln

// Kernels the tests compile.
const (
	saxpySource = `extern "C" __global__ void saxpy(float a, const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
`
	emptySource = `extern "C" __global__ void empty() {}
`
	addOneSource = `extern "C" __global__ void add_one(int* v, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) v[i] += 1;
}
`
	// Spins for ns nanoseconds of the GPU's global timer (independent of its clock rate).
	spinSource = `extern "C" __global__ void spin(unsigned long long ns) {
  unsigned long long start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now)); } while (now - start < ns);
}
`
	faultSource = `extern "C" __global__ void fault(int* p) { *p = 1; }
`
	fillSource = `template <int N> __global__ void fill(int* out) { out[threadIdx.x] = N; }
`
	// Line 3 column 10 is the undefined 'z'; line 2 column 7 the unused variable (177-D).
	brokenSource = "__global__ void f(float* x) {\n  int unused = 1;\n  x[0] = z;\n}\n"
)
