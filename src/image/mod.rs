//! Images on disk: references, layer extraction and reassembly, image configs, archives.

pub mod changes;
pub mod config;
pub mod layer;
pub mod reference;
pub mod tar_limit;
pub mod tarwrite;
