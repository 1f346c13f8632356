//! The models of a run: each model a camera asks for is loaded once, and cameras that run
//! the same model in the same mode on the same device share one engine, an
//! [`EngineService`] that batches their steps (one copy of the weights, one pool of
//! threads or one GPU launch for all of them), while every camera keeps its own states.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::scorer::FrameModel;
use crate::engine::{Device, EngineFactory, EngineService, Mode, ServiceSettings, Stream};
use crate::frame;
use crate::model::{self, Model};
use crate::output::event::ModelInfo;
use crate::{Error, Result};

/// Which ConvLSTM a camera runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum ModelChoice {
    /// The model embedded in the binary ([`crate::model::default`]).
    #[default]
    Default,
    /// No model: the baseline alone.
    None,
    /// A Keras SavedModel directory, a `.safetensors` model or a study
    /// `*.reference-weights.npz`.
    File(PathBuf),
}

impl ModelChoice {
    /// `default`, `none`, or a path (a file really named `none` or `default` is still
    /// reachable as `./none`).
    pub fn parse(s: &str) -> ModelChoice {
        match s {
            "default" => ModelChoice::Default,
            "none" => ModelChoice::None,
            path => ModelChoice::File(PathBuf::from(path)),
        }
    }

    /// Relative paths resolved against `dir` (a config file's folder).
    pub fn relative_to(self, dir: &Path) -> ModelChoice {
        match self {
            ModelChoice::File(p) if p.is_relative() => ModelChoice::File(dir.join(p)),
            other => other,
        }
    }
}

impl std::fmt::Display for ModelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelChoice::Default => f.write_str("default"),
            ModelChoice::None => f.write_str("none"),
            ModelChoice::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A loaded model and how the start line names it.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    pub model: Arc<Model>,
    pub info: ModelInfo,
}

/// One camera's model, ready to run.
pub struct CameraModel {
    /// What it runs (shared with every camera of the same model).
    pub loaded: Arc<LoadedModel>,
    pub model: Box<dyn FrameModel>,
    /// The device it actually runs on.
    pub device: Device,
    /// Its engine's name.
    pub engine: String,
}

/// The key of an engine service: cameras with the same model, mode and device (`auto`
/// settled) share one.
type ServiceKey = (ModelChoice, Mode, Device);

/// Every model of a run, each loaded once; see the module documentation.
#[derive(Default)]
pub struct ModelSet {
    loaded: HashMap<ModelChoice, Arc<LoadedModel>>,
    services: HashMap<ServiceKey, (EngineService, Device)>,
    /// How long a ready step waits for other cameras' (`None`: the device's default).
    batch_wait: Option<Duration>,
}

impl ModelSet {
    pub fn new() -> ModelSet {
        ModelSet::default()
    }

    /// Every engine service, running or to come, waits at most `wait` for a batch
    /// (`None`: its device's default, [`ServiceSettings::for_device`]).
    pub fn set_batch_wait(&mut self, wait: Option<Duration>) {
        self.batch_wait = wait;
        for (service, device) in self.services.values() {
            service.set_batch_wait(self.settings(*device).batch_wait);
        }
    }

    /// How a service on `device` batches: the run's batch wait, or the device's default.
    fn settings(&self, device: Device) -> ServiceSettings {
        match self.batch_wait {
            Some(batch_wait) => ServiceSettings { batch_wait },
            None => ServiceSettings::for_device(device),
        }
    }

    /// The model of `choice` (`None` for [`ModelChoice::None`]), loaded and checked on
    /// first use: it must take what sources deliver.
    pub fn load(&mut self, choice: &ModelChoice) -> Result<Option<Arc<LoadedModel>>> {
        self.load_canonical(&canonical(choice)?, choice)
    }

