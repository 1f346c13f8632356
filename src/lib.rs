//! burstwatch: real-time burst prediction for live tank cameras, as a library; the
//! `burstwatch` binary is a thin command line over it.
//!
//! The split follows the design: science ([`speed`], [`eval`]) knows no camera; the
//! study's frame rules are in [`frame`]; the network ([`model`]) knows no engine; the
//! engines ([`engine`]) take slices, not sources; [`capture`] brings frames from cameras,
//! files and the simulated tank ([`sim`]); [`live`] scores them camera by camera
//! ([`live::Scorer`]) and runs many cameras at once ([`live::Runner`], set up by a lab's
//! [`config`] file); [`alert`] turns scores into alerts, and [`output`] carries the events
//! to every sink. [`train`] fits the network to a lab's own footage; [`io`] reads and
//! writes the file formats.

pub mod alert;
pub mod capture;
pub mod clips;
pub mod config;
pub mod engine;
pub mod error;
pub mod eval;
pub mod frame;
pub mod io;
pub mod live;
pub mod model;
pub mod output;
pub mod priority;
pub mod rng;
pub mod sim;
pub mod speed;
pub mod train;
pub mod web;

pub use error::{Error, Result};
