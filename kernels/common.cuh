// Shared by every kernel file: tile geometry, the parameter blocks (mirrored field for
// field by `#[repr(C)]` structs in src/engine/cuda.rs), and the few helpers that differ
// between NVRTC and the C++ emulation (kernels/emu/cuda_shim.h defines BW_EMU).
//
// The engine prepends this file to each kernel file before compiling it (NVRTC has no
// file system at run time); g++ and scripts/check-kernels.sh do the same, so every
// compiler sees the same text.
//
// Layouts on the device (all f32, "planar" = channel-major):
//   state h, c of one slot and stage: [F][h][w]; h exists twice (h0, h1: double buffer,
//     a step reads one and writes the other; `flags` bit 1 says which one is current);
//   first stage's input slice: channel-last [H][W][C], as the Engine trait passes it;
//   shared input pre-activations zx: [4F][h][w] per slice group;
//   stage k >= 1 input (previous stage's norm(pool(h))): [entry][cin][h + 2][w + 2];
//   packed 3x3 weights: [tap = ky*3 + kx][cin][FG][gate 4][4 filters], FG = ceil(F / 4),
//     filter fg*4 + j of gate g = HWIO column g*F + fg*4 + j, zero when past F.
#ifndef BW_COMMON_CUH
#define BW_COMMON_CUH

// A block computes a tile of TILE_H x TILE_W state pixels of one batch entry, for up to
// 4 filter groups of 4 filters (x 4 gates); blockIdx.z picks the filter groups, so F > 16
// takes several blocks per tile. Thread t works on filter group t / PIXEL_GROUPS of the
// block and pixel group t % PIXEL_GROUPS: pixels q = group + PIXEL_GROUPS * j, j < 4. So a
// warp shares its filter group (weight reads from shared memory are broadcasts) and reads
// consecutive pixels of a row (no bank conflicts). 64 accumulators per thread; at most
// 256 threads per block leaves the compiler up to 255 registers (no spills).
#define BW_TILE_H 8
#define BW_TILE_W 32
#define BW_HALO_H (BW_TILE_H + 2)
#define BW_HALO_W (BW_TILE_W + 2)
#define BW_PIXELS_PER_THREAD 4
#define BW_PIXEL_GROUPS 64
#define BW_FILTERS_PER_GROUP 4
#define BW_GROUPS_PER_BLOCK 4
#define BW_MAX_THREADS 256
// The head keeps one feature per filter in shared memory.
#define BW_MAX_FILTERS 64
// Threads of the per-entry reductions (head).
#define BW_HEAD_THREADS 256

#ifdef BW_EMU
#define BW_DYNAMIC_SMEM(name) float* name = bw_emu_dynamic_smem()
#define BW_LAUNCH_BOUNDS(n)
#else
#define BW_DYNAMIC_SMEM(name) extern __shared__ float4 bw_smem4[]; float* name = (float*)bw_smem4
#define BW_LAUNCH_BOUNDS(n) __launch_bounds__(n)
#endif

// Batch descriptor, one int array of 3 x entries: [slot][flags][group].
//   flags bit 0: the slot is zero (first step of a window): no recurrent convolution,
//                c taken as 0, and the head sees h = 0;
//   flags bit 1: the slot's current h is in h1 (else h0);
//   group: which slice (of a multi-slice step) the entry advances by.
#define BW_FLAG_ZERO 1
#define BW_FLAG_IN_H1 2

// input_conv_f32: zx[group] = conv3x3_valid(slice[group], K), blockIdx.y = group.
struct InputConvParams {
    const float* x;       // [groups][in_h][in_w][cin], channel-last
    const float* weights; // packed, cin input channels
    float* zx;            // [groups][4F][out_h][out_w]
    int in_h, in_w, cin, filters;
    int out_h, out_w, chunk, pad_;
};

// lstm_step_f32: one ConvLSTM step of one stage for every batch entry (blockIdx.y).
struct StepParams {
    const float* zx;        // shared input pre-activations by group, or null
    const float* x;         // per-entry input [entries][cin][h+2][w+2], or null
    const float* kernel;    // packed input weights (with x)
    const float* recurrent; // packed recurrent weights
    float* h0;              // [slots][F][h][w]
    float* h1;
    float* c;
    const int* batch;       // descriptor, 3 x entries
    int entries, h, w, filters;
    int cin, chunk_x, chunk_h, pad_;
};

// pool_norm_f32: out[entry] = norm(pool(new h)) of one stage, after its step.
struct PoolNormParams {
    const float* h0;
    const float* h1;
    const int* batch;
    const float* scale;   // BatchNorm as x * scale + shift, or null
    const float* shift;
    float* out;           // [entries][F][out_h][out_w]
    int entries, h, w, filters;
    int pool, out_h, out_w, pad_;
};

// head_f32: p[entry] = sigmoid(dense(max over the map of norm(pool(current h)))).
struct HeadParams {
    const float* h0;
    const float* h1;
    const int* batch;
    const float* scale;   // or null
    const float* shift;
    const float* dense;   // F weights
    float* out;           // [entries]
    int entries, h, w, filters;
    int pool, pad_;
    float bias, pad2_;
};

static_assert(sizeof(InputConvParams) == 56, "InputConvParams must match src/engine/cuda.rs");
static_assert(sizeof(StepParams) == 96, "StepParams must match src/engine/cuda.rs");
static_assert(sizeof(PoolNormParams) == 80, "PoolNormParams must match src/engine/cuda.rs");
static_assert(sizeof(HeadParams) == 88, "HeadParams must match src/engine/cuda.rs");

// Keras 2.3 hard_sigmoid: clip(0.2 x + 0.5, 0, 1) (DESIGN §1), rounded as the CPU
// engines (no fused multiply-add).
__device__ __forceinline__ float bw_hard_sigmoid(float x) {
    return fminf(fmaxf(__fadd_rn(__fmul_rn(0.2f, x), 0.5f), 0.0f), 1.0f);
}

// BatchNorm x * scale + shift, rounded as the CPU engines do (no fused multiply-add).
__device__ __forceinline__ float bw_norm(float x, float scale, float shift) {
    return __fadd_rn(__fmul_rn(x, scale), shift);
}

#endif
