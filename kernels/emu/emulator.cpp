// CPU emulation of the CUDA kernels, built as a shared library by the tests
// (tests/cuda_emulation.rs) with the system g++ and loaded by the CUDA engine's emulated
// backend (src/engine/cuda/emu.rs): the same kernel source, the same host code, only the
// launches differ. It checks indexing, boundaries and arithmetic before any GPU runs them.
//
// g++ -O2 -std=c++17 -ffp-contract=off -fPIC -shared -Ikernels kernels/emu/emulator.cpp
//
// A launch runs every block in turn; a block's threads are fibers (ucontext) scheduled
// round-robin between barriers. A block whose threads do not all reach the same barrier
// (some finished while others wait) is an error, as it would hang or be undefined on a GPU.

#include "cuda_shim.h"

#include <ucontext.h>

#include <cstdio>
#include <string>
#include <vector>

#include "../common.cuh"
#include "../conv_lstm.cu"
#include "../head.cu"

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace {

constexpr size_t kStack = 256 * 1024;

struct Fiber {
    ucontext_t ctx;
    std::vector<char> stack;
    bool done = false;
};

// Per OS thread (see cuda_shim.h).
thread_local ucontext_t g_scheduler;
thread_local std::vector<Fiber> g_fibers;
thread_local unsigned g_current = 0;
thread_local void (*g_body)(const void*) = nullptr;
thread_local const void* g_params = nullptr;
thread_local std::vector<float4> g_smem;
thread_local std::string g_error;

void fiber_entry() {
    g_body(g_params);
    g_fibers[g_current].done = true;
    // Returning resumes uc_link, the scheduler.
}

// Runs the grid; returns false (with g_error set) on a barrier divergence.
bool run_grid(void (*body)(const void*), const void* params, dim3 grid, dim3 block,
              size_t smem_bytes) {
    const unsigned threads = block.x * block.y * block.z;
    if (threads == 0 || threads > 1024) {
        g_error = "block of " + std::to_string(threads) + " threads";
        return false;
    }
    g_body = body;
    g_params = params;
    gridDim = grid;
    blockDim = block;
    // Dynamic shared memory, filled with NaN so that reading what no thread wrote shows.
    g_smem.assign(smem_bytes / sizeof(float4) + 1, float4{NAN, NAN, NAN, NAN});
    if (g_fibers.size() < threads) g_fibers.resize(threads);
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                blockIdx = uint3{bx, by, bz};
                for (unsigned t = 0; t < threads; ++t) {
                    Fiber& f = g_fibers[t];
                    if (f.stack.empty()) f.stack.resize(kStack);
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = f.stack.data();
                    f.ctx.uc_stack.ss_size = f.stack.size();
                    f.ctx.uc_link = &g_scheduler;
                    f.done = false;
                    makecontext(&f.ctx, fiber_entry, 0);
                }
                for (unsigned round = 0;; ++round) {
                    unsigned waiting = 0;
                    for (unsigned t = 0; t < threads; ++t) {
                        if (g_fibers[t].done) continue;
                        g_current = t;
                        threadIdx = uint3{t % block.x, (t / block.x) % block.y,
                                          t / (block.x * block.y)};
                        swapcontext(&g_scheduler, &g_fibers[t].ctx);
                        if (!g_fibers[t].done) ++waiting;
                    }
                    if (waiting == 0) break;
                    if (waiting != threads) {
                        char buf[160];
                        std::snprintf(buf, sizeof buf,
                                      "barrier divergence in block (%u,%u,%u): %u of %u "
                                      "threads wait at barrier %u, the others returned",
                                      bx, by, bz, waiting, threads, round);
                        g_error = buf;
                        return false;
                    }
                }
            }
    return true;
}

template <class P, void (*K)(const P)>
void trampoline(const void* p) {
    K(*static_cast<const P*>(p));
}

}  // namespace

void __syncthreads() { swapcontext(&g_fibers[g_current].ctx, &g_scheduler); }

float* bw_emu_dynamic_smem() { return reinterpret_cast<float*>(g_smem.data()); }

extern "C" {

// Launches kernel `name` (one of kernels/*.cu's entry points) with its parameter block.
// Returns 0 on success, else nonzero with bw_emu_last_error() saying why.
int bw_emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned threads,
                  unsigned smem_bytes, const void* params) {
    g_error.clear();
    void (*body)(const void*) = nullptr;
    const std::string n = name;
    if (n == "input_conv_f32")
        body = trampoline<InputConvParams, input_conv_f32>;
    else if (n == "lstm_step_f32")
        body = trampoline<StepParams, lstm_step_f32>;
    else if (n == "pool_norm_f32")
        body = trampoline<PoolNormParams, pool_norm_f32>;
    else if (n == "head_f32")
        body = trampoline<HeadParams, head_f32>;
    if (body == nullptr) {
        g_error = "no kernel named " + n;
        return 1;
    }
    dim3 grid, block;
    grid.x = gx;
    grid.y = gy;
    grid.z = gz;
    block.x = threads;
    return run_grid(body, params, grid, block, smem_bytes) ? 0 : 2;
}

const char* bw_emu_last_error() { return g_error.c_str(); }

// sizeof each parameter block, checked against the Rust mirrors.
unsigned bw_emu_params_size(const char* name) {
    const std::string n = name;
    if (n == "input_conv_f32") return sizeof(InputConvParams);
    if (n == "lstm_step_f32") return sizeof(StepParams);
    if (n == "pool_norm_f32") return sizeof(PoolNormParams);
    if (n == "head_f32") return sizeof(HeadParams);
    return 0;
}
}
