//! Engines run the ConvLSTM: the `Engine` trait (one batched step), the CPU and CUDA
//! implementations, and the exact / continuous streaming schedules over any engine.
