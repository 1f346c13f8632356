//! The CUDA engine's own NVRTC path, which needs NVRTC but no GPU: every kernel file
//! compiles to a cubin for sm_80 and sm_90 (and the result is cached per architecture).
//! Where libnvrtc cannot be loaded the test says it was skipped, unless
//! `BURSTWATCH_REQUIRE_NVRTC` is set (scripts/check-kernels.sh sets it, with the NVRTC
//! wheel on LD_LIBRARY_PATH), in which case that is a failure.

use std::sync::Arc;

use burstwatch::engine::cuda::{compile_kernels, KernelImage, KERNEL_FILES};

#[test]
fn kernels_compile_to_cubins_with_the_engines_nvrtc_path() {
    let first = match compile_kernels((9, 0)) {
        Ok(images) => images,
        Err(e) if std::env::var_os("BURSTWATCH_REQUIRE_NVRTC").is_none() => {
            eprintln!("SKIPPED: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    for arch in [(8, 0), (9, 0)] {
        let images = compile_kernels(arch).unwrap();
        assert_eq!(images.len(), KERNEL_FILES.len());
        for (file, image) in images.iter() {
            let KernelImage::Cubin(bin) = image else {
                panic!("{file}: expected a cubin for sm_{}{}", arch.0, arch.1)
            };
            assert!(bin.starts_with(b"\x7fELF"), "{file}: not an ELF cubin");
            eprintln!(
                "{file}: sm_{}{} cubin of {} bytes",
                arch.0,
                arch.1,
                bin.len()
            );
        }
    }
    assert!(
        Arc::ptr_eq(&first, &compile_kernels((9, 0)).unwrap()),
        "compiled once per architecture"
    );
}
