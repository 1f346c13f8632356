//! Where the fast engine runs: `--device auto|cpu|cuda[:N]`. `auto` takes CUDA device 0
//! when the driver, a device and NVRTC are there, and otherwise the CPU engine, saying so
//! in one info line; an explicit `cuda` that cannot be had is an error, never a silent
//! fallback.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::{cpu, cuda, new_engine, Engine, EngineKind};
use crate::model::Model;
use crate::{Error, Result};

/// A device for the fast engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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
        let bad = || Error::Input(format!("device {s:?}; expected auto, cpu, cuda or cuda:N"));
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
    /// The CUDA ordinal (0 for `cpu` and `auto`).
    fn ordinal(self) -> usize {
        match self {
            Device::Cuda(n) => n,
            _ => 0,
        }
    }

    /// Settles `auto`: CUDA device 0 when it is usable, else the CPU, said in one info
    /// line. The probe runs once per process (the machine's devices do not change during
    /// a run), however many cameras and models ask.
    pub fn resolve(self) -> Device {
        static AUTO: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
        match self {
            Device::Auto => *AUTO.get_or_init(|| match cuda::cuda_probe(0) {
                Ok(_) => Device::Cuda(0),
                Err(why) => {
                    tracing::info!("no usable CUDA device ({why}); running on the CPU");
                    Device::Cpu
                }
            }),
            d => d,
        }
    }
}

/// Builds the fast engine for `model` on `device` (see the module documentation).
pub fn new_engine_on(model: impl Into<Arc<Model>>, device: Device) -> Result<Box<dyn Engine>> {
    EngineFactory::new(model, device)?.make()
}

/// Makes engines of one model on one device, for many cameras: the device is settled
/// once (`auto` probed once), and on the CPU the weights are packed once and shared by
/// every engine it makes; each engine has its own states.
#[derive(Debug, Clone)]
pub struct EngineFactory {
    model: Arc<Model>,
    device: Device,
    /// Chosen by `auto`: a CUDA engine that cannot be built falls back to the CPU.
    automatic: bool,
    packed: Option<cpu::PackedModel>,
}

impl EngineFactory {
    pub fn new(model: impl Into<Arc<Model>>, device: Device) -> Result<EngineFactory> {
        let model = model.into();
        model.check()?;
        let (device, automatic) = match device {
            Device::Auto => (Device::Auto.resolve(), true),
            d => (d, false),
        };
        let packed = match device {
            Device::Cpu => Some(cpu::PackedModel::new(model.clone())?),
            _ => None,
        };
        Ok(EngineFactory {
            model,
            device,
            automatic,
            packed,
        })
    }

    /// The device the engines run on (never `auto`).
    pub fn device(&self) -> Device {
        self.device
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// A new engine with no states yet.
    pub fn make(&self) -> Result<Box<dyn Engine>> {
        if let Some(packed) = &self.packed {
            return Ok(Box::new(cpu::CpuEngine::with_packed(
                packed,
                cpu::default_threads(),
            )?));
        }
        match new_engine(self.model.clone(), EngineKind::Cuda(self.device.ordinal())) {
            Err(why) if self.automatic => {
                tracing::info!("the CUDA engine cannot be built ({why}); running on the CPU");
                new_engine(self.model.clone(), EngineKind::Cpu)
            }
            r => r,
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
