//! This node's side of the metadata log. Changes go to the controller as request values and come
//! back as committed records ([`controller`]); the [`loader`] applies committed records to the
//! image that handlers read and hands what changed to the publishers (the partition logs, the
//! group coordinator), whichever node asked for the change.

pub mod controller;
pub mod loader;

pub use controller::ControllerChannel;
pub use loader::MetadataLoader;
