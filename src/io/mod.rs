//! File formats: NumPy `.npy`/`.npz` arrays and frame sequences (npy stacks or PNG folders).
//! Only reading and writing lives here; no science.

pub mod frames;
pub mod npy;

pub use frames::{read_frames, Frames};
