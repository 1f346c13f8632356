//! A CUDA device as a [`Backend`], through cudarc with the driver and NVRTC loaded at run
//! time. cudarc panics when it first touches a library that is absent, so every entry
//! point here probes for the libraries first ([`cuda_probe`]) and turns their absence
//! into an error.
//!
//! Kernels are compiled by NVRTC once per process and architecture ([`compile_kernels`]):
//! to a cubin for the device's exact architecture when this NVRTC knows it (a cubin
//! loads on any driver new enough for the GPU, whatever NVRTC's version), otherwise to PTX
//! for the newest architecture it knows, which the driver compiles on load.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DriverError, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys, Ptx};

use super::{kernel_source, Backend, Kernel, LaunchParams, KERNEL_FILES};
use crate::{Error, Result};

/// A compute capability, `(major, minor)`: (9, 0) for an H100/H200.
pub type Arch = (i32, i32);

/// Every kernel file compiled for one architecture, `(file, image)`, shared.
pub type KernelImages = Arc<Vec<(&'static str, KernelImage)>>;

/// One kernel file compiled for one architecture.
#[derive(Debug, Clone)]
pub enum KernelImage {
    /// Machine code for exactly this architecture.
    Cubin(Vec<u8>),
    /// PTX for a virtual architecture, compiled by the driver on load.
    Ptx(String),
}

fn cuda_error(what: &str) -> impl Fn(DriverError) -> Error + '_ {
    move |e| {
        let name = e
            .error_string()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("{e:?}"));
        Error::Cuda(format!("CUDA: {what}: {name}"))
    }
}

/// Whether NVRTC's library can be loaded.
fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library.
    unsafe { nvrtc_sys::is_culib_present() }
}

/// Checks, without panicking, that CUDA device `ordinal` can be used: the driver library
/// (libcuda) loads, the device exists, and NVRTC loads. Returns the number of devices.
pub fn cuda_probe(ordinal: usize) -> Result<usize> {
    // SAFETY: only tries to dlopen the library.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(Error::Cuda(
            "libcuda.so could not be loaded (no NVIDIA driver)".into(),
        ));
    }
    let count = CudaContext::device_count().map_err(cuda_error("cannot count devices"))?;
    let count = count.max(0) as usize;
    if ordinal >= count {
        return Err(Error::Cuda(format!("the driver reports {count} device(s)")));
    }
    if !nvrtc_present() {
        return Err(Error::Cuda(
            "NVRTC (libnvrtc.so.12) could not be loaded: install the CUDA toolkit, or the \
             nvidia-cuda-nvrtc-cu12 wheel with its lib/ folder on LD_LIBRARY_PATH"
                .into(),
        ));
    }
    Ok(count)
}

/// Architectures this NVRTC can compile for, as 10 * major + minor.
fn nvrtc_archs() -> Result<Vec<i32>> {
    let fail = |e: nvrtc::NvrtcError| Error::Cuda(format!("NVRTC: cannot list architectures: {e}"));
    let mut n = 0;
    // SAFETY: out-parameters of the right types and sizes.
    unsafe { nvrtc_sys::nvrtcGetNumSupportedArchs(&mut n).result() }.map_err(fail)?;
    let mut archs = vec![0; n.max(0) as usize];
    unsafe { nvrtc_sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()).result() }.map_err(fail)?;
    Ok(archs)
}

/// NVRTC's version, `(major, minor)`.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    if !nvrtc_present() {
        return Err(Error::Cuda(
            "NVRTC (libnvrtc.so.12) could not be loaded".into(),
        ));
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: out-parameters.
    unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor).result() }
        .map_err(|e| Error::Cuda(format!("NVRTC: {e}")))?;
    Ok((major, minor))
}