    /// [`ModelSet::load`] of a choice already made canonical (`key`); `choice` is how it
    /// was asked for, for the log.
    fn load_canonical(
        &mut self,
        key: &ModelChoice,
        choice: &ModelChoice,
    ) -> Result<Option<Arc<LoadedModel>>> {
        if *key == ModelChoice::None {
            return Ok(None);
        }
        if let Some(m) = self.loaded.get(key) {
            return Ok(Some(m.clone()));
        }
        let model = match key {
            ModelChoice::File(path) => model::load(path)?,
            _ => model::default::default_model(),
        };
        frame::check_model_input(&model)?;
        tracing::info!(model = %model.name, from = %choice, "model loaded");
        let info = ModelInfo {
            name: model.name.clone(),
            sha256: model.weights_sha256(),
        };
        let loaded = Arc::new(LoadedModel {
            model: Arc::new(model),
            info,
        });
        self.loaded.insert(key.clone(), loaded.clone());
        Ok(Some(loaded))
    }

    /// The model of `choice` in `mode` on `device` for one camera: a stream over the engine
    /// service of every camera with the same three (`auto` counts as the device it settles
    /// on), started with the first; `None` for [`ModelChoice::None`].
    pub fn camera_model(
        &mut self,
        choice: &ModelChoice,
        mode: Mode,
        device: Device,
    ) -> Result<Option<CameraModel>> {
        let canonical = canonical(choice)?;
        let Some(loaded) = self.load_canonical(&canonical, choice)? else {
            return Ok(None);
        };
        let key = (canonical, mode, device.resolve());
        let (service, device) = match self.services.get(&key) {
            Some(s) => s,
            None => {
                let factory = EngineFactory::new(loaded.model.clone(), device)?;
                let device = factory.device();
                let settings = self.settings(device);
                let service = EngineService::start(factory.make()?, settings)?;
                tracing::debug!(engine = service.name(), ?settings, "engine service started");
                self.services.entry(key).or_insert((service, device))
            }
        };
        Ok(Some(CameraModel {
            loaded,
            model: Box::new(Stream::new(Box::new(service.client()), mode)?),
            device: *device,
            engine: service.name().to_owned(),
        }))
    }

    /// The engine services running, for figures.
    pub fn services(&self) -> impl Iterator<Item = &EngineService> {
        self.services.values().map(|(s, _)| s)
    }
}

/// The choice with its path made canonical, so that two spellings of one file load once.
fn canonical(choice: &ModelChoice) -> Result<ModelChoice> {
    match choice {
        ModelChoice::File(p) => std::fs::canonicalize(p)
            .map(ModelChoice::File)
            .map_err(|source| Error::Read {
                path: p.clone(),
                source,
            }),
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_model_loaded_once_for_every_camera() {
        let mut set = ModelSet::new();
        let a = set.load(&ModelChoice::Default).unwrap().unwrap();
        let b = set.load(&ModelChoice::Default).unwrap().unwrap();
        assert!(Arc::ptr_eq(&a.model, &b.model));
        assert_eq!(a.info.sha256.len(), 64);
        assert!(set.load(&ModelChoice::None).unwrap().is_none());
        let one = set
            .camera_model(&ModelChoice::Default, Mode::Continuous, Device::Cpu)
            .unwrap()
            .unwrap();
        assert_eq!(one.device, Device::Cpu);
        assert!(one.engine.starts_with("cpu"), "{}", one.engine);
        assert_eq!(set.services.len(), 1);
        let _two = set
            .camera_model(&ModelChoice::Default, Mode::Continuous, Device::Cpu)
            .unwrap();
        assert_eq!(
            set.services.len(),
            1,
            "the second camera shares the engine service"
        );
        let _exact = set
            .camera_model(&ModelChoice::Default, Mode::Exact, Device::Cpu)
            .unwrap();
        assert_eq!(set.services.len(), 2);
    }

    #[test]
    fn choices_parse() {
        assert_eq!(ModelChoice::parse("default"), ModelChoice::Default);
        assert_eq!(ModelChoice::parse("none"), ModelChoice::None);
        assert_eq!(
            ModelChoice::parse("./none"),
            ModelChoice::File("./none".into())
        );
        assert_eq!(
            ModelChoice::parse("m.safetensors").relative_to(Path::new("/etc/bw")),
            ModelChoice::File("/etc/bw/m.safetensors".into())
        );
    }
}
