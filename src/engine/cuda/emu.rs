//! The kernels' CPU emulation as a [`Backend`]: `kernels/*.cu` compiled as C++ with
//! `kernels/emu/cuda_shim.h` into a shared library (`kernels/emu/emulator.cpp`), loaded
//! here. Buffers are host memory with guard zones on both sides, checked after every
//! launch, so a kernel that writes out of bounds fails the launch; the guards hold NaN, so
//! one that reads out of bounds poisons its output.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Backend, Kernel, LaunchParams};
use crate::{Error, Result};

/// Values of guard zone on each side of a buffer.
const GUARD: usize = 256;
/// The guard's bit pattern: a quiet NaN no computation produces.
const GUARD_BITS: u32 = 0x7fc0_dead;

type LaunchFn = unsafe extern "C" fn(*const c_char, u32, u32, u32, u32, u32, *const c_void) -> i32;
type ErrorFn = unsafe extern "C" fn() -> *const c_char;
type SizeFn = unsafe extern "C" fn(*const c_char) -> u32;

/// Live buffers by base address: (length with guards).
type Registry = Arc<Mutex<HashMap<usize, usize>>>;

/// The emulated device; see the module documentation.
pub struct EmuBackend {
    launch: LaunchFn,
    last_error: ErrorFn,
    live: Registry,
    // Keeps the functions above loaded; dropped last.
    _lib: libloading::Library,
}

/// A host buffer with guard zones (raw memory that the C++ kernels write through).
pub struct EmuBuf {
    base: *mut f32,
    len: usize,
    live: Registry,
}

// SAFETY: the buffer owns its memory; the engine that holds it is used by one thread at
// a time (Engine: Send, not Sync).
unsafe impl Send for EmuBuf {}

impl Drop for EmuBuf {
    fn drop(&mut self) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(self.base as usize));
        let total = self.len + 2 * GUARD;
        // SAFETY: allocated in `alloc` as a boxed slice of `total` values.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.base, total)) });
    }
}

impl EmuBuf {
    fn data(&self) -> *mut f32 {
        // SAFETY: GUARD values precede the data within the allocation.
        unsafe { self.base.add(GUARD) }
    }

    fn check(&self, offset: usize, len: usize) -> Result<()> {
        if offset + len > self.len {
            return Err(Error::Engine(format!(
                "emulated device: {len} values at {offset} in a buffer of {}",
                self.len
            )));
        }
        Ok(())
    }
}

impl EmuBackend {
    /// Loads the emulator library and checks that its parameter blocks have the sizes of
    /// ours.
    pub fn load(path: &Path) -> Result<Self> {
        let fail = |e: libloading::Error| {
            Error::Engine(format!(
                "{}: cannot load the kernel emulator: {e}",
                path.display()
            ))
        };
        // SAFETY: the library is our emulator (its initialisers only set up globals).
        let lib = unsafe { libloading::Library::new(path) }.map_err(fail)?;
        // SAFETY: the symbols' signatures are those of emulator.cpp's extern "C" functions.
        let (launch, last_error, size) = unsafe {
            (
                *lib.get::<LaunchFn>(b"bw_emu_launch\0").map_err(fail)?,
                *lib.get::<ErrorFn>(b"bw_emu_last_error\0").map_err(fail)?,
                *lib.get::<SizeFn>(b"bw_emu_params_size\0").map_err(fail)?,
            )
        };
        let ours = [
            (
                Kernel::InputConv,
                std::mem::size_of::<super::InputConvParams>(),
            ),
            (Kernel::LstmStep, std::mem::size_of::<super::StepParams>()),
            (
                Kernel::PoolNorm,
                std::mem::size_of::<super::PoolNormParams>(),
            ),
            (Kernel::Head, std::mem::size_of::<super::HeadParams>()),
        ];
        for (k, n) in ours {
            let name = CString::new(k.name()).expect("no NUL in kernel names");
            // SAFETY: a NUL-terminated string.
            let theirs = unsafe { size(name.as_ptr()) } as usize;
            if theirs != n {
                return Err(Error::Engine(format!(
                    "{}: {}'s parameters are {theirs} bytes there and {n} here",
                    path.display(),
                    k.name()
                )));
            }
        }
        Ok(EmuBackend {
            launch,
            last_error,
            live: Arc::default(),
            _lib: lib,
        })
    }

    /// Checks every live buffer's guard zones.
    fn check_guards(&self, kernel: Kernel) -> Result<()> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        for (&base, &len) in live.iter() {
            // SAFETY: a live allocation of len + 2 * GUARD values.
            let all = unsafe { std::slice::from_raw_parts(base as *const f32, len + 2 * GUARD) };
            let bad = all[..GUARD]
                .iter()
                .chain(&all[GUARD + len..])
                .position(|v| v.to_bits() != GUARD_BITS);
            if let Some(at) = bad {
                return Err(Error::Engine(format!(
                    "emulated {}: wrote outside a buffer of {len} values (guard value {at} changed)",
                    kernel.name()
                )));
            }
        }
        Ok(())
    }
}

impl Backend for EmuBackend {
    type Buf = EmuBuf;

    fn describe(&self) -> String {
        "cuda-emulated".into()
    }

    fn alloc(&self, len: usize) -> Result<EmuBuf> {
        let mut v = vec![f32::from_bits(GUARD_BITS); len + 2 * GUARD];
        v[GUARD..GUARD + len].fill(0.0);
        let base = Box::into_raw(v.into_boxed_slice()) as *mut f32;
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(base as usize, len);
        Ok(EmuBuf {
            base,
            len,
            live: self.live.clone(),
        })
    }

    fn upload(&self, buf: &mut EmuBuf, offset: usize, data: &[f32]) -> Result<()> {
        buf.check(offset, data.len())?;
        // SAFETY: in bounds (checked); no other reference to the buffer's memory exists.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf.data().add(offset), data.len()) };
        Ok(())
    }

    fn download(&self, buf: &EmuBuf, offset: usize, len: usize) -> Result<Vec<f32>> {
        buf.check(offset, len)?;
        let mut out = vec![0.0; len];
        // SAFETY: in bounds (checked).
        unsafe { std::ptr::copy_nonoverlapping(buf.data().add(offset), out.as_mut_ptr(), len) };
        Ok(out)
    }

    fn copy(&self, src: &EmuBuf, dst: &mut EmuBuf, len: usize) -> Result<()> {
        src.check(0, len)?;
        dst.check(0, len)?;
        // SAFETY: both in bounds; distinct allocations.
        unsafe { std::ptr::copy_nonoverlapping(src.data(), dst.data(), len) };
        Ok(())
    }

    fn addr(&self, buf: &EmuBuf) -> u64 {
        buf.data() as u64
    }

    fn launch<P: LaunchParams>(
        &self,
        kernel: Kernel,
        grid: [u32; 3],
        threads: u32,
        smem: u32,
        params: &P,
    ) -> Result<()> {
        let name = CString::new(kernel.name()).expect("no NUL in kernel names");
        // SAFETY: params is the kernel's parameter block (sizes checked at load); its
        // addresses point into live buffers of this backend.
        let rc = unsafe {
            (self.launch)(
                name.as_ptr(),
                grid[0],
                grid[1],
                grid[2],
                threads,
                smem,
                params as *const P as *const c_void,
            )
        };
        if rc != 0 {
            // SAFETY: the emulator returns a NUL-terminated string it owns.
            let why = unsafe { CStr::from_ptr((self.last_error)()) }
                .to_string_lossy()
                .into_owned();
            return Err(Error::Engine(format!("emulated {}: {why}", kernel.name())));
        }
        self.check_guards(kernel)
    }
}