/// Compiles `src` (named `name` in messages) with options `opts`; returns the cubin (or
/// the PTX) bytes.
fn nvrtc_compile(name: &str, src: &str, opts: &[String], cubin: bool) -> Result<Vec<u8>> {
    let csrc = CString::new(src).map_err(|_| Error::Cuda(format!("{name}: NUL in source")))?;
    let cname = CString::new(name).expect("no NUL in file names");
    let fail =
        |what: &str, e: nvrtc::NvrtcError| Error::Cuda(format!("NVRTC: {name}: {what}: {e}"));
    let prog = nvrtc::create_program(&csrc, Some(&cname)).map_err(|e| fail("create", e))?;
    // SAFETY: `prog` is live until destroy_program below; buffers are sized by NVRTC.
    let out = unsafe {
        match nvrtc::compile_program(prog, opts) {
            Err(e) => {
                let log = nvrtc::get_program_log(prog).unwrap_or_default();
                let log = CStr::from_ptr(log.as_ptr())
                    .to_string_lossy()
                    .replace('\n', " | ");
                Err(Error::Cuda(format!(
                    "NVRTC: {name} ({}): {e}: {log}",
                    opts.join(" ")
                )))
            }
            Ok(()) if cubin => {
                let mut size = 0usize;
                nvrtc_sys::nvrtcGetCUBINSize(prog, &mut size)
                    .result()
                    .map_err(|e| fail("cubin size", e))?;
                let mut bin = vec![0u8; size];
                nvrtc_sys::nvrtcGetCUBIN(prog, bin.as_mut_ptr().cast())
                    .result()
                    .map_err(|e| fail("cubin", e))?;
                Ok(bin)
            }
            Ok(()) => {
                let ptx = nvrtc::get_ptx(prog).map_err(|e| fail("ptx", e))?;
                Ok(ptx
                    .iter()
                    .take_while(|&&c| c != 0)
                    .map(|&c| c as u8)
                    .collect())
            }
        }
    };
    // SAFETY: created above, destroyed once.
    let _ = unsafe { nvrtc::destroy_program(prog) };
    out
}

/// Every kernel file compiled for `arch` (see the module documentation for cubin versus
/// PTX), `(file, image)`. Compiled once per process and architecture; later calls return
/// the cached images. Needs NVRTC, not a GPU.
pub fn compile_kernels(arch: Arch) -> Result<KernelImages> {
    static CACHE: OnceLock<Mutex<HashMap<Arch, KernelImages>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(hit) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&arch) {
        return Ok(hit.clone());
    }
    if !nvrtc_present() {
        return Err(Error::Cuda(
            "NVRTC (libnvrtc.so.12) could not be loaded".into(),
        ));
    }
    let want = 10 * arch.0 + arch.1;
    let archs = nvrtc_archs()?;
    let (option, cubin) = if archs.contains(&want) {
        (format!("--gpu-architecture=sm_{want}"), true)
    } else if let Some(&best) = archs.iter().filter(|&&a| a <= want).max() {
        (format!("--gpu-architecture=compute_{best}"), false)
    } else {
        return Err(Error::Cuda(format!(
            "NVRTC cannot compile for sm_{want} (it knows {archs:?})"
        )));
    };
    let opts = [option, "--std=c++17".to_string()];
    let mut images = Vec::with_capacity(KERNEL_FILES.len());
    for (file, body) in KERNEL_FILES {
        let bytes = nvrtc_compile(file, &kernel_source(body), &opts, cubin)?;
        let image = if cubin {
            KernelImage::Cubin(bytes)
        } else {
            KernelImage::Ptx(String::from_utf8_lossy(&bytes).into_owned())
        };
        images.push((file, image));
    }
    let images = Arc::new(images);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(arch, images.clone());
    Ok(images)
}

/// A CUDA device with the kernels loaded; see the module documentation.
pub struct CudaBackend {
    stream: Arc<CudaStream>,
    /// In [`Kernel::ALL`] order.
    functions: Vec<CudaFunction>,
    description: String,
    // Keeps the context alive as long as the buffers and functions.
    _ctx: Arc<CudaContext>,
}

