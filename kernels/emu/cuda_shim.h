// Just enough of CUDA C++ to compile kernels/*.cu as plain C++ for the CPU emulation
// (kernels/emu/emulator.cpp). Not a general CUDA emulator: it covers what our kernels use,
// and a kernel that needs more should fail to compile here rather than run wrongly.
//
// Every thread of a block runs as a fiber (ucontext) on one OS thread; __syncthreads()
// switches to the scheduler, which resumes the next fiber, so each barrier is reached by
// every thread of the block before any thread passes it. Blocks run one after another,
// so `__shared__` variables can be statics. All emulator state is thread_local, so that
// several OS threads (parallel tests) can each run launches.
#pragma once

#define BW_EMU 1

#include <algorithm>
#include <cmath>
#include <cstring>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
typedef dim3 uint3;

struct float4 {
    float x, y, z, w;
};

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
#define __restrict__ __restrict

// Barrier of the block being emulated (see emulator.cpp).
void __syncthreads();
// The block's dynamic shared memory (extern __shared__), 16-byte aligned.
float* bw_emu_dynamic_smem();

using std::max;
using std::min;

// Round-to-nearest intrinsics: plain operations on the CPU (compiled without contraction).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __int_as_float(int v) {
    float f;
    std::memcpy(&f, &v, sizeof f);
    return f;
}
