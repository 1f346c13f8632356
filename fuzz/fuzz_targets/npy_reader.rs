//! The `.npy` reader on hostile bytes: both parsers (borrowed and owned) must agree, and
//! whatever parses converts to f64, f32 and (for uint8) frames without a panic, an
//! out-of-bounds access or an allocation beyond the input's size.
#![no_main]

use burstwatch::io::npy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let borrowed = npy::parse(bytes);
    let owned = npy::parse_owned(bytes.to_vec());
    match (borrowed, owned) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.shape, b.shape);
            assert_eq!(a.dtype, b.dtype);
            assert!(a.len() * a.dtype.size() <= bytes.len(), "data within the input");
            let (x, y) = (a.to_f64(), b.to_f64());
            assert_eq!(x.len(), a.len());
            assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()));
            assert_eq!(a.to_f32().len(), a.len());
            if let Some(u) = a.as_u8() {
                assert_eq!(b.into_u8().ok().as_deref(), Some(u));
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("the parsers disagree: {:?} vs {:?}", a.is_ok(), b.is_ok()),
    }
});
