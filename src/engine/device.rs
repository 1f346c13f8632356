//! Where the fast engine runs: `--device auto|cpu|cuda[:N]`. `auto` takes CUDA device 0
//! when the driver, a device and NVRTC are there, and otherwise the CPU engine, saying so
//! in one info line; an explicit `cuda` that cannot be had is an error, never a silent
//! fallback.

use std::fmt;
use std::str::FromStr;

use super::{cuda, new_engine, Engine, EngineKind};
use crate::model::Model;
use crate::{Error, Result};

/// A device for the fast engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA device 0 when usable, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Invalid(format!("device {s:?}; expected auto, cpu, cuda or cuda:N"));
        match s {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    n.parse().map(Device::Cuda).map_err(|_| bad())
                }
                _ => Err(bad()),
            },
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl Device {
    /// Settles `auto` once (for a process that builds many engines): CUDA device 0 when it
    /// is usable, else the CPU, said in one info line.
    pub fn resolve(self) -> Device {
        match self {
            Device::Auto => match cuda::cuda_probe(0) {
                Ok(_) => Device::Cuda(0),
                Err(why) => {
                    tracing::info!("no usable CUDA device ({why}); running on the CPU");
                    Device::Cpu
                }
            },
            d => d,
        }
    }
}

/// Builds the fast engine for `model` on `device` (see the module documentation).
pub fn new_engine_on(model: Model, device: Device) -> Result<Box<dyn Engine>> {
    match device {
        Device::Cpu => new_engine(model, EngineKind::Cpu),
        Device::Cuda(n) => new_engine(model, EngineKind::Cuda(n)),
        Device::Auto => {
            let why = match cuda::cuda_probe(0) {
                Ok(_) => match cuda::CudaEngine::new(model.clone(), 0) {
                    Ok(engine) => return Ok(Box::new(engine)),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            tracing::info!("no usable CUDA device ({why}); running on the CPU");
            new_engine(model, EngineKind::Cpu)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("auto".parse::<Device>().unwrap(), Device::Auto);
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
        for bad in [
            "", "gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:+1", "CPU", "cuda:1:2",
        ] {
            assert!(bad.parse::<Device>().is_err(), "{bad:?}");
        }
        for d in [Device::Auto, Device::Cpu, Device::Cuda(2)] {
            assert_eq!(d.to_string().parse::<Device>().unwrap(), d);
        }
    }
}
