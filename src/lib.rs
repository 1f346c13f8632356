//! burstwatch: real-time burst prediction for live tank cameras.
//!
//! The library holds everything; the `burstwatch` binary is a thin CLI over [`cli`].
//! The split follows the design: science ([`speed`], [`eval`]), model ([`model`]),
//! engines ([`engine`]), file formats ([`io`]), the simulated tank ([`sim`]) and the command
//! line ([`cli`]).

pub mod alert;
pub mod capture;
pub mod cli;
pub mod engine;
pub mod error;
pub mod eval;
pub mod io;
pub mod live;
pub mod model;
pub mod sim;
pub mod speed;
pub mod train;

pub use error::{Error, Result};