impl CudaBackend {
    /// Opens device `ordinal` and loads the kernels compiled for its architecture.
    pub fn new(ordinal: usize) -> Result<Self> {
        cuda_probe(ordinal)?;
        let ctx = CudaContext::new(ordinal).map_err(cuda_error("cannot create a context"))?;
        // One stream, so stream order is all the synchronisation the engine needs; the
        // kernels address buffers by raw pointer, which cudarc's events could not track.
        // SAFETY: every buffer of this engine is used on this one stream only.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let arch = ctx
            .compute_capability()
            .map_err(cuda_error("compute capability"))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let images = compile_kernels(arch)?;
        let mut modules = HashMap::new();
        for (file, image) in images.iter() {
            let ptx = match image {
                KernelImage::Cubin(b) => Ptx::from_binary(b.clone()),
                KernelImage::Ptx(s) => Ptx::from_src(s.clone()),
            };
            let module = ctx.load_module(ptx).map_err(cuda_error(&format!(
                "cannot load {file} for sm_{}{}",
                arch.0, arch.1
            )))?;
            modules.insert(*file, module);
        }
        let mut functions = Vec::with_capacity(Kernel::ALL.len());
        for k in Kernel::ALL {
            let f = modules[k.file()]
                .load_function(k.name())
                .map_err(cuda_error(k.name()))?;
            functions.push(f);
        }
        let (major, minor) = nvrtc_version().unwrap_or((0, 0));
        Ok(CudaBackend {
            stream,
            functions,
            description: format!(
                "cuda:{ordinal} ({name}, sm_{}{}, NVRTC {major}.{minor})",
                arch.0, arch.1
            ),
            _ctx: ctx,
        })
    }

    /// Waits for every launch so far (for timing).
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(cuda_error("synchronize"))
    }
}

impl Backend for CudaBackend {
    type Buf = CudaSlice<f32>;

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn alloc(&self, len: usize) -> Result<CudaSlice<f32>> {
        self.stream
            .alloc_zeros::<f32>(len.max(1))
            .map_err(cuda_error("allocate"))
    }

    fn upload(&self, buf: &mut CudaSlice<f32>, offset: usize, data: &[f32]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut view = buf.slice_mut(offset..offset + data.len());
        self.stream
            .memcpy_htod(data, &mut view)
            .map_err(cuda_error("copy to device"))
    }

    fn download(&self, buf: &CudaSlice<f32>, offset: usize, len: usize) -> Result<Vec<f32>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .stream
            .clone_dtoh(&buf.slice(offset..offset + len))
            .map_err(cuda_error("copy from device"))?;
        // A copy to pageable memory returns when it is done, but cudarc does not promise
        // that for every kind of host memory: wait for it explicitly.
        self.synchronize()?;
        Ok(out)
    }

    fn copy(&self, src: &CudaSlice<f32>, dst: &mut CudaSlice<f32>, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let mut to = dst.slice_mut(..len);
        self.stream
            .memcpy_dtod(&src.slice(..len), &mut to)
            .map_err(cuda_error("copy on device"))
    }

    fn addr(&self, buf: &CudaSlice<f32>) -> u64 {
        let (ptr, _sync) = buf.device_ptr(&self.stream);
        ptr
    }

    fn launch<P: LaunchParams>(
        &self,
        kernel: Kernel,
        grid: [u32; 3],
        threads: u32,
        smem: u32,
        params: &P,
    ) -> Result<()> {
        let index = Kernel::ALL
            .iter()
            .position(|&k| k == kernel)
            .expect("every kernel is in ALL");
        let mut args = self.stream.launch_builder(&self.functions[index]);
        args.arg(params);
        let cfg = LaunchConfig {
            grid_dim: (grid[0], grid[1], grid[2]),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: smem,
        };
        // SAFETY: the parameter block matches the kernel's (asserted sizes, repr(C)); its
        // addresses are live buffers of this engine on this stream, sized by the engine
        // for the grid it launches.
        unsafe { args.launch(cfg) }.map_err(cuda_error(kernel.name()))?;
        Ok(())
    }
}
