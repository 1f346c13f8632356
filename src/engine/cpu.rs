//! placeholder
use crate::model::Model;
use crate::Result;
pub struct CpuEngine;
impl CpuEngine {
    pub fn new(model: Model) -> Result<super::reference::ReferenceEngine> {
        super::reference::ReferenceEngine::new(model)
    }
}
